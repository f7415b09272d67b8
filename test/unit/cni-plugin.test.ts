/**
 * The CNI plugin inside the agent with a fake delegate (no privileges): error codes, the
 * delegate config it records, rollback of a failed ADD, idempotent DEL, GC of exactly the
 * stale attachments, serialisation per attachment, 1.1.0 relabelling.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/log.js';
import { CniPlugin, type NodeNetwork } from '../../src/cni/plugin.js';
import type { DelegateEnv } from '../../src/cni/delegate.js';
import { CniError } from '../../src/cni/errors.js';

const NET: NodeNetwork = { subnets: ['198.19.1.0/24'], networks: ['198.19.0.0/16'], mtu: 1450 };

interface Call { type: string; env: DelegateEnv; config: Record<string, unknown> }

async function harness(opts: { network?: () => NodeNetwork | { unavailable: string }; ip?: string; failAdd?: boolean; gate?: Promise<void>; delegateVersions?: string[] } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'ul-cni-'));
  const calls: Call[] = [];
  let active = 0;
  let maxActive = 0;
  const plugin = new CniPlugin({
    stateDir: dir, log: silentLogger, network: opts.network ?? (() => NET),
    delegate: async (type, env, config) => {
      calls.push({ type, env, config });
      active++;
      maxActive = Math.max(maxActive, active);
      try {
        if (opts.gate) await opts.gate;
        if (env.command === 'VERSION') return { cniVersion: '1.0.0', supportedVersions: opts.delegateVersions ?? ['0.3.1', '0.4.0', '1.0.0'] };
        if (env.command === 'ADD') {
          if (opts.failAdd) throw new CniError(11, 'bridge ADD: boom');
          return { cniVersion: config['cniVersion'], interfaces: [], ips: [{ address: `${opts.ip ?? '198.19.1.2'}/24`, gateway: '198.19.1.1' }] };
        }
        return undefined;
      } finally {
        active--;
      }
    },
  });
  const call = (command: string, conf: Record<string, unknown> = {}, env: Record<string, string> = {}) => plugin.handle({
    env: { CNI_COMMAND: command, CNI_CONTAINERID: 'c1', CNI_NETNS: '/proc/self/ns/net', CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni', ...env },
    config: Buffer.from(JSON.stringify({ cniVersion: '1.0.0', name: 'userlay', type: 'userlay', ...conf })),
  });
  return { dir, calls, plugin, call, maxActive: () => maxActive, close: () => rm(dir, { recursive: true, force: true }) };
}

const codeOf = (a: { exitCode: number; stdout: string }): number => {
  assert.notEqual(a.exitCode, 0, 'an error exits non-zero');
  return (JSON.parse(a.stdout) as { code: number }).code;
};

test('ADD delegates to bridge with host-local over the node subnet, the MTU and routes; the record keeps it', async () => {
  const h = await harness();
  try {
    const a = await h.call('ADD');
    assert.equal(a.exitCode, 0, a.stdout);
    const add = h.calls[0]!;
    assert.equal(add.type, 'bridge');
    assert.equal(add.config['isGateway'], true);
    assert.equal(add.config['hairpinMode'], true);
    assert.equal(add.config['mtu'], 1450);
    assert.equal(add.config['ipMasq'], false);
    assert.deepEqual(add.config['ipam'], {
      type: 'host-local', ranges: [[{ subnet: '198.19.1.0/24', gateway: '198.19.1.1' }]],
      routes: [{ dst: '198.19.0.0/16', gw: '198.19.1.1' }], dataDir: join(h.dir, 'networks'),
    });
    const recs = await h.plugin.records();
    assert.equal(recs.length, 1);
    assert.deepEqual(recs[0]!.delegate, add.config);
  } finally {
    await h.close();
  }
});

test('DEL uses the recorded delegate config even after the subnet changed; a second DEL is a no-op', async () => {
  let net: NodeNetwork = NET;
  const h = await harness({ network: () => net });
  try {
    assert.equal((await h.call('ADD')).exitCode, 0);
    net = { ...NET, subnets: ['198.19.9.0/24'], mtu: 1400 };
    assert.equal((await h.call('DEL')).exitCode, 0);
    const del = h.calls.find((c) => c.env.command === 'DEL')!;
    assert.deepEqual((del.config['ipam'] as { ranges: unknown }).ranges, [[{ subnet: '198.19.1.0/24', gateway: '198.19.1.1' }]]);
    assert.equal(del.config['mtu'], 1450);
    assert.deepEqual(await h.plugin.records(), []);
    const before = h.calls.length;
    const again = await h.call('DEL');
    assert.deepEqual(again, { exitCode: 0, stdout: '' });
    assert.equal(h.calls.length, before, 'nothing left to release');
    assert.equal((await h.call('DEL', {}, { CNI_CONTAINERID: 'never-added' })).exitCode, 0, 'unknown container');
  } finally {
    await h.close();
  }
});

test('a failed ADD is rolled back: delegate DEL, no record', async () => {
  for (const variant of [{ failAdd: true }, { ip: '198.19.7.9' }]) {
    const h = await harness(variant);
    try {
      const a = await h.call('ADD');
      assert.notEqual(a.exitCode, 0);
      assert.deepEqual(h.calls.map((c) => c.env.command), ['ADD', 'DEL']);
      assert.deepEqual(await h.plugin.records(), []);
    } finally {
      await h.close();
    }
  }
});

test('error codes: bad JSON 6, unknown cniVersion 1, missing CNI_NETNS 4, missing name 7, no subnet 50, not ready 50', async () => {
  const h = await harness();
  try {
    const bad = await h.plugin.handle({ env: { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c', CNI_NETNS: '/x', CNI_IFNAME: 'eth0', CNI_PATH: '/p' }, config: Buffer.from('{"cniVersion":') });
    assert.equal(codeOf(bad), 6);
    assert.equal(codeOf(await h.call('ADD', { cniVersion: '9.9.9' })), 1);
    assert.equal(codeOf(await h.call('ADD', {}, { CNI_NETNS: '' })), 4);
    assert.equal(codeOf(await h.call('ADD', { name: '' })), 7);
    assert.equal(codeOf(await h.call('ADD', {}, { CNI_CONTAINERID: 'a/b' })), 4);
    assert.equal(codeOf(await h.call('CHECK', { cniVersion: '0.3.1', prevResult: {} })), 1, 'CHECK needs 0.4.0');
    assert.equal(codeOf(await h.call('CHECK', { prevResult: {} }, { CNI_CONTAINERID: 'unknown' })), 3);
    assert.equal(codeOf(await h.call('GC', { cniVersion: '1.0.0', 'cni.dev/valid-attachments': [] })), 1, 'GC needs 1.1.0');
    assert.equal(h.calls.length, 0, 'nothing was delegated');
  } finally {
    await h.close();
  }
  const noSubnet = await harness({ network: () => ({ ...NET, subnets: [] }) });
  try {
    const a = await noSubnet.call('ADD');
    assert.equal(codeOf(a), 50);
    assert.match(JSON.parse(a.stdout).msg, /no pod subnet/);
    assert.equal(codeOf(await noSubnet.call('STATUS')), 50);
  } finally {
    await noSubnet.close();
  }
  const notReady = await harness({ network: () => ({ unavailable: 'lease not published' }) });
  try {
    const a = await notReady.call('ADD');
    assert.equal(codeOf(a), 50);
    assert.match(JSON.parse(a.stdout).msg, /not ready: lease not published/);
    assert.equal((await notReady.call('DEL')).exitCode, 0, 'DEL needs no readiness');
  } finally {
    await notReady.close();
  }
});

test('1.1.0 requests are delegated in 1.0.0 and answered in 1.1.0; errors carry the request version', async () => {
  const h = await harness();
  try {
    const a = await h.call('ADD', { cniVersion: '1.1.0' });
    assert.equal(JSON.parse(a.stdout).cniVersion, '1.1.0');
    assert.equal(h.calls[0]!.config['cniVersion'], '1.0.0');
    assert.equal(JSON.parse((await h.call('ADD', { cniVersion: '0.4.0' }, { CNI_NETNS: '' })).stdout).cniVersion, '0.4.0');
  } finally {
    await h.close();
  }
});

test('GC releases exactly the attachments not in cni.dev/valid-attachments', async () => {
  const h = await harness();
  try {
    for (const id of ['a', 'b', 'c']) assert.equal((await h.call('ADD', {}, { CNI_CONTAINERID: id })).exitCode, 0);
    const gc = await h.call('GC', { cniVersion: '1.1.0', 'cni.dev/valid-attachments': [{ containerID: 'b', ifname: 'eth0' }] });
    assert.equal(gc.exitCode, 0, gc.stdout);
    assert.deepEqual((await h.plugin.records()).map((r) => r.containerID), ['b']);
    assert.deepEqual(h.calls.filter((c) => c.env.command === 'DEL').map((c) => c.env.containerID).sort(), ['a', 'c']);
    assert.equal(h.calls.filter((c) => c.env.command === 'GC').length, 0, 'a 1.0.0 delegate gets no GC');
  } finally {
    await h.close();
  }
});

test('GC is forwarded to a delegate that speaks 1.1.0, with the valid list', async () => {
  const h = await harness({ delegateVersions: ['1.0.0', '1.1.0'] });
  try {
    const valid = [{ containerID: 'b', ifname: 'eth0' }];
    assert.equal((await h.call('GC', { cniVersion: '1.1.0', 'cni.dev/valid-attachments': valid })).exitCode, 0);
    const gc = h.calls.filter((c) => c.env.command === 'GC');
    assert.equal(gc.length, 1);
    assert.equal(gc[0]!.config['cniVersion'], '1.1.0');
    assert.deepEqual(gc[0]!.config['cni.dev/valid-attachments'], valid);
    assert.equal((gc[0]!.config['ipam'] as { type: string }).type, 'host-local');
  } finally {
    await h.close();
  }
});

test('requests for one attachment are serialised, different attachments run concurrently', async () => {
  let open!: () => void;
  const gate = new Promise<void>((resolve) => { open = resolve; });
  const h = await harness({ gate });
  try {
    const same = [h.call('ADD'), h.call('DEL')];
    const other = h.call('ADD', {}, { CNI_CONTAINERID: 'c2' });
    await new Promise((resolve) => setImmediate(resolve));
    for (let i = 0; i < 5 && h.calls.length < 2; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.deepEqual(h.calls.map((c) => `${c.env.containerID}:${c.env.command}`).sort(), ['c1:ADD', 'c2:ADD'], 'the DEL of c1 waits for its ADD');
    open();
    const [add, del] = await Promise.all(same);
    assert.equal(add!.exitCode, 0);
    assert.equal(del!.exitCode, 0);
    assert.equal((await other).exitCode, 0);
    assert.equal(h.maxActive(), 2);
    assert.deepEqual((await h.plugin.records()).map((r) => r.containerID), ['c2']);
  } finally {
    await h.close();
  }
});
