/**
 * Micro benchmarks (tinybench): per-packet encap/decap cost through the
 * addon, FDB lookup at 10, 1,000 and 5,000 peers, the software split of a
 * 64 KiB TSO packet, the GRO grouping of a 64-segment batch, and building an
 * FDB for 5000 peers (JS validation + snapshot encoding, and the native
 * table build). Each call crosses N-API once; the per-call overhead is in
 * every row (the `fdbLookup` rows show its size).
 *
 *   node dist/bench/micro.js [--json FILE]
 *
 * Needs the built addon, no privileges. Numbers are for comparing changes on
 * one machine; nothing here is asserted.
 */
import { writeFileSync } from 'node:fs';
import { Bench } from 'tinybench';
import { DECAP_OUT, ENCAP_OUT, loadAddon } from '../src/dataplane/addon.js';
import { SlotAllocator, buildFdb } from '../src/dataplane/fdb.js';
import type { Peer } from '../src/dataplane/types.js';

const PEERS = 5000;
const PACKET = 1400;

/** Peer k: a /29 pod subnet in 198.19.0.0/16 and an underlay IP in 198.18.0.0/16. */
function peer(k: number): Peer {
  const n = k + 1;
  const mac = `02:75:6c:${((n >> 16) & 255).toString(16).padStart(2, '0')}:${((n >> 8) & 255).toString(16).padStart(2, '0')}:${(n & 255).toString(16).padStart(2, '0')}`;
  return {
    name: `node-${k}`,
    subnets: [`198.19.${k >> 5}.${(k & 31) << 3}/29`],
    publicIP: `198.18.${n >> 8}.${n & 255}`,
    vtepMAC: mac,
  };
}

/** An IPv4/UDP packet of `len` bytes from src to dst with a valid header checksum, at `off` in a buffer with headroom. */
function ipv4Packet(buf: Buffer, off: number, len: number, src: string, dst: string): void {
  buf.fill(0xab, off, off + len);
  buf[off] = 0x45;
  buf[off + 1] = 0;
  buf.writeUInt16BE(len, off + 2);
  buf.writeUInt32BE(0, off + 4);
  buf[off + 8] = 64;
  buf[off + 9] = 17;
  buf.writeUInt16BE(0, off + 10);
  Buffer.from(src.split('.').map(Number)).copy(buf, off + 12);
  Buffer.from(dst.split('.').map(Number)).copy(buf, off + 16);
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += buf.readUInt16BE(off + i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  buf.writeUInt16BE(~sum & 0xffff, off + 10);
  buf.writeUInt16BE(len - 20, off + 24); // UDP length
}

function csum(buf: Buffer, off: number, len: number, sum = 0): number {
  for (let i = 0; i + 1 < len; i += 2) sum += buf.readUInt16BE(off + i);
  if (len & 1) sum += buf[off + len - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** IPv4/TCP segment at `off`: header checksum and a full TCP checksum, seq given. */
function tcpSegment(buf: Buffer, off: number, payload: number, seq: number, partial = false): number {
  const len = 40 + payload;
  buf.fill(0x5a, off + 40, off + len);
  buf[off] = 0x45;
  buf.writeUInt16BE(len, off + 2);
  buf.writeUInt16BE(0x4000, off + 6); // DF
  buf[off + 8] = 64;
  buf[off + 9] = 6;
  Buffer.from([198, 19, 1, 2]).copy(buf, off + 12);
  Buffer.from([198, 19, 2, 2]).copy(buf, off + 16);
  buf.writeUInt16BE(~csum(buf, off, 20) & 0xffff, off + 10);
  buf.writeUInt16BE(40000, off + 20);
  buf.writeUInt16BE(5201, off + 22);
  buf.writeUInt32BE(seq >>> 0, off + 24);
  buf.writeUInt32BE(1, off + 28);
  buf[off + 32] = 0x50;
  buf[off + 33] = 0x10; // ACK
  buf.writeUInt16BE(0xffff, off + 34);
  const pseudo = csum(buf, off + 12, 8, 6 + len - 20);
  buf.writeUInt16BE(partial ? pseudo : ~csum(buf, off + 20, len - 20, pseudo) & 0xffff, off + 36);
  return len;
}

async function main(): Promise<void> {
  const addon = loadAddon();
  const { VXLAN_ENCAP_LEN, TX_HEADROOM } = addon.constants;
  const peers = Array.from({ length: PEERS }, (_, k) => peer(k));
  const defaults = { backend: 'vxlan' as const, port: 8472, vni: 1 };
  const me: Peer = { name: 'me', subnets: ['198.19.255.0/24'], publicIP: '198.18.255.254', vtepMAC: '02:75:6c:ff:ff:fe' };

  // Sender: us, with 5000 peers. Receiver: peer 1234, knowing us.
  const target = peers[1234]!;
  const snapshot = buildFdb(peers, defaults, new SlotAllocator(8192)).encode();
  const senderFdb = addon.fdbBuild(snapshot);
  const receiverFdb = addon.fdbBuild(buildFdb([me], defaults, new SlotAllocator(8192)).encode());
  const senderCodec = addon.codecBuild({ mode: 'vxlan', vni: 1, mac: me.vtepMAC! });
  const receiverCodec = addon.codecBuild({ mode: 'vxlan', vni: 1, mac: target.vtepMAC! });
  const encapOut = new Int32Array(ENCAP_OUT.length);
  const decapOut = new Int32Array(DECAP_OUT.length);

  const dstIP = target.subnets[0]!.replace(/\/29$/, '').replace(/\.(\d+)$/, (_, d: string) => `.${Number(d) + 2}`);
  const buf = Buffer.alloc(TX_HEADROOM + PACKET + 64);
  ipv4Packet(buf, TX_HEADROOM, PACKET, '198.19.255.2', dstIP);
  const encapped = addon.encap(senderCodec, senderFdb, buf, TX_HEADROOM, PACKET, encapOut);
  if (encapped !== 0) throw new Error(`encap dropped the packet (reason ${encapped})`);
  const [peerIndex, frameOff, frameLen] = encapOut;
  if (peerIndex !== 1234) throw new Error(`encap chose peer ${peerIndex}, want 1234`);
  const frame = Buffer.from(buf.subarray(frameOff, frameOff! + frameLen!));
  const check = addon.decap(receiverCodec, receiverFdb, frame, 0, frame.length, me.publicIP, decapOut);
  if (check !== 0) throw new Error(`decap dropped the frame (reason ${check})`);
  if (frameLen !== PACKET + VXLAN_ENCAP_LEN) throw new Error(`frame is ${frameLen} bytes`);

  // FDB lookup at three sizes: the cost depends on prefix lengths, not peers
  const lookups = [10, 1000, 5000].map((n) => {
    const set = peers.slice(0, n);
    const t = set[n - 1]!;
    return { n, fdb: addon.fdbBuild(buildFdb(set, defaults, new SlotAllocator(8192)).encode()), ip: t.subnets[0]!.replace(/\/29$/, '').replace(/\.(\d+)$/, (_, d: string) => `.${Number(d) + 2}`) };
  });
  for (const l of lookups) if (addon.fdbLookup(l.fdb, l.ip) !== l.n - 1) throw new Error(`lookup in ${l.n} peers missed`);

  // a 64 KiB TSO super-packet as the TUN hands it over: [virtio-net hdr | IPv4 | TCP | 65495 B]
  const mss = 1448;
  const tso = Buffer.alloc(10 + 65535);
  tcpSegment(tso, 10, 65535 - 40, 1000, true);
  tso[0] = 1; // NEEDS_CSUM
  tso[1] = 1; // GSO_TCPV4
  tso.writeUInt16LE(40, 2);
  tso.writeUInt16LE(mss, 4);
  tso.writeUInt16LE(20, 6);
  tso.writeUInt16LE(16, 8);
  const segOut = Buffer.alloc(Math.ceil((65535 - 40) / mss) * (40 + mss));
  const nsegs = addon.tsoSplit(tso, segOut);
  if (nsegs !== Math.ceil((65535 - 40) / mss)) throw new Error(`TSO split gave ${nsegs} segments`);

  // 64 in-order segments of one flow, as one received batch
  const stride = 40 + mss;
  const pristine = Buffer.alloc(64 * stride);
  for (let k = 0; k < 64; k++) tcpSegment(pristine, k * stride, mss, 1000 + k * mss);
  const scratch = Buffer.alloc(pristine.length);
  scratch.set(pristine);
  const writes = addon.groBatch(scratch, stride, 64, 1500);
  if (writes >= 64) throw new Error(`GRO did not coalesce (${writes} writes for 64 segments)`);

  const bench = new Bench({ time: 1000, warmupTime: 200 });
  for (const l of lookups) bench.add(`fdbLookup in ${l.n} peers`, () => { addon.fdbLookup(l.fdb, l.ip); });
  bench
    .add(`TSO split 64 KiB -> ${nsegs} segments (v4, mss ${mss})`, () => { addon.tsoSplit(tso, segOut); })
    .add('copy of a 64-segment batch (the GRO row includes it)', () => { scratch.set(pristine); })
    .add(`GRO of a 64-segment batch -> ${writes} write(s)`, () => {
      scratch.set(pristine);
      addon.groBatch(scratch, stride, 64, 1500);
    });
  bench
    .add(`encap vxlan ${PACKET} B (${PEERS}-peer FDB)`, () => {
      addon.encap(senderCodec, senderFdb, buf, TX_HEADROOM, PACKET, encapOut);
    })
    .add(`decap vxlan ${PACKET} B + validation`, () => {
      addon.decap(receiverCodec, receiverFdb, frame, 0, frame.length, me.publicIP, decapOut);
    })
    .add(`buildFdb ${PEERS} peers (JS validate + encode)`, () => {
      buildFdb(peers, defaults, new SlotAllocator(8192)).encode();
    })
    .add(`addon.fdbBuild ${PEERS} peers (native table)`, () => {
      addon.fdbBuild(snapshot);
    });
  await bench.run();
  const rows = bench.tasks.map((t) => ({
    name: t.name,
    'ns/op': t.result ? Math.round(t.result.mean * 1e6) : null,
    'ops/s': t.result ? Math.round(t.result.hz) : null,
    samples: t.result?.samples.length ?? 0,
  }));
  console.table(rows);
  const jsonAt = process.argv.indexOf('--json');
  if (jsonAt > 0 && process.argv[jsonAt + 1]) {
    writeFileSync(process.argv[jsonAt + 1]!, JSON.stringify({ date: new Date().toISOString(), rows }, null, 2) + '\n');
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`micro: ${(err as Error).message}\n`);
  process.exit(1);
});
