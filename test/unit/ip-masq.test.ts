import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '../../src/log.js';
import { IpMasq, ipMasqRuleset } from '../../src/control/host/ip-masq.js';
import type { Nftables } from '../../src/control/host/nftables.js';

const V4 = { podSubnets: ['198.19.1.0/24'], networks: ['198.19.0.0/16'] };

test('ipMasqRuleset: one transaction that replaces the whole inet userlay table', () => {
  assert.equal(ipMasqRuleset({ enabled: true, ...V4 }), [
    'table inet userlay {}',
    'delete table inet userlay',
    'table inet userlay {',
    '\tchain postrouting {',
    '\t\ttype nat hook postrouting priority srcnat + 10; policy accept;',
    '\t\tip saddr 198.19.1.0/24 ip daddr != { 198.19.0.0/16, 224.0.0.0/4 } masquerade fully-random comment "userlay pod egress"',
    '\t}',
    '}',
    '',
  ].join('\n'));
});

test('ipMasqRuleset: dual stack is one rule per family from one path (ip / ip6 matches)', () => {
  const text = ipMasqRuleset({
    enabled: true,
    podSubnets: ['2001:2:0:1::/64', '198.19.1.0/24'],
    networks: ['198.19.0.0/16', '198.18.64.0/18', '2001:2::/56'],
  });
  const rules = text.split('\n').filter((l) => l.includes('masquerade'));
  assert.deepEqual(rules.map((r) => r.trim()), [
    'ip saddr 198.19.1.0/24 ip daddr != { 198.19.0.0/16, 198.18.64.0/18, 224.0.0.0/4 } masquerade fully-random comment "userlay pod egress"',
    'ip6 saddr 2001:2:0:1::/64 ip6 daddr != { 2001:2::/56, ff00::/8 } masquerade fully-random comment "userlay pod egress"',
  ]);
});

test('ipMasqRuleset: an IPv6-only node has no ip rule; spellings are canonicalised', () => {
  const text = ipMasqRuleset({ enabled: true, podSubnets: ['2001:0002:0:0001:0::/64'], networks: ['2001:2:0::/56'] });
  assert.doesNotMatch(text, /\bip saddr/);
  assert.match(text, /ip6 saddr 2001:2:0:1::\/64 ip6 daddr != \{ 2001:2::\/56, ff00::\/8 \}/);
});

test('ipMasqRuleset: disabled deletes the table whether or not it exists', () => {
  assert.equal(ipMasqRuleset({ enabled: false, ...V4 }), 'table inet userlay {}\ndelete table inet userlay\n');
});

test('ipMasqRuleset: a malformed CIDR throws instead of reaching nft', () => {
  assert.throws(() => ipMasqRuleset({ enabled: true, podSubnets: ['198.19.1.0/24; flush ruleset'], networks: [] }));
  assert.throws(() => ipMasqRuleset({ enabled: true, podSubnets: ['198.19.1.0/24'], networks: ['"x"'] }));
});

function recorder(fail?: (script: string) => Error | undefined): Nftables & { scripts: string[] } {
  const scripts: string[] = [];
  return {
    scripts,
    run: async (script) => {
      const err = fail?.(script);
      if (err) throw err;
      scripts.push(script);
    },
    listTable: async () => undefined,
  };
}

const quiet = createLogger('error', () => {});

test('IpMasq: apply runs the script once per change; remove deletes the table it made', async () => {
  const nft = recorder();
  const m = new IpMasq(nft, quiet);
  await m.apply({ enabled: true, ...V4 });
  await m.apply({ enabled: true, ...V4 });
  assert.equal(nft.scripts.length, 1, 'an unchanged spec runs nothing');
  await m.apply({ enabled: true, podSubnets: ['198.19.2.0/24'], networks: V4.networks });
  assert.equal(nft.scripts.length, 2);
  assert.match(nft.scripts[1]!, /ip saddr 198\.19\.2\.0\/24/);
  await m.remove();
  assert.equal(nft.scripts[2], 'table inet userlay {}\ndelete table inet userlay\n');
  await m.remove();
  assert.equal(nft.scripts.length, 3, 'a second remove does nothing');
});

test('IpMasq: enabled and nft fails: apply rejects; disabled: a missing nft is not an error', async () => {
  const enoent = Object.assign(new Error('run nft: program not found'), { code: 'ENOENT' });
  const m = new IpMasq(recorder(() => enoent), quiet);
  await assert.rejects(m.apply({ enabled: true, ...V4 }), /program not found/);
  await m.apply({ enabled: false, ...V4 });
  await m.remove(); // nothing of ours to remove: no nft call, no throw
});

test('IpMasq: disabled removes a leftover table and never removes on stop', async () => {
  const nft = recorder();
  const m = new IpMasq(nft, quiet);
  await m.apply({ enabled: false, ...V4 });
  assert.deepEqual(nft.scripts, ['table inet userlay {}\ndelete table inet userlay\n']);
  await m.remove();
  assert.equal(nft.scripts.length, 1);
});
