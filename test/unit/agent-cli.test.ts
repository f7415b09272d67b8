/**
 * `userlay agent` static mode, bad input: the real CLI as a child process.
 * Every case must fail before any privileged step (one stderr line naming the
 * field, exit code 2), so these run unprivileged. The no-permission case
 * runs the agent without CAP_NET_ADMIN: as root it keeps the uid (the
 * checkout may be readable by root only, e.g. under /root) and drops the
 * capability from the bounding and inheritable sets with setpriv(1)
 * (util-linux); not root, the test user has no CAP_NET_ADMIN anyway.
 * The cases that reach the data plane need the native addon: without it
 * they skip with the reason (a failure under CI, see test/support/addon.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { skipNoAddon } from '../support/addon.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const bin = path.join(root, 'bin/userlay.js');
const dir = mkdtempSync(path.join(tmpdir(), 'ul-agent-cli-'));
const file = (name: string, text: string): string => {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
};
const goodPeers = file('peers.json', JSON.stringify([{ name: 'n2', subnet: '198.19.2.0/24', publicIP: '198.18.0.2', vtepMAC: '0a:58:c6:12:00:02' }]));
test.after(() => rmSync(dir, { recursive: true, force: true }));

/** Bit of CAP_NET_ADMIN in the /proc/PID/status capability masks. */
const CAP_NET_ADMIN_BIT = 1n << 12n;

/** The agent's argv prefix that runs it without CAP_NET_ADMIN (same uid). */
function withoutNetAdmin(): string[] {
  if (process.getuid?.() !== 0) return [];
  return ['setpriv', '--inh-caps=-net_admin', '--bounding-set=-net_admin', '--'];
}

function run(args: string[], opts: { prefix?: string[] } = {}): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const argv = [...(opts.prefix ?? []), process.execPath, bin, ...args];
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, KUBERNETES_SERVICE_HOST: '' } });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 15000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

const base: Record<string, string> = {
  '--node': 'n1', '--public-ip': '198.18.0.1', '--subnet': '198.19.1.0/24', '--network': '198.19.0.0/16', '--peers': goodPeers,
};
function argv(over: Record<string, string | undefined>, extra: string[] = []): string[] {
  const all = { ...base, ...over };
  return ['agent', ...Object.entries(all).flatMap(([k, v]) => (v === undefined ? [] : [k, v])), ...extra];
}

async function expectUsage(args: string[], field: string, detail?: RegExp): Promise<void> {
  const { code, stderr } = await run(args);
  const lines = stderr.trimEnd().split('\n');
  assert.equal(code, 2, `exit code for ${args.join(' ')}: ${stderr}`);
  assert.equal(lines.length, 1, `one line expected, got: ${stderr}`);
  assert.ok(lines[0]!.startsWith(`userlay: ${field}: `), `"${lines[0]}" should name ${field}`);
  if (detail) assert.match(lines[0]!, detail);
}

const cases: Array<[string, string[], string, RegExp?]> = [
  ['unknown flag', argv({}, ['--bogus', '1']), '--bogus', /unknown flag/],
  ['flag without value', [...argv({ '--peers': undefined }), '--peers'], '--peers', /missing value/],
  ['missing required flag', argv({ '--node': undefined }), '--node', /required/],
  ['bad own subnet CIDR', argv({ '--subnet': '198.19.1.0/33' }), '--subnet', /prefix length/],
  ['own subnet with host bits', argv({ '--subnet': '198.19.1.7/24' }), '--subnet', /host bits/],
  ['bad network CIDR', argv({ '--network': 'bogus' }), '--network'],
  ['bad public IP', argv({ '--public-ip': '198.18.0.01' }), '--public-ip', /leading zero/],
  ['bad VTEP MAC', argv({}, ['--vtep-mac', '0a:58:c6:12:00']), '--vtep-mac'],
  ['subnet outside the network', argv({ '--subnet': '198.18.5.0/24' }), '--subnet', /not inside/],
  ['bad backend', argv({}, ['--backend', 'gre']), '--backend'],
  ['bad engine', argv({}, ['--engine', 'turbo']), '--engine'],
  ['bad offloads', argv({}, ['--offloads', 'on']), '--offloads', /auto, off/],
  ['bad port', argv({}, ['--port', '70000']), '--port'],
  ['bad vni', argv({}, ['--vni', 'x']), '--vni'],
  ['bad mtu', argv({}, ['--mtu', 'big']), '--mtu'],
  ['bad log level', argv({}, ['--log-level', 'loud']), '--log-level'],
  ['log level named like an Object method', argv({}, ['--log-level', 'toString']), '--log-level'],
  ['bad status address', argv({}, ['--status-addr', '127.0.0.1:70000']), '--status-addr'],
  ['bad tun name', argv({}, ['--tun', 'a-much-too-long-name']), '--tun'],
  ['missing peers file', argv({ '--peers': path.join(dir, 'absent.json') }), '--peers', /cannot read/],
  ['peers file not JSON', argv({ '--peers': file('broken.json', '[{"name":') }), '--peers', /not valid JSON/],
  ['peers entry without MAC', argv({ '--peers': file('nomac.json', JSON.stringify([{ name: 'n2', subnet: '198.19.2.0/24', publicIP: '198.18.0.2' }])) }),
    '--peers', /peers\[0\]\.vtepMAC/],
  ['peers entry bad IP', argv({ '--peers': file('badip.json', JSON.stringify([{ name: 'n2', subnet: '198.19.2.0/24', publicIP: 'x', vtepMAC: '0a:58:c6:12:00:02' }])) }),
    '--peers', /peers\[0\]\.publicIP/],
  ['two peers, one underlay IP', argv({ '--peers': file('dup.json', JSON.stringify([
    { name: 'n2', subnet: '198.19.2.0/24', publicIP: '198.18.0.2', vtepMAC: '0a:58:c6:12:00:02' },
    { name: 'n3', subnet: '198.19.3.0/24', publicIP: '198.18.0.2', vtepMAC: '0a:58:c6:12:00:03' }])) }), '--peers', /"n2".*"n3"/],
  ['peer claims our subnet', argv({ '--peers': file('own.json', JSON.stringify([
    { name: 'n2', subnet: '198.19.1.0/24', publicIP: '198.18.0.2', vtepMAC: '0a:58:c6:12:00:02' }])) }), '--peers', /own subnet/],
  ['peer subnet around our own (anti-spoofing)', argv({ '--peers': file('wide.json', JSON.stringify([
    { name: 'n2', subnet: '198.19.0.0/23', publicIP: '198.18.0.2', vtepMAC: '0a:58:c6:12:00:02' }])) }), '--peers', /"n2" subnet 198\.19\.0\.0\/23 overlaps this node's own subnet 198\.19\.1\.0\/24/],
  ['peer subnet outside the network', argv({ '--peers': file('outside.json', JSON.stringify([
    { name: 'n2', subnet: '198.20.2.0/24', publicIP: '198.18.0.2', vtepMAC: '0a:58:c6:12:00:02' }])) }), '--peers', /outside the cluster network/],
  ['peer with our own underlay IP', argv({ '--peers': file('ownip.json', JSON.stringify([
    { name: 'n2', subnet: '198.19.2.0/24', publicIP: '198.18.0.1', vtepMAC: '0a:58:c6:12:00:02' }])) }), '--peers', /publicIP 198\.18\.0\.1 is this node's own/],
  ['peer with our own VTEP MAC', argv({ '--peers': file('ownmac.json', JSON.stringify([
    { name: 'n2', subnet: '198.19.2.0/24', publicIP: '198.18.0.2', vtepMAC: '0a:58:c6:12:00:01' }])) }, ['--vtep-mac', '0a:58:c6:12:00:01']), '--peers', /vtepMAC 0a:58:c6:12:00:01 is this node's own/],
  ['peer with a multicast VTEP MAC', argv({ '--peers': file('mcmac.json', JSON.stringify([
    { name: 'n2', subnet: '198.19.2.0/24', publicIP: '198.18.0.2', vtepMAC: '01:00:5e:00:00:02' }])) }), '--peers', /multicast/],
  ['--threads 0', argv({}, ['--threads', '0']), '--threads', /0 is outside 1\.\.8/],
  ['--threads 9', argv({}, ['--threads', '9']), '--threads', /9 is outside 1\.\.8/],
  ['--threads 2 with the js engine', argv({}, ['--threads', '2', '--engine', 'js']), '--threads', /2 needs --engine native/],
  ['multicast VTEP MAC', argv({}, ['--vtep-mac', '01:00:5e:00:00:01']), '--vtep-mac', /multicast/],
  ['broadcast VTEP MAC', argv({}, ['--vtep-mac', 'ff:ff:ff:ff:ff:ff']), '--vtep-mac', /broadcast/],
  ['all-zero VTEP MAC', argv({}, ['--vtep-mac', '00:00:00:00:00:00']), '--vtep-mac', /zeros/],
  ['cluster network around the underlay address', argv({ '--network': '198.18.0.0/24', '--subnet': '198.18.0.128/25' }), '--network', /contains the underlay address 198\.18\.0\.1/],
  ['more peers than one data plane holds (checked first)', argv({ '--network': '198.19.1.0/24', '--peers': file('many.json', JSON.stringify(Array.from({ length: 65537 }, (_, i) => ({
    name: `p${i}`, subnet: `2001:2:1:${(i >> 8).toString(16)}:${(i & 0xff).toString(16)}::/80`, publicIP: `198.${18 + ((i + 2) >> 16)}.${((i + 2) >> 8) & 0xff}.${(i + 2) & 0xff}`,
    vtepMAC: `0a:58:00:00:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}` })))) },
  ['--network', '2001:2:1::/48']), '--peers', /too many peers: 65537 > 65536/],
];

for (const [name, args, field, detail] of cases) {
  test(`agent rejects: ${name}`, () => expectUsage(args, field, detail));
}

test('agent rejects: UDP port in use (fails before the TUN is touched)', { skip: skipNoAddon }, async () => {
  for (const engine of ['native', 'js', 'native --threads 2']) {
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind({ address: '127.0.0.1', port: 0, exclusive: true }, r));
    try {
      const port = String(sock.address().port);
      const { code, stderr } = await run(argv({ '--public-ip': '127.0.0.1' }, ['--mtu', '1400', '--port', port, '--engine', ...engine.split(' '), '--tun', `ulC${process.pid}`]));
      assert.equal(code, 2, stderr);
      assert.match(stderr.trim(), new RegExp(`^userlay: --port: .*${port}.*port in use`));
    } finally {
      sock.close();
    }
  }
});

test('the capability drop works: a child run that way has no CAP_NET_ADMIN, and keeps the uid', async () => {
  const prefix = withoutNetAdmin();
  const argv = [...prefix, process.execPath, '-e', 'process.stdout.write(require("fs").readFileSync("/proc/self/status", "utf8"))'];
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
    let text = '';
    child.stdout.on('data', (d: Buffer) => (text += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(text) : reject(new Error(`status probe exited ${code}`))));
  });
  const field = (name: string): string => new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(out)?.[1] ?? '';
  for (const set of ['CapEff', 'CapPrm', 'CapBnd']) {
    assert.equal(BigInt(`0x${field(set)}`) & CAP_NET_ADMIN_BIT, 0n, `${set} ${field(set)} still has CAP_NET_ADMIN`);
  }
  assert.equal(field('Uid').split(/\s+/)[0], String(process.getuid?.()), 'uid kept');
  const mine = /^CapEff:\s*(.*)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '';
  if (process.getuid?.() === 0) assert.notEqual(BigInt(`0x${mine}`) & CAP_NET_ADMIN_BIT, 0n, 'the test runner itself has CAP_NET_ADMIN as root');
});

test('agent rejects: no permission for /dev/net/tun (no CAP_NET_ADMIN)', { skip: skipNoAddon }, async () => {
  const port = String(40000 + (process.pid % 20000));
  const { code, stderr } = await run(argv({ '--public-ip': '127.0.0.1' }, ['--mtu', '1400', '--port', port, '--tun', `ulP${process.pid}`]), { prefix: withoutNetAdmin() });
  assert.equal(code, 2, stderr);
  assert.match(stderr.trim(), /^userlay: --tun: .*\/dev\/net\/tun.*needs CAP_NET_ADMIN/);
});

test('agent rejects: --tun naming an interface that is not a TUN', async () => {
  const port = String(41000 + (process.pid % 20000));
  const { code, stderr } = await run(argv({ '--public-ip': '127.0.0.1' }, ['--mtu', '1400', '--port', port, '--tun', 'lo']));
  if (!process.env.CI && /native addon/.test(stderr)) return;
  assert.equal(code, 2, stderr);
  assert.match(stderr.trim(), /^userlay: --tun: lo exists and is not a TUN device/);
});

test('unknown command: usage and exit 2', async () => {
  const { code, stderr } = await run(['frobnicate']);
  assert.equal(code, 2);
  assert.match(stderr, /^userlay: unknown command "frobnicate"/);
  assert.match(stderr, /agent/);
});
