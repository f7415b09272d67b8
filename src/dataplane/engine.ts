/**
 * What dataplane.ts needs from a forwarding engine, so the native and the js
 * engine plug into the same setup/teardown sequence.
 *
 * An engine kind first opens its underlay UDP socket (before anything else is
 * created, so "port in use" fails early), then builds an engine around the
 * TUN fd and that socket. The engine owns the socket from then on; the TUN fd
 * stays owned by the data plane.
 */
import type { CodecConfig, NativeAddon } from './addon.js';
import type { FdbTable } from './fdb.js';
import type { Logger } from '../log.js';

/** Everything an engine is built from. */
export interface EngineSetup {
  readonly addon: NativeAddon;
  /** TUN fd opened with vnetHdr = true; owned by the caller. */
  readonly tunFd: number;
  readonly codec: CodecConfig;
  /** Source of ICMP errors written back into the TUN, per family (own subnet's address). */
  readonly icmpSrc4?: string;
  readonly icmpSrc6?: string;
  /** Counters block in the ul_counter layout, (maxSlot + 1) * SLOT_WIDTH; owned by the caller. */
  readonly counters: BigUint64Array;
  readonly maxSlot: number;
  /** Packets per batch (default 64). */
  readonly batch?: number;
  readonly log: Logger;
}

/** A running (or ready-to-start) forwarding engine. */
export interface Engine {
  /** Swap in a new table atomically. Throws (EINVAL) and keeps the old one when the addon rejects it. */
  setFdb(table: FdbTable): void;
  /** Start forwarding. */
  start(): void;
  /** Stop forwarding, free the engine and close its UDP socket. Idempotent. */
  close(): Promise<void>;
}

/** An engine kind: how to open its socket and how to build the engine on it. */
export interface EngineKindImpl<Socket> {
  /** Open and bind the underlay UDP socket. Rejects with code EADDRINUSE when the port is taken. */
  openSocket(addon: NativeAddon, address: string, port: number): Promise<Socket>;
  /** Close a socket that never made it into an engine. */
  closeSocket(addon: NativeAddon, socket: Socket): Promise<void>;
  /** Build an engine that takes ownership of `socket`. */
  create(setup: EngineSetup, socket: Socket): Engine;
}
