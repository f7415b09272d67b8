#!/usr/bin/env node
/**
 * Test runner behind `npm test` (after the TypeScript build and the native C
 * tests): runs node:test over the compiled tests, one file at a time.
 *
 *   dist/test/unit      always (no privileges needed)
 *   dist/test/netns     only as root (network namespaces, TUN devices)
 *   dist/test/interop   only as root (kernel vxlan peer, tshark)
 *
 * The TAP reporter is used so the summary lines ("# pass N", "# fail N")
 * appear in CI logs. Exit code: node --test's (non-zero if anything failed).
 * Extra arguments are passed to node --test (e.g. --test-name-pattern=...).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const isRoot = process.getuid?.() === 0;

/** Every *.test.js under dir, sorted, or [] when dir does not exist. */
function testFiles(dir) {
  if (!existsSync(dir)) return [];
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) out.push(...testFiles(full));
    else if (name.endsWith('.test.js')) out.push(full);
  }
  return out;
}

const suites = [
  { name: 'unit', needsRoot: false },
  { name: 'netns', needsRoot: true },
  { name: 'interop', needsRoot: true },
];

const files = [];
for (const suite of suites) {
  const dir = path.join(root, 'dist', 'test', suite.name);
  if (suite.needsRoot && !isRoot) {
    console.log(`# skipping dist/test/${suite.name}: these tests need root (network namespaces, TUN); run "npm test" as root`);
    continue;
  }
  const found = testFiles(dir);
  if (found.length === 0) console.log(`# no tests found in dist/test/${suite.name} (was "npm run build" run?)`);
  files.push(...found);
}

if (files.length === 0) {
  console.error('run-tests: no compiled tests found under dist/test; run "npm run build" first');
  process.exit(1);
}

const args = ['--test', '--test-concurrency=1', '--test-reporter=tap', ...process.argv.slice(2), ...files];
const res = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
if (res.error) {
  console.error(`run-tests: could not run node --test: ${res.error.message}`);
  process.exit(1);
}
process.exit(res.status ?? 1);
