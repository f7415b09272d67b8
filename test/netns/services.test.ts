/**
 * Services over the overlay: kube-proxy's iptables mode DNATs service traffic before routing.
 * A 2-node lab (pods attached through the userlay CNI plugin) gets the nat rules kube-proxy
 * writes for a ClusterIP + NodePort Service whose endpoints are the pods of both nodes; then
 * pods reach the ClusterIP, a client on the underlay reaches the NodePort, the answers come
 * from both endpoints, and a pod reaches itself through its own Service (hairpin).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createInterface } from 'node:readline';
import type { ChildProcess } from 'node:child_process';
import { ip, nsRun, nsSpawn, run, stopChild } from '../../src/cli/lab/exec.js';
import { applyOverlay, type Overlay } from '../../src/cli/lab/overlay.js';
import { podToolPath } from '../../src/cli/lab/probes.js';
import { CLUSTER_NETWORK, createTopology, type LabNode, type Topology } from '../../src/cli/lab/topology.js';
import { kubeProxyNatRules } from '../support/kube-proxy-rules.js';
import { NEEDS_ROOT, TEST_PREFIX_ROOT } from '../support/lab.js';

const CLUSTER_IP = '198.18.100.10';
const PORT = 80;
const NODE_PORT = 30080;
const TARGET = 8080;
const CLIENT_IP = '198.18.0.254';
const ASKS = 40;

interface Answers { answers: Record<string, number>; peers: Record<string, string>; errors: string[] }

describe('kube-proxy iptables Services over the userlay overlay', { skip: NEEDS_ROOT }, () => {
  let topo: Topology;
  let overlay: Overlay | undefined;
  const servers: ChildProcess[] = [];

  const ask = async (ns: string, host: string, port: number): Promise<Answers> => {
    const r = await nsRun(ns, process.execPath, [podToolPath(), 'tcp-ask', host, String(port), String(ASKS)], { timeoutMs: 120_000 });
    return JSON.parse(r.stdout) as Answers;
  };

  before(async () => {
    topo = await createTopology({ prefix: `${TEST_PREFIX_ROOT}${process.pid}-s.`, nodes: 2, pods: 'cni' });
    overlay = await applyOverlay(topo, { modes: ['userlay', 'userlay'], userlay: { backend: 'vxlan', engine: 'native' } });
    const rules = kubeProxyNatRules({
      id: 'WEB', clusterIP: CLUSTER_IP, port: PORT, nodePort: NODE_PORT, clusterCidr: CLUSTER_NETWORK,
      endpoints: topo.nodes.map((n) => ({ id: n.name.toUpperCase(), ip: n.podIP, port: TARGET })),
    });
    for (const n of topo.nodes) {
      await run('ip', ['netns', 'exec', n.ns, 'iptables-restore', '--noflush'], { input: rules });
      servers.push(await serve(n));
    }
    await ip(topo.underlayNs, ['addr', 'add', `${CLIENT_IP}/24`, 'dev', 'br0']);
  });

  after(async () => {
    for (const s of servers) await stopChild(s, 2000);
    await overlay?.remove();
    await topo?.close();
  });

  test('pods reach the ClusterIP; answers come from the endpoints on both nodes', async () => {
    for (const n of topo.nodes) {
      const r = await ask(n.podNs, CLUSTER_IP, PORT);
      assert.deepEqual(r.errors, [], `from ${n.name}'s pod`);
      assert.deepEqual(Object.keys(r.answers).sort(), ['n1', 'n2'], `from ${n.name}'s pod: spread over both endpoints ${JSON.stringify(r.answers)}`);
      // pod-to-service traffic inside the cluster network is not masqueraded
      const other = topo.nodes.find((o) => o !== n)!;
      assert.equal(r.peers[other.name], n.podIP, 'the remote endpoint sees the pod\'s own address');
    }
  });

  test('a pod reaches itself through its own Service (hairpin, masqueraded to its gateway)', async () => {
    const n1 = topo.nodes[0]!;
    const r = await ask(n1.podNs, CLUSTER_IP, PORT);
    assert.ok((r.answers['n1'] ?? 0) > 0, `some answers from itself: ${JSON.stringify(r.answers)}`);
    assert.equal(r.peers['n1'], n1.gatewayIP, 'hairpin traffic is masqueraded by KUBE-MARK-MASQ in KUBE-SEP');
  });

  test('a client on the underlay reaches the NodePort of each node; answers come from both endpoints', async () => {
    for (const n of topo.nodes) {
      const r = await ask(topo.underlayNs, n.underlayIP, NODE_PORT);
      assert.deepEqual(r.errors, [], `NodePort on ${n.name}`);
      assert.deepEqual(Object.keys(r.answers).sort(), ['n1', 'n2'], `NodePort on ${n.name}: ${JSON.stringify(r.answers)}`);
      assert.ok(!Object.values(r.peers).includes(CLIENT_IP), 'NodePort traffic is masqueraded');
    }
  });
});

/** Start `tcp-serve` in node `n`'s pod and wait until it listens. */
async function serve(n: LabNode): Promise<ChildProcess> {
  const child = nsSpawn(n.podNs, process.execPath, [podToolPath(), 'tcp-serve', String(TARGET), n.name]);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`tcp-serve in ${n.podNs} did not start`)), 10_000);
    createInterface({ input: child.stdout! }).once('line', () => { clearTimeout(timer); resolve(); });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`tcp-serve in ${n.podNs} exited ${code}`)); });
  });
  return child;
}
