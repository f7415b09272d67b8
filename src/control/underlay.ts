/**
 * Picking the underlay interface and address (flannel's --iface / --iface-regex /
 * --iface-can-reach / --public-ip, in that spirit but with fewer surprises):
 *
 *   1. --iface (repeatable; an interface name or one of its addresses): the first that exists.
 *   2. --iface-regex (repeatable): the first interface whose name or an address matches,
 *      regexes tried in order, interfaces in name order.
 *   3. --iface-can-reach ADDR: the interface holding the source address the kernel would use
 *      towards ADDR, read from a connected UDP socket (connect() sends no packet).
 *   4. otherwise the default-route interface (/proc/net/route, then /proc/net/ipv6_route;
 *      the lowest metric wins).
 *
 * The bind address is that interface's first address of the underlay family: the family of
 * --public-ip (or the overwrite annotation) when given, else of --iface-can-reach's target,
 * else the preferred one; IPv6 works in every step (flannel #2081). The address
 * published to peers is --public-ip, else the node annotation `<prefix>/public-ip-overwrite`,
 * else the bind address. A public IP that is local to this host is also used as the bind address.
 *
 * A dual-stack node (`dualStack`: both cluster families enabled, as flannel's EnableIPv4 +
 * EnableIPv6) has an underlay address of each family, as flannel's dual stack picks them: the
 * IPv4 one as above, and the IPv6 one from the same interface — the --public-ipv6 address (or
 * the `<prefix>/public-ipv6-overwrite` annotation) when it is local, else the interface's first
 * usable IPv6 address; --public-ipv6 is also what peers are told. Without a usable IPv6
 * address the node stays on the IPv4 underlay alone (`dualStackProblem` says why), where
 * userlay peers still reach its IPv6 pods.
 *
 * Every host access goes through `UnderlayHost`, so tests inject a fake host.
 */
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import { UserlayError, usageError } from '../errors.js';
import { linkMtu } from './host/mtu.js';
import { canonicalIP, cidrContains, cidrOverlaps, isIP, parseCidr, parseIP, type Family } from '../dataplane/net.js';

/** Host facts the picker reads. */
export interface UnderlayHost {
  /** Interfaces and their addresses (os.networkInterfaces() shape). */
  interfaces(): Record<string, NetworkInterfaceInfo[] | undefined>;
  /** A /proc or /sys file's text, or undefined when unreadable. */
  readText(path: string): string | undefined;
  /** The local source address the kernel picks to reach `ip`. */
  localAddressFor(ip: string): Promise<string>;
}

/** The real host. */
export const systemHost: UnderlayHost = {
  interfaces: () => networkInterfaces(),
  readText(path) {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return undefined;
    }
  },
  localAddressFor(ip) {
    const family = parseIP(ip).family;
    return new Promise((resolve, reject) => {
      const sock = createSocket(family === 4 ? 'udp4' : 'udp6');
      sock.once('error', (err) => {
        sock.close();
        reject(err);
      });
      sock.connect(9, ip, () => {
        const local = sock.address().address;
        sock.close();
        resolve(local);
      });
    });
  },
};

/** What the operator asked for. */
export interface UnderlayRequest {
  iface?: readonly string[];
  ifaceRegex?: readonly string[];
  ifaceCanReach?: string | undefined;
  /** --public-ip. */
  publicIP?: string | undefined;
  /** Value of the node annotation `<prefix>/public-ip-overwrite`, if any. */
  publicIPOverwrite?: string | undefined;
  /** Preferred address family of the underlay (default 4). */
  family?: Family;
  /** Dual stack: also pick an IPv6 underlay address (see the file comment). */
  dualStack?: boolean;
  /** --public-ipv6 (dual stack). */
  publicIPv6?: string | undefined;
  /** Value of the node annotation `<prefix>/public-ipv6-overwrite`, if any. */
  publicIPv6Overwrite?: string | undefined;
}

/** The picked underlay. */
export interface Underlay {
  /** Interface name. */
  readonly iface: string;
  /** Local address the UDP socket binds to. */
  readonly bindIP: string;
  /** Address published to peers. */
  readonly publicIP: string;
  readonly family: Family;
  /** Interface MTU in bytes (host/mtu.ts linkMtu); undefined when unreadable (the caller decides). */
  readonly mtu: number | undefined;
  /** How it was chosen ("--iface", "--iface-regex", "--iface-can-reach", "default route", "--public-ip"). */
  readonly how: string;
  /** Dual stack: the IPv6 address the second socket binds to (family is then 4). */
  readonly bindIPv6?: string;
  /** Dual stack: the IPv6 address published to peers (public-ipv6). */
  readonly publicIPv6?: string;
  /** Dual stack asked for, but no IPv6 underlay: why (the node runs on IPv4 alone). */
  readonly dualStackProblem?: string;
}

function usable(a: NetworkInterfaceInfo): boolean {
  return !a.internal && !(a.family === 'IPv6' && (a.scopeid ?? 0) !== 0) && !a.address.startsWith('fe80:');
}

function familyOf(a: NetworkInterfaceInfo): Family {
  return a.family === 'IPv4' ? 4 : 6;
}

/** The interface holding `ip`, if any. */
export function ifaceWithAddress(host: UnderlayHost, ip: string): string | undefined {
  const want = canonicalIP(ip);
  for (const [name, addrs] of Object.entries(host.interfaces())) {
    if ((addrs ?? []).some((a) => canonicalIP(a.address) === want)) return name;
  }
  return undefined;
}

/** Default-route interfaces of one family from /proc, lowest metric first. */
export function defaultRouteInterfaces(host: UnderlayHost, family: Family): string[] {
  const routes: Array<{ iface: string; metric: number }> = [];
  if (family === 4) {
    for (const line of (host.readText('/proc/net/route') ?? '').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // Iface Destination Gateway Flags RefCnt Use Metric Mask ...; RTF_UP = 1
      if (f.length < 8 || f[1] !== '00000000' || f[7] !== '00000000') continue;
      if ((parseInt(f[3]!, 16) & 1) === 0) continue;
      routes.push({ iface: f[0]!, metric: parseInt(f[6]!, 10) });
    }
  } else {
    for (const line of (host.readText('/proc/net/ipv6_route') ?? '').split('\n')) {
      const f = line.trim().split(/\s+/);
      // dest destlen src srclen nexthop metric refcnt use flags iface
      if (f.length < 10 || !/^0{32}$/.test(f[0]!) || f[1] !== '00' || f[9] === 'lo') continue;
      if ((parseInt(f[8]!, 16) & 1) === 0) continue;
      routes.push({ iface: f[9]!, metric: parseInt(f[5]!, 16) });
    }
  }
  return routes.sort((a, b) => a.metric - b.metric).map((r) => r.iface);
}

/** Connected prefixes (canonical CIDR) of `iface`'s usable addresses, any family. */
export function connectedPrefixes(host: UnderlayHost, iface: string): string[] {
  return (host.interfaces()[iface] ?? []).filter((a) => usable(a) && a.cidr !== null).map((a) => parseCidr(a.cidr!).text);
}

function pickAddress(host: UnderlayHost, iface: string, family: Family, exact?: string): { ip: string; family: Family } | undefined {
  const addrs = (host.interfaces()[iface] ?? []).filter(usable);
  if (exact !== undefined) {
    const a = addrs.find((x) => canonicalIP(x.address) === canonicalIP(exact));
    return a ? { ip: canonicalIP(a.address), family: familyOf(a) } : undefined;
  }
  const a = addrs.find((x) => familyOf(x) === family) ?? addrs[0];
  return a ? { ip: canonicalIP(a.address), family: familyOf(a) } : undefined;
}

function compileRegex(text: string): RegExp {
  try {
    return new RegExp(text);
  } catch (err) {
    throw usageError('--iface-regex', `"${text}" is not a valid regular expression`, err);
  }
}

/**
 * Choose the underlay. Throws usageError naming the flag when a requested interface,
 * regex or address cannot be satisfied, and UserlayError ENOUNDERLAY when nothing fits.
 */
export async function pickUnderlay(req: UnderlayRequest, host: UnderlayHost = systemHost): Promise<Underlay> {
  const publicIP = req.publicIP ?? req.publicIPOverwrite;
  const publicField = req.publicIP !== undefined ? '--public-ip' : 'annotation public-ip-overwrite';
  if (publicIP !== undefined && !isIP(publicIP)) throw usageError(publicField, `"${publicIP}" is not an IP address`);
  const canReach = req.ifaceCanReach !== undefined && isIP(req.ifaceCanReach) ? req.ifaceCanReach : undefined;
  /** An address the operator gave fixes the family: the socket must be able to speak to it. */
  const fixed = publicIP ?? canReach;
  const family = fixed !== undefined ? parseIP(fixed).family : req.family ?? 4;
  /** The interface holding the public IP, when it is a local address. */
  const publicIface = publicIP === undefined ? undefined : ifaceWithAddress(host, publicIP);

  let chosen: { iface: string; exact?: string; how: string } | undefined;
  if (req.iface && req.iface.length > 0) {
    for (const v of req.iface) {
      if (isIP(v)) {
        const name = ifaceWithAddress(host, v);
        if (name) { chosen = { iface: name, exact: v, how: '--iface' }; break; }
      } else if (host.interfaces()[v]) {
        chosen = { iface: v, how: '--iface' };
        break;
      }
    }
    if (!chosen) throw usageError('--iface', `none of ${req.iface.join(', ')} exists on this host`);
  } else if (req.ifaceRegex && req.ifaceRegex.length > 0) {
    const names = Object.keys(host.interfaces()).sort();
    outer: for (const text of req.ifaceRegex) {
      const re = compileRegex(text);
      for (const name of names) {
        if (re.test(name)) { chosen = { iface: name, how: '--iface-regex' }; break outer; }
        const a = (host.interfaces()[name] ?? []).filter(usable).find((x) => re.test(x.address));
        if (a) { chosen = { iface: name, exact: a.address, how: '--iface-regex' }; break outer; }
      }
    }
    if (!chosen) throw usageError('--iface-regex', `no interface name or address matches ${req.ifaceRegex.join(', ')}`);
  } else if (req.ifaceCanReach !== undefined) {
    if (!isIP(req.ifaceCanReach)) throw usageError('--iface-can-reach', `"${req.ifaceCanReach}" is not an IP address`);
    let local: string;
    try {
      local = await host.localAddressFor(req.ifaceCanReach);
    } catch (err) {
      throw usageError('--iface-can-reach', `no route to ${req.ifaceCanReach}: ${(err as Error).message}`, err);
    }
    const name = ifaceWithAddress(host, local);
    if (!name) throw usageError('--iface-can-reach', `source address ${local} towards ${req.ifaceCanReach} is on no interface`);
    chosen = { iface: name, exact: local, how: '--iface-can-reach' };
  } else if (publicIface !== undefined) {
    chosen = { iface: publicIface, exact: publicIP, how: publicField };
  } else {
    const order: Family[] = family === 4 ? [4, 6] : [6, 4];
    for (const f of order) {
      const name = defaultRouteInterfaces(host, f).find((n) => pickAddress(host, n, f) !== undefined);
      if (name) { chosen = { iface: name, how: 'default route' }; break; }
    }
    if (!chosen) {
      throw new UserlayError('ENOUNDERLAY', 'no default route and no --iface/--iface-regex/--iface-can-reach/--public-ip: cannot pick the underlay interface');
    }
  }
  const addr = pickAddress(host, chosen.iface, family, chosen.exact);
  const field = chosen.how.startsWith('--') ? chosen.how : '--iface';
  if (!addr) throw usageError(field, `interface ${chosen.iface} has no usable address`);
  if (fixed !== undefined && addr.family !== family) {
    throw usageError(publicIP !== undefined ? publicField : '--iface-can-reach', `${fixed} is IPv${family} but interface ${chosen.iface} has no usable IPv${family} address to bind`);
  }
  const local = publicIface !== undefined && publicIface === chosen.iface;
  const primary: Underlay = {
    iface: chosen.iface,
    bindIP: local ? canonicalIP(publicIP!) : addr.ip,
    publicIP: publicIP !== undefined ? canonicalIP(publicIP) : addr.ip,
    family: local ? parseIP(publicIP!).family : addr.family,
    mtu: linkMtu(host, chosen.iface),
    how: chosen.how,
  };
  return req.dualStack ? { ...primary, ...pickIPv6(req, host, primary) } : primary;
}

/** The IPv6 underlay of a dual-stack node on the interface of `primary` (see the file comment). */
function pickIPv6(req: UnderlayRequest, host: UnderlayHost, primary: Underlay):
  Pick<Underlay, 'bindIPv6' | 'publicIPv6' | 'dualStackProblem'> {
  const given = req.publicIPv6 ?? req.publicIPv6Overwrite;
  const field = req.publicIPv6 !== undefined ? '--public-ipv6' : 'annotation public-ipv6-overwrite';
  if (given !== undefined && (!isIP(given) || parseIP(given).family !== 6)) throw usageError(field, `"${given}" is not an IPv6 address`);
  if (primary.family !== 4) return { dualStackProblem: `the underlay address ${primary.publicIP} is IPv6 already` };
  const addrs = (host.interfaces()[primary.iface] ?? []).filter((a) => usable(a) && familyOf(a) === 6).map((a) => canonicalIP(a.address));
  const local = given !== undefined && addrs.includes(canonicalIP(given)) ? canonicalIP(given) : undefined;
  const bind = local ?? addrs[0];
  if (bind === undefined) {
    if (given !== undefined) throw usageError(field, `${given}: interface ${primary.iface} has no usable IPv6 address to bind`);
    return { dualStackProblem: `interface ${primary.iface} has no usable IPv6 address` };
  }
  return { bindIPv6: bind, publicIPv6: given !== undefined ? canonicalIP(given) : bind };
}

/** A cluster range to check against the underlay: what it is called in messages, and the CIDR. */
export interface ClusterRange {
  /** The flag or field it comes from ("--network", "net-conf Network", "podCIDR"). */
  readonly field: string;
  readonly cidr: string;
}

/**
 * Why the cluster network(s) and pod subnet(s) must not reach into the underlay: the agent routes
 * them into its TUN, so an underlay address inside them sends the agent's own datagrams into its
 * own tunnel, and the removal of that route at exit takes the underlay's connected route along.
 * Returns, for the first range that contains `ip` (or `alsoIP`, a published address that need not
 * be local) or overlaps a connected prefix of the interface holding `ip`, the field and a message;
 * undefined when none does.
 */
export function underlayConflict(ranges: readonly ClusterRange[], ip: string, host: UnderlayHost = systemHost, alsoIP?: string):
  { field: string; message: string } | undefined {
  const iface = ifaceWithAddress(host, ip);
  const connected = iface === undefined ? [] : connectedPrefixes(host, iface);
  for (const r of ranges) {
    for (const addr of alsoIP === undefined || canonicalIP(alsoIP) === canonicalIP(ip) ? [ip] : [ip, alsoIP]) {
      if (cidrContains(r.cidr, addr)) {
        return { field: r.field, message: `${r.cidr} contains the underlay address ${canonicalIP(addr)}: the agent's own datagrams would route into its TUN` };
      }
    }
    const hit = connected.find((c) => cidrOverlaps(r.cidr, c));
    if (hit !== undefined) {
      return { field: r.field, message: `${r.cidr} overlaps ${hit}, the underlay's connected prefix on ${iface}: the node would route its underlay into the TUN` };
    }
  }
  return undefined;
}
