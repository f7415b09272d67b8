/**
 * One lab node whose static agent serves the CNI plugin, for tests that act as a container
 * runtime: fresh pod namespaces per case, the plugin run through the shim from the node
 * namespace (cni-runtime.ts), and what the node holds afterwards (host-local's allocations,
 * veths, attachment records, queued DELs) so a test can show nothing was left behind.
 */
import { readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { startAgent, type AgentCni, type AgentProcess } from '../../src/cli/lab/agent-process.js';
import { cniEnv, execPlugin, installShim, type PluginRun, type RuntimeAttachment } from '../../src/cli/lab/cni-runtime.js';
import { ip } from '../../src/cli/lab/exec.js';
import { cleanupStale } from '../../src/cli/lab/stale.js';
import { createTopology, deleteNamespaces, type LabNode, type Topology } from '../../src/cli/lab/topology.js';
import { TEST_PREFIX_ROOT } from './lab.js';

let count = 0;
let staleCleaned = false;

/** A node with a CNI-serving agent. */
export interface CniNode {
  readonly topo: Topology;
  readonly node: LabNode;
  readonly cni: AgentCni;
  readonly cniPath: string[];
  agent: AgentProcess | undefined;
  /** The plugin config a runtime would hand over (network "userlay"). */
  config(cniVersion?: string, extra?: Record<string, unknown>): Record<string, unknown>;
  /** A fresh pod network namespace; returns its path (/run/netns/...). */
  newPod(): Promise<{ ns: string; netns: string }>;
  /** Run the userlay plugin (the shim) for `command`, as a runtime does. */
  run(command: string, a: RuntimeAttachment | undefined, config?: Record<string, unknown>, env?: Record<string, string>): Promise<PluginRun>;
  /** host-local's allocated addresses of the network. */
  allocated(): Promise<string[]>;
  /** Pod veths in the node namespace (the underlay veth not counted). */
  veths(): Promise<string[]>;
  /** Attachment records in the agent's state dir. */
  records(): Promise<string[]>;
  /** Queued DELs. */
  queued(): Promise<string[]>;
  startAgent(): Promise<AgentProcess>;
  stopAgent(): Promise<void>;
  close(): Promise<void>;
}

async function list(dir: string): Promise<string[]> {
  return (await readdir(dir).catch(() => [] as string[])).filter((n) => !n.startsWith('.')).sort();
}

/** Build the node and start its agent (vxlan, js engine, no peers). */
export async function openCniNode(): Promise<CniNode> {
  if (!staleCleaned) {
    staleCleaned = true;
    await cleanupStale(TEST_PREFIX_ROOT);
  }
  const prefix = `${TEST_PREFIX_ROOT}${process.pid}-c${++count}.`;
  const topo = await createTopology({ prefix, nodes: 1, pods: 'cni' });
  const node = topo.nodes[0]!;
  const pods: string[] = [];
  let podCount = 0;
  const peers = path.join(topo.workDir, 'peers.json');
  const cni: AgentCni = { socket: path.join(topo.workDir, 'cni.sock'), stateDir: path.join(topo.workDir, 'cni') };
  let cniPath: string[];
  try {
    await writeFile(peers, '[]\n');
    cniPath = await installShim(path.join(topo.workDir, 'bin'));
  } catch (err) {
    await topo.close();
    throw err;
  }
  const self: CniNode = {
    topo, node, cni, cniPath, agent: undefined,
    config(cniVersion = '1.0.0', extra = {}) {
      return { cniVersion, name: 'userlay', type: 'userlay', socket: cni.socket, stateDir: cni.stateDir, ...extra };
    },
    async newPod() {
      const ns = `${prefix}x${++podCount}`;
      await ip(undefined, ['netns', 'add', ns]);
      pods.push(ns);
      return { ns, netns: `/run/netns/${ns}` };
    },
    run(command, a, config, env = {}) {
      return execPlugin(node.ns, cniPath, 'userlay', { ...cniEnv(command, a), ...env }, config ?? self.config());
    },
    allocated: async () => (await list(path.join(cni.stateDir, 'networks', 'userlay'))).filter((n) => /^[0-9.]+$/.test(n)),
    veths: async () => {
      const out = await ip(node.ns, ['-o', 'link', 'show', 'type', 'veth']);
      return out.stdout.split('\n').filter(Boolean).map((l) => l.split(':')[1]!.trim().split('@')[0]!).filter((d) => d !== node.underlayDev);
    },
    records: () => list(path.join(cni.stateDir, 'attachments')),
    queued: async () => (await list(path.join(cni.stateDir, 'queue'))).filter((n) => n.endsWith('.req')),
    async startAgent() {
      self.agent = await startAgent(node, { backend: 'vxlan', engine: 'js' }, peers, cni);
      return self.agent;
    },
    async stopAgent() {
      await self.agent?.stop();
      self.agent = undefined;
    },
    async close() {
      await self.stopAgent();
      await deleteNamespaces(pods);
      await topo.close();
    },
  };
  try {
    await self.startAgent();
  } catch (err) {
    await self.close();
    throw err;
  }
  return self;
}

/** Poll `probe` until it returns true or `timeoutMs` passes; returns the last value. */
export async function eventually(probe: () => Promise<boolean>, timeoutMs = 15_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
