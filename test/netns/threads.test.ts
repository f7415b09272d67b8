/**
 * --threads end to end (need root): 2-node vxlan labs, native engine.
 *
 *   - with --threads 2: ping both ways and 100 MB hashed TCP transfers both
 *     ways arrive byte for byte (several TCP flows, so more than one TUN
 *     queue and receive socket carry traffic, as the C test checks in
 *     detail)
 *   - a second agent on the same port with --threads 2 exits 2 with
 *     "port in use" (the SO_REUSEPORT group is guarded, native/src/udp.c)
 *   - with N = 1, 2 and 3 the agent runs N tx and N rx engine threads
 *     (/proc/<pid>/task/<tid>/comm), and SIGTERM ends it with exit 0
 *     (every thread joined, nothing left to hang on)
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { agentArgs, userlayBin } from '../../src/cli/lab/agent-process.js';
import { nsRun } from '../../src/cli/lab/exec.js';
import { hashedTransfer } from '../../src/cli/lab/probes.js';
import { NEEDS_ROOT, openTestLab, pingUntil, type TestLab } from '../support/lab.js';

const MB = 1024 * 1024;

/** Names of the engine threads of process `pid` ("userlay-tx0", ...). */
function engineThreads(pid: number): string[] {
  const names: string[] = [];
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      if (/^userlay-(tx|rx)\d+$/.test(comm)) names.push(comm);
    } catch {
      // a thread that ended meanwhile (not an engine thread: those live until stop)
    }
  }
  return names.sort();
}

describe('--threads 2: 2 nodes, vxlan, native engine', { skip: NEEDS_ROOT, timeout: 300_000 }, () => {
  let lab: TestLab;
  before(async () => {
    lab = await openTestLab(2, { modes: ['userlay', 'userlay'], userlay: { backend: 'vxlan', engine: 'native', threads: 2 } });
  });
  after(async () => { await lab?.close(); });

  test('ping both ways', async () => {
    assert.equal((await pingUntil(lab.node(1), lab.node(2), true)).ok, true);
    assert.equal((await pingUntil(lab.node(2), lab.node(1), true)).ok, true);
  });

  for (const [a, b] of [[1, 2], [2, 1]] as const) {
    test(`100 MB TCP n${a} -> n${b} arrives byte for byte`, async () => {
      const r = await hashedTransfer(lab.node(a), lab.node(b), 100 * MB, 5311, 240_000);
      assert.equal(r.received.bytes, 100 * MB);
      assert.equal(r.received.sha256, r.sent.sha256);
    });
  }

  test('a second agent on the same port with --threads 2 gets "port in use"', async () => {
    const node = lab.node(1);
    const args = agentArgs(node, { backend: 'vxlan', engine: 'native', threads: 2 }, lab.overlay.peersFile(1));
    const r = await nsRun(node.ns, process.execPath, [userlayBin(), ...args, '--tun', `ulX${process.pid % 10000}`],
      { timeoutMs: 30_000, allowFail: true });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /port in use/);
  });
});

for (const threads of [1, 2, 3]) {
  describe(`--threads ${threads}: start and stop`, { skip: NEEDS_ROOT, timeout: 120_000 }, () => {
    let lab: TestLab;
    before(async () => {
      lab = await openTestLab(2, { modes: ['userlay', 'userlay'], userlay: { backend: 'vxlan', engine: 'native', threads } });
    });
    after(async () => { await lab?.close(); });

    test(`runs ${threads} tx and ${threads} rx threads, forwards, and exits 0 on SIGTERM`, async () => {
      assert.equal((await pingUntil(lab.node(1), lab.node(2), true)).ok, true);
      const agent = lab.overlay.agents.get(1)!;
      const want = Array.from({ length: threads }, (_, i) => [`userlay-rx${i}`, `userlay-tx${i}`]).flat().sort();
      assert.deepEqual(engineThreads(agent.pid), want);
      const { exit, killed } = await agent.stop();
      assert.equal(killed, false);
      assert.equal(exit, 0, agent.logs.slice(-20).join('\n'));
    });
  });
}
