/**
 * Segmentation offloads end to end (need root): 2-node vxlan labs with
 * `--offloads auto` (TSO/USO on the TUN, UDP GRO on the receive socket) and
 * `--offloads off`, native engine, plus the js engine with offloads auto
 * (its TUN reader gets split segments from the shared read path, it sends
 * runs with the UDP_SEGMENT socket option and cuts GRO buffers at their
 * first datagram's length).
 *
 *   - 200 MB hashed TCP transfers in both directions
 *   - UDP datagrams of 1 byte up to the largest that fits, sent in bursts of
 *     equal sizes (so the tx side groups them into UDP_SEGMENT messages and
 *     the rx side receives them coalesced), each echoed intact
 *   - the offloads in force are reported by /debug/stats, and nothing is
 *     dropped as tx_malformed (a super-packet the split refused)
 *   - with offloads auto the sender splits TSO super-packets and the
 *     receiver gets UDP GRO buffers (engine counters); with off neither; the
 *     native sender leaves checksums partial to its userlay peer
 *   - offloads refused (test hook USERLAY_TEST_REFUSE_OFFLOADS: TSO/USO,
 *     UDP_GRO, the js engine's UDP_SEGMENT and GSO writes to the TUN) are
 *     reported and forwarding goes on, with either engine
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { nsRun } from '../../src/cli/lab/exec.js';
import { hashedTransfer, udpBurst } from '../../src/cli/lab/probes.js';
import type { EngineKind } from '../../src/dataplane/types.js';
import { REFUSE_ENV } from '../../src/dataplane/offloads.js';
import { NEEDS_ROOT, dropCount, openTestLab, statusJson, type TestLab } from '../support/lab.js';

const MB = 1024 * 1024;
const IPV4_UDP_HEADERS = 28;
const STATUS_PORT = 9477;

interface OffloadsJson {
  offloads?: {
    mode: string; active: string[]; refused: string[];
    counters: {
      tsoPackets: number; tsoSegments: number; groBuffers: number; groDatagrams: number; tunGso: boolean; tunUso: boolean; tunGsoRefused: number;
      tunTcpRuns: number; tunTcpRunPackets: number; tunUdpRuns: number; tunUdpRunPackets: number; partialCsumPackets: number;
    };
  };
}

async function offloadsOf(lab: TestLab, i: number): Promise<NonNullable<OffloadsJson['offloads']>> {
  const s = (await statusJson(lab.node(i), STATUS_PORT, '/debug/stats')) as OffloadsJson;
  assert.ok(s.offloads, JSON.stringify(s));
  return s.offloads;
}

const cases: Array<{ engine: EngineKind; offloads: 'auto' | 'off' }> = [
  { engine: 'native', offloads: 'auto' },
  { engine: 'native', offloads: 'off' },
  { engine: 'js', offloads: 'auto' },
];

for (const { engine, offloads } of cases) {
  describe(`offloads ${offloads}: 2 nodes, vxlan, ${engine} engine`, { skip: NEEDS_ROOT, timeout: 300_000 }, () => {
    let lab: TestLab;
    before(async () => {
      lab = await openTestLab(2, { modes: ['userlay', 'userlay'], userlay: { backend: 'vxlan', engine, offloads, statusPort: STATUS_PORT } });
    });
    after(async () => { await lab?.close(); });

    test('the offloads in force are reported', async () => {
      for (const n of lab.nodes) {
        const s = (await statusJson(n, STATUS_PORT, '/debug/stats')) as OffloadsJson;
        assert.equal(s.offloads?.mode, offloads);
        if (offloads === 'off') {
          assert.deepEqual(s.offloads?.active, []);
        } else {
          assert.ok(s.offloads?.active.includes('tso'), JSON.stringify(s.offloads));
          assert.ok(s.offloads?.active.includes('gro'), JSON.stringify(s.offloads));
          assert.equal(s.offloads?.active.includes('gso'), engine === 'js', JSON.stringify(s.offloads));
        }
        // UDP GSO writes to the TUN (UDP receive coalescing) are probed with offloads auto only
        assert.equal(s.offloads?.counters.tunUso, offloads === 'auto', JSON.stringify(s.offloads));
      }
    });

    for (const [a, b] of [[1, 2], [2, 1]] as const) {
      test(`200 MB TCP n${a} -> n${b} arrives byte for byte`, async () => {
        const before = await offloadsOf(lab, a);
        const r = await hashedTransfer(lab.node(a), lab.node(b), 200 * MB, 5301, 240_000);
        assert.equal(r.sent.bytes, 200 * MB);
        assert.equal(r.received.bytes, 200 * MB);
        assert.equal(r.received.sha256, r.sent.sha256);
        const sender = (await offloadsOf(lab, a)).counters;
        const split = sender.tsoPackets - before.counters.tsoPackets;
        if (offloads === 'auto') {
          // the sender's TUN handed over super-packets, each split into several segments
          assert.ok(split > 0, `no TSO super-packet split: ${JSON.stringify(sender)}`);
          assert.ok(sender.tsoSegments > sender.tsoPackets, JSON.stringify(sender));
        } else {
          assert.equal(split, 0, JSON.stringify(sender));
        }
        // to its userlay peer the native engine leaves what the TUN left partial as it is; the
        // js engine completes every checksum, and with offloads off the kernel did already
        const partial = sender.partialCsumPackets - before.counters.partialCsumPackets;
        if (engine === 'native' && offloads === 'auto') assert.ok(partial > 0, JSON.stringify(sender));
        else assert.equal(partial, 0, JSON.stringify(sender));
        const receiver = (await offloadsOf(lab, b)).counters;
        assert.equal(receiver.tunGso, true, JSON.stringify(receiver));
        // runs of the flow's segments reached the pod as coalesced GSO writes
        assert.ok(receiver.tunTcpRuns > 0 && receiver.tunTcpRunPackets > receiver.tunTcpRuns, JSON.stringify(receiver));
        if (offloads === 'auto') {
          assert.ok(receiver.groBuffers > 0 && receiver.groDatagrams > receiver.groBuffers, `no UDP GRO buffer: ${JSON.stringify(receiver)}`);
        } else {
          assert.equal(receiver.groBuffers, 0, JSON.stringify(receiver));
        }
      });
    }

    test('UDP bursts of 1 byte up to the largest datagram that fits arrive intact', async () => {
      const max = lab.overlay.podMtu - IPV4_UDP_HEADERS;
      const before = (await offloadsOf(lab, 2)).counters;
      const r = await udpBurst(lab.node(1), lab.node(2), 1, max);
      assert.deepEqual(r.failed, [], `sizes lost: ${r.failed.slice(0, 20).join(',')} ${JSON.stringify(r.errors)}`);
      assert.equal(r.ok, max);
      // with offloads auto each burst's equal datagrams reached the pod as UDP GSO writes, which
      // the pod's kernel cut back into the datagrams just checked; with off each went alone
      const after = (await offloadsOf(lab, 2)).counters;
      const runs = after.tunUdpRuns - before.tunUdpRuns, packets = after.tunUdpRunPackets - before.tunUdpRunPackets;
      if (offloads === 'auto') assert.ok(runs > 0 && packets > runs, JSON.stringify(after));
      else assert.equal(runs, 0, JSON.stringify(after));
    });

    test('no packet read from the TUN was refused as malformed', async () => {
      for (const n of lab.nodes) {
        const s = await statusJson(n, STATUS_PORT, '/debug/stats');
        assert.equal(dropCount(s, 'tx_malformed'), 0, JSON.stringify(s));
      }
    });
  });
}

for (const engine of ['native', 'js'] as const) describe(`offloads refused by the kernel (test hook), ${engine} engine: reported, forwarding goes on`, { skip: NEEDS_ROOT, timeout: 180_000 }, () => {
  let lab: TestLab;
  const refused = engine === 'js' ? ['tso', 'uso', 'gro', 'gso'] : ['tso', 'uso', 'gro'];
  before(async () => {
    process.env[REFUSE_ENV] = [...refused, 'tun-gso'].join(','); // inherited by the agents this lab starts
    try {
      lab = await openTestLab(2, { modes: ['userlay', 'userlay'], userlay: { backend: 'vxlan', engine, statusPort: STATUS_PORT } });
    } finally {
      delete process.env[REFUSE_ENV];
    }
  });
  after(async () => { await lab?.close(); });

  test('the refusals are reported, nothing is in force', async () => {
    const o = await offloadsOf(lab, 1);
    assert.deepEqual([o.mode, o.active, o.refused], ['auto', [], refused]);
    // the start probe's GSO write was refused: GSO writes to the TUN are off
    assert.equal(o.counters.tunGso, false);
    assert.ok(o.counters.tunGsoRefused >= 1, JSON.stringify(o.counters));
    const metrics = await statusText(lab, '/metrics');
    assert.doesNotMatch(metrics, /^userlay_offload_active\{offload="tun_gso"\}/m);
    assert.match(metrics, /^userlay_tun_gso_refused_total [1-9]/m);
    assert.match(metrics, /^userlay_offload_refused\{offload="tso"\} 1$/m);
    assert.match(metrics, /^userlay_offload_refused\{offload="gro"\} 1$/m);
    if (engine === 'js') assert.match(metrics, /^userlay_offload_refused\{offload="gso"\} 1$/m);
  });

  test('a 50 MB TCP transfer still arrives byte for byte', async () => {
    const r = await hashedTransfer(lab.node(1), lab.node(2), 50 * MB, 5301, 120_000);
    assert.equal(r.received.bytes, 50 * MB);
    assert.equal(r.received.sha256, r.sent.sha256);
  });
});

/** The body of a status endpoint of node 1's agent. */
async function statusText(lab: TestLab, path: string): Promise<string> {
  const res = await nsRun(lab.node(1).ns, 'curl', ['-sS', '--max-time', '5', `http://127.0.0.1:${STATUS_PORT}${path}`]);
  return res.stdout;
}
