// What the informer hands the sync: trimmed Nodes, listed in pages and streamed item by
// item (node-stream.ts), and watch events that arrive trimmed too (reflector.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { KubeConfig, type V1Node } from '@kubernetes/client-node';
import { nodeToPeer, trimNode } from '../../src/control/kube/desired-peers.js';
import { makeNodeInformer } from '../../src/control/kube/informer.js';
import { kubeGetFor, type KubeGet } from '../../src/control/kube/http.js';
import { NodeReflector } from '../../src/control/kube/reflector.js';
import { LineSplitter, ListSplitter } from '../../src/control/kube/node-stream.js';
import { FakeApiServer, type KubeObject } from '../support/fake-apiserver.js';
import { waitFor } from '../support/fake-apiserver-client.js';
import { cfg, fullNode, mac, P } from '../support/kube-nodes.js';

test('trimNode keeps what sync, lease check and the reflector read, and nothing else', () => {
  const full = fullNode(4);
  full.status!.addresses = [{ type: 'InternalIP', address: '198.18.0.4' }];
  const t = trimNode(full, P);
  assert.deepEqual(t, {
    metadata: {
      name: 'n4', uid: 'uid-4', resourceVersion: '104', creationTimestamp: full.metadata!.creationTimestamp,
      annotations: {
        [`${P}/backend-type`]: 'vxlan', [`${P}/backend-data`]: JSON.stringify({ VNI: 1, VtepMAC: mac(4) }),
        [`${P}/public-ip`]: '198.18.0.4', [`${P}/kube-subnet-manager`]: 'true',
      },
    },
    spec: { podCIDR: '198.19.4.0/24', podCIDRs: ['198.19.4.0/24'] },
    status: { addresses: [{ type: 'InternalIP', address: '198.18.0.4' }] },
  });
  assert.deepEqual(nodeToPeer(t, cfg), nodeToPeer(full, cfg));
  assert.equal(trimNode(full).metadata!.annotations!['node.alpha.kubernetes.io/ttl'], '0', 'no prefix: every annotation kept');
  assert.deepEqual(trimNode({ metadata: { name: 'bare' } }), { metadata: { name: 'bare' } });
});

/** Feed `text` to a ListSplitter in chunks of `size` bytes; returns the items and the rest. */
function split(text: string, size: number): { items: unknown[]; rest: Record<string, unknown>; quick: number } {
  const items: unknown[] = [];
  const s = new ListSplitter((item) => items.push(item), 1);
  const bytes = Buffer.from(text, 'utf8');
  for (let i = 0; i < bytes.length; i += size) s.write(bytes.subarray(i, i + size));
  return { items, rest: s.end(), quick: s.quickItems };
}

test('ListSplitter: items one by one at any chunk boundary; braces, quotes and escapes inside strings', () => {
  const items = [
    { metadata: { name: 'a', annotations: { 'x/y': '{"VNI":1,"VtepMAC":"0a:58"}', tricky: 'ends in a backslash \\', q: 'say "}]"' } } },
    { metadata: { name: 'ü-ñ', labels: { k: '[[{{' } }, status: { images: [{ names: ['r/x@sha256:00'], sizeBytes: 1 }] } },
    { metadata: { name: 'c' }, spec: { podCIDRs: ['198.19.3.0/24'] } },
  ];
  // pretty-printed (every item scanned byte by byte) and compact as kube-apiserver writes it
  // (most items parsed in one go: the fast path), the second item a trap for the fast path
  items.push({ metadata: { name: 'trap', a: [{ x: 1 }, { metadata: { y: '},{"metadata":' } }] } } as never);
  for (const indent of [1, 0]) {
    const body = JSON.stringify({ kind: 'NodeList', apiVersion: 'v1', metadata: { resourceVersion: '42', continue: 'tok' }, items }, null, indent);
    for (const size of [1, 2, 3, 7, 64, body.length]) {
      const r = split(body, size);
      assert.deepEqual(r.items, items, `chunks of ${size}, indent ${indent}`);
      assert.deepEqual(r.rest, { kind: 'NodeList', apiVersion: 'v1', metadata: { resourceVersion: '42', continue: 'tok' }, items: [] }, `chunks of ${size}`);
      // whole body in one chunk, compact: the first three take the fast path; the trap (last, and
      // a false `},{"metadata":` inside it that does not parse) is scanned
      if (size === body.length) assert.equal(r.quick, indent === 0 ? 3 : 0, `fast-path items, indent ${indent}`);
    }
  }
  const body = JSON.stringify({ metadata: {}, items });
  // "items" as a key elsewhere, or as a string value, is not the list
  const odd = JSON.stringify({ metadata: { items: ['not-me'], note: '"items":[' }, items: [{ n: 1 }] });
  assert.deepEqual(split(odd, 5).items, [{ n: 1 }]);
  assert.deepEqual(split('{"kind":"NodeList","metadata":{"resourceVersion":"7"},"items":[]}', 4).items, []);
  assert.throws(() => split(body.slice(0, body.length - 20), 16), /truncated/);
});

test('LineSplitter: one line per event, split anywhere; a last line without newline too', () => {
  const lines: string[] = [];
  const s = new LineSplitter((l) => lines.push(l));
  const text = '{"type":"ADDED"}\n\n{"type":"MODIFIED","object":{"a":"é"}}\n{"type":"BOOKMARK"}';
  const bytes = Buffer.from(text, 'utf8');
  for (let i = 0; i < bytes.length; i += 3) s.write(bytes.subarray(i, i + 3));
  assert.equal(lines.length, 2);
  s.end();
  assert.deepEqual(lines, ['{"type":"ADDED"}', '{"type":"MODIFIED","object":{"a":"é"}}', '{"type":"BOOKMARK"}']);
});

function kubeconfig(api: FakeApiServer): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions(api.kubeconfigOptions());
  return kc;
}

function withIp(i: number, ip: string): KubeObject {
  const n = fullNode(i);
  n.metadata!.annotations![`${P}/public-ip`] = ip;
  delete n.metadata!.resourceVersion;
  return n as unknown as KubeObject;
}

const ipOf = (inf: { list(): V1Node[] }, name: string): string | undefined =>
  inf.list().find((n) => n.metadata!.name === name)?.metadata?.annotations?.[`${P}/public-ip`];

test('reflector against the API server: paged list with the kubeconfig, trimmed items; watch events trimmed', async () => {
  const api = await FakeApiServer.create({ bookmarkIntervalMs: 50 });
  const inf = makeNodeInformer(kubeconfig(api), { annotationPrefix: P, pageSize: 2, timeoutSeconds: 30 });
  let listed = 0;
  const inf2 = makeNodeInformer(kubeconfig(api), { annotationPrefix: P, pageSize: 2, timeoutSeconds: 30, onListed: () => listed++ });
  try {
    api.setNodes([2, 3, 4, 5, 6].map((i) => fullNode(i) as unknown as KubeObject));
    await inf.start();
    const lists = api.requests.filter((r) => r.query.watch !== 'true');
    assert.deepEqual(lists.map((r) => r.query.limit), ['2', '2', '2']);
    assert.equal(lists.filter((r) => r.query.continue !== undefined).length, 2, 'pages 2 and 3 follow the continue token');
    assert.deepEqual(inf.list().map((n) => n.metadata!.name).sort(), ['n2', 'n3', 'n4', 'n5', 'n6']);
    assert.ok(inf.list().every((n) => n.status === undefined && n.metadata!.annotations!['node.alpha.kubernetes.io/ttl'] === undefined));
    assert.equal(typeof inf.list()[0]!.metadata!.creationTimestamp, 'string', 'plain JSON, not client-node models');
    assert.equal(nodeToPeer(inf.list()[0]!, cfg).ok, true, 'a string creationTimestamp works for the sync');
    assert.equal(inf.lastResourceVersion, String(api.store.resourceVersion));

    const seen: V1Node[] = [];
    const gone: string[] = [];
    inf.on('update', (n) => seen.push(n));
    inf.on('delete', (n) => gone.push(n.metadata!.name!));
    api.upsertNode(withIp(3, '198.18.0.33'));
    await waitFor('update event', () => seen.length > 0);
    assert.equal(seen[0]!.metadata?.annotations?.[`${P}/public-ip`], '198.18.0.33');
    assert.equal(seen[0]!.status, undefined, 'watch objects are trimmed too');
    // a write to what the agent does not read (status heartbeat): no event; the next real change is the next event
    const heartbeat = withIp(3, '198.18.0.33');
    heartbeat.status = { conditions: [{ type: 'Ready', status: 'True', lastHeartbeatTime: '2026-12-01T00:00:00Z' }] };
    api.upsertNode(heartbeat);
    const rvHeartbeat = String(api.store.resourceVersion);
    api.upsertNode(withIp(3, '198.18.0.34'));
    await waitFor('second update event', () => seen.length > 1);
    assert.deepEqual(seen.map((n) => n.metadata!.annotations![`${P}/public-ip`]), ['198.18.0.33', '198.18.0.34'], 'the heartbeat fired nothing');
    assert.equal(inf.unchanged, 1);
    assert.ok(Number(seen[1]!.metadata!.resourceVersion) > Number(rvHeartbeat));
    api.deleteNode('n5');
    await waitFor('delete event', () => gone.includes('n5'));
    assert.equal(inf.list().length, 4);
    const watches = api.requests.filter((r) => r.query.watch === 'true');
    assert.ok(watches.every((w) => w.query.allowWatchBookmarks === 'true' && Number(w.query.timeoutSeconds) >= 30));

    // a bookmark moves the resourceVersion the next watch starts from
    await inf2.start();
    assert.equal(listed, 1);
    const rvBefore = inf2.lastResourceVersion;
    api.upsertNode(withIp(6, '198.18.0.66'));
    await waitFor('n6 seen', () => ipOf(inf2, 'n6') === '198.18.0.66');
    assert.notEqual(inf2.lastResourceVersion, rvBefore);
  } finally {
    await inf.stop();
    await inf2.stop();
    await api.stop();
  }
});

test('reflector: a server that ignores limit sends the whole list in one answer', async () => {
  const api = await FakeApiServer.create({ ignoreLimit: true });
  const inf = makeNodeInformer(kubeconfig(api), { annotationPrefix: P, pageSize: 2 });
  try {
    api.setNodes([2, 3, 4, 5, 6].map((i) => fullNode(i) as unknown as KubeObject));
    await inf.start();
    const lists = api.requests.filter((r) => r.query.watch !== 'true');
    assert.equal(lists.length, 1);
    assert.equal(lists[0]!.query.limit, '2', 'asked for a page');
    assert.equal(inf.list().length, 5, 'and took everything it got');
  } finally {
    await inf.stop();
    await api.stop();
  }
});

test('reflector: an expired continue token starts the list over; a failed list reaches the error callbacks', async () => {
  const api = await FakeApiServer.create();
  const real = kubeGetFor(kubeconfig(api));
  let expireOnce = true;
  // between page 1 and page 2 a write lands and the history is compacted: the token is too old
  const get: KubeGet = async (path, opts) => {
    if (path.includes('continue=') && expireOnce) {
      expireOnce = false;
      api.upsertNode(withIp(2, '198.18.0.22'));
      api.compactHistory();
    }
    return real(path, opts);
  };
  const inf = new NodeReflector({ get, annotationPrefix: P, pageSize: 2 });
  const errors: unknown[] = [];
  inf.on('error', (err) => errors.push(err));
  try {
    api.setNodes([2, 3, 4, 5, 6].map((i) => fullNode(i) as unknown as KubeObject));
    await inf.start();
    assert.deepEqual(errors, []);
    const lists = api.requests.filter((r) => r.query.watch !== 'true').map((r) => r.query.continue === undefined ? 'first' : 'next');
    assert.deepEqual(lists, ['first', 'next', 'first', 'next', 'next'], 'page 2 got 410, the list started over');
    assert.equal(inf.list().length, 5);
    assert.equal(ipOf(inf, 'n2'), '198.18.0.22', 'the second list saw the write');
    await inf.stop();

    api.failNextLists(1, 500);
    await inf.start();
    assert.equal((errors[0] as { statusCode?: number }).statusCode, 500, 'a failed list reaches the error callbacks (RestartingInformer restarts)');
    assert.match((errors[0] as Error).message, /^list nodes: HTTP 500: injected failure/);
    await inf.start();
    api.upsertNode(withIp(4, '198.18.0.44'));
    await waitFor('n4 updated after the restart', () => ipOf(inf, 'n4') === '198.18.0.44');
  } finally {
    await inf.stop();
    await api.stop();
  }
});

test('reflector: a list that stalls mid-body is cut after listTimeoutMs and reported', async () => {
  const sockets = new Set<import('node:net').Socket>();
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"kind":"NodeList","metadata":{"resourceVersion":"5"},"items":[{"metadata":{"name":"n2"}},');
    // ... and nothing more
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: `http://127.0.0.1:${(server.address() as { port: number }).port}`, skipTLSVerify: true }],
    users: [{ name: 'u' }], contexts: [{ name: 'x', cluster: 'c', user: 'u' }], currentContext: 'x',
  });
  const inf = new NodeReflector({ get: kubeGetFor(kc), listTimeoutMs: 200 });
  const errors: unknown[] = [];
  inf.on('error', (err) => errors.push(err));
  try {
    await inf.start();
    assert.equal(errors.length, 1);
    assert.equal((errors[0] as { code?: string }).code, 'ETIMEDOUT', String(errors[0]));
    assert.deepEqual(inf.list(), [], 'a partial list is not applied');
  } finally {
    await inf.stop();
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
});
