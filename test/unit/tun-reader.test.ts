/**
 * addon.tunReader without a TUN: read(2) on a loopback UDP socket returns
 * one datagram per call just as a TUN fd returns one packet, so datagrams
 * shaped [virtio-net header | packet] stand in for TUN reads. Checks the
 * batch layout the js engine relies on: every packet a Buffer
 * [TX_HEADROOM zero bytes | packet], at most `batch` per call, the packets of
 * a call views of one Buffer that do not overlap, runts skipped, a packet far
 * larger than an MTU intact; a TSO super-packet split into segments by the
 * shared read path, runts and bad headers counted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import type { NativeAddon } from '../../src/dataplane/addon.js';
import { COUNTER, DROP, counterIndex } from '../../src/dataplane/counters.js';
import { addon, skipNoAddon } from '../support/addon.js';

const skip = skipNoAddon;

/** A non-blocking UDP fd bound on 127.0.0.1 and its port (retrying taken ports). */
function openLoopback(a: NativeAddon): { fd: number; port: number } {
  for (let i = 0; i < 50; i++) {
    const port = 20000 + Math.floor(Math.random() * 40000);
    try {
      return { fd: a.udpOpen('127.0.0.1', port), port };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    }
  }
  throw new Error('no free loopback UDP port');
}

/** Payload i: a recognisable pattern of the given length. */
function packet(i: number, len: number): Buffer {
  const b = Buffer.alloc(len);
  for (let k = 0; k < len; k++) b[k] = (i * 31 + k) & 0xff;
  return b;
}

/** [zero virtio-net header | pkt]: what a TUN read returns for a packet needing nothing. */
function tunRead(a: NativeAddon, pkt: Buffer): Buffer {
  return Buffer.concat([Buffer.alloc(a.constants.VNET_HDR_LEN), pkt]);
}

/** Send the datagrams, read them back through tunReader until `expected` packets came. */
async function roundTrip(a: NativeAddon, batch: number, datagrams: Buffer[], expected: number, together: boolean, counters?: BigUint64Array): Promise<Buffer[][]> {
  const { fd, port } = openLoopback(a);
  const tx = dgram.createSocket('udp4');
  const calls: Buffer[][] = [];
  let got = 0;
  try {
    const done = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reader.stop(); // a poll left running would keep the process alive
        reject(new Error(`only ${got} of ${expected} packets read`));
      }, 5000);
      const reader = a.tunReader(fd, batch, (packets, err) => {
        if (!packets) {
          clearTimeout(timer);
          reader.stop();
          reject(err ?? new Error('read failed'));
          return;
        }
        calls.push(packets);
        got += packets.length;
        if (got >= expected) {
          clearTimeout(timer);
          reader.stop();
          resolve();
        }
      }, counters);
    });
    const send = (d: Buffer): Promise<void> =>
      new Promise<void>((resolve, reject) => tx.send(d, port, '127.0.0.1', (e) => (e ? reject(e) : resolve())));
    if (together) {
      await Promise.all(datagrams.map(send)); // all queued before the reader polls
    } else {
      for (const d of datagrams) await send(d); // at most a few queued (large ones)
    }
    await done;
  } finally {
    tx.close();
    a.close(fd);
  }
  return calls;
}

test('tunReader: batches of views of one Buffer, each [zeroed headroom | packet]', { skip }, async () => {
  const a = addon!;
  const headroom = a.constants.TX_HEADROOM;
  const sizes = [20, 1400, 60, 1500, 40, 576, 1280, 28, 1000, 1499];
  const pkts = sizes.map((n, i) => packet(i, n));
  const calls = await roundTrip(a, 4, pkts.map((p) => tunRead(a, p)), pkts.length, true);

  const all = calls.flat();
  assert.equal(all.length, pkts.length);
  for (const [i, b] of all.entries()) {
    assert.ok(Buffer.isBuffer(b), `packet ${i} is a Buffer`);
    assert.equal(b.length, headroom + sizes[i]!, `packet ${i} length`);
    assert.ok(b.subarray(0, headroom).every((x) => x === 0), `packet ${i} headroom zeroed`);
    assert.deepEqual(b.subarray(headroom), pkts[i], `packet ${i} bytes`);
  }
  assert.ok(calls.some((c) => c.length > 1), 'datagrams queued together are read as one batch');
  for (const packets of calls) {
    assert.ok(packets.length >= 1 && packets.length <= 4, `a call holds 1..batch packets, got ${packets.length}`);
    const spans = packets.map((p) => [p.byteOffset, p.byteOffset + p.length] as const).sort((x, y) => x[0] - y[0]);
    for (const p of packets) assert.equal(p.buffer, packets[0]!.buffer, 'one backing Buffer per call');
    for (let k = 1; k < spans.length; k++) assert.ok(spans[k]![0] >= spans[k - 1]![1], 'views do not overlap');
  }
});

test('tunReader: runts are skipped, a 60000-byte packet arrives intact between small ones', { skip }, async () => {
  const a = addon!;
  const headroom = a.constants.TX_HEADROOM;
  const pkts = [packet(1, 64), packet(2, 60000), packet(3, 64), packet(4, 60000), packet(5, 64)];
  const runt = Buffer.alloc(a.constants.VNET_HDR_LEN - 1); // shorter than the header
  const calls = await roundTrip(a, 64, [runt, ...pkts.map((p) => tunRead(a, p))], pkts.length, false);
  const all = calls.flat();
  assert.deepEqual(all.map((b) => b.length - headroom), pkts.map((p) => p.length), 'the runt is not delivered');
  for (const [i, b] of all.entries()) assert.deepEqual(b.subarray(headroom), pkts[i]);
});

/** [virtio-net header asking for TSO | IPv4 TCP packet]: what a TUN with TSO on reads. */
function tsoRead(a: NativeAddon, payload: number, gsoSize: number): { read: Buffer; pkt: Buffer } {
  const pkt = Buffer.alloc(40 + payload);
  pkt[0] = 0x45;
  pkt.writeUInt16BE(pkt.length, 2);
  pkt[6] = 0x40;
  pkt[8] = 64;
  pkt[9] = 6;
  pkt.set([198, 18, 0, 1, 198, 18, 0, 2], 12);
  pkt.writeUInt32BE(1000, 24); // seq
  pkt[32] = 0x50;
  pkt[33] = 0x18; // ACK PSH
  for (let i = 0; i < payload; i++) pkt[40 + i] = (i * 13) & 0xff;
  const vh = Buffer.alloc(a.constants.VNET_HDR_LEN);
  vh[0] = 1; // NEEDS_CSUM
  vh[1] = 1; // TCPV4
  vh.writeUInt16LE(40, 2); // hdr_len
  vh.writeUInt16LE(gsoSize, 4);
  vh.writeUInt16LE(20, 6); // csum_start
  vh.writeUInt16LE(16, 8); // csum_offset
  return { read: Buffer.concat([vh, pkt]), pkt };
}

test('tunReader: a TSO super-packet arrives as segments; runts and bad headers are counted', { skip }, async () => {
  const a = addon!;
  const headroom = a.constants.TX_HEADROOM;
  const counters = new BigUint64Array(a.constants.SLOT_WIDTH);
  const { read, pkt } = tsoRead(a, 5500, 1000);
  const bad = Buffer.from(read);
  bad.writeUInt16LE(0, 4); // virtio_net_hdr.gso_size = 0
  const runt = Buffer.alloc(a.constants.VNET_HDR_LEN);
  const calls = await roundTrip(a, 64, [runt, bad, read], 6, false, counters);
  const segs = calls.flat().map((b) => b.subarray(headroom));
  assert.deepEqual(segs.map((s) => s.length), [1040, 1040, 1040, 1040, 1040, 540]);
  let joined = Buffer.alloc(0);
  for (const [i, s] of segs.entries()) {
    assert.equal(s.readUInt16BE(2), s.length, `segment ${i} IP length`);
    assert.equal(s.readUInt32BE(24), 1000 + i * 1000, `segment ${i} seq`);
    assert.equal(s[33], i === 5 ? 0x18 : 0x10, `segment ${i} flags: PSH only on the last`);
    joined = Buffer.concat([joined, s.subarray(40)]);
  }
  assert.deepEqual(joined, pkt.subarray(40));
  assert.equal(counters[counterIndex(0, COUNTER.drops + DROP.tx_malformed)], 2n, 'the runt and the bad header are counted');
});

test('tunReader: the rest of a super-packet larger than the batch comes without another readiness', { skip }, async () => {
  const a = addon!;
  const headroom = a.constants.TX_HEADROOM;
  const { read, pkt } = tsoRead(a, 39 * 1000 + 517, 1000); // 40 segments, nothing behind them
  const calls = await roundTrip(a, 16, [read], 40, false);
  assert.deepEqual(calls.map((c) => c.length), [16, 16, 8], 'batches of at most 16, one readiness event');
  const joined = Buffer.concat(calls.flat().map((b) => b.subarray(headroom + 40)));
  assert.deepEqual(joined, pkt.subarray(40));
});
