/**
 * The CNI shim (native/build-cni/userlay) against an in-process agent endpoint on a unix
 * socket in a temp dir (no privileges): VERSION without the agent, relaying answers and exit
 * codes, error 50 when the agent is not there, DEL queued then replayed by the endpoint.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { silentLogger } from '../../src/log.js';
import { shimPath } from '../../src/cli/lab/cni-runtime.js';
import { decodeRequest } from '../../src/cni/protocol.js';
import { startCniServer } from '../../src/cni/server.js';
import { SUPPORTED_VERSIONS } from '../../src/cni/version.js';

const built = existsSync(shimPath());
if (!built && process.env['CI']) throw new Error(`${shimPath()} is not built (make -C native cni)`);
const skip = built ? false : `${shimPath()} not built: run "make -C native cni"`;

function shim(env: Record<string, string>, config: unknown): Promise<{ code: number; stdout: string; json: any }> {
  return new Promise((resolve) => {
    const child = execFile(shimPath(), [], { env }, (err, stdout) => {
      let json: unknown;
      try { json = stdout.trim() ? JSON.parse(stdout) : undefined; } catch { json = undefined; }
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, json });
    });
    child.stdin!.end(typeof config === 'string' ? config : JSON.stringify(config));
  });
}

async function tmp(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'ul-shim-'));
}

test('VERSION is answered by the shim itself, with the plugin\'s versions', { skip }, async () => {
  const r = await shim({ CNI_COMMAND: 'VERSION' }, { cniVersion: '0.4.0' });
  assert.equal(r.code, 0);
  assert.deepEqual(r.json, { cniVersion: '0.4.0', supportedVersions: [...SUPPORTED_VERSIONS] });
});

test('agent not running: ADD and STATUS fail with 50, DEL is queued and succeeds', { skip }, async () => {
  const dir = await tmp();
  try {
    const conf = { cniVersion: '1.1.0', name: 'userlay', type: 'userlay', socket: join(dir, 'none.sock'), stateDir: join(dir, 'state') };
    const env = { CNI_CONTAINERID: 'c1', CNI_IFNAME: 'eth0', CNI_NETNS: '/proc/self/ns/net', CNI_PATH: '/usr/lib/cni' };
    for (const cmd of ['ADD', 'STATUS']) {
      const r = await shim({ ...env, CNI_COMMAND: cmd }, conf);
      assert.equal(r.code, 1);
      assert.equal(r.json.code, 50);
      assert.equal(r.json.cniVersion, '1.1.0');
      assert.match(r.json.msg, /not running/);
    }
    const del = await shim({ ...env, CNI_COMMAND: 'DEL' }, conf);
    assert.equal(del.code, 0);
    assert.equal(del.stdout, '');
    const queued = await readdir(join(dir, 'state', 'queue'));
    assert.equal(queued.length, 1);
    const req = decodeRequest(await readFile(join(dir, 'state', 'queue', queued[0]!)));
    assert.equal(req.env['CNI_COMMAND'], 'DEL');
    assert.equal(req.env['CNI_CONTAINERID'], 'c1');
    assert.deepEqual(JSON.parse(req.config.toString()), conf);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the shim relays the agent\'s answer and exit code; the endpoint replays the DEL queue at start', { skip }, async () => {
  const dir = await tmp();
  const socket = join(dir, 'cni.sock');
  const stateDir = join(dir, 'state');
  const conf = { cniVersion: '1.0.0', name: 'userlay', type: 'userlay', socket, stateDir };
  const env = { CNI_CONTAINERID: 'c1', CNI_IFNAME: 'eth0', CNI_PATH: join(dir, 'no-plugins') };
  try {
    assert.equal((await shim({ ...env, CNI_COMMAND: 'DEL' }, conf)).code, 0);
    assert.equal((await readdir(join(stateDir, 'queue'))).length, 1);
    const server = await startCniServer({ socket, stateDir, log: silentLogger, network: () => ({ unavailable: 'test says so' }) });
    try {
      assert.deepEqual(await readdir(join(stateDir, 'queue')), [], 'the queued DEL was replayed before listening');
      const status = await shim({ ...env, CNI_COMMAND: 'STATUS' }, conf);
      assert.equal(status.code, 1);
      assert.equal(status.json.code, 50);
      assert.match(status.json.msg, /not ready: test says so/);
      // truncated after "socket": the shim still finds the agent, which reports the decode error
      const bad = await shim({ ...env, CNI_COMMAND: 'ADD', CNI_NETNS: '/x' }, `{"cniVersion": "1.0.0", "socket": ${JSON.stringify(socket)}, "name":`);
      assert.equal(bad.json.code, 6);
      const del = await shim({ ...env, CNI_COMMAND: 'DEL' }, conf);
      assert.deepEqual([del.code, del.stdout], [0, '']);
    } finally {
      await server.close();
    }
    assert.equal(existsSync(socket), false, 'close removes the socket');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the endpoint answers a request that is not the shim\'s with error 6 instead of dropping it', async () => {
  const dir = await tmp();
  const socket = join(dir, 'cni.sock');
  const server = await startCniServer({ socket, stateDir: join(dir, 'state'), log: silentLogger, network: () => ({ unavailable: 'x' }) });
  try {
    const answer = await new Promise<string>((resolve, reject) => {
      const sock = net.connect(socket, () => sock.end('GET / HTTP/1.0\r\n\r\n'));
      let data = '';
      sock.setEncoding('utf8').on('data', (d: string) => { data += d; });
      sock.on('end', () => resolve(data));
      sock.on('error', reject);
    });
    const [code, body] = [answer.slice(0, answer.indexOf('\n')), answer.slice(answer.indexOf('\n') + 1)];
    assert.equal(code, '1');
    assert.equal(JSON.parse(body).code, 6);
  } finally {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
});
