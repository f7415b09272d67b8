/**
 * ip-masq in kube mode: the pod egress table is replaced once the Node's podCIDR is known,
 * before "ready" (a failing nft keeps the agent unready with the reason and is retried), and
 * deleted on stop. The setting comes from --ip-masq or net-conf IPMasq; the CNI delegate's
 * bridge never masquerades on its own.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir, type NetworkInterfaceInfo } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { FakeApiServer, type KubeObject } from '../support/fake-apiserver.js';
import { waitFor } from '../support/fake-apiserver-client.js';
import { KubeAgent } from '../../src/agent/kube-mode.js';
import { parseKubeConfig } from '../../src/agent/kube-config.js';
import { parseStaticConfig } from '../../src/agent/static-mode.js';
import { createNodeApi } from '../../src/control/kube/client.js';
import { makeNodeInformer } from '../../src/control/kube/informer.js';
import { parseNetConf } from '../../src/control/net-conf.js';
import type { Nftables } from '../../src/control/host/nftables.js';
import type { UnderlayHost } from '../../src/control/underlay.js';
import { silentLogger } from '../../src/log.js';
import { CniPlugin } from '../../src/cni/plugin.js';
import { parseNetworkConfig } from '../../src/cni/config.js';
import { fakeDataplane, testKubeConfig } from '../support/kube-agent-config.js';

const host: UnderlayHost = {
  interfaces: () => ({ eth0: [{ address: '198.18.0.1', family: 'IPv4', internal: false, netmask: '255.255.255.0', mac: '00:00:00:00:00:00', cidr: '198.18.0.1/24' } as NetworkInterfaceInfo] }),
  readText: (p) => (p === '/sys/class/net/eth0/mtu' ? '1500\n' : undefined),
  localAddressFor: async () => '198.18.0.1',
};

const NODE: KubeObject = {
  apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1', annotations: {} },
  spec: { podCIDR: '198.19.1.0/24', podCIDRs: ['198.19.1.0/24'] },
  status: { conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'ok' }] },
};

/** Records every script; fails while `failing` is set. */
function fakeNft(): Nftables & { scripts: string[]; failing: boolean } {
  const nft = {
    scripts: [] as string[],
    failing: false,
    async run(script: string) {
      if (nft.failing) throw Object.assign(new Error('nft -f -: Operation not permitted'), { code: 'ENFT' });
      nft.scripts.push(script);
    },
    async listTable() { return undefined; },
  };
  return nft;
}

async function withAgent(ipMasq: boolean, nft: Nftables, body: (agent: KubeAgent) => Promise<void>): Promise<void> {
  const server = await FakeApiServer.create({ bookmarkIntervalMs: 100 });
  const dir = await mkdtemp(join(tmpdir(), 'ul-kmasq-'));
  const kc = new KubeConfig();
  kc.loadFromOptions(server.kubeconfigOptions());
  server.upsertNode(NODE);
  const agent = new KubeAgent(testKubeConfig(dir, { ipMasq }), {
    api: createNodeApi(kc), host, nftables: nft, informerBackoffMs: { initialMs: 20, maxMs: 200 },
    makeInformer: (onListed) => makeNodeInformer(kc, { onListed, timeoutSeconds: 60 }),
    openDataplane: fakeDataplane(),
  }, silentLogger);
  try {
    await body(agent);
  } finally {
    await agent.stop();
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

test('kube mode --ip-masq: the table is replaced before ready and deleted on stop', async () => {
  const nft = fakeNft();
  await withAgent(true, nft, async (agent) => {
    await agent.started;
    assert.equal(agent.ready().ready, true);
    assert.equal(nft.scripts.length, 1);
    assert.match(nft.scripts[0]!, /^table inet userlay \{\}\ndelete table inet userlay\ntable inet userlay \{/);
    assert.match(nft.scripts[0]!, /ip saddr 198\.19\.1\.0\/24 ip daddr != \{ 198\.19\.0\.0\/16, 224\.0\.0\.0\/4 \} masquerade/);
    await agent.stop();
    assert.equal(nft.scripts.length, 2);
    assert.equal(nft.scripts[1], 'table inet userlay {}\ndelete table inet userlay\n');
  });
});

test('kube mode --ip-masq: nft failing keeps the agent unready with the reason, and is retried', async () => {
  const nft = fakeNft();
  nft.failing = true;
  await withAgent(true, nft, async (agent) => {
    await waitFor('unready because of ip-masq', () => agent.ready().reasons.some((r) => /^ip-masq failed: .*Operation not permitted/.test(r)));
    assert.ok('unavailable' in agent.podNetwork(), 'the CNI plugin does not attach pods meanwhile');
    nft.failing = false;
    await agent.started;
    assert.equal(agent.ready().ready, true);
    assert.equal(nft.scripts.length, 1);
  });
});

test('kube mode without ip-masq: a leftover table is removed at start and nothing on stop', async () => {
  const nft = fakeNft();
  await withAgent(false, nft, async (agent) => {
    await agent.started;
    assert.deepEqual(nft.scripts, ['table inet userlay {}\ndelete table inet userlay\n']);
    await agent.stop();
    assert.equal(nft.scripts.length, 1);
  });
});

test('ip-masq setting: --ip-masq or net-conf IPMasq (kube), --ip-masq (static)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ul-kmasq-'));
  try {
    const file = join(dir, 'net-conf.json');
    await writeFile(file, JSON.stringify({ Network: '198.19.0.0/16', IPMasq: true }));
    const base = ['--node-name', 'n1'];
    assert.equal((await parseKubeConfig([...base, '--net-conf', file], {})).ipMasq, true);
    assert.equal((await parseKubeConfig([...base, '--network', '198.19.0.0/16'], {})).ipMasq, false);
    assert.equal((await parseKubeConfig([...base, '--network', '198.19.0.0/16', '--ip-masq'], {})).ipMasq, true);
    assert.equal(parseNetConf('{"Network":"198.19.0.0/16","IPMasq":false}', 'f').ipMasq, false);
    assert.throws(() => parseNetConf('{"Network":"198.19.0.0/16","IPMasq":"yes"}', 'f'), /net-conf IPMasq: "yes" is not true or false/);
    const st = ['--node', 'n1', '--public-ip', '198.18.0.1', '--subnet', '198.19.1.0/24', '--network', '198.19.0.0/16', '--peers', file];
    assert.equal(parseStaticConfig(st).ipMasq, false);
    assert.equal(parseStaticConfig([...st, '--ip-masq']).ipMasq, true);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the CNI delegate (bridge) masquerades only when the conflist says so', () => {
  const plugin = new CniPlugin({ stateDir: '/nonexistent', log: silentLogger, network: () => ({ unavailable: 'test' }) });
  const net = { subnets: ['198.19.1.0/24'], networks: ['198.19.0.0/16'], mtu: 1450 };
  const conf = (extra: object) => parseNetworkConfig(JSON.stringify({ cniVersion: '1.0.0', name: 'userlay', type: 'userlay', ...extra }));
  assert.equal(plugin.delegateConfig(conf({}), net)['ipMasq'], false);
  assert.equal(plugin.delegateConfig(conf({ ipMasq: true }), net)['ipMasq'], true);
});
