/**
 * Node fixtures for the kube sync and informer tests: annotated Nodes the way
 * a userlay (or flannel) agent publishes them, on the lab addressing
 * (node i: underlay 198.18.0.i, pod subnet 198.19.i.0/24).
 */
import type { V1Node } from '@kubernetes/client-node';
import type { SyncConfig } from '../../src/control/kube/desired-peers.js';
import type { Peer } from '../../src/dataplane/types.js';

/** The annotation prefix the fixtures use. */
export const P = 'userlay.io';

/** The sync config of node n1 (own subnet 198.19.1.0/24, VXLAN, IPv4). */
export const cfg: SyncConfig = {
  nodeName: 'n1', prefix: P, backend: 'vxlan', networks: { 4: '198.19.0.0/16' }, ownSubnets: ['198.19.1.0/24'], underlayFamilies: [4],
};

/** The VTEP MAC of node i. */
export function mac(i: number): string {
  return `0a:58:c6:13:00:${i.toString(16).padStart(2, '0')}`;
}

/**
 * Node i with a complete lease; `over` renames it, changes or removes
 * (null) its podCIDR, sets or removes (undefined) annotations by their
 * name without the prefix, and sets its creation time.
 */
export function node(i: number, over: { name?: string; podCIDR?: string | null; ann?: Record<string, string | undefined>; created?: string } = {}): V1Node {
  const ann: Record<string, string> = {
    [`${P}/backend-type`]: 'vxlan',
    [`${P}/backend-data`]: JSON.stringify({ VNI: 1, VtepMAC: mac(i) }),
    [`${P}/public-ip`]: `198.18.0.${i}`,
    [`${P}/kube-subnet-manager`]: 'true',
  };
  for (const [k, v] of Object.entries(over.ann ?? {})) {
    if (v === undefined) delete ann[`${P}/${k}`];
    else ann[`${P}/${k}`] = v;
  }
  const podCIDR = over.podCIDR === undefined ? `198.19.${i}.0/24` : over.podCIDR;
  return {
    metadata: { name: over.name ?? `n${i}`, annotations: ann, creationTimestamp: new Date(over.created ?? `2026-01-01T00:00:${String(i).padStart(2, '0')}Z`) },
    spec: podCIDR === null ? {} : { podCIDR, podCIDRs: [podCIDR] },
  };
}

/** The Peer that node(i) gives. */
export function expected(i: number): Peer {
  return { name: `n${i}`, subnets: [`198.19.${i}.0/24`], publicIP: `198.18.0.${i}`, vtepMAC: mac(i), vni: 1 };
}

/** node(i) with what a real API server adds and the sync does not read (uid, labels, status, managedFields...). */
export function fullNode(i: number): V1Node {
  const n = node(i);
  n.metadata!.resourceVersion = String(100 + i);
  n.metadata!.uid = `uid-${i}`;
  n.metadata!.labels = { 'kubernetes.io/hostname': `n${i}` };
  n.metadata!.annotations!['node.alpha.kubernetes.io/ttl'] = '0';
  n.metadata!.managedFields = [{ manager: 'kubelet', operation: 'Update' }];
  n.spec!.providerID = `test://n${i}`;
  n.status = { images: [{ names: ['registry.example.test/x:1'], sizeBytes: 1 }], conditions: [{ type: 'Ready', status: 'True' }] };
  return n;
}
