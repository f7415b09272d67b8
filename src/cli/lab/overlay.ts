/**
 * The overlay between lab nodes, one mode per node:
 *
 * - 'userlay':      a userlay agent with a generated static peers file.
 * - 'kernel-vxlan': a Linux vxlan device exactly as flannel's vxlan backend
 *                   configures it (flannel.1, VNI 1, dstport 8472, nolearning,
 *                   address subnet.0/32, permanent neighbour + FDB entries,
 *                   `via subnet.0 onlink` routes, MTU underlay - 50).
 * - 'host-gw':      plain routes to each remote subnet via its underlay IP.
 *
 * Mixing 'userlay' (vxlan backend) and 'kernel-vxlan' nodes is the interop
 * setup; both sides use the node's deterministic VTEP MAC, so peers files and
 * kernel neighbour entries agree. After the overlay is up, the pod veths get
 * the smallest pod MTU of all nodes.
 *
 * In an IPv6 or dual-stack lab the kernel vxlan nodes are set up as flannel's dual stack does:
 * one device per pod family (flannel.1 for IPv4 over the IPv4 underlay, flannel-v6.1 for IPv6
 * over the IPv6 underlay), each with its own VTEP MAC (LabNode.vtepMACs) and MTU (underlay -
 * 50 resp. - 70). A userlay agent with one underlay family sends every pod family over it, so
 * it meets a kernel node on one device only: that mix needs a single-family lab, or agents with
 * `dualUnderlay` (a socket per underlay family, --public-ipv6): those send IPv4 pods over IPv4
 * to flannel.1 and IPv6 pods over IPv6 to flannel-v6.1. A userlay node has one VTEP MAC and
 * publishes it for both families (as its lease does in backend-data and backend-v6-data), so
 * the kernel nodes' neighbour and FDB entries for it carry that MAC on both devices.
 *
 * On a topology with `pods: 'cni'` each userlay agent also serves the CNI plugin on a socket
 * of its own, and the node's pod is attached through the shim exactly as a runtime would
 * (cni-runtime.ts: the conflist userlay + portmap, run in the node namespace) and detached
 * (DEL) before the agent stops. Baseline nodes have no plugin: their pods get the veth.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { UserlayError } from '../../errors.js';
import { BACKENDS, encapOverhead, type Backend } from '../../dataplane/backends.js';
import { startAgent, type AgentCni, type AgentProcess, type UserlayAgentConfig } from './agent-process.js';
import { installShim, labConflist, runtimeAdd, runtimeDel, type RuntimeAttachment } from './cni-runtime.js';
import type { Family } from '../../dataplane/net.js';
import { ip, run } from './exec.js';
import { UNDERLAY_MTU, wirePodVeth, type LabNode, type Topology } from './topology.js';

/** How one node takes part in the overlay. */
export type OverlayMode = 'userlay' | 'kernel-vxlan' | 'host-gw';

/** What to bring up. */
export interface OverlaySpec {
  /** Mode per node, in node order (length = number of nodes). */
  readonly modes: readonly OverlayMode[];
  /** Agent settings for the 'userlay' nodes. */
  readonly userlay?: UserlayAgentConfig;
}

/** A peers-file entry (issue 2 §4). */
export interface PeerEntry {
  readonly name: string;
  readonly subnets: readonly string[];
  readonly publicIP: string;
  readonly vtepMAC?: string;
  /** The peer's underlay MTU (labs with per-node underlay MTUs). */
  readonly mtu?: number;
  /** A dual-stack peer's IPv6 underlay (dualUnderlay labs). */
  readonly publicIPv6?: string;
  readonly vtepMACv6?: string;
  /** The peer is a userlay node taking partial inner checksums (never a kernel vxlan node). */
  readonly partialCsum?: boolean;
}

/** The VTEP MAC of a node for its underlay of `family`, as peers see it (see the file comment). */
export type VtepMacOf = (node: LabNode, family: Family) => string;

/** An overlay that is up. */
export interface Overlay {
  readonly spec: OverlaySpec;
  /** MTU the pod veths were given. */
  readonly podMtu: number;
  /** Agents by node index (userlay nodes only). */
  readonly agents: ReadonlyMap<number, AgentProcess>;
  /** Peers file of userlay node `index`. */
  peersFile(index: number): string;
  /** subnet.env userlay node `index` writes (agent --subnet-file). */
  subnetFile(index: number): string;
  /** Rewrite node `index`'s peers file to list exactly the nodes `peers` (indices). */
  writePeers(index: number, peers: readonly number[]): Promise<void>;
  /** Stop the agents and remove every device and route the overlay added. Idempotent. */
  remove(): Promise<void>;
}

/** UDP port flannel's vxlan backend uses (and userlay's default). */
export const VXLAN_PORT = BACKENDS.vxlan.defaultPort;
/** VNI flannel's vxlan backend uses (and userlay's default). */
export const VXLAN_VNI = 1;
/** flannel's device names by family. */
const KERNEL_VXLAN_DEV: Readonly<Record<Family, string>> = { 4: 'flannel.1', 6: 'flannel-v6.1' };
/** MTU of a kernel vxlan device: the underlay's minus the vxlan overhead of its family, as flannel sets it. */
function kernelVxlanMtu(family: Family): number {
  return UNDERLAY_MTU - encapOverhead('vxlan', family);
}

/**
 * Peers-file entries for `peers` as seen by a node with `backend`; with `macOf` (a
 * dualUnderlay lab) a dual-stack peer is listed with both underlays and their MACs; the peers
 * `partial` says are userlay nodes taking partial checksums get partialCsum.
 */
export function peerEntries(peers: readonly LabNode[], backend: Backend, macOf?: VtepMacOf,
  partial: (node: LabNode) => boolean = () => false): PeerEntry[] {
  const mac = BACKENDS[backend].needsVtepMAC;
  return peers.map((p) => {
    const subnets = p.families.map((f) => p.inner[f]!.subnet);
    const extra = { ...(p.underlayMtu !== undefined ? { mtu: p.underlayMtu } : {}), ...(partial(p) ? { partialCsum: true } : {}) };
    if (macOf === undefined || p.families.length < 2) {
      return { name: p.name, subnets, publicIP: p.underlayIP, ...(mac ? { vtepMAC: p.vtepMAC } : {}), ...extra };
    }
    return {
      name: p.name, subnets, publicIP: p.underlayIPs[4]!, publicIPv6: p.underlayIPs[6]!,
      ...(mac ? { vtepMAC: macOf(p, 4), vtepMACv6: macOf(p, 6) } : {}), ...extra,
    };
  });
}

/** flannel's vxlan device for `family`: inner `family` over the underlay of the same family. Returns its MTU. */
async function kernelVxlanUp(node: LabNode, others: readonly LabNode[], family: Family, macOf: VtepMacOf): Promise<number> {
  const dev = KERNEL_VXLAN_DEV[family];
  const own = node.inner[family]!;
  const mtu = kernelVxlanMtu(family);
  await ip(node.ns, ['link', 'add', dev, 'address', node.vtepMACs[family]!, 'type', 'vxlan', 'id', String(VXLAN_VNI),
    'local', node.underlayIPs[family]!, 'dev', node.underlayDev, 'dstport', String(VXLAN_PORT), 'nolearning']);
  await ip(node.ns, ['addr', 'add', `${own.subnetAddr}/${family === 4 ? 32 : 128}`, 'dev', dev, ...(family === 6 ? ['nodad'] : [])]);
  await ip(node.ns, ['link', 'set', dev, 'mtu', String(mtu), 'up']);
  for (const r of others) {
    const inner = r.inner[family]!;
    const mac = macOf(r, family);
    await ip(node.ns, ['neigh', 'replace', inner.subnetAddr, 'lladdr', mac, 'dev', dev, 'nud', 'permanent']);
    await run('ip', ['netns', 'exec', node.ns, 'bridge', 'fdb', 'append', mac, 'dev', dev, 'dst', r.underlayIPs[family]!, 'self', 'permanent']);
    await ip(node.ns, ['route', 'replace', inner.subnet, 'via', inner.subnetAddr, 'dev', dev, 'onlink']);
  }
  return mtu;
}

async function hostGwUp(node: LabNode, others: readonly LabNode[]): Promise<void> {
  for (const r of others) {
    for (const f of r.families) await ip(node.ns, ['route', 'replace', r.inner[f]!.subnet, 'via', r.underlayIPs[f]!, 'dev', node.underlayDev]);
  }
}

async function kernelDown(node: LabNode, mode: OverlayMode, others: readonly LabNode[]): Promise<void> {
  if (mode === 'kernel-vxlan') for (const f of node.families) await ip(node.ns, ['link', 'del', KERNEL_VXLAN_DEV[f]], { allowFail: true });
  if (mode === 'host-gw') {
    for (const r of others) for (const f of r.families) await ip(node.ns, ['route', 'del', r.inner[f]!.subnet], { allowFail: true });
  }
}

function checkSpec(topo: Topology, spec: OverlaySpec): void {
  if (spec.modes.length !== topo.nodes.length) {
    throw new UserlayError('EUSAGE', `overlay: ${spec.modes.length} modes for ${topo.nodes.length} nodes`);
  }
  const has = (m: OverlayMode): boolean => spec.modes.includes(m);
  if (has('userlay') && !spec.userlay) throw new UserlayError('EUSAGE', 'overlay: userlay nodes need agent settings');
  if (has('host-gw') && spec.modes.some((m) => m !== 'host-gw')) {
    throw new UserlayError('EUSAGE', 'overlay: host-gw cannot be mixed with tunnel modes');
  }
  if (has('kernel-vxlan') && has('userlay') && spec.userlay?.backend !== 'vxlan') {
    throw new UserlayError('EUSAGE', 'overlay: kernel-vxlan nodes interoperate only with the vxlan backend');
  }
  if (has('kernel-vxlan') && has('userlay') && topo.nodes.some((n) => n.families.length > 1) && !spec.userlay?.dualUnderlay) {
    throw new UserlayError('EUSAGE', 'overlay: userlay meets kernel-vxlan nodes in a dual-stack lab only with both underlay families (--underlay-family dual)');
  }
  if (spec.userlay?.dualUnderlay && topo.nodes.some((n) => n.families.length < 2)) {
    throw new UserlayError('EUSAGE', 'overlay: both underlay families need a dual-stack lab (--family dual)');
  }
}

/** Socket and state dir of node `node`'s CNI endpoint, under the topology's work dir. */
function labCni(topo: Topology, node: LabNode): AgentCni {
  const dir = path.join(topo.workDir, `cni-${node.name}`);
  return { socket: path.join(dir, 'cni.sock'), stateDir: path.join(dir, 'state') };
}

/** Attach `node`'s pod through the plugin; it must get the node's pod address. */
async function attachPod(topo: Topology, node: LabNode, cni: AgentCni,
  cniPods: Map<number, { cni: AgentCni; cniPath: string[]; pod: RuntimeAttachment }>): Promise<void> {
  const cniPath = await installShim(path.join(topo.workDir, 'cni-bin'));
  // the lab's probes know each pod by its address: ask host-local for it (CNI_ARGS IP=, as runtimes may)
  const want = node.families.map((f) => node.inner[f]!);
  // CNI_ARGS IP= names one address; a dual-stack pod gets host-local's first free address of each
  // range instead, which in a fresh lab is the same .2 / ::2 (checked below)
  const pod: RuntimeAttachment = {
    containerID: `${topo.prefix}pod-${node.name}`, netns: `/run/netns/${node.podNs}`, ifname: 'eth0',
    args: want.length === 1 ? `IgnoreUnknown=1;IP=${want[0]!.podIP}` : 'IgnoreUnknown=1',
  };
  const result = await runtimeAdd(node.ns, cniPath, labConflist(cni.socket, cni.stateDir), pod);
  cniPods.set(node.index, { cni, cniPath, pod });
  const ips = (result['ips'] as Array<{ address: string }> | undefined ?? []).map((i) => i.address);
  const missing = want.map((w) => `${w.podIP}/${w.prefixLen}`).filter((a) => !ips.includes(a));
  if (missing.length > 0) {
    throw new UserlayError('EAGENT', `pod of ${node.name} got ${ips.join(', ') || 'no address'} from the plugin, not ${missing.join(', ')}`);
  }
}

/**
 * Bring up the overlay described by `spec` on `topo`. On failure, whatever
 * was brought up is removed again before the error is thrown.
 */
export async function applyOverlay(topo: Topology, spec: OverlaySpec): Promise<Overlay> {
  checkSpec(topo, spec);
  const agents = new Map<number, AgentProcess>();
  const done: LabNode[] = [];
  const peersFile = (index: number): string => path.join(topo.workDir, `peers-n${index}.json`);
  const subnetFile = (index: number): string => path.join(topo.workDir, `subnet-n${index}.env`);
  const othersOf = (node: LabNode): LabNode[] => topo.nodes.filter((n) => n !== node);
  const modeOf = (node: LabNode): OverlayMode => spec.modes[node.index - 1]!;
  // a userlay node has one VTEP MAC for both families; a kernel node one per device
  const macOf: VtepMacOf = (n, f) => (modeOf(n) === 'userlay' ? n.vtepMAC : n.vtepMACs[f]!);
  const cniPods = new Map<number, { cni: AgentCni; cniPath: string[]; pod: RuntimeAttachment }>();
  const vethPods: LabNode[] = [];
  const writePeers = async (index: number, peers: readonly number[]): Promise<void> => {
    const list = topo.nodes.filter((n) => peers.includes(n.index));
    // a userlay node takes partial checksums (what kube mode publishes); a kernel vxlan node does not
    const partial = (n: LabNode): boolean => modeOf(n) === 'userlay' && spec.userlay?.partialCsum !== false;
    const text = JSON.stringify(peerEntries(list, spec.userlay?.backend ?? 'vxlan', spec.userlay?.dualUnderlay ? macOf : undefined, partial), null, 2) + '\n';
    await writeFile(peersFile(index), text);
  };
  let removed = false;
  const remove = async (): Promise<void> => {
    if (removed) return;
    removed = true;
    for (const [index, p] of cniPods) {
      const node = topo.nodes[index - 1]!;
      await runtimeDel(node.ns, p.cniPath, labConflist(p.cni.socket, p.cni.stateDir), p.pod).catch(() => {});
    }
    for (const node of vethPods) await ip(node.ns, ['link', 'del', 'pod0'], { allowFail: true });
    await Promise.all([...agents.values()].map((a) => a.stop()));
    for (const node of done) await kernelDown(node, modeOf(node), othersOf(node));
  };
  try {
    // no pod MTU above what the largest underlay carries (the agents say what fits, or more with --mtu N)
    let podMtu = Math.max(...topo.nodes.map((n) => n.underlayMtu ?? UNDERLAY_MTU));
    for (const node of topo.nodes) {
      const others = othersOf(node);
      const mode = modeOf(node);
      done.push(node);
      if (mode === 'userlay') {
        await writePeers(node.index, others.map((n) => n.index));
        const cni = topo.pods === 'cni' ? labCni(topo, node) : undefined;
        const agent = await startAgent(node, spec.userlay!, peersFile(node.index), cni, subnetFile(node.index));
        agents.set(node.index, agent);
        podMtu = Math.min(podMtu, agent.ready.podMTU);
        if (cni) await attachPod(topo, node, cni, cniPods);
        continue;
      }
      if (topo.pods === 'cni') {
        await wirePodVeth(node);
        vethPods.push(node);
      }
      if (mode === 'kernel-vxlan') {
        for (const f of node.families) podMtu = Math.min(podMtu, await kernelVxlanUp(node, others, f, macOf));
      } else {
        await hostGwUp(node, others);
      }
    }
    await topo.setPodMtu(podMtu);
    for (const node of vethPods) {
      await ip(node.ns, ['link', 'set', 'pod0', 'mtu', String(podMtu)]);
      await ip(node.podNs, ['link', 'set', 'eth0', 'mtu', String(podMtu)]);
    }
    return { spec, podMtu, agents, peersFile, subnetFile, writePeers, remove };
  } catch (err) {
    await remove();
    throw err;
  }
}
