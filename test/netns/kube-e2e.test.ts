/**
 * Kube mode end to end (root): three node namespaces, each running the real
 * `node bin/userlay.js agent --kubeconfig ...` process against the fake API server, which runs
 * in the underlay namespace behind 198.18.0.254:6443 (kube-lab-apiserver.ts).
 *
 * One lab, checked in order: all-pairs pod ping; deleting a Node removes its peer within 1 s;
 * adding it back makes it reachable; the API server stopped for 30 s does not interrupt an
 * established TCP transfer; an agent restarted while the API server is down forwards from
 * its snapshot.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { nsRun, nsSpawn, sleep, stopChild } from '../../src/cli/lab/exec.js';
import { ping, pingAllPairs } from '../../src/cli/lab/probes.js';
import { cleanupStale } from '../../src/cli/lab/stale.js';
import { createTopology, type LabNode, type Topology } from '../../src/cli/lab/topology.js';
import { NEEDS_ROOT, TEST_PREFIX_ROOT, pingUntil, statusJson } from '../support/lab.js';
import { LabApiServer, labNodeObject, startKubeAgent, type KubeAgentProcess } from '../support/kube-lab.js';

async function fdbNames(node: LabNode, port: number): Promise<string[]> {
  const doc = (await statusJson(node, port, '/debug/fdb')) as { peers: Array<{ name: string }> };
  return doc.peers.map((p) => p.name).sort();
}

/** Milliseconds until `node`'s FDB no longer (or again) lists `peer`; throws after `timeoutMs`. */
async function timeUntilFdb(node: LabNode, port: number, peer: string, present: boolean, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    if ((await fdbNames(node, port)).includes(peer) === present) return Date.now() - t0;
    if (Date.now() - t0 > timeoutMs) throw new Error(`${node.name}: ${peer} still ${present ? 'absent' : 'present'} after ${timeoutMs} ms`);
    await sleep(20);
  }
}

test('kube mode e2e: 3 agents against the API server in netns', { skip: NEEDS_ROOT, timeout: 300_000 }, async (t) => {
  await cleanupStale(TEST_PREFIX_ROOT);
  let topo: Topology | undefined;
  let api: LabApiServer | undefined;
  const agents: KubeAgentProcess[] = [];
  try {
    topo = await createTopology({ prefix: `${TEST_PREFIX_ROOT}${process.pid}-k.`, nodes: 3 });
    const [n1, n2, n3] = topo.nodes as [LabNode, LabNode, LabNode];
    api = await LabApiServer.start(topo);
    for (const n of topo.nodes) await api.call('upsert', { node: labNodeObject(n) });

    for (const n of topo.nodes) agents.push(await startKubeAgent(n, api.kubeconfig, topo.workDir));
    const ready = await Promise.all(agents.map((a) => a.ready));
    assert.equal(ready[0]!['podMTU'], 1450);
    await topo.setPodMtu(Number(ready[0]!['podMTU']));
    const env = await readFile(join(topo.workDir, 'n2', 'subnet.env'), 'utf8');
    assert.match(env, /^FLANNEL_SUBNET=198\.19\.2\.1\/24$/m);
    const port = agents[0]!.statusPort;

    // 1. all pairs
    await pingUntil(n1, n3, true);
    const pings = await pingAllPairs(topo.nodes);
    assert.deepEqual(pings.filter((p) => !p.ok).map((p) => `${p.from}->${p.to}`), [], 'all-pairs ping');
    const n2Lease = (await api.call('get', { name: 'n2' })) as { metadata: { annotations: Record<string, string> } };
    assert.equal(n2Lease.metadata.annotations['userlay.io/public-ip'], '198.18.0.2');

    // 2. deleting a Node removes its peer within 1 s
    await api.call('delete', { name: 'n3' });
    const removedMs = await timeUntilFdb(n1, port, 'n3', false, 1000);
    await timeUntilFdb(n2, port, 'n3', false, 1000);
    assert.ok(removedMs <= 1000, `n3 removed after ${removedMs} ms`);
    t.diagnostic(`n3 left n1's FDB ${removedMs} ms after the Node was deleted`);
    const stats = (await statusJson(n1, port, '/debug/stats')) as { fdbPeers: number; fdbRoutes: number };
    assert.deepEqual([stats.fdbPeers, stats.fdbRoutes], [1, 1], 'n3\'s FDB route is gone too');
    assert.equal((await ping(n1.podNs, n3.podIP, { count: 1 })).ok, false, 'n3 unreachable after its Node is gone');

    // 3. adding the Node back: its agent re-publishes the lease, the others route to it
    await api.call('upsert', { node: labNodeObject(n3) });
    await timeUntilFdb(n1, port, 'n3', true, 10_000);
    assert.equal((await pingUntil(n1, n3, true)).ok, true, 'n3 reachable again');
    assert.equal((await pingUntil(n3, n2, true)).ok, true);

    // 4. API server down for 30 s during an established TCP transfer
    const server = nsSpawn(n2.podNs, 'iperf3', ['-s', '-1', '-B', n2.podIP, '-p', '5211']);
    try {
      await sleep(300);
      const client = nsRun(n1.podNs, 'iperf3', ['-c', n2.podIP, '-p', '5211', '-t', '40', '-b', '20M', '--json'], { allowFail: true, timeoutMs: 90_000 });
      await sleep(4000);
      await api.call('stop');
      await sleep(30_000);
      await api.call('start');
      const res = await client;
      const report = JSON.parse(res.stdout || '{}') as { error?: string; intervals?: Array<{ sum: { bytes: number } }>; end?: { sum_received?: { bytes: number } } };
      assert.equal(res.code, 0, `iperf3 failed: ${report.error ?? res.stderr}`);
      const stalled = (report.intervals ?? []).filter((i) => i.sum.bytes === 0).length;
      assert.ok((report.intervals ?? []).length >= 38, 'the transfer ran its 40 s');
      assert.equal(stalled, 0, 'no 1-s interval without data while the API server was down');
      assert.ok((report.end?.sum_received?.bytes ?? 0) > 50_000_000);
      t.diagnostic(`TCP across a 30 s API outage: ${report.intervals?.length} intervals, none empty, ${report.end?.sum_received?.bytes} bytes received`);
    } finally {
      await stopChild(server, 1000);
    }
    for (const n of topo.nodes) await timeUntilFdb(n, port, n === n1 ? 'n2' : 'n1', true, 1000);

    // 5. an agent restarted while the API server is down forwards from its snapshot
    await api.call('stop');
    await agents[1]!.stop();
    assert.equal((await ping(n1.podNs, n2.podIP, { count: 1 })).ok, false, 'n2 down with its agent');
    agents[1] = await startKubeAgent(n2, api.kubeconfig, topo.workDir);
    assert.equal((await pingUntil(n1, n2, true, 15_000)).ok, true, 'n2 forwards from its snapshot with the API down');
    assert.equal((await pingUntil(n2, n3, true)).ok, true);
    const log = await readFile(agents[1]!.logFile, 'utf8');
    assert.match(log, /API server unreachable: forwarding from the FDB snapshot/);
    const readyz = await nsRun(n2.ns, 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${port}/readyz`]);
    assert.equal(readyz.stdout, '503', 'not ready while the API server is down');
    await api.call('start');
    await agents[1]!.ready;
    const metrics = await nsRun(n2.ns, 'curl', ['-sS', `http://127.0.0.1:${port}/metrics`]);
    assert.match(metrics.stdout, /^userlay_fdb_peers 2$/m);
    assert.match(metrics.stdout, /^userlay_tx_packets_total\{peer="n1"\} [1-9]/m);
  } finally {
    for (const a of agents) await a.stop().catch(() => {});
    await api?.close().catch(() => {});
    await topo?.close();
  }
});
