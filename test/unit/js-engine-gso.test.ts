/**
 * The js engine's transmit runs (src/dataplane/js-engine.ts, design notes "UDP GSO") against a
 * fake addon and fake dgram sockets: which datagrams leave in one send from the GSO socket with
 * which UDP_SEGMENT, which leave singly from the tunnel port's socket, and what a failed GSO
 * send does. No privileges, no addon build.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type dgram from 'node:dgram';
import type { NativeAddon } from '../../src/dataplane/addon.js';
import { COUNTER, DROP, allocCounters, counterIndex } from '../../src/dataplane/counters.js';
import { jsEngine, type JsSocket } from '../../src/dataplane/js-engine.js';
import { SlotAllocator, buildFdb } from '../../src/dataplane/fdb.js';
import { silentLogger } from '../../src/log.js';

const HEADROOM = 64;
const ENCAP = 22;

interface Sent { socket: 'main' | 'gso'; frames: number[]; ip: string; cb: (err: Error | null, bytes?: number) => void }

function fakeSocket(name: 'main' | 'gso', log: Sent[]) {
  const s = {
    queued: 0,
    address: () => ({ family: 'IPv4', address: '198.18.0.1', port: name === 'main' ? 8472 : 40000 }),
    on: () => s,
    getSendQueueCount: () => s.queued,
    close: (cb: () => void) => cb(),
    send(...args: unknown[]) {
      // (list, port, ip, cb) | (frame, port, ip, cb) | (buf, off, len, port, ip, cb)
      const cb = args[args.length - 1] as Sent['cb'];
      const ip = args[args.length - 2] as string;
      const frames = Array.isArray(args[0]) ? (args[0] as Buffer[]).map((b) => b.length)
        : args.length === 6 ? [args[2] as number] : [(args[0] as Buffer).length];
      log.push({ socket: name, frames, ip, cb });
    },
  };
  return s;
}

/** An engine on fake sockets; packets handed to `feed` are read from the TUN in one batch. */
function setup(opts: { gso?: boolean } = {}) {
  const sent: Sent[] = [];
  const segmentCalls: number[] = [];
  let reader: ((packets: Buffer[] | undefined) => void) | undefined;
  const addon = {
    constants: { TX_HEADROOM: HEADROOM },
    codecBuild: () => ({}),
    fdbBuild: () => ({}),
    // the packet's first byte says the peer index; the frame is the packet and 22 bytes before it
    encap(_c: unknown, _f: unknown, buf: Buffer, off: number, len: number, out: Int32Array) {
      out[0] = buf[off]!;
      out[1] = off - ENCAP;
      out[2] = len + ENCAP;
      return 0;
    },
    tunWriterSetup: () => true,
    tunWriterStats: () => ({ gso: true, uso: true, gsoRefused: 0, softSegments: 0, tcpRuns: 0, tcpRunPackets: 0, udpRuns: 0, udpRunPackets: 0 }),
    tunReader(_fd: number, _batch: number, cb: typeof reader) {
      reader = cb;
      return { stop() {}, stats: () => ({ tsoPackets: 0, tsoSegments: 0 }) };
    },
    udpSetSegment(fd: number, size: number) {
      assert.equal(fd, 11);
      segmentCalls.push(size);
    },
  } as unknown as NativeAddon;
  const main = fakeSocket('main', sent);
  const gso = fakeSocket('gso', sent);
  const socket: JsSocket = { socket: main as unknown as dgram.Socket, fd: 10, gso: gso as unknown as dgram.Socket, gsoFd: 11 };
  const counters = allocCounters(8);
  const engine = jsEngine.create({
    addon, tunFd: 3, counters, maxSlot: 8, log: silentLogger, codec: { mode: 'vxlan', vni: 1, mac: '0a:58:c6:13:01:00' },
    ...(opts.gso === false ? {} : { udpGso: true }),
  }, [socket]);
  const peers = [
    { name: 'n2', subnets: ['198.19.2.0/24'], publicIP: '198.18.0.2', vtepMAC: '0a:58:c6:13:02:00' },
    { name: 'n3', subnets: ['198.19.3.0/24'], publicIP: '198.18.0.3', vtepMAC: '0a:58:c6:13:03:00' },
  ];
  engine.setFdb(buildFdb(peers, { backend: 'vxlan', port: 8472, vni: 1 }, new SlotAllocator(8)));
  engine.start();
  /** One TUN batch: packets of these lengths, to these peer indexes (default 0). */
  const feed = (lens: number[], peerOf: (i: number) => number = () => 0): void => {
    reader!(lens.map((len, i) => {
      const b = Buffer.alloc(HEADROOM + len);
      b[HEADROOM] = peerOf(i);
      return b;
    }));
  };
  const txPackets = (): bigint => counters[counterIndex(0, COUNTER.txPackets)]!;
  const drops = (): bigint => counters[counterIndex(0, COUNTER.drops + DROP.udp_send)]!;
  return { engine, sent, segmentCalls, feed, main, gso, txPackets, drops };
}

const complete = (s: Sent, err: Error | null = null): void => s.cb(err, err ? undefined : s.frames.reduce((a, b) => a + b, 0));

test('a super-packet\'s segments to one peer leave in one GSO send, the short last one included', () => {
  const t = setup();
  t.feed([...Array<number>(45).fill(1448), 700]);
  assert.deepEqual(t.sent.map((s) => [s.socket, s.frames.length, s.ip]), [['gso', 44, '198.18.0.2'], ['gso', 2, '198.18.0.2']],
    'split at 65,000 bytes: 44 frames of 1470 B, then the rest');
  assert.deepEqual(t.sent[1]!.frames, [1470, 722]);
  assert.deepEqual(t.segmentCalls, [1470], 'UDP_SEGMENT set once for both runs');
  for (const s of t.sent) complete(s);
  assert.equal(t.txPackets(), 46n, 'each datagram counted');
});

test('runs end at another peer, at a longer datagram, at 64 datagrams; a lone datagram goes from the tunnel port', () => {
  const t = setup();
  t.feed([100, 100, 100, 100, 200, 200], (i) => (i === 2 ? 1 : 0));
  assert.deepEqual(t.sent.map((s) => [s.socket, s.frames, s.ip]), [
    ['gso', [122, 122], '198.18.0.2'], // ended by another peer
    ['main', [122], '198.18.0.3'], // a run of one goes singly
    ['main', [122], '198.18.0.2'], // ended by the longer one that follows
    ['gso', [222, 222], '198.18.0.2'],
  ]);
  const u = setup();
  u.feed(Array<number>(70).fill(100));
  assert.deepEqual(u.sent.map((s) => [s.socket, s.frames.length]), [['gso', 64], ['gso', 6]]);
});

test('UDP_SEGMENT changes only while the GSO socket has no send queued; otherwise the run goes singly', () => {
  const t = setup();
  t.feed([1000, 1000]);
  assert.deepEqual(t.segmentCalls, [1022]);
  t.gso.queued = 1; // that send is still in dgram's queue
  t.feed([500, 500]);
  assert.deepEqual(t.segmentCalls, [1022], 'not changed under a queued send');
  assert.deepEqual(t.sent.slice(1).map((s) => [s.socket, s.frames]), [['main', [522]], ['main', [522]]]);
  t.feed([1000, 1000]);
  assert.deepEqual(t.sent.at(-1)!.socket, 'gso', 'a run of the size in force still goes as one');
  t.gso.queued = 0;
  t.feed([500, 500]);
  assert.deepEqual([t.segmentCalls, t.sent.at(-1)!.socket], [[1022, 522], 'gso']);
});

test('a GSO send that fails is sent again singly; EMSGSIZE keeps GSO on, another error turns it off', () => {
  const t = setup();
  t.feed([1000, 1000, 1000]);
  complete(t.sent[0]!, Object.assign(new Error('send EMSGSIZE'), { code: 'EMSGSIZE' }));
  assert.deepEqual(t.sent.slice(1).map((s) => [s.socket, s.frames]), [['main', [1022]], ['main', [1022]], ['main', [1022]]]);
  for (const s of t.sent.slice(1)) complete(s);
  assert.deepEqual([t.txPackets(), t.drops()], [3n, 0n], 'counted once, as sent');
  t.feed([1000, 1000]);
  assert.equal(t.sent.at(-1)!.socket, 'gso', 'still on');
  complete(t.sent.at(-1)!, Object.assign(new Error('send EIO'), { code: 'EIO' }));
  assert.deepEqual(t.sent.slice(-2).map((s) => s.socket), ['main', 'main']);
  const before = t.sent.length;
  t.feed([1000, 1000]);
  assert.deepEqual(t.sent.slice(before).map((s) => [s.socket, s.frames]), [['main', [1022]], ['main', [1022]]], 'off from now on');
});

test('without udpGso (offloads off, or UDP_SEGMENT refused) every datagram goes singly', () => {
  const t = setup({ gso: false });
  t.feed([1000, 1000, 1000]);
  assert.deepEqual(t.sent.map((s) => s.socket), ['main', 'main', 'main']);
  assert.deepEqual(t.segmentCalls, []);
});
