/** IP/CIDR/MAC parsing and formatting (src/dataplane/net.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  canonicalCidr, canonicalIP, canonicalMac, cidrContains, cidrOverlaps, formatIP, parseCidr, parseIP, parseMac, randomMac,
} from '../../src/dataplane/net.js';
import { UserlayError } from '../../src/errors.js';

test('IPv4 and IPv6 addresses round-trip to canonical text', () => {
  const cases: Array<[string, string, 4 | 6]> = [
    ['198.18.0.1', '198.18.0.1', 4],
    ['0.0.0.0', '0.0.0.0', 4],
    ['255.255.255.255', '255.255.255.255', 4],
    ['::', '::', 6],
    ['::1', '::1', 6],
    ['2001:2:0:0:0:0:0:A1', '2001:2::a1', 6],
    ['2001:2:0:0:1:0:0:1', '2001:2::1:0:0:1', 6], // first of two equal runs
    ['2001:0002:0000:0001:0000:0000:0000:0001', '2001:2:0:1::1', 6], // the longer run
    ['1:0:2:3:4:5:6:7', '1:0:2:3:4:5:6:7', 6], // a single zero group is not compressed
    ['::ffff:198.18.0.1', '::ffff:c612:1', 6],
  ];
  for (const [input, want, family] of cases) {
    const ip = parseIP(input);
    assert.equal(ip.family, family, input);
    assert.equal(ip.bytes.length, 16);
    assert.equal(formatIP(ip.family, ip.bytes), want, input);
    assert.equal(canonicalIP(input), want);
  }
  assert.deepEqual([...parseIP('198.18.0.1').bytes.subarray(0, 6)], [198, 18, 0, 1, 0, 0]);
});

test('bad addresses are rejected with EINVAL naming the input', () => {
  const bad = ['', '01.2.3.4', '1.2.3.004', '1.2.3', '1.2.3.4.5', '256.0.0.1', '1.2.3.-1', ' 1.2.3.4', '1.2.3.4/24',
    '1::2::3', '1:2:3:4:5:6:7:8:9', ':1', '1:', 'fe80::1%eth0', 'g::1', '12345::', '1:2:3:4:5:6:7::8:9', '::1.2.3', 'x'];
  for (const s of bad) {
    assert.throws(() => parseIP(s), (err: unknown) => err instanceof UserlayError && err.code === 'EINVAL' && err.message.includes(JSON.stringify(s)), s);
  }
});

test('CIDRs: canonical network, host-bit flag, strict prefix length', () => {
  const c = parseCidr('198.19.1.5/24');
  assert.equal(c.text, '198.19.1.0/24');
  assert.equal(c.hostBits, true);
  assert.equal(parseCidr('198.19.1.0/24').hostBits, false);
  assert.equal(canonicalCidr('2001:2:0:10A::7/64'), '2001:2:0:10a::/64');
  assert.equal(canonicalCidr('0.0.0.0/0'), '0.0.0.0/0');
  assert.equal(canonicalCidr('198.19.1.9/32'), '198.19.1.9/32');
  assert.equal(canonicalCidr('2001:2::1/128'), '2001:2::1/128');
  assert.equal(canonicalCidr('198.19.255.255/17'), '198.19.128.0/17');
  for (const s of ['198.19.1.0', '198.19.1.0/33', '2001:2::/129', '198.19.1.0/024', '198.19.1.0/', '198.19.1.0/-1', '/24', '198.19.01.0/24', 'abc/8']) {
    assert.throws(() => parseCidr(s), { code: 'EINVAL' }, s);
  }
});

test('containment and overlap work the same for both families', () => {
  assert.equal(cidrContains('198.19.0.0/16', '198.19.3.0/24'), true);
  assert.equal(cidrContains('198.19.0.0/16', '198.19.0.0/16'), true);
  assert.equal(cidrContains('198.19.3.0/24', '198.19.0.0/16'), false);
  assert.equal(cidrContains('198.19.0.0/16', '198.18.3.0/24'), false);
  assert.equal(cidrContains('198.19.0.0/16', '198.19.200.7'), true);
  assert.equal(cidrContains('2001:2:0:100::/56', '2001:2:0:105::/64'), true);
  assert.equal(cidrContains('2001:2:0:100::/56', '2001:2:0:200::/64'), false);
  assert.equal(cidrContains('2001:2:0:100::/56', '2001:2:0:100::abcd'), true);
  // a v4 address whose bytes sit inside a v6 prefix is still another family
  assert.equal(cidrContains('::/0', '198.19.0.1'), false);
  assert.equal(cidrContains('0.0.0.0/0', '::1'), false);
  assert.equal(cidrOverlaps('198.19.2.0/24', '198.19.0.0/16'), true);
  assert.equal(cidrOverlaps('198.19.2.0/24', '198.19.3.0/24'), false);
});

test('MACs: parse, canonical form, random ones are unicast and locally administered', () => {
  assert.deepEqual([...parseMac('0A:58:c6:13:01:00')], [0x0a, 0x58, 0xc6, 0x13, 0x01, 0x00]);
  assert.equal(canonicalMac('0A-58-C6-13-01-00'), '0a:58:c6:13:01:00');
  for (const s of ['', '0a:58:c6:13:01', '0a:58:c6:13:01:00:00', '0a:58:c6:13:01:0g', '0a-58:c6:13:01:00', '0a58.c613.0100']) {
    assert.throws(() => parseMac(s), { code: 'EINVAL' }, s);
  }
  const seen = new Set<string>();
  for (let i = 0; i < 20; i++) {
    const m = randomMac();
    const first = parseMac(m)[0]!;
    assert.equal(first & 1, 0, `${m} is multicast`);
    assert.equal(first & 2, 2, `${m} is not locally administered`);
    seen.add(m);
  }
  assert.ok(seen.size > 15, 'random MACs repeat');
});
