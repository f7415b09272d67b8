/**
 * `userlay agent` static mode, bad input: the real CLI as a child process.
 * Every case must fail before any privileged step (one stderr line naming the
 * field, exit code 2), so these run unprivileged; as root, the no-permission
 * case drops to uid 65534 to see the /dev/net/tun refusal.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const bin = path.join(root, 'bin/userlay.js');
const dir = mkdtempSync(path.join(tmpdir(), 'ul-agent-cli-'));
chmodSync(dir, 0o755);
const file = (name: string, text: string): string => {
  const p = path.join(dir, name);
  writeFileSync(p, text, { mode: 0o644 });
  return p;
};
const goodPeers = file('peers.json', JSON.stringify([{ name: 'n2', subnet: '198.19.2.0/24', publicIP: '198.18.0.2', vtepMAC: '0a:58:c6:12:00:02' }]));
test.after(() => rmSync(dir, { recursive: true, force: true }));

function run(args: string[], opts: { uid?: number; gid?: number } = {}): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, KUBERNETES_SERVICE_HOST: '' }, ...opts });
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

async function expectUsage(args: string[], field: string, detail?: RegExp, opts?: { uid?: number; gid?: number }): Promise<void> {
  const { code, stderr } = await run(args, opts);
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
  ['two peers, one subnet', argv({ '--peers': file('dup.json', JSON.stringify([
    { name: 'n2', subnet: '198.19.2.0/24', publicIP: '198.18.0.2', vtepMAC: '0a:58:c6:12:00:02' },
    { name: 'n3', subnet: '198.19.2.0/24', publicIP: '198.18.0.3', vtepMAC: '0a:58:c6:12:00:03' }])) }), '--peers', /"n2".*"n3"/],
  ['peer claims our subnet', argv({ '--peers': file('own.json', JSON.stringify([
    { name: 'n2', subnet: '198.19.1.0/24', publicIP: '198.18.0.2', vtepMAC: '0a:58:c6:12:00:02' }])) }), '--peers', /own subnet/],
];

for (const [name, args, field, detail] of cases) {
  test(`agent rejects: ${name}`, () => expectUsage(args, field, detail));
}

test('agent rejects: UDP port in use (fails before the TUN is touched)', async () => {
  for (const engine of ['native', 'js']) {
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind({ address: '127.0.0.1', port: 0, exclusive: true }, r));
    try {
      const port = String(sock.address().port);
      const { code, stderr } = await run(argv({ '--public-ip': '127.0.0.1' }, ['--mtu', '1400', '--port', port, '--engine', engine, '--tun', `ulC${process.pid}`]));
      if (!process.env.CI && /native addon/.test(stderr)) return; // addon not built: nothing to test here
      assert.equal(code, 2, stderr);
      assert.match(stderr.trim(), new RegExp(`^userlay: --port: .*${port}.*port in use`));
    } finally {
      sock.close();
    }
  }
});

test('agent rejects: no permission for /dev/net/tun', {
  skip: process.getuid?.() === 0 ? false : 'needs root to run the agent as another user (uid 65534)',
}, async () => {
  const port = String(40000 + (process.pid % 20000));
  const { code, stderr } = await run(argv({ '--public-ip': '127.0.0.1' }, ['--mtu', '1400', '--port', port, '--tun', `ulP${process.pid}`]), { uid: 65534, gid: 65534 });
  if (!process.env.CI && /native addon/.test(stderr)) return;
  assert.equal(code, 2, stderr);
  assert.match(stderr.trim(), /^userlay: --tun: .*\/dev\/net\/tun.*needs CAP_NET_ADMIN/);
});

test('unknown command: usage and exit 2', async () => {
  const { code, stderr } = await run(['frobnicate']);
  assert.equal(code, 2);
  assert.match(stderr, /^userlay: unknown command "frobnicate"/);
  assert.match(stderr, /agent/);
});
