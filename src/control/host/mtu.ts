/**
 * The TUN MTU from the underlay: the MTU of the interface holding our public IP minus the
 * backend's encapsulation overhead (src/dataplane/backends.ts), which is what pods must use.
 *
 * This is the one place that reads an interface's MTU (linkMtu): static mode's `--mtu auto`
 * and kube mode's underlay pick both ask it, and each caller says what an unreadable MTU means
 * to it (static: an error naming --mtu; kube: an error asking for Backend.MTU).
 */
import { usageError } from '../../errors.js';
import { BACKENDS, MAX_MTU, MIN_MTU, encapOverhead, type Backend } from '../../dataplane/backends.js';
import { parseIP } from '../../dataplane/net.js';
import { sleep, systemClock, type Clock } from '../backoff.js';
import { ifaceWithAddress, systemHost, type UnderlayHost } from '../underlay.js';

/** MTU of `iface` in bytes (/sys/class/net/<iface>/mtu), or undefined when it cannot be read. */
export function linkMtu(host: UnderlayHost, iface: string): number | undefined {
  const n = Number((host.readText(`/sys/class/net/${iface}/mtu`) ?? '').trim());
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

/** The interface holding `publicIP` and its MTU, or undefined when no interface holds it (yet). */
export function underlayLink(host: UnderlayHost, publicIP: string): { iface: string; mtu: number | undefined } | undefined {
  const iface = ifaceWithAddress(host, publicIP);
  return iface === undefined ? undefined : { iface, mtu: linkMtu(host, iface) };
}

/**
 * Like underlayLink, but a freshly created veth may need a moment for its carrier (interfaces
 * without one are not listed): look again every 100 ms for up to `waitMs`, without blocking the
 * event loop. Throws a usage error naming --public-ip when no interface holds the address, and
 * one naming --mtu when its MTU cannot be read.
 */
export async function waitUnderlayMtu(publicIP: string, host: UnderlayHost = systemHost, waitMs = 3000, clock: Clock = systemClock):
  Promise<{ iface: string; mtu: number }> {
  const deadline = clock.now() + waitMs;
  let link = underlayLink(host, publicIP);
  while (link === undefined && clock.now() < deadline) {
    await sleep(clock, 100);
    link = underlayLink(host, publicIP);
  }
  if (link === undefined) {
    throw usageError('--public-ip', `${publicIP} is not an address of any local interface (cannot find the underlay MTU; use --mtu N)`);
  }
  if (link.mtu === undefined) throw usageError('--mtu', `cannot read the MTU of ${link.iface} (/sys/class/net/${link.iface}/mtu); use --mtu N`);
  return { iface: link.iface, mtu: link.mtu };
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
 * Resolve `--mtu auto|N`: auto takes the underlay MTU minus the overhead; N is the TUN MTU
 * itself. Throws a usage error naming --mtu when out of range.
 */
export async function resolveMtu(spec: string, backend: Backend, publicIP: string, host: UnderlayHost = systemHost): Promise<MtuChoice> {
  const overhead = encapOverhead(backend, parseIP(publicIP).family);
  if (spec === 'auto') {
    const underlay = await waitUnderlayMtu(publicIP, host);
    const mtu = underlay.mtu - overhead;
    if (mtu < MIN_MTU) {
      throw usageError('--mtu', `underlay ${underlay.iface} MTU ${underlay.mtu} leaves ${mtu} after ${overhead} bytes of ${backend} overhead (< ${MIN_MTU})`);
    }
    return { mtu: Math.min(mtu, MAX_MTU), underlay, overhead };
  }
  if (!/^[0-9]+$/.test(spec)) throw usageError('--mtu', `"${spec}" is not "auto" or a number`);
  const mtu = Number(spec);
  if (mtu < MIN_MTU || mtu > MAX_MTU) throw usageError('--mtu', `${mtu} is outside ${MIN_MTU}..${MAX_MTU}`);
  const link = underlayLink(host, publicIP);
  const underlay = link?.mtu === undefined ? undefined : { iface: link.iface, mtu: link.mtu };
  if (underlay !== undefined && mtu > underlay.mtu - overhead) {
    const what = BACKENDS[backend].encapsulates ? `after ${overhead} bytes of ${backend} overhead ` : '';
    return {
      mtu, underlay, overhead,
      warning: `--mtu ${mtu} is larger than underlay ${underlay.iface} (MTU ${underlay.mtu}) carries ${what}`
        + `(${underlay.mtu - overhead}): large packets will leave as fragmented datagrams`,
    };
  }
  return { mtu, overhead, ...(underlay ? { underlay } : {}) };
}
