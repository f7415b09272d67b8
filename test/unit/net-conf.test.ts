import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildNetConf, loadNetConf, networkList, parseNetConf } from '../../src/control/net-conf.js';

function fieldError(re: RegExp) {
  return (e: Error & { code?: string }) => e.code === 'EUSAGE' && re.test(e.message);
}

test('net-conf: flannel defaults (vxlan, VNI 1, port 8472, MTU auto)', () => {
  const c = parseNetConf('{"Network":"198.19.0.0/16","Backend":{"Type":"vxlan"}}', 'f');
  assert.deepEqual(c, { networks: { 4: '198.19.0.0/16' }, backend: 'vxlan', vni: 1, port: 8472, mtu: undefined, directRouting: false });
  assert.equal(buildNetConf({ Network: '198.19.0.0/16', Backend: { Type: 'udp' } }).port, 8285);
  assert.equal(buildNetConf({ Network: '198.19.0.0/16', Backend: { Type: 'vxlan', Port: 0 } }).port, 8472);
  assert.equal(buildNetConf({ Network: '198.19.0.0/16', SubnetLen: 24 }).backend, 'vxlan', 'unknown keys are ignored');
});

test('net-conf: all fields, dual stack, IPv6 only', () => {
  const c = buildNetConf({
    Network: '198.19.0.0/16', IPv6Network: '2001:2:0:100::/56', EnableIPv4: true, EnableIPv6: true,
    Backend: { Type: 'udp', VNI: 7, Port: 9000, MTU: 1400 },
  });
  assert.deepEqual(c, { networks: { 4: '198.19.0.0/16', 6: '2001:2:0:100::/56' }, backend: 'udp', vni: 7, port: 9000, mtu: 1400, directRouting: false });
  assert.deepEqual(networkList(c), ['198.19.0.0/16', '2001:2:0:100::/56']);
  const v6 = buildNetConf({ EnableIPv4: false, EnableIPv6: true, IPv6Network: '2001:2:0:100::/56' });
  assert.deepEqual(v6.networks, { 6: '2001:2:0:100::/56' });
});

test('net-conf: flags override the file', () => {
  const c = buildNetConf({ Network: '198.19.0.0/16', Backend: { Type: 'vxlan', VNI: 3, Port: 1000 } }, { backend: 'udp', vni: 9, port: 2000, mtu: 1300 });
  assert.deepEqual({ b: c.backend, v: c.vni, p: c.port, m: c.mtu }, { b: 'udp', v: 9, p: 2000, m: 1300 });
  assert.equal(buildNetConf({ Network: '198.19.0.0/16' }, { backend: 'udp' }).port, 8285, 'default port follows the overridden backend');
});

test('net-conf: host-gw (no port) and DirectRouting, from the file or --direct-routing', () => {
  const gw = buildNetConf({ Network: '198.19.0.0/16', Backend: { Type: 'host-gw' } });
  assert.deepEqual({ b: gw.backend, p: gw.port, d: gw.directRouting }, { b: 'host-gw', p: 0, d: false });
  assert.equal(buildNetConf({ Network: '198.19.0.0/16', Backend: { Type: 'vxlan', DirectRouting: true } }).directRouting, true);
  assert.equal(buildNetConf({ Network: '198.19.0.0/16', Backend: { Type: 'udp' } }, { directRouting: true }).directRouting, true);
  assert.throws(() => buildNetConf({ Network: '198.19.0.0/16' }, { backend: 'host-gw', directRouting: true }), fieldError(/^--direct-routing: host-gw/));
});

test('net-conf: errors name the field', () => {
  assert.throws(() => parseNetConf('{', 'x.json'), fieldError(/^--net-conf: x\.json is not valid JSON/));
  assert.throws(() => buildNetConf([]), fieldError(/net-conf \(top level\)/));
  assert.throws(() => buildNetConf({}), fieldError(/^net-conf Network: is required when EnableIPv4 is true/));
  assert.throws(() => buildNetConf({ Network: 'x' }), fieldError(/^net-conf Network: /));
  assert.throws(() => buildNetConf({ Network: '2001:2:0:100::/56' }), fieldError(/^net-conf Network: 2001:2:0:100::\/56 is not an IPv4 network/));
  assert.throws(() => buildNetConf({ Network: '198.19.0.1/16' }), fieldError(/host bits set \(did you mean 198\.19\.0\.0\/16\?\)/));
  assert.throws(() => buildNetConf({ Network: '198.19.0.0/16', EnableIPv6: true }), fieldError(/^net-conf IPv6Network: is required/));
  assert.throws(() => buildNetConf({ Network: '198.19.0.0/16', EnableIPv6: 'yes' }), fieldError(/^net-conf EnableIPv6: "yes" is not true or false/));
  assert.throws(() => buildNetConf({ EnableIPv4: false }), fieldError(/no address family enabled/));
  assert.throws(() => buildNetConf({ Network: '198.19.0.0/16', Backend: 3 }), fieldError(/^net-conf Backend: must be a JSON object/));
  assert.throws(() => buildNetConf({ Network: '198.19.0.0/16', Backend: { Type: 'wireguard' } }), fieldError(/^net-conf Backend\.Type: "wireguard" is not a supported backend \(vxlan, udp or host-gw\)/));
  assert.throws(() => buildNetConf({ Network: '198.19.0.0/16', Backend: { Type: 'vxlan', DirectRouting: 'yes' } }), fieldError(/^net-conf Backend\.DirectRouting: "yes" is not true or false/));
  assert.throws(() => buildNetConf({ Network: '198.19.0.0/16', Backend: { Type: 'host-gw', DirectRouting: true } }), fieldError(/^net-conf Backend\.DirectRouting: host-gw routes every peer directly already/));
  assert.throws(() => buildNetConf({ Network: '198.19.0.0/16', Backend: { VNI: 16777216 } }), fieldError(/^net-conf Backend\.VNI: 16777216 is out of range 1-16777215/));
  assert.throws(() => buildNetConf({ Network: '198.19.0.0/16', Backend: { VNI: 1.5 } }), fieldError(/^net-conf Backend\.VNI: 1\.5 is not an integer/));
  assert.throws(() => buildNetConf({ Network: '198.19.0.0/16', Backend: { Port: 70000 } }), fieldError(/^net-conf Backend\.Port: /));
  assert.throws(() => buildNetConf({ Network: '198.19.0.0/16', Backend: { MTU: 100 } }), fieldError(/^net-conf Backend\.MTU: 100 is out of range/));
  assert.throws(() => buildNetConf({ Network: '198.19.0.0/16' }, { backend: 'gre' }), fieldError(/^--backend: "gre"/));
  assert.throws(() => buildNetConf({ Network: '198.19.0.0/16' }, { vni: 0 }), fieldError(/^--vni: 0 is out of range/));
});

test('loadNetConf: reads the file; without one needs --network; unreadable file names --net-conf', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ul-netconf-'));
  try {
    const f = join(dir, 'net-conf.json');
    await writeFile(f, JSON.stringify({ Network: '198.19.0.0/16', Backend: { Type: 'vxlan', VNI: 4 } }));
    assert.equal((await loadNetConf(f, {})).vni, 4);
    assert.deepEqual((await loadNetConf(undefined, { network: '198.19.0.0/16' })).networks, { 4: '198.19.0.0/16' });
    await assert.rejects(loadNetConf(undefined, {}), fieldError(/^--net-conf: give --net-conf FILE or --network CIDR/));
    await assert.rejects(loadNetConf(join(dir, 'missing.json'), {}), fieldError(/^--net-conf: read .*missing\.json.*ENOENT/));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
