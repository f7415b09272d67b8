// The agent's API credentials: client-node's KubeConfig runs in the credential helper (a child
// process), the agent reuses its answer for a while and drops it on a 401, and the agent's own
// modules never import client-node (credentials.ts says why).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserlayError, usageError } from '../../src/errors.js';
import { createNodeApi } from '../../src/control/kube/client.js';
import { decodeRequestAuth, encodeRequestAuth, helperCredentials, HELPER_USAGE_EXIT, type KubeCredentials, type KubeRequestAuth } from '../../src/control/kube/credentials.js';
import { FakeApiServer } from '../support/fake-apiserver.js';

test('encodeRequestAuth/decodeRequestAuth: TLS material as Buffers, headers, flags; the agent object is left out', () => {
  const auth: KubeRequestAuth = {
    server: 'https://198.18.0.1:6443/prefix',
    options: {
      ca: Buffer.from('-----BEGIN CERTIFICATE-----\nca\n'), cert: Buffer.from([0, 1, 2, 255]), key: 'key text',
      rejectUnauthorized: false, servername: 'kubernetes', headers: { Authorization: 'Bearer t0k', 'Impersonate-User': 'u' },
      auth: 'user:pw', agent: false,
    },
    proxyUrl: 'http://198.18.0.9:3128',
  };
  const back = decodeRequestAuth(encodeRequestAuth(auth));
  assert.equal(back.server, auth.server);
  assert.equal(back.proxyUrl, auth.proxyUrl);
  assert.deepEqual(back.options.ca, auth.options.ca);
  assert.deepEqual(back.options.cert, auth.options.cert);
  assert.equal(back.options.key, 'key text');
  assert.equal(back.options.rejectUnauthorized, false);
  assert.equal(back.options.servername, 'kubernetes');
  assert.deepEqual(back.options.headers, auth.options.headers);
  assert.equal(back.options.auth, 'user:pw');
  assert.equal('agent' in back.options, false);
  assert.throws(() => decodeRequestAuth('oops'), (err: unknown) => err instanceof UserlayError && err.code === 'EKUBECONFIG');
  assert.throws(() => decodeRequestAuth('{"options":{}}'), (err: unknown) => err instanceof UserlayError && err.code === 'EKUBECONFIG');
});

test('helperCredentials: one run at a time, the answer reused for maxAgeMs, dropped by invalidate()', async () => {
  let t = 0;
  const runs: string[][] = [];
  const creds = helperCredentials({
    kubeconfig: '/k', maxAgeMs: 60_000, now: () => t,
    run: async (args) => {
      runs.push([...args]);
      return encodeRequestAuth({ server: `http://198.18.0.1:${runs.length}`, options: { headers: { Authorization: `Bearer ${runs.length}` } } });
    },
  });
  const [a, b] = await Promise.all([creds.get(), creds.get()]);
  assert.equal(runs.length, 1, 'concurrent gets share one helper run');
  assert.deepEqual(runs[0], ['--kubeconfig', '/k']);
  assert.equal(a.server, 'http://198.18.0.1:1');
  assert.equal(b, a);
  t = 59_999;
  assert.equal((await creds.get()).server, 'http://198.18.0.1:1');
  t = 60_000;
  assert.equal((await creds.get()).server, 'http://198.18.0.1:2', 'refreshed after maxAgeMs');
  creds.invalidate();
  assert.equal((await creds.get()).server, 'http://198.18.0.1:3', 'refreshed after invalidate');
  assert.equal(runs.length, 3);
});

test('the real helper: a kubeconfig file gives its server and options; a missing file is a usage error', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ul-creds-'));
  try {
    const path = join(dir, 'kubeconfig');
    await writeFile(path, JSON.stringify({
      apiVersion: 'v1', kind: 'Config', 'current-context': 'c',
      clusters: [{ name: 'c', cluster: { server: 'https://198.18.0.1:6443', 'certificate-authority-data': Buffer.from('CA PEM').toString('base64'), 'tls-server-name': 'kubernetes' } }],
      users: [{ name: 'u', user: { token: 's3cret' } }],
      contexts: [{ name: 'c', context: { cluster: 'c', user: 'u' } }],
    }));
    const auth = await helperCredentials({ kubeconfig: path }).get();
    assert.equal(auth.server, 'https://198.18.0.1:6443');
    assert.equal(Buffer.from(auth.options.ca as Buffer).toString(), 'CA PEM');
    assert.equal(auth.options.servername, 'kubernetes');
    assert.equal((auth.options.headers as Record<string, string>).Authorization, 'Bearer s3cret');
    await assert.rejects(helperCredentials({ kubeconfig: join(dir, 'missing') }).get(),
      (err: unknown) => err instanceof UserlayError && err.code === 'EUSAGE' && err.field === '--kubeconfig' && /missing/.test(err.message));
    assert.equal(HELPER_USAGE_EXIT, 2);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('createNodeApi over credentials: get and merge-patch reach the server; 404 keeps its status; 401 invalidates', async () => {
  const api = await FakeApiServer.create();
  let invalidated = 0;
  try {
    api.upsertNode({ metadata: { name: 'n1', annotations: { a: 'b' } }, status: { conditions: [{ type: 'Ready', status: 'True' }] } });
      const creds: KubeCredentials = { get: async () => ({ server: api.url, options: {} }), invalidate: () => { invalidated++; } };
    const nodes = createNodeApi(creds);
    const n1 = await nodes.getNode('n1');
    assert.equal(n1.metadata?.annotations?.a, 'b');
    const patched = await nodes.patchNodeStatus('n1', { metadata: { annotations: { c: 'd' } } });
    assert.deepEqual(patched.metadata?.annotations, { a: 'b', c: 'd' });
    assert.equal((api.getNode('n1')!.metadata as unknown as { annotations: Record<string, string> }).annotations.c, 'd');
    await assert.rejects(nodes.getNode('nope'), (err: unknown) => err instanceof UserlayError && err.code === 'EHTTP404'
      && (err as UserlayError & { statusCode: number }).statusCode === 404 && /^get node nope: HTTP 404/.test(err.message));
    assert.equal(invalidated, 0);
    // after start, a kubeconfig that no longer loads fails the request, it is no usage error (no exit 2)
    const gone = createNodeApi({ get: async () => { throw usageError('--kubeconfig', 'cannot load /k: ENOENT'); }, invalidate: () => {} });
    await assert.rejects(gone.getNode('n1'), (err: unknown) => err instanceof UserlayError && err.code === 'EKUBECONFIG' && /^get node n1: --kubeconfig: cannot load/.test(err.message));
  } finally {
    await api.stop();
  }
  const refusing = createServer((_req, res) => {
    res.writeHead(401, { 'Content-Type': 'application/json' }).end(JSON.stringify({ kind: 'Status', message: 'Unauthorized', code: 401 }));
  });
  await new Promise<void>((ok) => refusing.listen(0, '127.0.0.1', ok));
  try {
    const url = `http://127.0.0.1:${(refusing.address() as AddressInfo).port}`;
    const denied = createNodeApi({ get: async () => ({ server: url, options: {} }), invalidate: () => { invalidated++; } });
    await assert.rejects(denied.getNode('n1'), (err: unknown) => err instanceof UserlayError && err.code === 'EHTTP401' && /Unauthorized/.test(err.message));
    assert.equal(invalidated, 1, 'a 401 drops the credentials');
  } finally {
    refusing.close();
  }
});

test("the agent's static imports never reach @kubernetes/client-node (only the credential helper loads it)", async () => {
  const dist = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');
  const seen = new Set<string>();
  const reached: string[] = [];
  const visit = async (file: string): Promise<void> => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = await readFile(file, 'utf8');
    for (const m of text.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s+'([^']+)'|^\s*import\s+'([^']+)'/gm)) {
      const spec = m[1] ?? m[2]!;
      if (spec.startsWith('.')) await visit(resolve(dirname(file), spec));
      else if (spec.startsWith('@kubernetes/')) reached.push(`${file}: ${spec}`);
    }
  };
  await visit(join(dist, 'cli/main.js'));
  await visit(join(dist, 'agent/kube-mode.js'));
  assert.ok(seen.has(join(dist, 'control/kube/client.js')) && seen.has(join(dist, 'control/kube/http.js')), 'the walk saw the kube modules');
  assert.deepEqual(reached, []);
  const helper = await readFile(join(dist, 'control/kube/kubeconfig.js'), 'utf8');
  assert.match(helper, /from '@kubernetes\/client-node'/, 'the walk would see a client-node import');
});
