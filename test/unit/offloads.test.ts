/**
 * applyOffloads (src/dataplane/offloads.ts) against a fake addon whose
 * kernel takes only some flags, and the --offloads flag in both agent modes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NativeAddon } from '../../src/dataplane/addon.js';
import { REFUSE_ENV, applyOffloads } from '../../src/dataplane/offloads.js';
import { parseKubeConfig } from '../../src/agent/kube-config.js';
import { parseStaticConfig } from '../../src/agent/static-mode.js';
import { silentLogger } from '../../src/log.js';

const F = { TUN_F_CSUM: 1, TUN_F_TSO4: 2, TUN_F_TSO6: 4, TUN_F_USO4: 0x20, TUN_F_USO6: 0x40 };

/** A kernel that accepts the flags in `takes` (as ul_tun_set_offloads reports them), UDP_GRO when `gro`, UDP_SEGMENT when `gso`. */
function fakeAddon(takes: number, gro: boolean, gso = true) {
  const calls: string[] = [];
  const addon = {
    constants: F,
    tunSetOffloads(fd: number, want: number, refuse: number) {
      calls.push(`tunSetOffloads ${fd} ${want} ${refuse}`);
      return want & takes & ~refuse;
    },
    udpSetGro(fd: number, on: boolean) {
      calls.push(`udpSetGro ${fd} ${on}`);
      if (!gro) throw Object.assign(new Error('set UDP_GRO on fd 7: Protocol not available'), { code: 'ENOPROTOOPT' });
    },
    udpSetSegment(fd: number, size: number) {
      calls.push(`udpSetSegment ${fd} ${size}`);
      if (!gso) throw Object.assign(new Error('set UDP_SEGMENT on fd 9: Protocol not available'), { code: 'ENOPROTOOPT' });
    },
  } as unknown as NativeAddon;
  return { addon, calls };
}

test('applyOffloads: a kernel without USO keeps TSO; UDP_GRO refused is reported, not thrown', () => {
  const { addon, calls } = fakeAddon(F.TUN_F_CSUM | F.TUN_F_TSO4 | F.TUN_F_TSO6, false);
  const s = applyOffloads(addon, 8, 7, 'auto', silentLogger, {});
  assert.deepEqual(s.active, ['tso']);
  assert.deepEqual(s.refused, ['uso', 'gro']);
  assert.equal(s.probeTunGso, true);
  assert.deepEqual(calls, ['tunSetOffloads 8 103 0', 'udpSetGro 7 true']);
});

test('applyOffloads: the js engine (no native fd) asks for no UDP_GRO', () => {
  const { addon, calls } = fakeAddon(0xff, true);
  const s = applyOffloads(addon, 8, undefined, 'auto', silentLogger, {});
  assert.deepEqual(s.active, ['tso', 'uso']);
  assert.deepEqual(s.refused, []);
  assert.ok(!calls.some((c) => c.startsWith('udpSetGro')));
});

test('applyOffloads: the js engine\'s GSO socket gets UDP_SEGMENT tried (size 0); refused is reported, not thrown', () => {
  const ok = fakeAddon(0xff, true);
  const s = applyOffloads(ok.addon, 8, 7, 'auto', silentLogger, {}, 9);
  assert.deepEqual([s.active, s.refused], [['tso', 'uso', 'gro', 'gso'], []]);
  assert.deepEqual(ok.calls, ['tunSetOffloads 8 103 0', 'udpSetGro 7 true', 'udpSetSegment 9 0']);
  const old = fakeAddon(0xff, true, false);
  const r = applyOffloads(old.addon, 8, 7, 'auto', silentLogger, {}, 9);
  assert.deepEqual([r.active, r.refused], [['tso', 'uso', 'gro'], ['gso']]);
  const hook = fakeAddon(0xff, true);
  const h = applyOffloads(hook.addon, 8, 7, 'auto', silentLogger, { [REFUSE_ENV]: 'gso' }, 9);
  assert.deepEqual([h.active, h.refused], [['tso', 'uso', 'gro'], ['gso']]);
  assert.ok(!hook.calls.some((c) => c.startsWith('udpSetSegment')), 'the hook refuses before asking the kernel');
  const off = fakeAddon(0xff, true);
  assert.deepEqual(applyOffloads(off.addon, 8, 7, 'off', silentLogger, {}, 9).active, []);
  assert.deepEqual(off.calls, ['tunSetOffloads 8 0 0']);
});

test('applyOffloads: off clears the TUN offloads and probes nothing', () => {
  const { addon, calls } = fakeAddon(0xff, true);
  const s = applyOffloads(addon, 8, 7, 'off', silentLogger, {});
  assert.deepEqual([s.active, s.refused, s.probeTunGso], [[], [], false]);
  assert.deepEqual(calls, ['tunSetOffloads 8 0 0']);
});

test('applyOffloads: the test hook refuses what it names', () => {
  const { addon, calls } = fakeAddon(0xff, true);
  const s = applyOffloads(addon, 8, 7, 'auto', silentLogger, { [REFUSE_ENV]: 'uso, gro,tun-gso' });
  assert.deepEqual(s.active, ['tso']);
  assert.deepEqual(s.refused, ['uso', 'gro']);
  assert.equal(s.testRefuseTunGso, true);
  assert.deepEqual(calls, ['tunSetOffloads 8 103 96']);
});

test('--offloads: auto by default, off accepted, in static and kube mode', async () => {
  const base = ['--node', 'n1', '--public-ip', '198.18.0.1', '--subnet', '198.19.1.0/24', '--network', '198.19.0.0/16', '--peers', '/dev/null'];
  assert.equal(parseStaticConfig(base).dataplane.offloads, 'auto');
  assert.equal(parseStaticConfig([...base, '--offloads', 'off']).dataplane.offloads, 'off');
  const kube = ['--network', '198.19.0.0/16', '--node-name', 'n1'];
  assert.equal((await parseKubeConfig(kube, {})).offloads, 'auto');
  assert.equal((await parseKubeConfig([...kube, '--offloads', 'off'], {})).offloads, 'off');
  await assert.rejects(parseKubeConfig([...kube, '--offloads', 'yes'], {}), /--offloads/);
});
