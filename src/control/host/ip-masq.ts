/**
 * Pod egress (`--ip-masq`): traffic from this node's pods to destinations outside the cluster
 * network(s) leaves with the node's address; traffic inside the cluster network keeps its
 * source (pod-to-pod is a flat network without NAT).
 *
 * Design notes
 * - One nftables table of our own, `inet userlay`, holding one nat chain for both families
 *   (`ip`/`ip6` matches in an `inet` table; one code path over [4, 6]). Every apply is a
 *   single `nft -f -` transaction that declares the table, deletes it and declares it again
 *   with its chain and rules: the first line makes the delete succeed when the table is
 *   absent, so the same script serves a first start, a restart after a crash (the old table
 *   is still there) and a change, and the result is exactly one set of rules.
 * - The agent deletes the table on a clean stop; a crash leaves it (pods keep their egress
 *   while the agent is restarted) until the next start replaces it.
 * - The rule: source in the node's own pod subnet(s), destination neither in a cluster
 *   network nor multicast -> masquerade (fully-random ports, as kube-proxy and flannel use,
 *   against the conntrack SNAT port race). Traffic into the TUN never matches: the TUN is
 *   routed only the cluster networks.
 * - Ordering with kube-proxy: a connection's source NAT is decided by the first nat chain at
 *   the postrouting hook that binds one; later nat chains are not consulted for it. Our chain
 *   sits at `srcnat + 10`, after kube-proxy's POSTROUTING (iptables-nft, iptables-legacy and
 *   kube-proxy's own nftables mode all run at srcnat), so a packet KUBE-POSTROUTING
 *   masquerades (marked 0x4000: NodePort, hairpin) is its decision, and we handle only what
 *   nobody NATed. Service traffic is DNATed in prerouting, so at postrouting a pod -> ClusterIP
 *   packet already carries the endpoint's pod address and is not masqueraded by us.
 */
import type { Logger } from '../../log.js';
import { parseCidr, type Family } from '../../dataplane/net.js';
import type { Nftables } from './nftables.js';

/** The table userlay owns. */
export const IP_MASQ_TABLE = { family: 'inet', name: 'userlay' } as const;
/** The chain in it. */
export const IP_MASQ_CHAIN = 'postrouting';
/** Comment on each masquerade rule (also how tests find them). */
export const IP_MASQ_COMMENT = 'userlay pod egress';

/** What the table should say. */
export interface IpMasqSpec {
  /** Masquerade at all; false removes the table. */
  readonly enabled: boolean;
  /** The node's own pod subnets (CIDR, any family). */
  readonly podSubnets: readonly string[];
  /** The cluster networks (CIDR, any family): destinations never masqueraded. */
  readonly networks: readonly string[];
}

/** Per family: the nft payload keyword and its multicast range (never masqueraded). */
const FAMILY: Record<Family, { readonly match: 'ip' | 'ip6'; readonly multicast: string }> = {
  4: { match: 'ip', multicast: '224.0.0.0/4' },
  6: { match: 'ip6', multicast: 'ff00::/8' },
};

const TABLE = `table ${IP_MASQ_TABLE.family} ${IP_MASQ_TABLE.name}`;

/** One prefix as itself, several as an anonymous set. */
function nftSet(cidrs: readonly string[]): string {
  return cidrs.length === 1 ? cidrs[0]! : `{ ${cidrs.join(', ')} }`;
}

/** The CIDRs of `list` that are of `family`, canonical (throws on a malformed one). */
function ofFamily(list: readonly string[], family: Family): string[] {
  return list.map((s) => parseCidr(s)).filter((c) => c.family === family).map((c) => c.text);
}

/**
 * The nft script that makes the table what `spec` says, as one transaction. Enabled: the
 * table replaced whole (declare, delete, declare with chain and rules). Disabled: the table
 * deleted if it exists. Pure; throws on a malformed CIDR.
 */
export function ipMasqRuleset(spec: IpMasqSpec): string {
  const lines = [`${TABLE} {}`, `delete ${TABLE}`];
  if (!spec.enabled) return lines.join('\n') + '\n';
  const rules: string[] = [];
  for (const family of [4, 6] as const) {
    const sources = ofFamily(spec.podSubnets, family);
    if (sources.length === 0) continue;
    const { match, multicast } = FAMILY[family];
    const keep = [...ofFamily(spec.networks, family), multicast];
    rules.push(`${match} saddr ${nftSet(sources)} ${match} daddr != ${nftSet(keep)} masquerade fully-random comment "${IP_MASQ_COMMENT}"`);
  }
  lines.push(
    `${TABLE} {`,
    `\tchain ${IP_MASQ_CHAIN} {`,
    '\t\ttype nat hook postrouting priority srcnat + 10; policy accept;',
    ...rules.map((r) => `\t\t${r}`),
    '\t}',
    '}',
  );
  return lines.join('\n') + '\n';
}

/**
 * The agent's pod egress table: apply() on start and on every change, remove() on a clean
 * stop. Scripts are only run when they differ from the last one applied.
 */
export class IpMasq {
  private applied: string | undefined;
  private enabled = false;

  constructor(private readonly nft: Nftables, private readonly log: Logger) {}

  /**
   * Make the table say `spec`. Enabled: rejects when nft fails (UserlayError ENOENT/ENFT).
   * Disabled: removes a table a previous run may have left; a missing nft or a failure is
   * logged, not thrown (an agent that does not masquerade does not need nftables).
   */
  async apply(spec: IpMasqSpec): Promise<void> {
    const script = ipMasqRuleset(spec);
    if (script === this.applied) return;
    if (!spec.enabled) {
      try {
        await this.nft.run(script);
        this.log.debug('ip-masq off: pod egress table removed if present', { table: TABLE });
      } catch (err) {
        const missing = (err as { code?: string }).code === 'ENOENT';
        (missing ? this.log.debug : this.log.warn).call(this.log, 'ip-masq off: could not remove a leftover pod egress table', { table: TABLE, err });
      }
      this.applied = script;
      this.enabled = false;
      return;
    }
    await this.nft.run(script);
    this.applied = script;
    this.enabled = true;
    this.log.info('ip-masq: pod egress masqueraded', { table: TABLE, podSubnets: spec.podSubnets, networks: spec.networks });
  }

  /** Delete the table (clean stop) when this agent put it there. Never throws; failures are logged. */
  async remove(): Promise<void> {
    if (!this.enabled) return;
    try {
      await this.nft.run(ipMasqRuleset({ enabled: false, podSubnets: [], networks: [] }));
      this.enabled = false;
      this.applied = undefined;
      this.log.info('ip-masq: pod egress table deleted', { table: TABLE });
    } catch (err) {
      this.log.error('ip-masq: deleting the pod egress table failed', { table: TABLE, err });
    }
  }
}
