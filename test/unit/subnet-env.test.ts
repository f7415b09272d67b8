import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pack } from 'msgpackr';
import { gatewayCidr, renderSubnetEnv, writeSubnetEnv } from '../../src/control/subnet-env.js';
import { SnapshotStore, type OwnLease } from '../../src/control/snapshot-store.js';
import type { Peer } from '../../src/dataplane/types.js';

test('gatewayCidr writes the subnet as its .1 address, as flannel does', () => {
  assert.equal(gatewayCidr('198.19.1.0/24'), '198.19.1.1/24');
  assert.equal(gatewayCidr('2001:2:0:101::/64'), '2001:2:0:101::1/64');
});

test('renderSubnetEnv: flannel variable names, IPv6 only when enabled', () => {
  assert.equal(renderSubnetEnv({ networks: { 4: '198.19.0.0/16' }, ownSubnets: ['198.19.1.0/24'], mtu: 1450, ipMasq: false }),
    'FLANNEL_NETWORK=198.19.0.0/16\nFLANNEL_SUBNET=198.19.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n');
  const dual = renderSubnetEnv({ networks: { 4: '198.19.0.0/16', 6: '2001:2:0:100::/56' }, ownSubnets: ['198.19.1.0/24', '2001:2:0:101::/64'], mtu: 1430, ipMasq: true });
  assert.equal(dual, 'FLANNEL_NETWORK=198.19.0.0/16\nFLANNEL_SUBNET=198.19.1.1/24\nFLANNEL_IPV6_NETWORK=2001:2:0:100::/56\n' +
    'FLANNEL_IPV6_SUBNET=2001:2:0:101::1/64\nFLANNEL_MTU=1430\nFLANNEL_IPMASQ=true\n');
});

test('writeSubnetEnv replaces the file atomically and leaves no temporary file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ul-env-'));
  try {
    const path = join(dir, 'run', 'subnet.env');
    await writeSubnetEnv(path, { networks: { 4: '198.19.0.0/16' }, ownSubnets: ['198.19.1.0/24'], mtu: 1450, ipMasq: false });
    await writeSubnetEnv(path, { networks: { 4: '198.19.0.0/16' }, ownSubnets: ['198.19.2.0/24'], mtu: 1450, ipMasq: false });
    assert.match(await readFile(path, 'utf8'), /^FLANNEL_SUBNET=198\.19\.2\.1\/24$/m);
    assert.deepEqual(await readdir(join(dir, 'run')), ['subnet.env']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

const own: OwnLease = {
  nodeName: 'n1', subnets: ['198.19.1.0/24'], networks: ['198.19.0.0/16'], publicIP: '198.18.0.1', vtepMAC: '0a:58:c6:13:01:00',
  backend: 'vxlan', vni: 1, port: 8472, mtu: 1450,
};

test('SnapshotStore: save/load round trip, none -> undefined, corrupt -> ESNAPSHOT', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ul-snap-'));
  try {
    const store = new SnapshotStore(join(dir, 'state'));
    assert.equal(await store.load(), undefined);
    const peers: Peer[] = [
      { name: 'n2', subnets: ['198.19.2.0/24'], publicIP: '198.18.0.2', vtepMAC: '0a:58:c6:13:02:00', vni: 1 },
      { name: 'n3', subnets: ['198.19.3.0/24'], publicIP: '198.18.0.3', vtepMAC: undefined, port: 9000 },
    ];
    await store.save(own, peers, 1234);
    const got = await store.load();
    assert.deepEqual(got, { own, savedAt: 1234, peers: [peers[0], { name: 'n3', subnets: ['198.19.3.0/24'], publicIP: '198.18.0.3', port: 9000 }] });
    assert.deepEqual(await readdir(join(dir, 'state')), ['fdb-snapshot.msgpack']);

    await store.save(own, [], 99);
    assert.deepEqual((await store.load())!.peers, []);

    // background saves coalesce: the last request wins
    const errors: unknown[] = [];
    for (let k = 0; k < 5; k++) store.saveLatest(own, peers.slice(0, k % 2), (e) => errors.push(e));
    store.saveLatest(own, [peers[1]!], (e) => errors.push(e));
    await store.flush();
    assert.deepEqual(errors, []);
    assert.deepEqual((await store.load())!.peers.map((p) => p.name), ['n3']);

    await writeFile(store.path, Buffer.from([0xc1, 0xff, 0x00]));
    await assert.rejects(store.load(), (e: Error & { code?: string }) => e.code === 'ESNAPSHOT');
    await writeFile(store.path, pack({ version: 99 }));
    await assert.rejects(store.load(), (e: Error & { code?: string }) => e.code === 'ESNAPSHOT' && /unsupported version 99/.test(e.message));
    await writeFile(store.path, pack({ version: 1, own, peers: [{ name: 3 }] }));
    await assert.rejects(store.load(), /a peer is malformed/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
