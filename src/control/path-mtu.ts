/**
 * The pod (TUN) MTU when nodes' underlays differ: what the smallest path allows.
 *
 * Every node publishes the MTU of its underlay interface (kube: the Node annotation
 * `userlay.io/underlay-mtu`, lease.ts; static: a peers-file entry's `mtu`). The path to a peer
 * carries min(our underlay MTU, its underlay MTU) minus the backend's overhead for the underlay
 * family (backends.ts pathMtu); a peer that publishes nothing counts as having ours. With
 * `--mtu auto` the pod MTU is the smallest of these over all peers (ours alone without peers),
 * so a 9001-byte node and a 1500-byte one agree on 1450 (flannel #463, #841). An explicit
 * `--mtu N` is kept as given, with a warning naming the peer whose path is smaller.
 *
 * Design notes (a smaller peer joins while running): the TUN MTU is lowered at once and
 * subnet.env rewritten, so pods created from then on get the new MTU. Pods created earlier keep
 * theirs (a CNI plugin does not revisit a pod): their larger packets to that peer get ICMP
 * "fragmentation needed" / "packet too big" from the engine (native/src/engine.c, "Path MTU"),
 * and PMTU discovery takes it from there; packets to every other peer are unaffected. The MTU is
 * never raised while running (a peer leaving, or publishing a larger MTU, leaves it as it is):
 * a flapping node would otherwise make the MTU flap, and pods created meanwhile would end up
 * with MTUs all over the place. A restart picks the then-smallest path again.
 *
 * Bad input is ignored with a message naming the node and the field, and the peer counts as
 * having our MTU: not a number, below the underlay family's minimum (576 for IPv4, RFC 791;
 * 1280 for IPv6, RFC 8200), above 65535.
 */
import { MAX_MTU, encapOverhead, pathMtu, type Backend } from '../dataplane/backends.js';
import { parseIP, type Family } from '../dataplane/net.js';
import type { Peer } from '../dataplane/types.js';
import type { Logger } from '../log.js';

/** Smallest link MTU of an underlay by family (IPv4 576, RFC 791; IPv6 1280, RFC 8200 5). */
export const MIN_UNDERLAY_MTU: Record<Family, number> = { 4: 576, 6: 1280 };

/**
 * Check an underlay MTU a node published (`field` names where it was read, for the message).
 * Accepts a number or its decimal text. Returns the MTU, or the problem: "node "b" <field>:
 * "abc" is not a number" and the like.
 */
export function checkPublishedMtu(node: string, field: string, value: unknown, family: Family): { mtu: number } | { problem: string } {
  const where = `node "${node}" ${field}`;
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^[0-9]+$/.test(value.trim()) ? Number(value.trim()) : NaN;
  if (!Number.isInteger(n)) return { problem: `${where}: ${JSON.stringify(value)} is not a whole number of bytes` };
  const min = MIN_UNDERLAY_MTU[family];
  if (n < min) return { problem: `${where}: ${n} is below ${min}, the smallest IPv${family} link MTU` };
  if (n > MAX_MTU) return { problem: `${where}: ${n} is above ${MAX_MTU}` };
  return { mtu: n };
}

/** What the pod MTU is and why. */
export interface MtuDecision {
  /** The pod (TUN) MTU, bytes. */
  readonly mtu: number;
  /** "auto" (the smallest path) or "fixed" (--mtu N / Backend.MTU). */
  readonly mode: 'auto' | 'fixed';
  /** The node whose underlay limits the smallest path: this node's name, or a peer's. */
  readonly limitedBy: string;
  /** That node's underlay MTU (undefined when this node's cannot be read). */
  readonly underlayMtu: number | undefined;
  /** The smallest path MTU over all peers (undefined: unknown). */
  readonly smallestPath: number | undefined;
  /** One sentence for the log: the choice and its reason. */
  readonly reason: string;
  /** Set when a fixed MTU is larger than the path to a peer carries (a peer with a smaller underlay than ours). */
  readonly warning?: string;
}

/** What decideMtu works from. */
export interface MtuInput {
  readonly backend: Backend;
  /** This node: its name, underlay family (6 for a dual-stack underlay: the larger overhead) and
   *  underlay interface (MTU undefined when unreadable). */
  readonly nodeName: string;
  readonly family: Family;
  readonly underlay: { readonly iface: string; readonly mtu: number | undefined };
  /** --mtu N / Backend.MTU; undefined = auto. */
  readonly fixed?: number;
}

/**
 * The pod MTU for `peers` (each with its checked Peer.underlayMtu). Auto needs this node's
 * underlay MTU (the caller has made sure of it).
 */
export function decideMtu(input: MtuInput, peers: readonly Peer[]): MtuDecision {
  const local = input.underlay.mtu;
  let smallest = pathMtu(input.backend, input.family, local);
  let limitedBy = input.nodeName;
  let limitMtu = local;
  for (const p of peers) {
    // a dual-stack peer is reached over IPv6 too when we have an IPv6 underlay: its larger overhead counts
    const family = p.publicIPv6 !== undefined && input.family === 6 ? 6 : parseIP(p.publicIP).family;
    const path = pathMtu(input.backend, family, local, p.underlayMtu);
    if (path === undefined || (smallest !== undefined && path >= smallest)) continue;
    smallest = path;
    limitedBy = p.name;
    limitMtu = p.underlayMtu;
  }
  const overhead = encapOverhead(input.backend, input.family);
  const why = limitedBy === input.nodeName
    ? `this node's underlay ${input.underlay.iface} (MTU ${local ?? 'unknown'}) minus ${overhead} bytes of ${input.backend} overhead`
    : `peer ${limitedBy}'s underlay MTU ${limitMtu} (ours: ${input.underlay.iface} ${local}) minus ${overhead} bytes of ${input.backend} overhead`;
  if (input.fixed !== undefined) {
    // our own underlay alone is the caller's to warn about (host/mtu.ts resolveMtu says it with the numbers)
    const over = smallest !== undefined && input.fixed > smallest && limitedBy !== input.nodeName;
    return {
      mtu: input.fixed, mode: 'fixed', limitedBy, underlayMtu: limitMtu, smallestPath: smallest,
      reason: `MTU ${input.fixed} as configured${smallest === undefined ? '' : `; the smallest path carries ${smallest}: ${why}`}`,
      ...(over ? { warning: `MTU ${input.fixed} is larger than the path to ${limitedBy} carries (${smallest}: ${why}): `
        + 'larger packets with DF set (and all IPv6) get ICMP too big, others leave as fragmented datagrams' } : {}),
    };
  }
  const mtu = Math.min(smallest ?? MAX_MTU, MAX_MTU);
  return { mtu, mode: 'auto', limitedBy, underlayMtu: limitMtu, smallestPath: smallest, reason: `MTU ${mtu}: ${why}` };
}

/**
 * The pod MTU over time: decides on every peer set, lowers the TUN MTU when a smaller path
 * appears (auto), never raises it while running, and warns once per new limit when a fixed MTU
 * is larger than a path (see the design notes above).
 */
export class PodMtu {
  private decision: MtuDecision;
  private warned: string | undefined;
  /** The MTU whose lowering failed last (its error is logged once). */
  private failed: number | undefined;

  /**
   * @param initial the decision the TUN was created with.
   * @param lower called with a smaller auto decision: set the TUN MTU, rewrite subnet.env;
   *   when it throws the MTU stays as it was (and the next peer set tries again).
   */
  constructor(private readonly input: MtuInput, initial: MtuDecision, private readonly log: Logger,
    private readonly lower: (d: MtuDecision) => Promise<void> | void) {
    this.decision = initial;
    this.warnFixed(initial);
  }

  /** The decision in force. */
  current(): MtuDecision {
    return this.decision;
  }

  /** Decide for a new peer set; resolves once a lowered MTU is applied. */
  async update(peers: readonly Peer[]): Promise<void> {
    const next = decideMtu(this.input, peers);
    if (next.mode === 'fixed') {
      this.decision = next;
      this.warnFixed(next);
      return;
    }
    if (next.mtu >= this.decision.mtu) {
      if (next.mtu > this.decision.mtu) this.log.debug('a larger pod MTU would do now; kept until restart', { mtu: this.decision.mtu, possible: next.mtu });
      return;
    }
    try {
      await this.lower(next);
    } catch (err) {
      // every peer set tries again; the same refusal (e.g. below IPv6's 1280) is said once
      if (this.failed !== next.mtu) this.log.error('lowering the pod MTU failed; it stays', { mtu: this.decision.mtu, wanted: next.mtu, err });
      this.failed = next.mtu;
      return;
    }
    this.failed = undefined;
    this.log.warn(`pod MTU lowered to ${next.mtu} (pods created earlier keep theirs; ICMP too big tells them)`,
      { mtu: next.mtu, previous: this.decision.mtu, limitedBy: next.limitedBy, reason: next.reason });
    this.decision = next;
  }

  private warnFixed(d: MtuDecision): void {
    if (d.warning === undefined || this.warned === d.warning) return;
    this.warned = d.warning;
    this.log.warn(d.warning, { mtu: d.mtu, limitedBy: d.limitedBy, smallestPath: d.smallestPath });
  }
}
