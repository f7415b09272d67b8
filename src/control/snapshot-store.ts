/**
 * The FDB snapshot on disk: the peer set last applied to the data plane plus this node's
 * own lease, so that an agent restarting while the API server is unreachable can bring
 * the data plane up and keep forwarding (issue 3 §4).
 *
 * Format: one msgpackr-encoded object { version: 1, savedAt, own, peers } in
 * `<state dir>/fdb-snapshot.msgpack`, replaced atomically on every change.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pack, unpack } from 'msgpackr';
import { UserlayError, errorCode, wrapSystemError } from '../errors.js';
import type { Peer } from '../dataplane/types.js';
import { isBackend, type Backend } from '../dataplane/backends.js';
import { writeFileAtomic } from '../atomic-file.js';

/** Default state directory. */
export const DEFAULT_STATE_DIR = '/var/lib/userlay';
const FILE = 'fdb-snapshot.msgpack';
const VERSION = 1;

/** This node's own lease as it was last published. */
export interface OwnLease {
  readonly nodeName: string;
  readonly subnets: readonly string[];
  readonly networks: readonly string[];
  readonly publicIP: string;
  /** Dual stack: the IPv6 underlay address (the second socket's). */
  readonly publicIPv6?: string;
  readonly vtepMAC: string;
  readonly backend: Backend;
  readonly vni: number;
  readonly port: number;
  /** TUN MTU in bytes (as decided at start; it may be lowered while running, src/control/path-mtu.ts). */
  readonly mtu: number;
  /** MTU of the underlay interface, bytes (per-peer path MTUs are worked out from it). */
  readonly underlayMtu?: number;
}

/** What the store holds. */
export interface Snapshot {
  readonly own: OwnLease;
  readonly peers: readonly Peer[];
  /** Milliseconds since the epoch when it was written. */
  readonly savedAt: number;
}

function plainPeer(p: Peer): Peer {
  const out: { -readonly [K in keyof Peer]: Peer[K] } = { name: p.name, subnets: [...p.subnets], publicIP: p.publicIP };
  if (p.vtepMAC !== undefined) out.vtepMAC = p.vtepMAC;
  if (p.publicIPv6 !== undefined) out.publicIPv6 = p.publicIPv6;
  if (p.vtepMACv6 !== undefined) out.vtepMACv6 = p.vtepMACv6;
  if (p.port !== undefined) out.port = p.port;
  if (p.vni !== undefined) out.vni = p.vni;
  if (p.underlayMtu !== undefined) out.underlayMtu = p.underlayMtu;
  if (p.partialCsum !== undefined) out.partialCsum = p.partialCsum;
  return out;
}

function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((s) => typeof s === 'string');
}

function validate(v: unknown, path: string): Snapshot {
  const bad = (why: string) => new UserlayError('ESNAPSHOT', `snapshot ${path}: ${why}`);
  if (!v || typeof v !== 'object') throw bad('not an object');
  const o = v as Record<string, unknown>;
  if (o['version'] !== VERSION) throw bad(`unsupported version ${String(o['version'])}`);
  const own = o['own'] as Record<string, unknown> | undefined;
  if (!own || typeof own['nodeName'] !== 'string' || !isStringArray(own['subnets']) || !isStringArray(own['networks'])
    || typeof own['publicIP'] !== 'string' || typeof own['vtepMAC'] !== 'string'
    || !isBackend(own['backend']) || typeof own['vni'] !== 'number'
    || typeof own['port'] !== 'number' || typeof own['mtu'] !== 'number') throw bad('own lease malformed');
  if (!Array.isArray(o['peers'])) throw bad('peers is not a list');
  for (const p of o['peers'] as unknown[]) {
    const q = p as Record<string, unknown>;
    if (!q || typeof q['name'] !== 'string' || !isStringArray(q['subnets']) || typeof q['publicIP'] !== 'string') {
      throw bad('a peer is malformed');
    }
  }
  return { own: own as unknown as OwnLease, peers: o['peers'] as Peer[], savedAt: Number(o['savedAt'] ?? 0) };
}

/** Reads and writes the snapshot in one state directory. */
export class SnapshotStore {
  /** Full path of the snapshot file. */
  readonly path: string;

  constructor(readonly stateDir: string = DEFAULT_STATE_DIR) {
    this.path = join(stateDir, FILE);
  }

  /** Atomically persist `own` and `peers` (write tmp, fsync, rename). */
  async save(own: OwnLease, peers: readonly Peer[], now = Date.now()): Promise<void> {
    const body = { version: VERSION, savedAt: now, own: { ...own, subnets: [...own.subnets], networks: [...own.networks] }, peers: peers.map(plainPeer) };
    await writeFileAtomic(this.path, pack(body), 0o600);
  }

  /**
   * Save in the background, coalescing: while a write is in flight only the newest request
   * is kept, so a burst of changes costs at most two writes and never delays the caller.
   * Failures go to `onError`. `flush()` waits for the writes to finish.
   */
  saveLatest(own: OwnLease, peers: readonly Peer[], onError: (err: unknown) => void): void {
    this.next = { own, peers };
    if (this.writing) return;
    this.writing = (async () => {
      while (this.next) {
        const { own: o, peers: p } = this.next;
        this.next = undefined;
        await this.save(o, p).catch(onError);
      }
      this.writing = undefined;
    })();
  }

  /** Wait until background writes are done. */
  async flush(): Promise<void> {
    await this.writing;
  }

  private next: { own: OwnLease; peers: readonly Peer[] } | undefined;
  private writing: Promise<void> | undefined;

  /**
   * Load the snapshot; undefined when there is none. A corrupt or foreign file throws
   * UserlayError ESNAPSHOT (the caller logs it and starts without a snapshot).
   */
  async load(): Promise<Snapshot | undefined> {
    let data: Buffer;
    try {
      data = await readFile(this.path);
    } catch (err) {
      if (errorCode(err) === 'ENOENT') return undefined;
      throw wrapSystemError(`read snapshot ${this.path}`, err);
    }
    let v: unknown;
    try {
      v = unpack(data);
    } catch (err) {
      throw new UserlayError('ESNAPSHOT', `snapshot ${this.path}: cannot decode: ${(err as Error).message}`, { cause: err });
    }
    return validate(v, this.path);
  }
}
