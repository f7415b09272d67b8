/**
 * openDataplane's setup order, rollback and FDB handling, against a fake
 * addon that records every call (no privileges, no devices).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { EngineConfig, NativeAddon } from '../../src/dataplane/addon.js';
import { COUNTER, DROP, DROP_COUNT, SLOT_WIDTH, counterIndex } from '../../src/dataplane/counters.js';
import { openDataplane, validateDataplaneOptions } from '../../src/dataplane/dataplane.js';
import type { DataplaneHost, DataplaneOptions, Peer } from '../../src/dataplane/types.js';
import { UserlayError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { REFUSE_ENV } from '../../src/dataplane/offloads.js';
import { TX_SOURCE_PORTS } from '../../src/dataplane/native-engine.js';

const opts: DataplaneOptions = {
  backend: 'vxlan', engine: 'native', tunName: `ulF${process.pid % 100000}`, mtu: 1450, publicIP: '198.18.0.1', port: 8472, vni: 1,
  vtepMAC: '0a:58:c6:12:00:01', ownSubnets: ['198.19.1.0/24'], networks: ['198.19.0.0/16', '198.18.128.0/17'], maxPeers: 4,
};
const n2: Peer = { name: 'n2', subnets: ['198.19.2.0/24'], publicIP: '198.18.0.2', vtepMAC: '0a:58:c6:12:00:02' };

function errno(code: string): Error {
  return Object.assign(new Error(`fake ${code}`), { code });
}

/** A fake addon: `calls` lists "name args"; `fail` makes one call throw. */
const TUN_F = { TUN_F_CSUM: 1, TUN_F_TSO4: 2, TUN_F_TSO6: 4, TUN_F_USO4: 0x20, TUN_F_USO6: 0x40 };

/** The native engine's send sockets in the fake: opened after fd 7, closed after it. */
const TX_FDS = Array.from({ length: TX_SOURCE_PORTS }, (_, k) => 100 + k);
const TX_OPENS = TX_FDS.map(() => 'udpOpenSender 198.18.0.1');
const TX_CLOSES = TX_FDS.map((fd) => `close ${fd}`);

const NO_COUNTS = { tsoPackets: 0, tsoSegments: 0, groBuffers: 0, groDatagrams: 0, tunGso: true, tunUso: true, tunGsoRefused: 0, tunSoftSegments: 0, tunTcpRuns: 0, tunTcpRunPackets: 0, tunUdpRuns: 0, tunUdpRunPackets: 0, partialCsumPackets: 0 };

function fakeAddon(fail: Record<string, (args: unknown[]) => Error | undefined> = {}) {
  const calls: string[] = [];
  let counters: BigUint64Array | undefined;
  let engineCfg: EngineConfig | undefined;
  let txOpened = 0;
  let queuesOpened = 0;
  const snapshots: Uint8Array[] = [];
  const rec = (name: string, ret?: (args: unknown[]) => unknown) => (...args: unknown[]) => {
    const err = fail[name]?.(args);
    calls.push(`${name} ${args.filter((a) => typeof a !== 'object').join(' ')}`.trim());
    if (err) throw err;
    return ret?.(args);
  };
  const addon = {
    constants: { TX_HEADROOM: 64, SLOT_WIDTH, DROP_COUNT, drops: DROP, ...TUN_F },
    // the tunnel port gets fd 7, the send sockets fds 100, 101, ...
    udpOpen: rec('udpOpen', () => 7),
    udpOpenSender: rec('udpOpenSender', () => 100 + txOpened++),
    // a kernel that takes every flag it is asked for, minus the refused ones
    tunSetOffloads: rec('tunSetOffloads', (a) => (a[1] as number) & ~(a[2] as number)),
    udpSetGro: rec('udpSetGro'),
    tunOpen: rec('tunOpen', (a) => ({ fd: 8, name: a[0] })),
    // --threads N: the group gets fds 7, 70, 71, ...; the TUN queues 8, 80, 81, ...
    udpOpenGroup: rec('udpOpenGroup', (a) => Array.from({ length: a[2] as number }, (_, k) => (k === 0 ? 7 : 69 + k))),
    tunOpenQueue: rec('tunOpenQueue', (a) => ({ fd: queuesOpened++ === 0 ? 8 : 79 + queuesOpened - 1, name: a[0] || 'ul-auto' })),
    close: rec('close'),
    linkSet: rec('linkSet'),
    addrAdd: rec('addrAdd'),
    routeAdd: rec('routeAdd'),
    routeDel: rec('routeDel'),
    engineCreate: rec('engineCreate', (a) => {
      engineCfg = a[0] as EngineConfig;
      counters = (a[0] as { counters: BigUint64Array }).counters;
      return { engine: true };
    }),
    engineSetFdb: rec('engineSetFdb', (a) => snapshots.push(a[1] as Uint8Array)),
    engineStart: rec('engineStart'),
    engineStop: rec('engineStop'),
    engineDestroy: rec('engineDestroy'),
    engineStats: () => ({ ...NO_COUNTS }),
    // the route dump behind an EEXIST: someone else's 198.18.128.0/17 on link 42
    routeList: () => [{ dst: '198.18.128.0', prefixLen: 17, ifindex: 42, protocol: 4 }],
    linkName: (index: number) => (index === 42 ? 'other0' : null),
  } as unknown as NativeAddon;
  const sysctls: string[] = [];
  const host: DataplaneHost = { setSysctl: (path, value) => { sysctls.push(`${path}=${value}`); } };
  return { addon, calls, snapshots, counters: () => counters!, engineCfg: () => engineCfg!, host, sysctls };
}

test('setup order: UDP socket first, then TUN, MTU/up, address, routes, engine', async () => {
  const f = fakeAddon();
  const dp = await openDataplane(opts, silentLogger, f.addon, f.host);
  const t = opts.tunName;
  assert.deepEqual(f.calls, [
    'udpOpen 198.18.0.1 8472',
    ...TX_OPENS,
    `tunOpen ${t} true`,
    'tunSetOffloads 8 103 0',
    'udpSetGro 7 true',
    `linkSet ${t} 1450 true`,
    `addrAdd ${t} 198.19.1.0 32`,
    `routeAdd ${t} 198.19.0.0 16`,
    `routeAdd ${t} 198.18.128.0 17`,
    'engineCreate',
    'engineSetFdb',
    'engineStart',
  ]);
  assert.deepEqual(f.sysctls, [`net/ipv4/conf/${t}/accept_local=1`], 'through the host seam, nothing else');
  assert.equal(f.counters().length, (4 + 1) * SLOT_WIDTH);
  assert.equal(dp.tunName, t);
  assert.deepEqual(dp.peers(), []);
  await dp.close();
});

test('--threads 3: a SO_REUSEPORT group, three TUN queues, offloads on each, the engine gets the pairs; close closes all', async () => {
  const f = fakeAddon();
  const dp = await openDataplane({ ...opts, threads: 3 }, silentLogger, f.addon, f.host);
  const t = opts.tunName;
  assert.deepEqual(f.calls.slice(0, 1 + TX_OPENS.length + 9), [
    'udpOpenGroup 198.18.0.1 8472 3',
    ...TX_OPENS,
    `tunOpenQueue ${t} true`,
    `tunOpenQueue ${t} true`,
    `tunOpenQueue ${t} true`,
    'tunSetOffloads 8 103 0',
    'udpSetGro 7 true',
    'tunSetOffloads 80 103 0',
    'tunSetOffloads 81 103 0',
    'udpSetGro 70 true',
    'udpSetGro 71 true',
  ]);
  assert.deepEqual(f.engineCfg().queues, [{ tunFd: 80, udpFd: 70 }, { tunFd: 81, udpFd: 71 }]);
  assert.equal(f.engineCfg().tunFd, 8);
  assert.equal(f.engineCfg().udpFd, 7);
  f.calls.length = 0;
  await dp.close();
  for (const fd of [7, 70, 71, 8, 80, 81]) assert.ok(f.calls.includes(`close ${fd}`), `close ${fd}: ${f.calls.join(', ')}`);
});

test('--threads 2: a TUN queue that fails to open rolls back the first queue and every socket', async () => {
  let opened = 0;
  const f = fakeAddon({ tunOpenQueue: () => (opened++ === 1 ? errno('ENOMEM') : undefined) });
  await assert.rejects(openDataplane({ ...opts, threads: 2 }, silentLogger, f.addon, f.host), { code: 'ENOMEM' });
  for (const fd of [7, 70, 8, ...TX_FDS]) assert.ok(f.calls.includes(`close ${fd}`), `close ${fd}: ${f.calls.join(', ')}`);
  assert.ok(!f.calls.includes('engineCreate'));
});

test('setPeers: installs a snapshot; a bad set throws EFDB and keeps the old one', async () => {
  const f = fakeAddon();
  const dp = await openDataplane(opts, silentLogger, f.addon, f.host);
  dp.setPeers([n2]);
  assert.equal(f.snapshots.length, 2);
  assert.equal(f.snapshots[1]!.length, 16 + 40 + 24);
  assert.equal(dp.peers()[0]!.name, 'n2');
  assert.throws(() => dp.setPeers([n2, { ...n2, name: 'n3', publicIP: '198.18.0.3' }]),
    (err: unknown) => err instanceof UserlayError && err.code === 'EFDB' && /"n2".*"n3"/.test(err.message));
  assert.throws(() => dp.setPeers([{ ...n2, subnets: ['198.19.1.0/24'] }]), { code: 'EFDB' }, 'own subnet');
  assert.equal(f.snapshots.length, 2, 'nothing handed to the engine');
  assert.deepEqual(dp.peers().map((p) => p.name), ['n2']);
  // counters are read from the block the engine was given, keyed by the peer's slot
  const c = f.counters();
  c[counterIndex(1, COUNTER.rxPackets)] = 5n;
  c[counterIndex(0, COUNTER.rxPackets)] = 6n;
  c[counterIndex(0, COUNTER.drops + DROP.bad_vni)] = 1n;
  const s = dp.stats();
  assert.equal(s.peers.n2!.rxPackets, 5n);
  assert.equal(s.total.rxPackets, 6n);
  assert.deepEqual(s.total.drops, { bad_vni: 1n });
  assert.equal(s.fdbPeers, 1);
  // a removed peer's slot is reused later with zeroed counters
  dp.setPeers([]);
  dp.setPeers([{ ...n2, name: 'n9' }]);
  assert.equal(dp.stats().peers.n9!.rxPackets, 0n);
  await dp.close();
});

test('peer slots: replacing every peer at the limit fits; recycled slots start at zero', async () => {
  const f = fakeAddon();
  const dp = await openDataplane(opts, silentLogger, f.addon, f.host);
  const set = (prefix: string, n: number): Peer[] => Array.from({ length: n }, (_, i) =>
    ({ name: `${prefix}${i}`, subnets: [`198.19.${10 + i}.0/24`], publicIP: `198.18.0.${10 + i}`, vtepMAC: `0a:58:c6:12:00:${(10 + i).toString(16).padStart(2, "0")}` }));
  dp.setPeers(set('old', 4));
  // the engine keeps counting into the old peers' slots until the swap has finished
  const c = f.counters();
  for (let slot = 1; slot <= 4; slot++) c[counterIndex(slot, COUNTER.rxPackets)] = 7n;
  dp.setPeers(set('new', 4)); // a whole node pool replaced: 4 + 4 names, 4 slots
  const s = dp.stats();
  assert.deepEqual(Object.keys(s.peers).sort(), ['new0', 'new1', 'new2', 'new3']);
  for (const name of Object.keys(s.peers)) assert.equal(s.peers[name]!.rxPackets, 0n, `${name} starts at zero`);
  // half replaced, half kept: kept peers keep their counts
  for (let slot = 1; slot <= 4; slot++) c[counterIndex(slot, COUNTER.rxPackets)] = 3n;
  dp.setPeers([...set('new', 2), ...set('newer', 4).slice(2)]);
  const t = dp.stats();
  assert.equal(t.peers.new0!.rxPackets, 3n);
  assert.equal(t.peers.newer3!.rxPackets, 0n);
  // the result must fit: five peers do not, and the message says the limit
  assert.throws(() => dp.setPeers(set('big', 5)), (err: unknown) =>
    err instanceof UserlayError && err.code === 'EFDB' && /too many peers: 5 > 4/.test(err.message));
  assert.equal(dp.peers().length, 4, 'the last good set stays');
  await dp.close();
});

test('a route that exists already is not taken over: EEXIST names it, and nothing is left', async () => {
  const f = fakeAddon({ routeAdd: (a) => (a[1] === '198.18.128.0' ? errno('EEXIST') : undefined) });
  await assert.rejects(openDataplane(opts, silentLogger, f.addon, f.host), (err: unknown) =>
    err instanceof UserlayError && err.code === 'EEXIST' && err.field === 'networks'
    && /a route for 198\.18\.128\.0\/17 exists already \(dev other0\)/.test(err.message));
  const t = opts.tunName;
  const after = f.calls.slice(f.calls.indexOf(`routeAdd ${t} 198.18.128.0 17`) + 1);
  assert.deepEqual(after.filter((c) => c.startsWith('route')), [`routeDel ${t} 198.19.0.0 16`], 'only the route it added is deleted');
  assert.ok(after.includes('close 8') && after.includes('close 7'), 'then TUN and socket closed');
});

test('options: a cluster range around the underlay address and a non-unicast VTEP MAC are refused', () => {
  assert.throws(() => validateDataplaneOptions({ ...opts, networks: ['198.18.0.0/24'], ownSubnets: ['198.18.0.128/25'] }),
    (err: unknown) => err instanceof UserlayError && err.field === 'networks' && /contains the underlay address 198\.18\.0\.1/.test(err.message));
  for (const mac of ['00:00:00:00:00:00', 'ff:ff:ff:ff:ff:ff', '01:00:5e:00:00:01']) {
    assert.throws(() => validateDataplaneOptions({ ...opts, vtepMAC: mac }), (err: unknown) => err instanceof UserlayError && err.field === 'vtepMAC', mac);
  }
});

test('close: stop engine, close socket, remove routes, close TUN; idempotent', async () => {
  const f = fakeAddon();
  const dp = await openDataplane(opts, silentLogger, f.addon, f.host);
  f.calls.length = 0;
  await Promise.all([dp.close(), dp.close()]);
  await dp.close();
  const t = opts.tunName;
  assert.deepEqual(f.calls, ['engineStop', 'engineDestroy', 'close 7', ...TX_CLOSES, `routeDel ${t} 198.19.0.0 16`, `routeDel ${t} 198.18.128.0 17`, 'close 8']);
  assert.throws(() => dp.setPeers([n2]), { code: 'ECLOSED' });
});

test('port in use fails before anything else is created', async () => {
  const f = fakeAddon({ udpOpen: () => errno('EADDRINUSE') });
  await assert.rejects(openDataplane(opts, silentLogger, f.addon, f.host), (err: unknown) =>
    err instanceof UserlayError && err.code === 'EADDRINUSE' && /port in use/.test(err.message));
  assert.deepEqual(f.calls, ['udpOpen 198.18.0.1 8472']);
});

test('js engine: its socket comes from the addon as well, so a port in use fails the same way', async () => {
  const f = fakeAddon({ udpOpen: () => errno('EADDRINUSE') });
  await assert.rejects(openDataplane({ ...opts, engine: 'js' }, silentLogger, f.addon, f.host), (err: unknown) =>
    err instanceof UserlayError && err.code === 'EADDRINUSE' && /port in use/.test(err.message));
  assert.deepEqual(f.calls, ['udpOpen 198.18.0.1 8472']);
});

test('no permission for the TUN: hint, and the socket is closed again', async () => {
  const f = fakeAddon({ tunOpen: () => errno('EPERM') });
  await assert.rejects(openDataplane(opts, silentLogger, f.addon, f.host), (err: unknown) =>
    err instanceof UserlayError && err.code === 'EPERM' && /needs CAP_NET_ADMIN/.test(err.message));
  assert.deepEqual(f.calls, ['udpOpen 198.18.0.1 8472', ...TX_OPENS, `tunOpen ${opts.tunName} true`, 'close 7', ...TX_CLOSES]);
});

test('a failure halfway undoes every step in reverse', async () => {
  const f = fakeAddon({ routeAdd: (a) => (a[1] === '198.18.128.0' ? errno('EEXIST') : undefined) });
  await assert.rejects(openDataplane(opts, silentLogger, f.addon, f.host), { code: 'EEXIST' });
  const t = opts.tunName;
  assert.deepEqual(f.calls.slice(-4 - TX_FDS.length), [`routeAdd ${t} 198.18.128.0 17`, `routeDel ${t} 198.19.0.0 16`, 'close 8', 'close 7', ...TX_CLOSES]);
  const g = fakeAddon({ engineStart: () => errno('EAGAIN') });
  await assert.rejects(openDataplane(opts, silentLogger, g.addon, g.host), { code: 'EAGAIN' });
  assert.deepEqual(g.calls.slice(-7 - TX_FDS.length), ['engineStart', 'engineStop', 'engineDestroy', 'close 7', ...TX_CLOSES,
    `routeDel ${t} 198.18.128.0 17`, `routeDel ${t} 198.19.0.0 16`, 'close 8']);
});

test('options are validated before any system call, naming the option', async () => {
  const bad: Array<[Partial<DataplaneOptions>, string]> = [
    [{ backend: 'gre' as 'vxlan' }, 'backend'],
    [{ engine: 'fast' as 'js' }, 'engine'],
    [{ tunName: 'x'.repeat(16) }, 'tunName'],
    [{ mtu: 100 }, 'mtu'],
    [{ publicIP: '198.18.0.300' }, 'publicIP'],
    [{ port: 0 }, 'port'],
    [{ vni: -1 }, 'vni'],
    [{ vtepMAC: 'x' }, 'vtepMAC'],
    [{ networks: [] }, 'networks'],
    [{ ownSubnets: ['198.20.1.0/24'] }, 'ownSubnets'],
    [{ ownSubnets: ['2001:2:0:101::/64'], networks: ['2001:2:0:100::/56'], mtu: 1200 }, 'mtu'],
  ];
  for (const [over, field] of bad) {
    assert.throws(() => validateDataplaneOptions({ ...opts, ...over }), (err: unknown) => err instanceof UserlayError && err.field === field, field);
    const f = fakeAddon();
    await assert.rejects(openDataplane({ ...opts, ...over }, silentLogger, f.addon, f.host), { code: 'EUSAGE' });
    assert.deepEqual(f.calls, []);
  }
  // udp needs no MAC
  assert.doesNotThrow(() => validateDataplaneOptions({ ...opts, backend: 'udp', vtepMAC: '' }));
});

test('offloads: auto asks for TSO/USO and UDP_GRO; off asks for none; a refused one is reported and setup goes on', async () => {
  const auto = fakeAddon();
  const dp = await openDataplane(opts, silentLogger, auto.addon, auto.host);
  assert.deepEqual(dp.stats().offloads, { mode: 'auto', active: ['tso', 'uso', 'gro'], refused: [], counters: NO_COUNTS });
  assert.equal(auto.engineCfg().probeTunGso, 1, 'offloads auto probes GSO writes to the TUN');
  await dp.close();

  const off = fakeAddon();
  const dpOff = await openDataplane({ ...opts, offloads: 'off' }, silentLogger, off.addon, off.host);
  assert.ok(off.calls.includes('tunSetOffloads 8 0 0'), off.calls.join('\n'));
  assert.ok(!off.calls.some((c) => c.startsWith('udpSetGro')));
  assert.deepEqual(dpOff.stats().offloads, { mode: 'off', active: [], refused: [], counters: NO_COUNTS });
  await dpOff.close();

  process.env[REFUSE_ENV] = 'tso,gro';
  try {
    const refused = fakeAddon();
    const dpR = await openDataplane(opts, silentLogger, refused.addon, refused.host);
    assert.ok(refused.calls.includes('tunSetOffloads 8 103 7'), refused.calls.join('\n'));
    assert.deepEqual(dpR.stats().offloads, { mode: 'auto', active: ['uso'], refused: ['tso', 'gro'], counters: NO_COUNTS });
    assert.ok(refused.calls.includes('engineStart'));
    await dpR.close();
  } finally {
    delete process.env[REFUSE_ENV];
  }
});

test('native engine: the tunnel port receives, TX_SOURCE_PORTS sockets on ephemeral ports send', async () => {
  const f = fakeAddon();
  const dp = await openDataplane(opts, silentLogger, f.addon, f.host);
  assert.equal(f.engineCfg().udpFd, 7);
  assert.deepEqual(f.engineCfg().txFds, TX_FDS);
  assert.ok(f.calls.includes('udpSetGro 7 true'), 'UDP_GRO on the receiving socket');
  await dp.close();
});

test('a send socket that cannot be opened closes the ones opened before', async () => {
  let n = 0;
  const f = fakeAddon({ udpOpenSender: () => (++n === 3 ? errno('EMFILE') : undefined) });
  await assert.rejects(openDataplane(opts, silentLogger, f.addon, f.host), { code: 'EMFILE' });
  assert.deepEqual(f.calls.filter((c) => c.startsWith('close')), ['close 7', 'close 100', 'close 101']);
  assert.ok(!f.calls.some((c) => c.startsWith('tunOpen')));
});
