/**
 * Dual-stack userlay nodes with an underlay socket per family (need root): a 3-node dual lab
 * whose agents run with --public-ip (IPv4) and --public-ipv6 (IPv6), vxlan, offloads on, both
 * engines. In each family: every pod pings every other, a hashed TCP transfer arrives byte for
 * byte, and a capture on the sender's underlay port shows the pod family's own underlay family
 * (IPv4 pods from the IPv4 underlay address to the peer's, IPv6 from the IPv6 one). With the
 * native engine the receiver's UDP GRO counters grow during each family's transfer: GRO is on
 * for both sockets. The same lab with --backend host-gw: each pod subnet is routed (protocol
 * 85) via the peer's underlay address of its own family, and pods reach each other in both
 * families. Addresses: 198.18.0.0/15 and 2001:2::/48 only.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { nsRun } from '../../src/cli/lab/exec.js';
import { hashedTransfer, ping, pingAllPairs, podAddress } from '../../src/cli/lab/probes.js';
import { UNDERLAY_MTU } from '../../src/cli/lab/topology.js';
import { encapOverhead } from '../../src/dataplane/backends.js';
import type { Family } from '../../src/dataplane/net.js';
import type { EngineKind } from '../../src/dataplane/types.js';
import { captureVxlan } from '../support/capture.js';
import { NEEDS_ROOT, openTestLab, statusJson, type TestLab } from '../support/lab.js';

const MB = 1024 * 1024;
const STATUS_PORT = 9478;

interface GroJson {
  offloads?: { active: string[]; counters: { groBuffers: number; groDatagrams: number } };
}

for (const engine of ['native', 'js'] as EngineKind[]) {
  describe(`dual underlay: 3 userlay nodes, a socket per family, vxlan, ${engine} engine`, { skip: NEEDS_ROOT, timeout: 240_000 }, () => {
    let lab: TestLab;
    before(async () => {
      lab = await openTestLab(3, { modes: ['userlay', 'userlay', 'userlay'], userlay: { backend: 'vxlan', engine, dualUnderlay: true, statusPort: STATUS_PORT } },
        { family: 'dual', pods: 'cni' });
    });
    after(async () => { await lab?.close(); });

    test('the pod MTU leaves room for VXLAN over IPv6, the larger overhead', () => {
      assert.equal(lab.overlay.podMtu, UNDERLAY_MTU - encapOverhead('vxlan', 6));
    });

    for (const family of [4, 6] as Family[]) {
      test(`IPv${family}: every pod pings every other pod`, async () => {
        const results = await pingAllPairs(lab.nodes, family);
        assert.equal(results.length, 6);
        for (const r of results) assert.ok(r.ok, `${r.from} -> ${r.to} (IPv${family}): ${r.output}`);
      });

      test(`IPv${family}: a 20 MB TCP transfer arrives byte for byte${engine === 'native' ? ', through UDP GRO on the receiver' : ''}`, async () => {
        const gro = async () => ((await statusJson(lab.node(3), STATUS_PORT, '/debug/stats')) as GroJson).offloads!;
        const before = await gro();
        const r = await hashedTransfer(lab.node(1), lab.node(3), 20 * MB, 5330 + family, 60_000, family);
        assert.equal(r.received.bytes, 20 * MB);
        assert.equal(r.received.sha256, r.sent.sha256);
        if (engine === 'native') {
          const now = await gro();
          assert.ok(now.active.includes('gro'), JSON.stringify(now));
          assert.ok(now.counters.groBuffers > before.counters.groBuffers, `no UDP GRO buffer on the IPv${family} socket: ${JSON.stringify(now.counters)}`);
        }
      });

      test(`IPv${family}: pod packets travel over the IPv${family} underlay`, async () => {
        const [n1, n2] = [lab.node(1), lab.node(2)];
        const ipField = family === 4 ? 'ip' : 'ipv6';
        const [line = ''] = await captureVxlan(lab.topo.underlayNs, n1.bridgePort, n1.underlayIPs[family]!,
          [`${ipField}.src`, `${ipField}.dst`, 'eth.dst'], 1, () => ping(n1.podNs, podAddress(n2, family), { count: 3 }));
        const [srcs, dsts, macs] = line.split('\t');
        assert.deepEqual(srcs?.split(','), [n1.underlayIPs[family], n1.inner[family]!.podIP], `tshark: ${line}`);
        assert.deepEqual(dsts?.split(','), [n2.underlayIPs[family], n2.inner[family]!.podIP], `tshark: ${line}`);
        assert.equal(macs?.split(',')[1], n2.vtepMAC, `a userlay node has one VTEP MAC for both families: ${line}`);
      });
    }
  });
}

describe('dual underlay, host-gw: each pod family is routed via the peer\'s address of that family', { skip: NEEDS_ROOT, timeout: 120_000 }, () => {
  let lab: TestLab;
  before(async () => {
    lab = await openTestLab(3, { modes: ['userlay', 'userlay', 'userlay'], userlay: { backend: 'host-gw', engine: 'native', dualUnderlay: true } },
      { family: 'dual', pods: 'cni' });
  });
  after(async () => { await lab?.close(); });

  for (const family of [4, 6] as Family[]) {
    test(`IPv${family}: routes via the peers' IPv${family} underlay addresses, and every pod pings every other pod`, async () => {
      const n1 = lab.node(1);
      const r = await nsRun(n1.ns, 'ip', [`-${family}`, '-j', 'route', 'show', 'proto', '85']);
      // the cluster network's route through the TUN is ours too, without a gateway
      const routes = (JSON.parse(r.stdout) as Array<{ dst: string; gateway?: string }>).filter((x) => x.gateway !== undefined).map((x) => [x.dst, x.gateway]).sort();
      const want = [lab.node(2), lab.node(3)].map((n) => [n.inner[family]!.subnet, n.underlayIPs[family]]).sort();
      assert.deepEqual(routes, want);
      const results = await pingAllPairs(lab.nodes, family);
      assert.equal(results.length, 6);
      for (const p of results) assert.ok(p.ok, `${p.from} -> ${p.to} (IPv${family}): ${p.output}`);
    });
  }
});
