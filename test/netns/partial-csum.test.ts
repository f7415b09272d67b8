/**
 * Inner checksums left partial between userlay nodes (native/src/csum.c, "Partial checksums";
 * needs root). Two native-engine nodes whose peers files say partialCsum, as kube mode's
 * userlay.io/partial-csum does: the data segments of a TCP transfer leave with the checksum
 * field holding exactly the pseudo-header sum (computed here from the captured addresses and
 * lengths), counted in userlay_partial_csum_packets_total, and the transfer arrives byte for
 * byte both ways, IPv4 and IPv6 pods. With partialCsum off every segment leaves complete
 * (tshark verifies it) and nothing is counted. Kernel vxlan peers always get complete ones:
 * test/interop/kernel-vxlan.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { hashedTransfer } from '../../src/cli/lab/probes.js';
import { captureInnerTcpChecksums } from '../support/capture.js';
import { NEEDS_ROOT, openTestLab, statusJson, type TestLab } from '../support/lab.js';

const MB = 1024 * 1024;
const STATUS_PORT = 9478;

async function partialCount(lab: TestLab, i: number): Promise<number> {
  const s = (await statusJson(lab.node(i), STATUS_PORT, '/debug/stats')) as { offloads?: { counters?: { partialCsumPackets?: number } } };
  const n = s.offloads?.counters?.partialCsumPackets;
  assert.equal(typeof n, 'number', JSON.stringify(s));
  return n!;
}

const CASES = [
  { partial: true, family: '4' as const },
  { partial: true, family: '6' as const },
  { partial: false, family: '4' as const },
];

for (const { partial, family } of CASES) {
  describe(`inner checksums ${partial ? 'left partial' : 'complete'} between userlay nodes: IPv${family} pods, native engine`,
    { skip: NEEDS_ROOT, timeout: 180_000 }, () => {
      let lab: TestLab;
      before(async () => {
        lab = await openTestLab(2, { modes: ['userlay', 'userlay'], userlay: { backend: 'vxlan', engine: 'native', statusPort: STATUS_PORT, partialCsum: partial } },
          { family });
      });
      after(async () => { await lab?.close(); });

      test(`data segments leave ${partial ? 'with the pseudo-header sum only' : 'with verified checksums'}`, async () => {
        const [n1, n2] = [lab.node(1), lab.node(2)];
        const before = await partialCount(lab, 1);
        const segs = await captureInnerTcpChecksums(lab.topo.underlayNs, n1.bridgePort, n1.underlayIP, 400,
          () => hashedTransfer(n1, n2, 8 * MB, 5301, 60_000));
        const data = segs.filter((s) => s.len > 0);
        assert.ok(data.length >= 50, `only ${data.length} data segments captured of ${segs.length}`);
        for (const s of data) {
          if (partial) assert.equal(s.field, s.pseudo, `segment of ${s.len} bytes: field 0x${s.field.toString(16)}, pseudo 0x${s.pseudo.toString(16)}`);
          else assert.ok(s.good, `segment of ${s.len} bytes: checksum 0x${s.field.toString(16)} does not verify`);
        }
        const sent = (await partialCount(lab, 1)) - before;
        if (partial) assert.ok(sent >= data.length, `counted ${sent}, captured ${data.length}`);
        else assert.equal(sent, 0);
      });

      for (const [a, b] of [[1, 2], [2, 1]] as const) {
        test(`50 MB TCP n${a} -> n${b} arrives byte for byte`, async () => {
          const r = await hashedTransfer(lab.node(a), lab.node(b), 50 * MB, 5302, 60_000);
          assert.equal(r.received.bytes, 50 * MB);
          assert.equal(r.received.sha256, r.sent.sha256);
        });
      }
    });
}
