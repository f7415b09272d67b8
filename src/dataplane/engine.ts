/**
 * What dataplane.ts needs from a forwarding engine, so the native and the js
 * engine plug into the same setup/teardown sequence.
 *
 * An engine kind first opens its underlay UDP socket(s), one per underlay
 * family (before anything else is created, so "port in use" fails early),
 * then builds an engine around the TUN fd and those sockets. The engine owns
 * the sockets from then on; the TUN fd stays owned by the data plane.
 */
import type { EngineConfig, NativeAddon } from './addon.js';
import type { FdbTable } from './fdb.js';
import type { OffloadCounters } from './offloads.js';
import type { Logger } from '../log.js';

/**
 * Everything an engine is built from: the addon's engine configuration
 * without the UDP socket (each engine kind opens its own), plus the addon and
 * a logger. The TUN fd is opened with vnetHdr = true; it and the counters
 * block are owned by the caller.
 */
export interface EngineSetup extends Omit<EngineConfig, 'udpFd' | 'queues' | 'txFds' | 'otherFamily'> {
  readonly addon: NativeAddon;
  readonly log: Logger;
  /** TUN queues 1.. of a multi-queue TUN (threads > 1; owned by the caller). */
  readonly tunQueueFds?: readonly number[];
  /**
   * UDP_GRO is on on the receive sockets. The native engine reads each buffer's segment size
   * from its cmsg and needs no telling; the js engine, which gets no cmsg through dgram, cuts
   * buffers at the length of their first datagram.
   */
  readonly udpGro?: boolean;
  /** The js engine may send runs of equal datagrams in one send (UDP_SEGMENT socket option). */
  readonly udpGso?: boolean;
}

/** A running (or ready-to-start) forwarding engine. */
export interface Engine {
  /** Swap in a new table atomically. Throws (EINVAL) and keeps the old one when the addon rejects it. */
  setFdb(table: FdbTable): void;
  /** Start forwarding. */
  start(): void;
  /** Stop forwarding, free the engine and close its UDP socket. Idempotent. */
  close(): Promise<void>;
  /** What the engine counted about offloads; cheap. */
  offloadStats(): OffloadCounters;
}

/** An engine kind: how to open its socket and how to build the engine on it. */
export interface EngineKindImpl<Socket> {
  /**
   * Open and bind the underlay UDP socket(s), one receive socket per thread
   * pair (threads, default 1). Rejects with code EADDRINUSE when the port
   * is taken.
   */
  openSocket(addon: NativeAddon, address: string, port: number, threads?: number): Promise<Socket>;
  /** Close a socket that never made it into an engine. */
  closeSocket(addon: NativeAddon, socket: Socket): Promise<void>;
  /** The fd of `socket` for UDP_GRO, or undefined when the engine cannot take coalesced buffers. */
  nativeFd(socket: Socket): number | undefined;
  /** The fd on which the engine sends runs with the UDP_SEGMENT socket option, if it does (js). */
  gsoFd(socket: Socket): number | undefined;
  /** The receive sockets of thread pairs 1.. (UDP_GRO is set on each too); [] with one pair. */
  queueFds(socket: Socket): readonly number[];
  /** The sockets the engine only sends from (they take nothing in), for their drop count. */
  sendOnlyFds(socket: Socket): readonly number[];
  /**
   * Build an engine that takes ownership of `sockets`: one per underlay family (a dual-stack
   * node has an IPv4 and an IPv6 one, openSocket'ed on the same port), the first the primary.
   */
  create(setup: EngineSetup, sockets: readonly Socket[]): Engine;
}
