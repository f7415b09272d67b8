/**
 * Kube-mode scale benchmark (issue 3 §7): 5,000 Node objects served by the
 * in-process API server, the agent's sync code on the other end.
 *
 *   node dist/bench/kube-scale.js [--nodes 5000] [--updates 50] [--adds 10] [--images 0]
 *        [--modes bare,sync,sync+small,lite,lite+small] [--child-flags "--max-semi-space-size=1"]
 *        [--idle-ms 3000] [--json FILE]
 *
 * How it measures
 * - This process runs the fake API server (test/support/fake-apiserver.ts) with
 *   the synthetic Nodes of bench/kube-scale-nodes.ts. The "agent" runs in a
 *   forked child (bench/kube-scale-agent.ts), so its RSS is the agent's alone
 *   (the server's copy of the objects is not counted). One child per mode, one
 *   after the other, each against a fresh server:
 *     bare  — a bare client-node 1.4.0 informer (makeInformer + listNode):
 *             the floor any client-node agent pays;
 *     sync  — the agent's own pipeline: makeNodeInformer (NodeReflector: paged, streamed,
 *             trimmed) + RestartingInformer (src/control/kube/informer.ts) ->
 *             PeerSync (sync.ts) -> a stub data plane whose setPeers builds and
 *             encodes the real FDB (src/dataplane/fdb.ts), then the msgpackr
 *             snapshot save, as src/agent/kube-mode.ts wires them;
 *     lite  — the same pipeline fed by a stand-in list+watch over node:http, so
 *             that @kubernetes/client-node is never loaded: what the agent
 *             would weigh without it (a measurement, not agent code);
 *     +small — the child sets V8's --optimize-for-size first (see kube-scale-agent.ts).
 * - initial sync: from the informer's start() to the first FDB holding every
 *   other node (bare: to start() resolving with the list in the cache).
 * - event -> FDB: the parent arms an expectation in the child (IPC, acked),
 *   stamps t0 and changes a Node (the store writes the watch event
 *   synchronously); the child stamps t1 when the stub's setPeers has the new
 *   FDB (bare: when the informer callback fires). Stamps are
 *   performance.timeOrigin + performance.now() in each process.
 *   update = a node's public-ip annotation changes; add = a new Node; delete.
 * - RSS: process.memoryUsage().rss of the child with every module loaded and
 *   nothing listed, right after the initial sync, again after a forced GC
 *   (--expose-gc), and at the end (before and after a GC); with heap used,
 *   heap total, young generation and code sizes, to say where the memory is.
 * Prints a table per mode, a summary of the three measures against their
 * targets, and writes the JSON (default bench/out/kube-scale.json).
 * Not a test: nothing here asserts a time. The real agent process (TUN, data plane, shebang
 * flags) at real Node sizes is measured by bench/kube-scale-real.ts.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FakeApiServer } from '../test/support/fake-apiserver.js';
import { makeNode, nodeName, underlayIP } from './kube-scale-nodes.js';
import { FLANNEL_ANNOTATION_PREFIX } from '../src/control/kube/lease.js';
import type { ChildMode, FromChild, MemorySample, ToChild } from './kube-scale-agent.js';

const prefix = FLANNEL_ANNOTATION_PREFIX;
const now = (): number => performance.timeOrigin + performance.now();

const MODES: readonly ChildMode[] = ['bare', 'sync', 'lite', 'bare+small', 'sync+small', 'lite+small'];
const DEFAULT_JSON = fileURLToPath(new URL('../../bench/out/kube-scale.json', import.meta.url));

interface Args {
  nodes: number;
  updates: number;
  adds: number;
  images: number;
  modes: ChildMode[];
  /** Extra node flags for the children (space-separated), e.g. what a DaemonSet's NODE_OPTIONS would set. */
  childFlags: string[];
  /** Idle time after the last event before the end samples (V8's memory reducer runs when idle). */
  idleMs: number;
  json: string;
}

function parseArgs(argv: readonly string[]): Args {
  const out: Args = { nodes: 5000, updates: 50, adds: 10, images: 0, modes: ['bare', 'sync', 'sync+small', 'lite', 'lite+small'], childFlags: [], idleMs: 3000, json: DEFAULT_JSON };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i]!, argv[i + 1]];
    if (value === undefined) throw new Error(`${flag}: missing value`);
    if (flag === '--json') out.json = value;
    else if (flag === '--child-flags') out.childFlags = value.split(' ').filter((f) => f !== '');
    else if (flag === '--idle-ms') out.idleMs = Number(value);
    else if (flag === '--modes') {
      out.modes = value.split(',') as ChildMode[];
      const bad = out.modes.find((m) => !MODES.includes(m));
      if (bad !== undefined) throw new Error(`--modes: unknown mode ${bad} (modes: ${MODES.join(', ')})`);
    } else if (flag === '--nodes' || flag === '--updates' || flag === '--adds' || flag === '--images') {
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

/** Memory in MB. */
type MemoryMB = { [K in keyof MemorySample]: number };

/** One child's results. */
interface ModeResult {
  initialSyncMs: number;
  peers: number;
  /** Modules loaded, nothing listed. */
  baseline: MemoryMB;
  afterSync: MemoryMB;
  afterSyncGc: MemoryMB;
  end: MemoryMB;
  endGc: MemoryMB;
  update: Summary;
  /** The part of `update` spent in the stub's setPeers (buildFdb + encode); sync mode only. */
  updateFdbBuild: Summary;
  add: Summary;
  delete: Summary;
  /** update, add and delete together. */
  event: Summary;
  informerRestarts: number;
}

const mb = (bytes: number): number => Math.round((bytes / 1048576) * 10) / 10;
const memMB = (m: MemorySample): MemoryMB =>
  Object.fromEntries(Object.entries(m).map(([k, v]) => [k, mb(v)])) as MemoryMB;

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

  static spawn(mode: ChildMode, server: string, kubeconfig: string, stateDir: string, nodes: number, flags: readonly string[]): Child {
    const entry = fileURLToPath(new URL('./kube-scale-agent.js', import.meta.url));
    const args = [mode, server, kubeconfig, stateDir, String(nodes)];
    return new Child(fork(entry, args, { execArgv: ['--expose-gc', ...flags], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
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
    const stateDir = await mkdtemp(join(dir, `${mode.replace('+', '-')}-`));
    const child = Child.spawn(mode, api.url, await api.kubeconfigFile(dir, `kubeconfig-${mode.replace('+', '-')}`), stateDir, args.nodes, args.childFlags);
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
    await new Promise((r) => setTimeout(r, args.idleMs));
    const final = child.next<Extract<FromChild, { type: 'final' }>>('final');
    child.send({ type: 'report' });
    const end = await final;
    const exited = new Promise((r) => child.proc.once('exit', r));
    child.send({ type: 'exit' });
    await exited;
    return {
      initialSyncMs: Math.round(synced.ms * 10) / 10, peers: synced.peers, baseline: memMB(synced.baseline),
      afterSync: memMB(synced.afterSync), afterSyncGc: memMB(synced.afterGc), end: memMB(end.end), endGc: memMB(end.endAfterGc),
      update: summarize(update), updateFdbBuild: summarize(updateBuild), add: summarize(add), delete: summarize(del),
      event: summarize([...update, ...add, ...del]), informerRestarts: end.restarts,
    };
  } finally {
    await api.stop();
  }
}

/** Per-mode detail: one column per mode. */
function table(modes: readonly ChildMode[], results: Partial<Record<ChildMode, ModeResult>>): string {
  const m = (r: MemoryMB): string => `${r.rss} / ${r.heapUsed} / ${r.heapTotal} / ${r.newSpace} / ${r.code}`;
  const rows: Array<[string, (r: ModeResult) => string]> = [
    ['initial sync (ms)', (r) => String(r.initialSyncMs)],
    ['peers in FDB / cache', (r) => String(r.peers)],
    ['update -> FDB p50/p95/max (ms)', (r) => `${r.update.p50} / ${r.update.p95} / ${r.update.max}`],
    ['  of which setPeers (FDB build+encode) p50/p95', (r) => (r.updateFdbBuild.n > 0 ? `${r.updateFdbBuild.p50} / ${r.updateFdbBuild.p95}` : '-')],
    ['add -> FDB p50/p95/max (ms)', (r) => `${r.add.p50} / ${r.add.p95} / ${r.add.max}`],
    ['delete -> FDB p50/p95/max (ms)', (r) => `${r.delete.p50} / ${r.delete.p95} / ${r.delete.max}`],
    ['MB rss/heapUsed/heapTotal/young/code:', () => ''],
    ['  modules loaded, nothing listed', (r) => m(r.baseline)],
    ['  after initial sync', (r) => m(r.afterSync)],
    ['  after sync + GC', (r) => m(r.afterSyncGc)],
    ['  at end (after idling)', (r) => m(r.end)],
    ['  at end + GC', (r) => m(r.endGc)],
  ];
  const head = ['metric', ...modes];
  const lines = [head, ...rows.map(([k, f]) => [k, ...modes.map((mode) => f(results[mode]!))])];
  return layout(lines);
}

function layout(lines: readonly (readonly string[])[]): string {
  const w = lines[0]!.map((_, c) => Math.max(...lines.map((l) => l[c]!.length)));
  return lines.map((l) => l.map((cell, c) => cell.padEnd(w[c]!)).join('  ').trimEnd()).join('\n');
}

/** The three measures of issue 3 §7 per mode, next to their targets; "!" marks a miss. */
function summary(modes: readonly ChildMode[], results: Partial<Record<ChildMode, ModeResult>>): { text: string; rows: Array<Record<string, unknown>> } {
  const measures: Array<[string, number, (r: ModeResult) => number]> = [
    ['initial sync (ms)', 2000, (r) => r.initialSyncMs],
    ['watch event -> new FDB, p50 (ms)', 100, (r) => r.event.p50],
    ['watch event -> new FDB, p95 (ms)', 100, (r) => r.event.p95],
    ['agent RSS after initial sync (MB)', 100, (r) => r.afterSync.rss],
    ['agent RSS at end, idle (MB)', 100, (r) => r.end.rss],
  ];
  const shown = modes.filter((m) => m !== 'bare' && m !== 'bare+small');
  const rows = measures.map(([measure, target, f]) => ({
    measure, target, ...Object.fromEntries(shown.map((m) => [m, { value: f(results[m]!), met: f(results[m]!) < target }])),
  }));
  const lines = [['measure (agent pipeline)', 'target', ...shown],
    ...measures.map(([measure, target, f]) => [measure, `< ${target}`, ...shown.map((m) => {
      const v = f(results[m]!);
      return `${v}${v < target ? '' : ' !'}`;
    })])];
  return { text: layout(lines), rows };
}

async function main(argv: readonly string[]): Promise<void> {
  const args = parseArgs(argv);
  const dir = await mkdtemp(join(tmpdir(), 'userlay-kube-scale-'));
  try {
    const results: Partial<Record<ChildMode, ModeResult>> = {};
    for (const mode of args.modes) results[mode] = await runMode(mode, args, dir);
    const sum = summary(args.modes, results);
    const report = {
      bench: 'kube-scale', date: new Date().toISOString(), childFlags: args.childFlags, idleMs: args.idleMs, nodes: args.nodes, imagesPerNode: args.images, updates: args.updates, adds: args.adds,
      node: process.version, targets: { initialSyncMs: 2000, eventToFdbMs: 100, rssMB: 100 }, summary: sum.rows, results,
    };
    const flags = args.childFlags.length > 0 ? `, agent flags ${args.childFlags.join(' ')}` : '';
    process.stdout.write(`kube-scale: ${args.nodes} nodes (${args.images} images each${flags})\n${table(args.modes, results)}\n\n${sum.text}\n`);
    await mkdir(dirname(args.json), { recursive: true });
    await writeFile(args.json, JSON.stringify(report, null, 2) + '\n');
    process.stdout.write(`\nJSON: ${args.json}\n`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`kube-scale: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
