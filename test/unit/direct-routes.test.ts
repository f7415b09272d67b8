import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NetworkInterfaceInfo } from 'node:os';
import { DirectRoutes, offLinkReason } from '../../src/control/host/direct-routes.js';
import { UL_RTPROT } from '../../src/control/host/routes.js';
import { FakeRoutes } from '../support/fake-routes.js';
import type { UnderlayHost } from '../../src/control/underlay.js';
import type { Peer } from '../../src/dataplane/types.js';
import { createLogger } from '../../src/log.js';
import { parseStaticConfig } from '../../src/agent/static-mode.js';

const log = createLogger('error');

function v4(cidr: string): NetworkInterfaceInfo {
  const address = cidr.split('/')[0]!;
  return { address, family: 'IPv4', internal: false, netmask: '255.255.255.0', mac: '00:00:00:00:00:00', cidr };
}

/** A host whose eth0 holds `cidrs` (changeable) and a routing table of protocol-tagged routes. */
function fakeHost(cidrs: string[]): { host: UnderlayHost; set(c: string[]): void } {
  let current = cidrs;
  return {
    host: { interfaces: () => ({ eth0: current.map(v4) }), readText: () => undefined, localAddressFor: async () => '198.18.0.1' },
    set(c) { current = c; },
  };
}

const peer = (name: string, publicIP: string, subnet: string): Peer => ({ name, publicIP, subnets: [subnet] });
const n2 = peer('n2', '198.18.0.2', '198.19.2.0/24');
const n3 = peer('n3', '198.18.1.3', '198.19.3.0/24');

test('offLinkReason: inside a connected prefix is on-link; otherwise the reason names the prefixes', () => {
  assert.equal(offLinkReason(n2, ['198.18.0.0/24'], 'eth0'), undefined);
  assert.match(offLinkReason(n3, ['198.18.0.0/24'], 'eth0')!, /198\.18\.1\.3 is not inside a connected prefix of eth0 \(198\.18\.0\.0\/24\)/);
});

test('direct-routing: on-link peers get a route, the others stay encapsulated; every peer stays in the FDB', () => {
  const ops = new FakeRoutes();
  const r = new DirectRoutes(ops, fakeHost(['198.18.0.1/24']).host, 'eth0', 'direct-routing', log);
  const fdb = r.apply([n2, n3]);
  assert.deepEqual(fdb, [n2, n3]);
  assert.deepEqual([...ops.table.keys()], ['198.19.2.0/24']);
  assert.equal(ops.table.get('198.19.2.0/24')!.via, '198.18.0.2');
  assert.deepEqual({ d: r.status().direct, o: r.status().overlay, n: r.status().notRouted }, { d: ['n2'], o: ['n3'], n: [] });
  r.apply([n2, n3]);
  assert.equal(ops.log.length, 1, 'an unchanged set touches no route');
  r.close();
  assert.equal(ops.table.size, 0);
});

test('routes-only (host-gw): the off-link peer is reported, not routed, and the FDB is empty', () => {
  const ops = new FakeRoutes();
  const r = new DirectRoutes(ops, fakeHost(['198.18.0.1/24']).host, 'eth0', 'routes-only', log);
  assert.deepEqual(r.apply([n2, n3]), []);
  assert.deepEqual(r.status().notRouted.map((u) => u.name), ['n3']);
  assert.deepEqual(r.status().overlay, []);
});

test('dual stack: each pod subnet is routed via the peer\'s address of its family; both must be on-link', () => {
  const ops = new FakeRoutes();
  const six = (cidr: string): NetworkInterfaceInfo => ({ ...v4(cidr), family: 'IPv6', netmask: 'ffff:ffff:ffff:ffff::', scopeid: 0 });
  const host: UnderlayHost = { interfaces: () => ({ eth0: [v4('198.18.0.1/24'), six('2001:2::1/64')] }), readText: () => undefined, localAddressFor: async () => '198.18.0.1' };
  const dual: Peer = { name: 'n4', publicIP: '198.18.0.4', publicIPv6: '2001:2::4', subnets: ['198.19.4.0/24', '2001:2:0:104::/64'] };
  const r = new DirectRoutes(ops, host, 'eth0', 'routes-only', log);
  r.apply([dual]);
  assert.deepEqual([...ops.table.values()].map((x) => [x.dst, x.via]).sort(), [['198.19.4.0', '198.18.0.4'], ['2001:2:0:104::', '2001:2::4']]);
  assert.deepEqual(r.status().direct, ['n4']);
  // its IPv6 address behind a router: the peer is not on-link
  r.apply([{ ...dual, publicIPv6: '2001:2:0:9::4' }]);
  assert.equal(ops.table.size, 0);
  assert.match(r.status().notRouted[0]?.reason ?? '', /2001:2:0:9::4 is not inside a connected prefix of eth0 \(2001:2::\/64\)/);
  r.close();
});

test('decided again: an underlay change or a peer address change moves the peer and its route', () => {
  const ops = new FakeRoutes();
  const h = fakeHost(['198.18.0.1/24']);
  const r = new DirectRoutes(ops, h.host, 'eth0', 'direct-routing', log);
  r.apply([n2, n3]);
  h.set(['198.18.0.1/23']); // now 198.18.1.3 is on-link too
  r.refresh();
  assert.deepEqual(r.status().direct, ['n2', 'n3']);
  assert.equal(ops.table.get('198.19.3.0/24')?.via, '198.18.1.3');
  h.set(['198.18.0.1/24']);
  r.apply([peer('n2', '198.18.0.20', '198.19.2.0/24'), n3]); // n2 moved within the segment, n3 is behind the router again
  assert.equal(ops.table.get('198.19.2.0/24')?.via, '198.18.0.20');
  assert.equal(ops.table.has('198.19.3.0/24'), false);
  assert.deepEqual(r.status().overlay, ['n3']);
});

test('a route someone else has is never taken over: the peer stays on the overlay', () => {
  const ops = new FakeRoutes();
  ops.refuse.add('198.19.2.0/24');
  const r = new DirectRoutes(ops, fakeHost(['198.18.0.1/24']).host, 'eth0', 'direct-routing', log);
  r.apply([n2]);
  assert.deepEqual(r.status().overlay, ['n2']);
  assert.deepEqual(r.status().direct, []);
});

test('start() removes protocol-85 routes of the underlay device only', () => {
  const ops = new FakeRoutes();
  ops.table.set('198.19.9.0/24', { dst: '198.19.9.0', prefixLen: 24, via: '198.18.0.9', ifindex: 2, protocol: UL_RTPROT, dev: 'eth0' });
  ops.table.set('198.19.8.0/24', { dst: '198.19.8.0', prefixLen: 24, via: '198.18.0.8', ifindex: 2, protocol: 4, dev: 'eth0' });
  ops.table.set('198.19.7.0/24', { dst: '198.19.7.0', prefixLen: 24, ifindex: 3, protocol: UL_RTPROT, dev: 'userlay0' });
  const r = new DirectRoutes(ops, fakeHost(['198.18.0.1/24']).host, 'eth0', 'direct-routing', log);
  assert.equal(r.start(), 1);
  assert.deepEqual([...ops.table.keys()].sort(), ['198.19.7.0/24', '198.19.8.0/24']);
});

test('static flags: --backend host-gw needs no port and no MAC; --direct-routing only with an encapsulating backend', () => {
  const base = ['--node', 'n1', '--public-ip', '198.18.0.1', '--subnet', '198.19.1.0/24', '--network', '198.19.0.0/16', '--peers', '/nonexistent'];
  const gw = parseStaticConfig([...base, '--backend', 'host-gw']);
  assert.deepEqual({ r: gw.routing, p: gw.dataplane.port }, { r: 'routes-only', p: 0 });
  const dr = parseStaticConfig([...base, '--direct-routing', '--backend', 'udp']);
  assert.deepEqual({ r: dr.routing, p: dr.dataplane.port }, { r: 'direct-routing', p: 8285 });
  assert.equal(parseStaticConfig(base).routing, 'overlay');
  assert.throws(() => parseStaticConfig([...base, '--backend', 'host-gw', '--direct-routing']), /^Error: --direct-routing: host-gw routes every peer directly already|--direct-routing: host-gw/);
  assert.throws(() => parseStaticConfig([...base, '--backend', 'wireguard']), /--backend/);
});
