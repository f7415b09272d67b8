/** The fuzz generators (test/support/fuzz-gen.ts): reproducible, and what the fuzz test's counts rely on. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DatagramFuzzer, INNER_IP, MAX_UDP_PAYLOAD, Prng, TunFuzzer, inetChecksum, type FuzzTarget } from '../support/fuzz-gen.js';

const target: FuzzTarget = {
  vni: 1, vtepMAC: '0a:58:c6:12:00:01', peerSubnet24: '198.19.99.', podIP: '198.19.1.2',
  tunSrc24: '198.18.200.', tunPeerDst24: '198.19.99.', tunNoRouteDst24: '198.19.77.', tunMaxLen: 1450,
};

test('fuzz-gen: one seed, one sequence; another seed, another', () => {
  const run = (seed: number): string[] => {
    const g = new DatagramFuzzer(new Prng(seed), target);
    return Array.from({ length: 200 }, () => g.next().payload.toString('hex'));
  };
  assert.deepEqual(run(7), run(7));
  assert.notDeepEqual(run(7), run(8));
});

test('fuzz-gen: the first datagrams are an empty one and two of 65,507 bytes', () => {
  const g = new DatagramFuzzer(new Prng(1), target);
  const first = [g.next(), g.next(), g.next()];
  assert.deepEqual(first.map((d) => [d.kind, d.payload.length, d.stranger]), [['empty', 0, false], ['max', MAX_UDP_PAYLOAD, false], ['max', MAX_UDP_PAYLOAD, false]]);
});

test('fuzz-gen: valid frames are valid; mutations never change the inner destination', () => {
  const rng = new Prng(3);
  const g = new DatagramFuzzer(rng, target);
  for (let i = 0; i < 2000; i++) {
    const v = g.valid();
    assert.equal(v[0], 0x08);
    assert.equal(v.readUInt16BE(INNER_IP + 2), v.length - INNER_IP, 'IP total length');
    assert.equal(inetChecksum(v, INNER_IP, 20), 0, 'IP header checksum');
    assert.deepEqual([...v.subarray(INNER_IP + 16, INNER_IP + 20)], [198, 19, 1, 2]);
    const m = g.mutate(v);
    if (m.length >= INNER_IP + 20 && m[INNER_IP]! >> 4 === 4) {
      assert.deepEqual([...m.subarray(INNER_IP + 16, INNER_IP + 20)], [198, 19, 1, 2], `mutation ${i} moved the destination`);
    }
  }
});

test('fuzz-gen: TUN packets have a valid IPv4 header, fit the MTU, and go where they say', () => {
  const g = new TunFuzzer(new Prng(5), target);
  const seen = new Set<string>();
  for (let i = 0; i < 5000; i++) {
    const { packet: p, dst } = g.next();
    const ihl = (p[0]! & 0x0f) * 4;
    assert.equal(p[0]! >> 4, 4);
    assert.ok(ihl >= 20 && ihl <= p.length && p.length <= target.tunMaxLen, `packet ${i}: ihl ${ihl}, length ${p.length}`);
    assert.ok(p.readUInt16BE(2) >= ihl && p.readUInt16BE(2) <= p.length, `packet ${i}: total length`);
    assert.equal(inetChecksum(p, 0, ihl), 0, `packet ${i}: header checksum`);
    assert.ok(p[8]! >= 2, 'TTL >= 2 (forwarded, not answered)');
    assert.deepEqual([...p.subarray(12, 15)], [198, 18, 200]);
    assert.deepEqual([...p.subarray(16, 19)], dst === 'peer' ? [198, 19, 99] : [198, 19, 77]);
    seen.add(`${dst}/${ihl > 20 ? 'opts' : 'plain'}/${p.readUInt16BE(6) & 0x3fff ? 'frag' : 'whole'}`);
  }
  assert.equal(seen.size, 8, `variety: ${[...seen].join(' ')}`);
});
