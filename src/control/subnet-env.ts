/**
 * subnet.env for the CNI plugin.
 *
 * The variable names are exactly flannel's (/run/flannel/subnet.env), so the upstream flannel
 * CNI plugin can read userlay's file when its "subnetFile" points here:
 *
 *   FLANNEL_NETWORK=198.19.0.0/16
 *   FLANNEL_SUBNET=198.19.1.1/24        own subnet, written as its .1 gateway address
 *   FLANNEL_IPV6_NETWORK=2001:2:0:100::/56   only when IPv6 is enabled
 *   FLANNEL_IPV6_SUBNET=2001:2:0:101::1/64
 *   FLANNEL_MTU=1450                    the MTU pods must use
 *   FLANNEL_IPMASQ=false
 *
 * The file is replaced atomically, so the plugin never reads half of it.
 */
import { writeFileAtomic } from '../atomic-file.js';
import { familyBytes, formatIP, parseCidr, type Family } from '../dataplane/net.js';

/** Default path (flannel's is /run/flannel/subnet.env). */
export const DEFAULT_SUBNET_FILE = '/run/userlay/subnet.env';

/** What subnet.env describes. */
export interface SubnetEnv {
  /** Cluster networks by family (CIDR). */
  readonly networks: Partial<Record<Family, string>>;
  /** Own pod subnets (CIDR), at most one per family. */
  readonly ownSubnets: readonly string[];
  /** Pod MTU in bytes. */
  readonly mtu: number;
  /** Whether pod traffic leaving the cluster network is masqueraded. */
  readonly ipMasq: boolean;
}

/** The first host address of a subnet with its prefix length: 198.19.1.0/24 -> 198.19.1.1/24. */
export function gatewayCidr(subnet: string): string {
  const c = parseCidr(subnet);
  const bytes = Uint8Array.from(c.bytes);
  const last = familyBytes(c.family) - 1;
  // The network address has host bits zero; with prefix < full length the last byte's low bit is free.
  bytes[last] = bytes[last]! | 1;
  return `${formatIP(c.family, bytes)}/${c.prefixLen}`;
}

/** Render the file's text (one VAR=value per line, trailing newline). */
export function renderSubnetEnv(env: SubnetEnv): string {
  const prefix: Record<Family, string> = { 4: 'FLANNEL_', 6: 'FLANNEL_IPV6_' };
  const lines: string[] = [];
  for (const family of [4, 6] as const) {
    const network = env.networks[family];
    if (network === undefined) continue;
    lines.push(`${prefix[family]}NETWORK=${network}`);
    const own = env.ownSubnets.find((s) => parseCidr(s).family === family);
    if (own !== undefined) lines.push(`${prefix[family]}SUBNET=${gatewayCidr(own)}`);
  }
  lines.push(`FLANNEL_MTU=${env.mtu}`, `FLANNEL_IPMASQ=${env.ipMasq}`);
  return lines.join('\n') + '\n';
}

/** Atomically write subnet.env at `path`. Throws UserlayError with the errno code. */
export async function writeSubnetEnv(path: string, env: SubnetEnv): Promise<void> {
  await writeFileAtomic(path, renderSubnetEnv(env));
}
