/**
 * MTU with mixed underlays, through namespaces (need root; addresses in 198.18.0.0/15 and
 * 2001:2::/48 only), both engines:
 *
 * - `--mtu auto` on a lab whose nodes' underlay MTUs are 9000, 9000 and 1500 (a jumbo-frame
 *   NIC next to a standard one, flannel #463, #841): every node picks the smallest path,
 *   1500 - 50 = 1450, and shows it in its TUN, its subnet.env and /metrics (with n3 as the
 *   limit); the largest DF ping that fits passes both ways. A peer with a smaller underlay that
 *   joins while running lowers the TUN MTU and subnet.env without a restart.
 * - Path MTU discovery on the same underlays with `--mtu 8950` (larger than the path to n3, so
 *   a pod's big packets reach the engine): a DF ping from n1's pod to n3's gets "fragmentation
 *   needed" (IPv4) / "packet too big" (IPv6) from the TUN with MTU 1450, while the same size to
 *   n2 (a 9000-byte path) passes; a hashed TCP transfer to n3 then completes with the too_big
 *   drops counted (the sender lowered its segment size instead of black-holing).
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import type { Family } from '../../src/dataplane/net.js';
import { ip, nsRun, sleep } from '../../src/cli/lab/exec.js';
import { hashedTransfer, ping, podAddress } from '../../src/cli/lab/probes.js';
import type { EngineKind } from '../../src/dataplane/types.js';
import { NEEDS_ROOT, dropCount, openTestLab, statusJson, type TestLab } from '../support/lab.js';

const MB = 1024 * 1024;
const STATUS_PORT = 9477;
/** Underlay MTUs of n1, n2, n3. */
const UNDERLAY_MTUS = [9000, 9000, 1500];
/** The smallest path: n3's underlay minus VXLAN over IPv4. */
const SMALLEST = 1500 - 50;
/** ICMP echo header plus IP header, by family: ping -s N sends N + this. */
const PING_HEADERS: Record<Family, number> = { 4: 28, 6: 48 };
const ENGINES: EngineKind[] = ['native', 'js'];

async function metricsText(lab: TestLab, i: number): Promise<string> {
  return (await nsRun(lab.node(i).ns, 'curl', ['-sS', '--max-time', '5', `http://127.0.0.1:${STATUS_PORT}/metrics`])).stdout;
}

async function tunMtu(lab: TestLab, i: number): Promise<number> {
  const tun = lab.overlay.agents.get(i)!.ready.tun;
  const out = (await ip(lab.node(i).ns, ['-o', 'link', 'show', tun])).stdout;
  return Number(/ mtu (\d+)/.exec(out)?.[1]);
}

async function envMtu(lab: TestLab, i: number): Promise<number> {
  return Number(/^FLANNEL_MTU=(\d+)$/m.exec(await readFile(lab.overlay.subnetFile(i), 'utf8'))?.[1]);
}

/** Poll `check` every 100 ms until it holds or `timeoutMs` passes; returns whether it held. */
async function eventually(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await sleep(100);
  }
}

/** Forget the path MTUs the pod's kernel learnt (so the next test sees the engine's ICMP again). */
async function flushPmtu(lab: TestLab, i: number): Promise<void> {
  for (const f of lab.node(i).families) await ip(lab.node(i).podNs, [`-${f}`, 'route', 'flush', 'cache'], { allowFail: true });
}

for (const engine of ENGINES) {
  describe(`--mtu auto, underlays ${UNDERLAY_MTUS.join('/')}, ${engine} engine`, { skip: NEEDS_ROOT, timeout: 180_000 }, () => {
    let lab: TestLab;
    before(async () => {
      lab = await openTestLab(3, { modes: ['userlay', 'userlay', 'userlay'], userlay: { backend: 'vxlan', engine, statusPort: STATUS_PORT } },
        { underlayMtus: UNDERLAY_MTUS });
    });
    after(async () => { await lab?.close(); });

    test('every node picks the smallest path: TUN, agent, subnet.env and /metrics say 1450, limited by n3', async () => {
      assert.equal(lab.overlay.podMtu, SMALLEST);
      for (const i of [1, 2, 3]) {
        assert.equal(lab.overlay.agents.get(i)!.ready.podMTU, SMALLEST, `n${i} agent`);
        assert.equal(await tunMtu(lab, i), SMALLEST, `n${i} TUN`);
        assert.equal(await envMtu(lab, i), SMALLEST, `n${i} subnet.env`);
        const m = await metricsText(lab, i);
        assert.match(m, new RegExp(`^userlay_mtu_bytes ${SMALLEST}$`, 'm'), `n${i} /metrics`);
        assert.match(m, /^userlay_mtu_info\{mode="auto",limited_by="n3",underlay_mtu="1500",smallest_path="1450"\} 1$/m, `n${i} /metrics`);
      }
      // the choice is logged with its reason on a jumbo node
      assert.ok(lab.overlay.agents.get(1)!.logs.some((l) => l.includes('pod MTU decided') && l.includes('peer n3')), 'n1 logs why');
    });

    test('the largest DF ping that fits passes between the jumbo node and the small one, both ways', async () => {
      const size = String(SMALLEST - PING_HEADERS[4]);
      for (const [a, b] of [[1, 3], [3, 1], [1, 2]] as const) {
        const r = await ping(lab.node(a).podNs, podAddress(lab.node(b)), { count: 1, extra: ['-M', 'do', '-s', size] });
        assert.ok(r.ok, `n${a} -> n${b}: ${r.output}`);
      }
    });

    test('a peer with a smaller underlay joining at runtime lowers the TUN MTU and rewrites subnet.env', async () => {
      const file = lab.overlay.peersFile(1);
      const peers = JSON.parse(await readFile(file, 'utf8')) as unknown[];
      peers.push({ name: 'n9', subnets: ['198.19.9.0/24'], publicIP: '198.18.0.9', vtepMAC: '0a:58:c6:13:00:99', mtu: 1400 });
      await writeFile(file, JSON.stringify(peers, null, 2) + '\n');
      const lowered = 1400 - 50;
      assert.ok(await eventually(async () => (await envMtu(lab, 1)) === lowered), `subnet.env of n1 says ${await envMtu(lab, 1)}`);
      assert.equal(await tunMtu(lab, 1), lowered);
      assert.match(await metricsText(lab, 1), /^userlay_mtu_info\{mode="auto",limited_by="n9",underlay_mtu="1400",smallest_path="1350"\} 1$/m);
      assert.equal(await envMtu(lab, 2), SMALLEST, 'the other nodes are not affected');
      // and the node still forwards: a pod created earlier keeps its 1450 and reaches n3
      const r = await ping(lab.node(1).podNs, podAddress(lab.node(3)), { count: 1 });
      assert.ok(r.ok, r.output);
    });
  });

  describe(`path MTU discovery: --mtu 8950 over underlays ${UNDERLAY_MTUS.join('/')}, dual stack, ${engine} engine`, { skip: NEEDS_ROOT, timeout: 240_000 }, () => {
    let lab: TestLab;
    before(async () => {
      lab = await openTestLab(3, { modes: ['userlay', 'userlay', 'userlay'], userlay: { backend: 'vxlan', engine, statusPort: STATUS_PORT, mtu: 8950 } },
        { family: 'dual', underlayFamily: 4, underlayMtus: UNDERLAY_MTUS });
    });
    after(async () => { await lab?.close(); });

    test('the fixed MTU is accepted with a warning naming the peer whose path is smaller', async () => {
      assert.equal(lab.overlay.podMtu, 8950);
      assert.ok(lab.overlay.agents.get(1)!.logs.some((l) => l.includes('"level":"warn"') && l.includes('larger than the path to n3')),
        lab.overlay.agents.get(1)!.logs.slice(-5).join('\n'));
      assert.match(await metricsText(lab, 1), /^userlay_mtu_info\{mode="fixed",limited_by="n3",underlay_mtu="1500",smallest_path="1450"\} 1$/m);
    });

    for (const family of [4, 6] as Family[]) {
      test(`IPv${family}: a DF packet too big for the path to n3 gets ICMP ${family === 4 ? 'fragmentation needed' : 'packet too big'} with MTU 1450; n2's path carries it`, async () => {
        await flushPmtu(lab, 1);
        const from = lab.node(1);
        const size = ['-s', '4000'];
        const before = dropCount(await statusJson(from, STATUS_PORT, '/debug/stats'), 'too_big');
        const r = await ping(from.podNs, podAddress(lab.node(3), family), { count: 1, extra: ['-M', 'do', ...size] });
        assert.equal(r.ok, false, r.output);
        const want = family === 4 ? /From 198\.19\.1\.0 .*Frag needed and DF set \(mtu = 1450\)/ : /From 2001:2:0:101:: .*Packet too big: mtu=1450/;
        assert.match(r.output, want);
        const stats = await statusJson(from, STATUS_PORT, '/debug/stats') as { peers: Record<string, { drops: Record<string, string> }> };
        assert.ok(dropCount(stats, 'too_big') > before, 'counted as too_big');
        assert.ok(Number(stats.peers['n3']?.drops['too_big'] ?? 0) > 0, 'on the peer n3');
        const jumbo = await ping(from.podNs, podAddress(lab.node(2), family), { count: 1, extra: ['-M', 'do', ...size] });
        assert.ok(jumbo.ok, `to n2: ${jumbo.output}`);
      });

      test(`IPv${family}: a TCP transfer to n3 completes byte for byte (PMTU discovery, not a black hole)`, async () => {
        await flushPmtu(lab, 1);
        const from = lab.node(1);
        const before = dropCount(await statusJson(from, STATUS_PORT, '/debug/stats'), 'too_big');
        const r = await hashedTransfer(from, lab.node(3), 8 * MB, 5400 + family, 60_000, family);
        assert.equal(r.received.bytes, 8 * MB);
        assert.equal(r.received.sha256, r.sent.sha256);
        assert.ok(dropCount(await statusJson(from, STATUS_PORT, '/debug/stats'), 'too_big') > before, 'the first big segments were refused with ICMP');
      });
    }
  });
}
