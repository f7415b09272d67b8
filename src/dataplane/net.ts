/**
 * IP, CIDR and MAC parsing and formatting.
 *
 * One representation for both families, as in the C core (struct ul_addr):
 * 16 bytes, IPv4 in the first 4 with the rest zero, and `family` saying which.
 * Everything past the text syntax (masking, containment, formatting of
 * networks) runs through one path parameterised by the family's byte length,
 * so IPv4 and IPv6 cannot drift apart.
 *
 * Parsing is strict: IPv4 octets without leading zeros ("01.2.3.4" is
 * rejected, it means octal to some parsers), prefix lengths in range, no
 * zone ids, no surrounding whitespace. Formatting is canonical: dotted quad,
 * and RFC 5952 for IPv6 (lower case, longest zero run compressed).
 */
import { randomBytes } from 'node:crypto';
import { UserlayError } from '../errors.js';

/** Address family, as in struct ul_addr. */
export type Family = 4 | 6;

/** A parsed address: `bytes` is always 16 long (IPv4 in bytes 0..3, rest zero). */
export interface IPAddr {
  readonly family: Family;
  readonly bytes: Uint8Array;
}

/** A parsed CIDR. `addr`/`bytes` are the network (host bits cleared). */
export interface Cidr {
  readonly family: Family;
  /** Canonical network address string ("198.19.1.0", "2001:2::"). */
  readonly addr: string;
  readonly prefixLen: number;
  /** Network address bytes (16, host bits zero). */
  readonly bytes: Uint8Array;
  /** True when the input had host bits set ("198.19.1.5/24"). */
  readonly hostBits: boolean;
  /** Canonical "addr/len". */
  readonly text: string;
}

/** Byte length of an address of `family`. */
export function familyBytes(family: Family): number {
  return family === 4 ? 4 : 16;
}

/** Bit length of an address of `family` (the largest prefix length). */
export function familyBits(family: Family): number {
  return familyBytes(family) * 8;
}

function invalid(what: string, s: string, why: string): UserlayError {
  return new UserlayError('EINVAL', `invalid ${what} "${s}": ${why}`);
}

function parseV4Into(s: string, out: Uint8Array, at: number): string | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return 'expected 4 dotted decimal octets';
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^[0-9]{1,3}$/.test(p)) return `octet "${p}" is not a decimal number`;
    if (p.length > 1 && p[0] === '0') return `octet "${p}" has a leading zero`;
    const v = Number(p);
    if (v > 255) return `octet ${v} is larger than 255`;
    out[at + i] = v;
  }
  return undefined;
}

function parseV6Groups(s: string, what: string, out: Uint8Array, shown: string): void {
  if (s.includes('%')) throw invalid(what, shown, 'zone ids are not accepted');
  const halves = s.split('::');
  if (halves.length > 2) throw invalid(what, shown, '"::" may appear only once');
  const groupsOf = (part: string): string[] => (part === '' ? [] : part.split(':'));
  const head = groupsOf(halves[0]!);
  const tail = halves.length === 2 ? groupsOf(halves[1]!) : [];
  const words: number[] = [];
  const all = [...head, ...tail];
  let v4Tail: Uint8Array | undefined;
  const last = all[all.length - 1];
  if (last !== undefined && last.includes('.')) {
    v4Tail = new Uint8Array(4);
    const why = parseV4Into(last, v4Tail, 0);
    if (why) throw invalid(what, shown, `embedded IPv4 ${why}`);
    if (tail.length > 0) tail.pop(); else head.pop();
  }
  const toWord = (g: string): number => {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) throw invalid(what, shown, `group "${g}" is not 1-4 hex digits`);
    return parseInt(g, 16);
  };
  const headWords = head.map(toWord);
  const tailWords = tail.map(toWord);
  const total = 8 - (v4Tail ? 2 : 0);
  const given = headWords.length + tailWords.length;
  if (halves.length === 2) {
    if (given > total - 1) throw invalid(what, shown, 'too many groups for "::"');
    words.push(...headWords, ...new Array<number>(total - given).fill(0), ...tailWords);
  } else {
    if (given !== total) throw invalid(what, shown, `expected ${total} groups, got ${given}`);
    words.push(...headWords);
  }
  words.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  });
  if (v4Tail) out.set(v4Tail, 12);
}

function parseIPAs(s: string, what: string, shown: string = s): IPAddr {
  if (typeof s !== 'string' || s.length === 0) throw invalid(what, String(shown), 'empty address');
  const bytes = new Uint8Array(16);
  if (s.includes(':')) {
    parseV6Groups(s, what, bytes, shown);
    return { family: 6, bytes };
  }
  const why = parseV4Into(s, bytes, 0);
  if (why) throw invalid(what, shown, why);
  return { family: 4, bytes };
}

/** Parse an IPv4 or IPv6 address. Throws UserlayError EINVAL naming the input. */
export function parseIP(s: string): IPAddr {
  return parseIPAs(s, 'IP address');
}

/** True when `s` parses as an IP address. */
export function isIP(s: string): boolean {
  try {
    parseIP(s);
    return true;
  } catch {
    return false;
  }
}

/** Canonical text of an address: dotted quad, or RFC 5952 for IPv6. */
export function formatIP(family: Family, bytes: Uint8Array): string {
  if (family === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  const words: number[] = [];
  for (let i = 0; i < 8; i++) words.push((bytes[2 * i]! << 8) | bytes[2 * i + 1]!);
  // longest run of zero words (length >= 2), first one on a tie
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) { bestAt = i; bestLen = j - i; }
    i = j;
  }
  const hex = (ws: number[]): string => ws.map((w) => w.toString(16)).join(':');
  if (bestAt < 0) return hex(words);
  return `${hex(words.slice(0, bestAt))}::${hex(words.slice(bestAt + bestLen))}`;
}

/** Canonical text of an address string (throws EINVAL when it is not one). */
export function canonicalIP(s: string): string {
  const ip = parseIP(s);
  return formatIP(ip.family, ip.bytes);
}

/** Copy of `bytes` with every bit after the first `prefixLen` cleared. */
export function maskBytes(bytes: Uint8Array, prefixLen: number): Uint8Array {
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) {
    const keep = Math.max(0, Math.min(8, prefixLen - 8 * i));
    out[i] = bytes[i]! & ((0xff00 >> keep) & 0xff);
  }
  return out;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < 16; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Parse "addr/len". The result is the canonical network; `hostBits` says
 * whether the input had bits set past the prefix (callers decide whether that
 * is an error). Throws EINVAL on garbage or an out-of-range prefix length.
 */
export function parseCidr(s: string): Cidr {
  if (typeof s !== 'string') throw invalid('CIDR', String(s), 'not a string');
  const slash = s.indexOf('/');
  if (slash < 0) throw invalid('CIDR', s, 'missing "/prefix-length"');
  const lenText = s.slice(slash + 1);
  const ip = parseIPAs(s.slice(0, slash), 'CIDR', s);
  const bits = familyBits(ip.family);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(lenText) || Number(lenText) > bits) {
    throw invalid('CIDR', s, `prefix length must be 0..${bits}`);
  }
  const prefixLen = Number(lenText);
  const bytes = maskBytes(ip.bytes, prefixLen);
  const addr = formatIP(ip.family, bytes);
  return { family: ip.family, addr, prefixLen, bytes, hostBits: !bytesEqual(bytes, ip.bytes), text: `${addr}/${prefixLen}` };
}

/** Canonical "network/len" of a CIDR string (host bits cleared). */
export function canonicalCidr(s: string): string {
  return parseCidr(s).text;
}

/** True when `inner` (a CIDR or an address) lies entirely inside `outer`. */
export function cidrContains(outer: string | Cidr, inner: string | Cidr | IPAddr): boolean {
  const o = typeof outer === 'string' ? parseCidr(outer) : outer;
  let family: Family;
  let bytes: Uint8Array;
  let len: number;
  if (typeof inner === 'string') {
    if (inner.includes('/')) {
      const c = parseCidr(inner);
      ({ family, bytes } = c);
      len = c.prefixLen;
    } else {
      const ip = parseIP(inner);
      ({ family, bytes } = ip);
      len = familyBits(family);
    }
  } else {
    ({ family, bytes } = inner);
    len = 'prefixLen' in inner ? inner.prefixLen : familyBits(family);
  }
  if (family !== o.family || len < o.prefixLen) return false;
  return bytesEqual(maskBytes(bytes, o.prefixLen), o.bytes);
}

/** True when two CIDRs share at least one address. */
export function cidrOverlaps(a: string | Cidr, b: string | Cidr): boolean {
  const x = typeof a === 'string' ? parseCidr(a) : a;
  const y = typeof b === 'string' ? parseCidr(b) : b;
  return cidrContains(x, y) || cidrContains(y, x);
}

/** Parse "aa:bb:cc:dd:ee:ff" (also "-" separated, any case) into 6 bytes. Throws EINVAL. */
export function parseMac(s: string): Uint8Array {
  if (typeof s !== 'string' || !/^[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){5}$/.test(s)) {
    throw invalid('MAC address', String(s), 'expected six hex pairs like 0a:58:c6:13:01:00');
  }
  const sep = s[2]!;
  if (s.split(sep).length !== 6) throw invalid('MAC address', s, 'mixed separators');
  return Uint8Array.from(s.split(sep).map((h) => parseInt(h, 16)));
}

/** Canonical "aa:bb:cc:dd:ee:ff" (lower case). */
export function formatMac(bytes: Uint8Array): string {
  return Array.from(bytes.subarray(0, 6), (b) => b.toString(16).padStart(2, '0')).join(':');
}

/** Canonical form of a MAC string (throws EINVAL when it is not one). */
export function canonicalMac(s: string): string {
  return formatMac(parseMac(s));
}

/**
 * Why a MAC cannot be a VTEP's address (all zeros, or the group bit set: multicast and the
 * broadcast address), or undefined when it can.
 */
export function vtepMacProblem(mac: string | Uint8Array): string | undefined {
  const b = typeof mac === 'string' ? parseMac(mac) : mac;
  if (b.every((x) => x === 0)) return 'is all zeros';
  if (b.every((x) => x === 0xff)) return 'is the broadcast address';
  if ((b[0]! & 1) !== 0) return 'is a multicast address (the low bit of the first byte is set)';
  return undefined;
}

/** Turn 6 bytes into a unicast, locally administered MAC (in place) and return its text. */
export function localUnicastMac(bytes: Uint8Array): string {
  bytes[0] = (bytes[0]! & 0xfe) | 0x02;
  return formatMac(bytes);
}

/** A random unicast, locally administered MAC. */
export function randomMac(): string {
  return localUnicastMac(new Uint8Array(randomBytes(6)));
}
