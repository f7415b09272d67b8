/**
 * Kube-mode lab helpers for netns tests: the fake API server running in the underlay
 * namespace (kube-lab-apiserver.ts) and `userlay agent` processes in kube mode in node
 * namespaces.
 */
import { AGENT_NODE_FLAGS } from '../../src/agent/node-flags.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createInterface, type Interface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { userlayBin } from '../../src/cli/lab/agent-process.js';
import { ip, nsArgv, stopChild } from '../../src/cli/lab/exec.js';
import { clusterNetworks, underlayPrefixLen, type LabNode, type Topology } from '../../src/cli/lab/topology.js';
import { kubeconfigFor } from './fake-apiserver-kubeconfig.js';

/** Address of the API server relay on the underlay bridge. */
export const API_IP = '198.18.0.254';
/** Its address in an IPv6-only lab (2001:2::/48). */
export const API_IP6 = '2001:2::fe';
/** Port of the relay. */
export const API_PORT = 6443;

function waitLine(rl: Interface, pred: (line: string) => boolean, timeoutMs: number, what: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      rl.off('line', onLine);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
    }, timeoutMs);
    const onLine = (line: string) => {
      if (!pred(line)) return;
      clearTimeout(timer);
      rl.off('line', onLine);
      resolve(line);
    };
    rl.on('line', onLine);
  });
}

/** The fake API server process in the underlay namespace. */
export class LabApiServer {
  private seq = 0;
  private constructor(private readonly child: ChildProcess, private readonly out: Interface, readonly kubeconfig: string) {}

  /**
   * Put API_IP (API_IP6 in an IPv6-only lab) on `topo`'s underlay bridge, start the server in the underlay namespace relaying
   * API_IP:API_PORT, and write a kubeconfig pointing at it (path in `kubeconfig`, in the work dir).
   */
  static async start(topo: Topology): Promise<LabApiServer> {
    // the nodes' underlay family: an IPv6-only lab has no IPv4 address to reach
    const v6 = topo.nodes[0]?.underlayIPs[4] === undefined;
    const apiIP = v6 ? API_IP6 : API_IP;
    await ip(topo.underlayNs, ['addr', 'add', `${apiIP}/${underlayPrefixLen(v6 ? 6 : 4)}`, 'dev', 'br0', ...(v6 ? ['nodad'] : [])]);
    const script = fileURLToPath(new URL('./kube-lab-apiserver.js', import.meta.url));
    const child = spawn('ip', nsArgv(topo.underlayNs, process.execPath, [script, apiIP, String(API_PORT)]), { stdio: ['pipe', 'pipe', 'inherit'] });
    const out = createInterface({ input: child.stdout! });
    const kubeconfig = join(topo.workDir, 'kubeconfig');
    const s = new LabApiServer(child, out, kubeconfig);
    await waitLine(out, (l) => l.includes('"ready":true'), 10_000, 'the lab API server');
    await writeFile(kubeconfig, JSON.stringify(kubeconfigFor(`http://${v6 ? `[${apiIP}]` : apiIP}:${API_PORT}`)), { mode: 0o600 });
    return s;
  }

  /** Send one control command; resolves with its result. */
  async call(op: string, args: Record<string, unknown> = {}): Promise<unknown> {
    const id = ++this.seq;
    const answer = waitLine(this.out, (l) => l.startsWith(`{"id":${id},`), 10_000, `API server op ${op}`);
    this.child.stdin!.write(JSON.stringify({ id, op, ...args }) + '\n');
    const msg = JSON.parse(await answer) as { ok: boolean; result?: unknown; error?: string };
    if (!msg.ok) throw new Error(`API server op ${op}: ${msg.error}`);
    return msg.result;
  }

  /** Stop the process. */
  async close(): Promise<void> {
    this.child.stdin?.end();
    await stopChild(this.child, 2000);
  }
}

/** A bare Node object as the kubelet registers it, with its podCIDR. */
export function labNodeObject(node: LabNode): Record<string, unknown> {
  return {
    apiVersion: 'v1', kind: 'Node',
    metadata: { name: node.name, labels: { 'kubernetes.io/hostname': node.name } },
    spec: { podCIDR: node.subnet, podCIDRs: node.families.map((f) => node.inner[f]!.subnet) },
    status: { conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'lab' }] },
  };
}

/** A kube-mode agent process in a node namespace. */
export interface KubeAgentProcess {
  readonly child: ChildProcess;
  /** Status server port inside the node namespace (127.0.0.1). */
  readonly statusPort: number;
  readonly logFile: string;
  /** Resolves with the "agent ready" line. */
  readonly ready: Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

/** Start `node bin/userlay.js agent --kubeconfig ...` in `node`'s namespace. */
export async function startKubeAgent(node: LabNode, kubeconfig: string, workDir: string, extra: string[] = []): Promise<KubeAgentProcess> {
  const dir = join(workDir, node.name);
  await mkdir(dir, { recursive: true });
  const statusPort = 9400;
  // one network: --network; a dual-stack node's two: a net-conf of both families, as flannel's
  const networks = clusterNetworks(node);
  let netArgs = ['--network', networks[0]!];
  if (networks.length > 1) {
    const netConf = join(dir, 'net-conf.json');
    await writeFile(netConf, JSON.stringify({ Network: networks[0], IPv6Network: networks[1], EnableIPv6: true, Backend: { Type: 'vxlan' } }));
    netArgs = ['--net-conf', netConf];
  }
  const args = [
    userlayBin(), 'agent', '--kubeconfig', kubeconfig, '--node-name', node.name, ...netArgs,
    '--iface', node.underlayDev, '--state-dir', join(dir, 'state'), '--subnet-file', join(dir, 'subnet.env'),
    '--status-addr', `127.0.0.1:${statusPort}`, '--resync-period', '10', '--tun', 'userlay0', '--log-level', 'debug', ...extra,
  ];
  const child = spawn('ip', nsArgv(node.ns, process.execPath, [...AGENT_NODE_FLAGS, ...args]), { stdio: ['ignore', 'ignore', 'pipe'] });
  const logFile = join(dir, `agent-${Date.now()}.log`);
  const log = createWriteStream(logFile);
  child.stderr!.pipe(log);
  const lines = createInterface({ input: child.stderr! });
  const ready = waitLine(lines, (l) => l.includes('"msg":"agent ready"'), 30_000, `agent ${node.name} ready (log ${logFile})`)
    .then((l) => JSON.parse(l) as Record<string, unknown>);
  ready.catch(() => {});
  return {
    child, statusPort, logFile, ready,
    async stop() {
      await stopChild(child, 5000);
    },
  };
}
