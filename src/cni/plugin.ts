/**
 * The userlay CNI plugin, run inside the agent: cmdAdd, cmdDel, cmdCheck, cmdStatus, cmdGc
 * (VERSION is answered by the shim, and here too for completeness).
 *
 * ADD delegates the way flannel's plugin does: a `bridge` config (isGateway, hairpinMode, the
 * agent's pod MTU, ipMasq off unless the conflist asks for it) with `host-local` IPAM (ranges: the node's pod
 * subnet(s); routes: the cluster network(s)), run from the runtime's CNI_PATH. The delegate
 * config is recorded per attachment (attachments.ts) before the delegate runs, and DEL, CHECK
 * and GC use the record.
 *
 *   ADD    node network known (else 50) -> record -> bridge ADD -> result inside the subnet?
 *          any failure: bridge DEL, drop the record (rollback), then the error
 *   DEL    no record: success (unknown container, second DEL); else bridge DEL with the
 *          record's config (netns gone: released without it), then drop the record
 *   CHECK  (0.4.0+) record must exist (else 3); bridge CHECK with the record and prevResult
 *   STATUS node network known and the delegates present in CNI_PATH, else 50
 *   GC     (1.1.0) DEL every record of this network that is not in cni.dev/valid-attachments;
 *          then GC is forwarded to the delegate if it speaks 1.1.0
 *
 * Requests for one attachment are serialised; different attachments run concurrently.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../log.js';
import { cidrContains, familyBytes, formatIP, parseCidr } from '../dataplane/net.js';
import { AttachmentStore, type AttachmentRecord } from './attachments.js';
import { parseEnv, parseNetworkConfig, type CniEnv, type NetworkConfig } from './config.js';
import { runDelegate, findPlugin, type DelegateEnv, type DelegateRunner } from './delegate.js';
import { CniCode, CniError, errorObject } from './errors.js';
import type { CniRequest } from './protocol.js';
import { atLeast, delegateVersion, SUPPORTED_VERSIONS, versionResult } from './version.js';

/** The node's pod network as the agent knows it now. */
export interface NodeNetwork {
  /** Own pod subnets (CIDR), at most one per family. */
  readonly subnets: readonly string[];
  /** Cluster networks (CIDR), routed from the pods through the bridge. */
  readonly networks: readonly string[];
  /** Pod MTU in bytes. */
  readonly mtu: number;
}

/** What the plugin asks the agent: the network, or why pods cannot be attached now. */
export type NodeNetworkState = () => NodeNetwork | { readonly unavailable: string };

/** Options of the plugin. */
export interface CniPluginOptions {
  /** Records, host-local's default dataDir (networks/) and the DEL queue (queue/) live here. */
  readonly stateDir: string;
  readonly network: NodeNetworkState;
  readonly log: Logger;
  /** Default bridge name (default "ulbr0"). */
  readonly bridge?: string;
  /** Replaces the delegate runner (tests). */
  readonly delegate?: DelegateRunner;
}

/** An answer for the shim: exit code and stdout. */
export interface CniAnswer {
  readonly exitCode: number;
  readonly stdout: string;
}

/** Default bridge name on the node. */
export const DEFAULT_BRIDGE = 'ulbr0';
const DELEGATE = 'bridge';
const IPAM = 'host-local';

/** The plugin. */
export class CniPlugin {
  private readonly store: AttachmentStore;
  private readonly delegate: DelegateRunner;
  private readonly locks = new Map<string, Promise<void>>();

  constructor(private readonly opts: CniPluginOptions) {
    this.store = new AttachmentStore(opts.stateDir);
    this.delegate = opts.delegate ?? runDelegate;
  }

  /** The attachment records (tests, GC). */
  records(): Promise<AttachmentRecord[]> {
    return this.store.list();
  }

  /** Serve one request. Never throws: errors become the spec's error object and exit code 1. */
  async handle(req: CniRequest): Promise<CniAnswer> {
    let version = peekVersion(req.config);
    try {
      const env = parseEnv(req.env);
      if (env.command === 'VERSION') return ok(versionResult(version));
      const conf = parseNetworkConfig(req.config);
      version = conf.cniVersion;
      switch (env.command) {
        case 'ADD': return ok(await this.locked(env, () => this.cmdAdd(env, conf)));
        case 'DEL': await this.locked(env, () => this.cmdDel(env, conf)); return ok(undefined);
        case 'CHECK': await this.locked(env, () => this.cmdCheck(env, conf)); return ok(undefined);
        case 'STATUS': await this.cmdStatus(env); return ok(undefined);
        case 'GC': await this.cmdGc(env, conf); return ok(undefined);
      }
    } catch (err) {
      const obj = errorObject(version, err);
      this.opts.log.warn('CNI request failed', {
        command: req.env['CNI_COMMAND'], containerID: req.env['CNI_CONTAINERID'], ifname: req.env['CNI_IFNAME'],
        code: obj['code'], err: obj['msg'],
      });
      return { exitCode: 1, stdout: JSON.stringify(obj) + '\n' };
    }
  }

  private network(): NodeNetwork {
    const n = this.opts.network();
    if ('unavailable' in n) {
      throw new CniError(CniCode.notAvailable, `userlay agent is not ready: ${n.unavailable}`);
    }
    if (n.subnets.length === 0) {
      throw new CniError(CniCode.notAvailable, 'userlay agent is not ready: this node has no pod subnet yet');
    }
    return n;
  }

  /** The delegate config for a new attachment. */
  delegateConfig(conf: NetworkConfig, net: NodeNetwork): Record<string, unknown> {
    return {
      cniVersion: delegateVersion(conf.cniVersion),
      name: conf.name,
      type: DELEGATE,
      bridge: conf.bridge ?? this.opts.bridge ?? DEFAULT_BRIDGE,
      isGateway: true,
      isDefaultGateway: conf.isDefaultGateway,
      hairpinMode: conf.hairpinMode,
      // off: pod egress is masqueraded by the agent (--ip-masq, its nftables table); bridge's
      // would also NAT pod-to-pod traffic to other nodes. Only an explicit conflist key sets it.
      ipMasq: conf.ipMasq ?? false,
      mtu: net.mtu,
      ipam: {
        type: IPAM,
        ranges: net.subnets.map((subnet) => [{ subnet, gateway: gatewayOf(subnet) }]),
        // the gateway spelled out: bridge's CHECK compares it with the pod's routing table
        routes: net.networks.flatMap((dst) => {
          const own = net.subnets.find((s) => parseCidr(s).family === parseCidr(dst).family);
          return own ? [{ dst, gw: gatewayOf(own) }] : [];
        }),
        dataDir: conf.dataDir ?? path.join(this.opts.stateDir, 'networks'),
      },
      ...(conf.runtimeConfig ? { runtimeConfig: conf.runtimeConfig } : {}),
    };
  }

  private async cmdAdd(env: CniEnv, conf: NetworkConfig): Promise<Record<string, unknown>> {
    const net = this.network();
    const existing = await this.store.get(env.containerID, env.ifname);
    const rec: AttachmentRecord = existing ?? {
      version: 1, network: conf.name, containerID: env.containerID, ifname: env.ifname, netns: env.netns,
      cniPath: env.path, args: env.args, delegate: this.delegateConfig(conf, net), addedAt: Date.now(),
    };
    await this.store.put(rec);
    const denv = delegateEnv('ADD', env, rec);
    try {
      const result = await this.delegate(DELEGATE, denv, rec.delegate);
      if (!result) throw new CniError(CniCode.generic, `${DELEGATE} ADD printed no result`);
      checkInSubnets(result, net.subnets, rec);
      this.opts.log.info('pod attached', { containerID: env.containerID, ifname: env.ifname, netns: env.netns, ips: ipsOf(result) });
      return { ...result, cniVersion: conf.cniVersion };
    } catch (err) {
      await this.rollback(rec, denv, err);
      throw err;
    }
  }

  /** Undo a failed ADD: delegate DEL (it is idempotent), then the record. */
  private async rollback(rec: AttachmentRecord, denv: DelegateEnv, cause: unknown): Promise<void> {
    try {
      await this.delegate(DELEGATE, { ...denv, command: 'DEL' }, rec.delegate);
      await this.store.remove(rec.containerID, rec.ifname);
    } catch (err) {
      // keep the record: the runtime's DEL after the failed ADD retries the release
      this.opts.log.error('rolling back a failed ADD failed; the record stays for DEL', { containerID: rec.containerID, err, cause });
    }
  }

  private async cmdDel(env: CniEnv, conf: NetworkConfig): Promise<void> {
    const rec = await this.store.get(env.containerID, env.ifname);
    if (!rec) return; // unknown container, or a second DEL
    if (rec.network !== conf.name) return; // an attachment of another network with this ID and ifname
    await this.releaseRecord(rec, env, conf.prevResult);
    this.opts.log.info('pod detached', { containerID: env.containerID, ifname: env.ifname });
  }

  private async releaseRecord(rec: AttachmentRecord, env: CniEnv | undefined, prevResult: Record<string, unknown> | undefined): Promise<void> {
    const base: CniEnv = env ?? { command: 'DEL', containerID: rec.containerID, ifname: rec.ifname, netns: '', args: rec.args, path: rec.cniPath };
    // a netns that is gone is released without it (the kernel removed the veth with it)
    const netns = base.netns !== '' && existsSync(base.netns) ? base.netns : '';
    const denv = delegateEnv('DEL', { ...base, netns }, rec);
    const config = prevResult ? { ...rec.delegate, prevResult: { ...prevResult, cniVersion: rec.delegate['cniVersion'] } } : rec.delegate;
    await this.delegate(DELEGATE, denv, config);
    await this.store.remove(rec.containerID, rec.ifname);
  }

  private async cmdCheck(env: CniEnv, conf: NetworkConfig): Promise<void> {
    if (!atLeast(conf.cniVersion, '0.4.0')) {
      throw new CniError(CniCode.incompatibleVersion, `userlay: CHECK needs cniVersion 0.4.0 or later, not ${conf.cniVersion}`);
    }
    if (!conf.prevResult) throw new CniError(CniCode.invalidConfig, 'userlay: CHECK needs "prevResult" in the network config');
    const rec = await this.store.get(env.containerID, env.ifname);
    if (!rec || rec.network !== conf.name) {
      throw new CniError(CniCode.unknownContainer, `userlay: no attachment ${env.containerID}/${env.ifname} on network ${conf.name}`);
    }
    if (!existsSync(env.netns)) throw new CniError(CniCode.unknownContainer, `userlay: network namespace ${env.netns} does not exist`);
    const prev = { ...conf.prevResult, cniVersion: rec.delegate['cniVersion'] };
    await this.delegate(DELEGATE, delegateEnv('CHECK', env, rec), { ...rec.delegate, prevResult: prev });
  }

  private async cmdStatus(env: CniEnv): Promise<void> {
    this.network();
    await findPlugin(DELEGATE, env.path);
    await findPlugin(IPAM, env.path);
  }

  private async cmdGc(env: CniEnv, conf: NetworkConfig): Promise<void> {
    if (!atLeast(conf.cniVersion, '1.1.0')) {
      throw new CniError(CniCode.incompatibleVersion, `userlay: GC needs cniVersion 1.1.0, not ${conf.cniVersion}`);
    }
    if (!conf.validAttachments) throw new CniError(CniCode.invalidConfig, 'userlay: GC needs "cni.dev/valid-attachments"');
    const valid = new Set(conf.validAttachments.map((a) => `${a.containerID}/${a.ifname}`));
    const stale = (await this.store.list()).filter((r) => r.network === conf.name && !valid.has(`${r.containerID}/${r.ifname}`));
    const failed: string[] = [];
    for (const rec of stale) {
      const key: CniEnv = { command: 'DEL', containerID: rec.containerID, ifname: rec.ifname, netns: rec.netns, args: rec.args, path: env.path.length ? env.path : rec.cniPath };
      try {
        await this.locked(key, async () => {
          const still = await this.store.get(rec.containerID, rec.ifname);
          if (still) await this.releaseRecord(still, key, undefined);
        });
        this.opts.log.info('GC released a stale attachment', { containerID: rec.containerID, ifname: rec.ifname });
      } catch (err) {
        failed.push(`${rec.containerID}/${rec.ifname}: ${(err as Error).message}`);
      }
    }
    await this.forwardGc(env, conf);
    if (failed.length > 0) throw new CniError(CniCode.generic, `userlay: GC could not release ${failed.length} attachment(s)`, { details: failed.join('; ') });
  }

  /** GC for the delegate when it speaks 1.1.0 (older delegates were covered by the DELs above). */
  private async forwardGc(env: CniEnv, conf: NetworkConfig): Promise<void> {
    const n = this.opts.network();
    if ('unavailable' in n || n.subnets.length === 0) return;
    const denv: DelegateEnv = { command: 'VERSION', containerID: '', netns: '', ifname: '', args: '', path: env.path };
    const v = await this.delegate(DELEGATE, denv, { cniVersion: '1.0.0' }).catch(() => undefined);
    const speaks = Array.isArray(v?.['supportedVersions']) && (v['supportedVersions'] as unknown[]).includes('1.1.0');
    if (!speaks) return;
    const config = { ...this.delegateConfig(conf, n), cniVersion: '1.1.0', 'cni.dev/valid-attachments': conf.validAttachments };
    await this.delegate(DELEGATE, { ...denv, command: 'GC' }, config);
  }

  /** Run `fn` with the attachment's lock held (requests for one attachment run one at a time). */
  private async locked<T>(env: Pick<CniEnv, 'containerID' | 'ifname'>, fn: () => Promise<T>): Promise<T> {
    const key = `${env.containerID}/${env.ifname}`;
    const prev = this.locks.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => { release = resolve; });
    const tail = prev.then(() => mine);
    this.locks.set(key, tail);
    await prev;
    try {
      return await fn();
    } finally {
      release();
      if (this.locks.get(key) === tail) this.locks.delete(key);
    }
  }
}

/** The pod gateway of a subnet: its first address (the bridge's), as host-local picks by default. */
export function gatewayOf(subnet: string): string {
  const c = parseCidr(subnet);
  const bytes = Uint8Array.from(c.bytes);
  const last = familyBytes(c.family) - 1;
  bytes[last] = bytes[last]! | 1;
  return formatIP(c.family, bytes);
}

function ok(result: unknown): CniAnswer {
  return { exitCode: 0, stdout: result === undefined ? '' : JSON.stringify(result) + '\n' };
}

/** The config's cniVersion when it is readable and supported (for error objects), else 1.1.0. */
function peekVersion(config: Buffer): string {
  try {
    const v = (JSON.parse(config.toString()) as { cniVersion?: unknown }).cniVersion;
    if (typeof v === 'string' && (SUPPORTED_VERSIONS as readonly string[]).includes(v)) return v;
  } catch { /* reported by the real parse */ }
  return '1.1.0';
}

function delegateEnv(command: DelegateEnv['command'], env: CniEnv, rec: AttachmentRecord): DelegateEnv {
  return {
    command, containerID: env.containerID, netns: env.netns, ifname: env.ifname,
    args: env.args !== '' ? env.args : rec.args, path: env.path.length > 0 ? env.path : rec.cniPath,
  };
}

function ipsOf(result: Record<string, unknown>): string[] {
  const ips = result['ips'];
  return Array.isArray(ips) ? ips.map((i) => String((i as { address?: unknown }).address)) : [];
}

/** Every address of the result must lie in one of the node's subnets. */
function checkInSubnets(result: Record<string, unknown>, subnets: readonly string[], rec: AttachmentRecord): void {
  const ips = ipsOf(result);
  if (ips.length === 0) throw new CniError(CniCode.generic, `${DELEGATE} ADD returned no address for ${rec.containerID}`);
  for (const a of ips) {
    const addr = a.split('/')[0]!;
    if (!subnets.some((s) => cidrContains(s, addr))) {
      throw new CniError(CniCode.generic, `${DELEGATE} ADD gave ${a}, outside the node's pod subnets (${subnets.join(', ')})`);
    }
  }
}
