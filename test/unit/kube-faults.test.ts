/**
 * The kube-mode agent (real client-node, real informer, real lease/sync code) against the
 * in-process API server, with a fake data plane and a fake host: HTTP 500 on watch, sockets
 * dropped mid-stream, 410 mid-stream, API down at start with and without a snapshot.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NetworkInterfaceInfo } from 'node:os';
import { KubeConfig } from '@kubernetes/client-node';
import { FakeApiServer, type KubeObject } from '../support/fake-apiserver.js';
import { waitFor } from '../support/fake-apiserver-client.js';
import { KubeAgent, type KubeAgentDeps } from '../../src/agent/kube-mode.js';
import type { KubeAgentConfig } from '../../src/agent/kube-config.js';
import { createNodeApi } from '../../src/control/kube/client.js';
import { makeNodeInformer } from '../../src/control/kube/informer.js';
import { SnapshotStore, type OwnLease } from '../../src/control/snapshot-store.js';
import type { UnderlayHost } from '../../src/control/underlay.js';
import { createLogger } from '../../src/log.js';
import type { Dataplane, DataplaneOptions, Peer } from '../../src/dataplane/types.js';

const P = 'userlay.io';
const VTEP = '0a:58:c6:13:01:00';

function nodeObj(i: number, annotated = true): KubeObject {
  const annotations: Record<string, string> = annotated ? {
    [`${P}/backend-type`]: 'vxlan',
    [`${P}/backend-data`]: JSON.stringify({ VNI: 1, VtepMAC: `0a:58:c6:13:0${i}:00` }),
    [`${P}/public-ip`]: `198.18.0.${i}`,
    [`${P}/kube-subnet-manager`]: 'true',
  } : {};
  return {
    apiVersion: 'v1', kind: 'Node',
    metadata: { name: `n${i}`, annotations },
    spec: { podCIDR: `198.19.${i}.0/24`, podCIDRs: [`198.19.${i}.0/24`] },
    status: { conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'ok' }] },
  };
}

function peer(i: number): Peer {
  return { name: `n${i}`, subnets: [`198.19.${i}.0/24`], publicIP: `198.18.0.${i}`, vtepMAC: `0a:58:c6:13:0${i}:00`, vni: 1 };
}

const host: UnderlayHost = {
  interfaces: () => ({ eth0: [{ address: '198.18.0.1', family: 'IPv4', internal: false, netmask: '255.255.255.0', mac: '00:00:00:00:00:00', cidr: '198.18.0.1/24' } as NetworkInterfaceInfo] }),
  readText: (p) => (p === '/sys/class/net/eth0/mtu' ? '1500\n' : undefined),
  localAddressFor: async () => '198.18.0.1',
};

interface FakeDp extends Dataplane {
  history: Array<readonly Peer[]>;
  closed: boolean;
}

function fakeDataplane(opts: DataplaneOptions): FakeDp {
  let current: readonly Peer[] = [];
  let mtu = opts.mtu;
  const dp: FakeDp = {
    options: opts, tunName: opts.tunName, history: [], closed: false,
    mtu: () => mtu,
    setMtu(m) { mtu = m; },
    setPeers(p) { current = p; dp.history.push(p); },
    peers: () => current,
    stats: () => ({ total: { txPackets: 0n, txBytes: 0n, rxPackets: 0n, rxBytes: 0n, drops: {} }, peers: {}, fdbPeers: current.length, fdbRoutes: current.length }),
    close: async () => { dp.closed = true; },
  };
  return dp;
}

interface Harness {
  agent: KubeAgent;
  opened: FakeDp[];
  dir: string;
  logs: string[];
  /** Errors the informer reported, in order (seen just before RestartingInformer sees each). */
  informerErrors: unknown[];
  /** GET requests for the own Node the agent started (whether they were answered or not). */
  getNodeCalls: number;
}

function config(dir: string): KubeAgentConfig {
  return {
    kubeconfig: undefined, nodeName: 'n1',
    netConf: { networks: { 4: '198.19.0.0/16' }, backend: 'vxlan', vni: 1, port: 8472, mtu: undefined },
    iface: ['eth0'], ifaceRegex: [], ifaceCanReach: undefined, publicIP: undefined, prefix: P,
    stateDir: join(dir, 'state'), subnetFile: join(dir, 'subnet.env'), ipMasq: false, statusAddr: undefined,
    logLevel: 'debug', engine: 'js', offloads: 'auto', tunName: 'ultest0', resyncMs: 0,
  };
}

function startAgent(server: FakeApiServer, dir: string, idleMs?: number): Harness {
  const kc = new KubeConfig();
  kc.loadFromOptions(server.kubeconfigOptions());
  const api = createNodeApi(kc);
  const opened: FakeDp[] = [];
  const logs: string[] = [];
  const informerErrors: unknown[] = [];
  const counted = {
    getNodeCalls: 0,
    getNode(name: string) {
      counted.getNodeCalls++;
      return api.getNode(name);
    },
  };
  const deps: KubeAgentDeps = {
    api: { getNode: (name) => counted.getNode(name), patchNodeStatus: (name, patch) => api.patchNodeStatus(name, patch) },
    makeInformer: (onListed) => {
      const informer = makeNodeInformer(kc, { onListed, timeoutSeconds: 60, ...(idleMs ? { idleMs } : {}) });
      // registered before RestartingInformer's handler: both run in one synchronous loop
      informer.on('error', (err) => informerErrors.push(err));
      return informer;
    },
    openDataplane: async (opts) => {
      const dp = fakeDataplane(opts);
      opened.push(dp);
      return dp;
    },
    host,
    informerBackoffMs: { initialMs: 20, maxMs: 200 },
  };
  const agent = new KubeAgent(config(dir), deps, createLogger('debug', (l) => logs.push(l)));
  return { agent, opened, dir, logs, informerErrors, get getNodeCalls() { return counted.getNodeCalls; } };
}

function peerNames(h: Harness): string[] {
  return (h.agent.dataplane()?.peers() ?? []).map((p) => p.name);
}

async function withCluster(fn: (server: FakeApiServer, dir: string) => Promise<void>): Promise<void> {
  const server = await FakeApiServer.create({ bookmarkIntervalMs: 100 });
  const dir = await mkdtemp(join(tmpdir(), 'ul-kube-'));
  try {
    await fn(server, dir);
  } finally {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

test('agent: lease published by merge patch, peers synced, add/update/delete followed, subnet.env written', () => withCluster(async (server, dir) => {
  server.upsertNode(nodeObj(1, false));
  server.upsertNode(nodeObj(2));
  const h = startAgent(server, dir);
  try {
    await h.agent.started;
    assert.deepEqual(h.agent.ready(), { ready: true, reasons: [] });
    assert.deepEqual(h.agent.dataplane()!.peers(), [peer(2)]);

    const patches = server.requests.filter((r) => r.method === 'PATCH');
    assert.equal(patches.length, 1);
    assert.equal(patches[0]!.path, '/api/v1/nodes/n1/status');
    assert.equal(patches[0]!.contentType, 'application/merge-patch+json');
    const me = server.getNode('n1')! as unknown as { metadata: { annotations: Record<string, string> }; status: { conditions: Array<Record<string, string>> } };
    assert.equal(me.metadata.annotations[`${P}/backend-type`], 'vxlan');
    assert.equal(me.metadata.annotations[`${P}/public-ip`], '198.18.0.1');
    assert.equal(me.metadata.annotations[`${P}/kube-subnet-manager`], 'true');
    const data = JSON.parse(me.metadata.annotations[`${P}/backend-data`]!) as { VNI: number; VtepMAC: string };
    assert.equal(data.VNI, 1);
    assert.match(data.VtepMAC, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
    const conds = me.status.conditions;
    assert.ok(conds.some((c) => c['type'] === 'Ready' && c['status'] === 'True'), 'kubelet conditions kept');
    assert.ok(conds.some((c) => c['type'] === 'NetworkUnavailable' && c['status'] === 'False' && c['reason'] === 'UserlayIsUp'));
    assert.equal((await readFile(join(dir, 'state', 'vtep-mac'), 'utf8')).trim(), data.VtepMAC, 'VTEP MAC persisted');

    const watches = server.requests.filter((r) => r.query['watch'] === 'true');
    assert.ok(watches.length >= 1 && watches.every((w) => w.query['allowWatchBookmarks'] === 'true'), 'watch asks for bookmarks');
    assert.equal(await readFile(join(dir, 'subnet.env'), 'utf8'),
      'FLANNEL_NETWORK=198.19.0.0/16\nFLANNEL_SUBNET=198.19.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n');

    server.upsertNode(nodeObj(3));
    await waitFor('n3 added', () => peerNames(h).join() === 'n2,n3');
    const n2 = nodeObj(2);
    n2.metadata.annotations = { ...(n2.metadata.annotations as Record<string, string>), [`${P}/public-ip`]: '198.18.0.22' };
    server.upsertNode(n2);
    await waitFor('n2 public IP updated', () => h.agent.dataplane()!.peers()[0]!.publicIP === '198.18.0.22');
    server.deleteNode('n3');
    await waitFor('n3 deleted', () => peerNames(h).join() === 'n2');
    // own Node deleted and registered again (bare): the lease is published again
    // (the watch delivers DELETED then ADDED; the bare ADDED is what triggers it)
    server.deleteNode('n1');
    server.upsertNode(nodeObj(1, false));
    await waitFor('lease re-published', () => {
      const a = (server.getNode('n1')!.metadata as { annotations?: Record<string, string> }).annotations ?? {};
      return a[`${P}/backend-type`] === 'vxlan' && a[`${P}/public-ip`] === '198.18.0.1';
    });
    // the snapshot follows every change: after the agent's queued saves are flushed
    // (stop() flushes), it holds the last applied set
    await h.agent.stop();
    const saved = ((await new SnapshotStore(join(dir, 'state')).load())?.peers ?? []).map((p) => p.name);
    assert.deepEqual(saved, ['n2'], 'snapshot follows every change');
    assert.match(h.agent.metrics(), /^userlay_informer_restarts_total 0$/m);
  } finally {
    await h.agent.stop();
  }
}));

test('faults: HTTP 500 on watch, socket dropped mid-stream, 410 mid-stream; informer restarts and converges', () => withCluster(async (server, dir) => {
  server.upsertNode(nodeObj(1, false));
  server.upsertNode(nodeObj(2));
  const h = startAgent(server, dir);
  try {
    await h.agent.started;

    // 500 on the next watches: client-node stops the informer; ours restarts it with backoff
    server.failNextWatches(3, 500);
    server.closeWatchStreams();
    await waitFor('restarted after 500s', () => /^userlay_informer_restarts_total [1-9]/m.test(h.agent.metrics()));
    server.upsertNode(nodeObj(3));
    await waitFor('n3 after 500s', () => peerNames(h).join() === 'n2,n3');

    // socket destroyed mid-stream
    server.dropWatchStreams();
    server.upsertNode(nodeObj(4));
    await waitFor('n4 after drop', () => peerNames(h).join() === 'n2,n3,n4');

    // ERROR 410 mid-stream, a delete the client misses: the relist converges
    await server.waitForWatches(1);
    server.expireWatchStreams();
    server.deleteNode('n3');
    await waitFor('n3 gone after 410 relist', () => peerNames(h).join() === 'n2,n4');
    assert.ok(h.logs.some((l) => l.includes('node informer stopped; restarting')));

    // a deliberate stop stays stopped: stop() ends the reflector's run synchronously (its
    // loop sees the run change and reports nothing) and RestartingInformer's timer, so once
    // stop() has resolved no restart and no watch can follow. The server seeing the watch
    // end proves the abort went out.
    const watchRequests = (): number => server.requests.filter((r) => r.query['watch'] === 'true').length;
    await server.waitForWatches(1); // the re-watch after the relist has reached the server
    const watchesBefore = watchRequests();
    const restartsBefore = /^userlay_informer_restarts_total (\d+)$/m.exec(h.agent.metrics())![1];
    const errorsBefore = h.informerErrors.length;
    await h.agent.stop();
    await waitFor('the server saw the watch end', () => server.activeWatches === 0);
    server.dropWatchStreams();
    assert.equal(h.informerErrors.length, errorsBefore, 'a deliberate stop is not reported as an error');
    assert.equal(watchRequests(), watchesBefore, 'no watch after the stop');
    assert.match(h.agent.metrics(), new RegExp(`^userlay_informer_restarts_total ${restartsBefore}$`, 'm'));
  } finally {
    await h.agent.stop();
  }
}));

test('faults: API down at start with a snapshot: forward from it, then reconcile when the API is back', () => withCluster(async (server, dir) => {
  server.upsertNode(nodeObj(1, false));
  server.upsertNode(nodeObj(2));
  await server.stop();
  const own: OwnLease = {
    nodeName: 'n1', subnets: ['198.19.1.0/24'], networks: ['198.19.0.0/16'], publicIP: '198.18.0.1', vtepMAC: VTEP,
    backend: 'vxlan', vni: 1, port: 8472, mtu: 1450, underlayMtu: 1500,
  };
  await new SnapshotStore(join(dir, 'state')).save(own, [peer(2), peer(9)]);
  await writeFile(join(dir, 'state', 'vtep-mac'), VTEP + '\n');
  const h = startAgent(server, dir);
  try {
    await waitFor('data plane from snapshot', () => h.opened.length === 1);
    assert.deepEqual(h.opened[0]!.peers(), [peer(2), peer(9)]);
    assert.deepEqual(h.opened[0]!.options.ownSubnets, ['198.19.1.0/24']);
    const r = h.agent.ready();
    assert.equal(r.ready, false);
    assert.ok(r.reasons.some((x) => /API server/.test(x)), r.reasons.join('; '));

    await server.start();
    await h.agent.started;
    assert.equal(h.opened.length, 1, 'same lease: the snapshot data plane is kept');
    assert.equal(h.opened[0]!.closed, false);
    await waitFor('n9 (deleted while down) removed', () => peerNames(h).join() === 'n2');
    assert.ok(h.agent.ready().ready);
  } finally {
    await h.agent.stop();
  }
}));

test('faults: API down at start without a snapshot: nothing configured, retries, then comes up', () => withCluster(async (server, dir) => {
  server.upsertNode(nodeObj(1, false));
  server.upsertNode(nodeObj(2));
  await server.stop();
  const h = startAgent(server, dir);
  try {
    // the second GET of the own Node is only sent once the first has failed and been
    // handled, so by then the agent has decided what to do without an identity
    await waitFor('a retry of the own Node', () => h.getNodeCalls >= 2);
    assert.equal(h.opened.length, 0, 'no data plane without identity');
    assert.equal(h.agent.ready().ready, false);
    assert.ok(h.logs.some((l) => l.includes('waiting for own node') && l.includes('unreachable')));
    await server.start();
    await h.agent.started;
    assert.equal(h.opened.length, 1);
    assert.deepEqual(peerNames(h), ['n2']);
  } finally {
    await h.agent.stop();
  }
}));

test('identity: no podCIDR yet keeps the agent not ready and waiting, then it proceeds', () => withCluster(async (server, dir) => {
  const bare = nodeObj(1, false);
  bare.spec = {};
  server.upsertNode(bare);
  const h = startAgent(server, dir);
  try {
    await waitFor('waiting logged', () => h.logs.some((l) => l.includes('no podCIDR yet')));
    assert.ok(h.agent.ready().reasons.some((x) => /no podCIDR yet/.test(x)));
    assert.equal(h.opened.length, 0);
    server.upsertNode(nodeObj(1, false));
    await h.agent.started;
    assert.deepEqual(h.opened[0]!.options.ownSubnets, ['198.19.1.0/24']);
  } finally {
    await h.agent.stop();
  }
}));

test('faults: a silent watch (half-open socket) is aborted and restarted', () => withCluster(async (server, dir) => {
  server.bookmarkIntervalMs = 0;
  server.upsertNode(nodeObj(1, false));
  server.upsertNode(nodeObj(2));
  const h = startAgent(server, dir, 300);
  try {
    await h.agent.started;
    await waitFor('restarted after silence', () => /^userlay_informer_restarts_total [1-9]/m.test(h.agent.metrics()));
    assert.ok(h.logs.some((l) => l.includes('node informer stopped; restarting')));
    server.upsertNode(nodeObj(3));
    await waitFor('n3 after watchdog restarts', () => peerNames(h).join() === 'n2,n3');
  } finally {
    await h.agent.stop();
  }
}));

test('faults: stop() while the informer is still listing leaves no watch open', () => withCluster(async (server) => {
  server.upsertNode(nodeObj(2));
  const kc = new KubeConfig();
  kc.loadFromOptions(server.kubeconfigOptions());
  const informer = makeNodeInformer(kc, { timeoutSeconds: 60 });
  const errors: Error[] = [];
  informer.on('error', (err) => errors.push(err as Error));
  // start() lists first; stop() lands while the list is in flight. start() decides whether to
  // watch synchronously once its list has ended, so when it has resolved no watch can follow
  const started = informer.start();
  await informer.stop();
  await started;
  assert.equal(server.requests.filter((r) => r.query['watch'] === 'true').length, 0, 'no watch was opened after the stop');
  assert.equal(server.activeWatches, 0);
  assert.deepEqual(errors, [], 'a deliberate stop is not an error');
}));
