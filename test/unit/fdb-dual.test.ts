/**
 * Dual-stack peers in the FDB (flannel's dual stack: flannel.1 over IPv4, flannel-v6.1 over
 * IPv6, a VTEP MAC each): a snapshot entry per underlay family, routes on the entry of their
 * own family, anti-spoofing over either entry, and the checks on publicIPv6 / vtepMACv6 that
 * name the field. The codec part runs the addon's encap/decap, the one both engines use.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { CodecConfig } from '../../src/dataplane/addon.js';
import { DROP } from '../../src/dataplane/counters.js';
import { FDB_HDR_SIZE, FDB_PEER_SIZE, FDB_ROUTE_SIZE, type FdbDefaults, SlotAllocator, buildFdb } from '../../src/dataplane/fdb.js';
import type { Peer } from '../../src/dataplane/types.js';
import { UserlayError } from '../../src/errors.js';
import { addon, decapResult, encapResult, skipNoAddon } from '../support/addon.js';

const ownMac = '0a:58:c6:13:01:00';
const dual: FdbDefaults = {
  backend: 'vxlan', port: 8472, vni: 1, underlayFamilies: [4, 6], ownSubnets: ['198.19.1.0/24', '2001:2:0:101::/64'],
  networks: ['198.19.0.0/16', '2001:2:0:100::/56'], ownPublicIP: '198.18.0.1', ownPublicIPv6: '2001:2::1', ownVtepMAC: ownMac,
};
const n2: Peer = {
  name: 'n2', subnets: ['198.19.2.0/24', '2001:2:0:102::/64'], publicIP: '198.18.0.2', vtepMAC: '0a:58:c6:13:02:04',
  publicIPv6: '2001:2::2', vtepMACv6: '0a:58:c6:13:02:06',
};
const n3: Peer = { name: 'n3', subnets: ['198.19.3.0/24'], publicIP: '198.18.0.3', vtepMAC: '0a:58:c6:13:03:04' };

function efdb(fn: () => unknown, ...parts: string[]): void {
  assert.throws(fn, (err: unknown) => err instanceof UserlayError && err.code === 'EFDB' && parts.every((p) => err.message.includes(p)),
    `expected EFDB mentioning ${parts.join(', ')}`);
}

test('a dual-stack peer has an entry per underlay family; each route uses its own family', () => {
  const t = buildFdb([n2, n3], dual, new SlotAllocator(8));
  assert.deepEqual(t.entryList().map((e) => [e.peer.peer.name, e.ip, e.family]), [['n2', '198.18.0.2', 4], ['n2', '2001:2::2', 6], ['n3', '198.18.0.3', 4]]);
  assert.equal(t.peers[0]!.entries, 2);
  assert.equal(t.peers[1]!.entry, 2);
  const b = t.encode();
  const dv = new DataView(b.buffer);
  assert.equal(dv.getUint32(4, true), 3, 'three entries');
  assert.equal(b.length, FDB_HDR_SIZE + 3 * FDB_PEER_SIZE + 3 * FDB_ROUTE_SIZE);
  const entry = (i: number) => FDB_HDR_SIZE + i * FDB_PEER_SIZE;
  assert.deepEqual([b[entry(0)], b[entry(1)], b[entry(2)]], [4, 6, 4]);
  assert.equal(dv.getUint32(entry(0) + 32, true), dv.getUint32(entry(1) + 32, true), 'both entries count into one slot');
  assert.equal(Buffer.from(b.subarray(entry(1) + 20, entry(1) + 26)).toString('hex'), '0a58c6130206', 'the v6 entry carries vtepMACv6');
  const route = (i: number) => FDB_HDR_SIZE + 3 * FDB_PEER_SIZE + i * FDB_ROUTE_SIZE;
  assert.deepEqual([0, 1, 2].map((i) => [b[route(i)], dv.getUint32(route(i) + 4, true)]), [[4, 0], [6, 1], [4, 2]]);
  assert.equal(t.peerList()[0]!.publicIPv6, '2001:2::2');
});

test('with an IPv4 underlay socket only, the dual-stack peer has one entry and its v6 subnet rides IPv4', () => {
  const t = buildFdb([n2], { ...dual, underlayFamilies: [4] }, new SlotAllocator(8));
  assert.deepEqual(t.entryList().map((e) => e.ip), ['198.18.0.2']);
  const b = t.encode();
  const dv = new DataView(b.buffer);
  const route = (i: number) => FDB_HDR_SIZE + FDB_PEER_SIZE + i * FDB_ROUTE_SIZE;
  assert.deepEqual([0, 1].map((i) => dv.getUint32(route(i) + 4, true)), [0, 0]);
  const only6 = buildFdb([n2], { ...dual, underlayFamilies: [6] }, new SlotAllocator(8));
  assert.deepEqual(only6.entryList().map((e) => e.ip), ['2001:2::2']);
  efdb(() => buildFdb([n3], { ...dual, underlayFamilies: [6] }, new SlotAllocator(8)), '"n3"', 'IPv4', 'IPv6');
});

test('bad dual-stack input is refused with a message naming the field', () => {
  const s = new SlotAllocator(8);
  const bad = (extra: Partial<Peer>) => () => buildFdb([{ ...n2, ...extra }], dual, s);
  efdb(bad({ publicIPv6: '2001:2:0:105::9' }), '"n2"', 'publicIPv6', 'inside the cluster network 2001:2:0:100::/56');
  efdb(bad({ publicIPv6: '198.18.0.9' }), '"n2"', 'publicIPv6', 'not an IPv6');
  efdb(bad({ publicIPv6: 'nope' }), '"n2"', 'publicIPv6');
  efdb(bad({ publicIPv6: '2001:2::1' }), '"n2"', 'publicIPv6', 'own');
  efdb(bad({ vtepMACv6: '01:00:5e:00:00:01' }), '"n2"', 'vtepMACv6', 'multicast');
  efdb(bad({ vtepMACv6: ownMac }), '"n2"', 'vtepMACv6', 'own');
  efdb(bad({ vtepMACv6: undefined }), '"n2"', 'vtepMACv6', 'required');
  efdb(bad({ publicIP: '2001:2::7' }), '"n2"', 'publicIPv6', 'IPv4');
  efdb(() => buildFdb([{ ...n3, vtepMACv6: '0a:58:c6:13:03:06' }], dual, s), '"n3"', 'vtepMACv6', 'without publicIPv6');
  efdb(() => buildFdb([n2, { ...n3, publicIPv6: '2001:2::2', vtepMACv6: '0a:58:c6:13:03:06' }], dual, s), '"n2"', '"n3"', '2001:2::2');
  assert.equal(s.slotOf('n2'), undefined, 'a refused build changes no slot');
});

// --- through the codec: which entry encap picks, what decap accepts ---

const vxlan: CodecConfig = { mode: 'vxlan', vni: 1, mac: ownMac };
const hex = (s: string): Buffer => Buffer.from(s.replace(/[\s|]/g, ''), 'hex');

/** An IPv4 header-only packet (protocol 253, experimental) with a correct header checksum. */
function ip4(src: string, dst: string): Buffer {
  const h = hex('45000014 00010000 40fd0000');
  const b = Buffer.concat([h, Buffer.from(src.split('.').map(Number)), Buffer.from(dst.split('.').map(Number))]);
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += b.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  b.writeUInt16BE(~sum & 0xffff, 10);
  return b;
}

/** An IPv6 header-only packet (next header 59, no next header); addresses as 32 hex digits. */
const ip6 = (src: string, dst: string): Buffer => hex(`60000000 0000 3b 40 ${src} ${dst}`);
const v6 = (subnet: number, host: number) => `20010002000001${subnet.toString(16).padStart(2, '0')}00000000000000${host.toString(16).padStart(2, '0')}`;

function encap(pkt: Buffer): { peer: number; dstMac: string } | number {
  const table = addon!.fdbBuild(buildFdb([n2, n3], dual, new SlotAllocator(8)).encode());
  const headroom = addon!.constants.TX_HEADROOM;
  const buf = Buffer.alloc(headroom + pkt.length);
  pkt.copy(buf, headroom);
  const r = encapResult(vxlan, table, buf, headroom, pkt.length);
  if (typeof r === 'number') return r;
  return { peer: r.peer, dstMac: buf.subarray(r.frameOff + 8, r.frameOff + 14).toString('hex') };
}

test('encap: v4 pod traffic goes to the v4 entry with the v4 MAC, v6 to the v6 entry with the v6 MAC', { skip: skipNoAddon }, () => {
  assert.deepEqual(encap(ip4('198.19.1.2', '198.19.2.2')), { peer: 0, dstMac: '0a58c6130204' });
  assert.deepEqual(encap(ip6(v6(1, 2), v6(2, 2))), { peer: 1, dstMac: '0a58c6130206' });
  assert.deepEqual(encap(ip4('198.19.1.2', '198.19.3.2')), { peer: 2, dstMac: '0a58c6130304' });
});

test('decap: either underlay address of a dual-stack peer is that peer; anti-spoofing still holds', { skip: skipNoAddon }, () => {
  const table = addon!.fdbBuild(buildFdb([n2, n3], dual, new SlotAllocator(8)).encode());
  const frame = (pkt: Buffer, ethertype: string) => Buffer.concat([hex(`08000000 00000100 ${ownMac.replace(/:/g, '')} 0a58c6130206 ${ethertype}`), pkt]);
  const from2v4 = frame(ip4('198.19.2.2', '198.19.1.2'), '0800');
  const from2v6 = frame(ip6(v6(2, 2), v6(1, 2)), '86dd');
  const decap = (buf: Buffer, src: string) => decapResult(vxlan, table, buf, buf.length, src);
  assert.deepEqual([decap(from2v6, '2001:2::2').reason, decap(from2v6, '2001:2::2').peer], [0, 1]);
  assert.equal(decap(from2v4, '198.18.0.2').reason, 0);
  assert.equal(decap(from2v4, '2001:2::2').reason, 0, 'n2\'s v4 pod packet over its v6 underlay is still n2\'s');
  assert.equal(decap(from2v6, '198.18.0.3').reason, DROP.spoofed, 'n3 may not send from n2\'s subnet');
  assert.equal(decap(frame(ip4('198.19.3.2', '198.19.1.2'), '0800'), '2001:2::2').reason, DROP.spoofed, 'nor n2 from n3\'s');
  assert.equal(decap(from2v6, '2001:2::9').reason, DROP.unknown_peer);
});
