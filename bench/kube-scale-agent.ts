/**
 * The agent side of the kube scale benchmark, run in a forked child (see
 * bench/kube-scale.ts for the method). Two modes:
 *
 *   bare  makeInformer() + CoreV1Api.listNode(); "FDB updated" = the informer
 *         callback for the node fired with the expected state.
 *   sync  the agent's pipeline as src/agent/kube-mode.ts wires it:
 *         makeNodeInformer -> RestartingInformer -> PeerSync -> stub data plane
 *         (buildFdb + encode, the work the real setPeers does in JS) -> snapshot save.
 *
 * IPC: the parent sends `expect` (a node name and the public IP it must have,
 * or null for "gone"); the child acks with `armed` and reports `seen` with its
 * timestamp once the FDB (or cache) shows it.
 */
import { CoreV1Api, KubeConfig, makeInformer, type V1Node } from '@kubernetes/client-node';
import { silentLogger } from '../src/log.js';
import type { Peer } from '../src/dataplane/types.js';
import { buildFdb, SlotAllocator } from '../src/dataplane/fdb.js';
import { createNodeApi } from '../src/control/kube/client.js';
import { makeNodeInformer, RestartingInformer } from '../src/control/kube/informer.js';
import { PeerSync } from '../src/control/kube/sync.js';
import { SnapshotStore } from '../src/control/snapshot-store.js';
import { FLANNEL_ANNOTATION_PREFIX } from '../src/control/kube/lease.js';
import { nodeName, podSubnet, SCALE_NETWORK, underlayIP, vtepMac } from './kube-scale-nodes.js';

/** Which agent the child runs. */
export type ChildMode = 'bare' | 'sync';

/** Parent -> child messages. */
export type ToChild =
  | { type: 'expect'; id: number; name: string; ip: string | null }
  | { type: 'report' }
  | { type: 'exit' };

/** Child -> parent messages. */
export type FromChild =
  | { type: 'synced'; ms: number; peers: number; rss: number; rssAfterGc: number; heapUsedAfterGc: number; baselineRss: number }
  | { type: 'armed'; id: number }
  | { type: 'seen'; id: number; at: number; fdbMs?: number }
  | { type: 'final'; rss: number; restarts: number };

const now = (): number => performance.timeOrigin + performance.now();
const prefix = FLANNEL_ANNOTATION_PREFIX;
const OWN = 0;

function send(m: FromChild): void {
  process.send!(m);
}

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

const gc = (): void => (globalThis as { gc?: () => void }).gc?.();

/** RSS with every module loaded and nothing listed yet (client-node's own footprint). */
let baselineRss = 0;

async function synced(startedAt: number, peers: number): Promise<void> {
  const ms = now() - startedAt;
  const rss = process.memoryUsage().rss;
  gc();
  const after = process.memoryUsage();
  send({ type: 'synced', ms, peers, rss, rssAfterGc: after.rss, heapUsedAfterGc: after.heapUsed, baselineRss });
}

/** Start the bare informer; returns how to look a node's IP up and the restart count. */
async function startBare(kc: KubeConfig, nodes: number): Promise<{ ipOf: (n: string) => string | undefined; restarts: () => number }> {
  const core = kc.makeApiClient(CoreV1Api);
  const inf = makeInformer<V1Node>(kc, '/api/v1/nodes', () => core.listNode());
  const ipOf = (name: string): string | undefined => inf.get(name)?.metadata?.annotations?.[`${prefix}/public-ip`];
  let restarts = 0;
  inf.on('error', () => {
    restarts += 1;
    setTimeout(() => void inf.start(), 500);
  });
  inf.on('change', () => settle(ipOf, now()));
  const t0 = now();
  await inf.start();
  await synced(t0, inf.list().length - (nodes > 0 ? 1 : 0));
  return { ipOf, restarts: () => restarts };
}

/** Start the agent pipeline with a stub data plane. */
async function startSync(kc: KubeConfig, stateDir: string, nodes: number): Promise<{ restarts: () => number }> {
  const ownSubnets = [podSubnet(OWN)];
  const slots = new SlotAllocator(8192); // DataplaneOptions.maxPeers default
  const store = new SnapshotStore(stateDir);
  const lease = {
    nodeName: nodeName(OWN), subnets: ownSubnets, networks: [SCALE_NETWORK], publicIP: underlayIP(OWN),
    vtepMAC: vtepMac(OWN), backend: 'vxlan' as const, vni: 1, port: 8472, mtu: 1450,
  };
  let fdbBytes: Uint8Array = new Uint8Array(0);
  let byName = new Map<string, Peer>();
  let first: ((count: number) => void) | undefined;
  const firstFull = new Promise<number>((resolve) => (first = resolve));
  /** The stub data plane: the JS half of the real setPeers (validate, slots, encode). */
  const setPeers = (peers: readonly Peer[]): void => {
    const started = now();
    const table = buildFdb(peers, { backend: 'vxlan', port: 8472, vni: 1, underlayFamily: 4, ownSubnets }, slots);
    fdbBytes = table.encode();
    const at = now();
    byName = new Map(peers.map((p) => [p.name, p]));
    settle((name) => byName.get(name)?.publicIP, at, at - started);
    if (first && peers.length >= nodes - 1) {
      first(peers.length);
      first = undefined;
    }
  };
  const api = createNodeApi(kc);
  let listed = false;
  const informer = makeNodeInformer(kc, () => api.listNodes(), {
    onListed: () => {
      listed = true;
      sync.trigger();
    },
  });
  const sync = new PeerSync({
    cache: informer,
    config: { nodeName: nodeName(OWN), prefix, backend: 'vxlan', networks: { 4: SCALE_NETWORK }, ownSubnets, underlayFamily: 4 },
    apply: async (peers) => {
      setPeers(peers);
      await store.save(lease, peers);
    },
    log: silentLogger,
    cacheSynced: () => listed,
  });
  informer.on('change', () => sync.trigger());
  const restarting = new RestartingInformer({ informer, log: silentLogger });
  const t0 = now();
  await restarting.start();
  const count = await firstFull;
  await synced(t0, count);
  if (fdbBytes.length === 0) throw new Error('stub data plane got no FDB');
  return { restarts: () => restarting.restarts };
}

/** Child entry point. */
export async function runChild(mode: ChildMode, kubeconfig: string, stateDir: string, nodes: number): Promise<void> {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  gc();
  baselineRss = process.memoryUsage().rss;
  const ctl = mode === 'bare' ? await startBare(kc, nodes) : await startSync(kc, stateDir, nodes);
  process.on('message', (m: ToChild) => {
    if (m.type === 'expect') {
      pending = { id: m.id, name: m.name, ip: m.ip };
      send({ type: 'armed', id: m.id });
    } else if (m.type === 'report') {
      send({ type: 'final', rss: process.memoryUsage().rss, restarts: ctl.restarts() });
    } else if (m.type === 'exit') {
      process.exit(0);
    }
  });
}
