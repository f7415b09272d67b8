/**
 * The native engine: the hot path runs on two dedicated C threads
 * (native/src/engine.c); JS only hands over FDB snapshots and reads counters.
 *
 * Pipeline
 *   tx thread:  read() a batch from the TUN (virtio-net header in front of each
 *               packet, landing UL_TX_HEADROOM into its buffer)
 *               -> complete a partial checksum (ul_vnet_apply_tx)
 *               -> LPM lookup of the inner destination in the current FDB
 *                  (miss: count no_route, write ICMP unreachable into the TUN)
 *               -> encap in place (VXLAN + inner Ethernet, or nothing for udp)
 *               -> sendmmsg() the batch to each peer's underlay IP:port
 *               -> count tx packets/bytes in slot 0 and the peer's slot
 *   rx thread:  recvmmsg() a batch from the UDP socket
 *               -> validate and decap (flags, VNI, MAC, inner IP, known
 *                  outer source, inner source inside that peer's subnets)
 *               -> prepend the virtio-net header, write() to the TUN
 *               -> count rx packets/bytes or the drop reason
 *   JS thread:  engineSetFdb(snapshot) builds a table and swaps it in
 *               atomically; the replaced table is freed once both threads
 *               passed a quiescent point. stats() reads the counters block.
 */
import type { NativeEngine } from './addon.js';
import type { Engine, EngineKindImpl, EngineSetup } from './engine.js';
import type { FdbTable } from './fdb.js';

/** A UDP socket fd from addon.udpOpen. */
export interface NativeSocket {
  readonly fd: number;
}

class NativeEngineImpl implements Engine {
  private handle: NativeEngine | undefined;
  private closed: Promise<void> | undefined;

  constructor(private readonly setup: EngineSetup, private readonly socket: NativeSocket) {
    const { addon } = setup;
    this.handle = addon.engineCreate({
      tunFd: setup.tunFd,
      udpFd: socket.fd,
      codec: setup.codec,
      ...(setup.icmpSrc4 ? { icmpSrc4: setup.icmpSrc4 } : {}),
      ...(setup.icmpSrc6 ? { icmpSrc6: setup.icmpSrc6 } : {}),
      counters: setup.counters,
      maxSlot: setup.maxSlot,
      batch: setup.batch ?? 64,
    });
  }

  setFdb(table: FdbTable): void {
    if (!this.handle) throw new Error('native engine is closed');
    this.setup.addon.engineSetFdb(this.handle, table.encode());
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
      try {
        addon.close(this.socket.fd);
      } catch (err) {
        log.warn('close UDP socket', { fd: this.socket.fd, err });
      }
    });
    return this.closed;
  }
}

/** The native engine kind: a C UDP socket and C forwarding threads. */
export const nativeEngine: EngineKindImpl<NativeSocket> = {
  async openSocket(addon, address, port) {
    return { fd: addon.udpOpen(address, port) };
  },
  async closeSocket(addon, socket) {
    addon.close(socket.fd);
  },
  nativeFd(socket) {
    return socket.fd;
  },
  create(setup, socket) {
    return new NativeEngineImpl(setup, socket);
  },
};
