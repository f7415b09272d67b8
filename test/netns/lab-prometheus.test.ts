/**
 * `userlay lab --prometheus` (root): the lab's real Prometheus scrapes every agent; after the
 * lab's own traffic and one packet to a pod subnet nobody owns, its HTTP API answers per-peer
 * bytes and drops by reason for each node; Ctrl-C stops Prometheus, removes its directory and
 * tears the lab down. Every query of deploy/grafana-dashboard.json is valid PromQL there.
 * SIGHUP (a dropped SSH session) tears it down as Ctrl-C does. A lab killed outright leaves its
 * Prometheus running; the next run's cleanupStale stops it.
 *
 * Needs Debian's prometheus package (scripts/setup.sh installs it): skipped without it,
 * except under CI, where it fails.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { userlayBin } from '../../src/cli/lab/agent-process.js';
import { nsRun, pidAlive, sleep, waitExit } from '../../src/cli/lab/exec.js';
import { PROMETHEUS_BIN } from '../../src/cli/lab/prometheus.js';
import { CLI_PREFIX_ROOT } from '../../src/cli/lab/session.js';
import { cleanupStale } from '../../src/cli/lab/stale.js';
import { NEEDS_ROOT, namespacesWithPrefix } from '../support/lab.js';

const skip = NEEDS_ROOT || (existsSync(PROMETHEUS_BIN) || process.env.CI ? false : `needs ${PROMETHEUS_BIN} (Debian package prometheus; scripts/setup.sh installs it)`);

interface Sample { metric: Record<string, string>; value: [number, string] }

async function query(url: string, expr: string): Promise<Sample[]> {
  const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`);
  const body = (await res.json()) as { status: string; data: { result: Sample[] } };
  assert.equal(body.status, 'success', `query ${expr}`);
  return body.data.result;
}

/** Poll `expr` until some sample satisfies `ok` (Prometheus scrapes every second). */
async function until(url: string, expr: string, ok: (s: Sample) => boolean, what: string): Promise<Sample> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const hit = (await query(url, expr)).find(ok);
    if (hit) return hit;
    if (Date.now() > deadline) throw new Error(`no sample of ${expr} for ${what} within 30 s: ${JSON.stringify(await query(url, expr))}`);
    await sleep(250);
  }
}

interface LabHint { url: string; pid: number; dir: string; podNs: string }

/** Start `userlay lab --prometheus`; resolves with what it prints once Prometheus is up. */
function startLab(): { lab: ChildProcess; exited: Promise<number | string>; hint: Promise<LabHint> } {
  const lab = spawn(process.execPath, [userlayBin(), 'lab', '--nodes', '2', '--seconds', '1', '--prometheus'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const err: string[] = [];
  lab.stderr!.on('data', (c: Buffer) => err.push(c.toString()));
  const exited = waitExit(lab);
  const hint = new Promise<LabHint>((resolve, reject) => {
    const out: string[] = [];
    const rl = createInterface({ input: lab.stdout! });
    rl.on('line', (line) => {
      out.push(line);
      if (!line.startsWith('Ctrl-C')) return;
      const text = out.join('\n');
      const m = /^prometheus: (http:\/\/127\.0\.0\.1:\d+)\/ \(pid (\d+);.* dir (\S+)\)$/m.exec(text);
      const ns = /^ {2}traffic: +ip netns exec (\S+) ping/m.exec(text);
      if (!m || !ns) reject(new Error(`unexpected lab output:\n${text}`));
      else resolve({ url: m[1]!, pid: Number(m[2]), dir: m[3]!, podNs: ns[1]! });
    });
    void exited.then((code) => reject(new Error(`lab exited (${code}) before Prometheus was up: ${err.join('')}`)));
  });
  return { lab, exited, hint };
}

/** The prefix of the lab's namespaces, from a pod namespace name. */
function prefixOf(podNs: string): string {
  return podNs.slice(0, podNs.lastIndexOf('-') + 1);
}

/** Prometheus, its directory and the lab's namespaces are gone. */
async function assertGone(hint: LabHint): Promise<void> {
  assert.equal(pidAlive(hint.pid), false, 'prometheus stopped');
  assert.equal(existsSync(hint.dir), false, 'its directory removed');
  assert.deepEqual(await namespacesWithPrefix(prefixOf(hint.podNs)), [], 'lab namespaces removed');
}

test('userlay lab --prometheus: per-peer bytes and drops in a real Prometheus; Ctrl-C cleans up', { skip, timeout: 180_000 }, async () => {
  await cleanupStale(CLI_PREFIX_ROOT);
  const { lab, exited, hint: started } = startLab();
  try {
    const hint = await started;
    assert.ok(existsSync(hint.dir));

    // a packet into the cluster network outside every node's subnet: n1's agent drops it (no_route)
    const lost = await nsRun(hint.podNs, 'ping', ['-c', '1', '-W', '1', '198.19.250.1'], { allowFail: true });
    assert.notEqual(lost.code, 0);

    const bytes = await until(hint.url, 'userlay_tx_bytes_total', (s) => s.metric.node === 'n1' && s.metric.peer === 'n2' && Number(s.value[1]) > 1e6,
      'the lab\'s iperf3 from n1 to n2');
    assert.equal(bytes.metric.job, 'userlay');
    await until(hint.url, 'userlay_rx_bytes_total', (s) => s.metric.node === 'n2' && s.metric.peer === 'n1' && Number(s.value[1]) > 1e6, 'n2 received it');
    await until(hint.url, 'userlay_dropped_packets_total{reason="no_route"}', (s) => s.metric.node === 'n1' && Number(s.value[1]) >= 1, 'the no_route drop');
    const reasons = new Set((await query(hint.url, 'userlay_dropped_packets_total{node="n2"}')).map((s) => s.metric.reason));
    assert.ok(reasons.has('spoofed') && reasons.has('unknown_peer'), `every reason is a series: ${[...reasons].join(', ')}`);
    const info = await query(hint.url, 'userlay_build_info');
    assert.deepEqual(info.map((s) => s.metric.node).sort(), ['n1', 'n2']);

    // every query of the Grafana dashboard is valid PromQL for this Prometheus
    const dashboard = JSON.parse(readFileSync(new URL('../../../deploy/grafana-dashboard.json', import.meta.url), 'utf8')) as { panels: Array<{ title: string; targets: Array<{ expr: string }> }> };
    for (const p of dashboard.panels) {
      for (const t of p.targets) {
        const expr = t.expr.replaceAll('$node', '.*').replaceAll('$__rate_interval', '1m');
        const res = await fetch(`${hint.url}/api/v1/query?query=${encodeURIComponent(expr)}`);
        const body = (await res.json()) as { status: string; error?: string };
        assert.equal(body.status, 'success', `panel "${p.title}": ${expr}: ${body.error ?? ''}`);
      }
    }

    lab.kill('SIGINT');
    assert.equal(await exited, 130);
    await assertGone(hint);
  } finally {
    if (lab.exitCode === null && lab.signalCode === null) {
      lab.kill('SIGINT');
      await exited;
    }
  }
});

test('a lab killed outright leaves Prometheus running; the next cleanupStale stops it and removes the rest', { skip, timeout: 120_000 }, async () => {
  await cleanupStale(CLI_PREFIX_ROOT);
  const { lab, exited, hint: started } = startLab();
  let hint: LabHint | undefined;
  try {
    hint = await started;
    lab.kill('SIGKILL'); // no handler runs: what a crash or an OOM kill leaves
    await exited;
    assert.equal(pidAlive(hint.pid), true, 'the orphaned Prometheus outlives its lab');
    assert.notDeepEqual(await namespacesWithPrefix(prefixOf(hint.podNs)), [], 'and so do the namespaces');

    const removed = await cleanupStale(CLI_PREFIX_ROOT);
    assert.ok(removed.includes(hint.podNs), `namespaces removed: ${removed.join(', ')}`);
    await assertGone(hint);
  } finally {
    if (lab.exitCode === null && lab.signalCode === null) lab.kill('SIGKILL');
    if (hint !== undefined && pidAlive(hint.pid)) process.kill(hint.pid, 'SIGKILL');
    await cleanupStale(CLI_PREFIX_ROOT);
  }
});

test('SIGHUP (the terminal went away) tears the lab down like Ctrl-C: exit 129', { skip, timeout: 120_000 }, async () => {
  await cleanupStale(CLI_PREFIX_ROOT);
  const { lab, exited, hint: started } = startLab();
  try {
    const hint = await started;
    lab.kill('SIGHUP');
    assert.equal(await exited, 129);
    await assertGone(hint);
  } finally {
    if (lab.exitCode === null && lab.signalCode === null) lab.kill('SIGKILL');
    await cleanupStale(CLI_PREFIX_ROOT);
  }
});
