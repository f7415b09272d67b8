/**
 * Loader and typed surface of the N-API addon (native/binding/).
 *
 * The binding holds no logic: every function converts its arguments, calls
 * the C core (native/include/userlay.h) and turns a negative errno into a JS
 * Error whose `code` is the errno name ("EPERM", "EADDRINUSE", ...).
 * Addresses cross the boundary as strings ("198.18.0.1", "2001:2::1").
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { UserlayError } from '../errors.js';
import type { CodecMode } from './backends.js';

/** Layout and protocol constants exported by the addon (from userlay.h). */
export interface NativeConstants {
  readonly VNET_HDR_LEN: number;
  readonly TX_HEADROOM: number;
  readonly RX_OFFSET: number;
  readonly BUF_SIZE: number;
  readonly VXLAN_ENCAP_LEN: number;
  readonly SLOT_WIDTH: number;
  readonly DROP_COUNT: number;
  readonly FDB_MAGIC: number;
  readonly FDB_HDR_SIZE: number;
  readonly FDB_PEER_SIZE: number;
  readonly FDB_ROUTE_SIZE: number;
  /** TUNSETOFFLOAD flags (linux/if_tun.h). */
  readonly TUN_F_CSUM: number;
  readonly TUN_F_TSO4: number;
  readonly TUN_F_TSO6: number;
  readonly TUN_F_USO4: number;
  readonly TUN_F_USO6: number;
  /** enum ul_drop: reason name (lower-case, without UL_DROP_) -> number. */
  readonly drops: Readonly<Record<string, number>>;
}

/** A route as routeList() reports it. */
export interface RouteEntry {
  readonly dst: string;
  readonly prefixLen: number;
  readonly via?: string;
  readonly ifindex: number;
  readonly protocol: number;
}

/** Codec configuration: our side of the tunnel. */
export interface CodecConfig {
  readonly mode: CodecMode;
  readonly vni: number;
  /** Own VTEP MAC "aa:bb:cc:dd:ee:ff" (ignored for udp). */
  readonly mac: string;
}

/** A CodecConfig parsed once by codecBuild, for the per-packet encap and decap (freed by GC). */
export interface NativeCodec { readonly __brand: 'NativeCodec' }
/** An immutable native FDB table (freed by GC). */
export interface NativeFdb { readonly __brand: 'NativeFdb' }
/** A native forwarding engine handle. */
export interface NativeEngine { readonly __brand: 'NativeEngine' }
/** A libuv poll on a TUN fd feeding the js engine. */
export interface TunReader {
  /** Stop polling. Idempotent; the fd is not closed. */
  stop(): void;
  /** TSO/USO super-packets this reader split, and the segments they gave. */
  stats(): { tsoPackets: number; tsoSegments: number };
}

/**
 * Offload statistics of a native engine (struct ul_engine_stats); the js engine reports the
 * same shape (OffloadCounters), with zero where it has no such stage.
 */
export interface NativeEngineStats {
  /** TSO/USO super-packets read from the TUN and split, and their segments. */
  readonly tsoPackets: number;
  readonly tsoSegments: number;
  /** UDP GRO buffers of 2+ datagrams received, and their datagrams. */
  readonly groBuffers: number;
  readonly groDatagrams: number;
  /** TCP GSO writes to the TUN in use (false once the kernel refused one). */
  readonly tunGso: boolean;
  /** UDP GSO writes to the TUN in use: receive coalescing of UDP runs (the start probe found them taken, Linux >= 6.2). */
  readonly tunUso: boolean;
  /** GSO writes the TUN refused (the start probes included). */
  readonly tunGsoRefused: number;
  /** Segments written in software instead. */
  readonly tunSoftSegments: number;
  /** Receive coalescing: super-packets written to the TUN with GSO (TCP runs, UDP runs), and the received packets in them. */
  readonly tunTcpRuns: number;
  readonly tunTcpRunPackets: number;
  readonly tunUdpRuns: number;
  readonly tunUdpRunPackets: number;
  /** Packets sent with the inner checksum left partial, to peers that take it (Peer.partialCsum). */
  readonly partialCsumPackets: number;
}

/**
 * The results encap() writes into its `out` array (an Int32Array of at least ENCAP_OUT.length):
 * index of the peer in the snapshot's peer array (-1 on no_route), start and length of the UDP
 * payload in the buffer, and the peer's path MTU (the MTU to report when encap returns too_big:
 * the packet is longer than the path carries and may not be fragmented, nothing was
 * encapsulated).
 */
export const ENCAP_OUT = { peer: 0, frameOff: 1, frameLen: 2, mtu: 3, length: 4 } as const;

/**
 * The results decap() writes into its `out` array (an Int32Array of at least DECAP_OUT.length):
 * index of the sending peer (-1 when unknown); the inner IP packet's offset in the buffer and
 * its length (0 unless decap returned 0); and the datagram's length as its headers give it
 * (encapsulation + inner IP length, also for most drops; 0 when the headers are unreadable):
 * where the next datagram of a coalesced run starts.
 */
export const DECAP_OUT = { peer: 0, pktOff: 1, pktLen: 2, frameLen: 3, length: 4 } as const;

/** Engine configuration (see struct ul_engine_cfg). */
export interface EngineConfig {
  readonly tunFd: number;
  readonly udpFd: number;
  readonly codec: CodecConfig;
  /** Source address of ICMP errors written back into the TUN (own subnet's address). */
  readonly icmpSrc4?: string;
  readonly icmpSrc6?: string;
  /** Caller-owned counters, (maxSlot + 1) * SLOT_WIDTH entries; kept alive by the engine. */
  readonly counters: BigUint64Array;
  readonly maxSlot: number;
  /** Packets per batch (1..256, default 64). */
  readonly batch?: number;
  /**
   * Sockets to send from (udpOpenSender on the same address), at most 64:
   * each inner flow leaves from the one its hash picks, i.e. with its own
   * outer source port (as the kernel vxlan device varies it). Absent: send
   * from udpFd. Owned by the caller.
   */
  readonly txFds?: readonly number[];
  /**
   * Thread pairs 1.. (pair 0 is tunFd/udpFd): each a TUN queue from
   * tunOpenQueue and a socket of the udpOpenGroup group; at most 7. Absent:
   * one pair. Owned by the caller.
   */
  readonly queues?: readonly { readonly tunFd: number; readonly udpFd: number }[];
  /**
   * Dual stack: the sockets of the second underlay family (struct ul_engine_cfg udp[1]), in
   * the roles of udpFd, txFds and queues[].udpFd (one queueFd per further pair). A packet
   * leaves from the sockets of its peer entry's family. Owned by the caller.
   */
  readonly otherFamily?: { readonly udpFd: number; readonly txFds?: readonly number[]; readonly queueFds?: readonly number[] };
  /** 1: probe GSO writes to the TUN at create (offloads auto). */
  readonly probeTunGso?: 0 | 1;
  /** 1: test hook, the TUN refuses every GSO write (as some kernels do). */
  readonly testRefuseTunGso?: 0 | 1;
}

/** The addon's functions. */
export interface NativeAddon {
  readonly constants: NativeConstants;

  // --- system: TUN, UDP, netlink (need CAP_NET_ADMIN) ---
  /** Open a TUN (IFF_TUN|IFF_NO_PI, optional IFF_VNET_HDR), non-blocking. */
  tunOpen(name: string, vnetHdr: boolean): { fd: number; name: string };
  /** Open a non-blocking UDP socket bound to address:port ("" = any IPv4, "::" = any IPv6). */
  udpOpen(address: string, port: number): number;
  /**
   * Open a UDP socket that only sends, on an ephemeral port of address: the kernel drops every
   * datagram sent to it before it is queued (native/src/udp.c). For sockets nobody reads.
   */
  udpOpenSender(address: string): number;
  /**
   * Open one queue of a multi-queue TUN (IFF_MULTI_QUEUE, vnet header as
   * tunOpen): the first call creates the device ("" = kernel-named), each
   * further call with its name attaches a queue. Every queue needs its own
   * tunSetOffloads.
   */
  tunOpenQueue(name: string, vnetHdr: boolean): { fd: number; name: string };
  /**
   * `count` (1..8) sockets bound to address:port as one SO_REUSEPORT group,
   * guarded so that a taken port still throws EADDRINUSE
   * (native/src/udp.c). The caller owns the fds.
   */
  udpOpenGroup(address: string, port: number, count: number): number[];
  /**
   * TUNSETOFFLOAD on a TUN opened with vnetHdr: CSUM|TSO4|TSO6 of `want`
   * first, then its USO4|USO6 on top; flags in `refuse` count as refused
   * without asking the kernel (test hook). Returns the flags in force; a
   * refused flag is not an error.
   */
  tunSetOffloads(fd: number, want: number, refuse: number): number;
  /** Turn UDP_GRO on or off on a socket from udpOpen. Throws the errno (ENOPROTOOPT: old kernel). */
  udpSetGro(fd: number, on: boolean): void;
  /**
   * Set the UDP_SEGMENT socket option: sends longer than `size` leave as datagrams of `size`
   * (the last shorter); 0 turns it off. Throws the errno (ENOPROTOOPT: old kernel).
   */
  udpSetSegment(fd: number, size: number): void;
  /** close(2). */
  close(fd: number): void;
  /**
   * malloc_trim(0): hand the free memory of every malloc arena back to the kernel.
   * True when some was released. No effect on memory in use.
   */
  mallocTrim(): boolean;
  linkIndex(ifname: string): number;
  /** The name of the link with index `ifindex`, or null when there is none. */
  linkName(ifindex: number): string | null;
  /** Set MTU (mtu <= 0 keeps it) and bring the link up or down. */
  linkSet(ifname: string, mtu: number, up: boolean): void;
  linkDel(ifname: string): void;
  addrAdd(ifname: string, address: string, prefixLen: number): void;
  addrDel(ifname: string, address: string, prefixLen: number): void;
  /** Add or replace a route to dst/prefixLen out of ifname, optionally via a gateway (onlink). */
  routeAdd(ifname: string, dst: string, prefixLen: number, via?: string | null, onlink?: boolean): void;
  routeDel(ifname: string, dst: string, prefixLen: number): void;
  /**
   * Main-table unicast routes of `family` out of `ifname` (null: any device) whose protocol is
   * `protocol` (-1: any), from an RTM_GETROUTE dump. `via` is absent for a route without gateway.
   */
  routeList(family: 4 | 6, ifname: string | null, protocol: number): RouteEntry[];

  // --- FDB and codec (no privileges) ---
  /** Build a table from a snapshot (src/dataplane/fdb.ts encodes it). Throws EINVAL. */
  fdbBuild(snapshot: Uint8Array): NativeFdb;
  /** Longest-prefix match: peer index or -1. */
  fdbLookup(fdb: NativeFdb, address: string): number;
  /** Peer index whose underlay IP is `address`, or -1. */
  fdbPeerByUnderlay(fdb: NativeFdb, address: string): number;
  /** Parse a codec configuration once, for encap and decap. Throws TypeError. */
  codecBuild(codec: CodecConfig): NativeCodec;
  /**
   * Encapsulate in place the IP packet buf[pktOff, pktOff+pktLen); pktOff must leave
   * VXLAN_ENCAP_LEN bytes of headroom. Returns 0 or a drop reason (DROP), the results in `out`
   * (ENCAP_OUT). The per-packet calls return numbers, not objects: an object with named
   * properties made in C cost 3-4 µs a packet, most of encap's and decap's time.
   */
  encap(codec: NativeCodec, fdb: NativeFdb, buf: Uint8Array, pktOff: number, pktLen: number, out: Int32Array): number;
  /** Validate and decapsulate the datagram buf[off, off+len) received from `srcAddress`: 0 or a drop reason, the results in `out` (DECAP_OUT). */
  decap(codec: NativeCodec, fdb: NativeFdb, buf: Uint8Array, off: number, len: number, srcAddress: string, out: Int32Array): number;
  /**
   * The ICMP error answering `orig`, from `src`: destination unreachable (no route) for
   * `tooBigMtu` 0, else "fragmentation needed" (IPv4) / "packet too big" (IPv6) reporting that
   * MTU; null when none is due (native/src/icmp.c says when).
   */
  icmpError(orig: Uint8Array, src: string, tooBigMtu: number): Buffer | null;
  /** Split [virtio-net header | TSO/USO super-packet] into `out`, segments back to back; returns their count. */
  tsoSplit(pkt: Uint8Array, out: Uint8Array): number;
  /** Group `n` packets at `buf + k * stride` as the receive path does (leaders' headers rewritten in place); returns the writes it would take. */
  groBatch(buf: Uint8Array, stride: number, n: number, mtu: number): number;

  // --- TUN I/O for the js engine ---
  /**
   * Poll a TUN fd (opened with vnetHdr) on the libuv loop; on readiness read
   * up to `batch` packets with the engines' one TUN read path (checksums
   * finished, TSO/USO super-packets split into segments) and call onPackets
   * once with them. Each Buffer is [TX_HEADROOM bytes of headroom | IP
   * packet] so encap can work in place. The packets of one call are views of
   * a single Buffer the callee owns: each may be written within its own
   * bounds, and the batch's memory lives until the last of them is
   * collected. Read errors are reported as onPackets(null, err). Drops
   * (runts, bad virtio headers, read errors) are counted in slot 0 of
   * `counters` when given (the reader keeps it referenced).
   */
  tunReader(fd: number, batch: number, onPackets: (packets: Buffer[] | null, err?: Error) => void, counters?: BigUint64Array): TunReader;
  /**
   * Write one IP packet pkt[off, off+len) to a TUN opened with vnetHdr; the
   * binding prepends the header from ul_vnet_hdr_for_rx. Throws on error
   * (code EAGAIN when the queue is full).
   */
  tunWrite(fd: number, pkt: Uint8Array, off: number, len: number): void;
  /**
   * Write received IP packets to a TUN opened with vnetHdr as the native
   * engine does: packet i is bufs[i][offs[i], offs[i] + lens[i]) (at most
   * 256 packets). In-order TCP segments of one flow are coalesced into one
   * GSO write (ul_gro_batch), so the buffers are modified in place: the
   * headers of the first segment of each run are rewritten (and a TCP packet
   * longer than the TUN MTU gets its checksum field set to the partial sum).
   * Returns how many packets failed to write (EAGAIN included) and sets
   * lens[i] to 0 for each of them; throws a TypeError (code EINVAL) on bad
   * arguments, before writing anything.
   */
  tunWriteBatch(fd: number, bufs: readonly Uint8Array[], offs: Uint32Array | number[], lens: Uint32Array | number[]): number;
  /**
   * Start this thread's TUN writer for fd afresh (the one tunWrite and
   * tunWriteBatch use): probe = write one GSO packet that must be taken
   * (refused: GSO writes off, counted); refuseGso = test hook. Returns
   * whether GSO writes are in use.
   */
  tunWriterSetup(fd: number, probe: boolean, refuseGso: boolean): boolean;
  /** This thread's TUN writer for fd: TCP and UDP GSO writes in use, GSO writes refused, segments cut in software. */
  tunWriterStats(fd: number): {
    gso: boolean; uso: boolean; gsoRefused: number; softSegments: number;
    tcpRuns: number; tcpRunPackets: number; udpRuns: number; udpRunPackets: number;
  };

  // --- native engine ---
  engineCreate(cfg: EngineConfig): NativeEngine;
  /** Build a table from the snapshot and swap it in atomically. Throws EINVAL. */
  engineSetFdb(engine: NativeEngine, snapshot: Uint8Array): void;
  engineStart(engine: NativeEngine): void;
  /** Wake and join the threads. Idempotent. */
  engineStop(engine: NativeEngine): void;
  /** Stop and free. The handle must not be used afterwards. */
  engineDestroy(engine: NativeEngine): void;
  /** Offload statistics (relaxed reads of the threads' counters). */
  engineStats(engine: NativeEngine): NativeEngineStats;
}

let cached: NativeAddon | undefined;

/** Absolute path of the built addon. */
export function addonPath(): string {
  const here = path.dirname(fileURLToPath(import.meta.url)); // dist/src/dataplane
  return path.resolve(here, '../../../native/build/Release/userlay.node');
}

/** Load the addon once. Throws UserlayError ENOADDON with a hint when it is not built. */
export function loadAddon(): NativeAddon {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  try {
    cached = require(addonPath()) as NativeAddon;
  } catch (err) {
    throw new UserlayError('ENOADDON', `load native addon ${addonPath()}: ${(err as Error).message} (run "npm install" to build it)`, { cause: err });
  }
  return cached;
}
