/**
 * The agent's status HTTP server, shared by static and kube mode.
 *
 *   /healthz      200 "ok" while the process serves requests (liveness).
 *   /readyz       200 {"ready":true,"reasons":[]} or 503 with the reasons it is not ready.
 *   /metrics      Prometheus text exposition format 0.0.4: per-peer tx/rx packets and bytes,
 *                 drops by reason (and peer), FDB size, plus any extra lines from the sources.
 *   /debug/fdb    JSON: the peer set the data plane last applied.
 *   /debug/stats  JSON: DataplaneStats with bigints as decimal strings.
 *
 * The server only reads: every request asks the sources afresh, so it never holds stale
 * state and needs no wiring beyond the three callbacks.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { usageError, wrapSystemError } from '../errors.js';
import type { Logger } from '../log.js';
import { parseListenAddress } from './agent-flags.js';
import type { CounterSet, Dataplane, DataplaneStats } from '../dataplane/types.js';

/** What the status server reads on every request. */
export interface StatusSources {
  /** The running data plane, or undefined while it is not up yet. */
  dataplane(): Dataplane | undefined;
  /** Readiness and, when not ready, why (one short sentence per reason). */
  ready(): { ready: boolean; reasons: string[] };
  /** Extra Prometheus text lines (with their own HELP/TYPE lines), appended to /metrics. */
  metrics?(): string;
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

/** One metric family in exposition format: HELP, TYPE, then one line per sample. */
export function metricFamily(
  name: string,
  type: 'counter' | 'gauge',
  help: string,
  samples: ReadonlyArray<{ labels?: Record<string, string>; value: bigint | number }>,
): string {
  const lines = [`# HELP ${name} ${help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${name} ${type}`];
  for (const s of samples) lines.push(`${name}${labels(s.labels ?? {})} ${formatValue(s.value)}`);
  return lines.join('\n') + '\n';
}

function formatValue(v: bigint | number): string {
  if (typeof v === 'bigint') return v.toString();
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v > 0 ? '+Inf' : '-Inf';
  return String(v);
}

/** Render the data-plane metrics (the names fixed in the shared brief). */
export function renderDataplaneMetrics(stats: DataplaneStats): string {
  const peers = Object.entries(stats.peers).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const perPeer = (pick: (c: CounterSet) => bigint) => peers.map(([peer, c]) => ({ labels: { peer }, value: pick(c) }));
  const drops: Array<{ labels: Record<string, string>; value: bigint }> = [];
  for (const [reason, value] of Object.entries(stats.total.drops)) drops.push({ labels: { reason }, value });
  for (const [peer, c] of peers) {
    for (const [reason, value] of Object.entries(c.drops)) drops.push({ labels: { reason, peer }, value });
  }
  return [
    metricFamily('userlay_tx_packets_total', 'counter', 'Packets encapsulated and sent to a peer.', perPeer((c) => c.txPackets)),
    metricFamily('userlay_tx_bytes_total', 'counter', 'Inner bytes sent to a peer.', perPeer((c) => c.txBytes)),
    metricFamily('userlay_rx_packets_total', 'counter', 'Packets received from a peer and decapsulated.', perPeer((c) => c.rxPackets)),
    metricFamily('userlay_rx_bytes_total', 'counter', 'Inner bytes received from a peer.', perPeer((c) => c.rxBytes)),
    metricFamily('userlay_drops_total', 'counter', 'Dropped packets by reason (total, and per peer when known).', drops),
    metricFamily('userlay_fdb_peers', 'gauge', 'Peers in the FDB in force.', [{ value: stats.fdbPeers }]),
    metricFamily('userlay_fdb_routes', 'gauge', 'Pod-subnet routes in the FDB in force.', [{ value: stats.fdbRoutes }]),
    ...(stats.offloads ? [offloadMetrics(stats.offloads)] : []),
  ].join('');
}

/** Offloads in force (1) and refused at setup (1), and the engine's offload counters. */
function offloadMetrics(o: NonNullable<DataplaneStats['offloads']>): string {
  const c = o.counters;
  const active = [...o.active, ...(c.tunGso ? ['tun_gso'] : [])];
  return [
    metricFamily('userlay_offload_active', 'gauge', 'Segmentation offloads in force (tso, uso, gro, tun_gso).',
      active.map((offload) => ({ labels: { offload }, value: 1 }))),
    metricFamily('userlay_offload_refused', 'gauge', 'Offloads asked for and refused by the kernel at setup.',
      o.refused.map((offload) => ({ labels: { offload }, value: 1 }))),
    metricFamily('userlay_tun_gso_refused_total', 'counter', 'GSO writes the TUN refused (EINVAL/EIO; the start probe included); then segmented in software.',
      [{ value: c.tunGsoRefused }]),
    metricFamily('userlay_tso_packets_total', 'counter', 'TSO/USO super-packets read from the TUN and split.', [{ value: c.tsoPackets }]),
    metricFamily('userlay_tso_segments_total', 'counter', 'Segments the TSO/USO split produced.', [{ value: c.tsoSegments }]),
    metricFamily('userlay_udp_gro_buffers_total', 'counter', 'UDP GRO receive buffers holding 2 or more datagrams.', [{ value: c.groBuffers }]),
    metricFamily('userlay_udp_gro_datagrams_total', 'counter', 'Datagrams in those buffers.', [{ value: c.groDatagrams }]),
].join('');
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
      let body = dp ? renderDataplaneMetrics(dp.stats()) : '';
      const extra = sources.metrics?.() ?? '';
      body += extra.length > 0 && !extra.endsWith('\n') ? extra + '\n' : extra;
      send(res, 200, 'text/plain; version=0.0.4; charset=utf-8', body);
      return;
    }
    case '/debug/fdb':
      send(res, 200, 'application/json', jsonWithBigints({ peers: dp ? dp.peers() : [] }) + '\n');
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
