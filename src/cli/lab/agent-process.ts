/**
 * One `userlay agent` (static mode) running inside a lab node namespace.
 *
 * Started as `ip netns exec <node ns> node bin/userlay.js agent ...`; ready
 * when it logs the `"msg":"agent ready"` line (which carries the TUN name,
 * the TUN MTU and the pod MTU). The last log lines are kept for diagnostics.
 */
import { AGENT_NODE_FLAGS } from '../../agent/node-flags.js';
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { UserlayError } from '../../errors.js';
import type { EngineKind } from '../../dataplane/types.js';
import { BACKENDS, type Backend } from '../../dataplane/backends.js';
import { nsSpawn, stopChild, waitExit } from './exec.js';
import { clusterNetworks, type LabNode } from './topology.js';

/** Settings of the userlay agents of a lab. */
export interface UserlayAgentConfig {
  readonly backend: Backend;
  readonly engine: EngineKind;
  /** Agent --offloads (default: the agent's default, auto). */
  readonly offloads?: 'auto' | 'off';
  /** Agent --threads: forwarding thread pairs of the native engine (default: the agent's, 1). */
  readonly threads?: number;
  /** Agent --ip-masq: masquerade pod egress to outside the cluster network. */
  readonly ipMasq?: boolean;
  /**
   * Dual-stack nodes use both underlay families: --public-ip is the IPv4 address and
   * --public-ipv6 the IPv6 one (a UDP socket each), as flannel's dual stack. Needs a 'dual' lab.
   */
  readonly dualUnderlay?: boolean;
  /** Agent --direct-routing: kernel routes to on-link peers (encapsulating backends). */
  readonly directRouting?: boolean;
  /** When set, each agent serves its status HTTP on 127.0.0.1:<port> inside its node ns. */
  readonly statusPort?: number;
  /** Agent --log-level (default "info"; higher levels would hide the "agent ready" line). */
  readonly logLevel?: 'debug' | 'info';
  /**
   * The userlay nodes' peers-file entries for each other say partialCsum (default true, what
   * kube mode publishes): inner checksums left partial between them; false for the ablation.
   */
  readonly partialCsum?: boolean;
  /** Agent --mtu (default: the agent's, auto). */
  readonly mtu?: number | 'auto';
  /** Milliseconds to wait for "agent ready" (default 20 s). */
  readonly readyTimeoutMs?: number;
}

/** Where a lab agent serves the CNI plugin (per node: the nodes of a lab share one filesystem). */
export interface AgentCni {
  readonly socket: string;
  readonly stateDir: string;
}

/** What the agent reported in its "agent ready" line. */
export interface AgentReady {
  readonly tun: string;
  readonly mtu: number;
  readonly podMTU: number;
}

/** A running agent. */
export interface AgentProcess {
  readonly node: LabNode;
  readonly pid: number;
  readonly ready: AgentReady;
  /** The last (up to 300) log lines of the agent, oldest first. */
  readonly logs: string[];
  /** Its CNI endpoint, when it serves one. */
  readonly cni: AgentCni | undefined;
  /** Ask the agent to re-read its peers file (SIGHUP). */
  hup(): void;
  /** SIGTERM, then SIGKILL after `graceMs`. Idempotent. */
  stop(graceMs?: number): Promise<{ exit: number | string; killed: boolean }>;
  /** SIGKILL (a crash: no teardown runs); resolves when it has exited. */
  kill(): Promise<number | string>;
}

/** Path of bin/userlay.js (this file lives in dist/src/cli/lab/). */
export function userlayBin(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  return path.resolve(here, '../../../../bin/userlay.js');
}

/** The agent's command-line flags for `node` with peers in `peersFile`. */
export function agentArgs(node: LabNode, config: UserlayAgentConfig, peersFile: string, cni?: AgentCni, subnetFile?: string): string[] {
  const args = [
    'agent',
    '--node', node.name,
    ...(config.dualUnderlay && node.families.length > 1
      ? ['--public-ip', node.underlayIPs[4]!, '--public-ipv6', node.underlayIPs[6]!]
      : ['--public-ip', node.underlayIP]),
    ...node.families.flatMap((f) => ['--subnet', node.inner[f]!.subnet]),
    ...clusterNetworks(node).flatMap((n) => ['--network', n]),
    '--backend', config.backend,
    '--engine', config.engine,
    '--peers', peersFile,
    '--log-level', config.logLevel ?? 'info',
  ];
  if (BACKENDS[config.backend].needsVtepMAC) args.push('--vtep-mac', node.vtepMAC);
  if (config.statusPort !== undefined) args.push('--status-addr', `127.0.0.1:${config.statusPort}`);
  if (config.offloads !== undefined) args.push('--offloads', config.offloads);
  if (config.threads !== undefined) args.push('--threads', String(config.threads));
  if (config.ipMasq) args.push('--ip-masq');
  if (config.directRouting) args.push('--direct-routing');
  if (cni) args.push('--cni-socket', cni.socket, '--cni-state-dir', cni.stateDir);
  if (config.mtu !== undefined) args.push('--mtu', String(config.mtu));
  if (subnetFile !== undefined) args.push('--subnet-file', subnetFile);
  return args;
}

function keepLines(child: ChildProcess, logs: string[], onLine: (line: string) => void): void {
  for (const stream of [child.stdout, child.stderr]) {
    if (!stream) continue;
    createInterface({ input: stream }).on('line', (line) => {
      logs.push(line);
      if (logs.length > 300) logs.shift();
      onLine(line);
    });
  }
}

function parseReady(line: string): AgentReady | undefined {
  if (!line.includes('"agent ready"')) return undefined;
  try {
    const rec = JSON.parse(line) as Record<string, unknown>;
    if (rec['msg'] !== 'agent ready') return undefined;
    const mtu = Number(rec['mtu']);
    const podMTU = Number(rec['podMTU'] ?? rec['mtu']);
    return { tun: String(rec['tun']), mtu, podMTU };
  } catch {
    return undefined;
  }
}

/**
 * Start the agent for `node` and wait until it is ready. Throws UserlayError
 * EAGENT with the agent's last log lines when it exits or does not get ready
 * in time (the process is stopped first).
 */
export async function startAgent(node: LabNode, config: UserlayAgentConfig, peersFile: string, cni?: AgentCni, subnetFile?: string): Promise<AgentProcess> {
  const child = nsSpawn(node.ns, process.execPath, [...AGENT_NODE_FLAGS, userlayBin(), ...agentArgs(node, config, peersFile, cni, subnetFile)]);
  const logs: string[] = [];
  const timeoutMs = config.readyTimeoutMs ?? 20_000;
  let timer: NodeJS.Timeout | undefined;
  try {
    const ready = await new Promise<AgentReady>((resolve, reject) => {
      keepLines(child, logs, (line) => {
        const r = parseReady(line);
        if (r) resolve(r);
      });
      child.once('error', (err) => reject(err));
      child.once('exit', (code, signal) => reject(new Error(`exited (${code ?? signal}) before "agent ready"`)));
      timer = setTimeout(() => reject(new Error(`not ready after ${timeoutMs} ms`)), timeoutMs);
    });
    clearTimeout(timer);
    const pid = child.pid ?? -1;
    return {
      node,
      pid,
      ready,
      logs,
      cni,
      hup: () => { child.kill('SIGHUP'); },
      stop: (graceMs = 5000) => stopChild(child, graceMs),
      kill: () => {
        const done = waitExit(child);
        child.kill('SIGKILL');
        return done;
      },
    };
  } catch (err) {
    clearTimeout(timer);
    await stopChild(child, 2000);
    const tail = logs.slice(-8).join('\n  ');
    throw new UserlayError('EAGENT', `agent on ${node.name}: ${(err as Error).message}\n  ${tail}`, { cause: err });
  }
}
