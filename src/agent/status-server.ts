/**
 * The agent's status HTTP server, shared by static and kube mode.
 *
 *   /healthz      200 "ok" while the process serves requests (liveness).
 *   /readyz       200 {"ready":true,"reasons":[]} or 503 with the reasons it is not ready.
 *   /metrics      Prometheus text exposition format 0.0.4, every family in AGENT_METRICS:
 *                 build info, per-peer tx/rx packets and bytes, drops by reason (all of them,
 *                 and per peer where the peer is known), FDB size, process memory and start
 *                 time, plus the kube-mode families from the sources. `promtool check metrics`
 *                 passes it (test/netns/metrics-promtool.test.ts).
 *   /debug/fdb    JSON: the peer set the data plane last applied, and (direct routing, host-gw)
 *                 how each peer is reached: `routing` {mode, iface, direct, overlay, notRouted}.
 *   /debug/stats  JSON: DataplaneStats with bigints as decimal strings.
 *
 * The server only reads: every request asks the sources afresh, so it never holds stale
 * state and needs no wiring beyond the three callbacks.
 *
 * Naming (prometheus.io/docs/practices/naming): `userlay_` prefix, base units in the name
 * (`_bytes`, `_seconds`), `_total` on counters and only there, `_info` for the constant-1 build
 * gauge, a point in time as `_timestamp_seconds`. A family never mixes a total with its
 * breakdown (sum() over it must not double count): drops by reason and drops by peer and
 * reason are two families.
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { usageError, wrapSystemError } from '../errors.js';
import type { Logger } from '../log.js';
import { parseListenAddress } from './agent-flags.js';
import { DROP } from '../dataplane/counters.js';
import type { CounterSet, Dataplane, DataplaneStats } from '../dataplane/types.js';
import type { RoutingStatus } from '../control/host/direct-routes.js';
import type { MtuDecision } from '../control/path-mtu.js';

/** What the status server reads on every request. */
export interface StatusSources {
  /** The running data plane, or undefined while it is not up yet. */
  dataplane(): Dataplane | undefined;
  /** Readiness and, when not ready, why (one short sentence per reason). */
  ready(): { ready: boolean; reasons: string[] };
  /** Extra Prometheus text lines (with their own HELP/TYPE lines), appended to /metrics. */
  metrics?(): string;
  /** How peers are reached, when the agent routes some by the kernel (direct routing, host-gw). */
  routing?(): RoutingStatus | undefined;
  /** The pod MTU in force and why (src/control/path-mtu.ts), once decided. */
  mtu?(): MtuDecision | undefined;
}

/** A running status server. */
export interface StatusServer {
  /** The address actually bound (numeric). */
  readonly address: string;
  /** The port actually bound (useful with port 0). */
  readonly port: number;
  /** Stop listening and drop open connections. Idempotent. */
  close(): Promise<void>;
}


/** Escape a Prometheus label value: backslash, double quote and newline. */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function labels(pairs: Record<string, string>): string {
  const parts = Object.entries(pairs).map(([k, v]) => `${k}="${escapeLabelValue(v)}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

/** One metric family of the agent: what /metrics announces in its HELP and TYPE lines. */
export interface MetricDef {
  readonly name: string;
  readonly type: 'counter' | 'gauge';
  readonly help: string;
  /** Label names its samples carry. */
  readonly labels: readonly string[];
}

/**
 * Every metric family the agent exports (static mode: all but the kube ones), by role. The
 * Grafana dashboard (deploy/grafana-dashboard.json) names only these; a unit test checks it.
 */
export const AGENT_METRICS = {
  buildInfo: { name: 'userlay_build_info', type: 'gauge', help: 'Always 1; the labels say which userlay and Node.js build this is.', labels: ['version', 'nodejs_version'] },
  txPackets: { name: 'userlay_tx_packets_total', type: 'counter', help: 'Packets encapsulated and sent to a peer.', labels: ['peer'] },
  txBytes: { name: 'userlay_tx_bytes_total', type: 'counter', help: 'Inner (pod) bytes sent to a peer.', labels: ['peer'] },
  rxPackets: { name: 'userlay_rx_packets_total', type: 'counter', help: 'Packets received from a peer and decapsulated.', labels: ['peer'] },
  rxBytes: { name: 'userlay_rx_bytes_total', type: 'counter', help: 'Inner (pod) bytes received from a peer.', labels: ['peer'] },
  dropped: { name: 'userlay_dropped_packets_total', type: 'counter', help: 'Packets dropped, by reason (every drop, whether or not its peer is known).', labels: ['reason'] },
  peerDropped: { name: 'userlay_peer_dropped_packets_total', type: 'counter', help: 'Packets dropped whose peer is known, by peer and reason (a subset of userlay_dropped_packets_total).', labels: ['peer', 'reason'] },
  fdbPeers: { name: 'userlay_fdb_peers', type: 'gauge', help: 'Peers in the FDB in force.', labels: [] },
  fdbRoutes: { name: 'userlay_fdb_routes', type: 'gauge', help: 'Pod-subnet routes in the FDB in force.', labels: [] },
  residentMemory: { name: 'process_resident_memory_bytes', type: 'gauge', help: 'Resident memory size in bytes.', labels: [] },
  startTime: { name: 'process_start_time_seconds', type: 'gauge', help: 'Start time of the process since the Unix epoch in seconds.', labels: [] },
  // segmentation offloads (src/dataplane/offloads.ts; native engine)
  offloadActive: { name: 'userlay_offload_active', type: 'gauge', help: 'Segmentation offloads in force (tso, uso, gro, gso, tun_gso, tun_uso).', labels: ['offload'] },
  offloadRefused: { name: 'userlay_offload_refused', type: 'gauge', help: 'Offloads asked for and refused by the kernel at setup.', labels: ['offload'] },
  tunGsoRefused: { name: 'userlay_tun_gso_refused_total', type: 'counter', help: 'GSO writes the TUN refused (EINVAL/EIO; the start probes included); then segmented in software.', labels: [] },
  tsoPackets: { name: 'userlay_tso_packets_total', type: 'counter', help: 'TSO/USO super-packets read from the TUN and split.', labels: [] },
  tsoSegments: { name: 'userlay_tso_segments_total', type: 'counter', help: 'Segments the TSO/USO split produced.', labels: [] },
  socketDrops: { name: 'userlay_udp_receive_drops_total', type: 'counter', help: 'Datagrams the kernel dropped at the receive sockets before userlay saw them, mostly because the receive queue was full (a UDP GRO buffer counts once).', labels: [] },
  sendSocketDrops: { name: 'userlay_udp_send_socket_drops_total', type: 'counter', help: 'Datagrams that reached the send-only sockets (the outer source ports), which take nothing in, and were dropped by the kernel: traffic nobody asked for, such as a flood aimed at a source port.', labels: [] },
  groBuffers: { name: 'userlay_udp_gro_buffers_total', type: 'counter', help: 'UDP GRO receive buffers holding 2 or more datagrams.', labels: [] },
  groDatagrams: { name: 'userlay_udp_gro_datagrams_total', type: 'counter', help: 'Datagrams in those buffers.', labels: [] },
  tunRuns: { name: 'userlay_tun_coalesced_writes_total', type: 'counter', help: 'Receive coalescing: super-packets written to the TUN with GSO, per protocol (a run of one flow\'s TCP segments or equal-sized UDP datagrams).', labels: ['proto'] },
  tunRunPackets: { name: 'userlay_tun_coalesced_packets_total', type: 'counter', help: 'Received packets carried in those super-packets, per protocol.', labels: ['proto'] },
  partialCsum: { name: 'userlay_partial_csum_packets_total', type: 'counter', help: 'Packets sent with the inner TCP/UDP checksum left partial, to peers that take it (userlay.io/partial-csum).', labels: [] },
  // routing modes (src/control/host/direct-routes.ts)
  peerRoute: { name: 'userlay_peer_route', type: 'gauge', help: 'Always 1 per peer; route says how it is reached: direct (kernel route), overlay (encapsulated) or none (not on-link under host-gw: not routed).', labels: ['peer', 'route'] },
  peersNotRouted: { name: 'userlay_peers_not_routed', type: 'gauge', help: 'Peers that get no route (host-gw: not on the underlay segment).', labels: [] },
  // pod MTU (src/control/path-mtu.ts)
  mtu: { name: 'userlay_mtu_bytes', type: 'gauge', help: 'The pod (TUN) MTU in force, bytes.', labels: [] },
  mtuLimit: { name: 'userlay_mtu_info', type: 'gauge', help: 'Always 1; why the pod MTU is what it is: mode auto (the smallest path) or fixed (--mtu N), limited_by the node whose underlay MTU (underlay_mtu) bounds the smallest path, smallest_path the bytes it carries.', labels: ['mode', 'limited_by', 'underlay_mtu', 'smallest_path'] },
  // kube mode (src/agent/kube-mode.ts)
  informerRestarts: { name: 'userlay_informer_restarts_total', type: 'counter', help: 'Node informer restarts after errors.', labels: [] },
  lastSync: { name: 'userlay_last_sync_timestamp_seconds', type: 'gauge', help: 'When the peer set was last reconciled with the API server, seconds since the Unix epoch (0: never).', labels: [] },
  desiredPeers: { name: 'userlay_desired_peers', type: 'gauge', help: 'Peers the last reconcile computed.', labels: [] },
  ready: { name: 'userlay_ready', type: 'gauge', help: '1 when /readyz answers 200, else 0.', labels: [] },
} as const satisfies Record<string, MetricDef>;

/** One sample of a family: its label values (by name) and value. */
export interface MetricSample {
  readonly labels?: Record<string, string>;
  readonly value: bigint | number;
}

/** One metric family in exposition format: HELP, TYPE, then one line per sample. */
export function metricFamily(def: MetricDef, samples: readonly MetricSample[]): string {
  const lines = [`# HELP ${def.name} ${def.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${def.name} ${def.type}`];
  for (const s of samples) lines.push(`${def.name}${labels(s.labels ?? {})} ${formatValue(s.value)}`);
  return lines.join('\n') + '\n';
}

function formatValue(v: bigint | number): string {
  if (typeof v === 'bigint') return v.toString();
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v > 0 ? '+Inf' : '-Inf';
  return String(v);
}

const startTimeSeconds = Math.round(performance.timeOrigin) / 1000;

/** package.json's version (this file runs from dist/src/agent/). */
function userlayVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

let version: string | undefined;

/** Build info and process metrics (every agent, data plane up or not). */
export function renderProcessMetrics(): string {
  const M = AGENT_METRICS;
  return [
    metricFamily(M.buildInfo, [{ labels: { version: (version ??= userlayVersion()), nodejs_version: process.version }, value: 1 }]),
    metricFamily(M.residentMemory, [{ value: process.memoryUsage.rss() }]),
    metricFamily(M.startTime, [{ value: startTimeSeconds }]),
  ].join('');
}

/** Render the data-plane metrics. Every drop reason is exported in the totals (zero too). */
export function renderDataplaneMetrics(stats: DataplaneStats): string {
  const M = AGENT_METRICS;
  const peers = Object.entries(stats.peers).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const perPeer = (pick: (c: CounterSet) => bigint) => peers.map(([peer, c]) => ({ labels: { peer }, value: pick(c) }));
  const reasons = new Set<string>([...Object.keys(DROP), ...Object.keys(stats.total.drops)]);
  const dropped = [...reasons].sort().map((reason) => ({ labels: { reason }, value: stats.total.drops[reason] ?? 0n }));
  const peerDropped: MetricSample[] = [];
  for (const [peer, c] of peers) {
    for (const [reason, value] of Object.entries(c.drops).sort()) peerDropped.push({ labels: { peer, reason }, value });
  }
  return [
    metricFamily(M.txPackets, perPeer((c) => c.txPackets)),
    metricFamily(M.txBytes, perPeer((c) => c.txBytes)),
    metricFamily(M.rxPackets, perPeer((c) => c.rxPackets)),
    metricFamily(M.rxBytes, perPeer((c) => c.rxBytes)),
    metricFamily(M.dropped, dropped),
    metricFamily(M.peerDropped, peerDropped),
    metricFamily(M.fdbPeers, [{ value: stats.fdbPeers }]),
    metricFamily(M.fdbRoutes, [{ value: stats.fdbRoutes }]),
    ...(stats.socketDrops !== undefined ? [metricFamily(M.socketDrops, [{ value: stats.socketDrops }])] : []),
    ...(stats.sendSocketDrops !== undefined ? [metricFamily(M.sendSocketDrops, [{ value: stats.sendSocketDrops }])] : []),
    ...(stats.offloads ? [offloadMetrics(stats.offloads)] : []),
  ].join('');
}

/** Offloads in force (1) and refused at setup (1), and the engine's offload counters. */
function offloadMetrics(o: NonNullable<DataplaneStats['offloads']>): string {
  const M = AGENT_METRICS;
  const c = o.counters;
  const active = [...o.active, ...(c.tunGso ? ['tun_gso'] : []), ...(c.tunUso ? ['tun_uso'] : [])];
  return [
    metricFamily(M.offloadActive, active.map((offload) => ({ labels: { offload }, value: 1 }))),
    metricFamily(M.offloadRefused, o.refused.map((offload) => ({ labels: { offload }, value: 1 }))),
    metricFamily(M.tunGsoRefused, [{ value: c.tunGsoRefused }]),
    metricFamily(M.tsoPackets, [{ value: c.tsoPackets }]),
    metricFamily(M.tsoSegments, [{ value: c.tsoSegments }]),
    metricFamily(M.groBuffers, [{ value: c.groBuffers }]),
    metricFamily(M.groDatagrams, [{ value: c.groDatagrams }]),
    metricFamily(M.tunRuns, [{ labels: { proto: 'tcp' }, value: c.tunTcpRuns }, { labels: { proto: 'udp' }, value: c.tunUdpRuns }]),
    metricFamily(M.tunRunPackets, [{ labels: { proto: 'tcp' }, value: c.tunTcpRunPackets }, { labels: { proto: 'udp' }, value: c.tunUdpRunPackets }]),
    metricFamily(M.partialCsum, [{ value: c.partialCsumPackets }]),
  ].join('');
}

/** The pod MTU and why. */
export function renderMtuMetrics(d: MtuDecision): string {
  const M = AGENT_METRICS;
  const info = { mode: d.mode, limited_by: d.limitedBy, underlay_mtu: String(d.underlayMtu ?? ''), smallest_path: String(d.smallestPath ?? '') };
  return metricFamily(M.mtu, [{ value: d.mtu }]) + metricFamily(M.mtuLimit, [{ labels: info, value: 1 }]);
}

/** How each peer is reached (direct routing, host-gw). */
export function renderRoutingMetrics(r: RoutingStatus): string {
  const M = AGENT_METRICS;
  const samples: MetricSample[] = [
    ...r.direct.map((peer) => ({ labels: { peer, route: 'direct' }, value: 1 })),
    ...r.overlay.map((peer) => ({ labels: { peer, route: 'overlay' }, value: 1 })),
    ...r.notRouted.map((u) => ({ labels: { peer: u.name, route: 'none' }, value: 1 })),
  ];
  return metricFamily(M.peerRoute, samples) + metricFamily(M.peersNotRouted, [{ value: r.notRouted.length }]);
}

/** JSON.stringify with bigints as decimal strings. */
export function jsonWithBigints(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2);
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

function handle(req: IncomingMessage, res: ServerResponse, sources: StatusSources): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', 'GET, HEAD');
    send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
    return;
  }
  const path = new URL(req.url ?? '/', 'http://status').pathname;
  const dp = sources.dataplane();
  switch (path) {
    case '/healthz':
      send(res, 200, 'text/plain; charset=utf-8', 'ok\n');
      return;
    case '/readyz': {
      const r = sources.ready();
      send(res, r.ready ? 200 : 503, 'application/json', JSON.stringify({ ready: r.ready, reasons: r.reasons }) + '\n');
      return;
    }
    case '/metrics': {
      const routing = sources.routing?.();
      const mtu = sources.mtu?.();
      let body = renderProcessMetrics() + (dp ? renderDataplaneMetrics(dp.stats()) : '') + (routing ? renderRoutingMetrics(routing) : '')
        + (mtu ? renderMtuMetrics(mtu) : '');
      const extra = sources.metrics?.() ?? '';
      body += extra.length > 0 && !extra.endsWith('\n') ? extra + '\n' : extra;
      send(res, 200, 'text/plain; version=0.0.4; charset=utf-8', body);
      return;
    }
    case '/debug/fdb':
      {
        const routing = sources.routing?.();
        send(res, 200, 'application/json', jsonWithBigints({ peers: dp ? dp.peers() : [], ...(routing ? { routing } : {}) }) + '\n');
      }
      return;
    case '/debug/stats':
      if (!dp) {
        send(res, 503, 'application/json', JSON.stringify({ error: 'data plane not up' }) + '\n');
        return;
      }
      send(res, 200, 'application/json', jsonWithBigints(dp.stats()) + '\n');
      return;
    default:
      send(res, 404, 'text/plain; charset=utf-8', 'not found\n');
  }
}

/**
 * Start the status server on `addr` ("HOST:PORT", "[V6]:PORT" or ":PORT"; port 0 picks a free one).
 * Rejects with usageError for a malformed address, or a UserlayError with the errno code
 * (EADDRINUSE, EADDRNOTAVAIL...) when it cannot listen.
 */
export async function startStatusServer(addr: string, sources: StatusSources, log: Logger): Promise<StatusServer> {
  const { host, port } = parseListenAddress(addr);
  const server = createServer((req, res) => {
    try {
      handle(req, res, sources);
    } catch (err) {
      log.warn('status request failed', { path: req.url, err });
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal error\n');
      else res.destroy();
    }
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    const onError = (err: unknown) => reject(wrapSystemError(`status server listen on ${addr}`, err));
    server.once('error', onError);
    server.listen({ host, port }, () => {
      server.off('error', onError);
      resolve();
    });
  });
  server.on('error', (err) => log.warn('status server error', { err }));
  const bound = server.address() as AddressInfo;
  log.info('status server listening', { address: bound.address, port: bound.port });
  let closed: Promise<void> | undefined;
  return {
    address: bound.address,
    port: bound.port,
    close(): Promise<void> {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closed;
    },
  };
}
