/**
 * /metrics of real agents passes `promtool check metrics` (root): two kube-mode agents in node
 * namespaces against the lab API server, traffic between their pods, one packet to a pod subnet
 * nobody owns (a no_route drop), then each agent's /metrics through promtool — the exposition
 * format and the naming lint a Prometheus server's tooling applies.
 *
 * promtool comes from Debian's `prometheus` package (scripts/setup.sh installs it). Without it
 * the test skips, except under CI, where it fails.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { nsRun } from '../../src/cli/lab/exec.js';
import { ping } from '../../src/cli/lab/probes.js';
import { cleanupStale } from '../../src/cli/lab/stale.js';
import { createTopology, type LabNode, type Topology } from '../../src/cli/lab/topology.js';
import { NEEDS_ROOT, TEST_PREFIX_ROOT, pingUntil } from '../support/lab.js';
import { LabApiServer, labNodeObject, startKubeAgent, type KubeAgentProcess } from '../support/kube-lab.js';

const PROMTOOL = '/usr/bin/promtool';
const skip = NEEDS_ROOT || (existsSync(PROMTOOL) || process.env.CI ? false : `needs ${PROMTOOL} (Debian package prometheus; scripts/setup.sh installs it)`);

/** Run promtool check metrics on `text`; resolves with its exit code and output. */
function promtoolCheck(text: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(PROMTOOL, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => { out += c.toString(); });
    child.stderr.on('data', (c: Buffer) => { out += c.toString(); });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
    child.stdin.end(text);
  });
}

test('promtool check metrics passes on the /metrics of real agents after traffic and a drop', { skip, timeout: 120_000 }, async () => {
  await cleanupStale(TEST_PREFIX_ROOT);
  let topo: Topology | undefined;
  let api: LabApiServer | undefined;
  const agents: KubeAgentProcess[] = [];
  try {
    topo = await createTopology({ prefix: `${TEST_PREFIX_ROOT}${process.pid}-m.`, nodes: 2 });
    const [n1, n2] = topo.nodes as [LabNode, LabNode];
    api = await LabApiServer.start(topo);
    for (const n of topo.nodes) await api.call('upsert', { node: labNodeObject(n) });
    for (const n of topo.nodes) agents.push(await startKubeAgent(n, api.kubeconfig, topo.workDir));
    const ready = await Promise.all(agents.map((a) => a.ready));
    await topo.setPodMtu(Number(ready[0]!['podMTU']));
    assert.equal((await pingUntil(n1, n2, true)).ok, true, 'pods reach each other');
    // inside the cluster network, outside every node's subnet: the agent drops it (no_route)
    assert.equal((await ping(n1.podNs, '198.19.250.1', { count: 1 })).ok, false);

    for (const [i, n] of [n1, n2].entries()) {
      const res = await nsRun(n.ns, 'curl', ['-sS', '--fail', `http://127.0.0.1:${agents[i]!.statusPort}/metrics`]);
      const text = res.stdout;
      assert.match(text, /^userlay_build_info\{version="[^"]+",nodejs_version="v[^"]+"\} 1$/m);
      assert.match(text, new RegExp(`^userlay_tx_bytes_total\\{peer="${n === n1 ? 'n2' : 'n1'}"\\} [1-9]\\d*$`, 'm'));
      assert.match(text, /^userlay_informer_restarts_total 0$/m, 'kube-mode families are there too');
      if (n === n1) assert.match(text, /^userlay_dropped_packets_total\{reason="no_route"\} [1-9]\d*$/m);
      const check = await promtoolCheck(text);
      assert.equal(check.code, 0, `promtool check metrics on ${n.name}'s /metrics:\n${check.out}`);
      assert.equal(check.out.trim(), '', `no lint findings:\n${check.out}`);
    }
    // the check is not vacuous: promtool does find a counter without _total
    const bad = await promtoolCheck('# HELP userlay_bad Bad.\n# TYPE userlay_bad counter\nuserlay_bad 1\n');
    assert.match(bad.out, /counter metrics should have "_total" suffix/);
  } finally {
    for (const a of agents) await a.stop().catch(() => {});
    await api?.close().catch(() => {});
    await topo?.close();
  }
});
