/**
 * Dual-stack configuration (no privileges): a node with an underlay address per family and
 * peers with a lease per family, as flannel's dual stack. The static flags (--public-ipv6),
 * the peers file (publicIPv6, vtepMACv6), the data plane options, kube mode's underlay pick
 * (the IPv6 address off the same interface, --public-ipv6), the lease it publishes and the
 * peers it reads from both leases. Bad input is refused with a message naming the field.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NetworkInterfaceInfo } from 'node:os';
import { parseStaticConfig } from '../../src/agent/static-mode.js';
import { parsePeers } from '../../src/control/static-file.js';
import { pickUnderlay, type UnderlayHost } from '../../src/control/underlay.js';
import { leasePatch, type LeaseInfo } from '../../src/control/kube/lease.js';
import { nodeToPeer, type SyncConfig } from '../../src/control/kube/desired-peers.js';
import { validateDataplaneOptions } from '../../src/dataplane/dataplane.js';
import type { DataplaneOptions } from '../../src/dataplane/types.js';
import { UserlayError } from '../../src/errors.js';
import { P, cfg, mac, node } from '../support/kube-nodes.js';

/** Expect a UserlayError whose message mentions every part. */
function refused(fn: () => unknown, ...parts: string[]): void {
  assert.throws(fn, (err: unknown) => err instanceof UserlayError && parts.every((p) => err.message.includes(p)),
    `expected an error mentioning ${parts.join(', ')}`);
}

// --- static mode ---

const base = ['--node', 'n1', '--public-ip', '198.18.0.1', '--subnet', '198.19.1.0/24', '--subnet', '2001:2:0:101::/64',
  '--network', '198.19.0.0/16', '--network', '2001:2:0:100::/56', '--peers', '/nonexistent'];

test('static flags: --public-ipv6 gives the data plane a second underlay address', () => {
  const c = parseStaticConfig([...base, '--public-ipv6', '2001:2:0:0::1']);
  assert.equal(c.dataplane.publicIP, '198.18.0.1');
  assert.equal(c.dataplane.publicIPv6, '2001:2::1', 'canonical text');
  assert.equal(parseStaticConfig(base).dataplane.publicIPv6, undefined);
  refused(() => parseStaticConfig([...base, '--public-ipv6', '198.18.0.7']), '--public-ipv6', 'not an IPv6');
  refused(() => parseStaticConfig([...base, '--public-ipv6', 'nope']), '--public-ipv6');
  const v6First = base.map((a) => (a === '198.18.0.1' ? '2001:2::9' : a));
  refused(() => parseStaticConfig([...v6First, '--public-ipv6', '2001:2::1']), '--public-ip', 'IPv4');
});

test('peers file: a dual-stack peer carries both addresses and MACs; bad ones name the field', () => {
  const entry = { name: 'n2', subnets: ['198.19.2.0/24', '2001:2:0:102::/64'], publicIP: '198.18.0.2', vtepMAC: '0A:58:C6:13:02:04', publicIPv6: '2001:2:0::2', vtepMACv6: '0a:58:c6:13:02:06' };
  assert.deepEqual(parsePeers([entry], 'vxlan'), [{
    name: 'n2', subnets: ['198.19.2.0/24', '2001:2:0:102::/64'], publicIP: '198.18.0.2', vtepMAC: '0a:58:c6:13:02:04', publicIPv6: '2001:2::2', vtepMACv6: '0a:58:c6:13:02:06',
  }]);
  refused(() => parsePeers([{ ...entry, publicIPv6: '198.18.0.9' }], 'vxlan'), 'peers[0].publicIPv6', 'not an IPv6');
  refused(() => parsePeers([{ ...entry, publicIPv6: 7 }], 'vxlan'), 'peers[0].publicIPv6');
  refused(() => parsePeers([{ ...entry, vtepMACv6: undefined }], 'vxlan'), 'peers[0].vtepMACv6', 'required');
  refused(() => parsePeers([{ ...entry, vtepMACv6: 'zz' }], 'vxlan'), 'peers[0].vtepMACv6');
  refused(() => parsePeers([{ ...entry, publicIP: '2001:2::8' }], 'vxlan'), 'peers[0].publicIP', 'IPv4');
  const { publicIPv6: _, ...noV6 } = entry;
  refused(() => parsePeers([noV6], 'vxlan'), 'peers[0].vtepMACv6', 'without publicIPv6');
  // udp needs no MAC for either family
  const { vtepMAC: _m, vtepMACv6: _m6, ...udp } = entry;
  assert.equal(parsePeers([udp], 'udp')[0]!.publicIPv6, '2001:2::2');
});

test('data plane options: publicIPv6 must be IPv6, next to an IPv4 publicIP, outside the cluster ranges', () => {
  const o: DataplaneOptions = {
    backend: 'vxlan', engine: 'native', tunName: 'userlay0', mtu: 1430, publicIP: '198.18.0.1', publicIPv6: '2001:2::1', port: 8472, vni: 1,
    vtepMAC: '0a:58:c6:13:01:00', ownSubnets: ['198.19.1.0/24', '2001:2:0:101::/64'], networks: ['198.19.0.0/16', '2001:2:0:100::/56'],
  };
  assert.deepEqual(validateDataplaneOptions(o).families, [4, 6]);
  refused(() => validateDataplaneOptions({ ...o, publicIPv6: '198.18.0.2' }), 'publicIPv6', 'not an IPv6');
  refused(() => validateDataplaneOptions({ ...o, publicIP: '2001:2::3' }), 'publicIPv6', 'IPv4 publicIP');
  refused(() => validateDataplaneOptions({ ...o, publicIPv6: '2001:2:0:105::1' }), 'networks', '2001:2:0:100::/56', 'underlay address 2001:2:0:105::1');
});

// --- kube mode: underlay, lease, peers ---

function v4(address: string): NetworkInterfaceInfo {
  return { address, family: 'IPv4', internal: false, netmask: '255.255.255.0', mac: '00:00:00:00:00:00', cidr: `${address}/24` };
}
function v6(address: string, scopeid = 0): NetworkInterfaceInfo {
  return { address, family: 'IPv6', internal: false, netmask: 'ffff:ffff:ffff:ffff::', mac: '00:00:00:00:00:00', cidr: `${address}/64`, scopeid };
}

function host(ifaces: Record<string, NetworkInterfaceInfo[]>): UnderlayHost {
  const route = 'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\neth0\t00000000\t010012C6\t0003\t0\t0\t100\t00000000\t0\t0\t0';
  const files: Record<string, string> = { '/proc/net/route': route, '/sys/class/net/eth0/mtu': '1500\n' };
  return { interfaces: () => ifaces, readText: (p) => files[p], localAddressFor: () => Promise.reject(new Error('unused')) };
}

test('kube underlay: a dual-stack node takes the IPv6 address of the same interface, or --public-ipv6', async () => {
  const h = host({ eth0: [v4('198.18.0.1'), v6('fe80::1', 2), v6('2001:2::1'), v6('2001:2::11')], eth1: [v6('2001:2::99')] });
  const u = await pickUnderlay({ dualStack: true }, h);
  assert.deepEqual([u.bindIP, u.bindIPv6, u.publicIPv6, u.dualStackProblem], ['198.18.0.1', '2001:2::1', '2001:2::1', undefined], 'link-local skipped');
  const local = await pickUnderlay({ dualStack: true, publicIPv6: '2001:2::11' }, h);
  assert.deepEqual([local.bindIPv6, local.publicIPv6], ['2001:2::11', '2001:2::11'], 'a local --public-ipv6 is also bound');
  const nat = await pickUnderlay({ dualStack: true, publicIPv6Overwrite: '2001:2::77' }, h);
  assert.deepEqual([nat.bindIPv6, nat.publicIPv6], ['2001:2::1', '2001:2::77'], 'a foreign one is only published');
  assert.equal((await pickUnderlay({}, h)).bindIPv6, undefined, 'single stack: no IPv6 underlay');
  await assert.rejects(pickUnderlay({ dualStack: true, publicIPv6: '198.18.0.5' }, h), (e: Error) => e.message.includes('--public-ipv6') && e.message.includes('not an IPv6'));
  const v4only = await pickUnderlay({ dualStack: true }, host({ eth0: [v4('198.18.0.1')] }));
  assert.match(v4only.dualStackProblem ?? '', /eth0 has no usable IPv6 address/);
  await assert.rejects(pickUnderlay({ dualStack: true, publicIPv6: '2001:2::5' }, host({ eth0: [v4('198.18.0.1')] })),
    (e: Error) => e.message.includes('--public-ipv6') && e.message.includes('no usable IPv6 address'));
});

test('lease: a dual-stack node publishes both families with its one VTEP MAC; a single-stack one removes the other', () => {
  const lease: LeaseInfo = { backend: 'vxlan', vni: 1, vtepMAC: mac(1), publicIP: '198.18.0.1', family: 4, publicIPv6: '2001:2::1' };
  const dual = (leasePatch(P, lease) as { metadata: { annotations: Record<string, string | null> } }).metadata.annotations;
  assert.equal(dual[`${P}/public-ip`], '198.18.0.1');
  assert.equal(dual[`${P}/public-ipv6`], '2001:2::1');
  assert.equal(dual[`${P}/backend-data`], JSON.stringify({ VNI: 1, VtepMAC: mac(1) }));
  assert.equal(dual[`${P}/backend-v6-data`], dual[`${P}/backend-data`]);
  const { publicIPv6: _, ...single } = lease;
  const one = (leasePatch(P, single) as { metadata: { annotations: Record<string, string | null> } }).metadata.annotations;
  assert.deepEqual([one[`${P}/public-ipv6`], one[`${P}/backend-v6-data`]], [null, null]);
});

const dualCfg: SyncConfig = { ...cfg, networks: { 4: '198.19.0.0/16', 6: '2001:2:0:100::/56' }, underlayFamilies: [4, 6], ownPublicIPv6: '2001:2::1', ownVtepMAC: mac(1) };
const v6Lease = (i: number, over: Record<string, string | undefined> = {}) => ({
  'public-ipv6': `2001:2::${i}`, 'backend-v6-data': JSON.stringify({ VNI: 1, VtepMAC: `0a:58:c6:13:06:0${i}` }), ...over,
});

test('kube peers: a dual-stack node reads both leases of a peer; bad IPv6 leases are refused by name', () => {
  const r = nodeToPeer(node(2, { ann: v6Lease(2) }), dualCfg);
  assert.ok(r.ok, r.ok ? '' : r.reason);
  assert.deepEqual([r.peer.publicIP, r.peer.vtepMAC, r.peer.publicIPv6, r.peer.vtepMACv6], ['198.18.0.2', mac(2), '2001:2::2', '0a:58:c6:13:06:02']);
  const v4only = nodeToPeer(node(3), dualCfg);
  assert.ok(v4only.ok && v4only.peer.publicIPv6 === undefined, 'a peer with one lease is a single-stack peer');
  const single = nodeToPeer(node(2, { ann: v6Lease(2) }), cfg);
  assert.ok(single.ok && single.peer.publicIPv6 === undefined, 'a single-stack node does not read the IPv6 lease');
  const bad = (over: Record<string, string | undefined>) => {
    const v = nodeToPeer(node(2, { ann: v6Lease(2, over) }), dualCfg);
    return v.ok ? 'accepted' : v.reason;
  };
  assert.match(bad({ 'public-ipv6': '2001:2:0:105::2' }), /public IP 2001:2:0:105::2 lies inside the cluster network 2001:2:0:100::\/56/);
  assert.match(bad({ 'public-ipv6': '198.18.0.9' }), /public-ipv6 "198.18.0.9" is not an IPv6 address/);
  assert.match(bad({ 'backend-v6-data': JSON.stringify({ VNI: 1, VtepMAC: '01:00:5e:00:00:01' }) }), /backend-v6-data VtepMAC 01:00:5e:00:00:01 .*multicast/);
  assert.match(bad({ 'backend-v6-data': JSON.stringify({ VNI: 1, VtepMAC: mac(1) }) }), /VtepMAC .* this node's own/);
  assert.match(bad({ 'backend-v6-data': undefined }), /no VtepMAC in userlay.io\/backend-v6-data/);
});
