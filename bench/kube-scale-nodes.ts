/**
 * Synthetic Node objects for the kube scale benchmark: shaped like the Nodes
 * a kubelet + flannel-style agent leave in a real cluster (labels, lease
 * annotations, podCIDR, addresses, conditions, capacity, nodeInfo; optional
 * image list, the field that makes real Node objects heavy).
 *
 * Addressing stays inside 198.18.0.0/15 (RFC 2544): node i gets the /29 pod
 * subnet at 198.19.0.0 + 8·i (room for 8192 nodes in the 198.19.0.0/16
 * cluster network) and the underlay address 198.18.0.0 + i + 1.
 */
import type { KubeObject } from '../test/support/fake-apiserver.js';

/** The cluster network the synthetic pod subnets are cut from. */
export const SCALE_NETWORK = '198.19.0.0/16';
/** Pod subnet prefix length per node. */
export const SCALE_SUBNET_LEN = 29;

/** Dotted quad of a 32-bit address. */
function ipv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

const podBase = (198 << 24) + (19 << 16);
const underlayBase = (198 << 24) + (18 << 16);

/** Pod subnet of node index `i` (0..8191). */
export function podSubnet(i: number): string {
  if (i < 0 || i >= 1 << (32 - 16 - (32 - SCALE_SUBNET_LEN))) throw new RangeError(`node index ${i} out of range`);
  return `${ipv4(podBase + i * 8)}/${SCALE_SUBNET_LEN}`;
}

/** Underlay address of node index `i`; `block` selects a disjoint /24 range for replaced addresses. */
export function underlayIP(i: number, block = 0): string {
  return ipv4(underlayBase + block * 256 + i + 1);
}

/** VTEP MAC of node index `i`. */
export function vtepMac(i: number): string {
  const h = (b: number): string => b.toString(16).padStart(2, '0');
  return `0a:58:c6:13:${h((i >> 8) & 255)}:${h(i & 255)}`;
}

/** Name of node index `i`. */
export function nodeName(i: number): string {
  return `node-${String(i).padStart(5, '0')}`;
}

/** Options of makeNode. */
export interface ScaleNodeOptions {
  /** Annotation prefix of the lease (flannel's by default). */
  readonly prefix: string;
  /** Underlay address (default underlayIP(i)). */
  readonly publicIP?: string;
  /** Container images listed in status.images (default 0). */
  readonly images?: number;
}

/** A Node object for index `i`. */
export function makeNode(i: number, opts: ScaleNodeOptions): KubeObject {
  const name = nodeName(i);
  const ip = opts.publicIP ?? underlayIP(i);
  const cidr = podSubnet(i);
  const at = '2026-11-21T05:00:00Z';
  const condition = (type: string, status: string, reason: string): Record<string, string> => ({
    type, status, reason, message: `synthetic ${type}`, lastHeartbeatTime: at, lastTransitionTime: at,
  });
  const images = Array.from({ length: opts.images ?? 0 }, (_, k) => ({
    names: [`registry.example.test/team/image-${k}@sha256:${String(k).padStart(64, '0')}`, `registry.example.test/team/image-${k}:v1.${k}`],
    sizeBytes: 10_000_000 + k,
  }));
  return {
    metadata: {
      name,
      labels: {
        'kubernetes.io/hostname': name,
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': 'amd64',
        'beta.kubernetes.io/os': 'linux',
        'beta.kubernetes.io/arch': 'amd64',
        'node.kubernetes.io/instance-type': 'bench.large',
        'topology.kubernetes.io/zone': `zone-${i % 3}`,
      },
      annotations: {
        [`${opts.prefix}/backend-type`]: 'vxlan',
        [`${opts.prefix}/backend-data`]: JSON.stringify({ VNI: 1, VtepMAC: vtepMac(i) }),
        [`${opts.prefix}/public-ip`]: ip,
        [`${opts.prefix}/kube-subnet-manager`]: 'true',
        'node.alpha.kubernetes.io/ttl': '0',
        'volumes.kubernetes.io/controller-managed-attach-detach': 'true',
      },
    },
    spec: { podCIDR: cidr, podCIDRs: [cidr], providerID: `bench://${name}` },
    status: {
      addresses: [{ type: 'InternalIP', address: ip }, { type: 'Hostname', address: name }],
      capacity: { cpu: '8', memory: '32859848Ki', pods: '110', 'ephemeral-storage': '101430960Ki' },
      allocatable: { cpu: '8', memory: '32757448Ki', pods: '110', 'ephemeral-storage': '93478772582' },
      conditions: [
        condition('MemoryPressure', 'False', 'KubeletHasSufficientMemory'),
        condition('DiskPressure', 'False', 'KubeletHasNoDiskPressure'),
        condition('PIDPressure', 'False', 'KubeletHasSufficientPID'),
        condition('Ready', 'True', 'KubeletReady'),
        condition('NetworkUnavailable', 'False', 'UserlayIsUp'),
      ],
      daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
      nodeInfo: {
        machineID: String(i).padStart(32, '0'), systemUUID: String(i).padStart(32, '0'), bootID: String(i).padStart(32, '0'),
        kernelVersion: '6.1.0-bench', osImage: 'Debian GNU/Linux 12 (bookworm)', containerRuntimeVersion: 'containerd://1.7.0',
        kubeletVersion: 'v1.31.0', kubeProxyVersion: 'v1.31.0', operatingSystem: 'linux', architecture: 'amd64',
      },
      ...(images.length > 0 ? { images } : {}),
    },
  } as unknown as KubeObject;
}
