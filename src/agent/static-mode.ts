/**
 * `userlay agent` in static mode: the peer set comes from a JSON file.
 *
 * Startup checks everything that needs no privileges first, in this order,
 * so bad input fails with one line naming the field and nothing configured:
 *   1. flags (syntax, then each value: IPs, CIDRs, MAC, ports, enums)
 *   2. own subnet(s) inside the cluster network(s)
 *   3. cluster network(s) and subnet(s) clear of the underlay address and its connected prefix
 *   4. peers file readable, valid, at most MAX_PEERS, and a consistent FDB against our settings
 *   5. MTU (auto: the smallest path, from the underlay interface's MTU and the peers' `mtu`,
 *      src/control/path-mtu.ts; a --mtu N larger than a path is warned about)
 *   6. openDataplane (port in use, no permission for /dev/net/tun, --tun not a TUN, route exists)
 * Routing (--direct-routing, --backend host-gw): protocol-85 routes a crashed run left on the
 * underlay device are removed, then every peer-set update decides per peer whether it is
 * on-link (kernel route via its underlay address) or not (encapsulated; host-gw: reported and
 * not routed), and the decision is taken again every few seconds (src/control/host/direct-routes.ts).
 * Then: apply the peers, watch the file, the CNI endpoint, the pod egress table (--ip-masq:
 * replaced whole; without it a leftover one is removed), status; SIGHUP reloads, SIGINT/SIGTERM
 * tear down (egress table, routes, TUN, fds) and exit 0. A crash leaves the egress table for
 * the next start to replace.
 */
import { createHash } from 'node:crypto';
import { parseAs, usageError, UserlayError } from '../errors.js';
import { createLogger, type LogLevel } from '../log.js';
import { StaticPeersSource } from '../control/static-file.js';
import { MAX_PEERS, fdbDefaults, openDataplane, validateDataplaneOptions } from '../dataplane/dataplane.js';
import { SlotAllocator, buildFdb, MAX_VNI } from '../dataplane/fdb.js';
import { BACKENDS, BACKEND_NAMES, MAX_MTU, backendList, type Backend } from '../dataplane/backends.js';
import { resolveMtu, waitUnderlayMtu } from '../control/host/mtu.js';
import { PodMtu, decideMtu, type MtuInput } from '../control/path-mtu.js';
import { writeSubnetEnv } from '../control/subnet-env.js';
import { DirectRoutes, type RoutingMode } from '../control/host/direct-routes.js';
import { realHost } from '../control/host/host.js';
import { loadAddon } from '../dataplane/addon.js';
import { type Cidr, canonicalIP, canonicalMac, cidrContains, localUnicastMac, parseCidr, parseIP, vtepMacProblem } from '../dataplane/net.js';
import { underlayConflict } from '../control/underlay.js';
import { IpMasq } from '../control/host/ip-masq.js';
import { systemNftables } from '../control/host/nftables.js';
import type { DataplaneOptions, EngineKind, Peer } from '../dataplane/types.js';
import { cniFlags, cniFlagSpecs, logLevelFlag, offloadsFlag, offloadsFlagSpec, statusAddrFlag, threadsFlag, threadsFlagSpec, tunNameFlag, type CniFlags } from './agent-flags.js';
import { type FlagSpec, flagBool, flagInt, flagList, flagOneOf, flagString, formatUsage, parseFlags, wantsHelp } from './flags.js';

/** Flags of static mode. */
export const staticAgentFlags: readonly FlagSpec[] = [
  { name: 'node', kind: 'string', required: true, help: 'this node\'s name' },
  { name: 'public-ip', kind: 'string', required: true, help: 'own underlay IP; the UDP socket binds to it' },
  { name: 'public-ipv6', kind: 'string', help: 'own IPv6 underlay IP of a dual-stack node (--public-ip is then IPv4): a second UDP socket on the same port, peers\' IPv6 subnets travel over IPv6' },
  { name: 'subnet', kind: 'list', required: true, help: 'own pod subnet CIDR (repeat for dual stack)' },
  { name: 'network', kind: 'list', required: true, help: 'cluster network CIDR routed through the TUN (repeatable)' },
  { name: 'backend', kind: 'string', default: 'vxlan', help: `${backendList()} (host-gw: kernel routes only, every peer on the underlay segment)` },
  { name: 'direct-routing', kind: 'bool', help: 'route on-link peers by the kernel (no encapsulation); encapsulate only peers behind a router' },
  { name: 'vni', kind: 'int', default: 1, help: 'VXLAN network identifier' },
  { name: 'port', kind: 'int', help: `underlay UDP port (default ${BACKEND_NAMES.filter((b) => BACKENDS[b].defaultPort !== undefined).map((b) => `${BACKENDS[b].defaultPort} for ${b}`).join(', ')})` },
  { name: 'vtep-mac', kind: 'string', help: 'own VTEP MAC (default: derived from --node)' },
  { name: 'tun', kind: 'string', default: 'userlay0', help: 'TUN device name' },
  { name: 'mtu', kind: 'string', default: 'auto', help: 'TUN MTU: auto (the smallest path: underlay MTUs, ours and the peers\' "mtu", minus overhead) or a number' },
  { name: 'subnet-file', kind: 'string', help: 'subnet.env to write (FLANNEL_MTU and the subnets), rewritten when the pod MTU changes' },
  { name: 'engine', kind: 'string', default: 'native', help: 'forwarding engine: native or js' },
  offloadsFlagSpec,
  threadsFlagSpec,
  { name: 'peers', kind: 'string', required: true, help: 'JSON peers file, re-read on change and SIGHUP' },
  { name: 'log-level', kind: 'string', default: 'info', help: 'debug, info, warn or error' },
  { name: 'status-addr', kind: 'string', help: 'HOST:PORT for /healthz /readyz /metrics /debug' },
  { name: 'ip-masq', kind: 'bool', help: 'masquerade pod traffic to destinations outside the cluster network (nftables table inet userlay)' },
  ...cniFlagSpecs,
];

/** Synopsis for --help. */
export const staticAgentSynopsis =
  'usage: userlay agent --node NAME --public-ip IP [--public-ipv6 IP] --subnet CIDR --network CIDR --peers FILE\n' +
  '                     [--backend vxlan|udp|host-gw] [--direct-routing] [--vni N] [--port N] [--vtep-mac MAC] [--tun NAME]\n' +
  '                     [--mtu auto|N] [--engine native|js] [--offloads auto|off] [--threads N]\n' +
  '                     [--log-level L] [--status-addr HOST:PORT] [--cni-socket PATH] [--cni-state-dir DIR]\n' +
  '                     [--ip-masq] [--subnet-file FILE]';

/** A stable unicast, locally administered MAC derived from the node name. */
export function macFromNodeName(node: string): string {
  return localUnicastMac(new Uint8Array(createHash('sha256').update(`userlay-vtep:${node}`).digest().subarray(0, 6)));
}

/** Validated static-mode configuration. */
export interface StaticConfig {
  readonly node: string;
  readonly logLevel: LogLevel;
  readonly statusAddr: string | undefined;
  readonly peersFile: string;
  readonly mtuSpec: string;
  readonly subnetFile: string | undefined;
  readonly cni: CniFlags;
  readonly ipMasq: boolean;
  /** How peers are reached: from --backend and --direct-routing. */
  readonly routing: RoutingMode;
  readonly dataplane: Omit<DataplaneOptions, 'mtu'>;
}

function cidrFlag(flag: string, text: string): Cidr {
  const c = parseAs(flag, () => parseCidr(text));
  if (c.hostBits) throw usageError(flag, `"${text}" has host bits set (did you mean ${c.text}?)`);
  return c;
}

/** Steps 1 and 2: parse and check every flag. Throws EUSAGE naming the flag. */
export function parseStaticConfig(argv: readonly string[]): StaticConfig {
  const f = parseFlags(staticAgentFlags, argv);
  const node = flagString(f, 'node')!;
  if (!/^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/.test(node)) throw usageError('--node', `"${node}" is not a valid node name`);
  const logLevel = logLevelFlag(f);
  const publicIP = parseAs('--public-ip', () => canonicalIP(flagString(f, 'public-ip')!));
  const v6Text = flagString(f, 'public-ipv6');
  const publicIPv6 = v6Text === undefined ? undefined : parseAs('--public-ipv6', () => canonicalIP(v6Text));
  if (publicIPv6 !== undefined) {
    if (parseIP(publicIPv6).family !== 6) throw usageError('--public-ipv6', `${publicIPv6} is not an IPv6 address`);
    if (parseIP(publicIP).family !== 4) throw usageError('--public-ip', `${publicIP} must be IPv4 with --public-ipv6 (one underlay address per family)`);
  }
  const backend = flagOneOf<Backend>(f, 'backend', BACKEND_NAMES);
  const info = BACKENDS[backend];
  const directRouting = flagBool(f, 'direct-routing');
  if (directRouting && !info.encapsulates) throw usageError('--direct-routing', `${backend} routes every peer directly already; the flag is for encapsulating backends`);
  const routing: RoutingMode = !info.encapsulates ? 'routes-only' : directRouting ? 'direct-routing' : 'overlay';
  const engine = flagOneOf<EngineKind>(f, 'engine', ['native', 'js']);
  const offloads = offloadsFlag(f);
  const threads = threadsFlag(f, engine);
  const vni = flagInt(f, 'vni')!;
  if (vni < 0 || vni > MAX_VNI) throw usageError('--vni', `${vni} is outside 0..${MAX_VNI}`);
  const port = flagInt(f, 'port') ?? info.defaultPort ?? 0;
  if (port < (info.encapsulates ? 1 : 0) || port > 65535) throw usageError('--port', `${port} is outside 1..65535`);
  const macText = flagString(f, 'vtep-mac');
  const vtepMAC = macText === undefined ? macFromNodeName(node) : parseAs('--vtep-mac', () => canonicalMac(macText));
  const macProblem = vtepMacProblem(vtepMAC);
  if (macProblem !== undefined) throw usageError('--vtep-mac', `${vtepMAC} ${macProblem}: a VTEP needs a unicast address`);
  const tunName = tunNameFlag(f);
  const mtuSpec = flagString(f, 'mtu')!;
  if (mtuSpec !== 'auto' && !/^[0-9]+$/.test(mtuSpec)) throw usageError('--mtu', `"${mtuSpec}" is not "auto" or a number`);
  const statusAddr = statusAddrFlag(f);
  const cni = cniFlags(f);
  const subnets = flagList(f, 'subnet').map((s) => cidrFlag('--subnet', s));
  const networks = flagList(f, 'network').map((s) => cidrFlag('--network', s));
  for (const s of subnets) {
    if (!networks.some((n) => cidrContains(n, s))) {
      throw usageError('--subnet', `${s.text} is not inside the cluster network (${networks.map((n) => n.text).join(', ')})`);
    }
  }
  return {
    node, logLevel, statusAddr, peersFile: flagString(f, 'peers')!, mtuSpec, subnetFile: flagString(f, 'subnet-file'), cni, ipMasq: flagBool(f, 'ip-masq'), routing,
    dataplane: {
      backend, engine, offloads, threads, tunName, publicIP, ...(publicIPv6 !== undefined ? { publicIPv6 } : {}), port, vni, vtepMAC,
      ownSubnets: subnets.map((s) => s.text), networks: networks.map((n) => n.text),
    },
  };
}

/** Run static mode until SIGINT/SIGTERM. Rejects (before configuring anything) on bad input. */
export async function runStaticAgent(argv: readonly string[]): Promise<void> {
  if (wantsHelp(argv)) {
    process.stdout.write(formatUsage(staticAgentFlags, staticAgentSynopsis));
    return;
  }
  const cfg = parseStaticConfig(argv);
  const log = createLogger(cfg.logLevel).with({ node: cfg.node });
  const o = cfg.dataplane;

  // 3. the cluster ranges stay clear of the underlay
  const ranges = [
    ...o.networks.map((cidr) => ({ field: '--network', cidr })),
    ...o.ownSubnets.map((cidr) => ({ field: '--subnet', cidr })),
  ];
  for (const ip of underlayIPs(o)) {
    const conflict = underlayConflict(ranges, ip);
    if (conflict !== undefined) throw usageError(conflict.field, conflict.message);
  }

  // 4. peers file, and whether the set is consistent with our own settings (and fits)
  const source = new StaticPeersSource(cfg.peersFile, { backend: o.backend }, log);
  const peers = source.load();
  const defaults = fdbDefaults({ ...o, mtu: MAX_MTU }, validateDataplaneOptions({ ...o, mtu: MAX_MTU }));
  try {
    buildFdb(peers, defaults, new SlotAllocator(o.maxPeers ?? MAX_PEERS));
  } catch (err) {
    throw usageError('--peers', `${cfg.peersFile}: ${(err as Error).message}`, err);
  }

  // 5. MTU, 6. data plane
  const addon = loadAddon();
  const host = realHost(addon);
  // dual stack: the pod MTU must fit the underlay of either family (IPv6 costs 20 bytes more)
  const ips = underlayIPs(o);
  const mtus = await Promise.all(ips.map((ip) => resolveMtu(cfg.mtuSpec, o.backend, ip, host)));
  const smallest = mtus.reduce((best, m, i) => (m.mtu < mtus[best]!.mtu ? i : best), 0);
  const mtu = mtus[smallest]!;
  if (mtu.warning !== undefined) log.warn(mtu.warning, { mtu: mtu.mtu });
  // the smallest path over the peers (a peer smaller than us: PodMtu warns about a fixed MTU)
  const mtuInput: MtuInput = {
    backend: o.backend, nodeName: cfg.node, family: parseIP(ips[smallest]!).family,
    underlay: mtu.underlay ?? { iface: 'unknown', mtu: undefined }, ...(cfg.mtuSpec === 'auto' ? {} : { fixed: mtu.mtu }),
  };
  const firstMtu = decideMtu(mtuInput, peers);
  let routes: DirectRoutes | undefined;
  if (cfg.routing !== 'overlay') {
    const link = mtu.underlay ?? await waitUnderlayMtu(o.publicIP, host);
    routes = new DirectRoutes(host.routes, host, link.iface, cfg.routing, log);
    routes.start();
  }
  const dp = await openDataplane({ ...o, mtu: firstMtu.mtu, ...(mtu.underlay ? { underlayMtu: mtu.underlay.mtu } : {}) }, log, addon, host)
    .catch((err: unknown) => { throw blameFlag(err); });
  log.info('pod MTU decided', { mtu: firstMtu.mtu, mode: firstMtu.mode, limitedBy: firstMtu.limitedBy, reason: firstMtu.reason });
  const network = { subnets: o.ownSubnets, networks: o.networks, mtu: firstMtu.mtu };
  const writeEnv = async (podMtu: number): Promise<void> => {
    if (cfg.subnetFile === undefined) return;
    const byFamily = Object.fromEntries(o.networks.map((n) => [parseCidr(n).family, n]));
    await writeSubnetEnv(cfg.subnetFile, { networks: byFamily, ownSubnets: o.ownSubnets, mtu: podMtu, ipMasq: cfg.ipMasq });
  };
  const podMtu = new PodMtu(mtuInput, firstMtu, log, async (d) => {
    dp.setMtu(d.mtu);
    network.mtu = d.mtu;
    await writeEnv(d.mtu);
  });
  let status: { close(): Promise<void> } | undefined;
  let cni: { close(): Promise<void> } | undefined;
  const ipMasq = new IpMasq(host.nftables, log);
  // the data plane gets what the routes leave to it (host-gw: nothing; see direct-routes.ts)
  const apply = (next: readonly Peer[]): void => {
    if (!routes) dp.setPeers(next);
    else {
      // a set the data plane would refuse must not move routes: check it before routing it
      buildFdb(next, defaults, new SlotAllocator(o.maxPeers ?? MAX_PEERS));
      dp.setPeers(routes.apply(next));
    }
    void podMtu.update(next);
  };
  let rerouter: NodeJS.Timeout | undefined;
  try {
    apply(peers);
    source.start(apply);
    if (routes) {
      const r = routes;
      rerouter = setInterval(() => {
        try {
          dp.setPeers(r.refresh());
        } catch (err) {
          log.warn('re-deciding direct routes failed', { err });
        }
      }, 5000);
      rerouter.unref();
    }
    if (cfg.cni.socket !== undefined) {
      const { startCniServer } = await import('../cni/server.js');
      cni = await startCniServer({ socket: cfg.cni.socket, stateDir: cfg.cni.stateDir, network: () => network, log })
        .catch((err: unknown) => { throw err instanceof UserlayError ? withFlag('--cni-socket', err) : err; });
    }
    await writeEnv(network.mtu).catch((err: unknown) => { throw err instanceof UserlayError ? withFlag('--subnet-file', err) : err; });
    await ipMasq.apply({ enabled: cfg.ipMasq, podSubnets: o.ownSubnets, networks: o.networks })
      .catch((err: unknown) => { throw err instanceof UserlayError ? withFlag('--ip-masq', err) : err; });
    if (cfg.statusAddr) {
      const sources = { dataplane: () => dp, ready: () => ({ ready: true, reasons: [] }), routing: () => routes?.status(), mtu: () => podMtu.current() };
      // loaded only when asked for: node:http costs the agent ~5 MB RSS
      const { startStatusServer } = await import('./status-server.js');
      status = await startStatusServer(cfg.statusAddr, sources, log).catch((err: unknown) => {
        throw err instanceof UserlayError && !err.message.startsWith('--status-addr') ? withFlag('--status-addr', err) : err;
      });
    }
  } catch (err) {
    source.stop();
    clearInterval(rerouter);
    await cni?.close();
    await status?.close();
    await ipMasq.remove();
    routes?.close();
    await dp.close();
    throw err;
  }

  // native threads and the non-persistent watcher do not hold the event loop open
  const keepAlive = setInterval(() => {}, 1 << 30);
  process.on('SIGHUP', () => {
    log.debug('SIGHUP: reloading peers file', { file: cfg.peersFile });
    source.requestReload();
  });
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info('stopping', { signal });
    source.stop();
    clearInterval(keepAlive);
    clearInterval(rerouter);
    void (async () => {
      try {
        await status?.close();
        await cni?.close();
        await ipMasq.remove();
        routes?.close();
        await dp.close();
        process.exit(0);
      } catch (err) {
        log.error('teardown failed', { err });
        process.exit(1);
      }
    })();
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));

  log.info('agent ready', {
    tun: dp.tunName, mtu: dp.mtu(), podMTU: network.mtu, backend: o.backend, engine: o.engine,
    publicIP: o.publicIP, ...(o.publicIPv6 !== undefined ? { publicIPv6: o.publicIPv6 } : {}), port: o.port, vtepMAC: o.vtepMAC, peers: peers.length, ipMasq: cfg.ipMasq, routing: cfg.routing,
    ...(routes ? { directPeers: routes.status().direct.length, overlayPeers: routes.status().overlay.length, notRouted: routes.status().notRouted.map((u) => u.name) } : {}),
    ...(mtu.underlay ? { underlayIface: mtu.underlay.iface, underlayMTU: mtu.underlay.mtu } : {}),
  });
  log.info(`pods must use MTU ${network.mtu}`, { podMTU: network.mtu, limitedBy: podMtu.current().limitedBy });
}

/** The node's underlay addresses: --public-ip, and --public-ipv6 on a dual-stack node. */
function underlayIPs(o: Pick<DataplaneOptions, 'publicIP' | 'publicIPv6'>): string[] {
  return o.publicIPv6 === undefined ? [o.publicIP] : [o.publicIP, o.publicIPv6];
}

/** The flag behind each data plane option. */
const optionFlags: Record<string, string> = {
  tunName: '--tun', networks: '--network', ownSubnets: '--subnet', publicIP: '--public-ip', publicIPv6: '--public-ipv6', vtepMAC: '--vtep-mac', mtu: '--mtu',
};

/** Name the flag a setup error comes from, keeping its code ("--port: bind UDP ...: EADDRINUSE ..."). */
function blameFlag(err: unknown): unknown {
  if (!(err instanceof UserlayError)) return err;
  const byOption = err.field === undefined ? undefined : optionFlags[err.field];
  if (byOption !== undefined) {
    const message = err.message.startsWith(`${err.field}: `) ? err.message.slice(err.field!.length + 2) : err.message;
    return new UserlayError(err.code, `${byOption}: ${message}`, { cause: err, field: byOption });
  }
  const flag = { EADDRINUSE: '--port', EADDRNOTAVAIL: '--public-ip', EPERM: '--tun', EACCES: '--tun', EBUSY: '--tun' }[err.code];
  return flag ? withFlag(flag, err) : err;
}

/** `err` with the flag it comes from in front of its message, keeping its code. */
function withFlag(flag: string, err: UserlayError): UserlayError {
  return new UserlayError(err.code, `${flag}: ${err.message}`, { cause: err, field: flag });
}
