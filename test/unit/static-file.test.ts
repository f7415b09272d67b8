/** The static peers file source (src/control/static-file.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { StaticPeersSource, parsePeers } from '../../src/control/static-file.js';
import type { Peer } from '../../src/dataplane/types.js';
import { UserlayError } from '../../src/errors.js';
import { createLogger } from '../../src/log.js';

const n2 = { name: 'n2', subnet: '198.19.2.0/24', publicIP: '198.18.0.2', vtepMAC: '0a:58:c6:12:00:02' };
const n3 = { name: 'n3', subnet: '198.19.3.0/24', publicIP: '198.18.0.3', vtepMAC: '0a:58:c6:12:00:03' };

function tmp(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'ul-peers-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function capture(): { log: ReturnType<typeof createLogger>; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  return { log: createLogger('debug', (l) => lines.push(JSON.parse(l) as Record<string, unknown>)), lines };
}

function waitFor(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      if (cond()) resolve();
      else if (Date.now() > end) reject(new Error('timed out'));
      else setTimeout(tick, 20);
    };
    tick();
  });
}

test('valid file: both subnet forms, canonical values', () => {
  const peers = parsePeers([
    { ...n2, vtepMAC: '0A-58-C6-12-00-02' },
    { name: 'n3', subnets: ['198.19.3.0/24', '2001:0002:0:1A3::/64'], publicIP: '198.18.0.3', vtepMAC: n3.vtepMAC, port: 9000, vni: 7 },
  ], 'vxlan');
  assert.deepEqual(peers, [
    { name: 'n2', subnets: ['198.19.2.0/24'], publicIP: '198.18.0.2', vtepMAC: '0a:58:c6:12:00:02' },
    { name: 'n3', subnets: ['198.19.3.0/24', '2001:2:0:1a3::/64'], publicIP: '198.18.0.3', vtepMAC: '0a:58:c6:12:00:03', port: 9000, vni: 7 },
  ]);
  assert.deepEqual(parsePeers([], 'vxlan'), []);
  const { vtepMAC: _unused, ...noMac } = n2;
  assert.equal(parsePeers([noMac], 'udp')[0]!.vtepMAC, undefined);
});

test('malformed entries: each error names the index and the field', () => {
  const cases: Array<[unknown, string]> = [
    [{ peers: [] }, 'peers:'],
    [[n2, 'x'], 'peers[1]:'],
    [[n2, { ...n3, name: '' }], 'peers[1].name:'],
    [[n2, { ...n3, name: 'n2' }], 'peers[1].name:'],
    [[n2, { ...n3, subnet: '198.19.3.0/33' }], 'peers[1].subnet:'],
    [[n2, { ...n3, subnet: '198.19.3.1/24' }], 'peers[1].subnet:'],
    [[n2, { ...n3, subnet: undefined }], 'peers[1].subnet:'],
    [[{ ...n2, subnet: undefined, subnets: ['198.19.2.0/24', 'nope'] }], 'peers[0].subnets[1]:'],
    [[{ ...n2, subnets: [] }], 'peers[0].subnet:'],
    [[n2, n3, { ...n3, name: 'n4', publicIP: '198.18.0.256' }], 'peers[2].publicIP:'],
    [[n2, n3, { ...n3, name: 'n4', vtepMAC: '0a:58:c6:12:00' }], 'peers[2].vtepMAC:'],
    [[n2, n3, { ...n3, name: 'n4', vtepMAC: undefined }], 'peers[2].vtepMAC:'],
    [[{ ...n2, port: 0 }], 'peers[0].port:'],
    [[{ ...n2, vni: 'one' }], 'peers[0].vni:'],
    [[{ ...n2, publicIp: '198.18.0.9' }], 'peers[0].publicIp:'],
  ];
  for (const [doc, field] of cases) {
    assert.throws(() => parsePeers(JSON.parse(JSON.stringify(doc)), 'vxlan'),
      (err: unknown) => err instanceof UserlayError && err.message.startsWith(field), field);
  }
});

test('load(): unreadable or invalid file is a usage error naming flag and file', (t) => {
  const dir = tmp(t);
  const file = path.join(dir, 'peers.json');
  const src = new StaticPeersSource(file, { backend: 'vxlan' }, createLogger('error', () => {}));
  assert.throws(() => src.load(), (err: unknown) => err instanceof UserlayError && err.code === 'EUSAGE' && err.message.startsWith(`--peers: cannot read ${file}`));
  writeFileSync(file, '[{"name": "n2",');
  assert.throws(() => src.load(), (err: unknown) => err instanceof UserlayError && err.message.startsWith(`--peers: ${file}: not valid JSON`));
  writeFileSync(file, JSON.stringify([{ ...n2, vtepMAC: 'bad' }]));
  assert.throws(() => src.load(), (err: unknown) => err instanceof UserlayError && err.message.startsWith(`--peers: ${file}: peers[0].vtepMAC:`));
  writeFileSync(file, JSON.stringify([n2]));
  assert.equal(src.load()[0]!.name, 'n2');
});

test('watch: a rename-replace applies; a bad update is rejected and the last good set stays', async (t) => {
  const dir = tmp(t);
  const file = path.join(dir, 'peers.json');
  writeFileSync(file, JSON.stringify([n2]));
  const { log, lines } = capture();
  const src = new StaticPeersSource(file, { backend: 'vxlan', debounceMs: 30 }, log);
  t.after(() => src.stop());
  const applied: Peer[][] = [];
  src.start((p) => applied.push(p));

  // replace atomically, as tools and editors do
  writeFileSync(path.join(dir, 'peers.json.tmp'), JSON.stringify([n2, n3]));
  renameSync(path.join(dir, 'peers.json.tmp'), file);
  await waitFor(() => applied.length === 1);
  assert.deepEqual(applied[0]!.map((p) => p.name), ['n2', 'n3']);

  // a broken update: logged, nothing applied
  writeFileSync(file, JSON.stringify([n2, { ...n3, subnet: 'garbage' }]));
  await waitFor(() => lines.some((l) => l.level === 'warn' && String(l.err).includes('peers[1].subnet')));
  assert.equal(applied.length, 1);

  // the consumer refuses an update (e.g. EFDB): still the last good set
  let refuse = true;
  const refusing = new StaticPeersSource(file, { backend: 'vxlan', debounceMs: 30 }, log);
  t.after(() => refusing.stop());
  const got: string[][] = [];
  refusing.start((p) => {
    if (refuse) throw new UserlayError('EFDB', 'refused');
    got.push(p.map((x) => x.name));
  });
  writeFileSync(file, JSON.stringify([n3]));
  await waitFor(() => applied.length === 2);
  assert.deepEqual(applied[1]!.map((p) => p.name), ['n3']);
  await waitFor(() => lines.some((l) => l.err === 'refused'));
  assert.deepEqual(got, []);
  // reload() (SIGHUP) retries the same content once the consumer accepts it
  refuse = false;
  refusing.reload();
  assert.deepEqual(got, [['n3']]);
  refusing.reload();
  assert.deepEqual(got, [['n3']], 'an unchanged file is not re-applied');
});

test('stop() ends watching', async (t) => {
  const dir = tmp(t);
  const file = path.join(dir, 'peers.json');
  writeFileSync(file, JSON.stringify([n2]));
  const src = new StaticPeersSource(file, { backend: 'vxlan', debounceMs: 10 }, createLogger('error', () => {}));
  const applied: Peer[][] = [];
  src.start((p) => applied.push(p));
  src.stop();
  src.stop();
  // A witness watching the same directory, started after `src` and with a longer
  // debounce: the file events reach both watchers in the same loop iteration, in
  // start order, so once the witness has applied the change, a still-watching
  // `src` would have applied it earlier.
  const witness = new StaticPeersSource(file, { backend: 'vxlan', debounceMs: 50 }, createLogger('error', () => {}));
  t.after(() => witness.stop());
  const seen: Peer[][] = [];
  witness.start((p) => seen.push(p));
  writeFileSync(file, JSON.stringify([n2, n3]));
  await waitFor(() => seen.length === 1);
  assert.deepEqual(seen[0]!.map((p) => p.name), ['n2', 'n3']);
  assert.equal(applied.length, 0, 'a stopped source applied a change');
});
