/**
 * Kube mode and the CNI plugin: the plugin asks KubeAgent.podNetwork(), which refuses (so ADD
 * answers 50 with the reason) until the agent is ready — Node without podCIDR, lease not
 * published — and then gives the Node's podCIDR, the cluster network and the pod MTU.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NetworkInterfaceInfo } from 'node:os';
import { join } from 'node:path';
import type { KubeObject } from '../support/fake-apiserver.js';
import { waitFor } from '../support/fake-apiserver-client.js';
import { KubeAgent } from '../../src/agent/kube-mode.js';
import { createNodeApi } from '../../src/control/kube/client.js';
import { makeNodeInformer } from '../../src/control/kube/informer.js';
import type { UnderlayHost } from '../../src/control/underlay.js';
import { silentLogger } from '../../src/log.js';
import { CniPlugin } from '../../src/cni/plugin.js';
import { fakeDataplane, testCluster, testKubeConfig } from '../support/kube-agent-config.js';

const host: UnderlayHost = {
  interfaces: () => ({ eth0: [{ address: '198.18.0.1', family: 'IPv4', internal: false, netmask: '255.255.255.0', mac: '00:00:00:00:00:00', cidr: '198.18.0.1/24' } as NetworkInterfaceInfo] }),
  readText: (p) => (p === '/sys/class/net/eth0/mtu' ? '1500\n' : undefined),
  localAddressFor: async () => '198.18.0.1',
};

function node(podCIDR: string | undefined): KubeObject {
  return {
    apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1', annotations: {} },
    spec: podCIDR ? { podCIDR, podCIDRs: [podCIDR] } : {},
    status: { conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'ok' }] },
  };
}

test('kube mode: ADD answers 50 with the reason until the agent is ready, then the Node\'s podCIDR and the pod MTU', async () => {
  const cluster = await testCluster('ul-kcni-');
  const { server, kc, dir } = cluster;
  const api = createNodeApi(kc);
  server.upsertNode(node(undefined));
  const agent = new KubeAgent(testKubeConfig(dir), {
    api, host, informerBackoffMs: { initialMs: 20, maxMs: 200 },
    makeInformer: (onListed) => makeNodeInformer(kc, { onListed, timeoutSeconds: 60 }),
    openDataplane: fakeDataplane(),
  }, silentLogger);
  const plugin = new CniPlugin({ stateDir: join(dir, 'cni'), log: silentLogger, network: () => agent.podNetwork(), delegate: async () => undefined });
  const add = () => plugin.handle({
    env: { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/proc/self/ns/net', CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni' },
    config: Buffer.from(JSON.stringify({ cniVersion: '1.0.0', name: 'userlay', type: 'userlay' })),
  });
  try {
    await waitFor('the agent to report the missing podCIDR', () => 'unavailable' in agent.podNetwork() && /podCIDR|pod subnet|own node/i.test((agent.podNetwork() as { unavailable: string }).unavailable));
    const early = JSON.parse((await add()).stdout) as { code: number; msg: string };
    assert.equal(early.code, 50);
    assert.match(early.msg, /not ready/);
    server.upsertNode(node('198.19.1.0/24'));
    await agent.started;
    assert.deepEqual(agent.podNetwork(), { subnets: ['198.19.1.0/24'], networks: ['198.19.0.0/16'], mtu: 1450 });
  } finally {
    await agent.stop();
    await cluster.close();
  }
});
