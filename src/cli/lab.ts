/**
 * `userlay lab` — the main job: an N-node userspace overlay in network
 * namespaces, checked end to end.
 *
 *   userlay lab [--nodes 3] [--backend vxlan|udp] [--engine native|js]
 *               [--offloads auto|off] [--seconds 5] [--json] [--prometheus] [--ip-masq]
 *               [--overlay userlay|kernel-vxlan|host-gw|mixed] [--family 4|6|dual] [--underlay-family 4|6|dual]
 *               [--underlay flat|routed] [--direct-routing]
 *
 * Builds the topology (src/cli/lab/topology.ts), starts one static-mode agent
 * per node, attaches each node's pod through the userlay CNI plugin, pings every pod from every other pod, measures single-stream TCP
 * between the pods of nodes 1 and 2 with iperf3, reads each agent's RSS, then
 * tears everything down (also on Ctrl-C, and leftovers of crashed runs first).
 * `--overlay` swaps the agents for the kernel paths the bench compares with.
 * `--prometheus` also starts a Prometheus scraping every agent (lab/prometheus.ts), says
 * where to look, and keeps the lab up until Ctrl-C. `--ip-masq` runs the agents with it and checks
 * from every pod that a host outside the cluster network (the lab's outside namespace) sees the
 * pod's node's address. `--family 6` builds the lab in IPv6 (2001:2::/48), `--family dual` gives every
 * node both underlay addresses and every pod an address of each family; the pings run in each
 * family; `--underlay-family` picks which underlay family the agents use (default: IPv6 only for
 * `--family 6`); `dual` gives each agent a socket per family (--public-ipv6), IPv4 pods then
 * travel over IPv4 and IPv6 pods over IPv6, as flannel's dual stack. `--overlay mixed` makes
 * every second node a kernel vxlan node set up as flannel does (vxlan backend; in a dual lab
 * with `--underlay-family dual`: flannel.1 and flannel-v6.1, a VTEP MAC each).
 * `--underlay routed` puts the nodes on two segments joined by a router
 * (topology.ts), so `--direct-routing` has peers of both kinds; `--backend host-gw` runs the
 * agents with kernel routes only.
 */
import { flagBool, flagInt, flagOneOf, flagString, type FlagSpec, type ParsedFlags } from '../agent/flags.js';
import { errorCode, usageError } from '../errors.js';
import { OFFLOAD_MODES, type OffloadMode } from '../dataplane/offloads.js';
import type { EngineKind } from '../dataplane/types.js';
import type { Family } from '../dataplane/net.js';
import { BACKENDS, BACKEND_NAMES, backendList, type Backend } from '../dataplane/backends.js';
import { LAB_FAMILIES, labFamilies, type LabFamily, type UnderlayKind } from './lab/topology.js';
import { rssBytes } from './lab/exec.js';
import type { OverlayMode } from './lab/overlay.js';
import { egressFromPods, iperf3, pingAllPairs, type EgressResult, type PingResult } from './lab/probes.js';
import { openLabSession, signalExitCode } from './lab/session.js';
import { runLabCommand } from './lab/command.js';
import { labPrometheusHint, startLabPrometheus, type LabPrometheus } from './lab/prometheus.js';

/** Status port of the lab agents inside their namespaces when --prometheus scrapes them. */
const STATUS_PORT = 9400;

const specs: FlagSpec[] = [
  { name: 'nodes', kind: 'int', default: 3, help: 'number of nodes (2..50)' },
  { name: 'backend', kind: 'string', default: 'vxlan', help: `the agents' --backend: ${backendList()}` },
  { name: 'direct-routing', kind: 'bool', help: 'agents route on-link peers by the kernel, encapsulate the others' },
  { name: 'underlay', kind: 'string', default: 'flat', help: 'flat (one segment) or routed (two segments and a router)' },
  { name: 'engine', kind: 'string', default: 'native', help: 'forwarding engine: native or js' },
  { name: 'offloads', kind: 'string', default: 'auto', help: "the agents' --offloads: auto or off" },
  { name: 'seconds', kind: 'int', default: 5, help: 'iperf3 duration in seconds' },
  { name: 'json', kind: 'bool', help: 'print the result as JSON' },
  { name: 'overlay', kind: 'string', default: 'userlay', help: 'userlay, kernel-vxlan or host-gw (baselines), or mixed (userlay and kernel vxlan nodes alternating)' },
  { name: 'prometheus', kind: 'bool', help: 'start a Prometheus scraping every agent; the lab stays up until Ctrl-C' },
  { name: 'ip-masq', kind: 'bool', help: 'agents masquerade pod egress; check what a host outside the cluster network sees' },
  { name: 'family', kind: 'string', default: '4', help: 'pod and underlay families: 4, 6 (2001:2::/48) or dual' },
  { name: 'underlay-family', kind: 'string', default: '', help: 'underlay family of the agents in a dual lab: 4 (default), 6, or dual (a socket per family)' },
];

/** The lab's result, as printed with --json. */
export interface LabReport {
  readonly nodes: number;
  readonly overlay: OverlayMode | 'mixed';
  readonly backend: Backend;
  readonly engine: EngineKind;
  readonly offloads: OffloadMode;
  /** Pod families of the lab and the agents' underlay family ('dual': both, a socket each). */
  readonly family: LabFamily;
  readonly underlayFamily: Family | 'dual';
  readonly directRouting: boolean;
  readonly underlay: UnderlayKind;
  readonly podMtu: number;
  readonly pings: Array<{ from: string; to: string; family: Family; ok: boolean; rttMs: number | null }>;
  readonly throughput: { from: string; to: string; seconds: number; bitsPerSecond: number; retransmits: number } | null;
  readonly agents: Array<{ node: string; pid: number; rssMB: number | null }>;
  /** With --ip-masq: the source address the outside host saw from each pod, and whether it is the node's. */
  readonly egress: Array<EgressResult & { ok: boolean }> | null;
  readonly ok: boolean;
}

function formatTable(r: LabReport): string {
  const lines: string[] = [];
  const agents = `userlay ${r.backend}${r.directRouting ? ' + direct routing' : ''}/${r.engine}, offloads ${r.offloads}`;
  const what = r.overlay === 'userlay' ? agents : r.overlay === 'mixed' ? `${agents} with kernel vxlan nodes` : r.overlay;
  const fam = r.family === '4' ? '' : `, pods IPv${r.family === 'dual' ? '4+6' : '6'} over IPv${r.underlayFamily === 'dual' ? '4+6' : r.underlayFamily}`;
  const routed = r.underlay === 'routed' ? ', routed underlay' : '';
  lines.push(`lab: ${r.nodes} nodes, ${what}${fam}${routed}, pod MTU ${r.podMtu}`);
  lines.push('');
  lines.push('PAIR        IP  PING   RTT ms');
  for (const p of r.pings) {
    lines.push(`${`${p.from} -> ${p.to}`.padEnd(12)}v${p.family}  ${(p.ok ? 'ok' : 'FAIL').padEnd(7)}${p.rttMs === null ? '-' : p.rttMs.toFixed(3)}`);
  }
  const okCount = r.pings.filter((p) => p.ok).length;
  lines.push(`pairs ok: ${okCount}/${r.pings.length}`);
  if (r.throughput) {
    const t = r.throughput;
    lines.push(`TCP ${t.from} -> ${t.to} (pod to pod, 1 stream, ${t.seconds} s): ${(t.bitsPerSecond / 1e9).toFixed(3)} Gbit/s, ${t.retransmits} retransmits`);
  }
  for (const e of r.egress ?? []) {
    lines.push(`egress ${e.from} -> outside: seen as ${e.seenAs ?? 'nothing (no answer)'} ${e.ok ? 'ok (node address)' : 'FAIL'}`);
  }
  for (const a of r.agents) {
    lines.push(`agent ${a.node}: pid ${a.pid}, RSS ${a.rssMB === null ? '?' : a.rssMB.toFixed(1)} MB`);
  }
  lines.push(r.ok ? 'result: ok' : `result: FAILED (${r.pings.every((p) => p.ok) ? 'pod egress is not masqueraded to the node address' : 'some pod pairs cannot reach each other'})`);
  return lines.join('\n') + '\n';
}

function toReportPing(p: PingResult, family: Family): LabReport['pings'][number] {
  return { from: p.from, to: p.to, family, ok: p.ok, rttMs: p.rttMs ?? null };
}

/**
 * Run the lab with `argv` (the flags after "lab"). Sets process.exitCode and
 * resolves with it: 0 all pods reach each other, 1 some pair failed or the
 * lab broke, 2 usage or environment problem (not root, tool missing), 128+n
 * on a signal.
 */
export function runLab(argv: readonly string[]): Promise<number> {
  return runLabCommand({ name: 'userlay lab', specs, synopsis: 'usage: userlay lab [flags]', check: checkLabFlags, run: runLabWith }, argv);
}

/** The checked flags of `userlay lab`. */
interface LabConfig {
  readonly nodes: number;
  readonly seconds: number;
  readonly overlay: OverlayMode | 'mixed';
  readonly backend: Backend;
  readonly engine: EngineKind;
  readonly offloads: OffloadMode;
  readonly json: boolean;
  readonly prometheus: boolean;
  readonly ipMasq: boolean;
  /** Pod families of the lab and the agents' underlay family. */
  readonly family: LabFamily;
  readonly underlayFamily: Family;
  /** --underlay-family dual: the agents use both underlay families. */
  readonly dualUnderlay: boolean;
  readonly directRouting: boolean;
  readonly underlay: UnderlayKind;
}

function checkLabFlags(flags: ParsedFlags): LabConfig {
  const backend = flagOneOf<Backend>(flags, 'backend', BACKEND_NAMES);
  const directRouting = flagBool(flags, 'direct-routing');
  if (directRouting && !BACKENDS[backend].encapsulates) throw usageError('--direct-routing', `${backend} routes every peer directly already`);
  const underlay = flagOneOf<UnderlayKind>(flags, 'underlay', ['flat', 'routed']);
  const engine = flagOneOf(flags, 'engine', ['native', 'js'] as const);
  const offloads = flagOneOf(flags, 'offloads', OFFLOAD_MODES);
  const overlay = flagOneOf(flags, 'overlay', ['userlay', 'kernel-vxlan', 'host-gw', 'mixed'] as const);
  if (overlay === 'mixed' && backend !== 'vxlan') throw usageError('--overlay', 'mixed needs --backend vxlan (kernel vxlan nodes speak flannel\'s vxlan)');
  const nodes = flagInt(flags, 'nodes')!;
  if (nodes < 2 || nodes > 50) throw usageError('--nodes', `${nodes} is not between 2 and 50`);
  const seconds = flagInt(flags, 'seconds')!;
  if (seconds < 1) throw usageError('--seconds', 'must be at least 1');
  const prometheus = flagBool(flags, 'prometheus');
  if (prometheus && overlay !== 'userlay' && overlay !== 'mixed') throw usageError('--prometheus', 'needs --overlay userlay (the agents are what it scrapes)');
  const ipMasq = flagBool(flags, 'ip-masq');
  if (ipMasq && overlay !== 'userlay') throw usageError('--ip-masq', 'needs --overlay userlay (the agents do the masquerading)');
  const family = flagOneOf(flags, 'family', LAB_FAMILIES);
  const underlayText = flagString(flags, 'underlay-family');
  const families = labFamilies(family);
  let underlayFamily: Family = families[0]!;
  let dualUnderlay = false;
  if (underlayText !== undefined && underlayText !== '') {
    const choice = flagOneOf(flags, 'underlay-family', ['4', '6', 'dual'] as const);
    dualUnderlay = choice === 'dual';
    underlayFamily = choice === '6' ? 6 : 4;
    if (dualUnderlay && family !== 'dual') throw usageError('--underlay-family', `dual needs --family dual (a ${family} lab has one underlay family)`);
    if (!families.includes(underlayFamily)) throw usageError('--underlay-family', `IPv${underlayFamily} is not a family of --family ${family}`);
  }
  if (overlay === 'mixed' && family === 'dual' && !dualUnderlay) {
    throw usageError('--underlay-family', 'a dual-stack mixed lab needs --underlay-family dual: flannel\'s dual stack has a device per underlay family');
  }
  if (underlay === 'routed' && family !== '4') throw usageError('--underlay', 'a routed underlay is IPv4 only (use --family 4)');
  return {
    nodes, seconds, overlay, backend, engine, offloads, json: flagBool(flags, 'json'), prometheus, ipMasq, family, underlayFamily, dualUnderlay, directRouting, underlay,
  };
}

async function runLabWith(cfg: LabConfig): Promise<number> {
  const { nodes, overlay, backend, engine, offloads } = cfg;
  const seconds = cfg.seconds;
  let prom: LabPrometheus | undefined;
  // userlay pods are attached through the CNI plugin, as a runtime does; baselines have no plugin
  const session = await openLabSession(nodes, (sig) => void (prom?.close() ?? Promise.resolve()).finally(() => process.exit(signalExitCode(sig))),
    overlay === 'userlay' || overlay === 'mixed' ? 'cni' : 'veth', cfg.ipMasq, { family: cfg.family, underlayFamily: cfg.underlayFamily, underlay: cfg.underlay });
  try {
    const statusPort = cfg.prometheus ? { statusPort: STATUS_PORT } : {};
    // mixed: odd nodes run userlay, even ones are kernel vxlan nodes as flannel sets them up
    const modes: OverlayMode[] = Array.from({ length: nodes }, (_, i) => (overlay !== 'mixed' ? overlay : i % 2 === 0 ? 'userlay' : 'kernel-vxlan'));
    const ov = await session.setOverlay({
      modes, userlay: { backend, engine, offloads, ipMasq: cfg.ipMasq, directRouting: cfg.directRouting, dualUnderlay: cfg.dualUnderlay, ...statusPort },
    });
    if (cfg.prometheus) prom = await startLabPrometheus(session.topo.nodes.filter((n) => ov.agents.has(n.index)).map((n) => ({ node: n.name, ns: n.ns, statusPort: STATUS_PORT })), session.topo.prefix);
    const pings: LabReport['pings'] = [];
    for (const f of labFamilies(cfg.family)) pings.push(...(await pingAllPairs(session.topo.nodes, f)).map((p) => toReportPing(p, f)));
    const [a, b] = session.topo.nodes as [typeof session.topo.nodes[0], typeof session.topo.nodes[0]];
    let throughput: LabReport['throughput'] = null;
    if (pings.find((p) => p.from === a.name && p.to === b.name && p.family === a.families[0])?.ok) {
      const t = await iperf3(a, b, seconds);
      throughput = { from: a.name, to: b.name, seconds, ...t };
    }
    const agents: LabReport['agents'] = [];
    for (const [, agent] of ov.agents) {
      const rss = await rssBytes(agent.pid);
      agents.push({ node: agent.node.name, pid: agent.pid, rssMB: rss === undefined ? null : rss / 2 ** 20 });
    }
    const byName = new Map(session.topo.nodes.map((n) => [n.name, n]));
    const egress = session.topo.outside === undefined ? null : (await egressFromPods(session.topo.nodes, session.topo.outside))
      .map((e) => ({ ...e, ok: e.seenAs === byName.get(e.from)?.underlayIPs[session.topo.outside!.ip.includes(':') ? 6 : 4] }));
    const report: LabReport = {
      nodes, overlay, backend, engine, offloads, family: cfg.family, underlayFamily: cfg.dualUnderlay ? 'dual' : cfg.underlayFamily, directRouting: cfg.directRouting,
      underlay: cfg.underlay, podMtu: ov.podMtu,
      pings, throughput, agents, egress, ok: pings.every((p) => p.ok) && (egress ?? []).every((e) => e.ok),
    };
    process.stdout.write(cfg.json ? JSON.stringify(report, null, 2) + '\n' : formatTable(report));
    if (prom) {
      (cfg.json ? process.stderr : process.stdout).write(labPrometheusHint(prom, session.topo.nodes)); // stdout stays JSON
      await new Promise<never>(() => {}); // until Ctrl-C: the session's signal handler tears down and exits
    }
    return report.ok ? 0 : 1;
  } catch (err) {
    if (session.interrupted) return signalExitCode(session.interrupted);
    const code = errorCode(err);
    process.stderr.write(`userlay: lab failed${code ? ` (${code})` : ''}: ${(err as Error).message}\n`);
    return code === 'EUSAGE' ? 2 : 1;
  } finally {
    await prom?.close();
    await session.close();
  }
}
