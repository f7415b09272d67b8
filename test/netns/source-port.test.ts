/**
 * Outer UDP source port per inner flow (need root): a 2-node vxlan lab with
 * the native engine; eight UDP flows (one datagram each, each from its own
 * ephemeral source port) leave node 1 with outer source ports that tshark
 * sees on the underlay: more than one port among them (flows spread), and
 * the same flow sent again keeps its port. Again for IPv6 pods on a dual-stack node with a
 * socket per underlay family: the IPv6 set has send sockets of its own.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { podAddress, sendDatagram } from '../../src/cli/lab/probes.js';
import { captureVxlan } from '../support/capture.js';
import { NEEDS_ROOT, openTestLab, type TestLab } from '../support/lab.js';

/** One underlay family, and a dual-stack lab's IPv6 socket set (its own send sockets). */
const CASES = [
  { what: 'one underlay', dual: false },
  { what: 'IPv6 pods over the IPv6 socket of a dual-stack node', dual: true },
];

for (const { what, dual } of CASES) {
  describe(`outer source port per inner flow: 2 nodes, vxlan, native engine, ${what}`, { skip: NEEDS_ROOT, timeout: 120_000 }, () => {
    let lab: TestLab;
    before(async () => {
      lab = await openTestLab(2, { modes: ['userlay', 'userlay'], userlay: { backend: 'vxlan', engine: 'native', dualUnderlay: dual } },
        dual ? { family: 'dual' } : {});
    });
    after(async () => { await lab?.close(); });

    test('flows spread over source ports; a flow keeps its port', async () => {
      const n1 = lab.node(1);
      const n2 = lab.node(2);
      const family = dual ? 6 : n1.families[0]!;
      const [from, to, fromPod] = [n1.underlayIPs[family]!, podAddress(n2, family), podAddress(n1, family)];
      // outer and inner udp.srcport, comma-separated, one line per datagram
      const lines = await captureVxlan(lab.topo.underlayNs, n1.bridgePort, from, ['udp.srcport'], 8, async () => {
        for (let k = 0; k < 8; k++) await sendDatagram(n1.podNs, to, 5303, Buffer.from(`flow ${k}`));
      });
      assert.equal(lines.length, 8, lines.join('\n'));
      const outer = lines.map((l) => Number(l.split(',')[0]));
      assert.ok(new Set(outer).size > 1, `all eight flows left from one port: ${lines.join(' ')}`);

      // one flow (fixed inner source port) twice: the same outer port both times
      const again = await captureVxlan(lab.topo.underlayNs, n1.bridgePort, from, ['udp.srcport'], 2, async () => {
        for (let k = 0; k < 2; k++) await sendDatagram(n1.podNs, to, 5303, Buffer.from('same'), fromPod, 40555);
      });
      assert.equal(again.length, 2, again.join('\n'));
      assert.equal(again[0]!.split(',')[0], again[1]!.split(',')[0], again.join(' '));
      assert.equal(again[0]!.split(',')[1], '40555', again.join(' '));
    });
  });
}
