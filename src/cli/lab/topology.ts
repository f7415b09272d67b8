/**
 * An N-node overlay lab built from network namespaces.
 *
 *   underlay ns  "<prefix>u":  bridge br0 (198.18.0.254/24 is free for probes)
 *        |  veth u-n<i> <-> eth0                     one per node
 *   node ns      "<prefix>n<i>": eth0 198.18.0.<i>/24, pod0 198.19.<i>.1/24,
 *        |  veth pod0 <-> eth0                       ip_forward=1, rp_filter=0
 *   pod ns       "<prefix>p<i>": eth0 198.19.<i>.2/24, default via 198.19.<i>.1
 *   outside ns   "<prefix>o" (with `outside: true`): eth0 198.18.0.250/24 on the underlay
 *                bridge, a host outside the cluster network that pods reach through their
 *                node (it has no route to the pod subnets: unmasqueraded answers go nowhere)
 *
 * The underlay bridges stand for a switch, so frames crossing them skip netfilter: where
 * br_netfilter is loaded (built into some kernels, loaded by container runtimes), every new
 * namespace starts with bridge-nf-call-{iptables,ip6tables,arptables} = 1, and each bridged
 * frame of every path would pay for the iptables hooks (2.3% of all CPU in a 2-node lab's
 * single stream) on one machine and not on another. The node namespaces keep the default:
 * their pod bridge (ulbr0, below) is a node's, and Kubernetes nodes run with it on.
 *
 * With `underlay: 'routed'` the underlay is two segments joined by a router, so one lab has
 * peers on the same segment and peers behind a router:
 *   segment A: bridge br0, 198.18.0.0/24 — nodes 1..ceil(N/2), 198.18.0.<i>
 *   segment B: bridge br1, 198.18.1.0/24 — the other nodes, 198.18.1.<i>
 *   router ns "<prefix>r": eth-a 198.18.0.254/24 on br0, eth-b 198.18.1.254/24 on br1,
 *                ip_forward=1; every node routes 198.18.0.0/15 via its segment's .254
 *
 * With `underlayMtus` each node's underlay veth (both ends) gets its own MTU, e.g. [9000, 1500]
 * for a jumbo-frame node next to a standard one (flannel #463, #841), the bridge the largest;
 * the nodes' peers files then carry each peer's `mtu` (overlay.ts).
 *
 * With `pods: 'cni'` the pod namespaces are left empty: the overlay attaches each pod through
 * the userlay CNI plugin as a runtime would (overlay.ts, cni-runtime.ts): a bridge ulbr0 with
 * 198.19.<i>.1/24 in the node namespace, a veth into the pod, 198.19.<i>.2 from host-local.
 *
 * IPv6 (`family: '6'` or `'dual'`, addresses in 2001:2::/48, RFC 5180): underlay 2001:2::<i hex>/64,
 * pod subnet 2001:2:0:1<i hex>::/64 (pod ::2, gateway ::1) inside the cluster network
 * 2001:2:0:100::/56, which never contains the underlay. A 'dual' node has both underlay
 * addresses and a pod subnet of each family; the agents use the `underlayFamily`'s address.
 * One addressing table (FAMILY_PLAN) gives every family's addresses; the single-valued fields
 * of LabNode are those of the node's first (primary) family.
 *
 * The overlay between the nodes (userlay agents, a kernel vxlan device set up
 * like flannel's vxlan backend, or host-gw routes) is applied on top with
 * applyOverlay() (overlay.ts) and can be swapped on the same topology, which
 * is what the bench does. Every namespace name starts with the per-run prefix
 * `<root><pid>-`, so cleanupStale() (stale.ts) can find leftovers of a crashed
 * run. Built with ip(8) through execFile: fine for a harness, the agent
 * itself uses netlink.
 */
import { constants } from 'node:fs';
import { access, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { usageError } from '../../errors.js';
import type { Family } from '../../dataplane/net.js';
import { ip, nsRun } from './exec.js';

/** Underlay MTU of the lab's veths and bridge. */
export const UNDERLAY_MTU = 1500;

/** Which families a lab's pods (and underlay) have: IPv4 (the default), IPv6, or both. */
export type LabFamily = '4' | '6' | 'dual';
/** The values of LabFamily, for flag checks. */
export const LAB_FAMILIES = ['4', '6', 'dual'] as const;

/** The families of a LabFamily, primary first. */
export function labFamilies(f: LabFamily): readonly Family[] {
  return f === '4' ? [4] : f === '6' ? [6] : [4, 6];
}

/** One family's pod-side addressing of a node. */
export interface LabInner {
  /** Pod subnet 198.19.<i>.0/24 or 2001:2:0:1<i hex>::/64. */
  readonly subnet: string;
  /** Network address of the subnet (the TUN / flannel.1 / flannel-v6.1 address). */
  readonly subnetAddr: string;
  /** Pod address (.2 / ::2). */
  readonly podIP: string;
  /** Node side of the pod veth (.1 / ::1), the pod's gateway. */
  readonly gatewayIP: string;
  /** Prefix length of the subnet (24 / 64). */
  readonly prefixLen: number;
}

/** How one family is addressed in the lab (one table, so no code path is written twice). */
interface FamilyPlan {
  readonly underlay: (i: number) => string;
  readonly underlayLen: number;
  /** Host `k` (0 = the network address) of node i's pod subnet. */
  readonly podHost: (i: number, k: number) => string;
  readonly podLen: number;
  readonly network: string;
  /** Address of the outside namespace. */
  readonly outside: string;
}

const FAMILY_PLAN: Record<Family, FamilyPlan> = {
  4: {
    underlay: (i) => `198.18.0.${i}`, underlayLen: 24,
    podHost: (i, k) => `198.19.${i}.${k}`, podLen: 24,
    network: '198.19.0.0/16', outside: '198.18.0.250',
  },
  6: {
    underlay: (i) => `2001:2::${i.toString(16)}`, underlayLen: 64,
    podHost: (i, k) => `2001:2:0:${(0x100 + i).toString(16)}::${k === 0 ? '' : k.toString(16)}`, podLen: 64,
    network: '2001:2:0:100::/56', outside: '2001:2::fa',
  },
};

/** The cluster network of each family. */
export const CLUSTER_NETWORKS: Readonly<Record<Family, string>> = { 4: FAMILY_PLAN[4].network, 6: FAMILY_PLAN[6].network };

/** Prefix length of the underlay subnet of `family`. */
export function underlayPrefixLen(family: Family): number {
  return FAMILY_PLAN[family].underlayLen;
}

/** `ip` arguments for an address of a lab: IPv6 ones without duplicate address detection. */
export function addrArgs(addr: string, len: number, dev: string): string[] {
  return ['addr', 'add', `${addr}/${len}`, 'dev', dev, ...(addr.includes(':') ? ['nodad'] : [])];
}

/** One lab node and the addresses around it (index i is 1-based). */
export interface LabNode {
  readonly index: number;
  /** Node name as agents and peers files know it: "n<i>". */
  readonly name: string;
  /** Node network namespace. */
  readonly ns: string;
  /** Pod network namespace attached to this node. */
  readonly podNs: string;
  /** Underlay address 198.18.0.<i>. */
  readonly underlayIP: string;
  /** Underlay interface inside the node namespace. */
  readonly underlayDev: string;
  /** Interface name of this node's port on the underlay bridge (in the underlay ns). */
  readonly bridgePort: string;
  /** Pod subnet 198.19.<i>.0/24. */
  readonly subnet: string;
  /** Network address of the pod subnet, 198.19.<i>.0 (the TUN / flannel.1 address). */
  readonly subnetAddr: string;
  /** Pod address 198.19.<i>.2. */
  readonly podIP: string;
  /** Node side of the pod veth, 198.19.<i>.1 (the pod's gateway). */
  readonly gatewayIP: string;
  /** Deterministic VTEP MAC used by both userlay and kernel vxlan (of the underlay family) on this node. */
  readonly vtepMAC: string;
  /** Pod families, primary first (the single-valued fields above are the primary's). */
  readonly families: readonly Family[];
  /** Pod-side addressing by family. */
  readonly inner: Readonly<Partial<Record<Family, LabInner>>>;
  /** Underlay addresses by family (a 'dual' node has both). */
  readonly underlayIPs: Readonly<Partial<Record<Family, string>>>;
  /** The family of `underlayIP`: the one the agents' socket uses. */
  readonly underlayFamily: Family;
  /**
   * VTEP MAC of a kernel vxlan device per underlay family, as flannel's dual stack makes one
   * device per family with its own MAC: the underlay family's is `vtepMAC`.
   */
  readonly vtepMACs: Readonly<Partial<Record<Family, string>>>;
  /** Underlay MTU of this node, when the topology sets them per node (`underlayMtus`); else UNDERLAY_MTU. */
  readonly underlayMtu?: number;
  /** Routed underlay: the node's segment ('a' or 'b') and its router address there. */
  readonly segment?: UnderlaySegment;
  readonly underlayGateway?: string;
}

/** A segment of a routed underlay. */
export type UnderlaySegment = 'a' | 'b';

/** How the nodes' underlay is built: one bridge, or two segments joined by a router. */
export type UnderlayKind = 'flat' | 'routed';

/** Per segment of a routed underlay: bridge, third octet of its 198.18.X.0/24, router port. */
const SEGMENTS: Record<UnderlaySegment, { bridge: string; octet: number; routerDev: string; bridgePort: string }> = {
  a: { bridge: 'br0', octet: 0, routerDev: 'eth-a', bridgePort: 'u-ra' },
  b: { bridge: 'br1', octet: 1, routerDev: 'eth-b', bridgePort: 'u-rb' },
};
/** The router's address on each segment of a routed underlay: 198.18.<octet>.254. */
export const ROUTER_HOST = 254;

/** The cluster network all pod subnets live in. */
export const CLUSTER_NETWORK = '198.19.0.0/16';

/** Options for createTopology(). */
export interface TopologyOptions {
  /** Namespace name prefix, `<root><pid>-` (see labPrefix()). */
  readonly prefix: string;
  /** Number of nodes, 1..200. */
  readonly nodes: number;
  /** Keep IPv6 enabled in the namespaces (default: disabled, so no RS/MLD noise reaches the counters). */
  readonly ipv6?: boolean;
  /** How pods are wired: 'veth' here (default), or 'cni' later by the overlay through the plugin. */
  readonly pods?: PodWiring;
  /** Also build the "outside" namespace (default false). */
  readonly outside?: boolean;
  /** Pod (and underlay) families, default '4'. IPv6 turns `ipv6` on. */
  readonly family?: LabFamily;
  /** Underlay family of the agents (default 6 for family '6', else 4); must be one of the lab's. */
  readonly underlayFamily?: Family;
  /** 'flat' (default): one bridge; 'routed': two segments and a router (see the file comment). */
  readonly underlay?: UnderlayKind;
  /** Underlay MTU per node, in node order (missing entries: UNDERLAY_MTU). */
  readonly underlayMtus?: readonly number[];
}

/** A host on the underlay outside the cluster network. */
export interface LabOutside {
  readonly ns: string;
  /** 198.18.0.250 (2001:2::fa in an IPv6-only lab). */
  readonly ip: string;
}

/** How a topology's pods get their network: a veth made here, or the CNI plugin. */
export type PodWiring = 'veth' | 'cni';

/** A built topology. close() removes everything it made. */
export interface Topology {
  readonly prefix: string;
  readonly underlayNs: string;
  readonly nodes: readonly LabNode[];
  /** How the pods are wired. */
  readonly pods: PodWiring;
  /** The outside namespace, when asked for. */
  readonly outside: LabOutside | undefined;
  /** How the underlay is built, and the router namespace of a routed one. */
  readonly underlay?: UnderlayKind;
  readonly routerNs?: string;
  /** Scratch directory for peers files and logs (removed by close()). */
  readonly workDir: string;
  /** Set the MTU of every pod veth made by the topology (both ends; CNI pods get theirs from the plugin). */
  setPodMtu(mtu: number): Promise<void>;
  /** Kill whatever still runs in the namespaces, delete them and the work dir. Idempotent. */
  close(): Promise<void>;
}

/** `<root><pid>-`: the per-run namespace prefix cleanupStale() understands. */
export function labPrefix(root: string, pid: number = process.pid): string {
  return `${root}${pid}-`;
}

/** Addressing of node i (1-based) under `prefix`, with pods of `family` and agents on the `underlay` family. */
export function labNode(prefix: string, i: number, family: LabFamily = '4', underlay?: Family): LabNode {
  const hex = i.toString(16).padStart(2, '0');
  const families = labFamilies(family);
  const underlayFamily = underlay ?? families[0]!;
  if (!families.includes(underlayFamily)) throw usageError('--underlay-family', `IPv${underlayFamily} is not a family of a '${family}' lab`);
  const inner: Partial<Record<Family, LabInner>> = {};
  const underlayIPs: Partial<Record<Family, string>> = {};
  const vtepMACs: Partial<Record<Family, string>> = {};
  for (const f of families) {
    const plan = FAMILY_PLAN[f];
    inner[f] = {
      subnet: `${plan.podHost(i, 0)}/${plan.podLen}`, subnetAddr: plan.podHost(i, 0),
      podIP: plan.podHost(i, 2), gatewayIP: plan.podHost(i, 1), prefixLen: plan.podLen,
    };
    underlayIPs[f] = plan.underlay(i);
    vtepMACs[f] = `02:75:6c:00:${f === underlayFamily ? '00' : '01'}:${hex}`;
  }
  const primary = inner[families[0]!]!;
  return {
    index: i,
    name: `n${i}`,
    ns: `${prefix}n${i}`,
    podNs: `${prefix}p${i}`,
    underlayIP: underlayIPs[underlayFamily]!,
    underlayDev: 'eth0',
    bridgePort: `u-n${i}`,
    subnet: primary.subnet,
    subnetAddr: primary.subnetAddr,
    podIP: primary.podIP,
    gatewayIP: primary.gatewayIP,
    vtepMAC: vtepMACs[underlayFamily]!,
    families, inner, underlayIPs, underlayFamily, vtepMACs,
  };
}

/** The cluster networks of `node`'s pod families. */
export function clusterNetworks(node: LabNode): string[] {
  return node.families.map((f) => CLUSTER_NETWORKS[f]);
}

/**
 * Node i of `count` on a routed underlay: segment a for i <= ceil(count / 2), else b, with its
 * underlay address on that segment and the segment's router as gateway.
 */
export function routedLabNode(prefix: string, i: number, count: number): LabNode {
  const segment: UnderlaySegment = i <= Math.ceil(count / 2) ? 'a' : 'b';
  const octet = SEGMENTS[segment].octet;
  const underlayIP = `198.18.${octet}.${i}`;
  return { ...labNode(prefix, i), underlayIP, underlayIPs: { 4: underlayIP }, segment, underlayGateway: `198.18.${octet}.${ROUTER_HOST}` };
}

/** The router of a routed underlay: one leg on each segment's bridge, forwarding between them. */
async function buildRouter(underlayNs: string, routerNs: string, made: string[], ipv6: boolean): Promise<void> {
  await addNamespace(routerNs, made, ipv6);
  await sysctl(routerNs, { 'net.ipv4.ip_forward': '1' });
  for (const seg of Object.values(SEGMENTS)) {
    await ip(underlayNs, ['link', 'add', seg.bridgePort, 'type', 'veth', 'peer', 'name', seg.routerDev, 'netns', routerNs]);
    await ip(underlayNs, ['link', 'set', seg.bridgePort, 'master', seg.bridge, 'mtu', String(UNDERLAY_MTU), 'up']);
    await ip(routerNs, ['link', 'set', seg.routerDev, 'mtu', String(UNDERLAY_MTU), 'up']);
    await ip(routerNs, ['addr', 'add', `198.18.${seg.octet}.${ROUTER_HOST}/24`, 'dev', seg.routerDev]);
  }
}

async function sysctl(ns: string, settings: Record<string, string>): Promise<void> {
  const args = Object.entries(settings).map(([k, v]) => `${k}=${v}`);
  await nsRun(ns, 'sysctl', ['-q', '-w', ...args]);
}

/**
 * Settings for every namespace: loose reverse-path checks; IPv6 off unless asked for, and when
 * on, no duplicate address detection (addresses the CNI bridge adds are usable at once).
 */
function baseSysctls(ipv6: boolean): Record<string, string> {
  const v6 = ipv6 ? '0' : '1';
  return {
    'net.ipv6.conf.all.disable_ipv6': v6,
    'net.ipv6.conf.default.disable_ipv6': v6,
    ...(ipv6 ? { 'net.ipv6.conf.all.accept_dad': '0', 'net.ipv6.conf.default.accept_dad': '0' } : {}),
    'net.ipv4.conf.all.rp_filter': '0',
    'net.ipv4.conf.default.rp_filter': '0',
  };
}

async function addNamespace(ns: string, made: string[], ipv6: boolean): Promise<void> {
  await ip(undefined, ['netns', 'add', ns]);
  made.push(ns);
  await ip(ns, ['link', 'set', 'lo', 'up']);
  await sysctl(ns, baseSysctls(ipv6));
}

const BRIDGE_NF = ['iptables', 'ip6tables', 'arptables'].map((t) => `net.bridge.bridge-nf-call-${t}`);

/** The underlay bridges pass frames like a switch: no netfilter (see the header). */
async function switchLikeBridges(ns: string): Promise<void> {
  try {
    await access('/proc/sys/net/bridge/bridge-nf-call-iptables', constants.F_OK);
  } catch {
    return;
  }
  await sysctl(ns, Object.fromEntries(BRIDGE_NF.map((k) => [k, '0'])));
}

async function buildNode(underlayNs: string, node: LabNode, made: string[], ipv6: boolean, pods: PodWiring): Promise<void> {
  await addNamespace(node.ns, made, ipv6);
  await addNamespace(node.podNs, made, ipv6);
  await sysctl(node.ns, { 'net.ipv4.ip_forward': '1', ...(ipv6 ? { 'net.ipv6.conf.all.forwarding': '1' } : {}) });
  // Underlay: node eth0 <-> bridge port in the underlay namespace.
  await ip(underlayNs, ['link', 'add', node.bridgePort, 'type', 'veth', 'peer', 'name', node.underlayDev, 'netns', node.ns]);
  const mtu = String(node.underlayMtu ?? UNDERLAY_MTU);
  await ip(underlayNs, ['link', 'set', node.bridgePort, 'master', SEGMENTS[node.segment ?? 'a'].bridge, 'mtu', mtu, 'up']);
  await ip(node.ns, ['link', 'set', node.underlayDev, 'mtu', mtu, 'up']);
  for (const f of node.families) await ip(node.ns, addrArgs(node.underlayIPs[f]!, FAMILY_PLAN[f].underlayLen, node.underlayDev));
  if (node.underlayGateway !== undefined) await ip(node.ns, ['route', 'add', '198.18.0.0/15', 'via', node.underlayGateway, 'dev', node.underlayDev]);
  if (pods === 'veth') await wirePodVeth(node);
}

/** The outside host: eth0 on the underlay bridge (port "u-out"), nothing else. */
async function buildOutside(underlayNs: string, outside: LabOutside, made: string[], ipv6: boolean): Promise<void> {
  await addNamespace(outside.ns, made, ipv6);
  await ip(underlayNs, ['link', 'add', 'u-out', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', outside.ns]);
  await ip(underlayNs, ['link', 'set', 'u-out', 'master', 'br0', 'mtu', String(UNDERLAY_MTU), 'up']);
  await ip(outside.ns, ['link', 'set', 'eth0', 'mtu', String(UNDERLAY_MTU), 'up']);
  await ip(outside.ns, addrArgs(outside.ip, outside.ip.includes(':') ? FAMILY_PLAN[6].underlayLen : FAMILY_PLAN[4].underlayLen, 'eth0'));
}

/** Pod by hand: node pod0 198.19.<i>.1/24 <-> pod eth0 198.19.<i>.2/24 (and ::1/::2 per family), default route via pod0. */
export async function wirePodVeth(node: LabNode): Promise<void> {
  await ip(node.ns, ['link', 'add', 'pod0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', node.podNs]);
  for (const f of node.families) await ip(node.ns, addrArgs(node.inner[f]!.gatewayIP, node.inner[f]!.prefixLen, 'pod0'));
  await ip(node.ns, ['link', 'set', 'pod0', 'up']);
  for (const f of node.families) await ip(node.podNs, addrArgs(node.inner[f]!.podIP, node.inner[f]!.prefixLen, 'eth0'));
  await ip(node.podNs, ['link', 'set', 'eth0', 'up']);
  for (const f of node.families) await ip(node.podNs, [`-${f}`, 'route', 'add', 'default', 'via', node.inner[f]!.gatewayIP]);
}

/** Delete namespaces after killing every process still inside them. Errors are ignored. */
export async function deleteNamespaces(names: readonly string[]): Promise<void> {
  for (const ns of names) {
    const pids = await ip(undefined, ['netns', 'pids', ns], { allowFail: true });
    for (const pid of pids.stdout.split(/\s+/).filter(Boolean).map(Number)) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
    }
    await ip(undefined, ['netns', 'del', ns], { allowFail: true });
  }
}

/**
 * Build the namespaces, bridge and veths for `options.nodes` nodes. On any
 * failure everything made so far is removed before the error is thrown.
 */
export async function createTopology(options: TopologyOptions): Promise<Topology> {
  const { prefix, nodes: count } = options;
  const family = options.family ?? '4';
  const ipv6 = (options.ipv6 ?? false) || family !== '4';
  const pods = options.pods ?? 'veth';
  if (!Number.isInteger(count) || count < 1 || count > 200) {
    throw usageError('--nodes', `${count} is not between 1 and 200`);
  }
  const made: string[] = [];
  const workDir = await mkdtemp(path.join(os.tmpdir(), `${prefix}`));
  const underlayNs = `${prefix}u`;
  const underlay = options.underlay ?? 'flat';
  if (underlay === 'routed' && family !== '4') throw usageError('--underlay', 'a routed underlay is IPv4 only (use --family 4)');
  const mtus = options.underlayMtus;
  const nodes = Array.from({ length: count }, (_, k): LabNode => ({
    ...(underlay === 'routed' ? routedLabNode(prefix, k + 1, count) : labNode(prefix, k + 1, family, options.underlayFamily)),
    ...(mtus ? { underlayMtu: mtus[k] ?? UNDERLAY_MTU } : {}),
  }));
  const bridgeMtu = String(Math.max(UNDERLAY_MTU, ...(mtus ?? [])));
  const routerNs = underlay === 'routed' ? `${prefix}r` : undefined;
  const outside: LabOutside | undefined = options.outside
    ? { ns: `${prefix}o`, ip: FAMILY_PLAN[labFamilies(family)[0]!].outside } : undefined;
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    // Pods and nodes first, the underlay last, so no veth peer outlives its namespace.
    await deleteNamespaces([...made].reverse());
    await rm(workDir, { recursive: true, force: true });
  };
  try {
    await addNamespace(underlayNs, made, ipv6);
    await switchLikeBridges(underlayNs);
    await ip(underlayNs, ['link', 'add', 'br0', 'type', 'bridge']);
    await ip(underlayNs, ['link', 'set', 'br0', 'mtu', bridgeMtu, 'up']);
    if (routerNs !== undefined) {
      await ip(underlayNs, ['link', 'add', 'br1', 'type', 'bridge']);
      await ip(underlayNs, ['link', 'set', 'br1', 'mtu', String(UNDERLAY_MTU), 'up']);
      await buildRouter(underlayNs, routerNs, made, ipv6);
    }
    for (const node of nodes) await buildNode(underlayNs, node, made, ipv6, pods);
    if (outside) await buildOutside(underlayNs, outside, made, ipv6);
  } catch (err) {
    await close();
    throw err;
  }
  return {
    prefix,
    underlayNs,
    nodes,
    pods,
    outside,
    underlay,
    ...(routerNs !== undefined ? { routerNs } : {}),
    workDir,
    async setPodMtu(mtu: number): Promise<void> {
      if (pods === 'cni') return;
      for (const node of nodes) {
        await ip(node.ns, ['link', 'set', 'pod0', 'mtu', String(mtu)]);
        await ip(node.podNs, ['link', 'set', 'eth0', 'mtu', String(mtu)]);
      }
    },
    close,
  };
}

/**
 * Check the lab can run here: root, ip(8) and the listed tools present.
 * Returns a one-line message saying what to do (`command` is what to run
 * as root), or undefined when all is well.
 */
export async function labPrerequisites(tools: readonly string[] = ['ip', 'iperf3', 'ping'], command = 'userlay lab'): Promise<string | undefined> {
  if (process.getuid?.() !== 0) {
    return `the lab creates network namespaces and needs root: run it as root (e.g. sudo ${command})`;
  }
  const missing: string[] = [];
  const dirs = [...(process.env['PATH'] ?? '').split(':'), '/usr/sbin', '/sbin'].filter(Boolean);
  for (const tool of tools) {
    const found = await Promise.all(dirs.map((d) => access(path.join(d, tool), constants.X_OK).then(() => true, () => false)));
    if (!found.includes(true)) missing.push(tool);
  }
  if (missing.length === 0) return undefined;
  const pkg: Record<string, string> = { ip: 'iproute2', bridge: 'iproute2', iperf3: 'iperf3', ping: 'iputils-ping', tshark: 'tshark', ethtool: 'ethtool' };
  const pkgs = [...new Set(missing.map((t) => pkg[t] ?? t))];
  return `missing ${missing.join(', ')}: install with "apt-get install ${pkgs.join(' ')}"`;
}
