/**
 * Counter slots of the FDB: which slot of the shared counter block each peer
 * counts into. Kept across FDB updates so a peer's counters survive them.
 */
import { UserlayError } from '../errors.js';

/**
 * Counter slots by peer name, kept across FDB updates (slot 0 = totals).
 * Slots are numbered 1..maxSlot; see plan() for which one a newcomer gets.
 * A clone shares the name map until it changes (copy on write), and commit()
 * touches only the names that come and go, so an update that keeps the same
 * peers allocates nothing here.
 */
export class SlotAllocator {
  private byName = new Map<string, number>();
  /** False while byName is shared with the allocator this one was cloned from. */
  private owned = true;
  private free: number[] = [];
  private next = 1;

  /** @param maxSlot highest slot the counters block holds. */
  constructor(readonly maxSlot: number) {}

  /** An independent copy (build against it, adopt it once the table is installed). */
  clone(): SlotAllocator {
    const c = new SlotAllocator(this.maxSlot);
    c.byName = this.byName;
    c.owned = false;
    this.owned = false;
    c.free.push(...this.free);
    c.next = this.next;
    return c;
  }

  /** Current slot of `name`, if it has one. */
  slotOf(name: string): number | undefined {
    return this.byName.get(name);
  }

  /**
   * Plan slots for exactly `names` (distinct) without changing state. Newcomers
   * get, in this order: slots freed by earlier updates, never-used slots, and
   * only then slots of names leaving in this same update — so replacing every
   * peer at once needs no more slots than the larger of the two sets. Returns
   * the map, the slots handed out fresh (zero their counters before the table
   * is installed) and, among them, those `recycled` from leaving names (the
   * engine may count into them until the old table is gone: zero them again
   * after the swap). Throws EFDB when the result does not fit.
   */
  plan(names: readonly string[]): { slots: Map<string, number>; fresh: number[]; recycled: number[] } {
    if (names.length > this.maxSlot) {
      throw new UserlayError('EFDB', `too many peers: ${names.length} > ${this.maxSlot} (the most one data plane holds)`);
    }
    const slots = new Map<string, number>();
    const newcomers: string[] = [];
    for (const name of names) {
      const s = this.byName.get(name);
      if (s !== undefined) slots.set(name, s);
      else newcomers.push(name);
    }
    const fresh: number[] = [];
    const recycled: number[] = [];
    if (newcomers.length === 0) return { slots, fresh, recycled };
    const free = [...this.free].sort((a, b) => a - b);
    let next = this.next;
    let leaving: number[] | undefined;
    for (const name of newcomers) {
      let s = free.shift();
      if (s === undefined && next <= this.maxSlot) s = next++;
      if (s === undefined) {
        leaving ??= [...this.byName].filter(([n]) => !slots.has(n)).map(([, slot]) => slot).sort((a, b) => a - b);
        s = leaving.shift()!; // fits: names.length <= maxSlot
        recycled.push(s);
      }
      slots.set(name, s);
      fresh.push(s);
    }
    return { slots, fresh, recycled };
  }

  /** Take over the state of `other` (a clone that a successful build committed to); `other` is left empty. */
  adopt(other: SlotAllocator): void {
    this.byName = other.byName;
    this.owned = other.owned;
    this.free = other.free;
    this.next = other.next;
    other.byName = new Map();
    other.owned = true;
    other.free = [];
    other.next = 1;
  }

  /** Make a plan from plan() the current state: slots of vanished names become free. */
  commit(slots: ReadonlyMap<string, number>): void {
    const gone: string[] = [];
    for (const name of this.byName.keys()) if (!slots.has(name)) gone.push(name);
    const added: Array<[string, number]> = [];
    for (const entry of slots) if (this.byName.get(entry[0]) !== entry[1]) added.push(entry);
    if (gone.length === 0 && added.length === 0) return;
    if (!this.owned) {
      this.byName = new Map(this.byName);
      this.owned = true;
    }
    const taken = new Set(added.map(([, s]) => s));
    this.free = this.free.filter((s) => !taken.has(s));
    for (const name of gone) {
      const s = this.byName.get(name)!;
      if (!taken.has(s)) this.free.push(s); // a recycled slot went straight to a newcomer
      this.byName.delete(name);
    }
    for (const [name, s] of added) {
      this.byName.set(name, s);
      if (s >= this.next) this.next = s + 1;
    }
  }
}
