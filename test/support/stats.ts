/**
 * Reading an agent's counters in netns tests: /debug/stats (DataplaneStats
 * with bigints as decimal strings) parsed into numbers, and waiting on them.
 */
import { sleep } from '../../src/cli/lab/exec.js';
import type { LabNode } from '../../src/cli/lab/topology.js';
import { statusJson } from './lab.js';

/** One counter slot of /debug/stats, as numbers (absent drop reasons read as 0 through drop()). */
export interface Counters {
  readonly txPackets: number;
  readonly txBytes: number;
  readonly rxPackets: number;
  readonly rxBytes: number;
  readonly drops: Readonly<Record<string, number>>;
}

/** /debug/stats as numbers: totals (slot 0) and per peer name. */
export interface Stats {
  readonly total: Counters;
  readonly peers: Readonly<Record<string, Counters>>;
  readonly fdbPeers: number;
}

type Raw = Record<string, string | number | Record<string, string | number>>;

function counters(raw: Raw | undefined): Counters {
  const num = (v: unknown): number => Number(v ?? 0);
  const drops: Record<string, number> = {};
  for (const [k, v] of Object.entries((raw?.['drops'] ?? {}) as Record<string, string | number>)) drops[k] = num(v);
  return { txPackets: num(raw?.['txPackets']), txBytes: num(raw?.['txBytes']), rxPackets: num(raw?.['rxPackets']), rxBytes: num(raw?.['rxBytes']), drops };
}

/** Parse a /debug/stats document. */
export function parseStats(doc: unknown): Stats {
  const d = doc as { total?: Raw; peers?: Record<string, Raw>; fdbPeers?: number };
  const peers: Record<string, Counters> = {};
  for (const [name, raw] of Object.entries(d.peers ?? {})) peers[name] = counters(raw);
  return { total: counters(d.total), peers, fdbPeers: Number(d.fdbPeers ?? 0) };
}

/** The agent's /debug/stats on 127.0.0.1:port inside `node`'s namespace. */
export async function readStats(node: LabNode, port: number): Promise<Stats> {
  return parseStats(await statusJson(node, port, '/debug/stats'));
}

/** Drops under `reason` in a slot (0 when the reason was never counted). */
export function drop(c: Counters | undefined, reason: string): number {
  return c?.drops[reason] ?? 0;
}

/** Every drop reason that differs between two readings of a slot: reason -> after - before. */
export function dropDeltas(before: Counters | undefined, after: Counters | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of new Set([...Object.keys(before?.drops ?? {}), ...Object.keys(after?.drops ?? {})])) {
    const d = drop(after, r) - drop(before, r);
    if (d !== 0) out[r] = d;
  }
  return out;
}

/**
 * Read the stats until `done(stats)` holds; returns that reading. Throws after
 * `timeoutMs` with `what` and the last reading. Polls (each poll is one curl in
 * the namespace); a wait for an event, not a delay.
 */
export async function waitForStats(node: LabNode, port: number, what: string, done: (s: Stats) => boolean, timeoutMs = 20_000): Promise<Stats> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await readStats(node, port);
    if (done(s)) return s;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last /debug/stats: ${JSON.stringify(s)}`);
    await sleep(20);
  }
}
