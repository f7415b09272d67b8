/**
 * Counter slots of the FDB: which slot of the shared counter block each peer
 * counts into. Kept across FDB updates so a peer's counters survive them.
 */
import { UserlayError } from '../errors.js';

/**
 * Counter slots by peer name, kept across FDB updates (slot 0 = totals).
 * Slots are numbered 1..maxSlot; the lowest free one is handed out first.
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
   * Plan slots for exactly `names` (distinct) without changing state. Returns
   * the map and the slots handed out fresh (their counters should be zeroed
   * before use). Throws EFDB when there are more peers than slots.
   */
  plan(names: readonly string[]): { slots: Map<string, number>; fresh: number[] } {
    const slots = new Map<string, number>();
    const newcomers: string[] = [];
    for (const name of names) {
      const s = this.byName.get(name);
      if (s !== undefined) slots.set(name, s);
      else newcomers.push(name);
    }
    // reuse only slots freed by earlier updates, then grow
    const free = [...this.free].sort((a, b) => a - b);
    let next = this.next;
    const fresh: number[] = [];
    for (const name of newcomers) {
      const s = free.shift() ?? next++;
      if (s > this.maxSlot) throw new UserlayError('EFDB', `too many peers: ${names.length} > ${this.maxSlot} counter slots`);
      slots.set(name, s);
      fresh.push(s);
    }
    return { slots, fresh };
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
      this.free.push(this.byName.get(name)!);
      this.byName.delete(name);
    }
    for (const [name, s] of added) {
      this.byName.set(name, s);
      if (s >= this.next) this.next = s + 1;
    }
  }
}
