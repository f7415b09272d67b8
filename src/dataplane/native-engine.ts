/**
 * The native engine: the hot path runs on dedicated C threads, one tx and
 * one rx thread per thread pair (--threads; native/src/engine.c); JS only
 * hands over FDB snapshots and reads counters. With N pairs the TUN has N
 * queues and the tunnel port N SO_REUSEPORT receive sockets; pair i reads
 * TUN queue i and receives on socket i, all send from the txFds. A
 * dual-stack node has such a socket set per underlay family (engine.c,
 * "Dual stack"): a packet leaves from the set of its peer entry's family.
 *
 * Pipeline
 *   tx thread:  ul_tun_read_batch: read() a batch from the TUN (virtio-net
 *               header in front of each packet, landing UL_TX_HEADROOM into
 *               its buffer), complete partial checksums, split TSO/USO
 *               super-packets into segments
 *               -> LPM lookup of the inner destination in the current FDB
 *                  (miss: count no_route, write ICMP unreachable into the TUN)
 *               -> encap in place (VXLAN + inner Ethernet, or nothing for udp)
 *               -> sendmmsg() the batch to each peer's underlay IP:port, each
 *                  inner flow from its own source socket (outer source port)
 *               -> count tx packets/bytes in slot 0 and the peer's slot
 *   rx thread:  recvmmsg() a batch from the UDP socket (UDP GRO: a buffer may
 *               hold a run of datagrams, cut apart by the cmsg's size)
 *               -> validate and decap each datagram (flags, VNI, MAC, inner
 *                  IP, known outer source, inner source inside that peer's
 *                  subnets)
 *               -> coalesce TCP runs, write to the TUN with a virtio-net
 *                  header (GSO; in software if the kernel refuses GSO writes)
 *               -> count rx packets/bytes or the drop reason
 *   JS thread:  engineSetFdb(snapshot) builds a table and swaps it in
 *               atomically; the replaced table is freed once both threads
 *               passed a quiescent point. stats() reads the counters block.
 */
import type { NativeAddon, NativeEngine } from './addon.js';
import type { Engine, EngineKindImpl, EngineSetup } from './engine.js';
import type { FdbTable } from './fdb.js';
import type { OffloadCounters } from './offloads.js';

/** offloadStats() of a closed engine. */
const CLOSED_STATS: OffloadCounters = {
  tsoPackets: 0, tsoSegments: 0, groBuffers: 0, groDatagrams: 0, tunGso: false, tunUso: false, tunGsoRefused: 0, tunSoftSegments: 0,
  tunTcpRuns: 0, tunTcpRunPackets: 0, tunUdpRuns: 0, tunUdpRunPackets: 0, partialCsumPackets: 0,
};

/**
 * Outer UDP source ports per node: the engine sends each inner flow from one
 * of this many sockets (hash of the inner 5-tuple, native/src/codec.c), so
 * underlay ECMP and receive-side RSS can spread flows while a flow keeps its
 * path, as with the kernel vxlan device. A UDP socket cannot pick its source
 * port per message, hence one socket per port (ephemeral ports, bound to
 * the public IP); receivers accept any source port. Nothing reads them: they
 * take in nothing (addon.udpOpenSender), so datagrams sent to them cannot
 * fill their queues.
 */
export const TX_SOURCE_PORTS = 16;

/** The underlay sockets of a native engine (fds from addon.udpOpen / udpOpenGroup). */
export interface NativeSocket {
  /** Bound to the tunnel port: receives (and UDP_GRO is set on it). */
  readonly fd: number;
  /** Receive sockets of thread pairs 1.. (the rest of fd's SO_REUSEPORT group); [] with one pair. */
  readonly queueFds: readonly number[];
  /** Bound to ephemeral ports on the same address: send, one per outer source port. */
  readonly txFds: readonly number[];
}

function closeAll(addon: NativeAddon, socket: NativeSocket, log?: EngineSetup['log']): void {
  for (const fd of [socket.fd, ...socket.queueFds, ...socket.txFds]) {
    try {
      addon.close(fd);
    } catch (err) {
      log?.warn('close UDP socket', { fd, err });
    }
  }
}

class NativeEngineImpl implements Engine {
  private handle: NativeEngine | undefined;
  private closed: Promise<void> | undefined;

  constructor(private readonly setup: EngineSetup, private readonly sockets: readonly NativeSocket[]) {
    const { addon } = setup;
    const [socket, other] = sockets as [NativeSocket, NativeSocket?];
    this.handle = addon.engineCreate({
      tunFd: setup.tunFd,
      udpFd: socket.fd,
      txFds: socket.txFds,
      ...(socket.queueFds.length > 0 ? {
        queues: socket.queueFds.map((udpFd, i) => ({ tunFd: setup.tunQueueFds![i]!, udpFd })),
      } : {}),
      ...(other ? { otherFamily: { udpFd: other.fd, txFds: other.txFds, queueFds: other.queueFds } } : {}),
      codec: setup.codec,
      ...(setup.icmpSrc4 ? { icmpSrc4: setup.icmpSrc4 } : {}),
      ...(setup.icmpSrc6 ? { icmpSrc6: setup.icmpSrc6 } : {}),
      counters: setup.counters,
      maxSlot: setup.maxSlot,
      batch: setup.batch ?? 64,
      ...(setup.probeTunGso ? { probeTunGso: setup.probeTunGso } : {}),
      ...(setup.testRefuseTunGso ? { testRefuseTunGso: setup.testRefuseTunGso } : {}),
    });
  }

  setFdb(table: FdbTable): void {
    if (!this.handle) throw new Error('native engine is closed');
    this.setup.addon.engineSetFdb(this.handle, table.encode());
  }

  offloadStats(): OffloadCounters {
    if (!this.handle) return CLOSED_STATS;
    return this.setup.addon.engineStats(this.handle);
  }

  start(): void {
    if (!this.handle) throw new Error('native engine is closed');
    this.setup.addon.engineStart(this.handle);
  }

  close(): Promise<void> {
    this.closed ??= Promise.resolve().then(() => {
      const { addon, log } = this.setup;
      const handle = this.handle;
      this.handle = undefined;
      if (handle) {
        addon.engineStop(handle);
        addon.engineDestroy(handle);
      }
      for (const socket of this.sockets) closeAll(addon, socket, log);
    });
    return this.closed;
  }
}

/** The native engine kind: a C UDP socket and C forwarding threads. */
export const nativeEngine: EngineKindImpl<NativeSocket> = {
  async openSocket(addon, address, port, threads = 1) {
    // one thread pair: a plain socket, exactly as before --threads
    const group = threads > 1 ? addon.udpOpenGroup(address, port, threads) : [addon.udpOpen(address, port)];
    const [fd, ...queueFds] = group as [number, ...number[]];
    const txFds: number[] = [];
    try {
      while (txFds.length < TX_SOURCE_PORTS) txFds.push(addon.udpOpenSender(address));
    } catch (err) {
      closeAll(addon, { fd, queueFds, txFds });
      throw err;
    }
    return { fd, queueFds, txFds };
  },
  async closeSocket(addon, socket) {
    closeAll(addon, socket);
  },
  nativeFd(socket) {
    return socket.fd;
  },
  gsoFd() {
    return undefined; // the tx threads pass the segment size per message (cmsg)
  },
  queueFds(socket) {
    return socket.queueFds;
  },
  sendOnlyFds(socket) {
    return socket.txFds;
  },
  create(setup, sockets) {
    return new NativeEngineImpl(setup, sockets);
  },
};
