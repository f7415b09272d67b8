/**
 * Kube-mode scale benchmark (issue 3 §7): 5,000 Node objects served by the
 * in-process API server, the agent's sync code on the other end.
 *
 *   node dist/bench/kube-scale.js [--nodes 5000] [--updates 50] [--adds 10] [--images 0] [--json FILE]
 *
 * How it measures
 * - This process runs the fake API server (test/support/fake-apiserver.ts) with
 *   the synthetic Nodes of bench/kube-scale-nodes.ts. The "agent" runs in a
 *   forked child, so its RSS is the agent's alone (the server's copy of the
 *   objects is not counted). Two children run one after the other, each
 *   against a fresh server:
 *     bare  — a bare client-node 1.4.0 informer (makeInformer + listNode):
 *             the floor any client-node agent pays;
 *     sync  — the agent's own pipeline: makeNodeInformer + RestartingInformer
 *             (src/control/kube/informer.ts) -> PeerSync (sync.ts) -> a stub
 *             data plane whose setPeers builds and encodes the real FDB
 *             (src/dataplane/fdb.ts), then the msgpackr snapshot save, as
 *             src/agent/kube-mode.ts wires them.
 * - initial sync: from the informer's start() to the first FDB holding every
 *   other node (bare: to start() resolving with the list in the cache).
 * - event -> FDB: the parent arms an expectation in the child (IPC, acked),
 *   stamps t0 and changes a Node (the store writes the watch event
 *   synchronously); the child stamps t1 when the stub's setPeers has the new
 *   FDB (bare: when the informer callback fires). Stamps are
 *   performance.timeOrigin + performance.now() in each process.
 *   update = a node's public-ip annotation changes; add = a new Node; delete.
 * - RSS: process.memoryUsage().rss of the child before listing (every module
 *   loaded: the footprint of client-node itself), right after the initial
 *   sync, again after a forced GC (--expose-gc), and at the end.
 * Prints a table and the JSON. Not a test: nothing here asserts a time.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FakeApiServer } from '../test/support/fake-apiserver.js';
import { makeNode, nodeName, underlayIP } from './kube-scale-nodes.js';
import { FLANNEL_ANNOTATION_PREFIX } from '../src/control/kube/lease.js';
import { runChild, type ChildMode, type FromChild, type ToChild } from './kube-scale-agent.js';

const prefix = FLANNEL_ANNOTATION_PREFIX;
const now = (): number => performance.timeOrigin + performance.now();

interface Args {
  nodes: number;
  updates: number;
  adds: number;
  images: number;
  json: string | undefined;
}

function parseArgs(argv: readonly string[]): Args {
  const out: Args = { nodes: 5000, updates: 50, adds: 10, images: 0, json: undefined };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i]!, argv[i + 1]];
    if (value === undefined) throw new Error(`${flag}: missing value`);
    if (flag === '--json') out.json = value;
    else if (flag === '--nodes' || flag === '--updates' || flag === '--adds' || flag === '--images') {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 0) throw new Error(`${flag}: not a count: ${value}`);
      out[flag.slice(2) as 'nodes' | 'updates' | 'adds' | 'images'] = n;
    } else throw new Error(`unknown flag ${flag}`);
  }
  if (out.nodes < 2 || out.nodes + out.adds > 8192) throw new Error('--nodes: 2..8192 including --adds');
  return out;
}

/** Latency summary in ms. */
interface Summary { n: number; p50: number; p95: number; max: number; mean: number }

function summarize(ms: number[]): Summary {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] ?? NaN;
  const round = (x: number): number => Math.round(x * 100) / 100;
  return { n: s.length, p50: round(at(0.5)), p95: round(at(0.95)), max: round(s[s.length - 1] ?? NaN), mean: round(s.reduce((a, b) => a + b, 0) / (s.length || 1)) };
}

/** One child's results. */
interface ModeResult {
  initialSyncMs: number;
  peers: number;
  rssBaselineMB: number;
  rssAfterSyncMB: number;
  rssAfterGcMB: number;
  heapUsedAfterGcMB: number;
  rssEndMB: number;
  update: Summary;
  /** The part of `update` spent in the stub's setPeers (buildFdb + encode); sync mode only. */
  updateFdbBuild: Summary;
  add: Summary;
  delete: Summary;
  informerRestarts: number;
}

const mb = (bytes: number): number => Math.round((bytes / 1048576) * 10) / 10;

/** Talks to one forked agent child. */
class Child {
  private waiters = new Map<string, (m: FromChild) => void>();
  private constructor(readonly proc: ChildProcess) {
    proc.on('message', (m: FromChild) => {
      const key = 'id' in m ? `${m.type}:${m.id}` : m.type;
      const w = this.waiters.get(key);
      if (w) {
        this.waiters.delete(key);
        w(m);
      }
    });
  }

  static spawn(mode: ChildMode, kubeconfig: string, stateDir: string, nodes: number): Child {
    const args = ['--child', mode, kubeconfig, stateDir, String(nodes)];
    return new Child(fork(fileURLToPath(import.meta.url), args, { execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  }

  next<T extends FromChild>(key: string, timeoutMs = 60_000): Promise<T> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`child: no ${key} within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.set(key, (m) => {
        clearTimeout(timer);
        resolve(m as T);
      });
    });
  }

  send(m: ToChild): void {
    this.proc.send(m);
  }
}

async function runMode(mode: ChildMode, args: Args, dir: string): Promise<ModeResult> {
  const api = await FakeApiServer.create({ historySize: args.nodes * 4, bookmarkIntervalMs: 10_000 });
  try {
    api.setNodes(Array.from({ length: args.nodes }, (_, i) => makeNode(i, { prefix, images: args.images })));
    const stateDir = await mkdtemp(join(dir, `${mode}-`));
    const child = Child.spawn(mode, await api.kubeconfigFile(dir, `kubeconfig-${mode}`), stateDir, args.nodes);
    const synced = await child.next<Extract<FromChild, { type: 'synced' }>>('synced');
    let id = 0;
    let lastBuild: number | undefined;
    const measure = async (name: string, present: string | null, change: () => void): Promise<number> => {
      id += 1;
      const seen = child.next<Extract<FromChild, { type: 'seen' }>>(`seen:${id}`, 10_000);
      const armed = child.next(`armed:${id}`);
      child.send({ type: 'expect', id, name, ip: present });
      await armed;
      const t0 = now();
      change();
      const { at, fdbMs } = await seen;
      lastBuild = fdbMs;
      await new Promise((r) => setTimeout(r, 20));
      return at - t0;
    };
    const update: number[] = [];
    const updateBuild: number[] = [];
    for (let k = 0; k < args.updates; k++) {
      const i = 1 + ((k * 97) % (args.nodes - 1));
      const ip = underlayIP(k, 200);
      update.push(await measure(nodeName(i), ip, () => api.upsertNode(makeNode(i, { prefix, images: args.images, publicIP: ip }))));
      if (lastBuild !== undefined) updateBuild.push(lastBuild);
    }
    const add: number[] = [];
    const del: number[] = [];
    for (let k = 0; k < args.adds; k++) {
      const i = args.nodes + k;
      add.push(await measure(nodeName(i), underlayIP(i), () => api.upsertNode(makeNode(i, { prefix, images: args.images }))));
    }
    for (let k = 0; k < args.adds; k++) {
      const i = args.nodes + k;
      del.push(await measure(nodeName(i), null, () => api.deleteNode(nodeName(i))));
    }
    const final = child.next<Extract<FromChild, { type: 'final' }>>('final');
    child.send({ type: 'report' });
    const end = await final;
    const exited = new Promise((r) => child.proc.once('exit', r));
    child.send({ type: 'exit' });
    await exited;
    return {
      initialSyncMs: Math.round(synced.ms * 10) / 10, peers: synced.peers, rssBaselineMB: mb(synced.baselineRss),
      rssAfterSyncMB: mb(synced.rss), rssAfterGcMB: mb(synced.rssAfterGc), heapUsedAfterGcMB: mb(synced.heapUsedAfterGc),
      rssEndMB: mb(end.rss), update: summarize(update), updateFdbBuild: summarize(updateBuild), add: summarize(add), delete: summarize(del), informerRestarts: end.restarts,
    };
  } finally {
    await api.stop();
  }
}

function table(results: Record<ChildMode, ModeResult>): string {
  const rows: Array<[string, (r: ModeResult) => string, string]> = [
    ['initial sync (ms)', (r) => String(r.initialSyncMs), '< 2000'],
    ['peers in FDB / cache', (r) => String(r.peers), ''],
    ['update -> FDB p50/p95/max (ms)', (r) => `${r.update.p50} / ${r.update.p95} / ${r.update.max}`, '< 100'],
    ['  of which buildFdb+encode p50/p95 (ms)', (r) => (r.updateFdbBuild.n > 0 ? `${r.updateFdbBuild.p50} / ${r.updateFdbBuild.p95}` : '-'), ''],
    ['add -> FDB p50/p95/max (ms)', (r) => `${r.add.p50} / ${r.add.p95} / ${r.add.max}`, '< 100'],
    ['delete -> FDB p50/p95/max (ms)', (r) => `${r.delete.p50} / ${r.delete.p95} / ${r.delete.max}`, '< 100'],
    ['RSS before listing (MB, modules only)', (r) => String(r.rssBaselineMB), ''],
    ['RSS after sync (MB)', (r) => String(r.rssAfterSyncMB), '< 100'],
    ['RSS / heap after GC (MB)', (r) => `${r.rssAfterGcMB} / ${r.heapUsedAfterGcMB}`, ''],
    ['RSS at end (MB)', (r) => String(r.rssEndMB), ''],
  ];
  const head: [string, string, string, string] = ['metric', 'bare client-node informer', 'userlay sync (agent code)', 'target'];
  const lines = [head, ...rows.map(([k, f, t]) => [k, f(results.bare), f(results.sync), t] as const)];
  const w = [0, 1, 2, 3].map((c) => Math.max(...lines.map((l) => l[c]!.length)));
  return lines.map((l) => l.map((cell, c) => cell.padEnd(w[c]!)).join('  ')).join('\n');
}

async function main(argv: readonly string[]): Promise<void> {
  if (argv[0] === '--child') {
    await runChild(argv[1] as ChildMode, argv[2]!, argv[3]!, Number(argv[4]));
    return;
  }
  const args = parseArgs(argv);
  const dir = await mkdtemp(join(tmpdir(), 'userlay-kube-scale-'));
  try {
    const results = { bare: await runMode('bare', args, dir), sync: await runMode('sync', args, dir) };
    const report = {
      bench: 'kube-scale', nodes: args.nodes, imagesPerNode: args.images, updates: args.updates, adds: args.adds,
      node: process.version, targets: { initialSyncMs: 2000, eventToFdbMs: 100, rssMB: 100 }, results,
    };
    process.stdout.write(`kube-scale: ${args.nodes} nodes (${args.images} images each)\n${table(results)}\n\n${JSON.stringify(report, null, 2)}\n`);
    if (args.json) await writeFile(args.json, JSON.stringify(report, null, 2) + '\n');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`kube-scale: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
