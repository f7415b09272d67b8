/**
 * Kernel routes as userlay uses them: added exclusively and tagged with userlay's protocol
 * number (UL_RTPROT = 85, native/include/userlay.h), deleted only when they are ours (that
 * device, that protocol), listed by a netlink dump filtered by device and protocol.
 *
 * The operations are the native addon's (routeAdd/routeDel/routeList, native/src/netlink.c);
 * this module names only the shape it needs, so control code stays free of the data plane's
 * internals and tests hand in a recording fake.
 */

/** userlay's rtnetlink protocol number: `ip route show proto 85`. */
export const UL_RTPROT = 85;

/** A route as a dump reports it. */
export interface HostRoute {
  readonly dst: string;
  readonly prefixLen: number;
  /** Gateway, absent for a route without one. */
  readonly via?: string;
  readonly ifindex: number;
  readonly protocol: number;
}

/** What userlay asks of the kernel's routing table (the addon satisfies it). */
export interface RouteOps {
  /** Add dst/prefixLen out of ifname (via a gateway) exclusively, protocol 85. Throws with code EEXIST when any route for dst exists. */
  routeAdd(ifname: string, dst: string, prefixLen: number, via?: string | null, onlink?: boolean): void;
  /** Delete our route dst/prefixLen out of ifname (protocol 85 only). Throws with code ESRCH when there is none. */
  routeDel(ifname: string, dst: string, prefixLen: number): void;
  /** Main-table unicast routes of a family out of ifname (null: any) with a protocol (-1: any). */
  routeList(family: 4 | 6, ifname: string | null, protocol: number): HostRoute[];
}
