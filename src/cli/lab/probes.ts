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
import type { Family } from '../../dataplane/net.js';
import type { LabNode, LabOutside } from './topology.js';

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

/** The address of `node`'s pod in `family` (default: the node's primary family). */
export function podAddress(node: LabNode, family: Family = node.families[0]!): string {
  const inner = node.inner[family];
  if (!inner) throw new UserlayError('EINVAL', `${node.name} has no IPv${family} pod address`);
  return inner.podIP;
}

/** Ping every pod from every other pod (at its address of `family`, default the primary one). */
export async function pingAllPairs(nodes: readonly LabNode[], family?: Family): Promise<PingResult[]> {
  const out: PingResult[] = [];
  for (const a of nodes) {
    for (const b of nodes) {
      if (a !== b) out.push({ ...(await ping(a.podNs, podAddress(b, family))), from: a.name, to: b.name });
    }
  }
  return out;
}

/** How the outside host saw one pod's datagram. */
export interface EgressResult {
  readonly from: string;
  /** The source address outside saw (null: no answer). */
  readonly seenAs: string | null;
}

/** From every pod, ask a udp-whoami on the outside host which source address it sees. */
export async function egressFromPods(nodes: readonly LabNode[], outside: LabOutside, port = 5303): Promise<EgressResult[]> {
  const server = startPodTool(outside.ns, ['udp-whoami', String(port)]);
  try {
    await server.nextLine(10_000);
    const out: EgressResult[] = [];
    for (const n of nodes) {
      const r = await nsRun(n.podNs, process.execPath, [podToolPath(), 'udp-ask', outside.ip, String(port)], { timeoutMs: 30_000 });
      const answer = JSON.parse(r.stdout) as { peer?: string };
      out.push({ from: n.name, seenAs: answer.peer ?? null });
    }
    return out;
  } finally {
    await stopChild(server.child, 1000);
  }
}

/** Path of the pod tool script (compiled next to this file). */
export function podToolPath(): string {
  return path.join(path.dirname(fileURLToPath(import.meta.url)), 'pod-tool.js');
}

/** A pod-tool server started with startPodTool(). */
export interface PodToolServer {
  readonly child: ChildProcess;
  /** Next JSON line the server prints. */
  nextLine(timeoutMs: number): Promise<Record<string, unknown>>;
}

/** Run `pod-tool args...` in `ns` in the background; its JSON lines are read with nextLine(). */
export function startPodTool(ns: string, args: readonly string[]): PodToolServer {
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
 * to pod `to` (its address of `family`, default the primary one); both ends hash what they saw.
 */
export async function hashedTransfer(from: LabNode, to: LabNode, bytes: number, port = 5301, timeoutMs = 120_000,
  family: Family = to.families[0]!): Promise<TransferResult> {
  const server = startPodTool(to.podNs, ['tcp-recv', String(port), family === 6 ? '::' : '0.0.0.0']);
  try {
    await server.nextLine(10_000);
    const started = Date.now();
    const sender = await nsRun(from.podNs, process.execPath, [podToolPath(), 'tcp-send', podAddress(to, family), String(port), String(bytes), '12345'],
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

/**
 * udpSweep in bursts (pod-tool udp-burst): equal datagrams of each size back to back, resent up
 * to 3 rounds; to `to`'s pod address of `family` (default its primary one). With `gso` each
 * size's datagrams leave the sender as one UDP_SEGMENT send.
 */
export async function udpBurst(from: LabNode, to: LabNode, fromSize: number, toSize: number, port = 5302,
  family: Family = to.families[0]!, gso = false): Promise<SweepResult> {
  const server = startPodTool(to.podNs, ['udp-echo', String(port), ...(family === 6 ? ['6'] : [])]);
  try {
    await server.nextLine(10_000);
    const res = await nsRun(from.podNs, process.execPath, [podToolPath(), 'udp-burst', podAddress(to, family), String(port), String(fromSize), String(toSize), ...(gso ? ['gso'] : [])],
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
  /** TCP retransmits seen by the sender (0 for UDP). */
  readonly retransmits: number;
  /** UDP: datagrams per second that reached the receiver (not what was offered). */
  readonly packetsPerSecond?: number;
}

/** How iperf3 runs: parallel streams, the reverse direction, or UDP datagrams of `len` bytes at `rate`. */
export interface IperfOptions {
  /** Parallel streams (-P), default 1. */
  readonly streams?: number;
  /** The server sends, the client receives (-R). */
  readonly reverse?: boolean;
  /** UDP with datagrams of `len` payload bytes offered at `rate` (iperf3 -b, e.g. "4G"). */
  readonly udp?: { readonly len: number; readonly rate: string };
}

/**
 * TCP (or UDP, see IperfOptions) iperf3 from pod `from` to pod `to` for
 * `seconds`, leaving out the first `omitSeconds` (slow start) from the result.
 */
export async function iperf3(from: LabNode, to: LabNode, seconds: number, port = 5201, omitSeconds = 0, opts: IperfOptions = {}): Promise<IperfResult> {
  const server = nsSpawn(to.podNs, 'iperf3', ['-s', '-1', '-B', to.podIP, '-p', String(port)]);
  try {
    let last: unknown;
    for (let attempt = 0; attempt < 20; attempt++) {
      await sleep(150);
      const args = ['-c', to.podIP, '-p', String(port), '-t', String(seconds), '-O', String(omitSeconds), '--json'];
      if (opts.streams !== undefined && opts.streams > 1) args.push('-P', String(opts.streams));
      if (opts.reverse) args.push('-R');
      if (opts.udp) args.push('-u', '-l', String(opts.udp.len), '-b', opts.udp.rate);
      const res = await nsRun(from.podNs, 'iperf3', args, { allowFail: true, timeoutMs: (seconds + omitSeconds + 30) * 1000 });
      const report = JSON.parse(res.stdout || '{}') as {
        error?: string;
        end?: {
          sum_received?: { bits_per_second?: number; bytes?: number; seconds?: number };
          sum_sent?: { retransmits?: number };
        };
      };
      const received = report.end?.sum_received;
      const bps = received?.bits_per_second;
      if (res.code === 0 && bps !== undefined) {
        const pps = opts.udp && received?.bytes !== undefined && received.seconds ? received.bytes / opts.udp.len / received.seconds : undefined;
        return { bitsPerSecond: bps, retransmits: report.end?.sum_sent?.retransmits ?? 0, ...(pps !== undefined ? { packetsPerSecond: pps } : {}) };
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

/** Round-trip times of many pings. */
export interface RttResult {
  readonly sent: number;
  readonly received: number;
  /** Median and 99th percentile RTT in microseconds (NaN when nothing came back). */
  readonly p50Us: number;
  readonly p99Us: number;
}

/** `count` pings from namespace `ns` to `toIP`, `intervalS` apart (below 0.2 s needs root), with per-reply RTTs. */
export async function pingRtt(ns: string, toIP: string, count = 1000, intervalS = 0.002): Promise<RttResult> {
  const res = await nsRun(ns, 'ping', ['-n', '-c', String(count), '-i', String(intervalS), '-W', '1', toIP],
    { allowFail: true, timeoutMs: (count * intervalS + 30) * 1000 });
  const rtts = [...res.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]) * 1000).sort((a, b) => a - b);
  const at = (q: number) => (rtts.length === 0 ? NaN : rtts[Math.min(rtts.length - 1, Math.floor(q * rtts.length))]!);
  return { sent: count, received: rtts.length, p50Us: at(0.5), p99Us: at(0.99) };
}
