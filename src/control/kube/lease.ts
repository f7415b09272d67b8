/**
 * This node's lease, published as annotations on its Node object (flannel's kube subnet
 * manager contract, so a userlay node and flannel vxlan nodes can share a cluster):
 *
 *   <prefix>/backend-type          "vxlan" | "udp"
 *   <prefix>/backend-data          {"VNI":1,"VtepMAC":"0a:58:c6:13:01:00"}   (backend-v6-data for an IPv6 underlay)
 *   <prefix>/public-ip             underlay address peers send to (public-ipv6 for an IPv6 underlay)
 *   <prefix>/kube-subnet-manager   "true"
 *
 *   userlay.io/underlay-mtu        "9001": the MTU of the underlay interface (always under userlay.io:
 *                                  flannel has no such annotation; --mtu auto on the other nodes
 *                                  takes the smallest path, src/control/path-mtu.ts)
 *   userlay.io/partial-csum        "true": this node takes inner TCP/UDP checksums left partial
 *                                  (every userlay engine does; a flannel node has no such
 *                                  annotation and gets complete ones: Peer.partialCsum)
 *
 * plus the NetworkUnavailable=False condition, in one JSON merge patch on nodes/{name}/status.
 *
 * The lease is per underlay family, as flannel's dual stack has one per family (flannel.1 reads
 * backend-data + public-ip, flannel-v6.1 backend-v6-data + public-ipv6). The agent publishes the
 * pair of each underlay family it has a socket for (a dual-stack node: both, with its one VTEP
 * MAC in each) and removes the other's (null in the merge patch): a stale lease of a family
 * nobody listens on would draw traffic into nothing.
 *
 * The default prefix is `userlay.io`: a userlay-only cluster never mistakes flannel's leftovers
 * for live leases. `--annotation-prefix flannel.alpha.coreos.com` makes the agent read and write
 * exactly flannel's annotations, for mixed clusters.
 *
 * The VTEP MAC is generated once and kept in `<state dir>/vtep-mac`, so peers' FDB entries for
 * this node stay valid across restarts.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errorCode, wrapSystemError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { BACKENDS, type Backend } from '../../dataplane/backends.js';
import { canonicalMac, randomMac, type Family } from '../../dataplane/net.js';
import { writeFileAtomic } from '../../atomic-file.js';
import type { V1NodeCondition } from '@kubernetes/client-node';
import type { NodeApi } from './client.js';

/** The default annotation prefix. */
export const DEFAULT_ANNOTATION_PREFIX = 'userlay.io';
/** flannel's prefix, for clusters mixing userlay and flannel nodes. */
export const FLANNEL_ANNOTATION_PREFIX = 'flannel.alpha.coreos.com';

/** The annotation carrying a node's underlay MTU, whatever the prefix (flannel's stay untouched). */
export const UNDERLAY_MTU_ANNOTATION = 'userlay.io/underlay-mtu';
/** The annotation by which a userlay node says it takes partial inner checksums, whatever the prefix. */
export const PARTIAL_CSUM_ANNOTATION = 'userlay.io/partial-csum';

/** Full annotation names for one prefix. */
export interface AnnotationNames {
  readonly backendType: string;
  /** Backend data (VNI, VTEP MAC) by underlay family: backend-data, backend-v6-data. */
  readonly backendData: Record<Family, string>;
  /** Public IP by underlay family. */
  readonly publicIP: Record<Family, string>;
  /** Operator-set override of the public IP, by family. */
  readonly publicIPOverwrite: Record<Family, string>;
  readonly kubeSubnetManager: string;
}

/** Annotation names under `prefix` (same suffixes as flannel). */
export function annotationNames(prefix: string): AnnotationNames {
  return {
    backendType: `${prefix}/backend-type`,
    backendData: { 4: `${prefix}/backend-data`, 6: `${prefix}/backend-v6-data` },
    publicIP: { 4: `${prefix}/public-ip`, 6: `${prefix}/public-ipv6` },
    publicIPOverwrite: { 4: `${prefix}/public-ip-overwrite`, 6: `${prefix}/public-ipv6-overwrite` },
    kubeSubnetManager: `${prefix}/kube-subnet-manager`,
  };
}

/** The lease this node publishes. */
export interface LeaseInfo {
  readonly backend: Backend;
  readonly vni: number;
  readonly vtepMAC: string;
  readonly publicIP: string;
  /** The family of publicIP. */
  readonly family: Family;
  /** MTU of the underlay interface, bytes; undefined: not published (peers count it as theirs). */
  readonly underlayMtu?: number;
  /** Dual stack: the IPv6 address (publicIP is then IPv4), published as public-ipv6. */
  readonly publicIPv6?: string;
  /** Published as userlay.io/partial-csum "true"; else the annotation is removed. */
  readonly partialCsum?: boolean;
}

/** The lease's public IP per underlay family (one, or both on a dual-stack node). */
export function leaseIPs(lease: LeaseInfo): Partial<Record<Family, string>> {
  return { [lease.family]: lease.publicIP, ...(lease.publicIPv6 !== undefined ? { 6: lease.publicIPv6 } : {}) };
}

/**
 * The backend-data JSON text, byte-compatible with flannel's vxlan backend; `null` for a
 * backend that does not encapsulate (flannel's host-gw nodes publish that).
 */
export function backendData(lease: LeaseInfo): string {
  if (!BACKENDS[lease.backend].encapsulates) return 'null';
  return JSON.stringify({ VNI: lease.vni, VtepMAC: lease.vtepMAC });
}

/**
 * The merge patch body for nodes/{name}/status. A merge patch replaces lists whole, so the
 * conditions list is the node's current one (`current`) with NetworkUnavailable replaced.
 */
export function leasePatch(prefix: string, lease: LeaseInfo, current: readonly V1NodeCondition[] = [], now: Date = new Date()): object {
  const names = annotationNames(prefix);
  const ts = now.toISOString().replace(/\.\d{3}Z$/, 'Z');
  const previous = current.find((c) => c.type === 'NetworkUnavailable');
  const ours = {
    type: 'NetworkUnavailable',
    status: 'False',
    reason: 'UserlayIsUp',
    message: 'userlay is running on this node',
    lastTransitionTime: previous?.status === 'False' && previous.lastTransitionTime ? previous.lastTransitionTime : ts,
    lastHeartbeatTime: ts,
  };
  const ips = leaseIPs(lease);
  const annotations: Record<string, string | null> = { [names.backendType]: lease.backend };
  for (const f of [4, 6] as const) {
    annotations[names.backendData[f]] = ips[f] !== undefined ? backendData(lease) : null;
    annotations[names.publicIP[f]] = ips[f] ?? null;
  }
  annotations[names.kubeSubnetManager] = 'true';
  if (lease.underlayMtu !== undefined) annotations[UNDERLAY_MTU_ANNOTATION] = String(lease.underlayMtu);
  annotations[PARTIAL_CSUM_ANNOTATION] = lease.partialCsum ? 'true' : null;
  return {
    metadata: { annotations },
    status: { conditions: [...current.filter((c) => c.type !== 'NetworkUnavailable'), ours] },
  };
}

/**
 * Publish the lease: read the node (for its current conditions), then one merge patch.
 * Throws UserlayError from the API client.
 */
export async function publishLease(api: NodeApi, nodeName: string, prefix: string, lease: LeaseInfo, log: Logger): Promise<void> {
  const node = await api.getNode(nodeName);
  await api.patchNodeStatus(nodeName, leasePatch(prefix, lease, node.status?.conditions ?? []));
  log.info('lease published', { node: nodeName, backend: lease.backend, publicIP: lease.publicIP, ...(lease.publicIPv6 !== undefined ? { publicIPv6: lease.publicIPv6 } : {}), vtepMAC: lease.vtepMAC });
}

/**
 * The node's VTEP MAC: read from `<stateDir>/vtep-mac`, or generated (random, locally
 * administered, unicast) and saved there atomically on first start.
 */
export async function loadOrCreateVtepMac(stateDir: string, log: Logger): Promise<string> {
  const path = join(stateDir, 'vtep-mac');
  try {
    const text = (await readFile(path, 'utf8')).trim();
    try {
      return canonicalMac(text);
    } catch {
      log.warn('vtep-mac file is malformed; generating a new MAC', { path, content: text.slice(0, 40) });
    }
  } catch (err) {
    if (errorCode(err) !== 'ENOENT') throw wrapSystemError(`read ${path}`, err);
  }
  const mac = randomMac();
  await writeFileAtomic(path, mac + '\n');
  log.info('generated VTEP MAC', { path, vtepMAC: mac });
  return mac;
}
