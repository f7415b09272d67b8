/**
 * Kube mode at real Node sizes, measured on the real `userlay agent` process (issue 9 §2).
 *
 *   sudo node dist/bench/kube-scale-real.js [--nodes 5000] [--images 50] [--updates 5000]
 *        [--fdb-every 10] [--node-flags "FLAGS"] [--engine native|js] [--idle-ms 10000] [--json FILE]
 *
 * How it measures
 * - A network namespace `ulB<pid>-k` with lo and a veth pair as the underlay link (198.18.0.1/24); this
 *   script runs itself again inside it (`--inside`), where it serves the in-process API server
 *   (test/support/fake-apiserver.ts) on 127.0.0.1 with `--nodes` synthetic Nodes of `--images`
 *   images each (bench/kube-scale-nodes.ts: ~15 KB each at 50 images), and starts the agent as
 *   users do: `bin/userlay.js agent --kubeconfig ...` — its shebang's V8 flags, a real TUN and
 *   the native data plane. `--node-flags` runs `node FLAGS bin/userlay.js` instead, to compare
 *   flag sets. The namespace (and whatever runs in it) is removed at the end, also on failure.
 * - initial sync: from the agent's first list request reaching the server to its log line
 *   "peers applied" with every other node (the FDB is in the data plane when it logs). The
 *   server serialises the pages on the same CPUs; its share is measured once and printed.
 * - churn: `--updates` Node updates one after the other, the way kubelets rewrite their Nodes
 *   (heartbeat time in status.conditions; the agent must read and trim each one and change
 *   nothing); every `--fdb-every`-th also changes the node's public-ip annotation, and that one
 *   is timed: from the write in the server (which emits the watch event synchronously) to the
 *   agent's next "peers applied" line arriving here (watch event -> FDB in the data plane).
 *   5,000 updates at 5,000 Nodes is about an hour of a quiet cluster's Node writes.
 * - RSS: VmRSS of the agent process (/proc/PID/status) 3 s after the initial sync, its maximum
 *   sampled every 100 ms during the churn, and after `--idle-ms` idle at the end, with the
 *   anonymous / file-backed split (smaps_rollup) of the first and the last. No forced GC: the
 *   agent runs as it does in a cluster. The credential helper the agent starts is a process of
 *   its own and not counted (~100 MB for ~0.5 s, at start and at most once a minute after).
 * Prints a table and writes the JSON (default bench/out/kube-scale-real.json). Not a test:
 * nothing here asserts a time. Needs root (namespace, TUN).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { FakeApiServer, type KubeObject } from '../test/support/fake-apiserver.js';
import { ip, rssBytes, sleep, stopChild } from '../src/cli/lab/exec.js';
import { userlayBin } from '../src/cli/lab/agent-process.js';
import { cleanupStale } from '../src/cli/lab/stale.js';
import { deleteNamespaces } from '../src/cli/lab/topology.js';
import { FLANNEL_ANNOTATION_PREFIX } from '../src/control/kube/lease.js';
import { makeNode, nodeName, SCALE_NETWORK, underlayIP } from './kube-scale-nodes.js';

const USAGE = `usage: sudo node dist/bench/kube-scale-real.js [--nodes 5000] [--images 50] [--updates 5000]
       [--fdb-every 10] [--node-flags "FLAGS"] [--engine native|js] [--idle-ms 10000] [--json FILE]
`;
const prefix = FLANNEL_ANNOTATION_PREFIX;
const NS_ROOT = 'ulB';
const UNDERLAY = 'ulb0';
const DEFAULT_JSON = fileURLToPath(new URL('../../bench/out/kube-scale-real.json', import.meta.url));

interface Args {
  nodes: number;
  images: number;
  updates: number;
  fdbEvery: number;
  nodeFlags: string[] | undefined;
  engine: string;
  idleMs: number;
  json: string;
}

function parseArgs(argv: readonly string[]): Args {
  const out: Args = { nodes: 5000, images: 50, updates: 5000, fdbEvery: 10, nodeFlags: undefined, engine: 'native', idleMs: 10_000, json: DEFAULT_JSON };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i]!, argv[i + 1]];
    if (value === undefined) throw new Error(`${flag}: missing value\n${USAGE}`);
    if (flag === '--json') out.json = value;
    else if (flag === '--node-flags') out.nodeFlags = value.split(' ').filter((f) => f !== '');
    else if (flag === '--engine') out.engine = value;
    else if (['--nodes', '--images', '--updates', '--fdb-every', '--idle-ms'].includes(flag)) {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 0) throw new Error(`${flag}: not a count: ${value}`);
      const key = ({ '--nodes': 'nodes', '--images': 'images', '--updates': 'updates', '--fdb-every': 'fdbEvery', '--idle-ms': 'idleMs' } as const)[flag as '--nodes'];
      out[key] = n;
    } else throw new Error(`unknown flag ${flag}\n${USAGE}`);
  }
  if (out.nodes < 2 || out.nodes > 8192) throw new Error('--nodes: 2..8192');
  if (out.fdbEvery < 1) throw new Error('--fdb-every: at least 1');
  return out;
}

/** Latency summary in ms. */
interface Summary { n: number; p50: number; p95: number; p99: number; max: number }

function summarize(ms: readonly number[]): Summary {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] ?? NaN;
  const r = (x: number): number => Math.round(x * 10) / 10;
  return { n: s.length, p50: r(at(0.5)), p95: r(at(0.95)), p99: r(at(0.99)), max: r(s[s.length - 1] ?? NaN) };
}

const mb = (bytes: number | undefined): number => Math.round(((bytes ?? NaN) / 1e6) * 10) / 10;

/**
 * Anonymous and file-backed resident memory of `pid` (/proc/PID/smaps_rollup), bytes. The
 * file-backed part is mostly the node binary's pages (~40 MB, shared with every node process).
 */
async function rssSplit(pid: number): Promise<{ anon: number; file: number } | undefined> {
  try {
    const text = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8');
    const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) * 1024;
    return { anon: kb('Anonymous'), file: kb('Rss') - kb('Anonymous') - (kb('Shmem') || 0) };
  } catch {
    return undefined;
  }
}

const split = (s: { anon: number; file: number } | undefined): string => (s ? ` (anon ${mb(s.anon)}, file ${mb(s.file)})` : '');

// ---- outside: the namespace ------------------------------------------------------------------

async function outside(argv: string[]): Promise<number> {
  if (process.getuid?.() !== 0) {
    process.stderr.write(`kube-scale-real: needs root (network namespace, TUN)\n${USAGE}`);
    return 2;
  }
  await cleanupStale(NS_ROOT);
  const ns = `${NS_ROOT}${process.pid}-k`;
  try {
    await ip(undefined, ['netns', 'add', ns]);
    await ip(ns, ['link', 'set', 'lo', 'up']);
    await ip(ns, ['link', 'add', UNDERLAY, 'type', 'veth', 'peer', 'name', `${UNDERLAY}p`]);
    await ip(ns, ['addr', 'add', `${underlayIP(0)}/24`, 'dev', UNDERLAY]);
    await ip(ns, ['link', 'set', `${UNDERLAY}p`, 'up']);
    await ip(ns, ['link', 'set', UNDERLAY, 'up']);
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, fileURLToPath(import.meta.url), '--inside', ...argv], { stdio: 'inherit' });
    const stopInner = (): void => { child.kill('SIGTERM'); };
    process.once('SIGINT', stopInner);
    process.once('SIGTERM', stopInner);
    return await new Promise<number>((resolve) => child.on('exit', (code) => resolve(code ?? 1)));
  } finally {
    await deleteNamespaces([ns]);
  }
}

// ---- inside: server, agent, measurement ------------------------------------------------------

interface AgentLine { at: number; msg: string; peers?: number }

class AgentRun {
  readonly lines: AgentLine[] = [];
  private waiters: Array<{ pred: (l: AgentLine) => boolean; resolve: (l: AgentLine) => void }> = [];
  constructor(readonly child: ChildProcess) {
    const rl = createInterface({ input: child.stderr! });
    rl.on('line', (text) => {
      const at = performance.timeOrigin + performance.now();
      let rec: { msg?: string; peers?: number };
      try {
        rec = JSON.parse(text) as typeof rec;
      } catch {
        process.stderr.write(`agent: ${text}\n`);
        return;
      }
      if (rec.msg === undefined) return;
      const line: AgentLine = { at, msg: rec.msg, ...(typeof rec.peers === 'number' ? { peers: rec.peers } : {}) };
      if (rec.msg !== 'peers applied') this.lines.push(line);
      if (/error|failed|restarting/.test(rec.msg)) process.stderr.write(`agent: ${text}\n`);
      this.waiters = this.waiters.filter((w) => {
        if (!w.pred(line)) return true;
        w.resolve(line);
        return false;
      });
    });
  }

  next(pred: (l: AgentLine) => boolean, timeoutMs: number, what: string): Promise<AgentLine> {
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null): void => reject(new Error(`agent exited (${code}) while waiting for ${what}`));
      const timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
      this.child.once('exit', onExit);
      this.waiters.push({ pred, resolve: (l) => { clearTimeout(timer); this.child.off('exit', onExit); resolve(l); } });
    });
  }
}

function heartbeat(node: KubeObject, round: number): KubeObject {
  const at = new Date(Date.UTC(2026, 10, 21, 6, 0, round % 60, 0)).toISOString().replace('.000', '');
  const status = node.status as { conditions: Array<Record<string, string>> };
  for (const c of status.conditions) c.lastHeartbeatTime = at;
  return node;
}

async function inside(args: Args): Promise<void> {
  const now = (): number => performance.timeOrigin + performance.now();
  const dir = await mkdtemp(join(tmpdir(), `${NS_ROOT}${process.pid}-real-`));
  const api = await FakeApiServer.create({ bookmarkIntervalMs: 60_000 });
  let agent: AgentRun | undefined;
  try {
    process.stdout.write(`kube-scale-real: ${args.nodes} Nodes x ${args.images} images, ${args.updates} updates (every ${args.fdbEvery}th changes the FDB), `
      + `agent ${args.nodeFlags ? `node ${args.nodeFlags.join(' ')} ` : ''}bin/userlay.js (engine ${args.engine})\n`);
    const nodes: KubeObject[] = [];
    for (let i = 0; i < args.nodes; i++) nodes.push(makeNode(i, { prefix, images: args.images }));
    for (const n of nodes) api.upsertNode(n);
    const bytes = Buffer.byteLength(JSON.stringify(api.getNode(nodeName(1))));
    // the server's share of the initial sync: it serialises every page on the same CPUs
    const s0 = now();
    JSON.stringify(api.store.list());
    const serverListMs = Math.round(now() - s0);
    process.stdout.write(`  one Node is ${(bytes / 1024).toFixed(1)} KB as JSON; the list ${(bytes * args.nodes / 1e6).toFixed(0)} MB `
      + `(the server takes ~${serverListMs} ms to serialise it, inside the initial sync)\n`);
    const kubeconfig = await api.kubeconfigFile(dir);
    const agentArgs = [
      'agent', '--kubeconfig', kubeconfig, '--node-name', nodeName(0), '--network', SCALE_NETWORK, '--iface', UNDERLAY,
      '--annotation-prefix', prefix, '--state-dir', join(dir, 'state'), '--subnet-file', join(dir, 'subnet.env'),
      '--status-addr', '127.0.0.1:9400', '--engine', args.engine, '--tun', 'userlay0', '--log-level', 'info',
    ];
    const [cmd, argv] = args.nodeFlags ? [process.execPath, [...args.nodeFlags, userlayBin(), ...agentArgs]] : [userlayBin(), agentArgs];
    api.clearRequests();
    const spawned = now();
    const child = spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
    agent = new AgentRun(child);
    const full = await agent.next((l) => l.msg === 'peers applied' && (l.peers ?? 0) >= args.nodes - 1, 120_000, 'the initial sync');
    const firstList = api.requests.find((r) => r.method === 'GET' && r.path === '/api/v1/nodes' && r.query.watch !== 'true');
    const listed = agent.lines.find((l) => l.msg === 'nodes listed');
    const ready = await agent.next((l) => l.msg === 'agent ready', 30_000, 'agent ready');
    await sleep(3000);
    const rssAfterSync = await rssBytes(child.pid!);
    const splitAfterSync = await rssSplit(child.pid!);

    // churn
    let rssMax = 0;
    const sampler = setInterval(() => void rssBytes(child.pid!).then((r) => { rssMax = Math.max(rssMax, r ?? 0); }), 100);
    const lat: number[] = [];
    const churnStart = now();
    for (let u = 0; u < args.updates; u++) {
      const i = 1 + (u % (args.nodes - 1));
      const node = heartbeat(structuredClone(nodes[i]!), u);
      const timed = u % args.fdbEvery === args.fdbEvery - 1;
      if (timed) {
        // move the node between its address and one in a range no other node uses
        const ann = node.metadata.annotations as Record<string, string>;
        ann[`${prefix}/public-ip`] = ann[`${prefix}/public-ip`] === underlayIP(i) ? underlayIP(i, 32) : underlayIP(i);
        nodes[i] = node;
        const seen = agent.next((l) => l.msg === 'peers applied', 30_000, `update ${u} in the FDB`);
        const t0 = now();
        api.upsertNode(structuredClone(node));
        lat.push((await seen).at - t0);
      } else {
        api.upsertNode(node);
        if (u % 50 === 0) await sleep(0); // let the server flush its watch stream
      }
    }
    const churnMs = now() - churnStart;
    clearInterval(sampler);
    await sleep(args.idleMs);
    const rssIdle = await rssBytes(child.pid!);
    const splitIdle = await rssSplit(child.pid!);
    const restarts = agent.lines.filter((l) => /restarting/.test(l.msg)).length;

    const result = {
      nodes: args.nodes, images: args.images, nodeBytes: bytes, updates: args.updates, fdbEvery: args.fdbEvery, engine: args.engine,
      agent: args.nodeFlags ? `node ${args.nodeFlags.join(' ')} bin/userlay.js` : 'bin/userlay.js (shebang flags)',
      initialSyncMs: Math.round(full.at - (firstList?.at ?? spawned)),
      listMs: listed ? Math.round(listed.at - (firstList?.at ?? spawned)) : undefined,
      serverListMs,
      spawnToReadyMs: Math.round(ready.at - spawned),
      eventToFdb: summarize(lat),
      churnSeconds: Math.round(churnMs / 100) / 10,
      rssAfterSyncMB: mb(rssAfterSync), rssChurnMaxMB: mb(rssMax), rssIdleMB: mb(rssIdle),
      anonAfterSyncMB: mb(splitAfterSync?.anon), fileAfterSyncMB: mb(splitAfterSync?.file), anonIdleMB: mb(splitIdle?.anon), fileIdleMB: mb(splitIdle?.file),
      informerRestarts: restarts,
      loadAverage: (await import('node:os')).loadavg().map((x) => Math.round(x * 100) / 100),
    };
    const rows: Array<[string, string, string]> = [
      ['initial sync (first list request -> full FDB)', '< 2000 ms', `${result.initialSyncMs} ms (list ${result.listMs} ms; spawn -> ready ${result.spawnToReadyMs} ms)`],
      [`watch event -> FDB p50 / p95 / max (${lat.length} events)`, '< 100 ms', `${result.eventToFdb.p50} / ${result.eventToFdb.p95} / ${result.eventToFdb.max} ms`],
      ['agent RSS after initial sync', '< 100 MB', `${result.rssAfterSyncMB} MB${split(splitAfterSync)}`],
      [`agent RSS max during ${args.updates} updates (${result.churnSeconds} s)`, '-', `${result.rssChurnMaxMB} MB`],
      [`agent RSS after the updates, ${args.idleMs / 1000} s idle`, '< 100 MB', `${result.rssIdleMB} MB${split(splitIdle)}`],
      ['informer restarts', '0', String(restarts)],
    ];
    for (const [what, target, got] of rows) process.stdout.write(`  ${what.padEnd(58)} ${target.padEnd(10)} ${got}\n`);
    process.stdout.write(`  load average ${result.loadAverage.join(' ')}\n`);
    await mkdir(dirname(args.json), { recursive: true });
    await writeFile(args.json, JSON.stringify(result, null, 2) + '\n');
    process.stdout.write(`JSON: ${args.json}\n`);
  } finally {
    if (agent) await stopChild(agent.child, 5000);
    await api.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

const argv = process.argv.slice(2);
if (argv.includes('--help') || argv.includes('-h')) {
  process.stdout.write(USAGE);
} else if (argv[0] === '--inside') {
  await inside(parseArgs(argv.slice(1)));
} else {
  try {
    parseArgs(argv);
  } catch (err) {
    process.stderr.write(`kube-scale-real: ${(err as Error).message}\n`);
    process.exit(2);
  }
  process.exitCode = await outside(argv);
}
