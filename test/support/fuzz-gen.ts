/**
 * Generators of malformed traffic for the fuzz test and bench (pure: no I/O).
 *
 * Everything comes from one seeded PRNG, so a seed reproduces a run exactly.
 *
 *   datagram(): a UDP payload for the agent's VXLAN port: random bytes of
 *     random length (0 and 65,507 bytes included), or a valid VXLAN frame
 *     from the fuzz peer (inner IPv4 ICMP echo reply, which the receiving
 *     pod answers with nothing), sent as it is or mutated: truncated,
 *     padded, bytes flipped, VXLAN flags/VNI/inner MAC/ethertype changed,
 *     inner IP version, IHL, total length, fragment fields, protocol, source
 *     changed, an IPv6 header with a lying payload length.
 *     Mutations never touch the inner destination address: a frame that
 *     still passes validation goes to the pod, so nothing it causes comes
 *     back into the TUN as a "no route" (which would blur the TUN side's
 *     count).
 *   tunPacket(): an IPv4 packet to write into a helper TUN in the node
 *     namespace, which the kernel forwards into userlay's TUN: header valid
 *     (the kernel checks it), everything else odd: options, fragment
 *     offsets and flags, any protocol with truncated or random L4 bytes, a
 *     total length shorter than the buffer (the kernel trims), TOS/ECN, TTL,
 *     1 to 1400 bytes. Destinations: the fuzz peer's subnet (forwarded to
 *     it) or a cluster subnet no peer has (no route).
 */

/** A seeded PRNG (xorshift128+ on BigInt-free 32-bit halves: sfc32). */
export class Prng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(readonly seed: number) {
    this.a = 0x9e3779b9;
    this.b = 0x243f6a88;
    this.c = 0xb7e15162;
    this.d = seed >>> 0;
    for (let i = 0; i < 15; i++) this.next();
  }

  /** Uniform 32-bit unsigned integer. */
  next(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t;
  }

  /** Integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number {
    return lo + Math.floor((this.next() / 4294967296) * (hi - lo + 1));
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.next() / 4294967296 < p;
  }

  /** One element of `xs`. */
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(0, xs.length - 1)]!;
  }

  /** `n` random bytes. */
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.next() & 0xff;
    return b;
  }
}

/** Largest UDP payload over IPv4. */
export const MAX_UDP_PAYLOAD = 65_507;

/** What the generators need to know about the node under test. */
export interface FuzzTarget {
  /** VNI of the overlay. */
  readonly vni: number;
  /** VTEP MAC of the node under test (inner destination MAC of valid frames). */
  readonly vtepMAC: string;
  /** Inner source prefix of the fuzz peer, "a.b.c." (its /24 subnet). */
  readonly peerSubnet24: string;
  /** Pod address on the node under test (inner destination of valid frames). */
  readonly podIP: string;
  /** Source prefix of the TUN packets, "a.b.c." (a /24 routed to the helper TUN). */
  readonly tunSrc24: string;
  /** Destination prefix of TUN packets to the fuzz peer, "a.b.c.". */
  readonly tunPeerDst24: string;
  /** Destination prefix of TUN packets no FDB entry covers, "a.b.c.". */
  readonly tunNoRouteDst24: string;
  /** Largest TUN packet (at most the userlay TUN's MTU, so the kernel never fragments). */
  readonly tunMaxLen: number;
}

/** A generated datagram and what it is. */
export interface FuzzDatagram {
  readonly payload: Buffer;
  /** "valid": an unmutated frame, which must be delivered. */
  readonly kind: 'random' | 'valid' | 'mutated' | 'empty' | 'max';
  /** Sent from a socket that is not a peer (unknown outer source). */
  readonly stranger: boolean;
}

/** A generated TUN packet and where the kernel will forward it. */
export interface FuzzTunPacket {
  readonly packet: Buffer;
  /** "peer": to the fuzz peer's subnet; "noroute": to a subnet without a peer. */
  readonly dst: 'peer' | 'noroute';
}

function ipv4(s: string): Buffer {
  return Buffer.from(s.split('.').map(Number));
}

function macBytes(mac: string): Buffer {
  return Buffer.from(mac.split(':').map((h) => parseInt(h, 16)));
}

/** Internet checksum of b[off, off+len). */
export function inetChecksum(b: Buffer, off = 0, len = b.length - off): number {
  let sum = 0;
  for (let i = 0; i + 1 < len; i += 2) sum += (b[off + i]! << 8) | b[off + i + 1]!;
  if (len & 1) sum += b[off + len - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

const VXLAN_HDR = 8;
const ETH_HDR = 14;
/** Offset of the inner IP header in a VXLAN frame. */
export const INNER_IP = VXLAN_HDR + ETH_HDR;

/** The datagram generator for one target. */
export class DatagramFuzzer {
  constructor(private readonly rng: Prng, private readonly t: FuzzTarget) {}

  /** A valid VXLAN frame from the fuzz peer: inner ICMP echo reply to the pod. */
  valid(): Buffer {
    const { rng, t } = this;
    const payloadLen = rng.int(0, 1200);
    const ip = Buffer.alloc(20 + 8 + payloadLen);
    ip[0] = 0x45;
    ip.writeUInt16BE(ip.length, 2);
    ip.writeUInt16BE(rng.int(0, 0xffff), 4);
    ip[8] = 64;
    ip[9] = 1;
    ipv4(`${t.peerSubnet24}${rng.int(2, 254)}`).copy(ip, 12);
    ipv4(t.podIP).copy(ip, 16);
    ip.writeUInt16BE(inetChecksum(ip, 0, 20), 10);
    ip[20] = 0; // echo reply: the pod answers nothing
    ip.writeUInt16BE(rng.int(0, 0xffff), 24);
    rng.bytes(payloadLen).copy(ip, 28);
    ip.writeUInt16BE(inetChecksum(ip, 20), 22);
    const hdr = Buffer.alloc(INNER_IP);
    hdr[0] = 0x08;
    hdr.writeUIntBE(t.vni, 4, 3);
    macBytes(t.vtepMAC).copy(hdr, VXLAN_HDR);
    Buffer.from([0x0a, 0x58, 0xc6, 0x13, 0x63, 0x01]).copy(hdr, VXLAN_HDR + 6);
    hdr.writeUInt16BE(0x0800, VXLAN_HDR + 12);
    return Buffer.concat([hdr, ip]);
  }

  private count = 0;

  /** The next datagram; the first three are always an empty one and two of 65,507 bytes. */
  next(): FuzzDatagram {
    const { rng } = this;
    const n = this.count++;
    const stranger = n > 2 && rng.chance(0.08);
    const roll = n === 0 ? 0 : n <= 2 ? 2 : rng.int(0, 999);
    if (roll < 2) return { payload: Buffer.alloc(0), kind: 'empty', stranger };
    if (roll < 3) {
      const random = n === 1 || (n > 2 && rng.chance(0.5));
      const b = random ? rng.bytes(MAX_UDP_PAYLOAD) : Buffer.concat([this.valid(), Buffer.alloc(MAX_UDP_PAYLOAD)]).subarray(0, MAX_UDP_PAYLOAD);
      return { payload: b, kind: 'max', stranger };
    }
    if (roll < 250) return { payload: rng.bytes(rng.pick([rng.int(1, 60), rng.int(61, 200), rng.int(201, 1600)])), kind: 'random', stranger };
    if (roll < 350) return { payload: this.valid(), kind: 'valid', stranger };
    return { payload: this.mutate(this.valid()), kind: 'mutated', stranger };
  }

  /** 1 to 3 mutations of a valid frame; never the inner destination address. */
  mutate(frame: Buffer): Buffer {
    const { rng } = this;
    let f: Buffer = Buffer.from(frame);
    const ip = INNER_IP;
    const rounds = rng.int(1, 3);
    for (let r = 0; r < rounds; r++) {
      switch (rng.int(0, 15)) {
        case 0: f = f.subarray(0, rng.int(0, f.length)); break; // truncated anywhere
        case 1: { // trailing garbage; a frame cut short first gets its destination back
          const keep = f.length < ip + 20 && frame.length >= ip + 20 ? frame.subarray(f.length, ip + 20) : Buffer.alloc(0);
          f = Buffer.concat([f, keep, rng.bytes(rng.int(1, 300))]);
          break;
        }
        case 2: { // flip bytes, keeping the inner destination address
          for (let k = rng.int(1, 8); k > 0 && f.length > 0; k--) {
            const at = rng.int(0, f.length - 1);
            if (at >= ip + 16 && at < ip + 20) continue;
            f[at] = rng.next() & 0xff;
          }
          break;
        }
        case 3: if (f.length > 0) f[0] = rng.pick([0x00, 0x08 | 0x01, 0x0c, 0x80, rng.next() & 0xff]); break; // VXLAN flags
        case 4: if (f.length >= 8) f.writeUIntBE(rng.int(0, 0xffffff), 4, 3); break; // VNI
        case 5: if (f.length >= VXLAN_HDR + 6) rng.pick([Buffer.alloc(6, 0xff), Buffer.alloc(6), rng.bytes(6)]).copy(f, VXLAN_HDR); break; // inner MAC
        case 6: if (f.length >= ip) f.writeUInt16BE(rng.pick([0x86dd, 0x0806, 0x8100, rng.int(0, 0xffff)]), ip - 2); break; // ethertype
        case 7: if (f.length > ip) f[ip] = (rng.int(0, 15) << 4) | (f[ip]! & 0x0f); break; // IP version
        case 8: if (f.length > ip) f[ip] = (f[ip]! & 0xf0) | rng.int(0, 15); break; // IHL
        case 9: if (f.length >= ip + 4) { // total length lies
          const real = f.length - ip;
          f.writeUInt16BE(rng.pick([0, 1, 19, 20, real - 1, real + 1, real + rng.int(2, 2000), 0xffff, rng.int(0, 0xffff)]) & 0xffff, ip + 2);
        }
        break;
        case 10: if (f.length >= ip + 8) f.writeUInt16BE(rng.pick([0x2000, 0x4000, 0x6000, 0x2000 | rng.int(1, 0x1fff), rng.int(0, 0xffff)]), ip + 6); break; // fragments
        case 11: if (f.length > ip + 9) f[ip + 9] = rng.pick([6, 17, 58, 0, 255, rng.int(0, 255)]); break; // protocol: TCP/UDP header now truncated or garbage
        case 12: if (f.length >= ip + 16) ipv4(rng.pick([`198.19.77.${rng.int(0, 255)}`, `198.19.1.${rng.int(0, 255)}`, '0.0.0.0', '255.255.255.255'])).copy(f, ip + 12); break; // source outside the peer
        case 13: if (f.length >= ip + 40) { // an IPv6 header with a lying payload length
          f[ip] = 0x60;
          f.writeUInt16BE(0x86dd, ip - 2);
          f.writeUInt16BE(rng.pick([0, 1, f.length - ip - 40, f.length, 0xffff, rng.int(0, 0xffff)]) & 0xffff, ip + 4);
          f[ip + 6] = rng.pick([0, 6, 17, 44, 58, 59, rng.int(0, 255)]);
        }
        break;
        case 14: f = f.subarray(0, Math.min(f.length, rng.pick([0, 1, 7, 8, 9, 21, 22, 23, ip + 19, ip + 20]))); break; // truncated at header edges
        default: if (f.length >= ip + 20) f.writeUInt16BE(rng.int(0, 0xffff), ip + 10); break; // IP header checksum
      }
    }
    return f;
  }
}

/** The TUN packet generator for one target. */
export class TunFuzzer {
  constructor(private readonly rng: Prng, private readonly t: FuzzTarget) {}

  /** The next packet: a valid IPv4 header (the kernel forwards it), odd everywhere else. */
  next(): FuzzTunPacket {
    const { rng, t } = this;
    const dst = rng.chance(0.6) ? 'peer' : 'noroute';
    const optWords = rng.chance(0.25) ? rng.int(1, 10) : 0;
    const ihl = 5 + optWords;
    const hdrLen = ihl * 4;
    const bodyLen = rng.pick([0, rng.int(1, 8), rng.int(9, 64), rng.int(65, t.tunMaxLen - hdrLen)]);
    const buf = Buffer.alloc(hdrLen + bodyLen);
    // a total length shorter than the buffer: the kernel trims the rest
    const totLen = rng.chance(0.1) && bodyLen > 0 ? hdrLen + rng.int(0, bodyLen - 1) : buf.length;
    buf[0] = 0x40 | ihl;
    buf[1] = rng.chance(0.3) ? rng.int(0, 255) : 0;
    buf.writeUInt16BE(totLen, 2);
    buf.writeUInt16BE(rng.int(0, 0xffff), 4);
    let frag = 0;
    const f = rng.int(0, 9);
    if (f === 0) frag = 0x2000; // first fragment (MF)
    else if (f === 1) frag = 0x2000 | rng.int(1, 0x1fff); // middle fragment
    else if (f === 2) frag = rng.int(1, 0x1fff); // last fragment
    else if (f === 3) frag = 0x4000; // DF
    buf.writeUInt16BE(frag, 6);
    buf[8] = rng.int(2, 255);
    buf[9] = rng.pick([1, 6, 17, 47, 50, 58, 132, 0, 255, rng.int(0, 255)]);
    ipv4(`${t.tunSrc24}${rng.int(1, 254)}`).copy(buf, 12);
    ipv4(`${dst === 'peer' ? t.tunPeerDst24 : t.tunNoRouteDst24}${rng.int(1, 254)}`).copy(buf, 16);
    // options: NOPs with an EOL somewhere (the kernel accepts both)
    for (let i = 20; i < hdrLen; i++) buf[i] = 1;
    if (optWords > 0 && rng.chance(0.5)) buf[rng.int(20, hdrLen - 1)] = 0;
    rng.bytes(bodyLen).copy(buf, hdrLen);
    buf.writeUInt16BE(inetChecksum(buf, 0, hdrLen), 10);
    return { packet: buf, dst };
  }
}
