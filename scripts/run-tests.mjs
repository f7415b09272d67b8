#!/usr/bin/env node
/**
 * Test runner behind `npm test` (after the TypeScript build and the native C
 * tests): runs node:test over the compiled tests, one file at a time.
 *
 *   dist/test/unit      always (no privileges needed)
 *   dist/test/netns     as root (network namespaces, TUN devices)
 *   dist/test/interop   as root (kernel vxlan peer, tshark)
 *
 * Skips: outside CI, the root-only suites are skipped when not root, saying
 * so, and every skipped test is listed at the end with its reason. Under CI
 * (CI=true), which runs as root, nothing may skip: not being root is an
 * error before anything runs, and any test that reports a skip makes the run
 * fail, even when every other test passed.
 *
 * The TAP reporter is used so the summary lines ("# pass N", "# fail N")
 * appear in CI logs. Exit code: node --test's (non-zero if anything failed),
 * or 1 for a skip under CI.
 * Extra arguments are passed to node --test (e.g. --test-name-pattern=...).
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const isRoot = process.getuid?.() === 0;
const inCI = process.env.CI === 'true';

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

if (inCI && !isRoot) {
  console.error('run-tests: CI=true but not running as root: the netns and interop suites would be skipped, and under CI nothing may skip. Run CI as root.');
  process.exit(1);
}

const files = [];
for (const suite of suites) {
  const dir = path.join(root, 'dist', 'test', suite.name);
  if (suite.needsRoot && !isRoot) {
    console.log(`# skipping dist/test/${suite.name}: these tests need root (network namespaces, TUN); run "npm test" as root`);
    continue;
  }
  const found = testFiles(dir);
  if (found.length === 0) {
    const why = `no tests found in dist/test/${suite.name} (was "npm run build" run?)`;
    if (inCI) {
      console.error(`run-tests: ${why}`);
      process.exit(1);
    }
    console.log(`# ${why}`);
  }
  files.push(...found);
}

if (files.length === 0) {
  console.error('run-tests: no compiled tests found under dist/test; run "npm run build" first');
  process.exit(1);
}

// A TAP test line with a SKIP directive: "ok 3 - name # SKIP reason" (any indentation).
const skipLine = /^\s*ok \d+ - (.*?) # SKIP\b ?(.*)$/;
const skipped = [];

const args = ['--test', '--test-concurrency=1', '--test-reporter=tap', ...process.argv.slice(2), ...files];
const child = spawn(process.execPath, args, { cwd: root, stdio: ['inherit', 'pipe', 'inherit'] });
child.on('error', (err) => {
  console.error(`run-tests: could not run node --test: ${err.message}`);
  process.exit(1);
});
createInterface({ input: child.stdout }).on('line', (line) => {
  process.stdout.write(line + '\n');
  const m = skipLine.exec(line);
  // tests left out by --test-name-pattern are reported as skips too: that is asked for, not a skip
  if (m && m[2] !== 'test name does not match pattern') skipped.push({ name: m[1], reason: m[2] || '(no reason given)' });
});
child.on('close', (code) => {
  if (skipped.length > 0) {
    console.log(`# ${skipped.length} skipped test(s):`);
    for (const s of skipped) console.log(`#   ${s.name}: ${s.reason}`);
  }
  if (inCI && skipped.length > 0) {
    console.error(`run-tests: ${skipped.length} test(s) skipped under CI=true; a skip under CI is a failure`);
    process.exit(1);
  }
  process.exit(code ?? 1);
});
