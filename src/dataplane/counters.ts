/**
 * Counters shared by both engines: a flat BigUint64Array laid out as
 * native/include/userlay.h describes (enum ul_counter, enum ul_drop).
 *
 *   slot 0: totals; slot k >= 1: the peer whose FDB entry has slot k.
 *   Each slot is SLOT_WIDTH u64s: tx packets, tx bytes, rx packets, rx bytes,
 *   then DROP_COUNT drop counters indexed by enum ul_drop.
 *
 * The native engine writes it from its threads (relaxed atomics); the js
 * engine writes the same layout from the JS thread. Reading is a plain array
 * access, so stats() costs no call into the addon.
 */
import type { CounterSet, DataplaneStats } from './types.js';

/** enum ul_drop: reason name -> number (mirrors userlay.h; a unit test checks it against the addon). */
export const DROP = {
  short: 1,
  bad_flags: 2,
  bad_vni: 3,
  bad_mac: 4,
  malformed: 5,
  unknown_peer: 6,
  spoofed: 7,
  tun_write: 8,
  no_route: 9,
  tx_malformed: 10,
  udp_send: 11,
  tun_read: 12,
  udp_recv: 13,
  too_big: 14,
} as const;

/** A drop reason name. */
export type DropReason = keyof typeof DROP;

/** UL_DROP__COUNT: reserved width of the drops part of a slot. */
export const DROP_COUNT = 16;

/** enum ul_counter: offsets inside a slot. */
export const COUNTER = {
  txPackets: 0,
  txBytes: 1,
  rxPackets: 2,
  rxBytes: 3,
  drops: 4,
} as const;

/** UL_C_SLOT_WIDTH: u64s per slot. */
export const SLOT_WIDTH = COUNTER.drops + DROP_COUNT;

const reasonByNumber = new Map<number, DropReason>(
  (Object.entries(DROP) as Array<[DropReason, number]>).map(([name, n]) => [n, name]),
);

/** Name of a drop reason number ("no_route"), or "reason_<n>" for an unknown one. */
export function dropName(reason: number): string {
  return reasonByNumber.get(reason) ?? `reason_${reason}`;
}

/** Allocate a zeroed counters block for slots 0..maxSlot. */
export function allocCounters(maxSlot: number): BigUint64Array {
  return new BigUint64Array((maxSlot + 1) * SLOT_WIDTH);
}

/** Zero the counters of `slot` (a slot handed to a new peer). */
export function clearSlot(counters: BigUint64Array, slot: number): void {
  counters.fill(0n, slot * SLOT_WIDTH, (slot + 1) * SLOT_WIDTH);
}

/** Index of counter `offset` (a COUNTER value, or COUNTER.drops + reason) of `slot`. */
export function counterIndex(slot: number, offset: number): number {
  return slot * SLOT_WIDTH + offset;
}

/** Read one slot into a CounterSet (zero drop reasons omitted). */
function readSlot(counters: BigUint64Array, slot: number): CounterSet {
  const base = slot * SLOT_WIDTH;
  const drops: Record<string, bigint> = {};
  for (let r = 1; r < DROP_COUNT; r++) {
    const v = counters[base + COUNTER.drops + r]!;
    if (v !== 0n) drops[dropName(r)] = v;
  }
  return {
    txPackets: counters[base + COUNTER.txPackets]!,
    txBytes: counters[base + COUNTER.txBytes]!,
    rxPackets: counters[base + COUNTER.rxPackets]!,
    rxBytes: counters[base + COUNTER.rxBytes]!,
    drops,
  };
}

/**
 * Stats from a counters block: totals from slot 0, and one entry per peer of
 * `slotNames` (slot -> peer name, the current FDB's assignment).
 */
export function readStats(
  counters: BigUint64Array,
  slotNames: ReadonlyMap<number, string>,
  fdbPeers: number,
  fdbRoutes: number,
): DataplaneStats {
  const peers: Record<string, CounterSet> = {};
  for (const [slot, name] of slotNames) peers[name] = readSlot(counters, slot);
  return { total: readSlot(counters, 0), peers, fdbPeers, fdbRoutes };
}
