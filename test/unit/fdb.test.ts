/**
 * FDB: validation, stable counter slots, snapshot bytes, and longest-prefix
 * match — the pure-TS table and, when the addon is built, the C table built
 * from the same snapshot must give the same answers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type NativeAddon, loadAddon } from '../../src/dataplane/addon.js';
import { FDB_HDR_SIZE, FDB_MAGIC, FDB_PEER_SIZE, FDB_ROUTE_SIZE, type FdbDefaults, SlotAllocator, buildFdb } from '../../src/dataplane/fdb.js';
import type { Peer } from '../../src/dataplane/types.js';
import { UserlayError } from '../../src/errors.js';

const defaults: FdbDefaults = { backend: 'vxlan', port: 8472, vni: 1 };

function maybeAddon(): NativeAddon | undefined {
  try {
    return loadAddon();
  } catch {
    return undefined;
  }
}
const addon = maybeAddon();
const noAddon = addon ? false : 'native addon not built (npm run build:native)';

const peer = (name: string, subnets: string[], ip: string, extra: Partial<Peer> = {}): Peer =>
  ({ name, subnets, publicIP: ip, vtepMAC: `0a:58:c6:12:00:${ip.split('.').pop()!.padStart(2, '0').slice(-2)}`, ...extra });

// overlapping v4 prefixes, a /32 inside a /25 inside a /24 inside a /16, and v6 /48 + /64 + /128
const overlapping: Peer[] = [
  peer('agg', ['198.19.0.0/16'], '198.18.0.10'),
  peer('n2', ['198.19.2.0/24'], '198.18.0.2'),
  peer('half', ['198.19.2.128/25'], '198.18.0.3'),
  peer('host', ['198.19.2.77/32'], '198.18.0.4'),
  peer('v6agg', ['fd00::/48'], '198.18.0.5'),
  peer('v6', ['fd00:0:0:2::/64', 'fd00:0:0:2::77/128'], '198.18.0.6'),
];
const expectations: Array<[string, string | undefined]> = [
  ['198.19.9.9', 'agg'],
  ['198.19.2.1', 'n2'],
  ['198.19.2.127', 'n2'],
  ['198.19.2.128', 'half'],
  ['198.19.2.255', 'half'],
  ['198.19.2.77', 'host'],
  ['198.19.2.78', 'n2'],
  ['198.18.0.2', undefined],
  ['0.0.0.0', undefined],
  ['fd00::5', 'v6agg'],
  ['fd00:0:0:2::9', 'v6'],
  ['fd00:0:0:2::77', 'v6'],
  ['fd00:1::1', undefined],
  ['::c613:202', undefined], // v4 bytes in a v6 address: no cross-family match
];

test('TS LPM: overlapping prefixes, /32 and /128, both families', () => {
  const t = buildFdb(overlapping, defaults, new SlotAllocator(100));
  for (const [addr, want] of expectations) assert.equal(t.lookup(addr)?.peer.name, want, addr);
  assert.equal(t.routes.length, 7);
});

test('native LPM agrees with the TS table on the same snapshot', { skip: noAddon }, () => {
  const t = buildFdb(overlapping, defaults, new SlotAllocator(100));
  const n = addon!.fdbBuild(t.encode());
  for (const [addr, want] of expectations) {
    const idx = addon!.fdbLookup(n, addr);
    assert.equal(idx < 0 ? undefined : t.peers[idx]!.peer.name, want, addr);
  }
  assert.equal(t.peers[addon!.fdbPeerByUnderlay(n, '198.18.0.3')]!.peer.name, 'half');
  assert.equal(addon!.fdbPeerByUnderlay(n, '198.18.0.99'), -1);
});

test('empty table: every lookup misses (TS and native)', () => {
  const t = buildFdb([], defaults, new SlotAllocator(10));
  assert.equal(t.lookup('198.19.1.1'), undefined);
  assert.equal(t.lookup('fd00::1'), undefined);
  assert.deepEqual([...t.encode()], [0x55, 0x4c, 0x46, 0x31, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  if (addon) {
    const n = addon.fdbBuild(t.encode());
    assert.equal(addon.fdbLookup(n, '198.19.1.1'), -1);
    assert.equal(addon.fdbLookup(n, '::'), -1);
  }
});

test('snapshot bytes follow struct ul_fdb_snapshot_hdr / ul_fdb_peer / ul_fdb_route', () => {
  const t = buildFdb([peer('n2', ['198.19.2.0/24'], '198.18.0.2', { port: 0x1234, vni: 0x010203 })], defaults, new SlotAllocator(10));
  const b = t.encode();
  assert.equal(b.length, FDB_HDR_SIZE + FDB_PEER_SIZE + FDB_ROUTE_SIZE);
  const dv = new DataView(b.buffer);
  assert.equal(dv.getUint32(0, true), FDB_MAGIC);
  assert.equal(Buffer.from(b.subarray(0, 4)).toString('latin1'), 'ULF1');
  const p = Buffer.from(b.subarray(16, 56)).toString('hex');
  assert.equal(p,
    '04' + '00' + '3412' + 'c6120002' + '00'.repeat(12) + '0a58c6120002' + '0000' + '03020100' + '01000000' + '00000000');
  const r = Buffer.from(b.subarray(56, 80)).toString('hex');
  assert.equal(r, '04' + '18' + '0000' + '00000000' + 'c6130200' + '00'.repeat(12));
  if (addon) {
    assert.equal(addon.constants.FDB_MAGIC, FDB_MAGIC);
    assert.equal(addon.constants.FDB_HDR_SIZE, FDB_HDR_SIZE);
    assert.equal(addon.constants.FDB_PEER_SIZE, FDB_PEER_SIZE);
    assert.equal(addon.constants.FDB_ROUTE_SIZE, FDB_ROUTE_SIZE);
  }
});

test('native build rejects a corrupt snapshot with EINVAL', { skip: noAddon }, () => {
  const good = buildFdb([peer('n2', ['198.19.2.0/24'], '198.18.0.2')], defaults, new SlotAllocator(10)).encode();
  const badMagic = Uint8Array.from(good);
  badMagic[0] = 0;
  assert.throws(() => addon!.fdbBuild(badMagic), { code: 'EINVAL' });
  assert.throws(() => addon!.fdbBuild(good.subarray(0, good.length - 1)), { code: 'EINVAL' });
  const hostBits = Uint8Array.from(good);
  hostBits[16 + 40 + 8 + 3] = 5; // route 198.19.2.5/24
  assert.throws(() => addon!.fdbBuild(hostBits), { code: 'EINVAL' });
});

function efdb(fn: () => unknown, ...parts: string[]): void {
  assert.throws(fn, (err: unknown) => err instanceof UserlayError && err.code === 'EFDB' && parts.every((p) => err.message.includes(p)),
    `expected EFDB mentioning ${parts.join(', ')}`);
}

test('validation: duplicate subnet names both peers; bad entries name the peer', () => {
  const s = new SlotAllocator(10);
  efdb(() => buildFdb([peer('a', ['198.19.2.0/24'], '198.18.0.2'), peer('b', ['198.19.2.0/24'], '198.18.0.3')], defaults, s), '"a"', '"b"', '198.19.2.0/24');
  efdb(() => buildFdb([peer('a', ['198.19.2.0/24', '198.19.2.0/24'], '198.18.0.2')], defaults, s), '"a"', 'twice');
  efdb(() => buildFdb([peer('a', ['198.19.2.1/24'], '198.18.0.2')], defaults, s), '"a"', 'host bits');
  efdb(() => buildFdb([peer('a', ['198.19.2.0/24'], '198.18.0.2'), peer('a', ['198.19.3.0/24'], '198.18.0.3')], defaults, s), '"a"', 'twice');
  efdb(() => buildFdb([peer('a', ['198.19.2.0/24'], '198.18.0.2'), peer('b', ['198.19.3.0/24'], '198.18.0.2')], defaults, s), '"a"', '"b"', '198.18.0.2');
  efdb(() => buildFdb([{ name: 'a', subnets: ['198.19.2.0/24'], publicIP: '198.18.0.2' }], defaults, s), '"a"', 'vtepMAC');
  efdb(() => buildFdb([peer('a', ['198.19.2.0/24'], '198.18.0.2', { vtepMAC: 'nope' })], defaults, s), '"a"', 'vtepMAC');
  efdb(() => buildFdb([peer('a', ['198.19.2.0/24'], '198.18.0.2', { port: 70000 })], defaults, s), '"a"', 'port');
  efdb(() => buildFdb([peer('a', ['198.19.2.0/24'], '198.18.0.2', { vni: 1 << 24 })], defaults, s), '"a"', 'vni');
  efdb(() => buildFdb([peer('a', ['198.19.2.0/24'], '198.18.0.256')], defaults, s), '"a"', 'publicIP');
  efdb(() => buildFdb([peer('a', [], '198.18.0.2')], defaults, s), '"a"', 'subnet');
  efdb(() => buildFdb([peer('a', ['198.19.2.0/24'], 'fd00::2')], { ...defaults, underlayFamily: 4 }, s), '"a"', 'IPv6');
  efdb(() => buildFdb([peer('a', ['198.19.1.0/24'], '198.18.0.2')], { ...defaults, ownSubnets: ['198.19.1.0/24'] }, s), '"a"', 'own subnet');
  // udp needs no MAC
  const udp = buildFdb([{ name: 'a', subnets: ['198.19.2.0/24'], publicIP: '198.18.0.2' }], { ...defaults, backend: 'udp', port: 8285 }, s);
  assert.equal(udp.peers[0]!.port, 8285);
  assert.deepEqual([...udp.peers[0]!.mac], [0, 0, 0, 0, 0, 0]);
});

test('peers are canonicalised and get the defaults', () => {
  const t = buildFdb([{ name: 'a', subnets: ['FD00:0:0:2::/64'], publicIP: '198.18.0.2', vtepMAC: '0A-58-C6-12-00-02' }], defaults, new SlotAllocator(4));
  assert.deepEqual(t.peerList(), [{ name: 'a', subnets: ['fd00:0:0:2::/64'], publicIP: '198.18.0.2', vtepMAC: '0a:58:c6:12:00:02', port: 8472, vni: 1 }]);
});

test('counter slots: stable by name, freed slots reused by a later update only, failed builds change nothing', () => {
  const s = new SlotAllocator(3);
  const slots = (peers: Peer[]) => Object.fromEntries(buildFdb(peers, defaults, s).peers.map((p) => [p.peer.name, p.slot]));
  const a = peer('a', ['198.19.1.0/24'], '198.18.0.1');
  const b = peer('b', ['198.19.2.0/24'], '198.18.0.2');
  const c = peer('c', ['198.19.3.0/24'], '198.18.0.3');
  const d = peer('d', ['198.19.4.0/24'], '198.18.0.4');
  assert.deepEqual(slots([a, b]), { a: 1, b: 2 });
  assert.deepEqual(slots([b, a]), { a: 1, b: 2 }, 'order does not matter');
  // a leaves and c arrives in one update: c must not take a's slot yet
  assert.deepEqual(slots([b, c]), { b: 2, c: 3 });
  // a rejected update leaves the allocator alone
  efdb(() => buildFdb([b, c, peer('x', ['198.19.3.0/24'], '198.18.0.9')], defaults, s), '"c"', '"x"');
  assert.equal(s.slotOf('x'), undefined);
  // now slot 1 (freed by an earlier update) is reused
  assert.deepEqual(slots([b, c, d]), { b: 2, c: 3, d: 1 });
  efdb(() => buildFdb([a, b, c, d], defaults, s), 'too many peers');
  assert.deepEqual(slots([b, c, d]), { b: 2, c: 3, d: 1 });
  const t = buildFdb([b, c, d], defaults, s);
  assert.deepEqual(t.freshSlots, []);
  assert.deepEqual([...t.slotNames()].sort(), [[1, 'd'], [2, 'b'], [3, 'c']]);
});

test('clone/adopt let a caller build against a trial allocator', () => {
  const s = new SlotAllocator(8);
  buildFdb([peer('a', ['198.19.1.0/24'], '198.18.0.1')], defaults, s);
  const trial = s.clone();
  buildFdb([peer('b', ['198.19.2.0/24'], '198.18.0.2')], defaults, trial);
  assert.equal(s.slotOf('b'), undefined);
  assert.equal(s.slotOf('a'), 1);
  s.adopt(trial);
  assert.equal(s.slotOf('b'), 2);
  assert.equal(s.slotOf('a'), undefined);
});
