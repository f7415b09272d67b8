/**
 * `userlay agent` in kube mode: the peer set comes from the Node objects of the cluster.
 *
 * Start-up, step by step (each step keeps /readyz at 503 with the reason until it is done):
 *   1. config: flags and net-conf (bad input: one line naming the field, exit 2)
 *   2. state: load the FDB snapshot and the VTEP MAC from --state-dir
 *   3. identity: fetch the own Node until it has podCIDR(s) inside the network, with backoff.
 *      API unreachable and a snapshot present: bring the data plane up from the snapshot now and
 *      keep forwarding while the retries go on.
 *   4. underlay: interface, bind address, public IP (flag > public-ip-overwrite annotation); with
 *      both cluster families also the IPv6 address of that interface (--public-ipv6), see
 *      control/underlay.ts
 *   5. data plane: open (or keep the one started from the snapshot when nothing changed)
 *   6. lease: merge-patch the annotations and NetworkUnavailable=False (retried until it works)
 *   7. informer + level-triggered sync: every change recomputes the peer set; each new set is
 *      applied to the data plane and saved to the snapshot
 *   8. the pod egress table (ip-masq on: replaced whole; off: a leftover one removed), subnet.env
 *      for the CNI plugin, then "agent ready"
 * Routing (net-conf Backend.DirectRouting, Backend.Type host-gw): after the underlay is picked,
 * protocol-85 routes a crashed run left on it are removed; every applied peer set (and the
 * periodic resync) decides per peer between a kernel route and the overlay
 * (src/control/host/direct-routes.ts). Forwarding from the snapshot before that routes nothing
 * directly (direct routing: all peers are encapsulated meanwhile; host-gw: none is routed).
 * SIGINT/SIGTERM: stop the informer (for good), delete the egress table, close the data plane,
 * exit 0. A crash leaves the egress table in place until the next start replaces it.
 */
import type { V1Node } from '@kubernetes/client-node';
import { UserlayError } from '../errors.js';
import { createLogger, type Logger } from '../log.js';
import type { Dataplane, DataplaneOptions, Peer } from '../dataplane/types.js';
import { BACKENDS } from '../dataplane/backends.js';
import { PodMtu, decideMtu, type MtuDecision } from '../control/path-mtu.js';
import { DirectRoutes, type RoutingMode, type RoutingStatus } from '../control/host/direct-routes.js';
import type { RouteOps } from '../control/host/routes.js';
import { exponentialBackoff, sleep, systemClock, type Clock } from '../control/backoff.js';
import { networkList } from '../control/net-conf.js';
import { SnapshotStore, type OwnLease, type Snapshot } from '../control/snapshot-store.js';
import { writeSubnetEnv } from '../control/subnet-env.js';
import { pickUnderlay, systemHost, underlayConflict, type Underlay, type UnderlayHost } from '../control/underlay.js';
import { IpMasq } from '../control/host/ip-masq.js';
import { systemNftables, type Nftables } from '../control/host/nftables.js';
import { systemSysctls } from '../control/host/sysctl.js';
import { createNodeApi, type NodeApi } from '../control/kube/client.js';
import { credentialsOf, helperCredentials, type KubeCredentials } from '../control/kube/credentials.js';
import { waitForOwnNode } from '../control/kube/identity.js';
import { makeNodeInformer, RestartingInformer, type NodeInformer } from '../control/kube/informer.js';
import { annotationNames, leasePatch, loadOrCreateVtepMac, publishLease, type LeaseInfo } from '../control/kube/lease.js';
import { PeerSync } from '../control/kube/sync.js';
import { formatUsage, wantsHelp } from './flags.js';
import { kubeAgentFlags, kubeAgentSynopsis, parseKubeConfig, type KubeAgentConfig } from './kube-config.js';
import { AGENT_METRICS, metricFamily, startStatusServer } from './status-server.js';
import type { NodeNetwork } from '../cni/plugin.js';

/** What the agent talks to; tests replace any of them. */
export interface KubeAgentDeps {
  api: NodeApi;
  /** A Node informer whose list and watch go to the API server; onListed after each list. */
  makeInformer(onListed: () => void): NodeInformer;
  openDataplane(opts: DataplaneOptions, log: Logger): Promise<Dataplane>;
  host?: UnderlayHost;
  /** The host's nftables, for the pod egress table; absent: netfilter is not touched (tests). */
  nftables?: Nftables;
  /** Kernel routes (direct routing, host-gw); required when the net-conf asks for either. */
  routes?: RouteOps;
  clock?: Clock;
  /** Restart backoff of the informer (tests make it short). */
  informerBackoffMs?: { initialMs: number; maxMs: number };
  /** Hand freed malloc memory back to the kernel (malloc_trim); after each list and once a minute. */
  trimMemory?: () => void;
}

/** After a list, the trim waits this long for the GC to free the list's buffers, ms. */
const TRIM_AFTER_LIST_MS = 1000;
/** And it runs this often besides, ms: watch events leave freed malloc memory behind too. */
const TRIM_EVERY_MS = 60_000;

/** A running kube-mode agent. */
export class KubeAgent {
  private dp: Dataplane | undefined;
  private sync: PeerSync | undefined;
  private informer: RestartingInformer | undefined;
  private readonly abort = new AbortController();
  private readonly store: SnapshotStore;
  private readonly clock: Clock;
  private waiting = 'starting';
  private leasePublished = false;
  private republishing = false;
  private listed = false;
  private subnetEnvWritten = false;
  private own: OwnLease | undefined;
  private readonly ipMasq: IpMasq | undefined;
  private trimTimer: ReturnType<typeof setInterval> | undefined;
  private directRoutes: DirectRoutes | undefined;
  /** The pod MTU over time (src/control/path-mtu.ts), once the underlay is known. */
  private podMtu: PodMtu | undefined;
  /** The pod MTU subnet.env and the CNI plugin hand out (the last one decided). */
  private podMtuNow: number | undefined;
  /** Resolves when start-up finished (ready), rejects on a fatal start-up error. */
  readonly started: Promise<void>;

  constructor(readonly cfg: KubeAgentConfig, private readonly deps: KubeAgentDeps, private readonly log: Logger) {
    this.store = new SnapshotStore(cfg.stateDir);
    this.clock = deps.clock ?? systemClock;
    this.ipMasq = deps.nftables ? new IpMasq(deps.nftables, log) : undefined;
    this.started = this.run();
    this.started.catch(() => {});
  }

  /** The data plane, once up. */
  dataplane(): Dataplane | undefined {
    return this.dp;
  }

  /** Readiness: lease published, FDB synced from the API, TUN up, subnet.env written. */
  ready(): { ready: boolean; reasons: string[] } {
    const reasons: string[] = [];
    if (this.waiting !== '') reasons.push(this.waiting);
    if (!this.dp) reasons.push('data plane (TUN) not up');
    if (!this.leasePublished) reasons.push('lease not published');
    if (!this.listed || this.sync?.lastSyncAt === undefined) reasons.push('FDB not synced from the API server yet');
    if (!this.subnetEnvWritten) reasons.push('subnet.env not written');
    return { ready: reasons.length === 0, reasons };
  }

  /** The pod network for the CNI plugin once the agent is ready, else why not. */
  podNetwork(): NodeNetwork | { unavailable: string } {
    const r = this.ready();
    if (!r.ready || !this.own) return { unavailable: r.reasons.join('; ') || 'starting' };
    return { subnets: this.own.subnets, networks: this.own.networks, mtu: this.podMtuNow ?? this.own.mtu };
  }

  /** The pod MTU in force and why, once decided. */
  mtu(): MtuDecision | undefined {
    return this.podMtu?.current();
  }

  /** Extra Prometheus families: informer restarts, last sync time, desired peers, readiness. */
  metrics(): string {
    const M = AGENT_METRICS;
    const last = this.sync?.lastSyncAt;
    // lastSyncAt is on the agent's clock; the metric is wall time
    const lastWall = last === undefined ? 0 : (Date.now() - (this.clock.now() - last)) / 1000;
    return [
      metricFamily(M.informerRestarts, [{ value: this.informer?.restarts ?? 0 }]),
      metricFamily(M.lastSync, [{ value: Math.round(lastWall * 1000) / 1000 }]),
      metricFamily(M.desiredPeers, [{ value: this.sync?.current().length ?? 0 }]),
      metricFamily(M.ready, [{ value: this.ready().ready ? 1 : 0 }]),
    ].join('');
  }

  /** How peers are reached, when some are routed by the kernel (direct routing, host-gw). */
  routing(): RoutingStatus | undefined {
    return this.directRoutes?.status();
  }

  /** Stop: informer (for good), sync timers, pod egress table, direct routes, data plane. Idempotent. */
  async stop(): Promise<void> {
    this.abort.abort();
    clearInterval(this.trimTimer);
    this.sync?.stop();
    await this.informer?.stop();
    await this.store.flush();
    await this.ipMasq?.remove();
    this.directRoutes?.close();
    const dp = this.dp;
    this.dp = undefined;
    await dp?.close();
  }

  private get stopped(): boolean {
    return this.abort.signal.aborted;
  }

  private async run(): Promise<void> {
    const { cfg, log } = this;
    const netConf = cfg.netConf;
    let snapshot: Snapshot | undefined;
    try {
      snapshot = await this.store.load();
    } catch (err) {
      log.warn('ignoring unreadable FDB snapshot', { err });
    }
    if (snapshot && (snapshot.own.nodeName !== cfg.nodeName || snapshot.own.backend !== netConf.backend)) {
      log.warn('ignoring FDB snapshot of another node or backend', { snapshotNode: snapshot.own.nodeName, backend: snapshot.own.backend });
      snapshot = undefined;
    }
    const vtepMAC = await loadOrCreateVtepMac(cfg.stateDir, log);

    // 3. identity; with the API down, forward from the snapshot meanwhile
    let fromSnapshot: Promise<void> | undefined;
    const ownNode = await waitForOwnNode({
      api: this.deps.api, nodeName: cfg.nodeName, networks: netConf.networks, log, clock: this.clock, signal: this.abort.signal,
      onWaiting: (kind, message) => {
        this.waiting = `own node not usable: ${message}`;
        if (kind === 'unreachable' && snapshot && !this.dp && !fromSnapshot) fromSnapshot = this.startFromSnapshot(snapshot);
      },
    });
    await fromSnapshot;
    if (this.stopped) return;
    this.waiting = '';

    // 4. underlay, MTU
    const names = annotationNames(cfg.prefix);
    const preferred = netConf.networks[4] !== undefined ? 4 : 6;
    // both cluster families: an underlay address of each, as flannel's dual stack
    const dualStack = netConf.networks[4] !== undefined && netConf.networks[6] !== undefined;
    const host = this.deps.host ?? systemHost;
    const ranges = [
      ...networkList(netConf).map((cidr) => ({ field: 'net-conf Network', cidr })),
      ...ownNode.subnets.map((cidr) => ({ field: 'podCIDR', cidr })),
    ];
    let underlay: Underlay;
    for (let logged = '';;) {
      underlay = await pickUnderlay({
        iface: cfg.iface, ifaceRegex: cfg.ifaceRegex, ifaceCanReach: cfg.ifaceCanReach, publicIP: cfg.publicIP,
        publicIPOverwrite: ownNode.node.metadata?.annotations?.[names.publicIPOverwrite[preferred]], family: preferred,
        dualStack, publicIPv6: cfg.publicIPv6, publicIPv6Overwrite: ownNode.node.metadata?.annotations?.[names.publicIPOverwrite[6]],
      }, host);
      // a cluster range over the underlay would swallow the agent's own datagrams: stay unready
      const conflict = underlayConflict(ranges, underlay.bindIP, host, underlay.publicIP)
        ?? (underlay.bindIPv6 !== undefined ? underlayConflict(ranges, underlay.bindIPv6, host, underlay.publicIPv6) : undefined);
      if (conflict === undefined) break;
      this.waiting = `${conflict.field}: ${conflict.message}`;
      if (this.waiting !== logged) log.error('cluster network overlaps the underlay; not starting the data plane', { field: conflict.field, reason: conflict.message });
      logged = this.waiting;
      await sleep(this.clock, 10_000, this.abort.signal);
      if (this.stopped) return;
    }
    this.waiting = '';
    if (netConf.mtu === undefined && underlay.mtu === undefined) {
      throw new UserlayError('EUSAGE', `cannot read the MTU of ${underlay.iface} (/sys/class/net/${underlay.iface}/mtu): set net-conf Backend.MTU or --mtu`);
    }
    // the data plane starts with what our own underlay allows (dual stack: with the IPv6 underlay's
    // larger overhead); the first sync lowers it when a peer's path is smaller
    // (src/control/path-mtu.ts), so the own lease stays the same across restarts
    const mtuInput = {
      backend: netConf.backend, nodeName: cfg.nodeName, family: underlay.bindIPv6 !== undefined ? 6 : underlay.family, underlay: { iface: underlay.iface, mtu: underlay.mtu },
      ...(netConf.mtu !== undefined ? { fixed: netConf.mtu } : {}),
    };
    const firstMtu = decideMtu(mtuInput, []);
    if (firstMtu.mode === 'fixed' && firstMtu.smallestPath !== undefined && firstMtu.mtu > firstMtu.smallestPath) {
      log.warn(`Backend.MTU ${firstMtu.mtu} is larger than underlay ${underlay.iface} (MTU ${underlay.mtu}) carries: ${firstMtu.smallestPath}; `
        + 'larger packets with DF set (and all IPv6) get ICMP too big, others leave as fragmented datagrams', { mtu: firstMtu.mtu, smallestPath: firstMtu.smallestPath });
    }
    const mtu = firstMtu.mtu;
    const own: OwnLease = {
      nodeName: cfg.nodeName, subnets: ownNode.subnets, networks: networkList(netConf), publicIP: underlay.bindIP,
      ...(underlay.bindIPv6 !== undefined ? { publicIPv6: underlay.bindIPv6 } : {}),
      vtepMAC, backend: netConf.backend, vni: netConf.vni, port: netConf.port, mtu,
      ...(underlay.mtu !== undefined ? { underlayMtu: underlay.mtu } : {}),
    };
    this.own = own;
    log.info('underlay', {
      iface: underlay.iface, bindIP: underlay.bindIP, publicIP: underlay.publicIP, how: underlay.how, underlayMTU: underlay.mtu,
      ...(underlay.bindIPv6 !== undefined ? { bindIPv6: underlay.bindIPv6, publicIPv6: underlay.publicIPv6 } : {}),
    });
    if (underlay.dualStackProblem !== undefined) log.warn('dual-stack cluster, but no IPv6 underlay: IPv6 pods travel over IPv4 (flannel-v6.1 peers cannot be reached)', { reason: underlay.dualStackProblem });

    // routes to on-link peers (direct routing, host-gw): a crashed run's are removed first
    const mode = routingMode(netConf.backend, netConf.directRouting === true);
    if (mode !== 'overlay' && !this.directRoutes) {
      if (!this.deps.routes) throw new UserlayError('EUSAGE', `${netConf.backend}${mode === 'direct-routing' ? ' with DirectRouting' : ''} needs kernel routes, and this agent has no route access`);
      this.directRoutes = new DirectRoutes(this.deps.routes, host, underlay.iface, mode, log);
      this.directRoutes.start();
    }
    const routes = this.directRoutes;

    // 5. data plane (reuse the snapshot's when the lease is the same)
    if (this.dp && !sameLease(snapshot?.own, own)) {
      log.warn('own lease changed since the snapshot; restarting the data plane', { subnets: own.subnets });
      const old = this.dp;
      this.dp = undefined;
      await old.close();
    }
    if (!this.dp) {
      this.dp = await this.deps.openDataplane(dataplaneOptions(cfg, own), log);
      if (snapshot && sameLease(snapshot.own, own)) {
        this.dp.setPeers(routes ? routes.apply(snapshot.peers) : snapshot.peers);
        log.info('forwarding from the FDB snapshot until the first sync', { peers: snapshot.peers.length });
      }
    }
    if (this.stopped) return this.stop();
    const opened = this.dp;
    this.podMtuNow = mtu;
    const podMtu = new PodMtu(mtuInput, firstMtu, log, async (d) => {
      opened.setMtu(d.mtu);
      this.podMtuNow = d.mtu;
      if (this.subnetEnvWritten) await this.writeSubnetEnv(own);
    });
    this.podMtu = podMtu;

    // 6. lease
    const lease: LeaseInfo = {
      backend: own.backend, vni: own.vni, vtepMAC, publicIP: underlay.publicIP, family: underlay.family,
      ...(underlay.mtu !== undefined ? { underlayMtu: underlay.mtu } : {}),
      ...(underlay.publicIPv6 !== undefined ? { publicIPv6: underlay.publicIPv6 } : {}),
      partialCsum: true, // both engines' receive paths take them (native/src/csum.c)
    };
    await this.retry('publish lease', () => publishLease(this.deps.api, cfg.nodeName, cfg.prefix, lease, log));
    this.leasePublished = true;
    if (this.stopped) return;

    // 7. informer + sync
    const dp = this.dp;
    const trim = this.deps.trimMemory;
    const informer = this.deps.makeInformer(() => {
      this.listed = true;
      sync.trigger();
      // a list leaves tens of MB of freed malloc memory (response chunks) that glibc keeps
      if (trim) setTimeout(trim, TRIM_AFTER_LIST_MS).unref();
    });
    if (trim) this.trimTimer = setInterval(trim, TRIM_EVERY_MS).unref();
    const sync = new PeerSync({
      cache: informer,
      config: { nodeName: cfg.nodeName, prefix: cfg.prefix, backend: own.backend, networks: netConf.networks, ownSubnets: own.subnets,
        underlayFamilies: underlay.publicIPv6 !== undefined ? [underlay.family, 6] : [underlay.family],
        ownPublicIP: underlay.publicIP, ...(underlay.publicIPv6 !== undefined ? { ownPublicIPv6: underlay.publicIPv6 } : {}), ownVtepMAC: vtepMAC },
      apply: async (peers: readonly Peer[]) => {
        dp.setPeers(routes ? routes.apply(peers) : peers);
        this.store.saveLatest(own, peers, (err) => log.error('saving the FDB snapshot failed', { err }));
        await podMtu.update(peers);
      },
      log, clock: this.clock, resyncMs: cfg.resyncMs, initial: dp.peers(), cacheSynced: () => this.listed,
    });
    this.sync = sync;
    informer.on('change', () => sync.trigger());
    const ownChanged = (node: V1Node): void => {
      if (node.metadata?.name === cfg.nodeName) this.checkOwnLease(node, lease);
    };
    informer.on('add', ownChanged);
    informer.on('update', ownChanged);
    const backoff = this.deps.informerBackoffMs;
    this.informer = new RestartingInformer({ informer, log, clock: this.clock, ...(backoff ? { backoff: exponentialBackoff(backoff) } : {}) });
    await this.informer.start();
    sync.start();
    if (this.stopped) return this.stop();

    // 8. pod egress, subnet.env
    await this.retry('ip-masq', () => this.applyIpMasq(own));
    await this.retry('write subnet.env', () => this.writeSubnetEnv(own));
    this.subnetEnvWritten = true;
    while (!this.ready().ready && !this.stopped) await sleep(this.clock, 50, this.abort.signal);
    if (this.stopped) return;
    log.info('agent ready', {
      tun: dp.tunName, mtu: dp.mtu(), podMTU: this.podMtuNow, backend: own.backend, engine: cfg.engine, publicIP: underlay.publicIP,
      subnets: own.subnets, vtepMAC, peers: sync.current().length, ipMasq: cfg.ipMasq,
    });
    log.info(`pods must use MTU ${this.podMtuNow}`, { podMTU: this.podMtuNow, limitedBy: podMtu.current().limitedBy, reason: podMtu.current().reason });
  }

  /** Write subnet.env with the pod MTU now; again when it changed meanwhile (a peer lowered it). */
  private async writeSubnetEnv(own: OwnLease): Promise<void> {
    const netConf = this.cfg.netConf;
    let mtu: number;
    do {
      mtu = this.podMtuNow ?? own.mtu;
      await writeSubnetEnv(this.cfg.subnetFile, { networks: netConf.networks, ownSubnets: own.subnets, mtu, ipMasq: this.cfg.ipMasq });
    } while (mtu !== (this.podMtuNow ?? own.mtu));
  }

  /**
   * Re-publish the lease when the own Node lost or changed its annotations (the Node was
   * deleted and re-registered, or someone edited them). One re-publish runs at a time.
   */
  private checkOwnLease(node: V1Node, lease: LeaseInfo): void {
    if (this.republishing || this.stopped) return;
    const want = (leasePatch(this.cfg.prefix, lease) as { metadata: { annotations: Record<string, string | null> } }).metadata.annotations;
    const have = node.metadata?.annotations ?? {};
    // null in the patch: the other family's lease, which must be absent
    if (Object.entries(want).every(([k, v]) => (v === null ? have[k] === undefined : have[k] === v))) return;
    this.republishing = true;
    this.log.warn('own lease annotations missing or changed; publishing again', { node: this.cfg.nodeName });
    void this.retry('publish lease', () => publishLease(this.deps.api, this.cfg.nodeName, this.cfg.prefix, lease, this.log))
      .catch((err: unknown) => this.log.error('re-publishing the lease failed', { err }))
      .finally(() => { this.republishing = false; });
  }

  private async startFromSnapshot(snapshot: Snapshot): Promise<void> {
    try {
      const dp = await this.deps.openDataplane(dataplaneOptions(this.cfg, snapshot.own), this.log);
      if (this.stopped) {
        await dp.close();
        return;
      }
      // no underlay picked yet, so no direct routes: host-gw routes nothing, the others encapsulate
      dp.setPeers(BACKENDS[snapshot.own.backend].encapsulates ? snapshot.peers : []);
      this.dp = dp;
      // pods keep their egress while the API is away (a failure is retried once the API is back)
      await this.applyIpMasq(snapshot.own).catch((err: unknown) => this.log.error('ip-masq from the FDB snapshot failed', { err }));
      this.log.warn('API server unreachable: forwarding from the FDB snapshot', { peers: snapshot.peers.length, savedAt: new Date(snapshot.savedAt).toISOString() });
    } catch (err) {
      this.log.error('starting from the FDB snapshot failed', { err });
    }
  }

  /** Make the pod egress table match `own` and the ip-masq setting. */
  private async applyIpMasq(own: OwnLease): Promise<void> {
    await this.ipMasq?.apply({ enabled: this.cfg.ipMasq, podSubnets: own.subnets, networks: own.networks });
  }

  private async retry(what: string, fn: () => Promise<void>): Promise<void> {
    const backoff = exponentialBackoff({ initialMs: 500, maxMs: 15_000 });
    for (;;) {
      if (this.stopped) return;
      try {
        await fn();
        if (this.waiting.startsWith(what)) this.waiting = '';
        return;
      } catch (err) {
        if (err instanceof UserlayError && err.code === 'EUSAGE') throw err;
        this.waiting = `${what} failed: ${(err as Error).message}`;
        this.log.warn(`${what} failed; retrying`, { err });
        await sleep(this.clock, backoff.next(), this.abort.signal);
      }
    }
  }
}

/** How peers are reached for a backend and the DirectRouting setting. */
export function routingMode(backend: OwnLease['backend'], directRouting: boolean): RoutingMode {
  if (!BACKENDS[backend].encapsulates) return 'routes-only';
  return directRouting ? 'direct-routing' : 'overlay';
}

function sameLease(a: OwnLease | undefined, b: OwnLease): boolean {
  return a !== undefined && JSON.stringify({ ...a }) === JSON.stringify({ ...b });
}

function dataplaneOptions(cfg: KubeAgentConfig, own: OwnLease): DataplaneOptions {
  return {
    backend: own.backend, engine: cfg.engine, offloads: cfg.offloads, threads: cfg.threads ?? 1, tunName: cfg.tunName, mtu: own.mtu, publicIP: own.publicIP,
    ...(own.publicIPv6 !== undefined ? { publicIPv6: own.publicIPv6 } : {}), port: own.port, vni: own.vni, vtepMAC: own.vtepMAC, ownSubnets: own.subnets, networks: own.networks,
    ...(own.underlayMtu !== undefined ? { underlayMtu: own.underlayMtu } : {}),
  };
}

/**
 * The real dependencies: client-node's credentials for --kubeconfig or in-cluster, the real
 * data plane. Credentials come from the credential helper, so that client-node's ~42 MB stay
 * out of the agent (credentials.ts); a kubeconfig that cannot be loaded is a usage error here.
 * A cluster behind a proxy-url needs client-node's proxy agent: it is loaded in process then.
 */
export async function realDeps(cfg: KubeAgentConfig, log: Logger): Promise<KubeAgentDeps> {
  let creds: KubeCredentials = helperCredentials({ kubeconfig: cfg.kubeconfig });
  try {
    const first = await creds.get();
    if (first.proxyUrl !== undefined) {
      log.info('the cluster has a proxy-url: client-node runs in the agent', { proxyUrl: first.proxyUrl });
      const { loadKubeConfig } = await import('../control/kube/kubeconfig.js');
      creds = credentialsOf(loadKubeConfig(cfg.kubeconfig));
    }
  } catch (err) {
    if (err instanceof UserlayError && err.code === 'EUSAGE') throw err;
    // the kubeconfig loaded but no credentials yet (an exec plugin failing...): the requests retry
    log.warn('no API credentials yet; retrying with the requests', { err });
  }
  const api = createNodeApi(creds);
  const { openDataplane } = await import('../dataplane/dataplane.js');
  const { loadAddon } = await import('../dataplane/addon.js');
  return {
    api,
    trimMemory: () => { loadAddon().mallocTrim(); },
    makeInformer: (onListed) => makeNodeInformer(creds, { onListed, annotationPrefix: cfg.prefix, log }),
    openDataplane: (opts, l) => openDataplane(opts, l, undefined, systemSysctls),
    nftables: systemNftables(),
    ...(routingMode(cfg.netConf.backend, cfg.netConf.directRouting === true) !== 'overlay' ? { routes: loadAddon() } : {}),
  };
}

/** Run kube mode until SIGINT/SIGTERM. Rejects on bad input (before configuring anything). */
export async function runKubeAgent(argv: string[]): Promise<void> {
  if (wantsHelp(argv)) {
    process.stdout.write(formatUsage(kubeAgentFlags, kubeAgentSynopsis));
    return;
  }
  const cfg = await parseKubeConfig(argv);
  const log = createLogger(cfg.logLevel).with({ node: cfg.nodeName });
  const agent = new KubeAgent(cfg, await realDeps(cfg, log), log);
  const status = cfg.statusAddr === undefined ? undefined : await startStatusServer(cfg.statusAddr, {
    dataplane: () => agent.dataplane(), ready: () => agent.ready(), metrics: () => agent.metrics(), routing: () => agent.routing(), mtu: () => agent.mtu(),
  }, log).catch(async (err: unknown) => {
    await agent.stop();
    throw err;
  });
  // the CNI endpoint comes up at once: DELs are served (and queued ones replayed) while the
  // agent starts; ADD and STATUS answer 50 until it is ready
  const cni = cfg.cni?.socket === undefined ? undefined : await (await import('../cni/server.js')).startCniServer({
    socket: cfg.cni.socket, stateDir: cfg.cni.stateDir, network: () => agent.podNetwork(), log,
  }).catch(async (err: unknown) => {
    await status?.close();
    await agent.stop();
    throw err;
  });
  const keepAlive = setInterval(() => {}, 1 << 30);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info('stopping', { signal });
    clearInterval(keepAlive);
    void (async () => {
      try {
        await cni?.close();
        await status?.close();
        await agent.stop();
      } finally {
        process.exit(0);
      }
    })();
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  try {
    await agent.started;
  } catch (err) {
    if (stopping) return; // SIGTERM while starting: the stop handler exits 0
    clearInterval(keepAlive);
    await cni?.close();
    await status?.close();
    await agent.stop();
    throw err;
  }
}
