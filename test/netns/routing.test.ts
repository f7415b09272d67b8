/**
 * Routing modes in network namespaces (need root):
 *
 * - DirectRouting on a routed underlay (n1, n2 on segment A 198.18.0.0/24; n3 on segment B
 *   198.18.1.0/24 behind a router): the on-link peer gets a protocol-85 kernel route and the
 *   engine sends it nothing; the peer behind the router is encapsulated (tx counted). Ping
 *   matrix, a hashed transfer over each kind of peer; a crashed run's routes are removed at
 *   the next start, a foreign route is not.
 * - DirectRouting on one end only (flat underlay): what happens, with rp_filter off and strict.
 * - host-gw on a routed underlay: the on-link peer is routed; the off-link one is logged,
 *   exported (/metrics, /debug/fdb) and not routed, and a packet to it is answered with ICMP
 *   destination unreachable from the TUN and counted as no_route (no silent black hole).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ip, nsRun } from '../../src/cli/lab/exec.js';
import { hashedTransfer, ping, pingAllPairs } from '../../src/cli/lab/probes.js';
import { startAgent, type AgentProcess } from '../../src/cli/lab/agent-process.js';
import type { EngineKind } from '../../src/dataplane/types.js';
import { NEEDS_ROOT, dropCount, openTestLab, pingUntil, statusJson, type TestLab } from '../support/lab.js';

const MB = 1024 * 1024;
const STATUS_PORT = 9431;

async function protoRoutes(ns: string): Promise<string> {
  return (await ip(ns, ['route', 'show', 'proto', '85'])).stdout;
}

async function metrics(ns: string): Promise<string> {
  return (await nsRun(ns, 'curl', ['-sS', '--max-time', '5', `http://127.0.0.1:${STATUS_PORT}/metrics`])).stdout;
}

interface PeerStats { txPackets: string; rxPackets: string }

async function peerTx(lab: TestLab, node: number, peer: string): Promise<number> {
  const s = await statusJson(lab.node(node), STATUS_PORT, '/debug/stats') as { peers: Record<string, PeerStats> };
  return Number(s.peers[peer]?.txPackets ?? 0);
}

for (const engine of ['native', 'js'] as EngineKind[]) {
  describe(`routing: DirectRouting on a routed underlay, vxlan, ${engine} engine`, { skip: NEEDS_ROOT, timeout: 240_000 }, () => {
    let lab: TestLab;
    let restarted: AgentProcess | undefined;
    before(async () => {
      lab = await openTestLab(3, {
        modes: ['userlay', 'userlay', 'userlay'], userlay: { backend: 'vxlan', engine, directRouting: true, statusPort: STATUS_PORT },
      }, { underlay: 'routed' });
    });
    after(async () => {
      await restarted?.stop();
      await lab?.close();
    });

    test('the lab has both kinds of peers', () => {
      assert.deepEqual(lab.nodes.map((n) => n.underlayIP), ['198.18.0.1', '198.18.0.2', '198.18.1.3']);
    });

    test('every pod pings every other pod', async () => {
      const results = await pingAllPairs(lab.nodes);
      assert.equal(results.length, 6);
      for (const r of results) assert.ok(r.ok, `${r.from} -> ${r.to}: ${r.output}`);
    });

    test('the on-link peer gets a protocol-85 kernel route on the underlay, the one behind the router none', async () => {
      const n1 = await protoRoutes(lab.node(1).ns);
      assert.match(n1, /^198\.19\.2\.0\/24 via 198\.18\.0\.2 dev eth0 /m, n1);
      assert.doesNotMatch(n1, /198\.19\.3\.0/, n1);
      const n3 = await protoRoutes(lab.node(3).ns);
      assert.doesNotMatch(n3, /via/, `n3 has no on-link peer:\n${n3}`);
      const m = await metrics(lab.node(1).ns);
      assert.match(m, /^userlay_peer_route\{peer="n2",route="direct"\} 1$/m);
      assert.match(m, /^userlay_peer_route\{peer="n3",route="overlay"\} 1$/m);
      assert.match(m, /^userlay_peers_not_routed 0$/m);
    });

    test('a hashed transfer over each kind of peer; only the one behind the router is encapsulated', async () => {
      const direct = await hashedTransfer(lab.node(1), lab.node(2), 20 * MB, 5311, 60_000);
      assert.equal(direct.received.bytes, 20 * MB);
      assert.equal(direct.received.sha256, direct.sent.sha256);
      const routed = await hashedTransfer(lab.node(1), lab.node(3), 20 * MB, 5312, 60_000);
      assert.equal(routed.received.bytes, 20 * MB);
      assert.equal(routed.received.sha256, routed.sent.sha256);
      assert.ok(await peerTx(lab, 1, 'n3') > 0, 'n1 encapsulated nothing for n3');
      assert.equal(await peerTx(lab, 1, 'n2'), 0, 'n1 encapsulated packets for its on-link peer n2');
      assert.equal(await peerTx(lab, 2, 'n1'), 0, 'n2 encapsulated packets for its on-link peer n1');
    });

    test('a restart after a crash removes the crashed run\'s routes and never a foreign one', async () => {
      const node = lab.node(1);
      const agent = lab.overlay.agents.get(1)!;
      await agent.kill();
      // the TUN died with the process; the route on the underlay device did not
      assert.match(await protoRoutes(node.ns), /198\.19\.2\.0\/24 via 198\.18\.0\.2/);
      await ip(node.ns, ['route', 'add', '198.19.99.0/24', 'via', '198.18.0.2', 'dev', 'eth0', 'proto', '85']);
      await ip(node.ns, ['route', 'add', '198.19.98.0/24', 'via', '198.18.0.2', 'dev', 'eth0', 'proto', 'static']);
      restarted = await startAgent(node, { backend: 'vxlan', engine, directRouting: true, statusPort: STATUS_PORT }, lab.overlay.peersFile(1));
      const after = await protoRoutes(node.ns);
      assert.doesNotMatch(after, /198\.19\.99\.0/, `stale route kept:\n${after}`);
      assert.equal(after.match(/198\.19\.2\.0\/24/g)?.length, 1, after);
      assert.ok(restarted.logs.some((l) => l.includes('removed a stale userlay route') && l.includes('198.19.99.0/24')), 'the removal was not logged');
      const all = (await ip(node.ns, ['route', 'show'])).stdout;
      assert.match(all, /^198\.19\.98\.0\/24 via 198\.18\.0\.2 dev eth0 proto static/m, 'a foreign route was touched');
      const back = await pingUntil(node, lab.node(2), true);
      assert.ok(back.ok, back.output);
      assert.ok((await pingUntil(node, lab.node(3), true)).ok);
      await restarted.stop();
      assert.doesNotMatch(await protoRoutes(node.ns), /198\.19\.2\.0/, 'a clean stop leaves its direct route behind');
      restarted = undefined;
    });
  });
}

describe('routing: DirectRouting on one end only (flat underlay)', { skip: NEEDS_ROOT, timeout: 180_000 }, () => {
  let lab: TestLab;
  let direct: AgentProcess | undefined;
  before(async () => {
    lab = await openTestLab(2, { modes: ['userlay', 'userlay'], userlay: { backend: 'vxlan', engine: 'native', statusPort: STATUS_PORT } });
    // n1 alone routes directly: it sends plain IP to n2, n2 answers through its tunnel
    await lab.overlay.agents.get(1)!.stop();
    direct = await startAgent(lab.node(1), { backend: 'vxlan', engine: 'native', directRouting: true, statusPort: STATUS_PORT }, lab.overlay.peersFile(1));
  });
  after(async () => {
    await direct?.stop();
    await lab?.close();
  });

  test('with rp_filter off (0) it works: n1 sends plain, n2 encapsulates back and n1 still accepts it', async () => {
    assert.match(await protoRoutes(lab.node(1).ns), /198\.19\.2\.0\/24 via 198\.18\.0\.2/);
    for (const [a, b] of [[1, 2], [2, 1]] as const) {
      const r = await pingUntil(lab.node(a), lab.node(b), true);
      assert.ok(r.ok, `n${a} -> n${b}: ${r.output}`);
    }
    const t = await hashedTransfer(lab.node(1), lab.node(2), 10 * MB, 5313, 60_000);
    assert.equal(t.received.sha256, t.sent.sha256);
    assert.equal(await peerTx(lab, 1, 'n2'), 0, 'n1 should send n2 nothing through the tunnel');
    assert.ok(await peerTx(lab, 2, 'n1') > 0, 'n2 should answer through its tunnel');
  });

  test('with strict rp_filter (1) on the end without DirectRouting, the plain packets are dropped there', async () => {
    const n2 = lab.node(2);
    await nsRun(n2.ns, 'sysctl', ['-q', '-w', 'net.ipv4.conf.all.rp_filter=1', 'net.ipv4.conf.eth0.rp_filter=1']);
    try {
      // n2 would route an answer to n1's pod subnet through its TUN, not eth0: a strict
      // reverse-path check drops what arrives on eth0 from there
      const r = await pingUntil(lab.node(1), n2, false);
      assert.equal(r.ok, false, `still reachable with strict rp_filter: ${r.output}`);
    } finally {
      await nsRun(n2.ns, 'sysctl', ['-q', '-w', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.eth0.rp_filter=0']);
    }
    const back = await pingUntil(lab.node(1), n2, true);
    assert.ok(back.ok, back.output);
  });
});

describe('routing: host-gw on a routed underlay', { skip: NEEDS_ROOT, timeout: 180_000 }, () => {
  let lab: TestLab;
  before(async () => {
    lab = await openTestLab(3, { modes: ['userlay', 'userlay', 'userlay'], userlay: { backend: 'host-gw', engine: 'native', statusPort: STATUS_PORT } },
      { underlay: 'routed' });
  });
  after(async () => { await lab?.close(); });

  test('on-link peers are routed: ping both ways and a hashed transfer', async () => {
    assert.match(await protoRoutes(lab.node(1).ns), /^198\.19\.2\.0\/24 via 198\.18\.0\.2 dev eth0 /m);
    for (const [a, b] of [[1, 2], [2, 1]] as const) {
      const r = await ping(lab.node(a).podNs, lab.node(b).podIP, { count: 1 });
      assert.ok(r.ok, `n${a} -> n${b}: ${r.output}`);
    }
    const t = await hashedTransfer(lab.node(1), lab.node(2), 20 * MB, 5314, 60_000);
    assert.equal(t.received.sha256, t.sent.sha256);
  });

  test('the peer behind the router is logged, exported and not routed', async () => {
    const n1 = lab.node(1);
    assert.doesNotMatch(await protoRoutes(n1.ns), /198\.19\.3\.0/);
    const agent = lab.overlay.agents.get(1)!;
    assert.ok(agent.logs.some((l) => l.includes('peer not routed') && l.includes('"peer":"n3"')), 'no log line names n3');
    const m = await metrics(n1.ns);
    assert.match(m, /^userlay_peers_not_routed 1$/m);
    assert.match(m, /^userlay_peer_route\{peer="n3",route="none"\} 1$/m);
    assert.match(m, /^userlay_peer_route\{peer="n2",route="direct"\} 1$/m);
    const fdb = await statusJson(n1, STATUS_PORT, '/debug/fdb') as { peers: unknown[]; routing: { mode: string; notRouted: Array<{ name: string; reason: string }> } };
    assert.equal(fdb.routing.mode, 'routes-only');
    assert.deepEqual(fdb.routing.notRouted.map((u) => u.name), ['n3']);
    assert.match(fdb.routing.notRouted[0]!.reason, /198\.18\.1\.3 is not inside a connected prefix of eth0/);
    assert.deepEqual(fdb.peers, [], 'host-gw encapsulates for nobody');
  });

  test('no black hole: a packet to the unrouted peer is answered with ICMP unreachable and counted', async () => {
    const n1 = lab.node(1);
    const before = dropCount(await statusJson(n1, STATUS_PORT, '/debug/stats'), 'no_route');
    const r = await ping(n1.podNs, lab.node(3).podIP, { count: 1 });
    assert.equal(r.ok, false);
    assert.match(r.output, /Unreachable/, `no ICMP destination unreachable: ${r.output}`);
    const afterCount = dropCount(await statusJson(n1, STATUS_PORT, '/debug/stats'), 'no_route');
    assert.ok(afterCount > before, `no_route did not count: ${before} -> ${afterCount}`);
  });
});

describe('routing: host-gw on a flat segment', { skip: NEEDS_ROOT, timeout: 120_000 }, () => {
  let lab: TestLab;
  before(async () => {
    lab = await openTestLab(2, { modes: ['userlay', 'userlay'], userlay: { backend: 'host-gw', engine: 'native', statusPort: STATUS_PORT } });
  });
  after(async () => { await lab?.close(); });

  test('every peer is routed by the kernel: ping matrix, a hashed transfer, nothing through the TUN', async () => {
    for (const r of await pingAllPairs(lab.nodes)) assert.ok(r.ok, `${r.from} -> ${r.to}: ${r.output}`);
    const t = await hashedTransfer(lab.node(2), lab.node(1), 20 * MB, 5315, 60_000);
    assert.equal(t.received.sha256, t.sent.sha256);
    assert.match(await protoRoutes(lab.node(2).ns), /^198\.19\.1\.0\/24 via 198\.18\.0\.1 dev eth0 /m);
    const m = await metrics(lab.node(2).ns);
    assert.match(m, /^userlay_peers_not_routed 0$/m);
    assert.match(m, /^userlay_fdb_peers 0$/m, 'host-gw holds no peer in the FDB');
  });

  test('a clean stop removes the routes it added', async () => {
    const agent = lab.overlay.agents.get(2)!;
    const { exit } = await agent.stop();
    assert.equal(exit, 0);
    assert.equal(await protoRoutes(lab.node(2).ns), '');
  });
});
