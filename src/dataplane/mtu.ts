/**
 * TUN MTU from the underlay: the MTU of the interface holding our public IP
 * minus the encapsulation overhead, which is what pods must use.
 *
 *   vxlan: outer IP (20 / 40) + UDP 8 + VXLAN 8 + inner Ethernet 14 = 50 / 70
 *   udp:   outer IP (20 / 40) + UDP 8                                 = 28 / 48
 */
import os from 'node:os';
import { readFileSync } from 'node:fs';
import { UserlayError, usageError } from '../errors.js';
import type { Backend } from './types.js';
import { type Family, canonicalIP, parseIP } from './net.js';

/** Smallest TUN MTU accepted (IPv4 minimum reassembly size; IPv6 needs 1280). */
export const MIN_MTU = 576;
/** Largest TUN MTU accepted. */
export const MAX_MTU = 65535;

/** Bytes of encapsulation added to every inner packet, by backend and underlay family. */
export function encapOverhead(backend: Backend, family: Family): number {
  const outerIP = family === 4 ? 20 : 40;
  return outerIP + 8 + (backend === 'vxlan' ? 8 + 14 : 0);
}

function findInterface(want: string): string | undefined {
  for (const [iface, addrs] of Object.entries(os.networkInterfaces())) {
    if (addrs?.some((a) => canonicalIP(a.address.split('%')[0]!) === want)) return iface;
  }
  return undefined;
}

/**
 * The interface holding `publicIP` and its MTU (read from /sys/class/net/<if>/mtu).
 * os.networkInterfaces() lists only running links, and a freshly created veth
 * may need a moment to get its carrier: look again for up to `waitMs`.
 */
export function underlayMtu(publicIP: string, waitMs = 3000): { iface: string; mtu: number } {
  const want = canonicalIP(publicIP);
  const deadline = Date.now() + waitMs;
  let iface = findInterface(want);
  while (iface === undefined && Date.now() < deadline) {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
    iface = findInterface(want);
  }
  if (iface !== undefined) {
    let text: string;
    try {
      text = readFileSync(`/sys/class/net/${iface}/mtu`, 'utf8');
    } catch (err) {
      throw new UserlayError('ECONFIG', `read MTU of ${iface}: ${(err as Error).message}`, { cause: err });
    }
    const mtu = Number(text.trim());
    if (!Number.isInteger(mtu) || mtu <= 0) throw new UserlayError('ECONFIG', `MTU of ${iface} is "${text.trim()}"`);
    return { iface, mtu };
  }
  throw usageError('--public-ip', `${publicIP} is not an address of any local interface (cannot find the underlay MTU; use --mtu N)`);
}

/** Result of resolving `--mtu`. */
export interface MtuChoice {
  /** TUN MTU = the MTU pods must use. */
  readonly mtu: number;
  /** Underlay interface and MTU when found (auto). */
  readonly underlay?: { iface: string; mtu: number };
  readonly overhead: number;
  /** Set when a given MTU is larger than the underlay carries without fragmenting the outer packets. */
  readonly warning?: string;
}

/**
 * Resolve `--mtu auto|N`: auto takes the underlay MTU minus the overhead;
 * N is the TUN MTU itself. Throws a usage error naming --mtu when out of range.
 */
export function resolveMtu(spec: string, backend: Backend, publicIP: string): MtuChoice {
  const overhead = encapOverhead(backend, parseIP(publicIP).family);
  if (spec === 'auto') {
    const underlay = underlayMtu(publicIP);
    const mtu = underlay.mtu - overhead;
    if (mtu < MIN_MTU) {
      throw usageError('--mtu', `underlay ${underlay.iface} MTU ${underlay.mtu} leaves ${mtu} after ${overhead} bytes of ${backend} overhead (< ${MIN_MTU})`);
    }
    return { mtu: Math.min(mtu, MAX_MTU), underlay, overhead };
  }
  if (!/^[0-9]+$/.test(spec)) throw usageError('--mtu', `"${spec}" is not "auto" or a number`);
  const mtu = Number(spec);
  if (mtu < MIN_MTU || mtu > MAX_MTU) throw usageError('--mtu', `${mtu} is outside ${MIN_MTU}..${MAX_MTU}`);
  let underlay: { iface: string; mtu: number } | undefined;
  try {
    underlay = underlayMtu(publicIP, 0);
  } catch {
    // not found now: nothing to compare with
  }
  if (underlay !== undefined && mtu > underlay.mtu - overhead) {
    return {
      mtu, underlay, overhead,
      warning: `--mtu ${mtu} is larger than underlay ${underlay.iface} (MTU ${underlay.mtu}) carries after ${overhead} bytes of ${backend} overhead `
        + `(${underlay.mtu - overhead}): large packets will leave as fragmented datagrams`,
    };
  }
  return { mtu, overhead, ...(underlay ? { underlay } : {}) };
}
