import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1Node } from '@kubernetes/client-node';
import { annotationNames, backendData, leasePatch, loadOrCreateVtepMac, FLANNEL_ANNOTATION_PREFIX } from '../../src/control/kube/lease.js';
import { RestartingInformer, type NodeInformer } from '../../src/control/kube/informer.js';
import { ownSubnets, resolveNodeName } from '../../src/control/kube/identity.js';
import { exponentialBackoff, type Clock } from '../../src/control/backoff.js';
import { silentLogger } from '../../src/log.js';

test('lease: flannel-compatible annotation names and backend-data bytes', () => {
  const n = annotationNames(FLANNEL_ANNOTATION_PREFIX);
  assert.equal(n.backendType, 'flannel.alpha.coreos.com/backend-type');
  assert.equal(n.backendData[4], 'flannel.alpha.coreos.com/backend-data');
  assert.equal(n.backendData[6], 'flannel.alpha.coreos.com/backend-v6-data');
  assert.equal(n.publicIP[6], 'flannel.alpha.coreos.com/public-ipv6');
  assert.equal(n.publicIP[4], 'flannel.alpha.coreos.com/public-ip');
  assert.equal(n.publicIPOverwrite[4], 'flannel.alpha.coreos.com/public-ip-overwrite');
  assert.equal(n.kubeSubnetManager, 'flannel.alpha.coreos.com/kube-subnet-manager');
  assert.equal(backendData({ backend: 'vxlan', vni: 1, vtepMAC: '0a:58:c6:13:01:00', publicIP: '198.18.0.1', family: 4 }),
    '{"VNI":1,"VtepMAC":"0a:58:c6:13:01:00"}');
});

test('lease: an IPv6 underlay publishes backend-v6-data and public-ipv6 (flannel-v6.1 reads those) and removes the IPv4 pair', () => {
  const lease = { backend: 'vxlan' as const, vni: 1, vtepMAC: '0a:58:c6:13:01:06', publicIP: '2001:2::1', family: 6 as const };
  const p = leasePatch(FLANNEL_ANNOTATION_PREFIX, lease) as { metadata: { annotations: Record<string, string | null> } };
  const F = FLANNEL_ANNOTATION_PREFIX;
  assert.deepEqual(p.metadata.annotations, {
    [`${F}/backend-type`]: 'vxlan',
    [`${F}/backend-v6-data`]: '{"VNI":1,"VtepMAC":"0a:58:c6:13:01:06"}',
    [`${F}/public-ipv6`]: '2001:2::1',
    [`${F}/backend-data`]: null,
    [`${F}/public-ip`]: null,
    [`${F}/kube-subnet-manager`]: 'true',
    'userlay.io/partial-csum': null,
  });
});

test('lease: merge patch keeps other conditions and replaces NetworkUnavailable', () => {
  const lease = { backend: 'vxlan' as const, vni: 1, vtepMAC: '0a:58:c6:13:01:00', publicIP: '198.18.0.1', family: 4 as const };
  const now = new Date('2026-11-21T05:00:00.123Z');
  const p = leasePatch('userlay.io', lease, [
    { type: 'Ready', status: 'True' },
    { type: 'NetworkUnavailable', status: 'True', reason: 'NoRouteCreated' },
  ], now) as { metadata: { annotations: Record<string, string> }; status: { conditions: Array<Record<string, string>> } };
  assert.deepEqual(p.metadata.annotations, {
    'userlay.io/backend-type': 'vxlan',
    'userlay.io/backend-data': '{"VNI":1,"VtepMAC":"0a:58:c6:13:01:00"}',
    'userlay.io/public-ip': '198.18.0.1',
    'userlay.io/backend-v6-data': null,
    'userlay.io/public-ipv6': null,
    'userlay.io/kube-subnet-manager': 'true',
    'userlay.io/partial-csum': null,
  });
  assert.deepEqual(p.status.conditions, [
    { type: 'Ready', status: 'True' },
    { type: 'NetworkUnavailable', status: 'False', reason: 'UserlayIsUp', message: 'userlay is running on this node',
      lastTransitionTime: '2026-11-21T05:00:00Z', lastHeartbeatTime: '2026-11-21T05:00:00Z' },
  ]);
  const v6 = leasePatch('userlay.io', { ...lease, publicIP: '2001:2::1', family: 6 }) as { metadata: { annotations: Record<string, string> } };
  assert.equal(v6.metadata.annotations['userlay.io/public-ipv6'], '2001:2::1');
});

test('lease: VTEP MAC generated once and stable across restarts', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ul-mac-'));
  try {
    const a = await loadOrCreateVtepMac(join(dir, 's'), silentLogger);
    assert.match(a, /^[0-9a-f][26ae](:[0-9a-f]{2}){5}$/, 'unicast, locally administered');
    assert.equal(await loadOrCreateVtepMac(join(dir, 's'), silentLogger), a);
    assert.equal((await readFile(join(dir, 's', 'vtep-mac'), 'utf8')).trim(), a);
    await writeFile(join(dir, 's', 'vtep-mac'), 'garbage\n');
    assert.notEqual(await loadOrCreateVtepMac(join(dir, 's'), silentLogger), 'garbage');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('identity: node name from flag or NODE_NAME; own subnets inside the network', () => {
  assert.equal(resolveNodeName('n1', {}), 'n1');
  assert.equal(resolveNodeName(undefined, { NODE_NAME: 'n7' }), 'n7');
  assert.throws(() => resolveNodeName(undefined, {}), /--node-name: give --node-name or set NODE_NAME/);
  assert.throws(() => resolveNodeName('Bad_Name', {}), /--node-name: "Bad_Name" is not a valid Node name/);
  const nets = { 4: '198.19.0.0/16' } as const;
  const node = (spec: V1Node['spec']): V1Node => ({ metadata: { name: 'n1' }, spec });
  assert.deepEqual(ownSubnets(node({ podCIDRs: ['198.19.1.0/24'] }), nets), { subnets: ['198.19.1.0/24'] });
  assert.deepEqual(ownSubnets(node({ podCIDR: '198.19.1.0/24' }), nets), { subnets: ['198.19.1.0/24'] });
  assert.equal((ownSubnets(node({}), nets) as { kind: string }).kind, 'no-podcidr');
  const bad = ownSubnets(node({ podCIDR: '198.20.1.0/24' }), nets) as { kind: string; message: string };
  assert.equal(bad.kind, 'bad-podcidr');
  assert.match(bad.message, /outside the cluster network/);
});

test('backoff: exponential, capped, jittered, reset', () => {
  const b = exponentialBackoff({ initialMs: 100, maxMs: 1000, factor: 2, jitter: 0.5, random: () => 0.5 });
  assert.deepEqual([b.next(), b.next(), b.next(), b.next(), b.next()], [100, 200, 400, 800, 1000]);
  b.reset();
  assert.equal(b.next(), 100);
  const low = exponentialBackoff({ initialMs: 100, jitter: 0.5, random: () => 0 });
  assert.equal(low.next(), 50);
});

class FakeInformer implements NodeInformer {
  starts = 0;
  stops = 0;
  private readonly errorCbs: Array<(err?: unknown) => void> = [];
  on(verb: 'add' | 'update' | 'delete' | 'change', cb: (obj: V1Node) => void): void;
  on(verb: 'error' | 'connect', cb: (err?: unknown) => void): void;
  on(verb: string, cb: ((obj: V1Node) => void) | ((err?: unknown) => void)): void {
    if (verb === 'error') this.errorCbs.push(cb as (err?: unknown) => void);
  }
  async start(): Promise<void> { this.starts++; }
  async stop(): Promise<void> { this.stops++; }
  list(): V1Node[] { return []; }
  fail(err: unknown): void { for (const cb of this.errorCbs) cb(err); }
}

function manualClock(): Clock & { advance(ms: number): void; pending(): number } {
  let t = 0;
  let seq = 0;
  const timers = new Map<number, { at: number; fn: () => void }>();
  return {
    now: () => t,
    setTimeout(fn, ms) { timers.set(++seq, { at: t + ms, fn }); return seq; },
    clearTimeout(h) { timers.delete(h as number); },
    advance(ms) {
      t += ms;
      for (const [k, v] of [...timers]) if (v.at <= t) { timers.delete(k); v.fn(); }
    },
    pending: () => timers.size,
  };
}

test('RestartingInformer: restarts after errors with backoff, one pending restart, stop stays stopped', async () => {
  const inf = new FakeInformer();
  const clock = manualClock();
  const r = new RestartingInformer({ informer: inf, log: silentLogger, clock, backoff: exponentialBackoff({ initialMs: 100, maxMs: 400, jitter: 0 }), healthyAfterMs: 10_000 });
  await r.start();
  assert.equal(inf.starts, 1);
  inf.fail(Object.assign(new Error('Internal Server Error'), { statusCode: 500 }));
  inf.fail(new Error('premature close'));
  assert.equal(clock.pending(), 1, 'errors while a restart is pending coalesce');
  clock.advance(99);
  assert.equal(inf.starts, 1);
  clock.advance(1);
  assert.equal(inf.starts, 2);
  assert.equal(r.restarts, 1);
  inf.fail(new Error('again'));
  clock.advance(199);
  assert.equal(inf.starts, 2, 'second delay doubled');
  clock.advance(1);
  assert.equal(inf.starts, 3);
  // a long healthy run resets the backoff
  clock.advance(20_000);
  inf.fail(new Error('later'));
  clock.advance(100);
  assert.equal(inf.starts, 4);

  inf.fail(new Error('before stop'));
  await r.stop();
  assert.equal(clock.pending(), 0, 'stop cancels the pending restart');
  inf.fail(new Error('after stop'));
  clock.advance(10_000);
  assert.equal(inf.starts, 4, 'a deliberate stop stays stopped');
  assert.equal(r.running, false);
});
