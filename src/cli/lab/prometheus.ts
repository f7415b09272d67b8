/**
 * `userlay lab --prometheus`: a real Prometheus (Debian's /usr/bin/prometheus) scraping every
 * lab agent, with its own temporary config and storage, listening on 127.0.0.1:<free port>.
 *
 * The agents serve /metrics on 127.0.0.1:<status port> inside their node namespaces, which a
 * process in the host namespace cannot reach. Each agent's status address is exposed on the
 * host's loopback through a Unix socket, which every namespace can reach (it is a file):
 *
 *   prometheus ─TCP─▶ 127.0.0.1:P_k (host, this process) ─▶ DIR/n_k.sock
 *              ─▶ relay (node ns of n_k: `ip netns exec`, this file run as a script) ─TCP─▶ 127.0.0.1:<status port>
 *
 * So nothing is routed between namespaces and no address outside loopback is used. Every
 * target carries a `node` label (n1, n2, ...). close() stops Prometheus, the relays and the
 * host listeners and removes the directory, also when start-up fails half way; a process exit
 * kills Prometheus and removes the directory synchronously as a last resort. The directory is
 * named `<lab prefix>prometheus-*` in the temp dir, so cleanupStale removes what a crashed run
 * left behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { UserlayError } from '../../errors.js';
import { nsArgv, sleep, stopChild } from './exec.js';

/** Where Debian's prometheus package puts the server. */
export const PROMETHEUS_BIN = '/usr/bin/prometheus';
/** Scrape (and evaluation) interval of the lab Prometheus, s. */
export const SCRAPE_INTERVAL_S = 1;

/** One agent to scrape. */
export interface ScrapeTarget {
  /** Node name: the `node` label of its series. */
  readonly node: string;
  /** The network namespace the agent runs in. */
  readonly ns: string;
  /** Its status port on 127.0.0.1 inside `ns`. */
  readonly statusPort: number;
}

/** A running lab Prometheus. */
export interface LabPrometheus {
  /** Base URL of its web UI and HTTP API, "http://127.0.0.1:PORT". */
  readonly url: string;
  readonly pid: number;
  /** Its temp directory (config, storage, sockets, log). */
  readonly dir: string;
  /** The host-loopback address of each agent's /metrics, by node name. */
  readonly targets: ReadonlyMap<string, string>;
  /** Stop everything and remove the directory. Idempotent. */
  close(): Promise<void>;
}

/** The prometheus.yml of the lab: one job, one static target per agent. */
export function prometheusConfig(targets: ReadonlyArray<{ node: string; address: string }>): string {
  const lines = [
    'global:',
    `  scrape_interval: ${SCRAPE_INTERVAL_S}s`,
    `  evaluation_interval: ${SCRAPE_INTERVAL_S}s`,
    'scrape_configs:',
    '  - job_name: userlay',
    '    static_configs:',
  ];
  for (const t of targets) lines.push(`      - targets: ['${t.address}']`, `        labels: { node: '${t.node}' }`);
  return lines.join('\n') + '\n';
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve, reject) => srv.once('error', reject).listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as { port: number }).port;
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

/** Pipe two sockets together; either side closing closes both. */
function splice(a: Socket, b: Socket): void {
  const cut = (): void => {
    a.destroy();
    b.destroy();
  };
  a.on('error', cut).on('close', cut);
  b.on('error', cut).on('close', cut);
  a.pipe(b);
  b.pipe(a);
}

/** A TCP listener on 127.0.0.1:<free port> that forwards each connection to the Unix socket `sock`. */
async function hostListener(sock: string): Promise<{ server: Server; port: number }> {
  const server = createServer((client) => splice(client, createConnection(sock)));
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as { port: number }).port };
}

/** Start the relay for `t` inside its namespace; resolves once it listens on `sock`. */
async function startRelay(t: ScrapeTarget, sock: string): Promise<ChildProcess> {
  const script = fileURLToPath(import.meta.url);
  const child = spawn('ip', nsArgv(t.ns, process.execPath, [script, 'relay', sock, String(t.statusPort)]), { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new UserlayError('ETIMEDOUT', `metrics relay for ${t.node}: not listening after 10 s`)), 10_000);
    child.stdout!.once('data', () => {
      clearTimeout(timer);
      resolve();
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new UserlayError('ERELAY', `metrics relay for ${t.node} exited (${code})`));
    });
  });
  return child;
}

async function waitReady(url: string, child: ChildProcess, log: string): Promise<void> {
  const until = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new UserlayError('EPROMETHEUS', `prometheus exited (${child.exitCode ?? child.signalCode}); see ${log}`);
    }
    try {
      const res = await fetch(`${url}/-/ready`);
      await res.text();
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > until) throw new UserlayError('ETIMEDOUT', `prometheus not ready after 30 s; see ${log}`);
    await sleep(100);
  }
}

/**
 * Start Prometheus scraping `targets`. `prefix` is the lab's namespace prefix (names the
 * temp directory). Throws UserlayError EPROMETHEUS when the server is missing or fails to
 * start, with everything started so far stopped again.
 */
export async function startLabPrometheus(targets: readonly ScrapeTarget[], prefix: string): Promise<LabPrometheus> {
  const dir = mkdtempSync(path.join(tmpdir(), `${prefix}prometheus-`));
  const relays: ChildProcess[] = [];
  const listeners: Server[] = [];
  let prom: ChildProcess | undefined;
  const onExit = (): void => {
    try { prom?.kill('SIGKILL'); } catch { /* gone */ }
    for (const r of relays) { try { r.kill('SIGKILL'); } catch { /* gone */ } }
    rmSync(dir, { recursive: true, force: true });
  };
  process.on('exit', onExit);
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      if (prom) await stopChild(prom, 5000);
      for (const r of relays) await stopChild(r, 2000);
      for (const l of listeners) await new Promise((resolve) => l.close(resolve));
      await rm(dir, { recursive: true, force: true });
      process.off('exit', onExit);
    })();
    return closing;
  };
  try {
    const addresses = new Map<string, string>();
    for (const t of targets) {
      const sock = path.join(dir, `${t.node}.sock`);
      relays.push(await startRelay(t, sock));
      const { server, port } = await hostListener(sock);
      listeners.push(server);
      addresses.set(t.node, `127.0.0.1:${port}`);
    }
    const config = path.join(dir, 'prometheus.yml');
    await writeFile(config, prometheusConfig([...addresses].map(([node, address]) => ({ node, address }))));
    await mkdir(path.join(dir, 'data'));
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const log = path.join(dir, 'prometheus.log');
    const logFd = openSync(log, 'a');
    try {
      prom = spawn(PROMETHEUS_BIN, [
        `--config.file=${config}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`,
        '--storage.tsdb.retention.time=1d', '--log.level=warn',
      ], { stdio: ['ignore', logFd, logFd] });
    } finally {
      closeSync(logFd);
    }
    const spawnError = new Promise<never>((_, reject) => prom!.once('error', (err) => reject(new UserlayError('EPROMETHEUS', `start ${PROMETHEUS_BIN}: ${err.message} (Debian package prometheus)`, { cause: err }))));
    await Promise.race([waitReady(url, prom, log), spawnError]);
    const pid = prom.pid!;
    return { url, pid, dir, targets: addresses, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** What `userlay lab --prometheus` prints after the report: where to look, how to make traffic. */
export function labPrometheusHint(prom: LabPrometheus, nodes: ReadonlyArray<{ name: string; podNs: string; podIP: string }>): string {
  const q = (expr: string): string => `${prom.url}/graph?g0.expr=${encodeURIComponent(expr)}&g0.tab=0&g0.range_input=5m`;
  const [a, b] = nodes;
  const lines = [
    `prometheus: ${prom.url}/ (pid ${prom.pid}; scrapes ${[...prom.targets.keys()].join(', ')} every ${SCRAPE_INTERVAL_S} s; dir ${prom.dir})`,
    `  bytes per peer:  ${q('sum by (node, peer) (rate(userlay_tx_bytes_total[30s]))')}`,
    `  drops by reason: ${q('sum by (node, reason) (rate(userlay_dropped_packets_total[30s]))')}`,
    `  API:             ${prom.url}/api/v1/query?query=userlay_tx_bytes_total`,
  ];
  if (a && b) lines.push(`  traffic:         ip netns exec ${a.podNs} ping ${b.podIP}`);
  lines.push('Ctrl-C stops Prometheus and tears the lab down.');
  return lines.join('\n') + '\n';
}

/** The relay half that runs inside a node namespace: Unix socket `sock` -> 127.0.0.1:`port`. */
async function relayMain(sock: string, port: number): Promise<void> {
  await rm(sock, { force: true });
  const server = createServer((client) => splice(client, createConnection(port, '127.0.0.1')));
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(sock, resolve));
  process.stdout.write('listening\n');
  const stop = (): void => {
    server.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href && process.argv[2] === 'relay') {
  await relayMain(process.argv[3]!, Number(process.argv[4]));
}
