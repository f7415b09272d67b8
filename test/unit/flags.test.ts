/** The flag parser (src/agent/flags.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type FlagSpec, formatUsage, parseFlags } from '../../src/agent/flags.js';
import { UserlayError } from '../../src/errors.js';

const specs: FlagSpec[] = [
  { name: 'node', kind: 'string', required: true, help: 'node name' },
  { name: 'port', kind: 'int', default: 8472, help: 'UDP port' },
  { name: 'json', kind: 'bool', help: 'JSON output' },
  { name: 'network', kind: 'list', help: 'cluster network' },
  { name: 'mode', kind: 'string', default: 'vxlan', help: 'backend' },
];

function usage(fn: () => unknown, field: string): void {
  assert.throws(fn, (err: unknown) => err instanceof UserlayError && err.code === 'EUSAGE' && err.field === field && err.message.startsWith(`${field}: `));
}

test('both value syntaxes, bools, repeatable lists and defaults', () => {
  const f = parseFlags(specs, ['--node', 'n1', '--port=9000', '--json', '--network', '198.19.0.0/16', '--network=2001:2:0:100::/56']);
  assert.deepEqual(f, { node: 'n1', port: 9000, json: true, network: ['198.19.0.0/16', '2001:2:0:100::/56'], mode: 'vxlan' });
  const d = parseFlags(specs, ['--node=n2', '--json=false']);
  assert.equal(d.port, 8472);
  assert.equal(d.json, false);
  assert.equal(d.network, undefined);
  assert.equal(parseFlags(specs, ['--node', 'x', '--port', '-1']).port, -1);
});

test('errors name the flag', () => {
  usage(() => parseFlags(specs, ['--node', 'n1', '--bogus', '1']), '--bogus');
  usage(() => parseFlags(specs, ['--port', '1']), '--node');
  usage(() => parseFlags(specs, ['--node']), '--node');
  usage(() => parseFlags(specs, ['--node', '--port', '1']), '--node');
  usage(() => parseFlags(specs, ['--node', 'n1', '--port', '12x']), '--port');
  usage(() => parseFlags(specs, ['--node', 'n1', '--port', '1.5']), '--port');
  usage(() => parseFlags(specs, ['--node', 'n1', '--port', '99999999999999999999']), '--port');
  usage(() => parseFlags(specs, ['--node', 'n1', '--node', 'n2']), '--node');
  usage(() => parseFlags(specs, ['--node', 'n1', '--json=yes']), '--json');
  usage(() => parseFlags(specs, ['--node', 'n1', 'stray']), 'stray');
  usage(() => parseFlags(specs, ['-n', 'n1']), '-n');
});

test('list defaults are copies', () => {
  const s: FlagSpec[] = [{ name: 'x', kind: 'list', default: ['a'], help: 'x' }];
  const a = parseFlags(s, []);
  (a.x as string[]).push('b');
  assert.deepEqual(parseFlags(s, []).x, ['a']);
});

test('formatUsage lists every flag with its help and default', () => {
  const text = formatUsage(specs, 'usage: userlay thing');
  assert.match(text, /^usage: userlay thing\n/);
  for (const s of specs) assert.match(text, new RegExp(`--${s.name}.*${s.help}`));
  assert.match(text, /--port N\s+UDP port \(default: 8472\)/);
  assert.match(text, /--node VALUE\s+node name \(required\)/);
});
