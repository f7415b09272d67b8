/**
 * The desired peer set, computed from Node objects: which node becomes which Peer, and how
 * conflicts between nodes are resolved. Pure functions; PeerSync (sync.ts) runs them.
 *
 * A node becomes a peer when it has podCIDR(s) inside the cluster network, the backend-type
 * annotation equal to ours, valid backend data and a public IP of one of our underlay families
 * (backend-data and public-ip for IPv4, backend-v6-data and public-ipv6 for IPv6, as flannel's
 * dual stack). A dual-stack node (our sockets of both families) reads both leases of a peer: the
 * IPv4 one becomes publicIP + vtepMAC, the IPv6 one publicIPv6 + vtepMACv6. The own
 * node is never a peer. Two nodes claiming overlapping subnets or the same public IP: the older
 * Node (creationTimestamp, then name) wins, the other is skipped and the conflict logged (the data
 * plane would refuse the whole set otherwise).
 *
 * Incremental where it is cheap: verdicts are cached per Node object (the informer replaces the
 * object on every change, so an unchanged node costs a WeakMap lookup), and a changed Node whose
 * peer came out the same keeps the previous Peer object, so the data plane's per-peer cache
 * (src/dataplane/fdb.ts) hits too. The conflict "shape" — the precedence order, the subnet
 * overlaps, the order by name — is reused as long as no node's name, age or subnets changed.
 * This module loads no client-node code at run time (type imports only).
 */
import type { V1Node, V1ObjectMeta } from '@kubernetes/client-node';
import type { Peer } from '../../dataplane/types.js';
import { BACKENDS, type Backend } from '../../dataplane/backends.js';
import { canonicalIP, canonicalMac, cidrContains, isIP, parseCidr, parseIP, vtepMacProblem, type Family } from '../../dataplane/net.js';
import { overlaps, subnetBits, type Overlap } from '../../dataplane/overlaps.js';
import { PARTIAL_CSUM_ANNOTATION, UNDERLAY_MTU_ANNOTATION, annotationNames } from './lease.js';
import { checkPublishedMtu } from '../path-mtu.js';

/** What the sync needs to know about this node and cluster. */
export interface SyncConfig {
  /** Own node name (excluded). */
  readonly nodeName: string;
  readonly prefix: string;
  readonly backend: Backend;
  /** Enabled cluster networks by family. */
  readonly networks: Partial<Record<Family, string>>;
  /** Own pod subnets: a peer claiming an overlapping one is a conflict the own node wins. */
  readonly ownSubnets: readonly string[];
  /** Underlay families (of our sockets): whose public-ip and backend-data annotations are read. */
  readonly underlayFamilies: readonly Family[];
  /** Own published underlay address(es): a peer claiming one is a conflict the own node wins. */
  readonly ownPublicIP?: string;
  readonly ownPublicIPv6?: string;
  /** Own VTEP MAC (vxlan): a peer claiming it is a conflict the own node wins. */
  readonly ownVtepMAC?: string;
}

/**
 * A node turned into a peer (with a note when part of what it published was ignored, e.g. a bad
 * underlay MTU), or the reason it was not.
 */
export type NodeVerdict = { ok: true; peer: Peer; note?: string } | { ok: false; reason: string };

/** Result of one recompute. */
export interface DesiredPeers {
  /** Peers sorted by name. */
  readonly peers: Peer[];
  /** Skipped node name -> reason. */
  readonly skipped: Map<string, string>;
  /** Accepted node name -> what of its lease was ignored (NodeVerdict note). */
  readonly notes: Map<string, string>;
  /** Per-peer keys (see peerSetKey), in `peers` order, cached with the verdicts. */
  readonly keys: readonly string[];
  /** peerSetKey(peers): the keys joined (built on first read). */
  readonly key: string;
}

/**
 * The part of a Node the agent reads (this file, the own-lease check in kube-mode.ts, the
 * reflector), as a new object: metadata name, namespace, resourceVersion (the reflector compares
 * it on a relist), uid, creationTimestamp (the conflict order here), the annotations — only those
 * under `annotationPrefix` + "/" when given, userlay.io/underlay-mtu and userlay.io/partial-csum: nothing else is read — spec.podCIDR(s) and
 * status.addresses (type and address). Everything else of status (images, conditions,
 * nodeInfo), labels and managedFields is dropped; the own Node's conditions are read with a GET
 * (lease.ts), never from the cache. The reflector trims every Node before it reaches its cache
 * (client-go's informer transform).
 */
export function trimNode(node: V1Node, annotationPrefix?: string): V1Node {
  const m: V1ObjectMeta = node.metadata ?? {};
  const meta: V1ObjectMeta = {};
  if (m.name !== undefined) meta.name = m.name;
  if (m.namespace !== undefined) meta.namespace = m.namespace;
  if (m.uid !== undefined) meta.uid = m.uid;
  if (m.resourceVersion !== undefined) meta.resourceVersion = m.resourceVersion;
  if (m.creationTimestamp !== undefined) meta.creationTimestamp = m.creationTimestamp;
  if (m.annotations) {
    const lead = annotationPrefix === undefined ? undefined : `${annotationPrefix}/`;
    const kept: Record<string, string> = {};
    for (const [k, v] of Object.entries(m.annotations)) if (lead === undefined || k.startsWith(lead) || k === UNDERLAY_MTU_ANNOTATION || k === PARTIAL_CSUM_ANNOTATION) kept[k] = v;
    meta.annotations = kept;
  }
  const out: V1Node = { metadata: meta };
  const spec = node.spec;
  if (spec && (spec.podCIDR !== undefined || spec.podCIDRs !== undefined)) {
    out.spec = {};
    if (spec.podCIDR !== undefined) out.spec.podCIDR = spec.podCIDR;
    if (spec.podCIDRs !== undefined) out.spec.podCIDRs = [...spec.podCIDRs];
  }
  const addresses = node.status?.addresses;
  if (addresses !== undefined) out.status = { addresses: addresses.map((a) => ({ type: a.type, address: a.address })) };
  return out;
}

/** Pod subnets of a node (spec.podCIDRs, else spec.podCIDR), as given. */
function nodePodCidrs(node: V1Node): string[] {
  const list = node.spec?.podCIDRs;
  if (list && list.length > 0) return [...list];
  return node.spec?.podCIDR ? [node.spec.podCIDR] : [];
}

/**
 * The node's subnets of the enabled families, canonical; an error text when one lies
 * outside its network or is malformed, or when none is assigned.
 */
export function nodeSubnets(node: V1Node, networks: Partial<Record<Family, string>>): string[] | string {
  const raw = nodePodCidrs(node);
  if (raw.length === 0) return 'no podCIDR assigned yet';
  const out: string[] = [];
  for (const text of raw) {
    let c;
    try {
      c = parseCidr(text);
    } catch {
      return `podCIDR ${text} is malformed`;
    }
    const network = networks[c.family];
    if (network === undefined) continue;
    if (!cidrContains(network, c)) return `podCIDR ${text} is outside the cluster network ${network}`;
    out.push(c.text);
  }
  if (out.length === 0) return `no podCIDR of an enabled family (has ${raw.join(', ')})`;
  return out;
}

/** Turn one Node into a Peer, or say why not. Does not check conflicts. */
export function nodeToPeer(node: V1Node, cfg: SyncConfig): NodeVerdict {
  const name = node.metadata?.name ?? '';
  if (name === '') return { ok: false, reason: 'node has no name' };
  if (name === cfg.nodeName) return { ok: false, reason: 'own node' };
  const ann = node.metadata?.annotations ?? {};
  const names = annotationNames(cfg.prefix);
  const subnets = nodeSubnets(node, cfg.networks);
  if (typeof subnets === 'string') return { ok: false, reason: subnets };
  const type = ann[names.backendType];
  if (type === undefined) return { ok: false, reason: `no ${names.backendType} annotation (lease not published yet)` };
  if (type !== cfg.backend) return { ok: false, reason: `backend-type ${type} does not match ours (${cfg.backend})` };
  // one lease per underlay family we have a socket for; a peer needs at least one
  const leases: Array<{ family: Family; ip: string; vni?: number; vtepMAC?: string }> = [];
  for (const family of cfg.underlayFamilies) {
    const lease = familyLease(ann, names, family, cfg);
    if (lease === undefined) continue;
    if ('reason' in lease) return { ok: false, reason: lease.reason };
    leases.push({ family, ...lease });
  }
  if (leases.length === 0) return { ok: false, reason: `no ${cfg.underlayFamilies.map((f) => names.publicIP[f]).join(' or ')} annotation` };
  const [first, v6] = leases.length > 1 ? [leases.find((l) => l.family === 4)!, leases.find((l) => l.family === 6)] : [leases[0]!, undefined];
  const peer: { -readonly [K in keyof Peer]: Peer[K] } = { name, subnets, publicIP: first.ip };
  if (first.vni !== undefined) peer.vni = first.vni;
  if (first.vtepMAC !== undefined) peer.vtepMAC = first.vtepMAC;
  if (v6 !== undefined) {
    peer.publicIPv6 = v6.ip;
    if (v6.vtepMAC !== undefined) peer.vtepMACv6 = v6.vtepMAC;
  }
  if (ann[PARTIAL_CSUM_ANNOTATION] === 'true') peer.partialCsum = true; // a userlay node (lease.ts)
  const mtuText = ann[UNDERLAY_MTU_ANNOTATION];
  if (mtuText === undefined) return { ok: true, peer };
  const mtu = checkPublishedMtu(name, UNDERLAY_MTU_ANNOTATION, mtuText, v6 !== undefined ? 6 : first.family);
  if ('problem' in mtu) return { ok: true, peer, note: `${mtu.problem} (ignored: counts as this node's underlay MTU)` };
  peer.underlayMtu = mtu.mtu;
  return { ok: true, peer };
}

/**
 * A node's lease of one underlay family (public-ip + backend-data, or the v6 pair): undefined
 * when it publishes none, a reason when it is unusable. The same checks for both families.
 */
function familyLease(ann: Record<string, string>, names: ReturnType<typeof annotationNames>, family: Family, cfg: SyncConfig):
  { ip: string; vni?: number; vtepMAC?: string } | { reason: string } | undefined {
  const ipName = names.publicIP[family];
  const ip = ann[ipName];
  if (ip === undefined) return undefined;
  if (!isIP(ip) || parseIP(ip).family !== family) return { reason: `${ipName} "${ip}" is not an IPv${family} address` };
  const inside = Object.values(cfg.networks).find((n) => n !== undefined && cidrContains(n, ip));
  if (inside !== undefined) return { reason: `public IP ${ip} lies inside the cluster network ${inside}` };
  const out: { ip: string; vni?: number; vtepMAC?: string } = { ip: canonicalIP(ip) };
  const dataName = names.backendData[family];
  const dataText = ann[dataName];
  if (dataText !== undefined && dataText !== '' && dataText !== 'null') {
    let data: { VNI?: unknown; VtepMAC?: unknown };
    try {
      data = JSON.parse(dataText) as typeof data;
    } catch {
      return { reason: `${dataName} is not JSON` };
    }
    if (data && typeof data.VNI === 'number' && Number.isInteger(data.VNI) && data.VNI > 0) out.vni = data.VNI;
    if (data && typeof data.VtepMAC === 'string') {
      let mac: string;
      try {
        mac = canonicalMac(data.VtepMAC);
      } catch {
        return { reason: `${dataName} VtepMAC "${data.VtepMAC}" is not a MAC address` };
      }
      const problem = vtepMacProblem(mac);
      if (problem !== undefined) return { reason: `${dataName} VtepMAC ${mac} ${problem}` };
      if (cfg.ownVtepMAC !== undefined && mac === canonicalMac(cfg.ownVtepMAC)) return { reason: `conflict: VtepMAC ${mac} is this node's own` };
      out.vtepMAC = mac;
    }
  }
  if (BACKENDS[cfg.backend].needsVtepMAC && out.vtepMAC === undefined) return { reason: `no VtepMAC in ${dataName}` };
  return out;
}

/** Code-unit order of two strings (locale-independent, as the peer order must be). */
function byText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function created(node: V1Node): number {
  const t = node.metadata?.creationTimestamp;
  const ms = t === undefined ? NaN : new Date(t as unknown as string).getTime();
  return Number.isNaN(ms) ? Number.MAX_SAFE_INTEGER : ms;
}

/** A node's verdict with what conflict resolution needs, cached per Node object. */
type Candidate = OkCandidate | { ok: false; reason: string };
type OkCandidate = { ok: true; peer: Peer; created: number; bits: string[]; key: string; note?: string };

/**
 * The conflict-relevant part of a recompute: it depends only on the candidates' names, ages
 * and subnets (and the config), so it is reused while those stay the same.
 */
interface Shape {
  /** Candidates in precedence order: older first, then smaller name. */
  readonly order: readonly OkCandidate[];
  /** Name -> index in `order`. */
  readonly index: ReadonlyMap<string, number>;
  /** Per index in `order`: the candidates (-1 = this node) whose subnets overlap, and where. */
  readonly clashes: ReadonlyMap<number, readonly Overlap[]>;
  /** Indexes of `order`, sorted by name. */
  readonly byName: readonly number[];
}

/**
 * What a recompute keeps for the next one: verdicts per Node object (an object's verdict never
 * changes, the informer replaces the object on every update) and the last conflict shape.
 * Valid for one SyncConfig.
 */
export interface VerdictCache {
  readonly verdicts: WeakMap<V1Node, Candidate>;
  shape: Shape | undefined;
}

/** A fresh verdict cache. */
export function newVerdictCache(): VerdictCache {
  return { verdicts: new WeakMap(), shape: undefined };
}

const OWN = -1;

function candidate(node: V1Node, cfg: SyncConfig, cache?: VerdictCache): Candidate {
  let c = cache?.verdicts.get(node);
  if (c === undefined) {
    const v = nodeToPeer(node, cfg);
    c = v.ok ? { ok: true, peer: v.peer, created: created(node), bits: v.peer.subnets.map(subnetBits), key: peerKey(v.peer), ...(v.note ? { note: v.note } : {}) } : v;
    // a changed Node whose peer is the same (a heartbeat, a label): keep the previous object
    const shape = cache?.shape;
    const at = c.ok && shape ? shape.index.get(c.peer.name) : undefined;
    const before = at === undefined ? undefined : shape!.order[at]!;
    if (c.ok && before !== undefined && before.key === c.key && before.created === c.created) c = before;
    cache?.verdicts.set(node, c);
  }
  return c;
}

/** Element-wise equality of two string lists. */
export function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** `prev` with `current` in place of its candidates, when their names, ages and subnets are all the same. */
function reuseShape(prev: Shape, current: readonly OkCandidate[]): Shape | undefined {
  if (current.length !== prev.order.length) return undefined;
  const order: OkCandidate[] = new Array<OkCandidate>(current.length);
  for (const c of current) {
    const i = prev.index.get(c.peer.name);
    if (i === undefined || order[i] !== undefined) return undefined;
    const p = prev.order[i]!;
    if (p !== c && (p.created !== c.created || !sameStrings(p.bits, c.bits))) return undefined;
    order[i] = c;
  }
  return { ...prev, order };
}

function buildShape(current: readonly OkCandidate[], cfg: SyncConfig): Shape {
  const byAge = (a: OkCandidate, b: OkCandidate) => a.created - b.created || byText(a.peer.name, b.peer.name);
  const order = [...current].sort(byAge);
  const subnets = cfg.ownSubnets.map((text) => ({ bits: subnetBits(text), owner: OWN, text }));
  order.forEach((c, i) => c.bits.forEach((bits, k) => subnets.push({ bits, owner: i, text: c.peer.subnets[k]! })));
  const index = new Map(order.map((c, i) => [c.peer.name, i]));
  const name = (i: number) => order[i]!.peer.name;
  const byName = order.map((_, i) => i).sort((a, b) => byText(name(a), name(b)));
  return { order, index, clashes: overlaps(subnets), byName };
}

/** Compute the desired peer set from all known nodes. Pure (the cache only memoises). */
export function computePeers(nodes: readonly V1Node[], cfg: SyncConfig, cache?: VerdictCache): DesiredPeers {
  const skipped = new Map<string, string>();
  const notes = new Map<string, string>();
  const current: OkCandidate[] = [];
  for (const node of nodes) {
    const v = candidate(node, cfg, cache);
    if (v.ok && v.note !== undefined) notes.set(v.peer.name, v.note);
    if (v.ok) current.push(v);
    else if (v.reason !== 'own node') skipped.set(node.metadata?.name ?? '', v.reason);
  }
  const prev = cache?.shape;
  const shape = (prev && reuseShape(prev, current)) ?? buildShape(current, cfg);
  if (cache) cache.shape = shape;
  const { order, clashes } = shape;
  const accepted = new Uint8Array(order.length);
  const underlay = new Map<string, string>();
  for (const own of [cfg.ownPublicIP, cfg.ownPublicIPv6]) if (own !== undefined) underlay.set(canonicalIP(own), cfg.nodeName);
  const nameOf = (i: number) => (i === OWN ? 'this node' : order[i]!.peer.name);
  order.forEach(({ peer }, i) => {
    const clash = clashes.get(i)?.find((x) => x.other === OWN || accepted[x.other] === 1);
    if (clash) {
      skipped.set(peer.name, `conflict: subnet ${clash.subnet} overlaps one claimed by ${nameOf(clash.other)}`);
      return;
    }
    const ips = peer.publicIPv6 === undefined ? [peer.publicIP] : [peer.publicIP, peer.publicIPv6];
    for (const ip of ips) {
      const ipOwner = underlay.get(ip);
      if (ipOwner !== undefined) {
        skipped.set(peer.name, `conflict: public IP ${ip} is already used by ${ipOwner === cfg.nodeName ? 'this node' : ipOwner}`);
        return;
      }
    }
    accepted[i] = 1;
    for (const ip of ips) underlay.set(ip, peer.name);
  });
  const peers: Peer[] = [];
  const keys: string[] = [];
  for (const i of shape.byName) {
    if (accepted[i] !== 1) continue;
    peers.push(order[i]!.peer);
    keys.push(order[i]!.key);
  }
  let joined: string | undefined;
  return { peers, skipped, notes, keys, get key() { return (joined ??= keys.join('\n')); } };
}

function peerKey(p: Peer): string {
  return JSON.stringify([p.name, [...p.subnets].sort(), p.publicIP, p.vtepMAC ?? null, p.publicIPv6 ?? null, p.vtepMACv6 ?? null, p.port ?? null, p.vni ?? null, p.underlayMtu ?? null, p.partialCsum === true]);
}

/** Per-peer keys of a peer set, sorted by name (see peerSetKey). */
export function peerKeys(peers: readonly Peer[]): string[] {
  return [...peers].sort((a, b) => byText(a.name, b.name)).map(peerKey);
}

/** A canonical text of a peer set, for equality. */
export function peerSetKey(peers: readonly Peer[]): string {
  return peerKeys(peers).join('\n');
}
