/**
 * Kube mode and mixed underlay MTUs, against the in-process API server: the agent publishes its
 * underlay MTU (userlay.io/underlay-mtu), starts with what its own underlay allows, and when a
 * Node with a smaller underlay appears lowers the TUN MTU, subnet.env and the CNI plugin's pod
 * MTU at once; a Node publishing nonsense is kept as a peer with the MTU ignored and a warning
 * naming it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { NetworkInterfaceInfo } from 'node:os';
import { join } from 'node:path';
import type { KubeObject } from '../support/fake-apiserver.js';
import { waitFor } from '../support/fake-apiserver-client.js';
import { KubeAgent } from '../../src/agent/kube-mode.js';
import { createNodeApi } from '../../src/control/kube/client.js';
import { makeNodeInformer } from '../../src/control/kube/informer.js';
import type { UnderlayHost } from '../../src/control/underlay.js';
import { createLogger } from '../../src/log.js';
import { fakeDataplane, newTun, testCluster, testKubeConfig } from '../support/kube-agent-config.js';

const host: UnderlayHost = {
  interfaces: () => ({ eth0: [{ address: '198.18.0.1', family: 'IPv4', internal: false, netmask: '255.255.255.0', mac: '00:00:00:00:00:00', cidr: '198.18.0.1/24' } as NetworkInterfaceInfo] }),
  readText: (p) => (p === '/sys/class/net/eth0/mtu' ? '9001\n' : undefined),
  localAddressFor: async () => '198.18.0.1',
};

function node(i: number, underlayMtu?: string): KubeObject {
  const P = 'userlay.io';
  return {
    apiVersion: 'v1', kind: 'Node',
    metadata: {
      name: `n${i}`,
      annotations: i === 1 ? {} : {
        [`${P}/backend-type`]: 'vxlan', [`${P}/backend-data`]: JSON.stringify({ VNI: 1, VtepMAC: `0a:58:c6:13:00:0${i}` }),
        [`${P}/public-ip`]: `198.18.0.${i}`, [`${P}/kube-subnet-manager`]: 'true',
        ...(underlayMtu !== undefined ? { [`${P}/underlay-mtu`]: underlayMtu } : {}),
        ...(i === 2 ? { [`${P}/partial-csum`]: 'true' } : {}), // n2 is a userlay node, the others say nothing
      },
    },
    spec: { podCIDR: `198.19.${i}.0/24`, podCIDRs: [`198.19.${i}.0/24`] },
    status: { conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'ok' }] },
  };
}

test('kube mode: a Node with a smaller underlay lowers TUN, subnet.env and pod MTU; a bad underlay-mtu is ignored with a warning', async () => {
  const cluster = await testCluster('ul-kmtu-');
  const { server, kc, dir } = cluster;
  const lines: string[] = [];
  const log = createLogger('info', (l) => lines.push(l));
  const tun = newTun();
  server.upsertNode(node(1));
  server.upsertNode(node(2));
  const subnetFile = join(dir, 'subnet.env');
  const agent = new KubeAgent(testKubeConfig(dir, { subnetFile, logLevel: 'info' }), {
    api: createNodeApi(kc), host, informerBackoffMs: { initialMs: 20, maxMs: 200 },
    makeInformer: (onListed) => makeNodeInformer(kc, { onListed, timeoutSeconds: 60 }),
    openDataplane: fakeDataplane(tun),
  }, log);
  const envMtu = () => Number(/^FLANNEL_MTU=(\d+)$/m.exec(readFileSync(subnetFile, 'utf8'))?.[1]);
  const podMtu = () => (agent.podNetwork() as { mtu?: number }).mtu;
  try {
    await agent.started;
    // n2 publishes nothing: it counts as our 9001
    assert.equal(tun.options?.underlayMtu, 9001, 'the data plane learns our underlay MTU (per-peer path MTUs)');
    assert.equal(podMtu(), 9001 - 50);
    assert.equal(envMtu(), 9001 - 50);
    const own = server.getNode('n1') as { metadata?: { annotations?: Record<string, string> } } | undefined;
    assert.equal(own?.metadata?.annotations?.['userlay.io/underlay-mtu'], '9001', 'published in the lease');
    assert.equal(own?.metadata?.annotations?.['userlay.io/partial-csum'], 'true', 'the capability is published too');

    server.upsertNode(node(3, '1500'));
    await waitFor('the pod MTU lowered for n3', () => podMtu() === 1450);
    const partial = (name: string) => agent.dataplane()?.peers().find((p) => p.name === name)?.partialCsum;
    assert.equal(partial('n2'), true, 'n2 said so');
    assert.equal(partial('n3'), undefined, 'n3 did not: complete checksums');
    assert.deepEqual(tun.sets, [1450]);
    await waitFor('subnet.env rewritten', () => envMtu() === 1450);
    await waitFor('the decision in force names n3', () => agent.mtu()?.limitedBy === 'n3');
    assert.ok(lines.some((l) => l.includes('pod MTU lowered to 1450')));

    server.upsertNode(node(4, 'jumbo'));
    await waitFor('n4 as a peer', () => agent.dataplane()?.peers().some((p) => p.name === 'n4') === true);
    await waitFor('a warning naming n4', () => lines.some((l) => l.includes('"level":"warn"') && l.includes('node \\"n4\\" userlay.io/underlay-mtu')));
    server.deleteNode('n3');
    await waitFor('n3 gone', () => agent.dataplane()?.peers().every((p) => p.name !== 'n3') === true);
    assert.equal(podMtu(), 1450, 'never raised while running');
    assert.deepEqual(tun.sets, [1450]);
  } finally {
    await agent.stop();
    await cluster.close();
  }
});

test('kube mode: a Backend.MTU larger than our own underlay carries is kept, with a warning that names both', async () => {
  const cluster = await testCluster('ul-kmtu-fixed-');
  const lines: string[] = [];
  const log = createLogger('info', (l) => lines.push(l));
  const tun = newTun();
  const small: UnderlayHost = { ...host, readText: (p) => (p === '/sys/class/net/eth0/mtu' ? '1500\n' : undefined) };
  cluster.server.upsertNode(node(1));
  const netConf = { networks: { 4: '198.19.0.0/16' }, backend: 'vxlan', vni: 1, port: 8472, mtu: 9000 } as const;
  const agent = new KubeAgent(testKubeConfig(cluster.dir, { netConf, logLevel: 'info' }), {
    api: createNodeApi(cluster.kc), host: small, informerBackoffMs: { initialMs: 20, maxMs: 200 },
    makeInformer: (onListed) => makeNodeInformer(cluster.kc, { onListed, timeoutSeconds: 60 }),
    openDataplane: fakeDataplane(tun),
  }, log);
  try {
    await agent.started;
    assert.equal(tun.mtu, 9000, 'the configured MTU is used');
    const warn = lines.find((l) => l.includes('"level":"warn"') && l.includes('Backend.MTU 9000'));
    assert.ok(warn, `no warning about Backend.MTU: ${lines.join('\n')}`);
    assert.match(warn, /eth0 \(MTU 1500\) carries: 1450/);
  } finally {
    await agent.stop();
    await cluster.close();
  }
});
