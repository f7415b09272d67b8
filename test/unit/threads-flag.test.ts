/**
 * --threads (src/agent/agent-flags.ts) in both agent modes: default 1,
 * limits 1..8, more than 1 only with the native engine; and the data plane
 * check behind it (validateDataplaneOptions), so a caller that skips the
 * flag parser is refused the same way.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_THREADS } from '../../src/agent/agent-flags.js';
import { parseKubeConfig } from '../../src/agent/kube-config.js';
import { parseStaticConfig } from '../../src/agent/static-mode.js';
import { validateDataplaneOptions } from '../../src/dataplane/dataplane.js';
import type { DataplaneOptions } from '../../src/dataplane/types.js';

const base = ['--node', 'n1', '--public-ip', '198.18.0.1', '--subnet', '198.19.1.0/24', '--network', '198.19.0.0/16', '--peers', '/dev/null'];
const kube = ['--network', '198.19.0.0/16', '--node-name', 'n1'];

test('--threads: default 1 in both modes, the value given otherwise', async () => {
  assert.equal(DEFAULT_THREADS, 1);
  assert.equal(parseStaticConfig(base).dataplane.threads, 1);
  assert.equal(parseStaticConfig([...base, '--threads', '3']).dataplane.threads, 3);
  assert.equal(parseStaticConfig([...base, '--threads', '8']).dataplane.threads, 8);
  assert.equal((await parseKubeConfig(kube, {})).threads, 1);
  assert.equal((await parseKubeConfig([...kube, '--threads', '2'], {})).threads, 2);
});

test('--threads: outside 1..8, not a number, or > 1 with the js engine is a usage error naming --threads', async () => {
  for (const v of ['0', '9', '-1', 'two']) {
    assert.throws(() => parseStaticConfig([...base, '--threads', v]), (err: Error & { code?: string }) =>
      err.code === 'EUSAGE' && /--threads/.test(err.message), v);
    await assert.rejects(parseKubeConfig([...kube, '--threads', v], {}), /--threads/, v);
  }
  assert.throws(() => parseStaticConfig([...base, '--threads', '2', '--engine', 'js']), /--threads: 2 needs --engine native/);
  await assert.rejects(parseKubeConfig([...kube, '--threads', '2', '--engine', 'js'], {}), /--threads: 2 needs --engine native/);
  assert.equal(parseStaticConfig([...base, '--threads', '1', '--engine', 'js']).dataplane.threads, 1);
});

test('the data plane refuses what the flag refuses', () => {
  const o: DataplaneOptions = {
    backend: 'vxlan', engine: 'native', tunName: 'ul0', mtu: 1400, publicIP: '198.18.0.1', port: 8472, vni: 1,
    vtepMAC: '0a:58:c6:12:00:01', ownSubnets: ['198.19.1.0/24'], networks: ['198.19.0.0/16'],
  };
  assert.doesNotThrow(() => validateDataplaneOptions({ ...o, threads: 8 }));
  assert.throws(() => validateDataplaneOptions({ ...o, threads: 9 }), /threads/);
  assert.throws(() => validateDataplaneOptions({ ...o, threads: 1.5 }), /threads/);
  assert.throws(() => validateDataplaneOptions({ ...o, engine: 'js', threads: 2 }), /threads.*engine native/);
});
