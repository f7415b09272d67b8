/**
 * Dual stack against flannel's dual stack (needs root): node 1 runs userlay with an underlay
 * socket per family (--public-ip IPv4, --public-ipv6 IPv6), node 2 is a "flannel" node made of
 * two kernel vxlan devices as flannel configures them (flannel.1: IPv4 pods over the IPv4
 * underlay; flannel-v6.1: IPv6 pods over the IPv6 underlay; a VTEP MAC each, with its own
 * neighbour and FDB entries). Both engines, and the native one with --threads 2 (offloads on,
 * the agent's default):
 *
 * - ping matrix in both families, and a hashed TCP transfer in each family both ways;
 * - a capture on node 1's underlay port proves which underlay each pod family took: an IPv4
 *   pod packet leaves from node 1's IPv4 underlay address to node 2's, with flannel.1's MAC as
 *   inner destination; an IPv6 pod packet from the IPv6 underlay address with flannel-v6.1's MAC;
 * - the kernel devices' own receive counters say the same from the other side: flannel.1
 *   received the IPv4 traffic, flannel-v6.1 the IPv6 traffic.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { nsRun } from '../../src/cli/lab/exec.js';
import { VXLAN_VNI } from '../../src/cli/lab/overlay.js';
import { hashedTransfer, ping, pingAllPairs, podAddress } from '../../src/cli/lab/probes.js';
import type { Family } from '../../src/dataplane/net.js';
import type { EngineKind } from '../../src/dataplane/types.js';
import { captureInnerTcpChecksums, captureVxlan } from '../support/capture.js';
import { NEEDS_ROOT, openTestLab, type TestLab } from '../support/lab.js';

const MB = 1024 * 1024;
const KERNEL_DEV: Record<Family, string> = { 4: 'flannel.1', 6: 'flannel-v6.1' };

/** Packets a kernel vxlan device of node ns has received (ip -s link). */
async function rxPackets(ns: string, dev: string): Promise<number> {
  const r = await nsRun(ns, 'ip', ['-j', '-s', 'link', 'show', 'dev', dev]);
  const [link] = JSON.parse(r.stdout) as Array<{ stats64: { rx: { packets: number } } }>;
  return link!.stats64.rx.packets;
}

/** Both engines; the native one also with two thread pairs (a SO_REUSEPORT group on each family's port). */
const AGENTS: Array<{ engine: EngineKind; threads?: number }> = [{ engine: 'native' }, { engine: 'js' }, { engine: 'native', threads: 2 }];

for (const { engine, threads } of AGENTS) {
  describe(`dual stack interop: userlay (${engine}${threads ? `, ${threads} threads` : ''}, both underlay families) <-> flannel's dual stack in kernel vxlan`, { skip: NEEDS_ROOT, timeout: 240_000 }, () => {
    let lab: TestLab;
    before(async () => {
      lab = await openTestLab(2, { modes: ['userlay', 'kernel-vxlan'], userlay: { backend: 'vxlan', engine, dualUnderlay: true, ...(threads ? { threads } : {}) } },
        { family: 'dual', underlayFamily: 4 });
    });
    after(async () => { await lab?.close(); });

    test('the pod MTU fits the IPv6 underlay (its overhead is the larger)', () => {
      assert.equal(lab.overlay.podMtu, 1500 - 70);
    });

    for (const family of [4, 6] as Family[]) {
      test(`IPv${family}: pods ping both ways`, async () => {
        const results = await pingAllPairs(lab.nodes, family);
        assert.equal(results.length, 2);
        for (const r of results) assert.ok(r.ok, `${r.from} -> ${r.to} (IPv${family}): ${r.output}`);
      });

      for (const [from, to] of [[1, 2], [2, 1]] as const) {
        test(`IPv${family}: 20 MB TCP node ${from} -> node ${to} arrives byte for byte`, async () => {
          const r = await hashedTransfer(lab.node(from), lab.node(to), 20 * MB, 5320 + family, 60_000, family);
          assert.equal(r.received.bytes, 20 * MB);
          assert.equal(r.received.sha256, r.sent.sha256);
        });
      }

      test(`IPv${family}: every TCP segment sent to ${KERNEL_DEV[family]} carries a complete checksum`, async () => {
        const [n1, n2] = [lab.node(1), lab.node(2)];
        const segs = await captureInnerTcpChecksums(lab.topo.underlayNs, n1.bridgePort, n1.underlayIPs[family]!, 300,
          () => hashedTransfer(n1, n2, 4 * MB, 5330 + family, 60_000, family));
        assert.ok(segs.filter((s) => s.len > 0).length >= 30, `${segs.length} segments captured`);
        const bad = segs.filter((s) => !s.good);
        assert.deepEqual(bad, [], `${bad.length} of ${segs.length} segments with a checksum that does not verify`);
      });

      test(`IPv${family}: pod traffic leaves over the IPv${family} underlay with ${KERNEL_DEV[family]}'s MAC`, async () => {
        const n1 = lab.node(1);
        const n2 = lab.node(2);
        const ipField = family === 4 ? 'ip' : 'ipv6';
        const before = await rxPackets(n2.ns, KERNEL_DEV[family]);
        const [line = ''] = await captureVxlan(lab.topo.underlayNs, n1.bridgePort, n1.underlayIPs[family]!,
          ['vxlan.vni', `${ipField}.src`, `${ipField}.dst`, 'eth.dst'], 1, () => ping(n1.podNs, podAddress(n2, family), { count: 3 }));
        const [vni, srcs, dsts, macs] = line.split('\t');
        assert.equal(Number(vni), VXLAN_VNI, `tshark: ${line}`);
        assert.deepEqual(srcs?.split(','), [n1.underlayIPs[family], n1.inner[family]!.podIP], `tshark: ${line}`);
        assert.deepEqual(dsts?.split(','), [n2.underlayIPs[family], n2.inner[family]!.podIP], `tshark: ${line}`);
        assert.equal(macs?.split(',')[1], n2.vtepMACs[family], `inner destination MAC is ${KERNEL_DEV[family]}'s: ${line}`);
        assert.ok(await rxPackets(n2.ns, KERNEL_DEV[family]) >= before + 3, `${KERNEL_DEV[family]} received the pings`);
      });
    }
  });
}
