/**
 * Wire format through the addon's encap/decap (the one codec both engines
 * use). The expected frames are written out by hand from RFC 7348 §5:
 *
 *   VXLAN header   08 000000 | VNI (3 bytes) | 00
 *   inner Ethernet dst MAC (peer VTEP) | src MAC (own VTEP) | ethertype
 *   inner IP packet
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type CodecConfig, DECAP_OUT, ENCAP_OUT, type NativeFdb } from '../../src/dataplane/addon.js';
import { DROP } from '../../src/dataplane/counters.js';
import { SlotAllocator, buildFdb } from '../../src/dataplane/fdb.js';
import type { Peer } from '../../src/dataplane/types.js';
import { addon, decapResult, encapResult, skipNoAddon } from '../support/addon.js';

const skip = skipNoAddon;

const hex = (s: string): Buffer => Buffer.from(s.replace(/[\s|]/g, ''), 'hex');

// Node n1 (us): VTEP MAC 0a:58:c6:13:01:00, pods 198.19.1.0/24 and 2001:2:0:101::/64.
// Peer n2: underlay 198.18.0.2, VTEP MAC 0a:58:c6:13:02:00, pods 198.19.2.0/24, 2001:2:0:102::/64.
// Peer n3: underlay 198.18.0.3, pods 198.19.3.0/24.
const ownMac = '0a:58:c6:13:01:00';
const vxlan: CodecConfig = { mode: 'vxlan', vni: 1, mac: ownMac };
const udp: CodecConfig = { mode: 'udp', vni: 0, mac: '00:00:00:00:00:00' };
const peers: Peer[] = [
  { name: 'n2', subnets: ['198.19.2.0/24', '2001:2:0:102::/64'], publicIP: '198.18.0.2', vtepMAC: '0a:58:c6:13:02:00' },
  { name: 'n3', subnets: ['198.19.3.0/24'], publicIP: '198.18.0.3', vtepMAC: '0a:58:c6:13:03:00' },
];
function fdb(backend: 'vxlan' | 'udp'): NativeFdb {
  return addon!.fdbBuild(buildFdb(peers, { backend, port: backend === 'vxlan' ? 8472 : 8285, vni: 1 }, new SlotAllocator(8)).encode());
}

// IPv4 ICMP echo request 198.19.1.2 -> 198.19.2.2, id 1 seq 1, no payload (28 bytes);
// header checksum 0xebb5 and ICMP checksum 0xf7fd computed by hand (RFC 1071).
const ping4 = '4500001c 00010000 4001ebb5 c6130102 c6130202 | 0800f7fd 00010001';
// The reply direction: 198.19.2.2 -> 198.19.1.2 (same checksums: the sum is symmetric).
const pong4 = '4500001c 00010000 4001ebb5 c6130202 c6130102 | 0800f7fd 00010001';
// IPv6 ICMPv6 echo request 2001:2:0:101::2 -> 2001:2:0:102::2, payload length 8, hop limit 64
// (the codec does not verify transport checksums).
const ping6 = '60000000 0008 3a 40 20010002000001010000000000000002 20010002000001020000000000000002 | 80000000 00010001';
const pong6 = '60000000 0008 3a 40 20010002000001020000000000000002 20010002000001010000000000000002 | 80000000 00010001';

function encap(codec: CodecConfig, pkt: string): { peer: number; frame: string } | number {
  const headroom = addon!.constants.TX_HEADROOM;
  const p = hex(pkt);
  const buf = Buffer.alloc(headroom + p.length);
  p.copy(buf, headroom);
  const r = encapResult(codec, fdb(codec.mode), buf, headroom, p.length);
  if (typeof r === 'number') return r;
  return { peer: r.peer, frame: buf.subarray(r.frameOff, r.frameOff + r.frameLen).toString('hex') };
}

test('vxlan encap: golden IPv4 frame (RFC 7348)', { skip }, () => {
  const want = hex(`08 000000 000001 00 | 0a58c6130200 | 0a58c6130100 | 0800 | ${ping4}`).toString('hex');
  assert.deepEqual(encap(vxlan, ping4), { peer: 0, frame: want });
});

test('vxlan encap: golden IPv6 frame, VNI in network order', { skip }, () => {
  const want = hex(`08 000000 000001 00 | 0a58c6130200 | 0a58c6130100 | 86dd | ${ping6}`).toString('hex');
  assert.deepEqual(encap(vxlan, ping6), { peer: 0, frame: want });
  const bigVni = addon!.fdbBuild(buildFdb([{ ...peers[0]!, vni: 0xabcdef }], { backend: 'vxlan', port: 8472, vni: 1 }, new SlotAllocator(2)).encode());
  const buf = Buffer.alloc(64 + 28);
  hex(ping4).copy(buf, 64);
  const r = encapResult(vxlan, bigVni, buf, 64, 28);
  assert.ok(typeof r !== 'number');
  assert.equal(buf.subarray(r.frameOff, r.frameOff + 8).toString('hex'), '08000000abcdef00');
});

test('udp encap: the payload is the IP packet itself', { skip }, () => {
  assert.deepEqual(encap(udp, ping4), { peer: 0, frame: hex(ping4).toString('hex') });
});

test('encap drops: no route, malformed', { skip }, () => {
  const toNowhere = '4500001c 00010000 40010000 c6130102 c6140202 | 0800f7fd 00010001'; // dst 198.20.2.2
  assert.equal(encap(vxlan, toNowhere), DROP.no_route);
  assert.equal(encap(vxlan, '4500001c 0001'), DROP.tx_malformed);
  assert.equal(encap(vxlan, ping4.replace(/^45/, '55')), DROP.tx_malformed);
  assert.equal(encap(vxlan, `${ping4} 00`), DROP.tx_malformed, 'read length must equal the IP length');
});

const good4 = `08 000000 000001 00 | 0a58c6130100 | 0a58c6130200 | 0800 | ${pong4}`;

// malformed datagrams and the reason each must be dropped with
const vxlanCases: Array<[string, string, string, keyof typeof DROP | 'ok']> = [
  ['valid IPv4', good4, '198.18.0.2', 'ok'],
  ['valid IPv6', `08 000000 000001 00 | 0a58c6130100 | 0a58c6130200 | 86dd | ${pong6}`, '198.18.0.2', 'ok'],
  ['valid with Ethernet padding', `${good4} 000000000000`, '198.18.0.2', 'ok'],
  ['empty', '', '198.18.0.2', 'short'],
  ['VXLAN header only', '08000000 00000100', '198.18.0.2', 'short'],
  ['inner IP header cut short', good4.slice(0, -30), '198.18.0.2', 'short'],
  ['flags 0x0c (extra bit)', good4.replace(/^08/, '0c'), '198.18.0.2', 'bad_flags'],
  ['flags 0x00 (I bit clear)', good4.replace(/^08/, '00'), '198.18.0.2', 'bad_flags'],
  ['reserved byte 1 set', good4.replace(/^08 000000/, '08 010000'), '198.18.0.2', 'bad_flags'],
  ['reserved byte 7 set', good4.replace(/^08 000000 000001 00/, '08 000000 000001 01'), '198.18.0.2', 'bad_flags'],
  ['VNI 2', good4.replace(/^08 000000 000001/, '08 000000 000002'), '198.18.0.2', 'bad_vni'],
  ['inner dst MAC not ours', good4.replace('0a58c6130100', '0a58c6130900'), '198.18.0.2', 'bad_mac'],
  ['broadcast inner dst MAC', good4.replace('0a58c6130100', 'ffffffffffff'), '198.18.0.2', 'bad_mac'],
  ['ethertype ARP', good4.replace('| 0800 |', '| 0806 |'), '198.18.0.2', 'malformed'],
  ['ethertype IPv6, IPv4 inside', good4.replace('| 0800 |', '| 86dd |'), '198.18.0.2', 'malformed'],
  ['IPv4 IHL 4', good4.replace('| 4500001c', '| 4400001c'), '198.18.0.2', 'malformed'],
  ['IPv4 total length beyond datagram', good4.replace('| 4500001c', '| 4500001d'), '198.18.0.2', 'malformed'],
  ['IPv4 total length below header', good4.replace('| 4500001c', '| 45000010'), '198.18.0.2', 'malformed'],
  ['outer source not a peer', good4, '198.18.0.99', 'unknown_peer'],
  ['outer source IPv6 not a peer', good4, '2001:2::2', 'unknown_peer'],
  ['inner source from another peer (n3)', good4.replace('c6130202 c6130102', 'c6130302 c6130102'), '198.18.0.2', 'spoofed'],
  ['inner source outside every subnet', good4.replace('c6130202 c6130102', 'c6140202 c6130102'), '198.18.0.2', 'spoofed'],
];

test('vxlan decap: table of malformed datagrams and their drop reasons', { skip }, () => {
  const table = fdb('vxlan');
  for (const [name, frame, from, want] of vxlanCases) {
    const buf = hex(frame);
    const r = decapResult(vxlan, table, buf, buf.length, from);
    assert.equal(r.reason, want === 'ok' ? 0 : DROP[want], `${name}: reason ${r.reason}`);
    if (want === 'ok') {
      assert.equal(r.peer, 0, name);
      assert.equal(r.pktOff, 22, name);
      const inner = frame.includes('86dd') ? pong6 : pong4;
      assert.equal(buf.subarray(r.pktOff, r.pktOff + r.pktLen).toString('hex'), hex(inner).toString('hex'), name);
    }
  }
});

test('decap never reads past len (a valid frame cut by len is short/malformed)', { skip }, () => {
  const table = fdb('vxlan');
  const buf = hex(good4);
  for (let len = 0; len < buf.length; len++) {
    const r = decapResult(vxlan, table, buf, len, '198.18.0.2');
    assert.notEqual(r.reason, 0, `len ${len} passed`);
  }
  assert.equal(decapResult(vxlan, table, buf, buf.length, '198.18.0.2').reason, 0);
});

test('udp decap: raw IP packet, same validation after the header', { skip }, () => {
  const table = fdb('udp');
  const cases: Array<[string, string, string, keyof typeof DROP | 'ok']> = [
    ['valid IPv4', pong4, '198.18.0.2', 'ok'],
    ['valid IPv6', pong6, '198.18.0.2', 'ok'],
    ['19 bytes', pong4.slice(0, 38 + 4), '198.18.0.2', 'short'],
    ['IP version 5', pong4.replace(/^45/, '55'), '198.18.0.2', 'malformed'],
    ['a VXLAN frame sent to a udp node', good4, '198.18.0.2', 'malformed'],
    ['unknown peer', pong4, '198.18.0.7', 'unknown_peer'],
    ['spoofed', pong4.replace('c6130202 c6130102', 'c6130302 c6130102'), '198.18.0.2', 'spoofed'],
  ];
  for (const [name, frame, from, want] of cases) {
    const buf = hex(frame);
    const r = decapResult(udp, table, buf, buf.length, from);
    assert.equal(r.reason, want === 'ok' ? 0 : DROP[want], `${name}: reason ${r.reason}`);
    if (want === 'ok') assert.equal(r.pktOff, 0, name);
  }
});

test('encap then decap on the other side gives back the packet', { skip }, () => {
  // n2's view: its peer n1 has our subnets and MAC
  const n2codec: CodecConfig = { mode: 'vxlan', vni: 1, mac: '0a:58:c6:13:02:00' };
  const n2fdb = addon!.fdbBuild(buildFdb([{ name: 'n1', subnets: ['198.19.1.0/24'], publicIP: '198.18.0.1', vtepMAC: ownMac }],
    { backend: 'vxlan', port: 8472, vni: 1 }, new SlotAllocator(2)).encode());
  const r = encap(vxlan, ping4);
  assert.ok(typeof r !== 'number');
  const frame = Buffer.from(r.frame, 'hex');
  const d = decapResult(n2codec, n2fdb, frame, frame.length, '198.18.0.1');
  assert.equal(d.reason, 0);
  assert.equal(frame.subarray(d.pktOff, d.pktOff + d.pktLen).toString('hex'), hex(ping4).toString('hex'));
});

test('ICMP unreachable answers a packet to nowhere, quoting it', { skip }, () => {
  const orig = hex('4500001c 00010000 4001ebb5 c6130102 c6140202 | 0800f7fd 00010001');
  const reply = addon!.icmpError(orig, '198.19.1.0', 0);
  assert.ok(reply);
  assert.equal(reply[0]! >> 4, 4);
  assert.equal(reply.subarray(12, 16).toString('hex'), 'c6130100', 'source is the given address');
  assert.equal(reply.subarray(16, 20).toString('hex'), 'c6130102', 'sent back to the original source');
  assert.equal(reply[20], 3, 'type 3 destination unreachable');
  assert.ok(reply.subarray(28).toString('hex').startsWith(orig.toString('hex')), 'quotes the original');
  // never an error about an error
  assert.equal(addon!.icmpError(reply, '198.19.1.0', 0), null);
});

test('ICMP fragmentation needed reports the path MTU; an MTU the field cannot hold is refused', { skip }, () => {
  const orig = hex('4500001c 00014000 4001abb5 c6130102 c6140202 | 0800f7fd 00010001'); // DF
  const reply = addon!.icmpError(orig, '198.19.1.0', 1450);
  assert.ok(reply);
  assert.equal(reply[20], 3, 'type 3');
  assert.equal(reply[21], 4, 'code 4 fragmentation needed');
  assert.equal(reply.readUInt16BE(26), 1450, 'next-hop MTU');
  assert.throws(() => addon!.icmpError(orig, '198.19.1.0', 70000), /EINVAL|Invalid/);
});

test('tsoSplit / groBatch: the segmentation core through the addon (what bench/micro.ts times)', { skip }, () => {
  // [vnet hdr | IPv4 | TCP | 3000 B]: NEEDS_CSUM, GSO_TCPV4, gso_size 1000 -> 3 segments
  const pkt = Buffer.alloc(10 + 40 + 3000);
  const ip = pkt.subarray(10);
  ip[0] = 0x45;
  ip.writeUInt16BE(3040, 2);
  ip[8] = 64;
  ip[9] = 6;
  ip.set([198, 19, 1, 2], 12);
  ip.set([198, 19, 2, 2], 16);
  ip[32] = 0x50;
  ip[33] = 0x18; // ACK PSH
  pkt[0] = 1;
  pkt[1] = 1;
  pkt.writeUInt16LE(40, 2);
  pkt.writeUInt16LE(1000, 4);
  pkt.writeUInt16LE(20, 6);
  pkt.writeUInt16LE(16, 8);
  const out = Buffer.alloc(3 * 1040);
  assert.equal(addon!.tsoSplit(pkt, out), 3);
  for (let i = 0; i < 3; i++) {
    const seg = out.subarray(i * 1040);
    assert.equal(seg.readUInt16BE(2), 1040, 'total length per segment');
    assert.equal(seg[33]! & 0x08, i === 2 ? 0x08 : 0, 'PSH only on the last');
  }
  assert.throws(() => addon!.tsoSplit(pkt, Buffer.alloc(100)), { code: 'ENOSPC' });
  pkt.writeUInt16LE(0, 4); // gso_size 0
  assert.throws(() => addon!.tsoSplit(pkt, out), { code: 'EINVAL' });
  // the three segments, back to back, are one flow in order: grouped into one write
  assert.equal(addon!.groBatch(out, 1040, 3, 1500), 1);
  assert.throws(() => addon!.groBatch(out, 1040, 4, 1500), { code: 'ENOSPC' });
});

test('encap too_big: the peer and its path MTU, nothing encapsulated', { skip }, () => {
  // our underlay MTU 1500, n2's 1300: a 1300-byte path less the VXLAN-over-IPv4 50 bytes
  const table = addon!.fdbBuild(buildFdb([{ ...peers[0]!, underlayMtu: 1300 }],
    { backend: 'vxlan', port: 8472, vni: 1, underlayMtu: 1500 }, new SlotAllocator(2)).encode());
  const headroom = addon!.constants.TX_HEADROOM;
  const len = 1300;
  const buf = Buffer.alloc(headroom + len);
  hex('45000514 00014000 40060000 c6130102 c6130202').copy(buf, headroom); // DF, TCP, total length 1300
  const before = Buffer.from(buf);
  assert.deepEqual(encapResult(vxlan, table, buf, headroom, len), { peer: 0, frameOff: 0, frameLen: 0, tooBig: 1250 });
  assert.deepEqual(buf, before, 'nothing written');
  buf.writeUInt16BE(1250, headroom + 2);
  const fits = encapResult(vxlan, table, buf, headroom, 1250);
  assert.ok(typeof fits !== 'number' && fits.tooBig === undefined && fits.frameLen === 1250 + addon!.constants.VXLAN_ENCAP_LEN, 'a packet of the path MTU passes');
});

test('codecBuild, encap and decap refuse bad arguments with TypeError', { skip }, () => {
  const a = addon!;
  for (const bad of [undefined, {}, { mode: 'gre', vni: 1, mac: ownMac }, { mode: 'vxlan', vni: 1 << 24, mac: ownMac },
    { mode: 'vxlan', vni: 1, mac: '0a:58:c6:13:01' }, { mode: 'vxlan', vni: 1, mac: '0a:58:c6:13:01:00:ff' }]) {
    assert.throws(() => a.codecBuild(bad as never), { name: 'TypeError', code: 'EINVAL' }, JSON.stringify(bad));
  }
  const codec = a.codecBuild(vxlan);
  const table = fdb('vxlan');
  const headroom = a.constants.TX_HEADROOM;
  const buf = Buffer.alloc(headroom + 28);
  hex(ping4).copy(buf, headroom);
  const out = new Int32Array(ENCAP_OUT.length);
  assert.equal(a.encap(codec, table, buf, headroom, 28, out), 0);
  const encapLen = a.constants.VXLAN_ENCAP_LEN;
  assert.deepEqual([...out.subarray(0, 3)], [0, headroom - encapLen, 28 + encapLen]);
  assert.throws(() => a.encap(vxlan as never, table, buf, headroom, 28, out), { name: 'TypeError', message: /NativeCodec/ }, 'a plain config is not a codec');
  assert.throws(() => a.encap(table as never, table, buf, headroom, 28, out), { name: 'TypeError', message: /NativeCodec/ }, 'nor is an FDB');
  assert.throws(() => a.encap(codec, codec as never, buf, headroom, 28, out), { name: 'TypeError', message: /NativeFdb/ });
  assert.throws(() => a.encap(codec, table, buf, headroom, 28, new Int32Array(3)), { name: 'TypeError', message: /out/ });
  assert.throws(() => a.encap(codec, table, buf, headroom, 28, new Uint32Array(4) as never), { name: 'TypeError', message: /out/ });
  assert.throws(() => a.encap(codec, table, buf, headroom, 29, out), { name: 'TypeError' }, 'pktLen past the buffer');
  const frame = hex(good4);
  const dout = new Int32Array(DECAP_OUT.length);
  assert.equal(a.decap(codec, table, frame, 0, frame.length, '198.18.0.2', dout), 0);
  assert.deepEqual([...dout], [0, 22, 28, 50]);
  assert.equal(a.decap(codec, table, frame, 0, frame.length, '198.18.0.9', dout), DROP.unknown_peer);
  assert.deepEqual([...dout], [-1, 0, 0, 50], 'a drop leaves no stale offsets, and still tells the datagram length');
  assert.throws(() => a.decap(codec, table, frame, 0, frame.length, '198.18.0.2', new Int32Array(3)), { name: 'TypeError', message: /out/ });
  assert.throws(() => a.decap(codec, table, frame, 0, frame.length + 1, '198.18.0.2', dout), { name: 'TypeError' }, 'len past the buffer');
  assert.throws(() => a.decap(codec, table, frame, 1, frame.length, '198.18.0.2', dout), { name: 'TypeError' }, 'off + len past the buffer');
  assert.throws(() => a.decap(codec, table, frame, -1, 4, '198.18.0.2', dout), { name: 'TypeError' }, 'negative off');
  // a run of three datagrams back to back (the third cut short, as GRO leaves the last):
  // each one decapsulates at its offset, offsets in the whole buffer
  const run = Buffer.concat([frame, frame, frame.subarray(0, 45)]);
  assert.equal(a.decap(codec, table, run, 50, 50, '198.18.0.2', dout), 0);
  assert.deepEqual([...dout], [0, 72, 28, 50]);
  assert.equal(a.decap(codec, table, run, 100, 45, '198.18.0.2', dout), DROP.malformed, 'never past off + len');
  assert.equal(dout[DECAP_OUT.frameLen], 0, 'a cut datagram has no readable length');
});
