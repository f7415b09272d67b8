/**
 * Traffic probes between lab pods: ping, iperf3 throughput, a hashed TCP
 * transfer and a UDP datagram-size sweep. Servers run in one namespace,
 * clients in another, always through `ip netns exec`.
 */
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { UserlayError } from '../../errors.js';
import { nsRun, nsSpawn, sleep, stopChild, waitExit } from './exec.js';
import type { LabNode } from './topology.js';

/** Result of one ping run. */
export interface PingResult {
  readonly from: string;
  readonly to: string;
  readonly ok: boolean;
  /** Average RTT in milliseconds when any reply came back. */
  readonly rttMs: number | undefined;
  /** How long ping ran, milliseconds. */
  readonly elapsedMs: number;
  /** ping's combined output. */
  readonly output: string;
}

/** Ping `toIP` from namespace `ns` (`ping -c count -W 1`). */
export async function ping(ns: string, toIP: string, options: { count?: number; extra?: string[] } = {}): Promise<PingResult> {
  const started = Date.now();
  const args = ['-n', '-c', String(options.count ?? 2), '-W', '1', '-i', '0.2', ...(options.extra ?? []), toIP];
  const res = await nsRun(ns, 'ping', args, { allowFail: true, timeoutMs: 30_000 });
  const m = /= [\d.]+\/([\d.]+)\//.exec(res.stdout);
  return {
    from: ns,
    to: toIP,
    ok: res.code === 0,
    rttMs: m ? Number(m[1]) : undefined,
    elapsedMs: Date.now() - started,
    output: (res.stdout + res.stderr).trim(),
  };
}

/** Ping every pod from every other pod. */
export async function pingAllPairs(nodes: readonly LabNode[]): Promise<PingResult[]> {
  const out: PingResult[] = [];
  for (const a of nodes) {
    for (const b of nodes) {
      if (a !== b) out.push({ ...(await ping(a.podNs, b.podIP)), from: a.name, to: b.name });
    }
  }
  return out;
}

/** Path of the pod tool script (compiled next to this file). */
export function podToolPath(): string {
  return path.join(path.dirname(fileURLToPath(import.meta.url)), 'pod-tool.js');
}

/** A server started with startServer(). */
interface Server {
  readonly child: ChildProcess;
  /** Next JSON line the server prints. */
  nextLine(timeoutMs: number): Promise<Record<string, unknown>>;
}

function startPodTool(ns: string, args: readonly string[]): Server {
  const child = nsSpawn(ns, process.execPath, [podToolPath(), ...args]);
  const lines: string[] = [];
  const waiters: Array<(l: string) => void> = [];
  createInterface({ input: child.stdout! }).on('line', (l) => {
    const w = waiters.shift();
    if (w) w(l); else lines.push(l);
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
  return {
    child,
    nextLine(timeoutMs) {
      return new Promise((resolve, reject) => {
        const take = (l: string): void => { clearTimeout(timer); resolve(JSON.parse(l) as Record<string, unknown>); };
        const timer = setTimeout(() => {
          const i = waiters.indexOf(take);
          if (i >= 0) waiters.splice(i, 1);
          reject(new UserlayError('ETIMEDOUT', `pod-tool ${args.join(' ')} in ${ns}: no output after ${timeoutMs} ms ${stderr.trim()}`));
        }, timeoutMs);
        const l = lines.shift();
        if (l !== undefined) take(l); else waiters.push(take);
      });
    },
  };
}

/** Outcome of a hashed transfer. */
export interface TransferResult {
  readonly sent: { bytes: number; sha256: string };
  readonly received: { bytes: number; sha256: string };
  readonly seconds: number;
}

/**
 * Send `bytes` deterministic pseudo-random bytes over TCP from pod `from`
 * to pod `to`; both ends hash what they saw.
 */
export async function hashedTransfer(from: LabNode, to: LabNode, bytes: number, port = 5301, timeoutMs = 120_000): Promise<TransferResult> {
  const server = startPodTool(to.podNs, ['tcp-recv', String(port)]);
  try {
    await server.nextLine(10_000);
    const started = Date.now();
    const sender = await nsRun(from.podNs, process.execPath, [podToolPath(), 'tcp-send', to.podIP, String(port), String(bytes), '12345'],
      { timeoutMs });
    const sent = JSON.parse(sender.stdout.trim().split('\n').pop() ?? '{}') as TransferResult['sent'];
    const received = (await server.nextLine(timeoutMs)) as unknown as TransferResult['received'];
    return { sent, received, seconds: (Date.now() - started) / 1000 };
  } finally {
    await stopChild(server.child, 1000);
  }
}

/** Outcome of a UDP size sweep. */
export interface SweepResult {
  /** Sizes echoed back intact. */
  readonly ok: number;
  /** Sizes that never came back intact. */
  readonly failed: number[];
  /** Sizes whose send failed locally, with the error code (e.g. EMSGSIZE); key "aborted" when the sweep gave up. */
  readonly errors: Record<string, string>;
}

/** Send UDP payloads of sizes `fromSize..toSize` from pod `from` to an echo server in pod `to`. */
export async function udpSweep(from: LabNode, to: LabNode, fromSize: number, toSize: number, port = 5302): Promise<SweepResult> {
  const server = startPodTool(to.podNs, ['udp-echo', String(port)]);
  try {
    await server.nextLine(10_000);
    const res = await nsRun(from.podNs, process.execPath, [podToolPath(), 'udp-sweep', to.podIP, String(port), String(fromSize), String(toSize)],
      { timeoutMs: 600_000 });
    return JSON.parse(res.stdout.trim().split('\n').pop() ?? '{}') as SweepResult;
  } finally {
    await stopChild(server.child, 1000);
  }
}

/** udpSweep in bursts (pod-tool udp-burst): equal datagrams of each size back to back, resent up to 3 rounds. */
export async function udpBurst(from: LabNode, to: LabNode, fromSize: number, toSize: number, port = 5302): Promise<SweepResult> {
  const server = startPodTool(to.podNs, ['udp-echo', String(port)]);
  try {
    await server.nextLine(10_000);
    const res = await nsRun(from.podNs, process.execPath, [podToolPath(), 'udp-burst', to.podIP, String(port), String(fromSize), String(toSize)],
      { timeoutMs: 600_000 });
    return JSON.parse(res.stdout.trim().split('\n').pop() ?? '{}') as SweepResult;
  } finally {
    await stopChild(server.child, 1000);
  }
}

/** Send one datagram (hex payload) from namespace `ns`, optionally from source address `src` (and port `srcPort`). */
export async function sendDatagram(ns: string, host: string, port: number, payload: Uint8Array, src?: string, srcPort?: number): Promise<void> {
  const args = [podToolPath(), 'udp-send', host, String(port), Buffer.from(payload).toString('hex')];
  if (src) args.push(src);
  if (src && srcPort !== undefined) args.push(String(srcPort));
  const res = await nsRun(ns, process.execPath, args, { timeoutMs: 10_000 });
  if (res.stdout.includes('"error"')) throw new UserlayError('ESEND', `udp-send from ${ns}: ${res.stdout.trim()}`);
}

/** Throughput measured by iperf3. */
export interface IperfResult {
  /** Receiver-side goodput in bits per second. */
  readonly bitsPerSecond: number;
  /** TCP retransmits seen by the sender. */
  readonly retransmits: number;
}

/**
 * Single-stream TCP iperf3 from pod `from` to pod `to` for `seconds`,
 * leaving out the first `omitSeconds` (slow start) from the result.
 */
export async function iperf3(from: LabNode, to: LabNode, seconds: number, port = 5201, omitSeconds = 0): Promise<IperfResult> {
  const server = nsSpawn(to.podNs, 'iperf3', ['-s', '-1', '-B', to.podIP, '-p', String(port)]);
  try {
    let last: unknown;
    for (let attempt = 0; attempt < 20; attempt++) {
      await sleep(150);
      const args = ['-c', to.podIP, '-p', String(port), '-t', String(seconds), '-O', String(omitSeconds), '--json'];
      const res = await nsRun(from.podNs, 'iperf3', args, { allowFail: true, timeoutMs: (seconds + omitSeconds + 30) * 1000 });
      const report = JSON.parse(res.stdout || '{}') as {
        error?: string;
        end?: { sum_received?: { bits_per_second?: number }; sum_sent?: { retransmits?: number } };
      };
      const bps = report.end?.sum_received?.bits_per_second;
      if (res.code === 0 && bps !== undefined) {
        return { bitsPerSecond: bps, retransmits: report.end?.sum_sent?.retransmits ?? 0 };
      }
      last = report.error ?? res.stderr;
      if (!String(last).includes('refused')) break;
    }
    throw new UserlayError('EIPERF', `iperf3 ${from.name} -> ${to.name}: ${String(last)}`);
  } finally {
    if (server.exitCode === null) await stopChild(server, 1000);
    else await waitExit(server);
  }
}
