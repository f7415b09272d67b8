/**
 * IPv6 and dual stack through namespaces (need root), addresses in 2001:2::/48 only:
 *
 * - a dual-stack lab per engine (pods with an IPv4 and an IPv6 address, nodes with both underlay
 *   addresses), pods attached through the CNI plugin: the native engine on the IPv6 underlay with
 *   vxlan (inner IPv4 and IPv6 over outer IPv6, pod MTU underlay - 70), the js engine on the IPv4
 *   underlay with udp; in each family a ping matrix, a hashed TCP transfer, and the largest
 *   don't-fragment ping that fits the pod MTU (one byte more is refused), and ICMP(v6)
 *   "unreachable" from the TUN's own address for a cluster address no node holds; IPv6 UDP
 *   bursts of every size that fits, which the receiver writes to its TUN as UDP GSO runs;
 * - an IPv6-only lab: a userlay node (native, vxlan over IPv6) and a kernel vxlan node set up as
 *   flannel's IPv6 backend does (flannel-v6.1, local = the node's IPv6 address, MTU - 70): pings
 *   and a hashed transfer both ways, and UDP_SEGMENT bursts from the kernel node's pod;
 * - an agent on a node whose new devices start with IPv6 disabled (default.disable_ipv6=1) still
 *   gets its TUN's IPv6 address.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { encapOverhead } from '../../src/dataplane/backends.js';
import type { Family } from '../../src/dataplane/net.js';
import { ip, nsRun } from '../../src/cli/lab/exec.js';
import { applyOverlay } from '../../src/cli/lab/overlay.js';
import { hashedTransfer, ping, pingAllPairs, podAddress, udpBurst } from '../../src/cli/lab/probes.js';
import { createTopology, UNDERLAY_MTU } from '../../src/cli/lab/topology.js';
import type { Backend, EngineKind } from '../../src/dataplane/types.js';
import { NEEDS_ROOT, TEST_PREFIX_ROOT, openTestLab, statusJson, type TestLab } from '../support/lab.js';

const MB = 1024 * 1024;
/** ICMP echo header plus IP header, by family: ping -s N sends N + this on the wire. */
const PING_HEADERS: Record<Family, number> = { 4: 28, 6: 48 };
const STATUS_PORT = 9479;

/** The UDP runs a node's engine wrote to its TUN as one GSO packet each, and the datagrams in them. */
async function udpRuns(lab: TestLab, i: number): Promise<{ runs: number; packets: number }> {
  const s = (await statusJson(lab.node(i), STATUS_PORT, '/debug/stats')) as { offloads?: { counters: { tunUdpRuns: number; tunUdpRunPackets: number } } };
  assert.ok(s.offloads, JSON.stringify(s));
  return { runs: s.offloads.counters.tunUdpRuns, packets: s.offloads.counters.tunUdpRunPackets };
}

const DUAL: Array<{ engine: EngineKind; backend: Backend; underlay: Family }> = [
  { engine: 'native', backend: 'vxlan', underlay: 6 },
  { engine: 'js', backend: 'udp', underlay: 4 },
];

for (const { engine, backend, underlay } of DUAL) {
  describe(`dual stack: 3 nodes, ${backend} over IPv${underlay}, ${engine} engine`, { skip: NEEDS_ROOT, timeout: 240_000 }, () => {
    let lab: TestLab;
    before(async () => {
      lab = await openTestLab(3, { modes: ['userlay', 'userlay', 'userlay'], userlay: { backend, engine, statusPort: STATUS_PORT } },
        { family: 'dual', underlayFamily: underlay, pods: 'cni' });
    });
    after(async () => { await lab?.close(); });

    test(`the pod MTU leaves room for ${backend} over IPv${underlay}`, () => {
      assert.equal(lab.overlay.podMtu, UNDERLAY_MTU - encapOverhead(backend, underlay));
    });

    for (const family of [4, 6] as Family[]) {
      test(`IPv${family}: every pod pings every other pod`, async () => {
        const results = await pingAllPairs(lab.nodes, family);
        assert.equal(results.length, 6);
        for (const r of results) assert.ok(r.ok, `${r.from} -> ${r.to} (IPv${family}): ${r.output}`);
      });

      test(`IPv${family}: a 20 MB TCP transfer arrives byte for byte`, async () => {
        const r = await hashedTransfer(lab.node(1), lab.node(3), 20 * MB, 5311 + family, 60_000, family);
        assert.equal(r.received.bytes, 20 * MB);
        assert.equal(r.received.sha256, r.sent.sha256);
      });

      test(`IPv${family}: the largest ping with DF that fits the pod MTU passes, one byte more does not`, async () => {
        const from = lab.node(2);
        const to = podAddress(lab.node(1), family);
        const max = lab.overlay.podMtu - PING_HEADERS[family];
        const df = ['-M', 'do'];
        const fits = await ping(from.podNs, to, { count: 1, extra: [...df, '-s', String(max)] });
        assert.ok(fits.ok, fits.output);
        const tooBig = await ping(from.podNs, to, { count: 1, extra: [...df, '-s', String(max + 1)] });
        assert.equal(tooBig.ok, false);
        assert.match(tooBig.output, /message too long|mtu|too big/i);
      });

      test(`IPv${family}: a pod pinging a cluster address no node holds gets "unreachable" back from the TUN`, async () => {
        const from = lab.node(1);
        // inside the cluster network, in no node's subnet: the engine has no peer for it
        const nowhere = family === 4 ? '198.19.200.2' : '2001:2:0:1c8::2';
        const r = await ping(from.podNs, nowhere, { count: 1 });
        assert.equal(r.ok, false);
        assert.match(r.output, new RegExp(`From ${from.inner[family]!.subnetAddr.replace(/\./g, '\\.')} .*unreachable`, 'i'), r.output);
      });
    }

    test('IPv6: UDP bursts of 1 byte up to the largest datagram that fits arrive intact, as UDP GSO runs at the receiver', async () => {
      const max = lab.overlay.podMtu - 48; // IPv6 and UDP headers
      const before = await udpRuns(lab, 3);
      const r = await udpBurst(lab.node(1), lab.node(3), 1, max, 5320, 6);
      assert.deepEqual(r.failed, [], `sizes lost: ${r.failed.slice(0, 20).join(',')} ${JSON.stringify(r.errors)}`);
      assert.equal(r.ok, max);
      const after = await udpRuns(lab, 3);
      assert.ok(after.runs > before.runs && after.packets - before.packets > after.runs - before.runs, JSON.stringify({ before, after }));
    });

    test('the agents route both cluster networks through the TUN', async () => {
      const n = lab.node(1);
      const tun = lab.overlay.agents.get(1)!.ready.tun;
      for (const family of [4, 6] as Family[]) {
        const r = await ip(n.ns, [`-${family}`, 'route', 'get', podAddress(lab.node(2), family)]);
        assert.match(r.stdout, new RegExp(`dev ${tun}\\b`), r.stdout);
      }
    });
  });
}

describe('IPv6 only: userlay (native, vxlan) and a kernel vxlan node as flannel-v6.1', { skip: NEEDS_ROOT, timeout: 180_000 }, () => {
  let lab: TestLab;
  before(async () => {
    lab = await openTestLab(2, { modes: ['userlay', 'kernel-vxlan'], userlay: { backend: 'vxlan', engine: 'native' } }, { family: '6' });
  });
  after(async () => { await lab?.close(); });

  test('the kernel node has flannel-v6.1 with the node\'s IPv6 address as local and MTU - 70', async () => {
    const r = await ip(lab.node(2).ns, ['-d', 'link', 'show', 'flannel-v6.1']);
    assert.match(r.stdout, /vxlan id 1 local 2001:2::2 /);
    assert.match(r.stdout, new RegExp(`mtu ${UNDERLAY_MTU - 70} `));
    assert.equal(lab.overlay.podMtu, UNDERLAY_MTU - 70);
  });

  test('pings both ways', async () => {
    for (const [a, b] of [[1, 2], [2, 1]] as const) {
      const r = await ping(lab.node(a).podNs, lab.node(b).podIP);
      assert.ok(r.ok, `n${a} -> n${b}: ${r.output}`);
    }
  });

  test('a 20 MB TCP transfer each way arrives byte for byte', async () => {
    for (const [a, b] of [[1, 2], [2, 1]] as const) {
      const r = await hashedTransfer(lab.node(a), lab.node(b), 20 * MB, 5320 + a, 60_000);
      assert.equal(r.received.bytes, 20 * MB, `n${a} -> n${b}`);
      assert.equal(r.received.sha256, r.sent.sha256, `n${a} -> n${b}`);
    }
  });

  test('UDP_SEGMENT sends from the kernel node\'s pod arrive at the userlay pod as the sender\'s datagrams', async () => {
    // kernel vxlan over IPv6 carries each send's UDP GSO packet whole (see test/interop/kernel-vxlan)
    const max = lab.overlay.podMtu - 48;
    const r = await udpBurst(lab.node(2), lab.node(1), 1, max, 5330, 6, true);
    assert.deepEqual(r.failed, [], `sizes lost: ${r.failed.slice(0, 20).join(',')} ${JSON.stringify(r.errors)}`);
    assert.equal(r.ok, max);
  });
});

test('a node whose new devices start with IPv6 disabled: the agent turns it on for its TUN', { skip: NEEDS_ROOT, timeout: 60_000 }, async () => {
  const topo = await createTopology({ prefix: `${TEST_PREFIX_ROOT}${process.pid}-d6.`, nodes: 1, family: 'dual' });
  try {
    const n1 = topo.nodes[0]!;
    await nsRun(n1.ns, 'sysctl', ['-q', '-w', 'net.ipv6.conf.default.disable_ipv6=1']);
    const overlay = await applyOverlay(topo, { modes: ['userlay'], userlay: { backend: 'udp', engine: 'js' } });
    try {
      const tun = overlay.agents.get(1)!.ready.tun;
      const r = await ip(n1.ns, ['-6', 'addr', 'show', 'dev', tun]);
      assert.match(r.stdout, /inet6 2001:2:0:101::\/128 /, r.stdout);
    } finally {
      await overlay.remove();
    }
  } finally {
    await topo.close();
  }
});
