/**
 * `userlay bench` — side-by-side throughput on ONE 2-node lab topology.
 *
 *   userlay bench [--seconds 5] [--repeat 1] [--json FILE] [--out bench/out] [--udp]
 *
 * Swaps the overlay between the same two nodes and measures single-stream
 * TCP pod -> pod with iperf3 for each: host-gw (no encapsulation), kernel
 * vxlan (as flannel configures it), userlay native and js engines (vxlan;
 * native also with --offloads off; with --udp also the udp backend), after
 * a 1 s warm-up that is left out;
 * with --repeat N each case runs N times and the median counts. Reports
 * Gbit/s, the ratio to kernel vxlan and agent RSS; prints a table, writes JSON and an SVG bar chart.
 * Numbers are ratios from one run on one machine, never asserted in tests.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { flagBool, flagInt, flagString, type FlagSpec, type ParsedFlags } from '../agent/flags.js';
import { usageError } from '../errors.js';
import type { OffloadMode } from '../dataplane/offloads.js';
import type { Backend, EngineKind } from '../dataplane/types.js';
import { rssBytes } from './lab/exec.js';
import type { OverlaySpec } from './lab/overlay.js';
import { iperf3, ping } from './lab/probes.js';
import { openLabSession, signalExitCode } from './lab/session.js';
import { barChartSvg } from './lab/svg-chart.js';
import { runLabCommand } from './lab/command.js';

const specs: FlagSpec[] = [
  { name: 'seconds', kind: 'int', default: 5, help: 'iperf3 duration per case, seconds' },
  { name: 'repeat', kind: 'int', default: 1, help: 'runs per case; the median is reported' },
  { name: 'json', kind: 'string', help: 'write the JSON result to FILE (default: <out>/bench.json)' },
  { name: 'out', kind: 'string', default: 'bench/out', help: 'directory for bench.json and bench.svg' },
  { name: 'udp', kind: 'bool', help: 'also measure the udp backend' },
];

/** One measured configuration. */
export interface BenchCase {
  readonly name: string;
  readonly bitsPerSecond: number | null;
  readonly retransmits: number | null;
  /** Throughput relative to kernel vxlan in the same run. */
  readonly ratioToKernelVxlan: number | null;
  /** Largest agent VmRSS after the run, MB (userlay cases). */
  readonly agentRssMB: number | null;
  readonly podMtu: number | null;
  readonly error: string | null;
}

/** The JSON written by the bench. */
export interface BenchReport {
  readonly date: string;
  readonly host: { cpus: number; kernel: string; node: string };
  readonly seconds: number;
  /** Runs per case (the median is reported). */
  readonly repeat: number;
  readonly cases: BenchCase[];
}

function userlaySpec(backend: Backend, engine: EngineKind, offloads: OffloadMode = 'auto'): OverlaySpec {
  return { modes: ['userlay', 'userlay'], userlay: { backend, engine, offloads } };
}

function formatTable(r: BenchReport): string {
  const head = `${'CASE'.padEnd(22)}${'Gbit/s'.padStart(9)}${'x kernel'.padStart(10)}${'retrans'.padStart(9)}${'RSS MB'.padStart(8)}`;
  const rows = r.cases.map((c) => c.error !== null
    ? `${c.name.padEnd(22)}  failed: ${c.error}`
    : `${c.name.padEnd(22)}${(c.bitsPerSecond! / 1e9).toFixed(3).padStart(9)}` +
      `${(c.ratioToKernelVxlan === null ? '-' : c.ratioToKernelVxlan.toFixed(3)).padStart(10)}` +
      `${String(c.retransmits).padStart(9)}${(c.agentRssMB === null ? '-' : c.agentRssMB.toFixed(1)).padStart(8)}`);
  return [`bench: 2 nodes, single-stream TCP pod -> pod, ${r.seconds} s per run, median of ${r.repeat}, ${r.host.cpus} CPUs`, '', head, ...rows].join('\n') + '\n';
}

/**
 * Run the bench with `argv` (flags after "bench"). Sets process.exitCode and
 * resolves with it: 0 when every case was measured, 1 when some failed,
 * 2 on usage/environment problems.
 */
export function runBench(argv: readonly string[]): Promise<number> {
  return runLabCommand({ specs, synopsis: 'usage: userlay bench [flags]', check: checkBenchFlags, run: runBenchWith }, argv);
}

/** The checked flags of `userlay bench`. */
interface BenchConfig {
  readonly seconds: number;
  readonly repeat: number;
  readonly outDir: string;
  readonly jsonFile: string;
  readonly udp: boolean;
}

function checkBenchFlags(flags: ParsedFlags): BenchConfig {
  const seconds = flagInt(flags, 'seconds')!;
  if (seconds < 1) throw usageError('--seconds', 'must be at least 1');
  const repeat = flagInt(flags, 'repeat')!;
  if (repeat < 1) throw usageError('--repeat', 'must be at least 1');
  const outDir = flagString(flags, 'out')!;
  const jsonFile = flagString(flags, 'json') ?? path.join(outDir, 'bench.json');
  return { seconds, repeat, outDir, jsonFile, udp: flagBool(flags, 'udp') };
}

async function runBenchWith(cfg: BenchConfig): Promise<number> {
  const { seconds, repeat, outDir, jsonFile } = cfg;
  const plan: Array<{ name: string; spec: OverlaySpec }> = [
    { name: 'host-gw', spec: { modes: ['host-gw', 'host-gw'] } },
    { name: 'kernel vxlan', spec: { modes: ['kernel-vxlan', 'kernel-vxlan'] } },
    { name: 'userlay native vxlan', spec: userlaySpec('vxlan', 'native') },
    { name: 'userlay native vxlan, offloads off', spec: userlaySpec('vxlan', 'native', 'off') },
    { name: 'userlay js vxlan', spec: userlaySpec('vxlan', 'js') },
  ];
  if (cfg.udp) {
    plan.push({ name: 'userlay native udp', spec: userlaySpec('udp', 'native') });
    plan.push({ name: 'userlay js udp', spec: userlaySpec('udp', 'js') });
  }
  const session = await openLabSession(2, (sig) => process.exit(signalExitCode(sig)));
  const measured: Array<Omit<BenchCase, 'ratioToKernelVxlan'>> = [];
  try {
    const [a, b] = session.topo.nodes as [typeof session.topo.nodes[0], typeof session.topo.nodes[0]];
    for (const step of plan) {
      process.stderr.write(`bench: ${step.name}...\n`);
      try {
        const ov = await session.setOverlay(step.spec);
        const reach = await ping(a.podNs, b.podIP, { count: 3 });
        if (!reach.ok) throw new Error(`pods cannot reach each other: ${reach.output.split('\n').pop()}`);
        const runs = [];
        for (let i = 0; i < repeat; i++) runs.push(await iperf3(a, b, seconds, 5201, 1));
        runs.sort((x, y) => x.bitsPerSecond - y.bitsPerSecond);
        const t = runs[Math.floor(runs.length / 2)]!;
        let rss: number | null = null;
        for (const agent of ov.agents.values()) {
          const bytes = await rssBytes(agent.pid);
          if (bytes !== undefined) rss = Math.max(rss ?? 0, bytes / 2 ** 20);
        }
        measured.push({ name: step.name, bitsPerSecond: t.bitsPerSecond, retransmits: t.retransmits, agentRssMB: rss, podMtu: ov.podMtu, error: null });
      } catch (err) {
        if (session.interrupted) return 130;
        measured.push({ name: step.name, bitsPerSecond: null, retransmits: null, agentRssMB: null, podMtu: null, error: (err as Error).message.split('\n')[0]! });
      }
    }
  } finally {
    await session.close();
  }
  const kernel = measured.find((c) => c.name === 'kernel vxlan')?.bitsPerSecond ?? null;
  const cases: BenchCase[] = measured.map((c) => ({
    ...c,
    ratioToKernelVxlan: kernel && c.bitsPerSecond !== null ? c.bitsPerSecond / kernel : null,
  }));
  const report: BenchReport = {
    date: new Date().toISOString(),
    host: { cpus: os.cpus().length, kernel: os.release(), node: process.version },
    seconds,
    repeat,
    cases,
  };
  process.stdout.write(formatTable(report));
  await mkdir(path.dirname(path.resolve(jsonFile)), { recursive: true });
  await writeFile(jsonFile, JSON.stringify(report, null, 2) + '\n');
  await mkdir(outDir, { recursive: true });
  const svgFile = path.join(outDir, 'bench.svg');
  const colors: Record<string, string> = { 'host-gw': '#999999', 'kernel vxlan': '#555555' };
  await writeFile(svgFile, barChartSvg(
    `userlay bench: single-stream TCP pod -> pod (${report.host.cpus} CPUs, ${report.date.slice(0, 10)})`,
    'Gbit/s',
    cases.map((c) => ({
      label: c.name,
      value: (c.bitsPerSecond ?? 0) / 1e9,
      note: c.error !== null ? 'failed'
        : `${(c.bitsPerSecond! / 1e9).toFixed(2)} Gbit/s${c.ratioToKernelVxlan === null ? '' : ` (${c.ratioToKernelVxlan.toFixed(2)}x)`}`,
      color: colors[c.name] ?? '#4682b4',
    })),
  ));
  process.stdout.write(`wrote ${jsonFile} and ${svgFile}\n`);
  return cases.every((c) => c.error === null) ? 0 : 1;
}
