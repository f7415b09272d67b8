/**
 * A routing table in memory with the kernel's ownership rules as userlay relies on them:
 * exclusive adds (EEXIST), deletes only of protocol-85 routes on that device (ESRCH), dumps
 * filtered by family, device and protocol. `refuse` makes an add fail as if someone else held
 * the route; `log` records every change.
 */
import { UL_RTPROT, type HostRoute, type RouteOps } from '../../src/control/host/routes.js';

/** A route of the fake table, with its device name. */
export type FakeRoute = HostRoute & { dev: string };

export class FakeRoutes implements RouteOps {
  table = new Map<string, FakeRoute>();
  refuse = new Set<string>();
  log: string[] = [];
  routeAdd(ifname: string, dst: string, prefixLen: number, via?: string | null): void {
    const k = `${dst}/${prefixLen}`;
    if (this.table.has(k) || this.refuse.has(k)) throw Object.assign(new Error(`add route ${k}: File exists`), { code: 'EEXIST' });
    this.table.set(k, { dst, prefixLen, ...(via ? { via } : {}), ifindex: 2, protocol: UL_RTPROT, dev: ifname });
    this.log.push(`add ${k} via ${via}`);
  }
  routeDel(ifname: string, dst: string, prefixLen: number): void {
    const k = `${dst}/${prefixLen}`;
    const r = this.table.get(k);
    if (!r || r.protocol !== UL_RTPROT || r.dev !== ifname) throw Object.assign(new Error(`delete route ${k}: No such process`), { code: 'ESRCH' });
    this.table.delete(k);
    this.log.push(`del ${k}`);
  }
  routeList(family: 4 | 6, ifname: string | null, protocol: number): HostRoute[] {
    return [...this.table.values()].filter((r) => (family === 4) === !r.dst.includes(':') && (ifname === null || r.dev === ifname)
      && (protocol < 0 || r.protocol === protocol));
  }
}
