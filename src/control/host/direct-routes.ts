/**
 * Host routes where they work, the overlay where they don't.
 *
 * A peer whose underlay address lies inside a connected prefix of this node's underlay
 * interface is on the same L2 segment: its pod subnets can be routed straight to it
 * (`ip route add <subnet> via <peerIP> dev <underlay>`, protocol 85), no encapsulation, at
 * kernel speed. A peer behind a router is not on-link and needs the overlay.
 *
 *   mode 'overlay'         every peer encapsulated, no routes (vxlan/udp without DirectRouting)
 *   mode 'direct-routing'  on-link peers routed, the others encapsulated (Backend.DirectRouting)
 *   mode 'routes-only'     on-link peers routed; the others are reported as not routed (host-gw)
 *
 * Design notes
 * - Decided per peer on every apply(): each peer-set update, and refresh() (the agent calls it
 *   periodically) re-reads the underlay's connected prefixes, so a changed underlay address,
 *   peer address or connected route moves a peer between the two kinds. Routes are diffed
 *   against what this run installed: unchanged ones are not touched, a changed gateway is
 *   deleted and added again.
 * - Direct peers stay in the FDB. The kernel route (a pod subnet, /24) is more specific than
 *   the cluster route through the TUN (/16), so nothing for them enters the TUN and the engine
 *   sends them nothing; but a peer that encapsulates towards us (it runs without
 *   DirectRouting) is still accepted on receive. See README "Routing modes" for what happens
 *   when only one end routes directly.
 * - Dual stack: a peer with publicIPv6 is on-link only when both its underlay addresses are;
 *   each pod subnet is routed via the peer's address of its own family (IPv4 subnets via
 *   publicIP, IPv6 via publicIPv6, as flannel's host-gw routes each family via that family's
 *   address). A subnet of a family the peer has no address of gets no route.
 * - Ownership: routes are added exclusively (a route someone else has for that subnet is
 *   never taken over: the peer stays on the overlay, or is reported in routes-only mode) and
 *   only protocol-85 routes on the underlay device are deleted. start() removes the ones a
 *   crashed run left there (flannel #2554: no stale routes); a TUN's routes die with the TUN.
 */
import type { Logger } from '../../log.js';
import type { Peer } from '../../dataplane/types.js';
import { type Family, canonicalIP, cidrContains, parseCidr, parseIP } from '../../dataplane/net.js';
import { connectedPrefixes, type UnderlayHost } from '../underlay.js';
import { UL_RTPROT, type RouteOps } from './routes.js';

/** How peers are reached (see the file comment). */
export type RoutingMode = 'overlay' | 'direct-routing' | 'routes-only';

/** A peer that got no kernel route, and why. */
export interface UnroutedPeer {
  readonly name: string;
  readonly publicIP: string;
  readonly reason: string;
}

/** How the last apply() reached each peer. */
export interface RoutingStatus {
  readonly mode: RoutingMode;
  /** Underlay interface the routes go out of. */
  readonly iface: string;
  /** Peers routed by the kernel, by name. */
  readonly direct: readonly string[];
  /** Peers encapsulated, by name (not in routes-only mode). */
  readonly overlay: readonly string[];
  /** Peers with no route at all (routes-only mode: not on-link), with the reason. */
  readonly notRouted: readonly UnroutedPeer[];
}

interface Installed {
  readonly peer: string;
  readonly dst: string;
  readonly prefixLen: number;
  readonly via: string;
}

const key = (dst: string, prefixLen: number): string => `${dst}/${prefixLen}`;

/** A peer's underlay addresses: publicIP, and a dual-stack peer's publicIPv6. */
function underlayAddresses(peer: Peer): string[] {
  return peer.publicIPv6 === undefined ? [peer.publicIP] : [peer.publicIP, peer.publicIPv6];
}

/** The peer's underlay address of `family`, if it has one. */
function underlayOf(peer: Peer, family: Family): string | undefined {
  return underlayAddresses(peer).find((a) => parseIP(a).family === family);
}

/** Why `peer` is not on-link with `connected` (the underlay's prefixes), or undefined when it is (every underlay address). */
export function offLinkReason(peer: Peer, connected: readonly string[], iface: string): string | undefined {
  for (const address of underlayAddresses(peer)) {
    const ip = parseIP(address);
    if (connected.some((c) => cidrContains(c, ip))) continue;
    const mine = connected.filter((c) => parseCidr(c).family === ip.family);
    return `${canonicalIP(address)} is not inside a connected prefix of ${iface} (${mine.join(', ') || 'none'}): behind a router`;
  }
  return undefined;
}

/** Kernel routes to the on-link peers' pod subnets; see the file comment. */
export class DirectRoutes {
  private installed = new Map<string, Installed>();
  private last: readonly Peer[] = [];
  private current: RoutingStatus;

  constructor(
    private readonly ops: RouteOps,
    private readonly host: UnderlayHost,
    readonly iface: string,
    readonly mode: RoutingMode,
    private readonly log: Logger,
  ) {
    this.current = { mode, iface, direct: [], overlay: [], notRouted: [] };
  }

  /** Remove protocol-85 routes a crashed run left on the underlay device (both families). Returns how many. */
  start(): number {
    let removed = 0;
    for (const family of [4, 6] as const) {
      for (const r of this.ops.routeList(family, this.iface, UL_RTPROT)) {
        try {
          this.ops.routeDel(this.iface, r.dst, r.prefixLen);
          removed++;
          this.log.info('removed a stale userlay route left by an earlier run', { route: key(r.dst, r.prefixLen), via: r.via, dev: this.iface });
        } catch (err) {
          this.log.warn('could not remove a stale userlay route', { route: key(r.dst, r.prefixLen), dev: this.iface, err });
        }
      }
    }
    return removed;
  }

  /**
   * Decide for every peer and make the kernel routes match. Returns the peers the data plane
   * should hold: all of them with direct routing (see the design notes), none in routes-only
   * mode, all in overlay mode. Never throws for a route: a failed add is logged and the peer
   * counts as not routed directly.
   */
  apply(peers: readonly Peer[]): readonly Peer[] {
    this.last = peers;
    if (this.mode === 'overlay') {
      this.current = { mode: this.mode, iface: this.iface, direct: [], overlay: peers.map((p) => p.name), notRouted: [] };
      return peers;
    }
    const connected = connectedPrefixes(this.host, this.iface);
    const want = new Map<string, Installed>();
    const offLink = new Map<string, string>();
    for (const p of peers) {
      const reason = offLinkReason(p, connected, this.iface);
      if (reason !== undefined) {
        offLink.set(p.name, reason);
        continue;
      }
      for (const s of p.subnets) {
        const c = parseCidr(s);
        const via = underlayOf(p, c.family);
        if (via === undefined) continue; // a subnet of a family the peer has no address of cannot go via another
        want.set(key(c.addr, c.prefixLen), { peer: p.name, dst: c.addr, prefixLen: c.prefixLen, via: canonicalIP(via) });
      }
    }
    for (const [k, r] of this.installed) {
      const w = want.get(k);
      if (w !== undefined && w.via === r.via) continue;
      this.del(r);
      this.installed.delete(k);
    }
    const failed = new Map<string, string>();
    for (const [k, r] of want) {
      if (this.installed.has(k)) continue;
      try {
        this.ops.routeAdd(this.iface, r.dst, r.prefixLen, r.via, false);
        this.installed.set(k, r);
        this.log.info('direct route added', { peer: r.peer, route: k, via: r.via, dev: this.iface });
      } catch (err) {
        const code = (err as { code?: string }).code;
        const why = code === 'EEXIST' ? `a route for ${k} exists already (not userlay's, or on another device): not taken over`
          : `add route ${k} via ${r.via} dev ${this.iface}: ${(err as Error).message}`;
        failed.set(r.peer, why);
        this.log.error('direct route not added', { peer: r.peer, route: k, reason: why });
      }
    }
    // a peer is direct only when every subnet got its route; otherwise drop the partial ones
    for (const [peer] of failed) {
      for (const [k, r] of this.installed) {
        if (r.peer !== peer) continue;
        this.del(r);
        this.installed.delete(k);
      }
    }
    const before = new Map(this.current.notRouted.map((u) => [u.name, u.reason]));
    const direct: string[] = [];
    const overlay: string[] = [];
    const notRouted: UnroutedPeer[] = [];
    for (const p of peers) {
      const reason = offLink.get(p.name) ?? failed.get(p.name);
      if (reason === undefined) direct.push(p.name);
      else if (this.mode === 'direct-routing') overlay.push(p.name);
      else notRouted.push({ name: p.name, publicIP: p.publicIP, reason });
      if (reason !== undefined && before.get(p.name) !== reason && this.mode === 'routes-only') {
        this.log.warn('peer not routed: host-gw needs every peer on the underlay segment', { peer: p.name, publicIP: p.publicIP, reason });
      }
    }
    for (const name of overlay) {
      if (!this.current.overlay.includes(name)) this.log.info('peer encapsulated: not on-link', { peer: name, reason: offLink.get(name) ?? failed.get(name) });
    }
    this.current = { mode: this.mode, iface: this.iface, direct, overlay, notRouted };
    return this.mode === 'routes-only' ? [] : peers;
  }

  /** Decide again for the last peer set (the underlay may have changed). Returns what apply() returns. */
  refresh(): readonly Peer[] {
    return this.apply(this.last);
  }

  /** How the last apply() reached each peer. */
  status(): RoutingStatus {
    return this.current;
  }

  /** Delete every route this run added. Never throws. */
  close(): void {
    for (const r of this.installed.values()) this.del(r);
    this.installed.clear();
  }

  private del(r: Installed): void {
    try {
      this.ops.routeDel(this.iface, r.dst, r.prefixLen);
      this.log.info('direct route removed', { peer: r.peer, route: key(r.dst, r.prefixLen), via: r.via });
    } catch (err) {
      this.log.debug('direct route already gone', { route: key(r.dst, r.prefixLen), err });
    }
  }
}
