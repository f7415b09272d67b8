/**
 * Which subnets of a set overlap: the question behind anti-spoofing (a peer may only send from
 * its own pod subnets, so no peer's subnet may cover ours or another peer's) and behind conflict
 * resolution in the control plane. One function for the data plane, which refuses any overlap,
 * and for the control plane, which picks a winner and skips the rest.
 *
 * Two CIDRs overlap exactly when one contains the other. Each subnet is written as a bit string
 * (see subnetBits): the subnets containing an entry are those whose bit strings are prefixes of
 * its own. With the distinct prefix lengths of a family known, each entry needs one map probe per
 * shorter length — O(n × lengths); a cluster has one or two lengths.
 */
import { type Cidr, familyBytes, parseCidr } from './net.js';

/** A subnet as "4:" or "6:" followed by its prefixLen network bits: a prefix of it is an ancestor. */
export function subnetBits(subnet: string | Cidr): string {
  const c = typeof subnet === 'string' ? parseCidr(subnet) : subnet;
  let bits = '';
  for (let i = 0; i < familyBytes(c.family) && bits.length < c.prefixLen; i++) bits += c.bytes[i]!.toString(2).padStart(8, '0');
  return `${c.family}:${bits.slice(0, c.prefixLen)}`;
}

/** One subnet of the set: its bits (subnetBits), who claims it, and its text for messages. */
export interface OwnedSubnet {
  readonly bits: string;
  readonly owner: number;
  readonly text: string;
}

/** An overlap seen from one owner: the other owner, and which of its own subnets is involved. */
export interface Overlap {
  readonly other: number;
  /** This owner's subnet that overlaps one of `other`. */
  readonly subnet: string;
  /** The other owner's subnet. */
  readonly otherSubnet: string;
}

/**
 * Every overlapping pair of subnets with different owners (equal subnets included), per owner:
 * owner -> the overlaps it takes part in. Owners with none are absent. Subnets of one owner may
 * overlap each other without being reported.
 */
export function overlaps(subnets: readonly OwnedSubnet[]): Map<number, Overlap[]> {
  const byBits = new Map<string, OwnedSubnet[]>();
  const lengths = new Map<string, Set<number>>(); // family tag ("4:") -> prefix lengths present
  for (const s of subnets) {
    const same = byBits.get(s.bits);
    if (same) same.push(s);
    else byBits.set(s.bits, [s]);
    const tag = s.bits.slice(0, 2);
    let l = lengths.get(tag);
    if (!l) lengths.set(tag, (l = new Set()));
    l.add(s.bits.length - 2);
  }
  const out = new Map<number, Overlap[]>();
  const add = (a: OwnedSubnet, b: OwnedSubnet) => {
    let l = out.get(a.owner);
    if (!l) out.set(a.owner, (l = []));
    l.push({ other: b.owner, subnet: a.text, otherSubnet: b.text });
  };
  for (const [bits, group] of byBits) {
    // equal subnets of different owners
    for (let i = 0; i < group.length; i++) {
      for (let j = i + 1; j < group.length; j++) {
        if (group[i]!.owner === group[j]!.owner) continue;
        add(group[i]!, group[j]!);
        add(group[j]!, group[i]!);
      }
    }
    // shorter subnets containing this one
    const tag = bits.slice(0, 2);
    const len = bits.length - 2;
    for (const l of lengths.get(tag)!) {
      if (l >= len) continue;
      for (const outer of byBits.get(bits.slice(0, 2 + l)) ?? []) {
        for (const inner of group) {
          if (inner.owner === outer.owner) continue;
          add(inner, outer);
          add(outer, inner);
        }
      }
    }
  }
  return out;
}
