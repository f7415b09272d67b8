/**
 * Test-side wrappers over the lab harness (src/cli/lab/): a lab per test
 * group with namespace prefix `ulT<pid>-<k>.`, always torn down; leftovers of
 * crashed test runs are removed before the first lab is built.
 */
import { UserlayError } from '../../src/errors.js';
import { nsRun, sleep } from '../../src/cli/lab/exec.js';
import { applyOverlay, type Overlay, type OverlaySpec } from '../../src/cli/lab/overlay.js';
import { ping, type PingResult } from '../../src/cli/lab/probes.js';
import { cleanupStale, listNamespaces } from '../../src/cli/lab/stale.js';
import { createTopology, type LabNode, type Topology, type TopologyOptions } from '../../src/cli/lab/topology.js';

/** Skip reason for tests that need root, or false when running as root. */
export const NEEDS_ROOT: string | false = process.getuid?.() === 0
  ? false
  : 'needs root: builds network namespaces, veths and TUN devices (CI runs it as root)';

/** Prefix root of test namespaces. */
export const TEST_PREFIX_ROOT = 'ulT';

let labCount = 0;
let staleCleaned = false;

/** A test lab: topology plus overlay. */
export interface TestLab {
  readonly topo: Topology;
  readonly overlay: Overlay;
  readonly nodes: readonly LabNode[];
  /** Node i (1-based). */
  node(i: number): LabNode;
  /** Remove overlay and topology. Idempotent. */
  close(): Promise<void>;
}

/** Topology choices a test may make (families, underlay family or kind, pod wiring). */
export type TestTopologyOptions = Pick<TopologyOptions, 'family' | 'underlayFamily' | 'underlay' | 'pods' | 'underlayMtus'>;

/** Build a lab of `nodes` nodes with the overlay `spec` (on a topology with `topology`). Cleans up on failure. */
export async function openTestLab(nodes: number, spec: OverlaySpec, topology: TestTopologyOptions = {}): Promise<TestLab> {
  if (!staleCleaned) {
    staleCleaned = true;
    await cleanupStale(TEST_PREFIX_ROOT);
  }
  const prefix = `${TEST_PREFIX_ROOT}${process.pid}-${++labCount}.`;
  const topo = await createTopology({ prefix, nodes, ...topology });
  let overlay: Overlay;
  try {
    overlay = await applyOverlay(topo, spec);
  } catch (err) {
    await topo.close();
    throw err;
  }
  let closing: Promise<void> | undefined;
  return {
    topo,
    overlay,
    nodes: topo.nodes,
    node(i) {
      const n = topo.nodes[i - 1];
      if (!n) throw new UserlayError('EINVAL', `no node ${i}`);
      return n;
    },
    close() {
      closing ??= overlay.remove().finally(() => topo.close());
      return closing;
    },
  };
}

/** The namespaces whose names start with `prefix`. */
export async function namespacesWithPrefix(prefix: string): Promise<string[]> {
  return (await listNamespaces()).filter((n) => n.startsWith(prefix));
}

/**
 * Ping `to` from `from`'s pod (one echo) until `want` (reachable or not)
 * holds or `timeoutMs` passes; returns the last result.
 */
export async function pingUntil(from: LabNode, to: LabNode, want: boolean, timeoutMs = 8000): Promise<PingResult> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await ping(from.podNs, to.podIP, { count: 1 });
    if (r.ok === want || Date.now() > deadline) return r;
    await sleep(200);
  }
}

/** JSON of an agent's status endpoint `urlPath` (served on 127.0.0.1:port inside the node ns). */
export async function statusJson(node: LabNode, port: number, urlPath: string): Promise<unknown> {
  const res = await nsRun(node.ns, 'curl', ['-sS', '--max-time', '5', `http://127.0.0.1:${port}${urlPath}`]);
  return JSON.parse(res.stdout) as unknown;
}

/** Shape of /debug/stats (bigints as decimal strings). */
interface StatsJson {
  total?: { drops?: Record<string, string | number> };
  peers?: Record<string, { drops?: Record<string, string | number> }>;
}

/**
 * Drops counted under `reason` in a /debug/stats document: the total, or,
 * when the total does not carry it, the sum over peers.
 */
export function dropCount(stats: unknown, reason: string): number {
  const s = stats as StatsJson;
  const total = Number(s.total?.drops?.[reason] ?? 0);
  if (total > 0) return total;
  return Object.values(s.peers ?? {}).reduce((sum, p) => sum + Number(p.drops?.[reason] ?? 0), 0);
}

