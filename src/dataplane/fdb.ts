/**
 * The FDB table as JS builds it: validated peers, stable counter slots, the
 * native snapshot bytes, and a pure-TS longest-prefix match for tests/debug.
 *
 * Design notes
 * - The control plane hands over a whole peer set; buildFdb either returns a
 *   complete new table or throws UserlayError 'EFDB' and changes nothing (the
 *   slot allocator included), so a bad update leaves the old table in force.
 * - Counter slots are keyed by peer name and survive updates: a peer whose
 *   entry is unchanged keeps its slot, so its counters and flows are not
 *   disturbed. Newcomers get slots freed by earlier updates, then unused ones,
 *   and only when the block is full the slots of peers leaving in this very
 *   update (see SlotAllocator.plan): those the engine may still be counting
 *   into with the table being replaced, so they are zeroed after the swap.
 * - Trust: a peer's datagrams are accepted only with an inner source inside
 *   its subnets, so no peer subnet may overlap ours or another peer's, lie
 *   outside the cluster network, or a peer claim our underlay IP or VTEP MAC.
 * - Snapshot layout is exactly struct ul_fdb_snapshot_hdr / ul_fdb_peer /
 *   ul_fdb_route of native/include/userlay.h in host (little-endian) order.
 * - Dual stack, as flannel's (flannel.1 over IPv4, flannel-v6.1 over IPv6, a
 *   MAC each): a peer with publicIPv6 gets a snapshot entry per underlay
 *   address that one of our sockets can reach (one code path over the list
 *   of its underlays), sharing its counter slot. Each route points at the
 *   entry of its own family when there is one, else at the first usable
 *   entry (a v6 pod subnet over the v4 underlay, as with one socket). The
 *   engines pick the socket by the entry's family, and anti-spoofing takes
 *   an inner source of any entry of the slot (native/src/codec.c).
 * - A rebuild pays only for what changed. The control plane hands over whole
 *   sets, but from one update to the next almost every Peer is the very same
 *   object (PeerSync caches them per Node). Each validated peer is kept in a
 *   WeakMap keyed by the Peer object, with its snapshot records pre-encoded
 *   (slot and peer index patched in at encode time); a hit is re-checked
 *   against the peer's fields and the defaults it was validated under, so a
 *   caller that mutates a Peer in place still gets it validated again. The
 *   checks across peers (names, subnets, underlay addresses claimed twice)
 *   run on every build, O(n) with Maps. At 5,000 peers with one changed, a
 *   build plus encode takes a few ms instead of ~60 (bench/RESULTS.md).
 * - The TS longest-prefix match is for tests and debugging: built on the
 *   first lookup() only, never on the update path.
 */
import { UserlayError } from '../errors.js';
import { SlotAllocator } from './fdb-slots.js';
import type { Peer } from './types.js';
import { BACKENDS, MAX_MTU, MIN_MTU, pathMtu, type Backend } from './backends.js';
import {
  type Cidr, type Family, type IPAddr, canonicalIP, canonicalMac, cidrContains, formatIP, formatMac, maskBytes,
  parseCidr, parseIP, parseMac, vtepMacProblem,
} from './net.js';
import { type OwnedSubnet, overlaps, subnetBits } from './overlaps.js';

/** Owner index of the own subnets in the overlap check. */
const OWN = -1;

/** UL_FDB_MAGIC, "ULF1" little-endian. */
export const FDB_MAGIC = 0x31464c55;
/** sizeof(struct ul_fdb_snapshot_hdr). */
export const FDB_HDR_SIZE = 16;
/** sizeof(struct ul_fdb_peer). */
export const FDB_PEER_SIZE = 40;
/** sizeof(struct ul_fdb_route). */
export const FDB_ROUTE_SIZE = 24;
/** UL_FDB_F_PARTIAL_CSUM, in struct ul_fdb_peer's flags byte: the peer takes partial inner checksums. */
export const FDB_F_PARTIAL_CSUM = 0x01;
/** UL_MIN_PATH_MTU: the smallest per-peer path MTU a snapshot carries (IPv4's minimum). */
export const MIN_PATH_MTU = 68;
/** Largest VXLAN network identifier (24 bits). */
export const MAX_VNI = 0xffffff;

/** What buildFdb needs to know about our own side. */
export interface FdbDefaults {
  readonly backend: Backend;
  /** Port and VNI a peer gets when it does not name its own. */
  readonly port: number;
  readonly vni: number;
  /** Families of our UDP sockets (one, or 4 and 6 on a dual-stack node): a peer with no address of one cannot be reached. */
  readonly underlayFamilies?: readonly Family[];
  /** Own subnets: a peer whose subnet overlaps one of them is rejected (it could send from our range). */
  readonly ownSubnets?: readonly string[];
  /** Cluster networks: a peer subnet must lie inside one, a peer publicIP outside all. */
  readonly networks?: readonly string[];
  /** Own underlay address(es) and VTEP MAC: a peer claiming any is rejected. */
  readonly ownPublicIP?: string;
  readonly ownPublicIPv6?: string;
  readonly ownVtepMAC?: string;
  /** Own underlay interface MTU: with a peer's Peer.underlayMtu, its path MTU (undefined: no limit). */
  readonly underlayMtu?: number;
}

/** One peer of a built table. */
export interface FdbPeer {
  /** The peer, canonicalised (CIDR, IP and MAC text; port and VNI filled in). */
  readonly peer: Peer;
  /** Index in FdbTable.peers. */
  readonly index: number;
  /** Index of its first entry in the snapshot's peer array (see entries). */
  readonly entry: number;
  /** Snapshot entries it has, one per usable underlay address: 1, or 2 for a dual-stack peer. */
  readonly entries: number;
  /** Counter slot, >= 1. */
  readonly slot: number;
  /** Its first (primary) underlay address. */
  readonly underlay: IPAddr;
  readonly port: number;
  readonly vni: number;
  /** 6 bytes (zeros for udp without a MAC). */
  readonly mac: Uint8Array;
  /** Largest inner packet the path to the peer's first underlay carries (backends.ts pathMtu); 0 = no limit. */
  readonly pathMtu: number;
}

/** One snapshot entry: a peer's underlay address that traffic is sent to (FdbTable.entryList). */
export interface FdbEntry {
  readonly peer: FdbPeer;
  /** Underlay address, canonical text. */
  readonly ip: string;
  readonly family: Family;
}

/** One route of a built table: a pod subnet behind a peer. */
export interface FdbRoute {
  readonly cidr: Cidr;
  /** Index into FdbTable.peers. */
  readonly peer: number;
}

export { SlotAllocator };

function fdbError(message: string): UserlayError {
  return new UserlayError('EFDB', message);
}

/** Run `parse`; whatever it throws becomes an EFDB error "<what>: <its message>". */
function fdbField<T>(what: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    throw new UserlayError('EFDB', `${what}: ${(err as Error).message}`, { cause: err });
  }
}

function checkRange(field: string, v: unknown, lo: number, hi: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) {
    throw fdbError(`${field}: ${String(v)} is not an integer in ${lo}..${hi}`);
  }
  return v;
}

/**
 * One validated peer, cached per Peer object (see the design notes). Memory matters here: a
 * record lives as long as its Peer (5,000 of them at 5,000 Nodes), so it holds one small
 * typed array and strings shared with the Peer, not parsed address objects (those cost
 * ~2.2 KB a peer; this ~0.6 KB, bench/RESULTS.md issue 9).
 */
interface PeerRecord {
  /** What it was validated from: the defaults key and the input's fields (the same strings). */
  readonly defaults: string;
  readonly name: string;
  /** A copy of the input's subnets (the caller may change its array in place). */
  readonly subnets: readonly string[];
  readonly publicIP: string;
  readonly vtepMAC: string | undefined;
  readonly publicIPv6: string | undefined;
  readonly vtepMACv6: string | undefined;
  readonly port: number | undefined;
  readonly vni: number | undefined;
  readonly underlayMtu: number | undefined;
  readonly partialCsum: boolean | undefined;
  /** Path MTU of its first entry (each entry's is in its snapshot record; 0 = no limit). */
  readonly pathMtu: number;
  /** The peer, canonicalised (port and VNI filled in). */
  readonly peer: Peer;
  /** subnetBits of each of peer.subnets. */
  readonly bits: readonly string[];
  /** Underlay address of each of its snapshot entries, canonical. */
  readonly entryIPs: readonly string[];
  /**
   * Its struct ul_fdb_peer entries with slot 0, then its struct ul_fdb_route array whose peer
   * field holds the entry within the peer (0 or 1); encode() copies them and patches in the
   * slot and the snapshot index. Written byte by byte: a view over
   * its .buffer would move it off the V8 heap (a malloc'd backing store per peer).
   */
  readonly bytes: Uint8Array;
  /** The FdbPeer and FdbRoutes of the last table built with this record, reused while index and slot stay. */
  last?: { peer: TablePeer; routes: TableRoute[] };
}

/** The defaults as one string: a cached record is valid only under the same text. */
function defaultsKey(d: FdbDefaults): string {
  return `${d.backend}|${d.port}|${d.vni}|${(d.underlayFamilies ?? []).join(',')}|${(d.networks ?? []).join(',')}|${d.ownPublicIP ?? ''}|${d.ownPublicIPv6 ?? ''}|${d.ownVtepMAC ?? ''}|${d.underlayMtu ?? ''}`;
}

/** Validated peers by Peer object (see the design notes). Entries die with their Peer. */
const records = new WeakMap<Peer, PeerRecord>();

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The record of `p` under `defaults`: from the cache when `p` is unchanged, else validated now. */
function recordOf(p: Peer, d: FdbDefaults, dkey: string, networks: readonly Cidr[]): PeerRecord {
  const hit = records.get(p);
  if (hit && hit.defaults === dkey && hit.name === p.name && hit.publicIP === p.publicIP && hit.vtepMAC === p.vtepMAC
    && hit.publicIPv6 === p.publicIPv6 && hit.vtepMACv6 === p.vtepMACv6 && hit.port === p.port && hit.vni === p.vni && hit.underlayMtu === p.underlayMtu
    && hit.partialCsum === p.partialCsum
    && Array.isArray(p.subnets) && sameStrings(hit.subnets, p.subnets)) {
    return hit;
  }
  const record = validatePeer(p, d, dkey, networks);
  records.set(p, record);
  return record;
}

/** `canonical`, as the very string `given` when they are equal (one copy in memory, not two). */
function shared(given: string, canonical: string): string {
  return given === canonical ? given : canonical;
}

function putU16(b: Uint8Array, off: number, v: number): void {
  b[off] = v & 0xff;
  b[off + 1] = (v >>> 8) & 0xff;
}

function putU32(b: Uint8Array, off: number, v: number): void {
  putU16(b, off, v & 0xffff);
  putU16(b, off + 2, v >>> 16);
}

/** One underlay address of a peer being validated, with the MAC that goes with it. */
interface PeerUnderlay {
  readonly ip: IPAddr;
  readonly text: string;
  readonly mac: Uint8Array;
  readonly macText: string | undefined;
}

/** The fields of one underlay of a peer: publicIP + vtepMAC, or publicIPv6 + vtepMACv6. */
const UNDERLAY_FIELDS = [{ ip: 'publicIP', mac: 'vtepMAC' }, { ip: 'publicIPv6', mac: 'vtepMACv6' }] as const;

/** Check one underlay address of a peer (the same checks for both; errors name the field). */
function checkUnderlayIP(where: string, ipField: string, ipText: string, d: FdbDefaults, networks: readonly Cidr[]): { ip: IPAddr; text: string } {
  const ip = fdbField(`${where} ${ipField}`, () => parseIP(ipText));
  if (ipField === 'publicIPv6' && ip.family !== 6) throw fdbError(`${where} publicIPv6 ${ipText} is not an IPv6 address`);
  const text = shared(ipText, formatIP(ip.family, ip.bytes));
  for (const own of [d.ownPublicIP, d.ownPublicIPv6]) {
    if (own !== undefined && text === canonicalIP(own)) throw fdbError(`${where} ${ipField} ${text} is this node's own`);
  }
  const around = networks.find((n) => cidrContains(n, ip));
  if (around !== undefined) throw fdbError(`${where} ${ipField} ${text} lies inside the cluster network ${around.text}`);
  return { ip, text };
}

/** Check the VTEP MAC of one underlay of a peer. */
function checkUnderlayMac(where: string, macField: string, macText: string | undefined, d: FdbDefaults): { mac: Uint8Array; macText: string | undefined } {
  let mac: Uint8Array = new Uint8Array(6);
  if (macText !== undefined && macText !== '') {
    mac = fdbField(`${where} ${macField}`, () => parseMac(macText));
    const problem = vtepMacProblem(mac);
    if (problem !== undefined) throw fdbError(`${where} ${macField} ${formatMac(mac)} ${problem}`);
    if (d.ownVtepMAC !== undefined && formatMac(mac) === canonicalMac(d.ownVtepMAC)) throw fdbError(`${where} ${macField} ${formatMac(mac)} is this node's own`);
  } else if (BACKENDS[d.backend].needsVtepMAC) {
    throw fdbError(`${where} ${macField}: required for the ${d.backend} backend`);
  }
  return { mac, macText: macText ? shared(macText, formatMac(mac)) : undefined };
}

function validatePeer(p: Peer, d: FdbDefaults, dkey: string, networks: readonly Cidr[]): PeerRecord {
  const where = `peer "${p.name}"`;
  const given = p.publicIPv6 === undefined ? [p.publicIP] : [p.publicIP, p.publicIPv6];
  if (p.publicIPv6 === undefined && p.vtepMACv6 !== undefined) throw fdbError(`${where} vtepMACv6: given without publicIPv6`);
  const ips = given.map((text, k) => checkUnderlayIP(where, UNDERLAY_FIELDS[k]!.ip, text, d, networks));
  if (ips.length > 1 && ips[0]!.ip.family !== 4) throw fdbError(`${where} publicIPv6 ${p.publicIPv6}: publicIP ${p.publicIP} must then be the IPv4 address`);
  // the entries: the underlays one of our sockets reaches (all of them when the families are not known)
  const families = d.underlayFamilies;
  if (!ips.some((u) => families === undefined || families.includes(u.ip.family))) {
    throw fdbError(`${where} publicIP${ips.length > 1 ? 's' : ''} ${ips.map((u) => u.text).join(', ')} ${ips.length > 1 ? 'are' : 'is'} `
      + `IPv${ips.map((u) => u.ip.family).join('/')} but the underlay socket is IPv${families!.join('/')}`);
  }
  const macs = [p.vtepMAC, p.vtepMACv6];
  const all: PeerUnderlay[] = ips.map((u, k) => ({ ...u, ...checkUnderlayMac(where, UNDERLAY_FIELDS[k]!.mac, macs[k], d) }));
  const usable = all.filter((u) => families === undefined || families.includes(u.ip.family));
  // a backend that does not encapsulate sends nothing: port 0 (no port) is fine there
  const port = checkRange(`${where} port`, p.port ?? d.port, BACKENDS[d.backend].encapsulates ? 1 : 0, 65535);
  const vni = checkRange(`${where} vni`, p.vni ?? d.vni, 0, MAX_VNI);
  if (p.underlayMtu !== undefined) checkRange(`${where} underlayMtu`, p.underlayMtu, MIN_MTU, MAX_MTU);
  if (p.partialCsum !== undefined && typeof p.partialCsum !== 'boolean') throw fdbError(`${where} partialCsum: must be true or false`);
  // each entry's path MTU, with its own family's overhead; what the engines enforce (0 = no limit)
  const limits = usable.map((u) => {
    const path = pathMtu(d.backend, u.ip.family, d.underlayMtu, p.underlayMtu);
    if (path !== undefined && path < MIN_PATH_MTU) {
      throw fdbError(`${where} underlayMtu ${p.underlayMtu}: leaves a path MTU of ${path} over IPv${u.ip.family} (< ${MIN_PATH_MTU})`);
    }
    return BACKENDS[d.backend].encapsulates ? path ?? 0 : 0;
  });
  if (!Array.isArray(p.subnets) || p.subnets.length === 0) throw fdbError(`${where} subnets: at least one subnet is required`);
  const cidrs = p.subnets.map((s) => {
    const c = fdbField(`${where} subnet`, () => parseCidr(s));
    if (c.hostBits) throw fdbError(`${where} subnet ${s}: host bits set (network is ${c.text})`);
    if (networks.length > 0 && !networks.some((n) => cidrContains(n, c))) {
      throw fdbError(`${where} subnet ${c.text} is outside the cluster network (${networks.map((n) => n.text).join(', ')})`);
    }
    return c;
  });
  const [v4, v6] = [all[0]!, all[1]];
  const peer: Peer = {
    name: p.name,
    subnets: cidrs.map((c, k) => shared(p.subnets[k]!, c.text)),
    publicIP: v4.text,
    ...(v4.macText ? { vtepMAC: v4.macText } : {}),
    ...(v6 ? { publicIPv6: v6.text } : {}),
    ...(v6?.macText ? { vtepMACv6: v6.macText } : {}),
    port,
    vni,
    ...(p.underlayMtu !== undefined ? { underlayMtu: p.underlayMtu } : {}),
    ...(p.partialCsum ? { partialCsum: true } : {}),
  };
  const routesAt = usable.length * FDB_PEER_SIZE;
  const bytes = new Uint8Array(routesAt + cidrs.length * FDB_ROUTE_SIZE);
  usable.forEach((u, e) => {
    const off = e * FDB_PEER_SIZE;
    bytes[off] = u.ip.family;
    bytes[off + 1] = p.partialCsum ? FDB_F_PARTIAL_CSUM : 0;
    putU16(bytes, off + 2, port);
    bytes.set(u.ip.bytes, off + 4);
    bytes.set(u.mac, off + 20);
    putU32(bytes, off + 28, vni);
    putU32(bytes, off + 36, limits[e]!);
  });
  cidrs.forEach((c, k) => {
    const off = routesAt + k * FDB_ROUTE_SIZE;
    bytes[off] = c.family;
    bytes[off + 1] = c.prefixLen;
    // over the underlay of the subnet's own family when there is one (flannel's dual stack)
    putU32(bytes, off + 4, Math.max(0, usable.findIndex((u) => u.ip.family === c.family)));
    bytes.set(c.bytes, off + 8);
  });
  return {
    defaults: dkey, name: p.name, subnets: [...p.subnets], publicIP: p.publicIP, vtepMAC: p.vtepMAC,
    publicIPv6: p.publicIPv6, vtepMACv6: p.vtepMACv6, port: p.port, vni: p.vni, underlayMtu: p.underlayMtu,
    partialCsum: p.partialCsum, pathMtu: limits[0]!, peer, bits: cidrs.map(subnetBits), entryIPs: usable.map((u) => u.text), bytes,
  };
}

/** An FdbPeer of a built table: the address fields are derived from the canonical peer when read. */
class TablePeer implements FdbPeer {
  constructor(readonly peer: Peer, readonly index: number, readonly slot: number, readonly entry: number, readonly entries: number,
    readonly pathMtu: number) {}
  get underlay(): IPAddr {
    return parseIP(this.peer.publicIP);
  }
  get port(): number {
    return this.peer.port!;
  }
  get vni(): number {
    return this.peer.vni!;
  }
  get mac(): Uint8Array {
    return this.peer.vtepMAC ? parseMac(this.peer.vtepMAC) : new Uint8Array(6);
  }
}

/** An FdbRoute of a built table: the Cidr is parsed from the subnet's text when read. */
class TableRoute implements FdbRoute {
  constructor(private readonly subnet: string, readonly peer: number) {}
  get cidr(): Cidr {
    return parseCidr(this.subnet);
  }
}

/** Routes grouped by family and prefix length, longest first, keyed by network bytes. */
type Lpm = Map<Family, Array<{ len: number; nets: Map<string, number> }>>;

/** An immutable, validated FDB: peers with slots, routes, snapshot bytes. */
export class FdbTable {
  private lpm: Lpm | undefined;

  /**
   * @internal use buildFdb(). `records` (one per peer, same order) carry the
   * pre-encoded snapshot records; without them encode() writes every field, one entry per
   * peer (its primary underlay: such a table has no dual-stack entries).
   */
  constructor(
    readonly peers: readonly FdbPeer[],
    readonly routes: readonly FdbRoute[],
    /** Slots handed out fresh by this build (zero their counters before use). */
    readonly freshSlots: readonly number[],
    /** Of freshSlots, those taken from peers that leave in this build: zero them again once the old table is gone. */
    readonly recycledSlots: readonly number[],
    private readonly records?: readonly PeerRecord[],
  ) {}

  private buildLpm(): Lpm {
    const lpm: Lpm = new Map();
    for (const r of this.routes) {
      const levels = lpm.get(r.cidr.family) ?? [];
      let level = levels.find((l) => l.len === r.cidr.prefixLen);
      if (!level) {
        level = { len: r.cidr.prefixLen, nets: new Map() };
        levels.push(level);
        levels.sort((a, b) => b.len - a.len);
      }
      level.nets.set(Buffer.from(r.cidr.bytes).toString('hex'), r.peer);
      lpm.set(r.cidr.family, levels);
    }
    return lpm;
  }

  /** Longest-prefix match of an inner address; undefined when no route covers it. */
  lookup(address: string | IPAddr): FdbPeer | undefined {
    const ip = typeof address === 'string' ? parseIP(address) : address;
    this.lpm ??= this.buildLpm();
    for (const level of this.lpm.get(ip.family) ?? []) {
      const hit = level.nets.get(Buffer.from(maskBytes(ip.bytes, level.len)).toString('hex'));
      if (hit !== undefined) return this.peers[hit];
    }
    return undefined;
  }

  /**
   * The snapshot's entries in order (a peer's underlay addresses that our sockets reach; a
   * dual-stack peer has two): what the engines' encap and decap results index.
   */
  entryList(): FdbEntry[] {
    return this.peers.flatMap((p, i) => {
      const ips = this.records?.[i]?.entryIPs ?? [p.peer.publicIP];
      return ips.map((ip) => ({ peer: p, ip, family: parseIP(ip).family }));
    });
  }

  /** Canonical peers, in FdbTable.peers order. */
  peerList(): Peer[] {
    return this.peers.map((p) => p.peer);
  }

  /** Counter slot -> peer name. */
  slotNames(): Map<number, string> {
    return new Map(this.peers.map((p) => [p.slot, p.peer.name]));
  }

  /**
   * Encode the native snapshot (struct ul_fdb_snapshot_hdr + peers + routes,
   * little-endian) into one new buffer the caller owns.
   */
  encode(): Uint8Array {
    const entries = this.records ? this.records.reduce((n, r) => n + r.entryIPs.length, 0) : this.peers.length;
    const size = FDB_HDR_SIZE + entries * FDB_PEER_SIZE + this.routes.length * FDB_ROUTE_SIZE;
    const buf = new Uint8Array(size);
    const dv = new DataView(buf.buffer);
    dv.setUint32(0, FDB_MAGIC, true);
    dv.setUint32(4, entries, true);
    dv.setUint32(8, this.routes.length, true);
    if (this.records) {
      this.encodeRecords(buf, dv, this.records, entries);
      return buf;
    }
    let off = FDB_HDR_SIZE;
    for (const p of this.peers) {
      dv.setUint8(off, p.underlay.family);
      dv.setUint8(off + 1, p.peer.partialCsum ? FDB_F_PARTIAL_CSUM : 0);
      dv.setUint16(off + 2, p.port, true);
      buf.set(p.underlay.bytes, off + 4);
      buf.set(p.mac, off + 20);
      dv.setUint32(off + 28, p.vni, true);
      dv.setUint32(off + 32, p.slot, true);
      dv.setUint32(off + 36, p.pathMtu, true);
      off += FDB_PEER_SIZE;
    }
    for (const r of this.routes) {
      dv.setUint8(off, r.cidr.family);
      dv.setUint8(off + 1, r.cidr.prefixLen);
      dv.setUint32(off + 4, r.peer, true);
      buf.set(r.cidr.bytes, off + 8);
      off += FDB_ROUTE_SIZE;
    }
    return buf;
  }

  /** Copy the pre-encoded records and patch in slots and entry indexes. */
  private encodeRecords(buf: Uint8Array, dv: DataView, records: readonly PeerRecord[], entries: number): void {
    let off = FDB_HDR_SIZE;
    let routeOff = FDB_HDR_SIZE + entries * FDB_PEER_SIZE;
    records.forEach((rec, index) => {
      const b = rec.bytes;
      const { entry, slot } = this.peers[index]!;
      const routesAt = rec.entryIPs.length * FDB_PEER_SIZE;
      for (let i = 0; i < routesAt; i++) buf[off + i] = b[i]!;
      for (let e = 0; e < rec.entryIPs.length; e++) dv.setUint32(off + e * FDB_PEER_SIZE + 32, slot, true);
      off += routesAt;
      for (let i = routesAt; i < b.length; i++) buf[routeOff + i - routesAt] = b[i]!;
      for (let k = routesAt; k < b.length; k += FDB_ROUTE_SIZE, routeOff += FDB_ROUTE_SIZE) {
        dv.setUint32(routeOff + 4, entry + dv.getUint32(routeOff + 4, true), true);
      }
    });
  }
}

/**
 * Validate `peers` and build a table, assigning counter slots from `slots`.
 * Throws UserlayError 'EFDB' naming the peer (and, for a subnet or underlay
 * address claimed twice, both peers); on a throw `slots` is unchanged.
 * Peers are read, never kept mutable: validated records are cached per Peer
 * object and re-validated when its fields change (see the design notes).
 */
export function buildFdb(peers: readonly Peer[], defaults: FdbDefaults, slots: SlotAllocator): FdbTable {
  const dkey = defaultsKey(defaults);
  const networks = (defaults.networks ?? []).map((n) => parseCidr(n));
  const names = new Set<string>();
  const byUnderlay = new Map<string, string>();
  const subnets: OwnedSubnet[] = (defaults.ownSubnets ?? []).map((own) => ({ bits: subnetBits(own), owner: OWN, text: parseCidr(own).text }));
  const checked = peers.map((p, index) => {
    if (typeof p.name !== 'string' || p.name === '') throw fdbError('peer name: must be a non-empty string');
    if (names.has(p.name)) throw fdbError(`peer "${p.name}" is listed twice`);
    names.add(p.name);
    const v = recordOf(p, defaults, dkey, networks);
    const seen = new Set<string>();
    v.peer.subnets.forEach((text, k) => {
      if (seen.has(text)) throw fdbError(`peer "${p.name}" lists subnet ${text} twice`);
      seen.add(text);
      subnets.push({ bits: v.bits[k]!, owner: index, text });
    });
    for (const ip of [v.peer.publicIP, ...(v.peer.publicIPv6 !== undefined ? [v.peer.publicIPv6] : [])]) {
      const other = byUnderlay.get(ip);
      if (other !== undefined) throw fdbError(`publicIP ${ip} is used by both peer "${other}" and peer "${p.name}"`);
      byUnderlay.set(ip, p.name);
    }
    return v;
  });
  // anti-spoofing: a peer is trusted for its subnets, so none may cover ours or another's
  const clashes = overlaps(subnets);
  for (let i = 0; i < checked.length; i++) {
    const clash = clashes.get(i)?.[0];
    if (clash === undefined) continue;
    const who = (o: number) => (o === OWN ? 'this node\'s own subnet' : `peer "${checked[o]!.peer.name}" subnet`);
    throw fdbError(`${who(i)} ${clash.subnet} overlaps ${who(clash.other)} ${clash.otherSubnet}`);
  }
  const plan = slots.plan(checked.map((v) => v.peer.name));
  const fdbPeers: FdbPeer[] = new Array<FdbPeer>(checked.length);
  const routes: FdbRoute[] = [];
  let entry = 0;
  checked.forEach((v, index) => {
    const slot = plan.slots.get(v.peer.name)!;
    const entries = v.entryIPs.length;
    // the same objects as last time when nothing moved: less for the GC to promote
    if (v.last === undefined || v.last.peer.index !== index || v.last.peer.slot !== slot || v.last.peer.entry !== entry) {
      v.last = { peer: new TablePeer(v.peer, index, slot, entry, entries, v.pathMtu), routes: v.peer.subnets.map((subnet) => new TableRoute(subnet, index)) };
    }
    entry += entries;
    fdbPeers[index] = v.last.peer;
    for (const r of v.last.routes) routes.push(r);
  });
  slots.commit(plan.slots);
  return new FdbTable(fdbPeers, routes, plan.fresh, plan.recycled, checked);
}
