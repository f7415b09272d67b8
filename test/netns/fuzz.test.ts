/**
 * Fuzz (root): for each engine, 100,000 malformed datagrams (random bytes,
 * empty and 65,507-byte ones, and mutations of valid VXLAN frames: lying
 * lengths, bad IHL, fragments, truncations, ...) and 12,000 odd packets
 * through the TUN into node n1 of a 2-node lab (test/support/fuzz-lab.ts,
 * fuzz-tool.ts, fuzz-gen.ts). The agent must survive as the same process and
 * stay healthy; every datagram and TUN packet is accounted for (delivered +
 * dropped by reason + dropped by the kernel = sent, round by round); every
 * valid frame is delivered; the real peer's ping flow loses nothing to the
 * agent and a TCP transfer afterwards arrives intact; RSS stays flat: less
 * than 20 MB growth after the warm-up (the first tenth of the run). Both
 * engines share one codec, so for one seed their drop counts by reason are
 * equal.
 *
 * The seed is printed; FUZZ_SEED=N repeats a run. The long run (1,000,000+)
 * is bench/fuzz.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { EngineKind } from '../../src/dataplane/types.js';
import { runFuzz, type FuzzRun } from '../support/fuzz-lab.js';
import { NEEDS_ROOT } from '../support/lab.js';

const DATAGRAMS = 100_000;
const TUN_PACKETS = 12_000;
const RSS_GROWTH_MB = 20;
const seed = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
/** Reasons decided by the codec alone (not by the kernel or by load). */
const CODEC_REASONS = ['short', 'bad_flags', 'bad_vni', 'bad_mac', 'malformed', 'unknown_peer', 'spoofed'];

const total = (o: Record<string, number>): number => Object.values(o).reduce((a, b) => a + b, 0);

describe('fuzz: malformed datagrams and odd TUN packets into one agent', { skip: NEEDS_ROOT, timeout: 600_000 }, () => {
  const runs = new Map<EngineKind, FuzzRun>();
  console.log(`# fuzz seed ${seed} (repeat with FUZZ_SEED=${seed})`);

  for (const engine of ['native', 'js'] as EngineKind[]) {
    test(`${engine} engine: survives, forwards, counts everything (seed ${seed})`, async (t) => {
      const run = await runFuzz({ engine, seed, datagrams: DATAGRAMS, tunPackets: TUN_PACKETS });
      runs.set(engine, run);
      const { result: r, agent, flow, transfer } = run;
      t.diagnostic(`${engine}: ${JSON.stringify({ datagrams: r.datagrams, tun: r.tun, rss: r.rss, flow, seconds: run.seconds })}`);

      assert.equal(agent.pidAfter, agent.pidBefore, 'the agent was restarted');
      assert.ok(agent.alive, 'the agent died');
      assert.equal(agent.healthz, 'ok', '/healthz');

      const d = r.datagrams;
      assert.equal(d.sent, DATAGRAMS, `sent (send errors: ${d.sendErrors})`);
      assert.ok((d.byKind['empty'] ?? 0) >= 1 && (d.byKind['max'] ?? 0) >= 2, `kinds ${JSON.stringify(d.byKind)}`);
      assert.equal(d.delivered + total(d.drops) + d.kernelDrops, d.sent, 'datagrams: delivered + dropped = sent');
      assert.ok(d.validDelivered >= d.validSent, `valid frames: ${d.validDelivered} delivered of ${d.validSent}`);
      assert.ok(total(d.drops) >= d.sent / 2, 'most of the fuzz is dropped');

      const u = r.tun;
      assert.ok(u.sent >= 10_000, `TUN packets ${u.sent}`);
      if (u.peerSocketDrops === 0) {
        assert.equal(u.delivered + total(u.drops), u.sent, 'TUN: delivered + dropped = sent');
        assert.equal(u.delivered, u.toPeer, 'every TUN packet for the peer arrived there');
      } else {
        assert.ok(u.delivered + total(u.drops) <= u.sent && u.delivered + total(u.drops) + u.peerSocketDrops >= u.sent,
          `TUN: ${u.delivered} + ${total(u.drops)} (+ ${u.peerSocketDrops} lost at the test's socket) vs ${u.sent}`);
      }
      assert.equal(u.drops['no_route'] ?? 0, u.toNoRoute, 'TUN packets without a route: each counted as no_route');

      assert.deepEqual(r.realPeerDrops, {}, 'the real peer\'s traffic had drops');
      assert.ok(flow.transmitted > 0, 'the ping flow n2 -> n1 sent nothing');
      // The flood can overflow the socket's receive queue for an instant (the kernel drops, and counts); one echo may go.
      assert.ok(flow.lost.length <= 1, `ping flow n2 -> n1 lost echo requests ${flow.lost.join(', ')} (${flow.received}/${flow.transmitted} answered)`);
      assert.ok(transfer.intact, 'TCP transfer after the fuzz corrupted');
      assert.equal(transfer.bytes, 4 * 1024 * 1024);

      assert.ok(r.rss.samples >= 2, `RSS samples ${r.rss.samples}`);
      assert.ok(r.rss.maxMB - r.rss.warmMB < RSS_GROWTH_MB, `RSS grew ${r.rss.warmMB.toFixed(1)} -> ${r.rss.maxMB.toFixed(1)} MB after the warm-up`);
    });
  }

  test('both engines drop the same datagrams for the same reasons (one codec)', (t) => {
    const native = runs.get('native');
    const js = runs.get('js');
    if (!native || !js) {
      assert.fail('an engine run failed above; nothing to compare');
    }
    const pick = (r: FuzzRun): Record<string, number> => Object.fromEntries(CODEC_REASONS.map((k) => [k, r.result.datagrams.drops[k] ?? 0]));
    t.diagnostic(`codec drops: ${JSON.stringify(pick(native))}`);
    assert.deepEqual(pick(js), pick(native));
    const passed = (r: FuzzRun): number => r.result.datagrams.delivered + (r.result.datagrams.drops['tun_write'] ?? 0);
    assert.equal(passed(js), passed(native), 'datagrams that passed validation');
  });
});
