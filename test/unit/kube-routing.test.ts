/**
 * Routing modes in kube mode, against the fake API server: with net-conf Backend.Type host-gw
 * the lease says backend-type host-gw (what flannel's host-gw nodes publish, backend-data
 * null), peers publishing host-gw become routes when on-link and are reported otherwise; with
 * DirectRouting the on-link peer is routed and every peer stays in the FDB.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir, type NetworkInterfaceInfo } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { FakeApiServer, type KubeObject } from '../support/fake-apiserver.js';
import { waitFor } from '../support/fake-apiserver-client.js';
import { FakeRoutes } from '../support/fake-routes.js';
import { KubeAgent } from '../../src/agent/kube-mode.js';
import type { KubeAgentConfig } from '../../src/agent/kube-config.js';
import { createNodeApi } from '../../src/control/kube/client.js';
import { makeNodeInformer } from '../../src/control/kube/informer.js';
import { buildNetConf } from '../../src/control/net-conf.js';
import type { UnderlayHost } from '../../src/control/underlay.js';
import { silentLogger } from '../../src/log.js';
import type { Dataplane, Peer } from '../../src/dataplane/types.js';

const P = 'flannel.alpha.coreos.com';

const host: UnderlayHost = {
  interfaces: () => ({ eth0: [{ address: '198.18.0.1', family: 'IPv4', internal: false, netmask: '255.255.255.0', mac: '00:00:00:00:00:00', cidr: '198.18.0.1/24' } as NetworkInterfaceInfo] }),
  readText: (p) => (p === '/sys/class/net/eth0/mtu' ? '1500\n' : undefined),
  localAddressFor: async () => '198.18.0.1',
};

function node(name: string, subnet: string, ann: Record<string, string>): KubeObject {
  return {
    apiVersion: 'v1', kind: 'Node', metadata: { name, annotations: ann, creationTimestamp: '2026-01-01T00:00:00Z' },
    spec: { podCIDR: subnet, podCIDRs: [subnet] }, status: { conditions: [{ type: 'Ready', status: 'True' }] },
  };
}

async function withAgent(netConf: object, body: (agent: KubeAgent, server: FakeApiServer, routes: FakeRoutes, fdb: () => readonly Peer[]) => Promise<void>): Promise<void> {
  const server = await FakeApiServer.create({ bookmarkIntervalMs: 100 });
  const dir = await mkdtemp(join(tmpdir(), 'ul-krouting-'));
  const kc = new KubeConfig();
  kc.loadFromOptions(server.kubeconfigOptions());
  const conf = buildNetConf({ Network: '198.19.0.0/16', ...netConf });
  const type = conf.backend;
  const data = type === 'host-gw' ? 'null' : JSON.stringify({ VNI: 1, VtepMAC: '02:00:00:00:00:02' });
  server.upsertNode(node('n1', '198.19.1.0/24', {}));
  server.upsertNode(node('n2', '198.19.2.0/24', { [`${P}/backend-type`]: type, [`${P}/backend-data`]: data, [`${P}/public-ip`]: '198.18.0.2' }));
  server.upsertNode(node('n3', '198.19.3.0/24', {
    [`${P}/backend-type`]: type, [`${P}/backend-data`]: data.replace('02"', '03"'), [`${P}/public-ip`]: '198.18.1.3',
  }));
  const routes = new FakeRoutes();
  let peers: readonly Peer[] = [];
  const cfg: KubeAgentConfig = {
    kubeconfig: undefined, nodeName: 'n1', netConf: conf,
    iface: ['eth0'], ifaceRegex: [], ifaceCanReach: undefined, publicIP: undefined, prefix: P,
    stateDir: join(dir, 'state'), subnetFile: join(dir, 'subnet.env'), ipMasq: false, statusAddr: undefined,
    logLevel: 'error', engine: 'js', offloads: 'auto', tunName: 'ultest0', resyncMs: 0,
  };
  const agent = new KubeAgent(cfg, {
    api: createNodeApi(kc), host, routes, informerBackoffMs: { initialMs: 20, maxMs: 200 },
    makeInformer: (onListed) => makeNodeInformer(kc, { onListed, timeoutSeconds: 60 }),
    openDataplane: async (opts) => ({
      options: opts, tunName: opts.tunName, setPeers: (p: readonly Peer[]) => { peers = p; }, peers: () => peers, mtu: () => opts.mtu, setMtu: () => {},
      stats: () => ({ total: { txPackets: 0n, txBytes: 0n, rxPackets: 0n, rxBytes: 0n, drops: {} }, peers: {}, fdbPeers: 0, fdbRoutes: 0 }),
      close: async () => {},
    }) as unknown as Dataplane,
  }, silentLogger);
  try {
    await body(agent, server, routes, () => peers);
  } finally {
    await agent.stop();
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

test('kube host-gw: lease backend-type host-gw with backend-data null; on-link peer routed, off-link reported, FDB empty', async () => {
  await withAgent({ Backend: { Type: 'host-gw' } }, async (agent, server, routes, fdb) => {
    await agent.started;
    const ann = (server.getNode('n1')!.metadata as unknown as { annotations: Record<string, string> }).annotations;
    assert.equal(ann[`${P}/backend-type`], 'host-gw');
    assert.equal(ann[`${P}/backend-data`], 'null');
    await waitFor('n2 routed', () => routes.table.has('198.19.2.0/24'));
    assert.equal(routes.table.get('198.19.2.0/24')!.via, '198.18.0.2');
    assert.equal(routes.table.has('198.19.3.0/24'), false);
    assert.deepEqual(agent.routing()!.notRouted.map((u) => u.name), ['n3']);
    assert.deepEqual(fdb(), []);
    await agent.stop();
    assert.equal(routes.table.size, 0, 'stop removes the routes');
  });
});

test('kube DirectRouting (vxlan): the on-link peer is routed, both stay in the FDB', async () => {
  await withAgent({ Backend: { Type: 'vxlan', DirectRouting: true } }, async (agent, server, routes, fdb) => {
    await agent.started;
    assert.equal((server.getNode('n1')!.metadata as unknown as { annotations: Record<string, string> }).annotations[`${P}/backend-type`], 'vxlan');
    await waitFor('n2 routed', () => routes.table.has('198.19.2.0/24'));
    assert.deepEqual({ d: agent.routing()!.direct, o: agent.routing()!.overlay }, { d: ['n2'], o: ['n3'] });
    assert.deepEqual(fdb().map((p) => p.name), ['n2', 'n3']);
  });
});
