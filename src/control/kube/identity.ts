/**
 * Who this node is: its name (--node-name, else NODE_NAME from the downward API) and its pod
 * subnets (node.spec.podCIDRs, else spec.podCIDR; each must lie inside the cluster network).
 *
 * flannel exits with "pod cidr not assigned" and leaves the node crash-looping; userlay waits
 * instead: it logs why (API unreachable, node not found, no podCIDR yet, podCIDR outside the
 * network) once per change of reason, retries with backoff and stays not ready meanwhile.
 */
import type { V1Node } from '@kubernetes/client-node';
import { UserlayError, usageError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { Family } from '../../dataplane/net.js';
import { exponentialBackoff, sleep, systemClock, type Backoff, type Clock } from '../backoff.js';
import { apiStatus, type NodeApi } from './client.js';
import { nodeSubnets } from './desired-peers.js';

/** The node name from the flag or NODE_NAME; usageError('--node-name') when neither is set. */
export function resolveNodeName(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const name = flag ?? env['NODE_NAME'];
  if (name === undefined || name === '') throw usageError('--node-name', 'give --node-name or set NODE_NAME (downward API spec.nodeName)');
  if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(name)) throw usageError('--node-name', `"${name}" is not a valid Node name`);
  return name;
}

/** Why the own node is not usable yet. */
export type WaitReason = 'unreachable' | 'not-found' | 'no-podcidr' | 'bad-podcidr';

/** The own node, ready to use. */
export interface OwnNode {
  readonly node: V1Node;
  /** Own pod subnets of the enabled families, canonical. */
  readonly subnets: string[];
}

/** Options of waitForOwnNode. */
export interface WaitOptions {
  api: NodeApi;
  nodeName: string;
  networks: Partial<Record<Family, string>>;
  log: Logger;
  clock?: Clock;
  backoff?: Backoff;
  /** Called on every failed attempt with the kind of failure and a sentence. */
  onWaiting?(kind: WaitReason, message: string): void;
  /** Aborting ends the wait with UserlayError ECANCELED. */
  signal?: AbortSignal;
}

/** Check one fetched node: its subnets, or why not. */
export function ownSubnets(node: V1Node, networks: Partial<Record<Family, string>>): { subnets: string[] } | { kind: WaitReason; message: string } {
  const s = nodeSubnets(node, networks);
  if (typeof s !== 'string') return { subnets: s };
  return s.startsWith('no podCIDR assigned')
    ? { kind: 'no-podcidr', message: 'node has no podCIDR yet (is the controller-manager run with --allocate-node-cidrs and --cluster-cidr?)' }
    : { kind: 'bad-podcidr', message: s };
}

/** Wait (with backoff) until the own Node exists and has usable podCIDR(s). */
export async function waitForOwnNode(o: WaitOptions): Promise<OwnNode> {
  const clock = o.clock ?? systemClock;
  const backoff = o.backoff ?? exponentialBackoff({ initialMs: 500, maxMs: 15_000 });
  let lastMessage = '';
  for (;;) {
    if (o.signal?.aborted) throw new UserlayError('ECANCELED', `waiting for node ${o.nodeName}: stopped`);
    let kind: WaitReason;
    let message: string;
    try {
      const node = await o.api.getNode(o.nodeName);
      const r = ownSubnets(node, o.networks);
      if ('subnets' in r) {
        if (lastMessage !== '') o.log.info('own node usable', { node: o.nodeName, subnets: r.subnets });
        return { node, subnets: r.subnets };
      }
      ({ kind, message } = r);
    } catch (err) {
      const status = apiStatus((err as { cause?: unknown }).cause ?? err);
      kind = status === 404 ? 'not-found' : 'unreachable';
      message = status === 404 ? `node ${o.nodeName} does not exist (check --node-name / NODE_NAME)` : `API server: ${(err as Error).message}`;
    }
    if (message !== lastMessage) {
      o.log.warn('waiting for own node', { node: o.nodeName, reason: kind, detail: message });
      lastMessage = message;
    }
    o.onWaiting?.(kind, message);
    await sleep(clock, backoff.next(), o.signal);
  }
}
