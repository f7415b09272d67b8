/**
 * The agent's V8 flags are set in two places that must agree: the
 * bin/userlay.js shebang (users, the DaemonSet) and AGENT_NODE_FLAGS (the lab
 * and test harnesses that start `node bin/userlay.js` themselves).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AGENT_NODE_FLAGS } from '../../src/agent/node-flags.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

test('bin/userlay.js shebang carries exactly AGENT_NODE_FLAGS', () => {
  const first = readFileSync(path.join(root, 'bin/userlay.js'), 'utf8').split('\n')[0]!;
  const m = /^#!\/usr\/bin\/env -S node(.*)$/.exec(first);
  assert.ok(m, `shebang runs node through env -S: ${first}`);
  assert.deepEqual(m[1]!.trim().split(/\s+/).filter(Boolean), [...AGENT_NODE_FLAGS]);
});
