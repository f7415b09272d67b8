import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NetworkInterfaceInfo } from 'node:os';
import { defaultRouteInterfaces, pickUnderlay, systemHost, type UnderlayHost } from '../../src/control/underlay.js';

function v4(address: string, internal = false): NetworkInterfaceInfo {
  return { address, family: 'IPv4', internal, netmask: '255.255.255.0', mac: '00:00:00:00:00:00', cidr: `${address}/24` };
}
function v6(address: string, scopeid = 0): NetworkInterfaceInfo {
  return { address, family: 'IPv6', internal: false, netmask: 'ffff:ffff:ffff:ffff::', mac: '00:00:00:00:00:00', cidr: `${address}/64`, scopeid };
}

const route = [
  'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT',
  'eth1\t00000000\t010012C6\t0003\t0\t0\t200\t00000000\t0\t0\t0',
  'eth0\t00000000\t010012C6\t0003\t0\t0\t100\t00000000\t0\t0\t0',
  'eth0\t000012C6\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0',
].join('\n');
const route6 = [
  '00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003 eth6',
  '00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200 lo',
].join('\n');

function fakeHost(over: Partial<Record<string, string>> = {}, reach: Record<string, string> = {}): UnderlayHost {
  const ifaces: Record<string, NetworkInterfaceInfo[]> = {
    lo: [v4('127.0.0.1', true)],
    eth0: [v4('198.18.0.10'), v6('fe80::1', 2)],
    eth1: [v4('198.18.1.10'), v6('2001:2::10')],
    eth6: [v6('fe80::6', 4), v6('2001:2:0:6::6')],
    weave: [v4('198.18.2.10')],
  };
  const files: Record<string, string | undefined> = {
    '/proc/net/route': route, '/proc/net/ipv6_route': route6,
    '/sys/class/net/eth0/mtu': '9000\n', '/sys/class/net/eth1/mtu': '1500\n', ...over,
  };
  return {
    interfaces: () => ifaces,
    readText: (p) => files[p],
    localAddressFor: async (ip) => {
      const a = reach[ip];
      if (a === undefined) throw Object.assign(new Error('connect ENETUNREACH'), { code: 'ENETUNREACH' });
      return a;
    },
  };
}

test('defaultRouteInterfaces: lowest metric first, per family', () => {
  assert.deepEqual(defaultRouteInterfaces(fakeHost(), 4), ['eth0', 'eth1']);
  assert.deepEqual(defaultRouteInterfaces(fakeHost(), 6), ['eth6']);
  assert.deepEqual(defaultRouteInterfaces(fakeHost({ '/proc/net/route': undefined }), 4), []);
});

test('pickUnderlay: default route interface and its MTU', async () => {
  const u = await pickUnderlay({}, fakeHost());
  assert.deepEqual(u, { iface: 'eth0', bindIP: '198.18.0.10', publicIP: '198.18.0.10', family: 4, mtu: 9000, how: 'default route' });
  const six = await pickUnderlay({ family: 6 }, fakeHost());
  assert.equal(six.iface, 'eth6');
  assert.equal(six.bindIP, '2001:2:0:6::6', 'link-local addresses are skipped');
  const noV4 = await pickUnderlay({}, fakeHost({ '/proc/net/route': '' }));
  assert.equal(noV4.iface, 'eth6', 'falls back to the IPv6 default route');
  assert.equal(noV4.mtu, undefined, 'an unreadable MTU is reported as such (the caller decides)');
  await assert.rejects(pickUnderlay({}, fakeHost({ '/proc/net/route': '', '/proc/net/ipv6_route': '' })), (e: Error & { code?: string }) => e.code === 'ENOUNDERLAY');
});

test('pickUnderlay: --iface by name or address, first that exists', async () => {
  assert.equal((await pickUnderlay({ iface: ['nope', 'eth1'] }, fakeHost())).iface, 'eth1');
  const byIP = await pickUnderlay({ iface: ['198.18.9.9', '198.18.2.10'] }, fakeHost());
  assert.deepEqual([byIP.iface, byIP.bindIP, byIP.how], ['weave', '198.18.2.10', '--iface']);
  assert.equal((await pickUnderlay({ iface: ['eth1'], family: 6 }, fakeHost())).bindIP, '2001:2::10');
  await assert.rejects(pickUnderlay({ iface: ['nope', 'zz'] }, fakeHost()), /--iface: none of nope, zz exists/);
});

test('pickUnderlay: --iface-regex on names and addresses, in order', async () => {
  assert.equal((await pickUnderlay({ ifaceRegex: ['^wea', '^eth'] }, fakeHost())).iface, 'weave');
  assert.equal((await pickUnderlay({ ifaceRegex: ['^nomatch$', '^eth'] }, fakeHost())).iface, 'eth0');
  const byAddr = await pickUnderlay({ ifaceRegex: ['^198\\.18\\.1\\.'] }, fakeHost());
  assert.deepEqual([byAddr.iface, byAddr.bindIP], ['eth1', '198.18.1.10']);
  await assert.rejects(pickUnderlay({ ifaceRegex: ['('] }, fakeHost()), /--iface-regex: "\(" is not a valid regular expression/);
  await assert.rejects(pickUnderlay({ ifaceRegex: ['^zz'] }, fakeHost()), /--iface-regex: no interface/);
});

test('pickUnderlay: --iface-can-reach uses the kernel source address', async () => {
  const u = await pickUnderlay({ ifaceCanReach: '198.18.1.1' }, fakeHost({}, { '198.18.1.1': '198.18.1.10' }));
  assert.deepEqual([u.iface, u.bindIP, u.how], ['eth1', '198.18.1.10', '--iface-can-reach']);
  await assert.rejects(pickUnderlay({ ifaceCanReach: '198.18.50.1' }, fakeHost()), /--iface-can-reach: no route to 198\.18\.50\.1/);
  await assert.rejects(pickUnderlay({ ifaceCanReach: 'x' }, fakeHost()), /--iface-can-reach: "x" is not an IP address/);
});

test('pickUnderlay: --public-ip and the public-ip-overwrite annotation', async () => {
  const nat = await pickUnderlay({ publicIP: '198.18.200.1' }, fakeHost());
  assert.deepEqual([nat.iface, nat.bindIP, nat.publicIP], ['eth0', '198.18.0.10', '198.18.200.1'], 'non-local public IP: bind to the picked interface');
  const local = await pickUnderlay({ publicIP: '198.18.1.10' }, fakeHost());
  assert.deepEqual([local.iface, local.bindIP, local.publicIP], ['eth1', '198.18.1.10', '198.18.1.10'], 'local public IP selects its interface');
  const ann = await pickUnderlay({ iface: ['eth1'], publicIPOverwrite: '198.18.201.1' }, fakeHost());
  assert.deepEqual([ann.bindIP, ann.publicIP], ['198.18.1.10', '198.18.201.1']);
  const both = await pickUnderlay({ publicIP: '198.18.202.1', publicIPOverwrite: '198.18.201.1' }, fakeHost());
  assert.equal(both.publicIP, '198.18.202.1', 'the flag wins over the annotation');
  await assert.rejects(pickUnderlay({ publicIP: 'bad' }, fakeHost()), /--public-ip: "bad" is not an IP address/);
});

test('pickUnderlay: IPv6 --iface-can-reach and --public-ip fix the underlay family (flannel #2081)', async () => {
  const reach = await pickUnderlay({ ifaceCanReach: '2001:2::1', family: 4 }, fakeHost({}, { '2001:2::1': '2001:2::10' }));
  assert.deepEqual([reach.iface, reach.bindIP, reach.publicIP, reach.family], ['eth1', '2001:2::10', '2001:2::10', 6]);
  const local = await pickUnderlay({ publicIP: '2001:2::10' }, fakeHost());
  assert.deepEqual([local.iface, local.bindIP, local.family], ['eth1', '2001:2::10', 6]);
  // not local (NAT): bound on the IPv6 default-route interface, never on an IPv4 address
  const nat = await pickUnderlay({ publicIP: '2001:2:0:99::1' }, fakeHost());
  assert.deepEqual([nat.iface, nat.bindIP, nat.publicIP, nat.family], ['eth6', '2001:2:0:6::6', '2001:2:0:99::1', 6]);
  const ann = await pickUnderlay({ iface: ['eth1'], publicIPOverwrite: '2001:2:0:98::1' }, fakeHost());
  assert.deepEqual([ann.bindIP, ann.family], ['2001:2::10', 6]);
  await assert.rejects(pickUnderlay({ iface: ['weave'], publicIP: '2001:2:0:99::1' }, fakeHost()),
    /--public-ip: 2001:2:0:99::1 is IPv6 but interface weave has no usable IPv6 address/);
  await assert.rejects(pickUnderlay({ iface: ['eth6'], publicIP: '198.18.200.1' }, fakeHost()),
    /--public-ip: 198\.18\.200\.1 is IPv4 but interface eth6 has no usable IPv4 address/);
});

test('systemHost.localAddressFor: a connected UDP6 socket reports the source address (IPv6 loopback)', async () => {
  assert.equal(await systemHost.localAddressFor('::1'), '::1');
});

test('systemHost.localAddressFor: a connected UDP socket reports the source address (loopback)', async () => {
  assert.equal(await systemHost.localAddressFor('127.0.0.1'), '127.0.0.1');
});
