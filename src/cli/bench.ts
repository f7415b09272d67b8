/**
 * `userlay bench` — every path side by side on ONE 2-node lab topology.
 *
 *   userlay bench [--seconds 5] [--repeat 1] [--measures LIST] [--json FILE] [--out bench/out] [--udp] [--ablation]
 *
 * Swaps the overlay between the same two nodes (one pod each, veth underlay
 * in 198.18.0.0/15, offloads at their defaults on every path) and measures,
 * one path after another: host-gw (the ceiling), the kernel vxlan device as
 * flannel configures it, userlay native (offloads auto and off, --threads 1
 * and 2), userlay js;
 * with --udp also the udp backend.
 *
 * Measures (--measures, comma-separated; default all):
 *   tcp       single-stream TCP pod -> pod, Gbit/s (iperf3, 1 s warm-up left out)
 *   tcp4      4 parallel TCP streams, Gbit/s
 *   reverse   single stream, the other direction (iperf3 -R), Gbit/s
 *   udp64     UDP datagrams of 64 bytes offered without a rate limit: delivered kpps
 *   udp1400   the same with 1400-byte datagrams
 *   rtt       ping RTT p50 and p99 over 1,000 pings 2 ms apart, microseconds
 *   cpu       CPU seconds per Gbit during the single-stream run: busy time of
 *             the whole machine from /proc/stat (user, nice, system, irq,
 *             softirq of every CPU: iperf3 client and server, the agents, the
 *             kernel's softirq work) minus the bench's own process, divided by
 *             the Gbit moved. On a quiet machine that is the lab. Steal (time
 *             a virtual machine's hypervisor ran something else instead) is
 *             no work of the lab's and is left out; each path's share of it
 *             is reported beside (stealPercent): a path measured while the
 *             host was busy may read low.
 * With --repeat N each throughput measure runs N times and the median counts.
 * Prints a progress line per step, a table with each path's ratio to kernel
 * vxlan, writes JSON and an SVG chart with one panel per measure. Numbers are
 * ratios from one run on one machine, never asserted in tests.
 */
import { accessSync, constants as fsConstants, readFileSync, statSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { flagBool, flagInt, flagString, type FlagSpec, type ParsedFlags } from '../agent/flags.js';
import { usageError } from '../errors.js';
import type { OffloadMode } from '../dataplane/offloads.js';
import type { Backend, EngineKind } from '../dataplane/types.js';
import { rssBytes } from './lab/exec.js';
import type { OverlaySpec } from './lab/overlay.js';
import { iperf3, ping, pingRtt, type IperfOptions } from './lab/probes.js';
import { openLabSession, signalExitCode } from './lab/session.js';
import { panelsSvg, type Panel } from './lab/svg-chart.js';
import type { LabNode } from './lab/topology.js';
import { runLabCommand } from './lab/command.js';

/** What can be measured, in table order. */
export const MEASURES = ['tcp', 'tcp4', 'reverse', 'udp64', 'udp1400', 'rtt', 'cpu'] as const;
/** One of MEASURES. */
export type MeasureName = typeof MEASURES[number];

const specs: FlagSpec[] = [
  { name: 'seconds', kind: 'int', default: 5, help: 'iperf3 duration per throughput measure, seconds' },
  { name: 'repeat', kind: 'int', default: 1, help: 'runs per throughput measure; the median is reported' },
  { name: 'measures', kind: 'string', default: MEASURES.join(','), help: `comma-separated subset of ${MEASURES.join(', ')}` },
  { name: 'json', kind: 'string', help: 'write the JSON result to FILE (default: <out>/bench.json)' },
  { name: 'out', kind: 'string', default: 'bench/out', help: 'directory for bench.json and bench.svg' },
  { name: 'udp', kind: 'bool', help: 'also measure the udp backend' },
  { name: 'ablation', kind: 'bool', help: 'instead of the paths: kernel vxlan, then native vxlan with one offload added per row, partial inner checksums last' },
];

/** Values of one path; null where not measured or failed. */
export interface CaseValues {
  /** Gbit/s. */
  tcpGbps: number | null;
  tcp4Gbps: number | null;
  reverseGbps: number | null;
  /** Delivered thousand datagrams per second. */
  udp64Kpps: number | null;
  udp1400Kpps: number | null;
  /** Microseconds. */
  rttP50Us: number | null;
  rttP99Us: number | null;
  /** CPU seconds per Gbit moved (= busy cores per Gbit/s) during the single-stream run. */
  cpuSecondsPerGbit: number | null;
}

/** One measured configuration. */
export interface BenchCase {
  readonly name: string;
  readonly values: CaseValues;
  /** Each value relative to kernel vxlan's in the same run (higher is better for throughput, lower for RTT and CPU). */
  readonly ratios: Record<keyof CaseValues, number | null>;
  /** TCP retransmits of the single-stream run. */
  readonly retransmits: number | null;
  /** Largest agent VmRSS after the runs, MB (userlay cases). */
  readonly agentRssMB: number | null;
  /** Share of the CPUs' time the hypervisor took (steal) during the single-stream run, percent. */
  readonly stealPercent: number | null;
  readonly podMtu: number | null;
  /** Failures by measure ("setup" when the path did not come up). */
  readonly errors: Record<string, string>;
}

/** The JSON written by the bench. */
export interface BenchReport {
  readonly date: string;
  readonly host: { cpus: number; kernel: string; node: string };
  readonly seconds: number;
  /** Runs per throughput measure (the median is reported). */
  readonly repeat: number;
  readonly measures: readonly MeasureName[];
  /** What the cpu measure counts. */
  readonly cpuCounted: string;
  readonly cases: BenchCase[];
}

function userlaySpec(backend: Backend, engine: EngineKind, offloads: OffloadMode = 'auto', threads?: number, partialCsum = true): OverlaySpec {
  return {
    modes: ['userlay', 'userlay'],
    userlay: { backend, engine, offloads, ...(threads !== undefined ? { threads } : {}), ...(partialCsum ? {} : { partialCsum: false }) },
  };
}

/** Columns of the table and panels of the chart: which value, its heading and unit, digits. */
const COLUMNS: ReadonlyArray<{ key: keyof CaseValues; measure: MeasureName; head: string; unit: string; digits: number }> = [
  { key: 'tcpGbps', measure: 'tcp', head: 'TCP', unit: 'Gbit/s', digits: 2 },
  { key: 'tcp4Gbps', measure: 'tcp4', head: 'TCPx4', unit: 'Gbit/s', digits: 2 },
  { key: 'reverseGbps', measure: 'reverse', head: 'REVERSE', unit: 'Gbit/s', digits: 2 },
  { key: 'udp64Kpps', measure: 'udp64', head: 'UDP64', unit: 'kpps', digits: 0 },
  { key: 'udp1400Kpps', measure: 'udp1400', head: 'UDP1400', unit: 'kpps', digits: 0 },
  { key: 'rttP50Us', measure: 'rtt', head: 'RTT50', unit: 'us', digits: 0 },
  { key: 'rttP99Us', measure: 'rtt', head: 'RTT99', unit: 'us', digits: 0 },
  { key: 'cpuSecondsPerGbit', measure: 'cpu', head: 'CPU', unit: 's/Gbit', digits: 3 },
];

/** Steal from this share of the CPUs' time on is named under the table. */
const STEAL_NOTE_PERCENT = 2;

/** The terminal table: a row per path, each value with its ratio to kernel vxlan, columns aligned. */
export function formatTable(r: BenchReport): string {
  const cols = COLUMNS.filter((c) => r.measures.includes(c.measure));
  const cell = (v: number | null, x: number | null, digits: number) =>
    (v === null ? '-' : `${v.toFixed(digits)} (${x === null ? '-' : x.toFixed(2)}x)`).padStart(17);
  const width = Math.max(24, ...r.cases.map((c) => c.name.length + 2)); // names stay left of the first column
  const head = `${'PATH'.padEnd(width)}${cols.map((c) => `${c.head} ${c.unit}`.padStart(17)).join('')}${'RSS MB'.padStart(8)}`;
  const rows = r.cases.map((c) => {
    const line = `${c.name.padEnd(width)}${cols.map((k) => cell(c.values[k.key], c.ratios[k.key], k.digits)).join('')}`
      + `${(c.agentRssMB === null ? '-' : c.agentRssMB.toFixed(1)).padStart(8)}`;
    const errs = Object.entries(c.errors).map(([m, e]) => `    ${m} failed: ${e}`);
    return [line, ...errs].join('\n');
  });
  const stolen = r.cases.filter((c) => (c.stealPercent ?? 0) >= STEAL_NOTE_PERCENT);
  const stealNote = stolen.length === 0 ? [] : [
    `steal: the hypervisor ran something else for ${stolen.map((c) => `${c.stealPercent!.toFixed(0)}% (${c.name})`).join(', ')} `
      + 'of the CPUs\' time during the single-stream run; those paths may read low',
  ];
  return [
    `bench: 2 nodes, pod -> pod, ${r.seconds} s per run, median of ${r.repeat}, ${r.host.cpus} CPUs; (Nx) = ratio to kernel vxlan`,
    '', head, ...rows, ...(r.measures.includes('cpu') ? ['', `cpu: ${r.cpuCounted}`] : []), ...stealNote,
  ].join('\n') + '\n';
}

/**
 * Run the bench with `argv` (flags after "bench"). Sets process.exitCode and
 * resolves with it: 0 when every measure of every case was taken, 1 when
 * some failed, 2 on usage/environment problems.
 */
export function runBench(argv: readonly string[]): Promise<number> {
  return runLabCommand({ name: 'userlay bench', specs, synopsis: 'usage: userlay bench [flags]', check: checkBenchFlags, run: runBenchWith }, argv);
}

/** The checked flags of `userlay bench`. */
interface BenchConfig {
  readonly seconds: number;
  readonly repeat: number;
  readonly measures: readonly MeasureName[];
  readonly outDir: string;
  readonly jsonFile: string;
  readonly udp: boolean;
  readonly ablation: boolean;
}

function checkBenchFlags(flags: ParsedFlags): BenchConfig {
  const seconds = flagInt(flags, 'seconds')!;
  if (seconds < 1) throw usageError('--seconds', 'must be at least 1');
  const repeat = flagInt(flags, 'repeat')!;
  if (repeat < 1) throw usageError('--repeat', 'must be at least 1');
  const measures = flagString(flags, 'measures')!.split(',').map((m) => m.trim()).filter(Boolean);
  for (const m of measures) {
    if (!(MEASURES as readonly string[]).includes(m)) throw usageError('--measures', `"${m}" is not one of ${MEASURES.join(', ')}`);
  }
  if (measures.length === 0) throw usageError('--measures', 'name at least one measure');
  const outDir = flagString(flags, 'out')!;
  const jsonFile = flagString(flags, 'json') ?? path.join(outDir, 'bench.json');
  // a bench takes minutes: an output it cannot write is found out now, not at the end
  checkCanCreate('--out', outDir, 'directory');
  checkCanCreate(flagString(flags, 'json') === undefined ? '--out' : '--json', jsonFile, 'file');
  return { seconds, repeat, measures: MEASURES.filter((m) => measures.includes(m)), outDir, jsonFile, udp: flagBool(flags, 'udp'), ablation: flagBool(flags, 'ablation') };
}

/**
 * Throw a usage error for `flag` unless `target` (a directory or a file) is
 * there as that kind and writable, or can be made: its nearest existing
 * ancestor is a writable directory. Creates nothing.
 */
function checkCanCreate(flag: string, target: string, kind: 'directory' | 'file'): void {
  let at = path.resolve(target);
  for (;;) {
    let st;
    try {
      st = statSync(at);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw usageError(flag, `${at}: ${code}`);
      at = path.dirname(at);
      continue;
    }
    const wanted = at === path.resolve(target) ? kind : 'directory';
    if (wanted === 'directory' && !st.isDirectory()) throw usageError(flag, `${at} is not a directory`);
    if (wanted === 'file' && st.isDirectory()) throw usageError(flag, `${at} is a directory`);
    try {
      accessSync(at, fsConstants.W_OK);
    } catch {
      throw usageError(flag, `${at} is not writable`);
    }
    return;
  }
}

/** CPU seconds of the whole machine so far (/proc/stat): busy (user nice system irq softirq) and stolen. */
function machineSeconds(): { busy: number; steal: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = f as [number, number, number, number, number, number, number, number];
  return { busy: (user + nice + system + irq + softirq) / 100, steal: (steal ?? 0) / 100 }; // USER_HZ
}

/** The bench process's own CPU seconds so far. */
function selfSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

const CPU_COUNTED = 'busy time of every CPU from /proc/stat (user, nice, system, irq, softirq: iperf3 client and server, '
  + 'agents, kernel softirq) during the single-stream run, minus the bench process itself, per Gbit received; '
  + 'not steal (the hypervisor running something else)';

function median<T>(xs: T[], key: (x: T) => number): T {
  return [...xs].sort((a, b) => key(a) - key(b))[Math.floor(xs.length / 2)]!;
}

/** One path of the plan; `env` is set while its agents start (the offload test hook refuses offloads). */
interface BenchStep {
  readonly name: string;
  readonly spec: OverlaySpec;
  readonly env?: Record<string, string>;
}

/**
 * The ablation: native vxlan with one offload more per row, each row in the same run. The
 * refusals go through the agent's test hook USERLAY_TEST_REFUSE_OFFLOADS, as a kernel that
 * refused them would (src/dataplane/offloads.ts). Every row keeps what the engine did before
 * the offloads: UDP GSO on send and coalesced GSO writes into the TUN on receive. The rows
 * before the last send complete inner checksums (the peers files say no partialCsum); the last
 * leaves them partial between the two userlay nodes, as kube mode does.
 */
function ablationPlan(): BenchStep[] {
  const refuse = (what: string) => ({ USERLAY_TEST_REFUSE_OFFLOADS: what });
  return [
    { name: 'kernel vxlan', spec: { modes: ['kernel-vxlan', 'kernel-vxlan'] } },
    { name: 'offloads off', spec: userlaySpec('vxlan', 'native', 'off') },
    { name: '+ TUN TSO/USO', spec: userlaySpec('vxlan', 'native', 'auto', undefined, false), env: refuse('gro') },
    { name: '+ UDP GRO', spec: userlaySpec('vxlan', 'native', 'auto', undefined, false) },
    { name: '+ partial inner checksums (= auto)', spec: userlaySpec('vxlan', 'native') },
  ];
}

/** Run `fn` with `env` added to process.env (children started meanwhile inherit it). */
async function withEnv<T>(env: Record<string, string> | undefined, fn: () => Promise<T>): Promise<T> {
  if (!env) return fn();
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

async function runBenchWith(cfg: BenchConfig): Promise<number> {
  const { seconds, repeat, outDir, jsonFile, measures } = cfg;
  const plan: BenchStep[] = cfg.ablation ? ablationPlan() : [
    { name: 'host-gw', spec: { modes: ['host-gw', 'host-gw'] } },
    { name: 'kernel vxlan', spec: { modes: ['kernel-vxlan', 'kernel-vxlan'] } },
    { name: 'userlay native vxlan', spec: userlaySpec('vxlan', 'native') },
    { name: 'userlay native vxlan, threads 2', spec: userlaySpec('vxlan', 'native', 'auto', 2) },
    { name: 'userlay native vxlan, offloads off', spec: userlaySpec('vxlan', 'native', 'off') },
    { name: 'userlay js vxlan', spec: userlaySpec('vxlan', 'js') },
  ];
  if (cfg.udp && !cfg.ablation) {
    plan.push({ name: 'userlay native udp', spec: userlaySpec('udp', 'native') });
    plan.push({ name: 'userlay js udp', spec: userlaySpec('udp', 'js') });
  }
  const steps = plan.length * measures.length;
  let step = 0;
  const progress = (name: string, what: string) => process.stderr.write(`bench [${++step}/${steps}] ${name}: ${what}\n`);
  const session = await openLabSession(2, (sig) => process.exit(signalExitCode(sig)));
  const measured: Array<Omit<BenchCase, 'ratios'>> = [];
  try {
    const [a, b] = session.topo.nodes as [LabNode, LabNode];
    const throughput = async (opts: IperfOptions) => {
      const runs = [];
      for (let i = 0; i < repeat; i++) runs.push(await iperf3(a, b, seconds, 5201, 1, opts));
      return median(runs, (r) => r.packetsPerSecond ?? r.bitsPerSecond);
    };
    for (const c of plan) {
      const values: CaseValues = {
        tcpGbps: null, tcp4Gbps: null, reverseGbps: null, udp64Kpps: null, udp1400Kpps: null, rttP50Us: null, rttP99Us: null, cpuSecondsPerGbit: null,
      };
      const errors: Record<string, string> = {};
      let retransmits: number | null = null;
      let rss: number | null = null;
      let steal: number | null = null;
      let podMtu: number | null = null;
      try {
        const ov = await withEnv(c.env, () => session.setOverlay(c.spec));
        podMtu = ov.podMtu;
        const reach = await ping(a.podNs, b.podIP, { count: 3 });
        if (!reach.ok) throw new Error(`pods cannot reach each other: ${reach.output.split('\n').pop()}`);
        // tcp and cpu come from one single-stream run
        const single = measures.includes('tcp') || measures.includes('cpu');
        for (const m of measures) {
          if (m === 'cpu' && measures.includes('tcp')) continue;
          progress(c.name, m === 'cpu' ? 'cpu (single-stream TCP)' : m);
          try {
            if (m === 'tcp' || m === 'cpu') {
              const cpu0 = machineSeconds();
              const self0 = selfSeconds();
              const t0 = process.hrtime.bigint();
              const r = await throughput({});
              const wall = Number(process.hrtime.bigint() - t0) / 1e9;
              const cpu1 = machineSeconds();
              const busy = cpu1.busy - cpu0.busy - (selfSeconds() - self0);
              steal = (100 * (cpu1.steal - cpu0.steal)) / (wall * os.cpus().length);
              if (measures.includes('tcp')) values.tcpGbps = r.bitsPerSecond / 1e9;
              retransmits = r.retransmits;
              // cores busy on average over the runs, per Gbit/s received = CPU seconds per Gbit
              if (measures.includes('cpu') && single) values.cpuSecondsPerGbit = busy / wall / (r.bitsPerSecond / 1e9);
            } else if (m === 'tcp4') {
              values.tcp4Gbps = (await throughput({ streams: 4 })).bitsPerSecond / 1e9;
            } else if (m === 'reverse') {
              values.reverseGbps = (await throughput({ reverse: true })).bitsPerSecond / 1e9;
            } else if (m === 'udp64' || m === 'udp1400') {
              const len = m === 'udp64' ? 64 : 1400;
              const r = await throughput({ udp: { len, rate: '0' } });
              values[m === 'udp64' ? 'udp64Kpps' : 'udp1400Kpps'] = (r.packetsPerSecond ?? 0) / 1e3;
            } else if (m === 'rtt') {
              const r = await pingRtt(a.podNs, b.podIP, 1000, 0.002);
              if (r.received < r.sent * 0.9) throw new Error(`${r.sent - r.received} of ${r.sent} pings lost`);
              values.rttP50Us = r.p50Us;
              values.rttP99Us = r.p99Us;
            }
          } catch (err) {
            if (session.interrupted) return 130;
            errors[m] = (err as Error).message.split('\n')[0]!;
          }
        }
        for (const agent of ov.agents.values()) {
          const bytes = await rssBytes(agent.pid);
          if (bytes !== undefined) rss = Math.max(rss ?? 0, bytes / 2 ** 20);
        }
      } catch (err) {
        if (session.interrupted) return 130;
        errors.setup = (err as Error).message.split('\n')[0]!;
        step += measures.filter((m) => !(m === 'cpu' && measures.includes('tcp'))).length;
      }
      measured.push({ name: c.name, values, retransmits, agentRssMB: rss, stealPercent: steal, podMtu, errors });
    }
  } finally {
    await session.close();
  }
  const kernel = measured.find((c) => c.name === 'kernel vxlan')?.values;
  const cases: BenchCase[] = measured.map((c) => {
    const ratios = {} as Record<keyof CaseValues, number | null>;
    for (const k of Object.keys(c.values) as Array<keyof CaseValues>) {
      const v = c.values[k];
      const base = kernel?.[k] ?? null;
      ratios[k] = v !== null && base !== null && base > 0 ? v / base : null;
    }
    return { ...c, ratios };
  });
  const report: BenchReport = {
    date: new Date().toISOString(),
    host: { cpus: os.cpus().length, kernel: os.release(), node: process.version },
    seconds, repeat, measures, cpuCounted: CPU_COUNTED, cases,
  };
  process.stdout.write(formatTable(report));
  await mkdir(path.dirname(path.resolve(jsonFile)), { recursive: true });
  await writeFile(jsonFile, JSON.stringify(report, null, 2) + '\n');
  await mkdir(outDir, { recursive: true });
  const svgFile = path.join(outDir, 'bench.svg');
  await writeFile(svgFile, benchSvg(report));
  process.stdout.write(`wrote ${jsonFile} and ${svgFile}\n`);
  return cases.every((c) => Object.keys(c.errors).length === 0) ? 0 : 1;
}

/** The chart: one panel per measured value, one bar per path. */
export function benchSvg(r: BenchReport): string {
  const colors: Record<string, string> = { 'host-gw': '#999999', 'kernel vxlan': '#555555' };
  const panels: Panel[] = COLUMNS.filter((c) => r.measures.includes(c.measure)).map((col) => ({
    title: `${col.head} (${col.unit})`,
    unit: col.unit,
    bars: r.cases.map((c) => {
      const v = c.values[col.key];
      const x = c.ratios[col.key];
      return {
        label: c.name,
        value: v ?? 0,
        note: v === null ? 'failed' : `${v.toFixed(col.digits)} ${col.unit}${x === null ? '' : ` (${x.toFixed(2)}x)`}`,
        color: colors[c.name] ?? '#4682b4',
      };
    }),
  }));
  return panelsSvg(`userlay bench: pod -> pod, 2 nodes (${r.host.cpus} CPUs, ${r.date.slice(0, 10)})`, panels);
}
