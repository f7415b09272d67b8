/**
 * Datagrams the kernel drops at a full receive socket are reported (need root): in a 2-node
 * vxlan lab, n2's agent is stopped (SIGSTOP) while n1's node namespace sends it far more
 * datagrams than its receive queue holds; after SIGCONT every datagram is accounted for, either
 * by the engine (here as a drop: the VXLAN flags are wrong) or as a kernel socket drop in
 * /debug/stats `socketDrops` and userlay_udp_receive_drops_total. Both engines.
 *
 * Exact accounting holds because each datagram is one buffer here: the sender sends them one
 * by one, and veth (GRO off) does not coalesce them.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { nsRun, sleep } from '../../src/cli/lab/exec.js';
import { VXLAN_PORT } from '../../src/cli/lab/overlay.js';
import type { EngineKind } from '../../src/dataplane/types.js';
import { NEEDS_ROOT, openTestLab, statusJson, type TestLab } from '../support/lab.js';

const STATUS_PORT = 9478;
/** Far more than a 32 MiB receive queue holds of 1000-byte datagrams (~2.3 KiB each in it). */
const DATAGRAMS = 40_000;

interface DropsJson {
  socketDrops?: string;
  total: { rxPackets: string; drops: Record<string, string> };
}

/** Datagrams the engine has seen (forwarded or dropped) and the kernel dropped before it. */
async function accounted(lab: TestLab): Promise<{ engine: number; kernel: number }> {
  const s = (await statusJson(lab.node(2), STATUS_PORT, '/debug/stats')) as DropsJson;
  assert.ok(s.socketDrops !== undefined, `socketDrops in /debug/stats: ${JSON.stringify(s)}`);
  const drops = Object.values(s.total.drops).reduce((sum, v) => sum + Number(v), 0);
  return { engine: Number(s.total.rxPackets) + drops, kernel: Number(s.socketDrops) };
}

/** Send `count` datagrams of `len` zero bytes (VXLAN flags 0: no VNI) from `ns` to host:port. */
async function flood(ns: string, host: string, port: number, count: number, len: number): Promise<void> {
  const script = `
    const s = require('node:dgram').createSocket('udp4');
    const buf = Buffer.alloc(${len});
    let sent = 0;
    const next = (err) => {
      if (err) { console.error(err.message); process.exit(1); }
      if (sent === ${count}) { s.close(); return; }
      sent++;
      s.send(buf, ${port}, '${host}', next);
    };
    next();`;
  const res = await nsRun(ns, process.execPath, ['-e', script], { timeoutMs: 60_000 });
  assert.equal(res.stderr.trim(), '', 'the flood sent every datagram');
}

for (const engine of ['native', 'js'] as EngineKind[]) {
  describe(`kernel receive-socket drops are counted: 2 nodes, vxlan, ${engine} engine`, { skip: NEEDS_ROOT, timeout: 180_000 }, () => {
    let lab: TestLab;
    before(async () => {
      lab = await openTestLab(2, { modes: ['userlay', 'userlay'], userlay: { backend: 'vxlan', engine, statusPort: STATUS_PORT } });
    });
    after(async () => { await lab?.close(); });

    test(`${DATAGRAMS} datagrams to a stopped agent: each is seen by the engine or dropped by the kernel, and counted`, async (t) => {
      const agent = lab.overlay.agents.get(2);
      assert.ok(agent, 'n2 runs an agent');
      const before = await accounted(lab);
      process.kill(agent.pid, 'SIGSTOP');
      try {
        await flood(lab.node(1).ns, lab.node(2).underlayIP, VXLAN_PORT, DATAGRAMS, 1000);
      } finally {
        process.kill(agent.pid, 'SIGCONT');
      }
      // wait until the engine has read what the queue held (the sum reaches the datagrams sent)
      const deadline = Date.now() + 30_000;
      let now = await accounted(lab);
      while (now.engine - before.engine + now.kernel - before.kernel < DATAGRAMS) {
        assert.ok(Date.now() < deadline, `all ${DATAGRAMS} datagrams accounted for; last ${JSON.stringify(now)}, before ${JSON.stringify(before)}`);
        await sleep(50);
        now = await accounted(lab);
      }
      const kernel = now.kernel - before.kernel;
      const engineSaw = now.engine - before.engine;
      assert.ok(kernel > 0, `the kernel dropped some (queue full): ${kernel}`);
      assert.ok(engineSaw > 0, `the engine read what the queue held: ${engineSaw}`);
      assert.equal(engineSaw + kernel, DATAGRAMS, 'none counted twice');
      t.diagnostic(`engine ${engineSaw}, kernel drops ${kernel}`);

      const metrics = await nsRun(lab.node(2).ns, 'curl', ['-sS', '--fail', `http://127.0.0.1:${STATUS_PORT}/metrics`]);
      const m = /^userlay_udp_receive_drops_total (\d+)$/m.exec(metrics.stdout);
      assert.ok(m, 'userlay_udp_receive_drops_total is exported');
      assert.equal(Number(m[1]), now.kernel, '/metrics and /debug/stats agree');
    });
  });
}
