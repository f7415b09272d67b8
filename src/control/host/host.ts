/**
 * The host as the agent changes it, behind one injectable interface: the underlay's links,
 * addresses and MTU (underlay.ts, mtu.ts read them through UnderlayHost), kernel routes
 * (routes.ts; the native addon does the netlink) and netfilter (nftables.ts). The agent builds
 * the real one; tests hand in fakes of any part.
 */
import { systemHost, type UnderlayHost } from '../underlay.js';
import { systemNftables, type Nftables } from './nftables.js';
import type { RouteOps } from './routes.js';

/** Everything of the host the agent reads or changes. */
export interface Host extends UnderlayHost {
  /** Kernel routes (protocol 85). */
  readonly routes: RouteOps;
  /** The host's nftables. */
  readonly nftables: Nftables;
}

/** The real host: /proc, /sys and os.networkInterfaces(), `routes` (the addon), and `nft`. */
export function realHost(routes: RouteOps, nftables: Nftables = systemNftables()): Host {
  return { ...systemHost, routes, nftables };
}
