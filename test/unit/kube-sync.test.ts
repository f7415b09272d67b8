import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Node } from '@kubernetes/client-node';
import { computePeers, newVerdictCache, nodeToPeer, peerSetKey, type SyncConfig } from '../../src/control/kube/desired-peers.js';
import { PeerSync } from '../../src/control/kube/sync.js';
import { cfg, expected, mac, node } from '../support/kube-nodes.js';
import { createLogger } from '../../src/log.js';
import type { Clock } from '../../src/control/backoff.js';
import type { Peer } from '../../src/dataplane/types.js';

/** A manual clock: timers run when the test calls run(). */
function manualClock(): Clock & { run(): void; t: number } {
  let seq = 0;
  const timers = new Map<number, { at: number; fn: () => void }>();
  const c = {
    t: 0,
    now: () => c.t,
    setTimeout(fn: () => void, ms: number) {
      timers.set(++seq, { at: c.t + ms, fn });
      return seq;
    },
    clearTimeout(h: unknown) {
      timers.delete(h as number);
    },
    run() {
      for (const [k, v] of [...timers].sort((a, b) => a[1].at - b[1].at)) {
        if (v.at <= c.t) {
          timers.delete(k);
          v.fn();
        }
      }
    },
  };
  return c;
}

function recordingLog() {
  const lines: Array<Record<string, unknown>> = [];
  return { lines, log: createLogger('debug', (l) => lines.push(JSON.parse(l) as Record<string, unknown>)) };
}

test('computePeers: peers from annotated nodes, own node excluded, sorted by name', () => {
  const r = computePeers([node(3), node(1), node(2)], cfg);
  assert.deepEqual(r.peers, [expected(2), expected(3)]);
  assert.equal(r.skipped.size, 0);
});

test('nodeToPeer: reasons for nodes that are not ready yet or do not fit', () => {
  const reason = (n: V1Node) => {
    const v = nodeToPeer(n, cfg);
    return v.ok ? 'ok' : v.reason;
  };
  assert.equal(reason(node(1)), 'own node');
  assert.match(reason(node(2, { podCIDR: null })), /no podCIDR assigned/);
  assert.match(reason(node(2, { ann: { 'backend-type': undefined } })), /no userlay\.io\/backend-type annotation \(lease not published yet\)/);
  assert.match(reason(node(2, { ann: { 'backend-type': 'udp' } })), /backend-type udp does not match ours \(vxlan\)/);
  assert.match(reason(node(2, { ann: { 'public-ip': undefined } })), /no userlay\.io\/public-ip annotation/);
  assert.match(reason(node(2, { ann: { 'public-ip': 'nope' } })), /is not an IPv4 address/);
  assert.match(reason(node(2, { ann: { 'public-ip': '2001:2::2' } })), /is not an IPv4 address/);
  assert.match(reason(node(2, { ann: { 'backend-data': '{bad' } })), /backend-data is not JSON/);
  assert.match(reason(node(2, { ann: { 'backend-data': '{"VNI":1}' } })), /no VtepMAC/);
  assert.match(reason(node(2, { ann: { 'backend-data': '{"VNI":1,"VtepMAC":"zz"}' } })), /not a MAC address/);
  assert.match(reason(node(2, { podCIDR: '198.20.2.0/24' })), /outside the cluster network 198\.19\.0\.0\/16/);
  assert.match(reason(node(2, { podCIDR: 'garbage' })), /malformed/);
  // udp needs no VtepMAC
  const udp = nodeToPeer(node(2, { ann: { 'backend-type': 'udp', 'backend-data': undefined } }), { ...cfg, backend: 'udp' });
  assert.deepEqual(udp, { ok: true, peer: { name: 'n2', subnets: ['198.19.2.0/24'], publicIP: '198.18.0.2' } });
});

test('nodeToPeer: flannel prefix and dual stack; only enabled families are used', () => {
  const flannel: SyncConfig = { ...cfg, prefix: 'flannel.alpha.coreos.com' };
  const n: V1Node = {
    metadata: {
      name: 'f2',
      annotations: {
        'flannel.alpha.coreos.com/backend-type': 'vxlan',
        'flannel.alpha.coreos.com/backend-data': '{"VNI":1,"VtepMAC":"7A:11:22:33:44:55"}',
        'flannel.alpha.coreos.com/public-ip': '198.18.0.2',
        'flannel.alpha.coreos.com/kube-subnet-manager': 'true',
      },
    },
    spec: { podCIDR: '198.19.2.0/24', podCIDRs: ['198.19.2.0/24', '2001:2:0:102::/64'] },
  };
  assert.deepEqual(nodeToPeer(n, flannel), { ok: true, peer: { name: 'f2', subnets: ['198.19.2.0/24'], publicIP: '198.18.0.2', vtepMAC: '7a:11:22:33:44:55', vni: 1 } });
  const dual = nodeToPeer(n, { ...flannel, networks: { 4: '198.19.0.0/16', 6: '2001:2:0:100::/56' } });
  assert.ok(dual.ok);
  assert.deepEqual(dual.peer.subnets, ['198.19.2.0/24', '2001:2:0:102::/64']);
});

test('nodeToPeer: an IPv6 underlay reads public-ipv6 and backend-v6-data (flannel dual stack: one VTEP per family)', () => {
  const F = 'flannel.alpha.coreos.com';
  const v6: SyncConfig = { ...cfg, prefix: F, underlayFamilies: [6], networks: { 4: '198.19.0.0/16', 6: '2001:2:0:100::/56' } };
  const annotations: Record<string, string> = {
    [`${F}/backend-type`]: 'vxlan',
    [`${F}/backend-data`]: '{"VNI":1,"VtepMAC":"7a:11:22:33:44:04"}',
    [`${F}/backend-v6-data`]: '{"VNI":1,"VtepMAC":"7a:11:22:33:44:06"}',
    [`${F}/public-ip`]: '198.18.0.2',
    [`${F}/public-ipv6`]: '2001:2::2',
  };
  const n: V1Node = { metadata: { name: 'f2', annotations }, spec: { podCIDRs: ['198.19.2.0/24', '2001:2:0:102::/64'] } };
  assert.deepEqual(nodeToPeer(n, v6), {
    ok: true,
    peer: { name: 'f2', subnets: ['198.19.2.0/24', '2001:2:0:102::/64'], publicIP: '2001:2::2', vtepMAC: '7a:11:22:33:44:06', vni: 1 },
  });
  const reason = (ann: Record<string, string | undefined>): string => {
    const v = nodeToPeer({ ...n, metadata: { name: 'f2', annotations: Object.fromEntries(Object.entries({ ...annotations, ...ann }).filter(([, x]) => x !== undefined)) as Record<string, string> } }, v6);
    return v.ok ? 'ok' : v.reason;
  };
  assert.match(reason({ [`${F}/backend-v6-data`]: undefined }), /no VtepMAC in flannel\.alpha\.coreos\.com\/backend-v6-data/);
  assert.match(reason({ [`${F}/public-ipv6`]: undefined }), /no flannel\.alpha\.coreos\.com\/public-ipv6 annotation/);
  assert.match(reason({ [`${F}/public-ipv6`]: '198.18.0.2' }), /is not an IPv6 address/);
  assert.match(reason({ [`${F}/public-ipv6`]: '2001:2:0:100::9' }), /inside the cluster network 2001:2:0:100::\/56/);
});

test('computePeers: conflicting subnets go to the older node, then the smaller name; own subnet always wins', () => {
  const older = node(5, { name: 'zz-old', podCIDR: '198.19.7.0/24', created: '2026-01-01T00:00:00Z' });
  const newer = node(6, { name: 'aa-new', podCIDR: '198.19.7.0/24', created: '2026-02-01T00:00:00Z' });
  let r = computePeers([newer, older], cfg);
  assert.deepEqual(r.peers.map((p) => p.name), ['zz-old']);
  assert.match(r.skipped.get('aa-new')!, /conflict: subnet 198\.19\.7\.0\/24 overlaps one claimed by zz-old/);
  r = computePeers([older, newer], cfg);
  assert.deepEqual(r.peers.map((p) => p.name), ['zz-old']);

  const same = '2026-01-01T00:00:00Z';
  r = computePeers([node(8, { name: 'b', podCIDR: '198.19.8.0/24', created: same }), node(9, { name: 'a', podCIDR: '198.19.8.0/25', created: same })], cfg);
  assert.deepEqual(r.peers.map((p) => p.name), ['a']);
  assert.match(r.skipped.get('b')!, /overlaps one claimed by a/);

  r = computePeers([node(4, { name: 'thief', podCIDR: '198.19.1.0/24' }), node(2)], cfg);
  assert.deepEqual(r.peers.map((p) => p.name), ['n2']);
  assert.match(r.skipped.get('thief')!, /claimed by this node/);
  // one public IP claimed twice: the older node keeps it; our own public IP is ours
  r = computePeers([node(2), node(3, { ann: { 'public-ip': '198.18.0.2' } })], cfg);
  assert.deepEqual(r.peers.map((p) => p.name), ['n2']);
  assert.match(r.skipped.get('n3')!, /conflict: public IP 198\.18\.0\.2 is already used by n2/);
  r = computePeers([node(2, { ann: { 'public-ip': '198.18.0.1' } }), node(3)], { ...cfg, ownPublicIP: '198.18.0.1' });
  assert.deepEqual(r.peers.map((p) => p.name), ['n3']);
  assert.match(r.skipped.get('n2')!, /already used by this node/);
  // a wider subnet covering another node's is a conflict too
  r = computePeers([node(2), node(3, { name: 'wide', podCIDR: '198.19.0.0/22', created: '2027-01-01T00:00:00Z' })], cfg);
  assert.deepEqual(r.peers.map((p) => p.name), ['n2']);
});

test('PeerSync: add, update (podCIDR, annotations, public IP), delete; applies only on change', async () => {
  const nodes = new Map<string, V1Node>([['n1', node(1)]]);
  const applied: Array<readonly Peer[]> = [];
  const clock = manualClock();
  const { log, lines } = recordingLog();
  const sync = new PeerSync({ cache: { list: () => [...nodes.values()] }, config: cfg, apply: (p) => void applied.push(p), log, clock });

  nodes.set('n2', node(2));
  nodes.set('n3', node(3));
  sync.trigger();
  sync.trigger();
  clock.run();
  await new Promise((r) => setImmediate(r));
  assert.equal(applied.length, 1, 'two triggers in one tick coalesce');
  assert.deepEqual(applied[0], [expected(2), expected(3)]);

  assert.equal(await sync.syncNow(), false, 'nothing changed: no apply');
  assert.equal(applied.length, 1);

  nodes.set('n2', node(2, { podCIDR: '198.19.22.0/24' }));
  assert.equal(await sync.syncNow(), true);
  assert.deepEqual(applied.at(-1)![0]!.subnets, ['198.19.22.0/24']);

  nodes.set('n3', node(3, { ann: { 'public-ip': '198.18.0.33' } }));
  await sync.syncNow();
  assert.equal(applied.at(-1)![1]!.publicIP, '198.18.0.33');

  nodes.set('n3', node(3, { ann: { 'public-ip': '198.18.0.33', 'backend-data': JSON.stringify({ VNI: 1, VtepMAC: mac(0x33) }) } }));
  await sync.syncNow();
  assert.equal(applied.at(-1)![1]!.vtepMAC, mac(0x33));

  // annotation removed: node skipped, logged once however many recomputes happen
  nodes.set('n3', node(3, { ann: { 'backend-type': undefined } }));
  await sync.syncNow();
  await sync.syncNow(true);
  await sync.syncNow();
  assert.deepEqual(applied.at(-1)!.map((p) => p.name), ['n2']);
  assert.equal(lines.filter((l) => l['msg'] === 'node skipped' && l['node'] === 'n3').length, 1);

  nodes.delete('n2');
  await sync.syncNow();
  assert.deepEqual(applied.at(-1), []);
  assert.ok(sync.lastSyncAt !== undefined);
  sync.stop();
});

test('PeerSync: a failing apply keeps the previous set and is retried', async () => {
  const nodes = [node(1), node(2)];
  let fail = true;
  const got: Array<readonly Peer[]> = [];
  const sync = new PeerSync({
    cache: { list: () => nodes }, config: cfg, log: createLogger('error', () => {}), clock: manualClock(),
    apply: (p) => {
      if (fail) throw new Error('EFDB');
      got.push(p);
    },
  });
  assert.equal(await sync.syncNow(), false);
  assert.deepEqual(sync.current(), []);
  fail = false;
  assert.equal(await sync.syncNow(), true);
  assert.deepEqual(got, [[expected(2)]]);
});

test('PeerSync: initial set from a snapshot is kept until the cache is synced, then deleted peers are removed', async () => {
  let synced = false;
  const nodes = [node(1), node(2)];
  const got: Array<readonly Peer[]> = [];
  const clock = manualClock();
  const sync = new PeerSync({
    cache: { list: () => (synced ? nodes : []) }, config: cfg, log: createLogger('error', () => {}), clock,
    apply: (p) => void got.push(p), initial: [expected(2), expected(9)], cacheSynced: () => synced, resyncMs: 1000,
  });
  sync.start();
  clock.t = 1000;
  clock.run();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(got, [], 'an unsynced cache must not wipe the snapshot');
  synced = true;
  clock.t = 2000;
  clock.run();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(got.at(-1), [expected(2)], 'periodic resync removed n9, deleted while we were down');
  sync.stop();
});

// How long this takes is measured by bench/kube-scale.ts (initial sync at 5,000 Nodes),
// not asserted here.
test('computePeers at 5000 nodes: every node becomes its peer, in name order, none skipped', () => {
  const nodes: V1Node[] = [];
  for (let i = 0; i < 5000; i++) {
    const n = node(2, { ann: { 'public-ip': `198.18.${i >> 8}.${i & 255}` } });
    n.metadata!.name = `m${i}`;
    n.spec = { podCIDR: `198.19.${i >> 8}.${i & 255}/32` };
    nodes.push(n);
  }
  const r = computePeers(nodes.reverse(), { ...cfg, ownSubnets: [] });
  assert.equal(r.peers.length, 5000);
  assert.equal(r.skipped.size, 0, [...r.skipped].slice(0, 3).join('; '));
  const byName = new Map(r.peers.map((p) => [p.name, p]));
  for (const i of [0, 1, 255, 256, 4999]) {
    assert.deepEqual(byName.get(`m${i}`), { name: `m${i}`, subnets: [`198.19.${i >> 8}.${i & 255}/32`], publicIP: `198.18.${i >> 8}.${i & 255}`, vtepMAC: mac(2), vni: 1 });
  }
  const names = r.peers.map((p) => p.name);
  assert.deepEqual(names, [...names].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)), 'sorted by name');
  assert.equal(new Set(r.peers.map((p) => p.subnets[0])).size, 5000, 'one subnet per peer');
  assert.equal(r.key, peerSetKey(computePeers(nodes.reverse(), { ...cfg, ownSubnets: [] }).peers), 'input order does not matter');
});

// --- incremental recompute: the same answer as from scratch ---

test('computePeers with a cache: same answer as from scratch through adds, deletes, conflicts and updates', () => {
  const cache = newVerdictCache();
  const nodes = new Map<string, V1Node>();
  for (let i = 2; i < 40; i++) nodes.set(`n${i}`, node(i));
  // a standing conflict: n40 claims n5's subnet and is newer
  nodes.set('n40', node(40, { podCIDR: '198.19.5.0/24', created: '2026-06-01T00:00:00Z' }));
  const steps: Array<[string, () => void]> = [
    ['start', () => {}],
    ['public IP of one node', () => nodes.set('n7', node(7, { ann: { 'public-ip': '198.18.1.7' } }))],
    ['public IP now clashes with an older node', () => nodes.set('n9', node(9, { ann: { 'public-ip': '198.18.0.3' } }))],
    ['clash resolved', () => nodes.set('n9', node(9))],
    ['older conflicting node loses its subnet', () => nodes.set('n5', node(5, { podCIDR: '198.19.55.0/24' }))],
    ['MAC change', () => nodes.set('n11', node(11, { ann: { 'backend-data': JSON.stringify({ VNI: 1, VtepMAC: mac(0xee) }) } }))],
    ['node becomes invalid', () => nodes.set('n12', node(12, { ann: { 'backend-type': 'udp' } }))],
    ['node valid again', () => nodes.set('n12', node(12))],
    ['age change reorders', () => nodes.set('n40', node(40, { podCIDR: '198.19.55.0/24', created: '2025-01-01T00:00:00Z' }))],
    ['add', () => nodes.set('n41', node(41))],
    ['delete', () => nodes.delete('n20')],
    ['own subnet claimed', () => nodes.set('n21', node(21, { podCIDR: '198.19.1.0/24' }))],
  ];
  for (const [what, change] of steps) {
    change();
    const list = [...nodes.values()];
    const incremental = computePeers(list, cfg, cache);
    const scratch = computePeers(list, cfg);
    assert.deepEqual(incremental.peers, scratch.peers, what);
    assert.deepEqual([...incremental.skipped].sort(), [...scratch.skipped].sort(), what);
    assert.deepEqual(incremental.keys, scratch.keys, what);
    assert.equal(incremental.key, peerSetKey(scratch.peers), what);
  }
  assert.match(computePeers([...nodes.values()], cfg, cache).skipped.get('n21')!, /claimed by this node/);
});

test('PeerSync: a changed Node object with the same peer keeps the Peer object and applies nothing', async () => {
  const nodes = new Map<string, V1Node>([['n2', node(2)], ['n3', node(3)]]);
  const applied: Array<readonly Peer[]> = [];
  const sync = new PeerSync({ cache: { list: () => [...nodes.values()] }, config: cfg, apply: (p) => void applied.push(p), log: createLogger('error', () => {}) });
  await sync.syncNow();
  const before = sync.current()[0]!;
  const heartbeat = node(2);
  heartbeat.metadata!.resourceVersion = '999';
  nodes.set('n2', heartbeat);
  assert.equal(await sync.syncNow(), false);
  assert.equal(applied.length, 1);
  nodes.set('n3', node(3, { ann: { 'public-ip': '198.18.0.33' } }));
  assert.equal(await sync.syncNow(), true);
  assert.equal(applied.at(-1)![0], before, 'unchanged peer is the same object (the FDB cache hits on it)');
  assert.equal(applied.at(-1)![1]!.publicIP, '198.18.0.33');
});
