/**
 * The pod MTU decision (src/control/path-mtu.ts) and where its inputs come from: the smallest
 * path over mixed underlay MTUs, bad published MTUs (kube annotation, peers file), the runtime
 * policy (lower, never raise), the per-peer path MTU in the FDB snapshot, the lease annotation
 * and the /metrics families.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PodMtu, checkPublishedMtu, decideMtu, type MtuDecision, type MtuInput } from '../../src/control/path-mtu.js';
import { computePeers, nodeToPeer, trimNode } from '../../src/control/kube/desired-peers.js';
import { UNDERLAY_MTU_ANNOTATION, leasePatch } from '../../src/control/kube/lease.js';
import { parsePeers } from '../../src/control/static-file.js';
import { FDB_HDR_SIZE, SlotAllocator, buildFdb } from '../../src/dataplane/fdb.js';
import { renderMtuMetrics } from '../../src/agent/status-server.js';
import { createLogger } from '../../src/log.js';
import type { Peer } from '../../src/dataplane/types.js';
import { cfg, node } from '../support/kube-nodes.js';

const input: MtuInput = { backend: 'vxlan', nodeName: 'n1', family: 4, underlay: { iface: 'eth0', mtu: 9001 } };

function peer(i: number, underlayMtu?: number, publicIP = `198.18.0.${i}`): Peer {
  return { name: `n${i}`, subnets: [`198.19.${i}.0/24`], publicIP, vtepMAC: `0a:58:c6:13:00:0${i}`, ...(underlayMtu ? { underlayMtu } : {}) };
}

function logged(): { lines: Array<Record<string, unknown>>; log: ReturnType<typeof createLogger> } {
  const lines: Array<Record<string, unknown>> = [];
  return { lines, log: createLogger('debug', (l) => lines.push(JSON.parse(l) as Record<string, unknown>)) };
}

test('auto: a 9001-byte node and a 1500-byte one agree on the smallest path (flannel #463, #841)', () => {
  const d = decideMtu(input, [peer(2, 9001), peer(3, 1500), peer(4)]);
  assert.equal(d.mtu, 1500 - 50);
  assert.equal(d.mode, 'auto');
  assert.equal(d.limitedBy, 'n3');
  assert.equal(d.underlayMtu, 1500);
  assert.match(d.reason, /peer n3's underlay MTU 1500 .*eth0 9001.* 50 bytes of vxlan overhead/);
  assert.equal(d.warning, undefined);
  // the 1500-byte node's view: its own underlay limits, whoever the peers are
  const small = decideMtu({ ...input, underlay: { iface: 'eth0', mtu: 1500 } }, [peer(2, 9001)]);
  assert.deepEqual([small.mtu, small.limitedBy], [1450, 'n1']);
  assert.match(small.reason, /this node's underlay eth0 \(MTU 1500\)/);
});

test('auto: no peers, or peers publishing nothing, count as our own underlay; overhead by backend and family', () => {
  assert.equal(decideMtu(input, []).mtu, 9001 - 50);
  assert.equal(decideMtu(input, [peer(2)]).limitedBy, 'n1');
  assert.equal(decideMtu({ ...input, backend: 'udp' }, [peer(2, 1500)]).mtu, 1500 - 28);
  const v6: MtuInput = { ...input, family: 6 };
  assert.equal(decideMtu(v6, [peer(2, 1500, '2001:2::2')]).mtu, 1500 - 70);
  assert.equal(decideMtu({ ...v6, backend: 'udp' }, [peer(2, 1500, '2001:2::2')]).mtu, 1500 - 48);
});

test('fixed: an --mtu larger than the smallest path is kept, with a warning naming the peer', () => {
  const d = decideMtu({ ...input, fixed: 8000 }, [peer(2, 1500)]);
  assert.equal(d.mtu, 8000);
  assert.equal(d.mode, 'fixed');
  assert.equal(d.smallestPath, 1450);
  assert.match(d.warning ?? '', /MTU 8000 is larger than the path to n2 carries \(1450/);
  assert.equal(decideMtu({ ...input, fixed: 1400 }, [peer(2, 1500)]).warning, undefined);
  // limited by our own underlay alone: resolveMtu (host/mtu.ts) warns about that, not this
  assert.equal(decideMtu({ ...input, fixed: 9000 }, [peer(2)]).warning, undefined);
  // our own underlay unreadable: nothing to compare with, no warning
  assert.equal(decideMtu({ ...input, fixed: 8000, underlay: { iface: 'eth0', mtu: undefined } }, [peer(2, 1500)]).warning, undefined);
});

test('a published MTU that is not a number, too small for its family or above 65535 is refused, naming node and field', () => {
  const f = UNDERLAY_MTU_ANNOTATION;
  assert.deepEqual(checkPublishedMtu('n2', f, '9001', 4), { mtu: 9001 });
  assert.deepEqual(checkPublishedMtu('n2', f, ' 1500\n', 4), { mtu: 1500 });
  assert.deepEqual(checkPublishedMtu('n2', f, 576, 4), { mtu: 576 });
  assert.deepEqual(checkPublishedMtu('n2', f, 1280, 6), { mtu: 1280 });
  assert.deepEqual(checkPublishedMtu('n2', f, 65535, 4), { mtu: 65535 });
  const bad: Array<[unknown, 4 | 6, RegExp]> = [
    ['abc', 4, /"abc" is not a whole number/],
    ['1500.5', 4, /not a whole number/],
    ['', 4, /not a whole number/],
    ['-1500', 4, /not a whole number/],
    [1500.5, 4, /not a whole number/],
    [true, 4, /not a whole number/],
    [575, 4, /575 is below 576, the smallest IPv4 link MTU/],
    [1279, 6, /1279 is below 1280, the smallest IPv6 link MTU/],
    ['65536', 4, /65536 is above 65535/],
  ];
  for (const [value, family, want] of bad) {
    const r = checkPublishedMtu('n2', f, value, family);
    assert.ok('problem' in r, `${String(value)} refused`);
    assert.match(r.problem, want);
    assert.match(r.problem, new RegExp(`^node "n2" ${f}: `), 'names the node and the field');
  }
});

test('kube: the underlay-mtu annotation becomes Peer.underlayMtu; a bad one is ignored with a note, the peer kept', () => {
  const good = nodeToPeer(node(2, { ann: { 'underlay-mtu': '1500' } }), cfg);
  assert.ok(good.ok);
  assert.equal(good.peer.underlayMtu, 1500);
  assert.equal(good.note, undefined);
  const bad = nodeToPeer(node(3, { ann: { 'underlay-mtu': 'jumbo' } }), cfg);
  assert.ok(bad.ok, 'the peer still counts');
  assert.equal(bad.peer.underlayMtu, undefined);
  assert.match(bad.note ?? '', /^node "n3" userlay\.io\/underlay-mtu: "jumbo" is not a whole number.*ignored/);
  const set = computePeers([node(2, { ann: { 'underlay-mtu': '1500' } }), node(3, { ann: { 'underlay-mtu': '1000000' } })], cfg);
  assert.deepEqual(set.peers.map((p) => p.name), ['n2', 'n3']);
  assert.match(set.notes.get('n3') ?? '', /1000000 is above 65535/);
  assert.equal(set.notes.has('n2'), false);
  // a changed MTU is a changed peer set (re-applied, re-decided)
  assert.notEqual(computePeers([node(2, { ann: { 'underlay-mtu': '1500' } })], cfg).key, computePeers([node(2, { ann: { 'underlay-mtu': '9001' } })], cfg).key);
  // kept by trimNode under the flannel prefix too (flannel's own annotations are untouched)
  const n = node(2, { ann: { 'underlay-mtu': '1500' } });
  assert.equal(trimNode(n, 'flannel.alpha.coreos.com').metadata!.annotations![UNDERLAY_MTU_ANNOTATION], '1500');
});

test('kube: the lease publishes userlay.io/underlay-mtu whatever the prefix', () => {
  const lease = { backend: 'vxlan' as const, vni: 1, vtepMAC: '0a:58:c6:13:01:00', publicIP: '198.18.0.1', family: 4 as const, underlayMtu: 9001 };
  const p = leasePatch('flannel.alpha.coreos.com', lease) as { metadata: { annotations: Record<string, string | null> } };
  assert.equal(p.metadata.annotations[UNDERLAY_MTU_ANNOTATION], '9001');
  assert.equal(p.metadata.annotations['flannel.alpha.coreos.com/underlay-mtu'], undefined);
});

test('peers file: mtu is read as the peer\'s underlay MTU; a bad one refuses the file naming the entry, node and field', () => {
  const base = { name: 'n2', subnet: '198.19.2.0/24', publicIP: '198.18.0.2', vtepMAC: '0a:58:c6:13:00:02' };
  assert.equal(parsePeers([{ ...base, mtu: 1500 }], 'vxlan')[0]!.underlayMtu, 1500);
  assert.equal(parsePeers([base], 'vxlan')[0]!.underlayMtu, undefined);
  assert.throws(() => parsePeers([{ ...base, mtu: 'big' }], 'vxlan'), /peers\[0\]\.mtu: node "n2" mtu: "big" is not a whole number/);
  assert.throws(() => parsePeers([{ ...base, mtu: 500 }], 'vxlan'), /peers\[0\]\.mtu: node "n2" mtu: 500 is below 576/);
  assert.throws(() => parsePeers([{ ...base, publicIP: '2001:2::2', mtu: 1200 }], 'vxlan'), /peers\[0\]\.mtu: .*1200 is below 1280, the smallest IPv6/);
  assert.throws(() => parsePeers([{ ...base, mtu: 70000 }], 'vxlan'), /peers\[0\]\.mtu: .*70000 is above 65535/);
});

test('runtime: a smaller peer lowers the MTU (lower() called, then in force); a larger one or a peer leaving never raises it', async () => {
  const { lines, log } = logged();
  const calls: MtuDecision[] = [];
  const pm = new PodMtu(input, decideMtu(input, [peer(2)]), log, (d) => { calls.push(d); });
  assert.equal(pm.current().mtu, 8951);
  await pm.update([peer(2), peer(3, 1500)]);
  assert.deepEqual(calls.map((d) => [d.mtu, d.limitedBy]), [[1450, 'n3']]);
  assert.equal(pm.current().mtu, 1450);
  assert.ok(lines.some((l) => l['level'] === 'warn' && /pod MTU lowered to 1450/.test(String(l['msg'])) && l['limitedBy'] === 'n3'));
  await pm.update([peer(2)]); // n3 left
  await pm.update([peer(2), peer(3, 9001)]);
  assert.equal(calls.length, 1, 'never raised while running');
  assert.equal(pm.current().mtu, 1450);
  await pm.update([peer(2), peer(3, 1400)]);
  assert.deepEqual(calls.map((d) => d.mtu), [1450, 1350]);
});

test('runtime: a failing lower() keeps the MTU; fixed mode never changes it and warns once per new limit', async () => {
  const { lines, log } = logged();
  const pm = new PodMtu(input, decideMtu(input, []), log, () => { throw new Error('EPERM'); });
  await pm.update([peer(3, 1500)]);
  assert.equal(pm.current().mtu, 8951);
  const failures = () => lines.filter((l) => l['level'] === 'error' && /lowering the pod MTU failed/.test(String(l['msg']))).length;
  assert.equal(failures(), 1);
  await pm.update([peer(3, 1500), peer(4)]); // the next sync, the same refusal: not said again
  assert.equal(failures(), 1);
  await pm.update([peer(3, 1400)]); // a new wanted MTU fails too: said
  assert.equal(failures(), 2);
  const fixedIn = { ...input, fixed: 8000 };
  const w = logged();
  const fixed = new PodMtu(fixedIn, decideMtu(fixedIn, []), w.log, () => assert.fail('fixed MTUs are not lowered'));
  await fixed.update([peer(3, 1500)]);
  await fixed.update([peer(3, 1500)]);
  assert.equal(fixed.current().mtu, 8000);
  assert.equal(w.lines.filter((l) => l['level'] === 'warn').length, 1, 'one warning for one limit');
  await fixed.update([peer(3, 1400)]);
  assert.equal(w.lines.filter((l) => l['level'] === 'warn').length, 2);
});

test('FDB: each peer record carries its path MTU (min of the two underlays minus overhead; 0 without ours)', () => {
  const defaults = { backend: 'vxlan' as const, port: 8472, vni: 1, underlayMtu: 9001 };
  const t = buildFdb([peer(2, 1500), peer(3), peer(4, 9001)], defaults, new SlotAllocator(16));
  const bytes = t.encode();
  const dv = new DataView(bytes.buffer);
  const mtuOf = (i: number) => dv.getUint32(FDB_HDR_SIZE + i * 40 + 36, true);
  assert.deepEqual([mtuOf(0), mtuOf(1), mtuOf(2)], [1450, 8951, 8951]);
  assert.deepEqual(t.peers.map((p) => p.pathMtu), [1450, 8951, 8951]);
  const unknown = buildFdb([peer(2, 1500)], { ...defaults, underlayMtu: undefined }, new SlotAllocator(16)).encode();
  assert.equal(new DataView(unknown.buffer).getUint32(FDB_HDR_SIZE + 36, true), 0);
  assert.throws(() => buildFdb([peer(2, 100)], defaults, new SlotAllocator(16)), /peer "n2" underlayMtu: 100 is not an integer in 576\.\.65535/);
});

test('/metrics: userlay_mtu_bytes and userlay_mtu_info with the limiting node', () => {
  const text = renderMtuMetrics(decideMtu(input, [peer(3, 1500)]));
  assert.match(text, /^# TYPE userlay_mtu_bytes gauge$/m);
  assert.match(text, /^userlay_mtu_bytes 1450$/m);
  assert.match(text, /^userlay_mtu_info\{mode="auto",limited_by="n3",underlay_mtu="1500",smallest_path="1450"\} 1$/m);
});

test('auto, dual-stack underlay: a dual-stack peer counts with the IPv6 overhead, an IPv4-only peer with IPv4\'s', () => {
  const dual: MtuInput = { ...input, family: 6 };
  const v6peer = { ...peer(2, 1500), publicIPv6: '2001:2::2', vtepMACv6: '0a:58:c6:13:01:02' };
  const d = decideMtu(dual, [v6peer]);
  assert.deepEqual([d.mtu, d.limitedBy], [1500 - 70, 'n2']);
  // an IPv4-only peer at 1500 leaves 1450 over IPv4, but our own IPv6 path (9001 - 70) is larger: it limits
  assert.deepEqual([decideMtu(dual, [peer(3, 1500)]).mtu, decideMtu(dual, [peer(3, 1500)]).limitedBy], [1450, 'n3']);
  // the same dual peer seen from an IPv4-only node: IPv4 overhead
  assert.equal(decideMtu(input, [v6peer]).mtu, 1500 - 50);
});
