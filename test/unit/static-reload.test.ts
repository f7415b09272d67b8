/**
 * The static peers file under pressure: overlapping peers resolved by name, SIGHUP bursts merged
 * into one reload, and a file rewritten faster than the debounce still applied every second.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { StaticPeersSource, resolveOverlaps } from '../../src/control/static-file.js';
import type { Peer } from '../../src/dataplane/types.js';
import { createLogger } from '../../src/log.js';

const entry = (name: string, subnet: string, last: number) =>
  ({ name, subnet, publicIP: `198.18.0.${last}`, vtepMAC: `0a:58:c6:12:00:${last.toString(16).padStart(2, '0')}` });

function tmp(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'ul-reload-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function capture(): { log: ReturnType<typeof createLogger>; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  return { log: createLogger('debug', (l) => lines.push(JSON.parse(l) as Record<string, unknown>)), lines };
}

test('overlapping peers: the smaller name keeps its subnets, whatever the file order', () => {
  const peer = (name: string, subnets: string[]): Peer => ({ name, subnets, publicIP: '198.18.0.9' });
  const sets: Peer[][] = [
    [peer('b-wide', ['198.19.0.0/16']), peer('a-narrow', ['198.19.2.0/24']), peer('c', ['198.20.0.0/24'])],
    [peer('c', ['198.20.0.0/24']), peer('a-narrow', ['198.19.2.0/24']), peer('b-wide', ['198.19.0.0/16'])],
  ];
  for (const peers of sets) {
    const r = resolveOverlaps(peers);
    assert.deepEqual(r.peers.map((p) => p.name).sort(), ['a-narrow', 'c']);
    assert.equal(r.skipped.length, 1);
    assert.equal(r.skipped[0]!.name, 'b-wide');
    assert.match(r.skipped[0]!.reason, /198\.19\.0\.0\/16 overlaps 198\.19\.2\.0\/24 of peer "a-narrow"/);
  }
  // a loser does not knock out a third peer it alone overlaps: c2 stays
  const chain = resolveOverlaps([peer('a', ['198.19.1.0/24']), peer('b', ['198.19.0.0/22']), peer('c2', ['198.19.2.0/24'])]);
  assert.deepEqual(chain.peers.map((p) => p.name), ['a', 'c2']);
});

test('load(): an overlapping peer is skipped with a warning naming both', (t) => {
  const dir = tmp(t);
  const file = path.join(dir, 'peers.json');
  writeFileSync(file, JSON.stringify([entry('n3', '198.19.2.0/23', 3), entry('n2', '198.19.2.0/24', 2)]));
  const { log, lines } = capture();
  const peers = new StaticPeersSource(file, { backend: 'vxlan' }, log).load();
  assert.deepEqual(peers.map((p) => p.name), ['n2']);
  const warn = lines.find((l) => l.msg === 'peer skipped: its subnets overlap another peer\'s');
  assert.equal(warn?.peer, 'n3');
  assert.match(String(warn?.reason), /"n2"/);
});

test('requestReload(): a burst of requests is one reload', async (t) => {
  const dir = tmp(t);
  const file = path.join(dir, 'peers.json');
  writeFileSync(file, JSON.stringify([entry('n2', '198.19.2.0/24', 2)]));
  const source = new StaticPeersSource(file, { backend: 'vxlan' }, capture().log);
  const applied: Peer[][] = [];
  source.start((p) => applied.push(p));
  t.after(() => source.stop());
  writeFileSync(file, JSON.stringify([entry('n3', '198.19.3.0/24', 3)]));
  const before = source.reloads;
  for (let i = 0; i < 4000; i++) source.requestReload();
  // the reload runs after this turn of the event loop: wait for exactly that turn
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
  assert.equal(source.reloads - before, 1, '4,000 requests, one reload');
  assert.deepEqual(applied.at(-1)?.map((p) => p.name), ['n3']);
});

test('watch: a file rewritten faster than the debounce is still applied while the writes go on', async (t) => {
  const dir = tmp(t);
  const file = path.join(dir, 'peers.json');
  writeFileSync(file, JSON.stringify([entry('n2', '198.19.2.0/24', 2)]));
  const source = new StaticPeersSource(file, { backend: 'vxlan', debounceMs: 200, maxWaitMs: 500 }, capture().log);
  const applied: string[] = [];
  let version = 0;
  source.start((p) => applied.push(p[0]!.name));
  t.after(() => source.stop());
  // rewrite every 50 ms (well inside the 200 ms debounce) until an update has been applied;
  // without a maximum wait nothing would be applied until the writes stop
  while (applied.length === 0 && version < 200) {
    version++;
    writeFileSync(file, JSON.stringify([entry(`v${version}`, '198.19.2.0/24', 2)]));
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(applied.length > 0, `applied while rewriting (${version} writes)`);
  assert.ok(version < 200, 'applied before the writes stopped');
});
