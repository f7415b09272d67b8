/**
 * Static FDB source: a JSON peers file, re-read when it changes.
 *
 *   [ { "name": "n2", "subnet": "198.19.2.0/24", "publicIP": "198.18.0.2",
 *       "vtepMAC": "0a:58:c6:12:00:02" }, ... ]
 *
 * A dual-stack peer (flannel's dual stack: a VTEP per family) adds "publicIPv6" and
 * "vtepMACv6"; publicIP is then its IPv4 address.
 *
 * `subnets: [...]` may replace `subnet`; `port`, `vni` and `mtu` (the peer's underlay interface
 * MTU, for `--mtu auto` with mixed underlays: src/control/path-mtu.ts) are optional, and so is
 * `partialCsum: true` for a peer that is a userlay node: it takes inner checksums left partial
 * (Peer.partialCsum; never for a kernel vxlan or flannel node, which would drop them).
 * The directory (not the file) is watched, so editors and tools that replace
 * the file by rename are seen; events are debounced (100 ms of quiet), but a
 * file that keeps changing is still applied at least once a second. SIGHUP is
 * wired by the agent to requestReload(): requests that arrive while one is
 * pending merge into it. A bad update is logged and rejected: the last good
 * peer set stays in force.
 *
 * Two peers whose subnets overlap cannot both be trusted with them (a peer
 * may send only from its own subnets): the peer with the smaller name keeps
 * its subnets, the other is skipped with a warning, as kube mode resolves two
 * Nodes (there by age, then name; a file has no ages).
 */
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import { UserlayError, usageError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Peer } from '../dataplane/types.js';
import { BACKENDS, type Backend } from '../dataplane/backends.js';
import { canonicalIP, canonicalMac, parseCidr, parseIP } from '../dataplane/net.js';
import { checkPublishedMtu } from './path-mtu.js';
import { overlaps, subnetBits } from '../dataplane/overlaps.js';

/** Options of a StaticPeersSource. */
export interface StaticPeersOptions {
  /** A backend that needsVtepMAC (vxlan) requires vtepMAC on every peer. */
  readonly backend: Backend;
  /** Quiet time after the last file event before re-reading (ms, default 100). */
  readonly debounceMs?: number;
  /** Longest wait from the first of a run of file events to a re-read (ms, default 1000). */
  readonly maxWaitMs?: number;
  /** Flag name reported in errors (default "--peers"). */
  readonly flag?: string;
}

const knownKeys = new Set(['name', 'subnet', 'subnets', 'publicIP', 'vtepMAC', 'publicIPv6', 'vtepMACv6', 'port', 'vni', 'mtu', 'partialCsum']);

function fieldError(field: string, message: string): UserlayError {
  return new UserlayError('ECONFIG', `${field}: ${message}`, { field });
}

function wrapped<T>(field: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw fieldError(field, (err as Error).message);
  }
}

/** Validate the parsed JSON of a peers file; errors name the entry and field ("peers[2].vtepMAC: ..."). */
export function parsePeers(doc: unknown, backend: Backend): Peer[] {
  if (!Array.isArray(doc)) throw fieldError('peers', 'must be a JSON array of peer objects');
  const names = new Set<string>();
  return doc.map((entry: unknown, i): Peer => {
    const at = `peers[${i}]`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw fieldError(at, 'must be an object');
    const e = entry as Record<string, unknown>;
    for (const key of Object.keys(e)) if (!knownKeys.has(key)) throw fieldError(`${at}.${key}`, 'unknown field');
    if (typeof e.name !== 'string' || e.name === '') throw fieldError(`${at}.name`, 'must be a non-empty string');
    if (names.has(e.name)) throw fieldError(`${at}.name`, `"${e.name}" is listed twice`);
    names.add(e.name);
    let subnetTexts: unknown[];
    let subnetField: string;
    if (e.subnets !== undefined) {
      if (e.subnet !== undefined) throw fieldError(`${at}.subnet`, 'give either "subnet" or "subnets", not both');
      if (!Array.isArray(e.subnets) || e.subnets.length === 0) throw fieldError(`${at}.subnets`, 'must be a non-empty array of CIDRs');
      subnetTexts = e.subnets;
      subnetField = `${at}.subnets`;
    } else {
      if (e.subnet === undefined) throw fieldError(`${at}.subnet`, 'is required');
      subnetTexts = [e.subnet];
      subnetField = `${at}.subnet`;
    }
    const subnets = subnetTexts.map((s, k) => {
      const field = e.subnets !== undefined ? `${subnetField}[${k}]` : subnetField;
      if (typeof s !== 'string') throw fieldError(field, 'must be a CIDR string');
      const c = wrapped(field, () => parseCidr(s));
      if (c.hostBits) throw fieldError(field, `"${s}" has host bits set (did you mean ${c.text}?)`);
      return c.text;
    });
    if (typeof e.publicIP !== 'string') throw fieldError(`${at}.publicIP`, 'is required (a string)');
    const publicIP = wrapped(`${at}.publicIP`, () => canonicalIP(e.publicIP as string));
    // one check for both underlays: publicIP + vtepMAC, and a dual-stack peer's publicIPv6 + vtepMACv6
    const mac = (key: 'vtepMAC' | 'vtepMACv6'): string | undefined => {
      const v = e[key];
      if (v === undefined) {
        if (BACKENDS[backend].needsVtepMAC) throw fieldError(`${at}.${key}`, `is required for the ${backend} backend`);
        return undefined;
      }
      if (typeof v !== 'string') throw fieldError(`${at}.${key}`, 'must be a string');
      return wrapped(`${at}.${key}`, () => canonicalMac(v));
    };
    const vtepMAC = mac('vtepMAC');
    let publicIPv6: string | undefined;
    let vtepMACv6: string | undefined;
    if (e.publicIPv6 !== undefined) {
      if (typeof e.publicIPv6 !== 'string') throw fieldError(`${at}.publicIPv6`, 'must be a string');
      publicIPv6 = wrapped(`${at}.publicIPv6`, () => canonicalIP(e.publicIPv6 as string));
      if (parseIP(publicIPv6).family !== 6) throw fieldError(`${at}.publicIPv6`, `${publicIPv6} is not an IPv6 address`);
      if (parseIP(publicIP).family !== 4) throw fieldError(`${at}.publicIP`, `${publicIP} must be the IPv4 address when publicIPv6 is given`);
      vtepMACv6 = mac('vtepMACv6');
    } else if (e.vtepMACv6 !== undefined) {
      throw fieldError(`${at}.vtepMACv6`, 'is given without publicIPv6');
    }
    const int = (key: 'port' | 'vni', lo: number, hi: number): number | undefined => {
      const v = e[key];
      if (v === undefined) return undefined;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) throw fieldError(`${at}.${key}`, `must be an integer in ${lo}..${hi}`);
      return v;
    };
    const port = int('port', 1, 65535);
    const vni = int('vni', 0, 0xffffff);
    let underlayMtu: number | undefined;
    if (e.mtu !== undefined) {
      const checked = checkPublishedMtu(e.name, 'mtu', e.mtu, parseIP(publicIP).family);
      if ('problem' in checked) throw fieldError(`${at}.mtu`, checked.problem);
      underlayMtu = checked.mtu;
    }
    if (e.partialCsum !== undefined && typeof e.partialCsum !== 'boolean') throw fieldError(`${at}.partialCsum`, 'must be true or false');
    return {
      name: e.name, subnets, publicIP,
      ...(vtepMAC !== undefined ? { vtepMAC } : {}),
      ...(publicIPv6 !== undefined ? { publicIPv6 } : {}),
      ...(vtepMACv6 !== undefined ? { vtepMACv6 } : {}),
      ...(port !== undefined ? { port } : {}),
      ...(vni !== undefined ? { vni } : {}),
      ...(underlayMtu !== undefined ? { underlayMtu } : {}),
      ...(e.partialCsum === true ? { partialCsum: true } : {}),
    };
  });
}

/** Peers whose subnets overlap an earlier one's (by name) are left out; each skip says why. */
export function resolveOverlaps(peers: readonly Peer[]): { peers: Peer[]; skipped: Array<{ name: string; reason: string }> } {
  const order = peers.map((_, i) => i).sort((a, b) => (peers[a]!.name < peers[b]!.name ? -1 : peers[a]!.name > peers[b]!.name ? 1 : 0));
  const clashes = overlaps(peers.flatMap((p, owner) => p.subnets.map((text) => ({ bits: subnetBits(text), owner, text }))));
  const accepted = new Set<number>();
  const skipped: Array<{ name: string; reason: string }> = [];
  for (const i of order) {
    const clash = clashes.get(i)?.find((c) => accepted.has(c.other)); // only earlier names are accepted yet
    if (clash === undefined) {
      accepted.add(i);
      continue;
    }
    skipped.push({ name: peers[i]!.name, reason: `subnet ${clash.subnet} overlaps ${clash.otherSubnet} of peer "${peers[clash.other]!.name}"` });
  }
  return { peers: peers.filter((_, i) => accepted.has(i)), skipped };
}

/** Peers from a JSON file, watched for changes. */
export class StaticPeersSource {
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** When the first file event of the run that `timer` waits out arrived. */
  private firstEventAt: number | undefined;
  private reloadPending = false;
  private onPeers: ((peers: Peer[]) => void) | undefined;
  private lastGood: string | undefined;
  /** Reloads done (file events and requests merged), for tests and /debug. */
  reloads = 0;

  constructor(readonly file: string, private readonly opts: StaticPeersOptions, private readonly log: Logger) {}

  /**
   * Read and validate the file. Throws UserlayError EUSAGE whose message names
   * the flag, the file and the field ("--peers: /etc/peers.json: peers[2].vtepMAC: ...").
   */
  load(): Peer[] {
    const flag = this.opts.flag ?? '--peers';
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (err) {
      throw usageError(flag, `cannot read ${this.file}: ${(err as Error).message}`, err);
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (err) {
      throw usageError(flag, `${this.file}: not valid JSON: ${(err as Error).message}`, err);
    }
    let parsed: Peer[];
    try {
      parsed = parsePeers(doc, this.opts.backend);
    } catch (err) {
      throw usageError(flag, `${this.file}: ${(err as Error).message}`, err);
    }
    const { peers, skipped } = resolveOverlaps(parsed);
    for (const s of skipped) this.log.warn('peer skipped: its subnets overlap another peer\'s', { file: this.file, peer: s.name, reason: s.reason });
    return peers;
  }

  /**
   * Watch the file's directory and call `onPeers` with every valid, changed
   * peer set (not with the current one: the caller applied load() already).
   * When `onPeers` throws, the update counts as rejected.
   */
  start(onPeers: (peers: Peer[]) => void): void {
    this.onPeers = onPeers;
    if (this.lastGood === undefined) {
      try {
        this.lastGood = JSON.stringify(this.load());
      } catch {
        // the first good version seen later will be applied
      }
    }
    const dir = path.dirname(path.resolve(this.file));
    const base = path.basename(this.file);
    this.watcher = watch(dir, { persistent: false }, (_event, name) => {
      if (name === null || name.toString() === base) this.schedule();
    });
    this.watcher.on('error', (err) => this.log.warn('peers file watch failed', { file: this.file, err }));
  }

  /** Re-read after a quiet `debounceMs`, but no later than `maxWaitMs` after the first event of the run. */
  private schedule(): void {
    const now = Date.now();
    this.firstEventAt ??= now;
    const deadline = this.firstEventAt + (this.opts.maxWaitMs ?? 1000);
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.firstEventAt = undefined;
      this.reload();
    }, Math.max(0, Math.min(this.opts.debounceMs ?? 100, deadline - now)));
  }

  /**
   * Reload soon (SIGHUP): requests made before that reload runs merge into
   * it, so a burst of signals costs one re-read, not a backlog.
   */
  requestReload(): void {
    if (this.reloadPending) return;
    this.reloadPending = true;
    setImmediate(() => {
      this.reloadPending = false;
      this.reload();
    });
  }

  /** Re-read now; a valid, changed set goes to onPeers, anything else is logged and ignored. */
  reload(): void {
    this.reloads++;
    let peers: Peer[];
    try {
      peers = this.load();
    } catch (err) {
      this.log.warn('peers file update rejected, keeping the last good peer set', { file: this.file, err });
      return;
    }
    const text = JSON.stringify(peers);
    if (text === this.lastGood) return;
    try {
      this.onPeers?.(peers);
    } catch (err) {
      this.log.warn('peers file update rejected, keeping the last good peer set', { file: this.file, err });
      return;
    }
    this.lastGood = text;
    this.log.info('peers file applied', { file: this.file, peers: peers.length });
  }

  /** Stop watching. Idempotent. */
  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.watcher?.close();
    this.watcher = undefined;
    this.onPeers = undefined;
  }
}
