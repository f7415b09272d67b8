/**
 * Interop with the Linux kernel vxlan device (needs root): node 1 runs
 * userlay (vxlan backend), node 2 a flannel.1 device configured exactly as
 * flannel's vxlan backend does. Ping and hashed TCP both ways, and tshark
 * must decode a userlay datagram as VXLAN VNI 1 carrying the pod addresses.
 *
 * Offloads stay on: frames the kernel vxlan side sends cross veth with
 * CHECKSUM_PARTIAL, so userlay receives inner TCP segments whose checksum is
 * not finished — the test asserts tx-checksumming is on so it covers that.
 * userlay runs with --offloads auto: TSO super-packets from its TUN are split
 * into segments the kernel vxlan device takes, and its UDP_GRO socket still
 * gets the kernel's tunnel super-frames whole (no GRO cmsg for those). Those
 * segments must carry complete checksums (the kernel node does not take
 * partial ones, as a userlay peer does): tshark verifies every one.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { nsRun } from '../../src/cli/lab/exec.js';
import { VXLAN_VNI } from '../../src/cli/lab/overlay.js';
import { hashedTransfer, ping, udpBurst } from '../../src/cli/lab/probes.js';
import type { EngineKind } from '../../src/dataplane/types.js';
import { captureInnerTcpChecksums, captureVxlan } from '../support/capture.js';
import { NEEDS_ROOT, openTestLab, type TestLab } from '../support/lab.js';

const MB = 1024 * 1024;

for (const engine of ['native', 'js'] as EngineKind[]) {
  describe(`interop: userlay (${engine}) <-> kernel vxlan as flannel configures it`, { skip: NEEDS_ROOT, timeout: 180_000 }, () => {
    let lab: TestLab;
    before(async () => {
      lab = await openTestLab(2, { modes: ['userlay', 'kernel-vxlan'], userlay: { backend: 'vxlan', engine, offloads: 'auto' } });
    });
    after(async () => { await lab?.close(); });

    test('veth checksum offload is on, so partial checksums reach userlay', async () => {
      for (const [ns, dev] of [[lab.node(2).ns, 'eth0'], [lab.node(2).ns, 'pod0'], [lab.node(1).ns, 'eth0'], [lab.node(2).podNs, 'eth0']] as const) {
        const k = await nsRun(ns, 'ethtool', ['-k', dev]);
        assert.match(k.stdout, /^tx-checksumming: on/m, `${ns} ${dev}`);
      }
    });

    test('pods ping both ways', async () => {
      const there = await ping(lab.node(1).podNs, lab.node(2).podIP);
      assert.ok(there.ok, there.output);
      const back = await ping(lab.node(2).podNs, lab.node(1).podIP);
      assert.ok(back.ok, back.output);
    });

    test('50 MB TCP userlay -> kernel arrives byte for byte', async () => {
      const r = await hashedTransfer(lab.node(1), lab.node(2), 50 * MB, 5301, 60_000);
      assert.equal(r.received.bytes, 50 * MB);
      assert.equal(r.received.sha256, r.sent.sha256);
    });

    // The js engine cannot take these: dgram gives no UDP_GRO cmsg, so it never learns the
    // datagram size of the kernel's tunnel frame (README, Engines).
    if (engine === 'native') {
      test('UDP_SEGMENT sends from the kernel vxlan pod arrive as the sender\'s datagrams, every size that fits', async () => {
        // each size's copies leave the kernel pod as one UDP GSO packet, which kernel vxlan
        // carries whole across the veth; userlay gets it unsegmented with the datagram size in
        // the UDP_GRO cmsg and must hand the pod exactly the datagrams that were sent
        const max = lab.overlay.podMtu - 28;
        const r = await udpBurst(lab.node(2), lab.node(1), 1, max, 5303, 4, true);
        assert.deepEqual(r.failed, [], `sizes lost: ${r.failed.slice(0, 20).join(',')} ${JSON.stringify(r.errors)}`);
        assert.equal(r.ok, max);
      });
    }

    test('50 MB TCP kernel -> userlay arrives byte for byte', async () => {
      const r = await hashedTransfer(lab.node(2), lab.node(1), 50 * MB, 5301, 60_000);
      assert.equal(r.received.bytes, 50 * MB);
      assert.equal(r.received.sha256, r.sent.sha256);
    });

    test('every TCP segment userlay sends the kernel vxlan node carries a complete checksum', async () => {
      // the kernel node publishes no partialCsum: the native engine must finish what it split
      const [n1, n2] = [lab.node(1), lab.node(2)];
      const segs = await captureInnerTcpChecksums(lab.topo.underlayNs, n1.bridgePort, n1.underlayIP, 400,
        () => hashedTransfer(n1, n2, 8 * MB, 5302, 60_000));
      const data = segs.filter((s) => s.len > 0);
      assert.ok(data.length >= 50, `only ${data.length} data segments captured of ${segs.length}`);
      const bad = segs.filter((s) => !s.good);
      assert.deepEqual(bad, [], `${bad.length} of ${segs.length} segments with a checksum that does not verify`);
    });

    test('tshark decodes a userlay datagram as VXLAN VNI 1 with the pod addresses', async () => {
      const n1 = lab.node(1);
      const n2 = lab.node(2);
      const [line = ''] = await captureVxlan(lab.topo.underlayNs, n1.bridgePort, n1.underlayIP,
        ['vxlan.vni', 'ip.src', 'ip.dst'], 1, () => ping(n1.podNs, n2.podIP, { count: 3 }));
      const [vni, srcs, dsts] = line.split('\t');
      assert.equal(Number(vni), VXLAN_VNI, `tshark: ${line}`);
      assert.deepEqual(srcs?.split(','), [n1.underlayIP, n1.podIP], `tshark: ${line}`);
      assert.deepEqual(dsts?.split(','), [n2.underlayIP, n2.podIP], `tshark: ${line}`);
    });
  });
}
