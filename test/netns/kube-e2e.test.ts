/**
 * Kube mode end to end (root): three node namespaces, each running the real
 * `node bin/userlay.js agent --kubeconfig ...` process against the fake API server, which runs
 * in the underlay namespace behind 198.18.0.254:6443 (kube-lab-apiserver.ts).
 *
 * One lab, checked in order: all-pairs pod ping; deleting a Node removes its peer (how fast
 * is bench/kube-scale.ts's to measure); adding it back makes it reachable; with the API server
 * down (every agent has seen its watch fail and retried) an established TCP connection keeps
 * carrying data and new flows work, and it ends intact after the API server is back; an agent
 * restarted while the API server is down forwards from its snapshot.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nsRun, sleep, stopChild } from '../../src/cli/lab/exec.js';
import { ping, pingAllPairs } from '../../src/cli/lab/probes.js';
import { cleanupStale } from '../../src/cli/lab/stale.js';
import { createTopology, type LabNode, type Topology } from '../../src/cli/lab/topology.js';
import { NEEDS_ROOT, TEST_PREFIX_ROOT, pingUntil, statusJson } from '../support/lab.js';
import { LabApiServer, labNodeObject, startKubeAgent, type KubeAgentProcess } from '../support/kube-lab.js';
import { nsSpawnJson, type JsonLines } from '../support/json-lines.js';

const MiB = 1024 * 1024;
const tcpSteps = fileURLToPath(new URL('../support/tcp-steps.js', import.meta.url));

async function fdbNames(node: LabNode, port: number): Promise<string[]> {
  const doc = (await statusJson(node, port, '/debug/fdb')) as { peers: Array<{ name: string }> };
  return doc.peers.map((p) => p.name).sort();
}

/**
 * Wait until `node`'s FDB no longer (or again) lists `peer`; returns the milliseconds it took
 * (for a diagnostic only). Throws after `timeoutMs`, a bound for a stuck agent.
 */
async function untilFdb(node: LabNode, port: number, peer: string, present: boolean, timeoutMs = 30_000): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    if ((await fdbNames(node, port)).includes(peer) === present) return Date.now() - t0;
    if (Date.now() - t0 > timeoutMs) throw new Error(`${node.name}: ${peer} still ${present ? 'absent' : 'present'} after ${timeoutMs} ms`);
    await sleep(20);
  }
}

/** userlay_informer_restarts_total of the agent in `node`. */
async function informerRestarts(node: LabNode, port: number): Promise<number> {
  const res = await nsRun(node.ns, 'curl', ['-sS', '--max-time', '5', `http://127.0.0.1:${port}/metrics`]);
  const m = /^userlay_informer_restarts_total (\d+)$/m.exec(res.stdout);
  if (!m) throw new Error(`${node.name}: no userlay_informer_restarts_total in /metrics`);
  return Number(m[1]);
}

/** Poll `cond` (each poll is a round of curls) until it holds; throws naming `what` after `timeoutMs`. */
async function until(what: string, cond: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
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

    // 2. deleting a Node removes its peer
    await api.call('delete', { name: 'n3' });
    const removedMs = await untilFdb(n1, port, 'n3', false);
    await untilFdb(n2, port, 'n3', false);
    t.diagnostic(`n3 left n1's FDB ${removedMs} ms after the Node was deleted (not asserted; see bench/kube-scale.ts)`);
    const stats = (await statusJson(n1, port, '/debug/stats')) as { fdbPeers: number; fdbRoutes: number };
    assert.deepEqual([stats.fdbPeers, stats.fdbRoutes], [1, 1], 'n3\'s FDB route is gone too');
    assert.equal((await ping(n1.podNs, n3.podIP, { count: 1 })).ok, false, 'n3 unreachable after its Node is gone');

    // 3. adding the Node back: its agent re-publishes the lease, the others route to it
    await api.call('upsert', { node: labNodeObject(n3) });
    await untilFdb(n1, port, 'n3', true);
    assert.equal((await pingUntil(n1, n3, true)).ok, true, 'n3 reachable again');
    assert.equal((await pingUntil(n3, n2, true)).ok, true);

    // 4. API server down: an established TCP connection keeps carrying data, new flows work
    const recv = nsSpawnJson(n2.podNs, process.execPath, [tcpSteps, 'recv', '5211']);
    let send: JsonLines | undefined;
    try {
      await recv.line('listening', (l) => l['listening'] !== undefined);
      send = nsSpawnJson(n1.podNs, process.execPath, [tcpSteps, 'send', n2.podIP, '5211', '4242']);
      await send.line('connected', (l) => l['connected'] === true);
      const arrived = (bytes: number): Promise<unknown> => recv.line(`${bytes} bytes at the receiver`, (l) => Number(l['bytes']) >= bytes);
      send.send(`send ${4 * MiB}`);
      await arrived(4 * MiB);
      const restarts = await Promise.all(topo.nodes.map((n) => informerRestarts(n, port)));
      await api.call('stop');
      // every agent has lost its watch and retried against the dead API server
      await until('every agent retrying its informer', async () =>
        (await Promise.all(topo!.nodes.map((n) => informerRestarts(n, port)))).every((r, i) => r > restarts[i]!));
      send.send(`send ${20 * MiB}`);
      await arrived(24 * MiB);
      const down = await pingAllPairs(topo.nodes);
      assert.deepEqual(down.filter((p) => !p.ok).map((p) => `${p.from}->${p.to}`), [], 'all-pairs ping with the API server down');
      await api.call('start');
      send.send(`send ${4 * MiB}`);
      send.send('end');
      const sent = await send.line('sender end', (l) => l['end'] === true);
      const got = await recv.line('receiver end', (l) => l['end'] === true);
      assert.equal(sent['bytes'], 28 * MiB);
      assert.deepEqual(got, sent, 'the connection carried every byte, in order, across the outage');
      t.diagnostic(`one TCP connection across the API outage: ${sent['bytes']} bytes, sha256 equal`);
    } finally {
      await stopChild(recv.child, 1000);
      if (send) await stopChild(send.child, 1000);
    }
    for (const n of topo.nodes) await untilFdb(n, port, n === n1 ? 'n2' : 'n1', true);

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
