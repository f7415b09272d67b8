/**
 * The js engine: the portable reference path. Same wire format and counters
 * as the native engine, but UDP goes through node core `dgram` and every
 * packet passes the JS thread; the addon is used only for TUN I/O and for
 * the codec (encap/decap against a NativeFdb), so both engines share one
 * implementation of the wire format and of receive validation.
 *
 * Pipeline
 *   tx:  addon.tunReader polls the TUN fd on the libuv loop and hands a batch
 *        of Buffers, each [TX_HEADROOM | IP packet] (views of one Buffer
 *        per batch); it reads through the native engine's read path
 *        (ul_tun_read_batch): TSO/USO super-packets arrive split into
 *        segments, runts and bad headers are counted there
 *        -> addon.encap in place (LPM lookup + VXLAN/Ethernet header)
 *           miss: count no_route; ICMP unreachable via addon.icmpError and
 *           addon.tunWrite, rate-limited (token bucket 100/s, burst 50);
 *           longer than the peer's path MTU and not to be fragmented (res.
 *           tooBig): count too_big, ICMP too big the same way
 *        -> gather runs of equal datagrams to one peer (design notes, UDP
 *           GSO); at the end of the batch, or when a datagram does not fit
 *           the run, send it: one socket.send of the run's frames from the
 *           GSO socket, or socket.send(frame, peer port, peer IP, the
 *           peer's completion callback) of each, from the sockets of the
 *           underlay family of the peer entry encap chose (a dual-stack node
 *           has sockets of each family; a dual-stack peer an entry for each)
 *        -> on completion: count tx packets/bytes (slot 0 and the peer's slot)
 *   rx:  either socket's 'message' (datagram or UDP GRO buffer, rinfo)
 *        -> cut a GRO buffer into its datagrams (design notes, UDP GRO)
 *        -> addon.decap(buf, off, len, rinfo.address) of each: all
 *           validation checks; a drop counts its reason
 *           (encap and decap take the codec parsed once and write their
 *           results into arrays reused for every packet)
 *        -> queue (datagram, inner packet offset/length, counter slot);
 *           the first packet of a queue schedules a flush with setImmediate,
 *           and RX_BATCH queued packets flush at once
 *        -> flush: addon.tunWriteBatch (the native engine's write-out:
 *           in-order TCP segments of one flow become one GSO write, others
 *           get their vnet header; the datagrams' bytes are rewritten there)
 *        -> count rx packets/bytes, or tun_write for packets that failed
 *   FDB: setFdb builds a NativeFdb with addon.fdbBuild and replaces the
 *        reference; the JS thread is the only user, so no lock is needed.
 *
 * Design notes (garbage per packet): every packet passes the JS thread, so
 * what it allocates is garbage the GC chases at line rate. Hence the reader
 * hands one Buffer per batch (the packets are views of it); send completion
 * callbacks are made once per peer, not once per packet; and the socket
 * resolves peer addresses (always IP literals) synchronously instead of
 * through dns.lookup, which costs a tick and closures per datagram sent.
 * What remains is mostly node's own: dgram allocates 64 KiB per received
 * datagram (shrunk to size) that only a scavenge frees, so the agent's RSS
 * follows V8's young-generation size more than anything done here.
 *
 * Design notes (the socket): the addon opens and binds it (native/src/udp.c), dgram adopts the
 * fd. dgram's own setRecvBufferSize stops at net.core.rmem_max (208 KiB on a stock Debian
 * kernel, 416 KiB counted), where the addon forces the native engine's 16 MiB as root. Measured
 * with Debian's default rmem_max (bench, 8 s, three interleaved pairs): UDP 1400-byte delivered
 * 25-28 kpps through dgram's socket, 30-34 through the addon's; single-stream TCP 0.61-0.69
 * against 0.69-0.71 Gbit/s. It also makes one place that sets IPV6_V6ONLY and the buffers.
 *
 * Design notes (UDP GRO): with offloads auto the socket has UDP_GRO, so one
 * 'message' can be a run of datagrams of one sender coalesced by the kernel:
 * all of the run's segment size but the last, which may be shorter. dgram
 * hands no cmsg to JS, so the segment size is not told, nor whether the
 * buffer is a run at all. The engine takes the first datagram's length as
 * its headers give it (decap's frameLen: VXLAN and Ethernet headers plus the
 * inner IP length). When that is shorter than the buffer and the bytes there
 * begin a datagram of exactly that length (or of the rest, when shorter), the
 * buffer is a run and is cut at that length; every piece is validated and
 * counted as a datagram of its own. Otherwise the bytes after the first
 * datagram are its padding, as without GRO. A sender can make its datagram's
 * padding look like a second datagram of its own; that is no more than
 * sending two datagrams, each checked as any other. The converse is the
 * limit of guessing: a run whose second datagram is malformed reads as a
 * padded first datagram, so the rest of that run is dropped uncounted (the
 * native engine, told the segment size, counts each of them). Only the
 * sender's own datagrams are lost that way.
 *
 * Design notes (UDP GSO): the sender's side of the same. With offloads auto
 * each family has a second socket (an ephemeral port on the same address:
 * receivers accept any source port) with the UDP_SEGMENT socket option, as
 * dgram cannot pass it per message. The segments of a TSO super-packet to one
 * peer (equal lengths, the last maybe shorter) are gathered into a run and
 * sent in one socket.send of a Buffer list, which the kernel cuts into
 * datagrams; the option is set to a run's length when it differs, and only
 * while no send waits in the socket's queue (a queued send would leave with
 * the new value); else, and for runs of one, the datagrams go singly from
 * the tunnel port's socket. A failed GSO send is sent again singly; unless
 * it failed for its size (EMSGSIZE, EINVAL: a route of a smaller MTU) that
 * also turns GSO off. Measured (lab --engine js --seconds 5,
 * three interleaved pairs on a busy host): 0.47-0.57 Gbit/s before, 1.30-1.80
 * with GSO and GRO; see RESULTS.md.
 *
 * Design notes (batched TUN writes): received packets wait until the loop
 * iteration's I/O is done (libuv reads up to 32 datagrams per readiness
 * event and node emits each as 'message' synchronously), so the TCP
 * segments of one flow reach the TUN together and coalesce: the receiving
 * pod's stack is crossed once per run instead of once per segment and sends
 * far fewer ACKs back through this thread. Measured in the 2-node lab
 * (lab --engine js --seconds 5, 3 runs each): 0.35-0.39 Gbit/s with one
 * tunWrite per packet, 0.51-0.57 Gbit/s batched; agent RSS unchanged
 * (55-59 MB). The queue holds the datagrams themselves (no copy) in arrays
 * it reuses.
 */
import dgram from 'node:dgram';
import { DECAP_OUT, ENCAP_OUT, type NativeAddon, type NativeCodec, type NativeFdb, type TunReader } from './addon.js';
import { COUNTER, DROP, counterIndex } from './counters.js';
import type { Engine, EngineKindImpl, EngineSetup } from './engine.js';
import type { FdbTable } from './fdb.js';
import type { OffloadCounters } from './offloads.js';
import { parseIP } from './net.js';
import { errorCode } from '../errors.js';

/** Received packets per addon.tunWriteBatch call, at most. */
const RX_BATCH = 64;

/**
 * A run sent with UDP_SEGMENT: at most the kernel's 64 segments, and the
 * native engine's cap on a message's bytes (the kernel refuses more than fits
 * one IP packet's 16-bit length).
 */
const GSO_MAX_SEGMENTS = 64;
const GSO_MAX_BYTES = 65_000;

/** ICMP error rate limit, the same as the native engine's. */
const ICMP_RATE_PER_SEC = 100;
const ICMP_BURST = 50;

class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(private readonly rate: number, private readonly burst: number, private readonly now = () => performance.now()) {
    this.tokens = burst;
    this.last = now();
  }

  take(): boolean {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.rate);
    this.last = t;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/** The js engine's sockets of one underlay family (openSocket). */
export interface JsSocket {
  /** Bound to the tunnel port: receives, and sends single datagrams. */
  readonly socket: dgram.Socket;
  readonly fd: number;
  /** Bound to an ephemeral port of the same address, takes in nothing: sends runs, UDP_SEGMENT set as an option. */
  readonly gso: dgram.Socket;
  readonly gsoFd: number;
}

/** A family's GSO socket and the UDP_SEGMENT size set on it now (0: none yet). */
interface GsoSender {
  readonly socket: dgram.Socket;
  readonly fd: number;
  size: number;
}

/** An entry of the current table (a peer's underlay address) as the tx path needs it. */
interface TxPeer {
  readonly slot: number;
  readonly ip: string;
  readonly port: number;
  /** The socket of the address's family; undefined when this node has none. */
  readonly socket: dgram.Socket | undefined;
  /** That family's GSO socket; undefined without one, or with offloads off or refused. */
  readonly gso: GsoSender | undefined;
  /** socket.send completion: counts the datagram (bytes = UDP payload length). */
  readonly sent: (err: Error | null, bytes?: number) => void;
}

class JsEngineImpl implements Engine {
  private fdb: NativeFdb | undefined;
  private readonly codec: NativeCodec;
  /** encap's and decap's results (ENCAP_OUT, DECAP_OUT), reused for every packet. */
  private readonly encapOut = new Int32Array(ENCAP_OUT.length);
  private readonly decapOut = new Int32Array(DECAP_OUT.length);
  /** Per entry index of the current table (FdbTable.entryList). */
  private peers: TxPeer[] = [];
  private reader: TunReader | undefined;
  private readonly icmp = new TokenBucket(ICMP_RATE_PER_SEC, ICMP_BURST);
  private readonly headroom: number;
  /** UDP payload bytes encap adds to an IP packet (constant per codec mode). */
  private encapOverhead = 0;
  private closed: Promise<void> | undefined;
  /** Received packets waiting for flushRx: datagram i holds packet i at rxOffs[i], rxLens[i] long. */
  private readonly rxBufs: Buffer[] = [];
  private readonly rxOffs = new Uint32Array(RX_BATCH);
  private readonly rxLens = new Uint32Array(RX_BATCH);
  /** Counter slot of each waiting packet's peer. */
  private readonly rxSlots = new Uint32Array(RX_BATCH);
  private rxFlushScheduled = false;
  /** Received buffers of 2+ datagrams (UDP GRO), and their datagrams. */
  private groBuffers = 0;
  private groDatagrams = 0;
  /**
   * The run being gathered for one send with UDP_SEGMENT (design notes, UDP GSO): frames to
   * runPeer, all runSize long (a shorter one ends the run: it is sent at once).
   */
  private run: Buffer[] = [];
  private runPeer: TxPeer | undefined;
  private runSize = 0;
  /** GSO sockets by underlay family (offloads auto, UDP_SEGMENT taken). */
  private readonly gsoByFamily = new Map<number, GsoSender>();
  /** Runs go out with UDP_SEGMENT; false after a GSO send failed (then single datagrams only). */
  private gsoOn: boolean;
  private readonly rxFlushLater = (): void => {
    this.rxFlushScheduled = false;
    if (!this.closed) this.flushRx();
  };

  /** The sockets by underlay family (4, 6), read once: address() is a system call. */
  private readonly byFamily: Map<number, dgram.Socket>;

  constructor(private readonly setup: EngineSetup, private readonly sockets: readonly JsSocket[]) {
    this.headroom = setup.addon.constants.TX_HEADROOM;
    this.codec = setup.addon.codecBuild(setup.codec);
    const families = sockets.map((s) => [s.socket.address().family === 'IPv6' ? 6 : 4, s] as const);
    this.byFamily = new Map(families.map(([f, s]) => [f, s.socket]));
    if (setup.udpGso) for (const [f, s] of families) this.gsoByFamily.set(f, { socket: s.gso, fd: s.gsoFd, size: 0 });
    this.gsoOn = this.gsoByFamily.size > 0;
  }

  setFdb(table: FdbTable): void {
    this.fdb = this.setup.addon.fdbBuild(table.encode());
    this.flushRun(); // its peer may be gone from the new table
    this.peers = table.entryList().map((e) => this.txPeer(e.peer.slot, e.ip, e.peer.port, this.socketOf(e.family), this.gsoByFamily.get(e.family)));
  }

  /** The bound socket of `family`, if this node has one. */
  private socketOf(family: number): dgram.Socket | undefined {
    return this.byFamily.get(family);
  }

  private txPeer(slot: number, ip: string, port: number, socket: dgram.Socket | undefined, gso: GsoSender | undefined): TxPeer {
    const sent = (err: Error | null, bytes?: number): void => {
      if (err) this.count(slot, COUNTER.drops + DROP.udp_send);
      else this.count(slot, COUNTER.txPackets, (bytes ?? 0) - this.encapOverhead);
    };
    return { slot, ip, port, socket, gso, sent };
  }

  offloadStats(): OffloadCounters {
    const r = this.reader?.stats() ?? { tsoPackets: 0, tsoSegments: 0 };
    const w = this.setup.addon.tunWriterStats(this.setup.tunFd);
    return { ...r, groBuffers: this.groBuffers, groDatagrams: this.groDatagrams, tunGso: w.gso, tunUso: w.uso, tunGsoRefused: w.gsoRefused, tunSoftSegments: w.softSegments,
      tunTcpRuns: w.tcpRuns, tunTcpRunPackets: w.tcpRunPackets, tunUdpRuns: w.udpRuns, tunUdpRunPackets: w.udpRunPackets, partialCsumPackets: 0 };
  }

  start(): void {
    if (this.reader || this.closed) return;
    const { addon, tunFd, batch, log } = this.setup;
    addon.tunWriterSetup(tunFd, this.setup.probeTunGso === 1, this.setup.testRefuseTunGso === 1);
    for (const { socket, gso } of this.sockets) {
      socket.on('message', (msg, rinfo) => this.receive(msg, rinfo.address));
      socket.on('error', (err) => log.warn('underlay socket error', { err }));
      gso.on('error', (err) => log.warn('underlay GSO socket error', { err })); // only sends: the kernel drops what arrives (udpOpenSender)
    }
    this.reader = addon.tunReader(tunFd, batch ?? 64, (packets, err) => {
      if (!packets) {
        // the reader stops polling after a hard read error (counted there): say so loudly
        log.error('TUN read failed, transmit stopped', { err });
        return;
      }
      for (const p of packets) this.transmit(p);
      this.flushRun();
    }, this.setup.counters);
  }

  /**
   * Count one packet at `offset` of slot 0 and `slot`; with bytes, also at
   * offset + 1. (Optimized code does this BigInt arithmetic on the
   * BigUint64Array without allocating: measured, no GC pressure.)
   */
  private count(slot: number, offset: number, bytes?: number, packets = 1n): void {
    const c = this.setup.counters;
    c[counterIndex(0, offset)]! += packets;
    if (slot > 0) c[counterIndex(slot, offset)]! += packets;
    if (bytes !== undefined) {
      const b = BigInt(bytes);
      c[counterIndex(0, offset + 1)]! += b;
      if (slot > 0) c[counterIndex(slot, offset + 1)]! += b;
    }
  }

  private transmit(buf: Buffer): void {
    const { addon } = this.setup;
    const len = buf.length - this.headroom;
    const out = this.encapOut;
    const reason = this.fdb ? addon.encap(this.codec, this.fdb, buf, this.headroom, len, out) : DROP.no_route;
    if (reason !== 0 && reason !== DROP.too_big) {
      this.count(0, COUNTER.drops + reason);
      if (reason === DROP.no_route) this.icmpError(buf.subarray(this.headroom), 0);
      return;
    }
    const peer = this.peers[out[ENCAP_OUT.peer]!]!;
    if (reason === DROP.too_big) {
      this.count(peer.slot, COUNTER.drops + DROP.too_big);
      this.icmpError(buf.subarray(this.headroom), out[ENCAP_OUT.mtu]!);
      return;
    }
    const frameLen = out[ENCAP_OUT.frameLen]!;
    this.encapOverhead = frameLen - len;
    if (!peer.socket) {
      this.count(peer.slot, COUNTER.drops + DROP.udp_send); // no socket of its family (buildFdb refuses such peers)
      return;
    }
    const frameOff = out[ENCAP_OUT.frameOff]!;
    if (!peer.gso || !this.gsoOn) {
      peer.socket.send(buf, frameOff, frameLen, peer.port, peer.ip, peer.sent);
      return;
    }
    if (peer !== this.runPeer || frameLen > this.runSize || this.run.length === GSO_MAX_SEGMENTS || this.run.length * this.runSize + frameLen > GSO_MAX_BYTES) {
      this.flushRun();
      this.runPeer = peer;
      this.runSize = frameLen;
    }
    this.run.push(buf.subarray(frameOff, frameOff + frameLen));
    if (frameLen < this.runSize) this.flushRun(); // a shorter datagram ends a run
  }

  /**
   * Send the gathered run: one datagram from the tunnel port's socket; two or more in one send
   * from the family's GSO socket with UDP_SEGMENT at the run's size. The size is changed only
   * while no send waits in that socket's queue (a queued send leaves with the option in force
   * when it leaves); else the run goes as single datagrams.
   */
  private flushRun(): void {
    const run = this.run;
    const peer = this.runPeer;
    if (run.length === 0 || !peer) return;
    this.run = [];
    this.runPeer = undefined;
    const gso = peer.gso!;
    if (run.length > 1 && gso.size !== this.runSize && gso.socket.getSendQueueCount() === 0) {
      try {
        this.setup.addon.udpSetSegment(gso.fd, this.runSize);
        gso.size = this.runSize;
      } catch (err) {
        this.gsoFailed(err);
      }
    }
    if (run.length === 1 || gso.size !== this.runSize || !this.gsoOn) {
      for (const frame of run) peer.socket!.send(frame, peer.port, peer.ip, peer.sent);
      return;
    }
    const n = BigInt(run.length);
    gso.socket.send(run, peer.port, peer.ip, (err, bytes) => {
      if (!err) {
        this.count(peer.slot, COUNTER.txPackets, (bytes ?? 0) - Number(n) * this.encapOverhead, n);
        return;
      }
      // the frames are still intact (the reader's batch buffer is not reused): send them singly.
      // EMSGSIZE/EINVAL: this run did not fit (a route with a smaller MTU than the frames, which
      // the kernel then fragments one by one); anything else turns GSO off
      if (errorCode(err) !== 'EMSGSIZE' && errorCode(err) !== 'EINVAL') this.gsoFailed(err);
      for (const frame of run) peer.socket!.send(frame, peer.port, peer.ip, peer.sent);
    });
  }

  /** A GSO send or UDP_SEGMENT failed: send single datagrams from now on, and say so once. */
  private gsoFailed(err: unknown): void {
    if (!this.gsoOn) return;
    this.gsoOn = false;
    this.setup.log.warn('UDP GSO send failed: sending one datagram per send from now on', { err });
  }

  /** Answer `orig` with ICMP unreachable (tooBigMtu 0) or too big, rate-limited. */
  private icmpError(orig: Buffer, tooBigMtu: number): void {
    const { addon, tunFd, icmpSrc4, icmpSrc6 } = this.setup;
    const version = orig.length > 0 ? orig[0]! >> 4 : 0;
    const src = version === 4 ? icmpSrc4 : version === 6 ? icmpSrc6 : undefined;
    if (!src || !this.icmp.take()) return;
    const reply = addon.icmpError(orig, src, tooBigMtu);
    if (!reply) return;
    try {
      addon.tunWrite(tunFd, reply, 0, reply.length);
    } catch {
      this.count(0, COUNTER.drops + DROP.tun_write);
    }
  }

  private receive(msg: Buffer, from: string): void {
    if (!this.fdb) {
      this.count(0, COUNTER.drops + DROP.unknown_peer);
      return;
    }
    const zone = from.indexOf('%');
    const src = zone < 0 ? from : from.slice(0, zone);
    const total = msg.length;
    const size = this.receiveDatagram(msg, 0, total, src, 0);
    if (!this.setup.udpGro || size === 0 || size >= total) return;
    // a UDP GRO run of datagrams of `size` bytes (the last maybe shorter), if the second piece
    // is a datagram of that length; else the first datagram's trailing bytes were padding
    let n = 1;
    for (let off = size; off < total; off += size, n++) {
      const len = Math.min(size, total - off);
      if (this.receiveDatagram(msg, off, len, src, n === 1 ? len : 0) < 0) return;
    }
    this.groBuffers++;
    this.groDatagrams += n;
  }

  /**
   * Decapsulate msg[off, off+len) and queue its packet, or count its drop. With `expect` > 0
   * nothing is done unless the datagram's headers give it that length (returns -1 then).
   * Returns its length as its headers give it (0: unreadable).
   */
  private receiveDatagram(msg: Buffer, off: number, len: number, src: string, expect: number): number {
    const out = this.decapOut;
    const reason = this.setup.addon.decap(this.codec, this.fdb!, msg, off, len, src, out);
    const frameLen = out[DECAP_OUT.frameLen]!;
    if (expect > 0 && frameLen !== expect) return -1;
    const peerIndex = out[DECAP_OUT.peer]!;
    const slot = peerIndex >= 0 ? (this.peers[peerIndex]?.slot ?? 0) : 0;
    if (reason !== 0) {
      this.count(slot, COUNTER.drops + reason);
      return frameLen;
    }
    const n = this.rxBufs.length;
    this.rxBufs.push(msg);
    this.rxOffs[n] = out[DECAP_OUT.pktOff]!;
    this.rxLens[n] = out[DECAP_OUT.pktLen]!;
    this.rxSlots[n] = slot;
    if (n + 1 >= RX_BATCH) {
      this.flushRx();
    } else if (!this.rxFlushScheduled) {
      this.rxFlushScheduled = true;
      setImmediate(this.rxFlushLater);
    }
    return frameLen;
  }

  /** Write the waiting packets to the TUN in one call and count each. */
  private flushRx(): void {
    const n = this.rxBufs.length;
    if (n === 0) return;
    const { addon, tunFd } = this.setup;
    let failed: number;
    try {
      failed = addon.tunWriteBatch(tunFd, this.rxBufs, this.rxOffs, this.rxLens);
    } catch {
      failed = n; // bad arguments: nothing was written (cannot happen: decap checked the bounds)
      this.rxLens.fill(0, 0, n);
    }
    for (let i = 0; i < n; i++) {
      const len = this.rxLens[i]!;
      if (failed > 0 && len === 0) this.count(this.rxSlots[i]!, COUNTER.drops + DROP.tun_write);
      else this.count(this.rxSlots[i]!, COUNTER.rxPackets, len);
    }
    this.rxBufs.length = 0;
  }

  close(): Promise<void> {
    this.closed ??= new Promise<void>((resolve) => {
      this.flushRx(); // the TUN fd is still open: the caller closes it after us
      this.reader?.stop();
      this.reader = undefined;
      this.fdb = undefined;
      const all = this.sockets.flatMap((s) => [s.socket, s.gso]);
      let open = all.length;
      for (const socket of all) socket.close(() => (--open === 0 ? resolve() : undefined));
    });
    return this.closed;
  }
}

/**
 * dgram's address lookup for peers given as IP literals (FDB peers always
 * are): answers synchronously, where dns.lookup answers an IP literal on the
 * next tick, at a tick and a few closures per datagram sent.
 */
function literalLookup(address: string, family: unknown, callback: (err: Error | null, address: string, family: number) => void): void {
  callback(null, address, family === 6 || family === 'IPv6' ? 6 : 4);
}

/**
 * Bind the underlay socket: opened by the addon (native/src/udp.c: the native engine's buffer
 * sizes, forced past net.core.rmem_max as root, IPV6_V6ONLY, non-blocking) and handed to dgram,
 * which reads and writes it from here on and closes it. A taken port throws EADDRINUSE from
 * udpOpen, as for the native engine. 'send only': an ephemeral port that takes in nothing
 * (addon.udpOpenSender), for the GSO socket. The fd comes back beside the socket: dgram does
 * not tell it, and UDP_GRO and the GSO sends need it.
 */
async function bindDgram(
  addon: NativeAddon,
  address: string,
  port: number | 'send only',
): Promise<{ socket: dgram.Socket; fd: number }> {
  const type = parseIP(address).family === 6 ? 'udp6' : 'udp4';
  const fd = port === 'send only' ? addon.udpOpenSender(address) : addon.udpOpen(address, port);
  const socket = dgram.createSocket({ type, lookup: literalLookup });
  let adopted = false; // dgram owns the fd once bind() returns (uv_udp_open took it)
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind({ fd }, () => {
        socket.off('error', reject);
        resolve();
      });
      adopted = true;
    });
  } catch (err) {
    if (adopted) socket.close();
    else addon.close(fd);
    throw err;
  }
  return { socket, fd };
}

/** The js engine kind: `dgram` sockets and forwarding on the JS thread. */
export const jsEngine: EngineKindImpl<JsSocket> = {
  async openSocket(addon: NativeAddon, address, port) {
    const { socket, fd } = await bindDgram(addon, address, port);
    try {
      const gso = await bindDgram(addon, address, 'send only');
      return { socket, fd, gso: gso.socket, gsoFd: gso.fd };
    } catch (err) {
      await closeDgram(socket);
      throw err;
    }
  },
  async closeSocket(_addon, s) {
    await Promise.all([closeDgram(s.socket), closeDgram(s.gso)]);
  },
  nativeFd(s) {
    return s.fd; // UDP_GRO without the cmsg: see the design notes
  },
  gsoFd(s) {
    return s.gsoFd;
  },
  sendOnlyFds(s) {
    return [s.gsoFd];
  },
  queueFds() {
    return []; // one queue: threads > 1 is refused for the js engine
  },
  create(setup, sockets) {
    return new JsEngineImpl(setup, sockets);
  },
};

function closeDgram(socket: dgram.Socket): Promise<void> {
  return new Promise((resolve) => socket.close(() => resolve()));
}
