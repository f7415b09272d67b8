/**
 * The agent side of the kube scale benchmark: a forked child, started by
 * bench/kube-scale.ts (see there for the method) as
 *
 *   node --expose-gc dist/bench/kube-scale-agent.js MODE SERVER_URL KUBECONFIG STATE_DIR NODES
 *
 * MODE is one of
 *   bare       makeInformer() + CoreV1Api.listNode(); "FDB updated" = the informer
 *              callback for the node fired with the expected state.
 *   sync       the agent's pipeline, wired as src/agent/kube-mode.ts wires it: makeNodeInformer
 *              (NodeReflector: paged, streamed, Nodes trimmed to the annotation prefix) -> RestartingInformer
 *              -> PeerSync -> stub data plane (buildFdb + encode, the work the real setPeers
 *              does in JS) -> snapshot.
 *   lite       the same pipeline without @kubernetes/client-node: a stand-in list+watch over
 *              node:http (LiteInformer below) feeds PeerSync. A measurement of what the agent
 *              would weigh without client-node, not agent code: no TLS, auth or fault handling.
 * and may end in "+small": the child first calls v8.setFlagsFromString('--optimize-for-size'),
 * which V8 consults as it sizes the heap, so the agent could set it in code at start-up (unlike
 * --max-semi-space-size, which is read once when the heap is set up and needs NODE_OPTIONS or
 * a command-line flag). It keeps the old generation near the live size instead of letting it
 * grow to a multiple of it between full GCs, for more frequent full GCs.
 *
 * Modules are imported per mode, after the flag, so a mode's RSS holds only what it loads.
 *
 * IPC: the parent sends `expect` (a node name and the public IP it must have,
 * or null for "gone"); the child acks with `armed` and reports `seen` with its
 * timestamp once the FDB (or cache) shows it.
 */
import { request } from 'node:http';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import type { V1Node, V1NodeList } from '@kubernetes/client-node';
import type { Peer } from '../src/dataplane/types.js';
import { FLANNEL_ANNOTATION_PREFIX } from '../src/control/kube/lease.js';
import { nodeName, podSubnet, SCALE_NETWORK, underlayIP, vtepMac } from './kube-scale-nodes.js';

/** Which agent the child runs (see the file comment). */
export type ChildMode = 'bare' | 'sync' | 'lite' | 'bare+small' | 'sync+small' | 'lite+small';

/** Parent -> child messages. */
export type ToChild =
  | { type: 'expect'; id: number; name: string; ip: string | null }
  | { type: 'report' }
  | { type: 'exit' };

/** Memory of the child at one moment (bytes). */
export interface MemorySample {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  /** Memory of ArrayBuffers and other off-heap objects V8 knows of. */
  external: number;
  /** Young generation (new_space) size. */
  newSpace: number;
  /** Compiled code (code_space + code_large_object_space) size. */
  code: number;
}

/** Child -> parent messages. */
export type FromChild =
  | { type: 'synced'; ms: number; peers: number; baseline: MemorySample; afterSync: MemorySample; afterGc: MemorySample }
  | { type: 'armed'; id: number }
  | { type: 'seen'; id: number; at: number; fdbMs?: number }
  | { type: 'final'; end: MemorySample; endAfterGc: MemorySample; restarts: number };

const now = (): number => performance.timeOrigin + performance.now();
const prefix = FLANNEL_ANNOTATION_PREFIX; // as kube-scale.ts writes the Nodes
const OWN = 0;

function send(m: FromChild): void {
  process.send!(m);
}

function sample(): MemorySample {
  const u = process.memoryUsage();
  const spaces = new Map(getHeapSpaceStatistics().map((s) => [s.space_name, s.space_size]));
  return {
    rss: u.rss, heapUsed: u.heapUsed, heapTotal: u.heapTotal, external: u.external,
    newSpace: spaces.get('new_space') ?? 0, code: (spaces.get('code_space') ?? 0) + (spaces.get('code_large_object_space') ?? 0),
  };
}

const gc = (): void => (globalThis as { gc?: () => void }).gc?.();

/** Pending expectation: checked against every new state until met. */
let pending: { id: number; name: string; ip: string | null } | undefined;

function settle(ipOf: (name: string) => string | undefined, at: number, fdbMs?: number): void {
  if (!pending) return;
  const ip = ipOf(pending.name);
  if ((pending.ip === null && ip === undefined) || (pending.ip !== null && ip === pending.ip)) {
    send({ type: 'seen', id: pending.id, at, ...(fdbMs === undefined ? {} : { fdbMs }) });
    pending = undefined;
  }
}

/** Memory with every module loaded and nothing listed yet. */
let baseline: MemorySample;
/** Ask the pipeline's PeerSync for a recompute (set once it exists). */
let kick = (): void => {};

function synced(startedAt: number, peers: number): void {
  const ms = now() - startedAt;
  const afterSync = sample();
  gc();
  send({ type: 'synced', ms, peers, baseline, afterSync, afterGc: sample() });
}

/** What a started child exposes to the IPC loop. */
interface Running {
  restarts(): number;
}

/** The bare client-node informer. */
async function startBare(kubeconfig: string, nodes: number): Promise<Running> {
  const { CoreV1Api, KubeConfig, makeInformer } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  const core = kc.makeApiClient(CoreV1Api);
  const inf = makeInformer<V1Node>(kc, '/api/v1/nodes', () => core.listNode());
  const ipOf = (name: string): string | undefined => inf.get(name)?.metadata?.annotations?.[`${prefix}/public-ip`];
  let restarts = 0;
  inf.on('error', () => {
    restarts += 1;
    setTimeout(() => void inf.start(), 500);
  });
  inf.on('change', () => settle(ipOf, now()));
  gc();
  baseline = sample();
  const t0 = now();
  await inf.start();
  synced(t0, inf.list().length - (nodes > 0 ? 1 : 0));
  return { restarts: () => restarts };
}

/** The cache surface PeerSync and the pipeline need. */
interface Cache {
  list(): V1Node[];
  on(verb: 'change', cb: (obj: V1Node) => void): void;
}

/**
 * The agent pipeline from the cache on: PeerSync -> stub data plane -> snapshot.
 * `start` starts the informer (after the baseline sample); resolves once the first
 * full FDB is built.
 */
async function runPipeline(cache: Cache, listed: () => boolean, stateDir: string, nodes: number, start: () => Promise<void>): Promise<void> {
  const { buildFdb, SlotAllocator } = await import('../src/dataplane/fdb.js');
  const { PeerSync } = await import('../src/control/kube/sync.js');
  const { SnapshotStore } = await import('../src/control/snapshot-store.js');
  const { silentLogger } = await import('../src/log.js');
  const ownSubnets = [podSubnet(OWN)];
  const slots = new SlotAllocator(8192); // DataplaneOptions.maxPeers default
  const store = new SnapshotStore(stateDir);
  const lease = {
    nodeName: nodeName(OWN), subnets: ownSubnets, networks: [SCALE_NETWORK], publicIP: underlayIP(OWN),
    vtepMAC: vtepMac(OWN), backend: 'vxlan' as const, vni: 1, port: 8472, mtu: 1450,
  };
  let fdbBytes: Uint8Array = new Uint8Array(0);
  let current: readonly Peer[] = [];
  let first: ((count: number) => void) | undefined;
  const firstFull = new Promise<number>((resolve) => (first = resolve));
  /** The stub data plane: the JS half of the real setPeers (clone slots, validate, encode, adopt). */
  const setPeers = (peers: readonly Peer[]): void => {
    const started = now();
    const trial = slots.clone();
    const table = buildFdb(peers, { backend: 'vxlan', port: 8472, vni: 1, underlayFamilies: [4], ownSubnets }, trial);
    fdbBytes = table.encode();
    slots.adopt(trial);
    const at = now();
    current = peers;
    settle((name) => current.find((p) => p.name === name)?.publicIP, at, at - started);
    if (first && peers.length >= nodes - 1) {
      first(peers.length);
      first = undefined;
    }
  };
  const sync = new PeerSync({
    cache,
    config: { nodeName: nodeName(OWN), prefix, backend: 'vxlan', networks: { 4: SCALE_NETWORK }, ownSubnets, underlayFamilies: [4] },
    apply: (peers) => {
      setPeers(peers);
      store.saveLatest(lease, peers, (err) => process.stderr.write(`snapshot save: ${String(err)}\n`));
    },
    log: silentLogger,
    cacheSynced: listed,
  });
  cache.on('change', () => sync.trigger());
  kick = () => sync.trigger();
  gc();
  baseline = sample();
  const t0 = now();
  await start();
  sync.trigger();
  const count = await firstFull;
  synced(t0, count);
  if (fdbBytes.length === 0) throw new Error('stub data plane got no FDB');
}

/** The agent's own informer (NodeReflector), as kube-mode.ts makes it. */
async function startSync(kubeconfig: string, stateDir: string, nodes: number): Promise<Running> {
  const { KubeConfig } = await import('@kubernetes/client-node');
  const { makeNodeInformer, RestartingInformer } = await import('../src/control/kube/informer.js');
  const { silentLogger } = await import('../src/log.js');
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  let listed = false;
  const onListed = (): void => {
    listed = true;
    kick();
  };
  const informer = makeNodeInformer(kc, { annotationPrefix: prefix, onListed });
  const restarting = new RestartingInformer({ informer, log: silentLogger });
  await runPipeline(informer, () => listed, stateDir, nodes, () => restarting.start());
  return { restarts: () => restarting.restarts };
}

/** GET `url` and parse the JSON body. */
function getJson(url: string): Promise<V1NodeList> {
  return new Promise((resolve, reject) => {
    request(url, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        try {
          if (res.statusCode !== 200) throw new Error(`GET ${url}: HTTP ${res.statusCode}`);
          resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as V1NodeList);
        } catch (err) {
          reject(err as Error);
        }
      });
    }).on('error', reject).end();
  });
}

/**
 * A stand-in list+watch without client-node (see the file comment): paged list, then one
 * watch with bookmarks; Nodes trimmed as the agent's informer trims them.
 */
class LiteInformer implements Cache {
  private readonly objects = new Map<string, V1Node>();
  private readonly changed: Array<(obj: V1Node) => void> = [];
  private rv = '';
  listed = false;

  constructor(private readonly server: string, private readonly trim: (n: V1Node, prefix?: string) => V1Node) {}

  list(): V1Node[] {
    return [...this.objects.values()];
  }

  on(_verb: 'change', cb: (obj: V1Node) => void): void {
    this.changed.push(cb);
  }

  async start(): Promise<void> {
    let token: string | undefined;
    do {
      const page = await getJson(`${this.server}/api/v1/nodes?limit=500${token ? `&continue=${encodeURIComponent(token)}` : ''}`);
      if (this.rv === '') this.rv = page.metadata?.resourceVersion ?? '';
      for (const item of page.items) this.objects.set(item.metadata!.name!, this.trim(item, prefix));
      token = (page.metadata as { continue?: string } | undefined)?.continue || undefined;
    } while (token !== undefined);
    this.listed = true;
    this.watch();
  }

  private watch(): void {
    const url = `${this.server}/api/v1/nodes?watch=true&allowWatchBookmarks=true&resourceVersion=${this.rv}`;
    request(url, (res) => {
      res.setEncoding('utf8');
      let buffered = '';
      res.on('data', (text: string) => {
        buffered += text;
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          if (line.trim() !== '') this.event(JSON.parse(line) as { type: string; object: V1Node });
        }
      });
    }).on('error', (err) => process.stderr.write(`lite watch: ${err.message}\n`)).end();
  }

  private event(e: { type: string; object: V1Node }): void {
    this.rv = e.object.metadata?.resourceVersion ?? this.rv;
    if (e.type === 'BOOKMARK') return;
    const node = this.trim(e.object, prefix);
    if (e.type === 'DELETED') this.objects.delete(node.metadata!.name!);
    else this.objects.set(node.metadata!.name!, node);
    for (const cb of this.changed) cb(node);
  }
}

async function startLite(server: string, stateDir: string, nodes: number): Promise<Running> {
  const { trimNode } = await import('../src/control/kube/desired-peers.js');
  const informer = new LiteInformer(server, trimNode);
  await runPipeline(informer, () => informer.listed, stateDir, nodes, () => informer.start());
  return { restarts: () => 0 };
}

/** Child entry point. */
async function main(argv: readonly string[]): Promise<void> {
  const [mode, server, kubeconfig, stateDir, count] = argv as [ChildMode, string, string, string, string];
  if (mode.endsWith('+small')) setFlagsFromString('--optimize-for-size');
  const nodes = Number(count);
  const kind = mode.replace('+small', '');
  const running = kind === 'bare' ? await startBare(kubeconfig, nodes)
    : kind === 'sync' ? await startSync(kubeconfig, stateDir, nodes)
      : await startLite(server, stateDir, nodes);
  process.on('message', (m: ToChild) => {
    if (m.type === 'expect') {
      pending = { id: m.id, name: m.name, ip: m.ip };
      send({ type: 'armed', id: m.id });
    } else if (m.type === 'report') {
      const end = sample();
      gc();
      send({ type: 'final', end, endAfterGc: sample(), restarts: running.restarts() });
    } else if (m.type === 'exit') {
      process.exit(0);
    }
  });
}

if (process.send) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`kube-scale-agent: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exit(1);
  });
}
