/**
 * FDB: validation, stable counter slots, snapshot bytes, and longest-prefix
 * match — the pure-TS table and, when the addon is built, the C table built
 * from the same snapshot must give the same answers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FDB_HDR_SIZE, FDB_MAGIC, FDB_PEER_SIZE, FDB_ROUTE_SIZE, FdbTable, type FdbDefaults, SlotAllocator, buildFdb } from '../../src/dataplane/fdb.js';
import type { Peer } from '../../src/dataplane/types.js';
import { UserlayError } from '../../src/errors.js';
import { addon } from '../support/addon.js';

const defaults: FdbDefaults = { backend: 'vxlan', port: 8472, vni: 1 };

const noAddon = addon ? false : 'native addon not built (npm run build:native)';

const peer = (name: string, subnets: string[], ip: string, extra: Partial<Peer> = {}): Peer =>
  ({ name, subnets, publicIP: ip, vtepMAC: `0a:58:c6:12:00:${ip.split('.').pop()!.padStart(2, '0').slice(-2)}`, ...extra });

// prefixes of many lengths (/17 /24 /25 /32, v6 /56 /64 /128); no peer's subnet overlaps
// another peer's (the FDB refuses that), but one peer's own subnets may nest (v6)
const overlapping: Peer[] = [
  peer('agg', ['198.19.0.0/17'], '198.18.0.10'),
  peer('n2', ['198.19.130.0/24'], '198.18.0.2'),
  peer('half', ['198.19.131.128/25'], '198.18.0.3'),
  peer('host', ['198.19.131.77/32'], '198.18.0.4'),
  peer('v6agg', ['2001:2:0:100::/56'], '198.18.0.5'),
  peer('v6', ['2001:2:0:200::/64', '2001:2:0:200::77/128'], '198.18.0.6'),
];
const expectations: Array<[string, string | undefined]> = [
  ['198.19.9.9', 'agg'],
  ['198.19.127.255', 'agg'],
  ['198.19.128.1', undefined],
  ['198.19.130.1', 'n2'],
  ['198.19.131.127', undefined],
  ['198.19.131.128', 'half'],
  ['198.19.131.255', 'half'],
  ['198.19.131.77', 'host'],
  ['198.19.131.78', undefined],
  ['198.18.0.2', undefined],
  ['0.0.0.0', undefined],
  ['2001:2:0:100::5', 'v6agg'],
  ['2001:2:0:1ff::1', 'v6agg'],
  ['2001:2:0:200::9', 'v6'],
  ['2001:2:0:200::77', 'v6'],
  ['2001:2:1::1', undefined],
  ['::c613:8201', undefined], // v4 bytes in a v6 address: no cross-family match
];

test('a peer subnet that overlaps another peer\'s or our own is refused, naming both', () => {
  const s = new SlotAllocator(10);
  const cases: Array<[Peer[], string[], RegExp]> = [
    // a /23 around our /24: its datagrams from our own pod range would be trusted
    [[peer('wide', ['198.19.0.0/23'], '198.18.0.2')], ['198.19.1.0/24'], /peer "wide" subnet 198\.19\.0\.0\/23 overlaps this node's own subnet 198\.19\.1\.0\/24/],
    [[peer('narrow', ['198.19.1.128/25'], '198.18.0.2')], ['198.19.1.0/24'], /"narrow".*own subnet 198\.19\.1\.0\/24/],
    [[peer('a', ['198.19.2.0/24'], '198.18.0.2'), peer('b', ['198.19.2.64/26'], '198.18.0.3')], [], /peer "a" subnet 198\.19\.2\.0\/24 overlaps peer "b" subnet 198\.19\.2\.64\/26/],
    [[peer('a', ['198.19.2.0/24'], '198.18.0.2'), peer('b', ['198.19.0.0/16'], '198.18.0.3')], [], /peer "a" .* overlaps peer "b" subnet 198\.19\.0\.0\/16/],
    [[peer('a', ['2001:2:0:100::/64'], '198.18.0.2'), peer('b', ['2001:2::/48'], '198.18.0.3')], [], /peer "a" .* overlaps peer "b"/],
  ];
  for (const [peers, ownSubnets, want] of cases) {
    assert.throws(() => buildFdb(peers, { ...defaults, ownSubnets }, s), (err: unknown) => err instanceof UserlayError && err.code === 'EFDB' && want.test(err.message), String(want));
  }
  // disjoint neighbours of every length are fine
  assert.equal(buildFdb([peer('a', ['198.19.0.0/24'], '198.18.0.2'), peer('b', ['198.19.2.0/23'], '198.18.0.3')], { ...defaults, ownSubnets: ['198.19.1.0/24'] }, s).peers.length, 2);
});

test('peers are checked against our own side: network, underlay IP, VTEP MAC', () => {
  const s = new SlotAllocator(10);
  const own = { ...defaults, networks: ['198.19.0.0/16'], ownPublicIP: '198.18.0.1', ownVtepMAC: '0a:58:c6:12:00:01' };
  const cases: Array<[Peer, RegExp]> = [
    [peer('out', ['198.20.2.0/24'], '198.18.0.2'), /"out" subnet 198\.20\.2\.0\/24 is outside the cluster network \(198\.19\.0\.0\/16\)/],
    [peer('me', ['198.19.2.0/24'], '198.18.0.1'), /"me" publicIP 198\.18\.0\.1 is this node's own/],
    [peer('loop', ['198.19.2.0/24'], '198.19.3.1'), /"loop" publicIP 198\.19\.3\.1 lies inside the cluster network 198\.19\.0\.0\/16/],
    [peer('mac', ['198.19.2.0/24'], '198.18.0.2', { vtepMAC: '0A:58:C6:12:00:01' }), /"mac" vtepMAC 0a:58:c6:12:00:01 is this node's own/],
    [peer('mc', ['198.19.2.0/24'], '198.18.0.2', { vtepMAC: '01:00:5e:00:00:01' }), /"mc" vtepMAC 01:00:5e:00:00:01 is a multicast address/],
    [peer('bc', ['198.19.2.0/24'], '198.18.0.2', { vtepMAC: 'ff:ff:ff:ff:ff:ff' }), /"bc" vtepMAC ff:ff:ff:ff:ff:ff is the broadcast address/],
    [peer('zero', ['198.19.2.0/24'], '198.18.0.2', { vtepMAC: '00:00:00:00:00:00' }), /"zero" vtepMAC 00:00:00:00:00:00 is all zeros/],
  ];
  for (const [p, want] of cases) {
    assert.throws(() => buildFdb([p], own, s), (err: unknown) => err instanceof UserlayError && err.code === 'EFDB' && want.test(err.message), String(want));
  }
  assert.equal(buildFdb([peer('ok', ['198.19.2.0/24'], '198.18.0.2')], own, s).peers.length, 1);
});

test('TS LPM: prefixes of many lengths, /32 and /128, both families', () => {
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
  assert.equal(t.lookup('2001:2:0:101::1'), undefined);
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
  efdb(() => buildFdb([peer('a', ['198.19.2.0/24'], '2001:2::2')], { ...defaults, underlayFamilies: [4] }, s), '"a"', 'IPv6');
  efdb(() => buildFdb([peer('a', ['198.19.1.0/24'], '198.18.0.2')], { ...defaults, ownSubnets: ['198.19.1.0/24'] }, s), '"a"', 'own subnet');
  // udp needs no MAC
  const udp = buildFdb([{ name: 'a', subnets: ['198.19.2.0/24'], publicIP: '198.18.0.2' }], { ...defaults, backend: 'udp', port: 8285 }, s);
  assert.equal(udp.peers[0]!.port, 8285);
  assert.deepEqual([...udp.peers[0]!.mac], [0, 0, 0, 0, 0, 0]);
});

test('peers are canonicalised and get the defaults', () => {
  const t = buildFdb([{ name: 'a', subnets: ['2001:0002:0:10A::/64'], publicIP: '198.18.0.2', vtepMAC: '0A-58-C6-12-00-02' }], defaults, new SlotAllocator(4));
  assert.deepEqual(t.peerList(), [{ name: 'a', subnets: ['2001:2:0:10a::/64'], publicIP: '198.18.0.2', vtepMAC: '0a:58:c6:12:00:02', port: 8472, vni: 1 }]);
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

// --- per-peer record cache (rebuilds pay only for what changed) ---

const v6peer: Peer = { name: 'six', subnets: ['2001:2:0:600::/64', '198.19.200.0/24'], publicIP: '198.18.0.66', vtepMAC: '0a:58:c6:12:00:06', port: 4789, vni: 7 };

test('encode from cached records gives the same bytes as encoding every field', () => {
  const peers = [...overlapping, v6peer];
  const s = new SlotAllocator(100);
  buildFdb(peers, defaults, s); // warm the cache
  const t = buildFdb(peers, defaults, s);
  const fromFields = new FdbTable(t.peers, t.routes, t.freshSlots, t.recycledSlots);
  assert.deepEqual(t.encode(), fromFields.encode());
  assert.equal(t.encode().length, FDB_HDR_SIZE + peers.length * FDB_PEER_SIZE + t.routes.length * FDB_ROUTE_SIZE);
  // slots and peer indexes are patched per build, not taken from the cache
  const reordered = buildFdb([v6peer, ...overlapping], defaults, s);
  assert.deepEqual(reordered.encode(), new FdbTable(reordered.peers, reordered.routes, [], []).encode());
  assert.equal(reordered.peers[0]!.peer.name, 'six');
  assert.equal(reordered.peers[0]!.slot, t.peers.find((p) => p.peer.name === 'six')!.slot);
});

test('a cached peer is validated again when it was changed in place or the defaults differ', () => {
  const s = new SlotAllocator(10);
  const p = { name: 'a', subnets: ['198.19.2.0/24'], publicIP: '198.18.0.2', vtepMAC: '0a:58:c6:12:00:02' } as { -readonly [K in keyof Peer]: Peer[K] };
  assert.equal(buildFdb([p], defaults, s).peers[0]!.port, 8472);
  assert.equal(buildFdb([p], { ...defaults, port: 4789 }, s).peers[0]!.port, 4789, 'defaults are part of the cache key');
  efdb(() => buildFdb([p], { ...defaults, ownSubnets: ['198.19.2.0/24'] }, s), '"a"', 'own subnet');
  p.publicIP = '198.18.0.99';
  assert.equal(buildFdb([p], defaults, s).peers[0]!.peer.publicIP, '198.18.0.99');
  p.publicIP = 'nope';
  efdb(() => buildFdb([p], defaults, s), '"a"', 'publicIP');
  p.publicIP = '198.18.0.2';
  p.subnets = ['198.19.2.0/24', '198.19.3.0/24'];
  assert.deepEqual(buildFdb([p], defaults, s).routes.map((r) => r.cidr.text), ['198.19.2.0/24', '198.19.3.0/24']);
  (p.subnets as string[]).push('198.19.3.0/24'); // mutating the array itself is seen too
  efdb(() => buildFdb([p], defaults, s), '"a"', 'twice');
});

test('checks across peers still run on every build when each peer is cached', () => {
  const s = new SlotAllocator(10);
  const a = peer('a', ['198.19.2.0/24'], '198.18.0.2');
  const b = peer('b', ['198.19.3.0/24'], '198.18.0.3');
  buildFdb([a, b], defaults, s);
  const bSameSubnet = peer('b', ['198.19.2.0/24'], '198.18.0.3');
  efdb(() => buildFdb([a, bSameSubnet], defaults, s), '"a"', '"b"', '198.19.2.0/24');
  efdb(() => buildFdb([a, b, a], defaults, s), '"a"', 'twice');
  efdb(() => buildFdb([a, peer('c', ['198.19.4.0/24'], '198.18.0.2')], defaults, s), '"a"', '"c"', '198.18.0.2');
  assert.deepEqual(buildFdb([b, a], defaults, s).peerList().map((p) => p.name), ['b', 'a']);
});

test('5000 peers: one changed peer shows up in the rebuilt table and its snapshot (TS and native)', () => {
  const ip = (n: number) => `198.${18 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`;
  const peers: Peer[] = Array.from({ length: 5000 }, (_, i) => peer(`n${i}`, [`${ip((1 << 16) + (i + 1) * 8)}/29`], ip(i + 1)));
  const s = new SlotAllocator(8192);
  const first = buildFdb(peers, defaults, s);
  const next = peers.slice();
  next[1234] = { ...peers[1234]!, publicIP: '198.18.200.1' };
  const t = buildFdb(next, defaults, s);
  assert.equal(t.peers.length, 5000);
  assert.equal(t.peers[1234]!.peer.publicIP, '198.18.200.1');
  assert.equal(t.peers[1234]!.slot, first.peers[1234]!.slot);
  assert.equal(t.lookup(`${ip((1 << 16) + 1235 * 8 + 3)}`)?.peer.name, 'n1234');
  assert.deepEqual(t.encode(), new FdbTable(t.peers, t.routes, [], []).encode());
  if (addon) {
    const n = addon.fdbBuild(t.encode());
    assert.equal(addon.fdbPeerByUnderlay(n, '198.18.200.1'), 1234);
    assert.equal(addon.fdbLookup(n, ip((1 << 16) + 1235 * 8 + 3)), 1234);
  }
});

test('SlotAllocator: a clone shares names until it commits; adopt moves the state over', () => {
  const s = new SlotAllocator(8);
  buildFdb([peer('a', ['198.19.1.0/24'], '198.18.0.1'), peer('b', ['198.19.2.0/24'], '198.18.0.2')], defaults, s);
  const trial = s.clone();
  // the trial drops a and adds c: the original must not see either change
  buildFdb([peer('b', ['198.19.2.0/24'], '198.18.0.2'), peer('c', ['198.19.3.0/24'], '198.18.0.3')], defaults, trial);
  assert.deepEqual([s.slotOf('a'), s.slotOf('b'), s.slotOf('c')], [1, 2, undefined]);
  assert.deepEqual([trial.slotOf('a'), trial.slotOf('b'), trial.slotOf('c')], [undefined, 2, 3]);
  // and the original changing after a clone leaves the clone alone
  const other = s.clone();
  buildFdb([peer('a', ['198.19.1.0/24'], '198.18.0.1')], defaults, s);
  assert.equal(other.slotOf('b'), 2);
  assert.equal(s.slotOf('b'), undefined);
  s.adopt(trial);
  assert.deepEqual([s.slotOf('a'), s.slotOf('b'), s.slotOf('c')], [undefined, 2, 3]);
  assert.equal(trial.slotOf('b'), undefined, 'the adopted allocator is left empty');
  // a's slot (1) was freed by the adopted update; a later newcomer gets it
  assert.equal(buildFdb([peer('b', ['198.19.2.0/24'], '198.18.0.2'), peer('c', ['198.19.3.0/24'], '198.18.0.3'), peer('d', ['198.19.4.0/24'], '198.18.0.4')], defaults, s)
    .peers.find((p) => p.peer.name === 'd')!.slot, 1);
});

test('unchanged peers keep their FdbPeer and FdbRoute objects across builds', () => {
  const s = new SlotAllocator(8);
  const a = peer('a', ['198.19.1.0/24'], '198.18.0.1');
  const b = peer('b', ['198.19.2.0/24'], '198.18.0.2');
  const t1 = buildFdb([a, b], defaults, s);
  const t2 = buildFdb([a, { ...b, publicIP: '198.18.0.22' }], defaults, s);
  assert.equal(t2.peers[0], t1.peers[0]);
  assert.equal(t2.routes[0], t1.routes[0]);
  assert.notEqual(t2.peers[1], t1.peers[1]);
  const t3 = buildFdb([b, a], defaults, s); // a moved to index 1: new objects with the new index
  assert.equal(t3.peers[1]!.peer.name, 'a');
  assert.equal(t3.peers[1]!.index, 1);
  assert.equal(t3.routes.find((r) => r.cidr.text === '198.19.1.0/24')!.peer, 1);
});

test('slots: renaming 4,200 of 4,201 peers fits in 4,201 slots (freed first, then reused)', () => {
  const limit = 4201;
  const s = new SlotAllocator(limit);
  const names = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);
  s.commit(s.plan(names('old', limit)).slots);
  const next = ['old0', ...names('new', limit - 1)];
  const plan = s.plan(next);
  assert.equal(plan.slots.size, limit);
  assert.equal(new Set(plan.slots.values()).size, limit, 'every peer has its own slot');
  assert.ok([...plan.slots.values()].every((x) => x >= 1 && x <= limit));
  assert.equal(plan.slots.get('old0'), s.slotOf('old0'), 'a kept peer keeps its slot');
  assert.equal(plan.recycled.length, limit - 1, 'the leaving peers\' slots went to the newcomers');
  s.commit(plan.slots);
  // and back again, then one too many: refused only because the result does not fit
  s.commit(s.plan(names('old', limit)).slots);
  assert.throws(() => s.plan(names('x', limit + 1)), (err: unknown) => err instanceof UserlayError && /too many peers: 4202 > 4201/.test(err.message));
});

test('partialCsum: flags byte 1 of the peer entry (both entries of a dual peer, both encoders), kept by the cache, checked', () => {
  const s = new SlotAllocator(10);
  const dual = peer('d', ['198.19.3.0/24', '2001:2:0:103::/64'], '198.18.0.3',
    { publicIPv6: '2001:2::3', vtepMACv6: '0a:58:c6:12:00:33', partialCsum: true });
  const t = buildFdb([peer('n2', ['198.19.2.0/24'], '198.18.0.2', { partialCsum: true }), peer('k', ['198.19.4.0/24'], '198.18.0.4'), dual],
    { ...defaults, underlayFamilies: [4, 6] }, s);
  const flags = (b: Uint8Array) => Array.from({ length: new DataView(b.buffer).getUint32(4, true) }, (_, i) => b[FDB_HDR_SIZE + i * FDB_PEER_SIZE + 1]);
  assert.deepEqual(flags(t.encode()), [1, 0, 1, 1], 'n2, k, d over IPv4 and over IPv6');
  const single = buildFdb([peer('n2', ['198.19.2.0/24'], '198.18.0.2', { partialCsum: true }), peer('k', ['198.19.4.0/24'], '198.18.0.4')], defaults, s);
  assert.deepEqual(single.encode(), new FdbTable(single.peers, single.routes, [], []).encode(), 'the field-by-field encoder agrees');
  assert.deepEqual(flags(single.encode()), [1, 0]);
  assert.equal(t.peerList()[0]!.partialCsum, true);
  assert.equal(t.peerList()[1]!.partialCsum, undefined, 'absent unless said');
  // a peer changed in place is seen (the cache compares the field)
  const p = peer('n2', ['198.19.2.0/24'], '198.18.0.2') as { -readonly [K in keyof Peer]: Peer[K] };
  assert.equal(buildFdb([p], defaults, s).encode()[FDB_HDR_SIZE + 1], 0);
  p.partialCsum = true;
  assert.equal(buildFdb([p], defaults, s).encode()[FDB_HDR_SIZE + 1], 1);
  efdb(() => buildFdb([peer('x', ['198.19.5.0/24'], '198.18.0.5', { partialCsum: 'yes' as unknown as boolean })], defaults, s), '"x"', 'partialCsum');
  if (addon) addon.fdbBuild(t.encode()); // the C side takes the flag
});
