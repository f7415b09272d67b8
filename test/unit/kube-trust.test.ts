/**
 * Kube mode keeps to what the data plane trusts: every peer set computePeers hands over is one
 * the FDB accepts (so one bad Node never blocks every update), Nodes the FDB would refuse are
 * skipped with a reason, and a cluster network over the underlay keeps the agent unready with
 * its data plane unopened.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir, type NetworkInterfaceInfo } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { computePeers, nodeToPeer } from '../../src/control/kube/desired-peers.js';
import { KubeAgent } from '../../src/agent/kube-mode.js';
import { createNodeApi } from '../../src/control/kube/client.js';
import { makeNodeInformer } from '../../src/control/kube/informer.js';
import { SlotAllocator, buildFdb } from '../../src/dataplane/fdb.js';
import { createLogger } from '../../src/log.js';
import { FakeApiServer } from '../support/fake-apiserver.js';
import { waitFor } from '../support/fake-apiserver-client.js';
import { P, cfg, mac, node } from '../support/kube-nodes.js';

const own = { ...cfg, ownPublicIP: '198.18.0.1', ownVtepMAC: mac(1) };

test('nodeToPeer: a VTEP MAC that is ours, multicast, broadcast or zero, and a public IP inside the network, are skipped', () => {
  const data = (m: string) => JSON.stringify({ VNI: 1, VtepMAC: m });
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ 'backend-data': data(mac(1)) }, /VtepMAC 0a:58:c6:13:00:01 is this node's own/],
    [{ 'backend-data': data('01:00:5e:00:00:07') }, /multicast/],
    [{ 'backend-data': data('ff:ff:ff:ff:ff:ff') }, /broadcast/],
    [{ 'backend-data': data('00:00:00:00:00:00') }, /all zeros/],
    [{ 'public-ip': '198.19.7.1' }, /public IP 198\.19\.7\.1 lies inside the cluster network 198\.19\.0\.0\/16/],
  ];
  for (const [ann, want] of cases) {
    const v = nodeToPeer(node(7, { ann }), own);
    assert.equal(v.ok, false, String(want));
    if (!v.ok) assert.match(v.reason, want);
  }
  assert.equal(nodeToPeer(node(7), own).ok, true);
});

test('computePeers: whatever the Nodes claim, the data plane accepts the set it computes', () => {
  let seed = 12345;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const lengths = [16, 20, 22, 23, 24, 25, 26, 32];
  for (let round = 0; round < 200; round++) {
    const nodes = Array.from({ length: 2 + rand(30) }, (_, k) => {
      const i = 2 + k;
      const len = lengths[rand(lengths.length)]!;
      const base = (198 << 24 | 19 << 16 | rand(8) << 8 | rand(256)) >>> 0;
      const net = (base & (len === 32 ? 0xffffffff : ~((1 << (32 - len)) - 1))) >>> 0;
      const podCIDR = `${net >>> 24}.${(net >>> 16) & 255}.${(net >>> 8) & 255}.${net & 255}/${len}`;
      const ip = rand(10) === 0 ? '198.18.0.1' : `198.18.${rand(3)}.${rand(256)}`; // sometimes ours
      const m = rand(10) === 0 ? mac(1) : mac(rand(256));
      return node(i, { podCIDR, ann: { 'public-ip': ip, 'backend-data': JSON.stringify({ VNI: 1, VtepMAC: m }) }, created: `2026-01-01T00:00:${String(rand(60)).padStart(2, '0')}Z` });
    });
    const r = computePeers(nodes, own);
    assert.doesNotThrow(() => buildFdb(r.peers, {
      backend: 'vxlan', port: 8472, vni: 1, underlayFamilies: [4], ownSubnets: own.ownSubnets, networks: ['198.19.0.0/16'],
      ownPublicIP: own.ownPublicIP, ownVtepMAC: own.ownVtepMAC,
    }, new SlotAllocator(100)), `round ${round}`);
  }
});

test('agent: a cluster network over the underlay keeps it unready, says why, and opens no data plane', async () => {
  const server = await FakeApiServer.create({ bookmarkIntervalMs: 100 });
  const dir = await mkdtemp(join(tmpdir(), 'ul-kube-trust-'));
  const logs: string[] = [];
  const opened: unknown[] = [];
  const kc = new KubeConfig();
  kc.loadFromOptions(server.kubeconfigOptions());
  const api = createNodeApi(kc);
  server.upsertNode({
    apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1', annotations: {} }, spec: { podCIDR: '198.19.1.0/24', podCIDRs: ['198.19.1.0/24'] },
    status: { conditions: [{ type: 'Ready', status: 'True' }] },
  });
  const agent = new KubeAgent({
    kubeconfig: undefined, nodeName: 'n1',
    // the network 198.18.0.0/15 holds the underlay address 198.18.0.1 as well as the pod subnets
    netConf: { networks: { 4: '198.18.0.0/15' }, backend: 'vxlan', vni: 1, port: 8472, mtu: undefined },
    iface: ['eth0'], ifaceRegex: [], ifaceCanReach: undefined, publicIP: undefined, prefix: P,
    stateDir: join(dir, 'state'), subnetFile: join(dir, 'subnet.env'), ipMasq: false, statusAddr: undefined,
    logLevel: 'debug', engine: 'js', offloads: 'auto', tunName: 'ultest0', resyncMs: 0,
  }, {
    api,
    makeInformer: (onListed) => makeNodeInformer(kc, { onListed, timeoutSeconds: 60 }),
    openDataplane: async (o) => {
      opened.push(o);
      throw new Error('must not be opened');
    },
    host: {
      interfaces: () => ({ eth0: [{ address: '198.18.0.1', family: 'IPv4', internal: false, netmask: '255.255.255.0', mac: '00:00:00:00:00:00', cidr: '198.18.0.1/24' } as NetworkInterfaceInfo] }),
      readText: (p) => (p === '/sys/class/net/eth0/mtu' ? '1500\n' : undefined),
      localAddressFor: async () => '198.18.0.1',
    },
  }, createLogger('debug', (l) => logs.push(l)));
  try {
    await waitFor('the overlap to be logged', () => logs.some((l) => l.includes('cluster network overlaps the underlay')));
    const r = agent.ready();
    assert.equal(r.ready, false);
    assert.ok(r.reasons.some((x) => /net-conf Network: 198\.18\.0\.0\/15 contains the underlay address 198\.18\.0\.1/.test(x)), r.reasons.join('; '));
    assert.equal(opened.length, 0);
    assert.equal(server.requests.filter((q) => q.method === 'PATCH').length, 0, 'no lease published for a node that cannot forward');
  } finally {
    await agent.stop();
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
