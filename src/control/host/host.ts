/**
 * The host as the agent changes it, behind one injectable interface: the underlay's links,
 * addresses and MTU (underlay.ts, mtu.ts read them through UnderlayHost), kernel routes
 * (routes.ts; the native addon does the netlink), netfilter (nftables.ts) and sysctls
 * (sysctl.ts; the data plane sets its TUN's through them). The agent builds the real one; tests
 * hand in fakes of any part.
 */
import { systemHost, type UnderlayHost } from '../underlay.js';
import { systemNftables, type Nftables } from './nftables.js';
import type { RouteOps } from './routes.js';
import { systemSysctls, type Sysctls } from './sysctl.js';

/** Everything of the host the agent reads or changes. */
export interface Host extends UnderlayHost, Sysctls {
  /** Kernel routes (protocol 85). */
  readonly routes: RouteOps;
  /** The host's nftables. */
  readonly nftables: Nftables;
}

/** The real host: /proc, /sys and os.networkInterfaces(), `routes` (the addon), `nft`, /proc/sys. */
export function realHost(routes: RouteOps, nftables: Nftables = systemNftables(), sysctls: Sysctls = systemSysctls): Host {
  return { ...systemHost, ...sysctls, routes, nftables };
}
