// What the informer hands the sync: trimmed Nodes, listed in pages (over
// client-node or plain HTTP), and watch events that arrive trimmed too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CoreV1Api, KubeConfig, type V1Node, type V1NodeList } from '@kubernetes/client-node';
import { nodeToPeer, trimNode } from '../../src/control/kube/desired-peers.js';
import { listTrimmed, makeNodeInformer, rawNodeList, type ListPage } from '../../src/control/kube/informer.js';
import { FakeApiServer, type KubeObject } from '../support/fake-apiserver.js';
import { cfg, fullNode, mac, P } from '../support/kube-nodes.js';

test('trimNode keeps what sync, lease check and ListWatch read, and nothing else', () => {
  const full = fullNode(4);
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
  });
  assert.deepEqual(nodeToPeer(t, cfg), nodeToPeer(full, cfg));
  assert.equal(trimNode(full).metadata!.annotations!['node.alpha.kubernetes.io/ttl'], '0', 'no prefix: every annotation kept');
  assert.deepEqual(trimNode({ metadata: { name: 'bare' } }), { metadata: { name: 'bare' } });
});

test('listTrimmed: pages follow the continue token, the first page gives the resourceVersion', async () => {
  const all = [fullNode(2), fullNode(3), fullNode(4), fullNode(5), fullNode(6)];
  const asked: ListPage[] = [];
  const list = async (page: ListPage): Promise<V1NodeList> => {
    asked.push(page);
    const from = page.continue === undefined ? 0 : Number(page.continue);
    const items = all.slice(from, from + page.limit);
    const next = from + page.limit < all.length ? String(from + page.limit) : undefined;
    return { items, metadata: { resourceVersion: String(500 + asked.length), ...(next ? { _continue: next } : {}) } };
  };
  const r = await listTrimmed(list, 2, P);
  assert.deepEqual(asked, [{ limit: 2 }, { limit: 2, continue: '2' }, { limit: 2, continue: '4' }]);
  assert.equal(r.metadata!.resourceVersion, '501');
  assert.deepEqual(r.items.map((n) => n.metadata!.name), ['n2', 'n3', 'n4', 'n5', 'n6']);
  assert.ok(r.items.every((n) => n.status === undefined && n.metadata!.labels === undefined));
  // a list function that ignores paging: one call
  const once = await listTrimmed(async () => ({ items: all, metadata: { resourceVersion: '7' } }), 2, P);
  assert.equal(once.items.length, 5);
});

test('makeNodeInformer against the in-process API server: paged list and watch events arrive trimmed', async () => {
  const api = await FakeApiServer.create();
  const { kc, core } = (() => {
    const k = new KubeConfig();
    k.loadFromOptions(api.kubeconfigOptions());
    return { kc: k, core: k.makeApiClient(CoreV1Api) };
  })();
  const inf = makeNodeInformer(kc, (page) => core.listNode({ limit: page.limit, ...(page.continue ? { _continue: page.continue } : {}) }),
    { annotationPrefix: P, pageSize: 2, timeoutSeconds: 30 });
  try {
    api.setNodes([2, 3, 4, 5, 6].map((i) => fullNode(i) as unknown as KubeObject));
    await inf.start();
    const lists = api.requests.filter((r) => r.query.watch !== 'true');
    assert.deepEqual(lists.map((r) => r.query.limit), ['2', '2', '2']);
    assert.equal(inf.list().length, 5);
    assert.ok(inf.list().every((n) => n.status === undefined && n.metadata!.annotations!['node.alpha.kubernetes.io/ttl'] === undefined));
    const seen: V1Node[] = [];
    inf.on('update', (n) => seen.push(n));
    const changed = fullNode(3);
    changed.metadata!.annotations![`${P}/public-ip`] = '198.18.0.33';
    delete changed.metadata!.resourceVersion;
    api.upsertNode(changed as unknown as KubeObject);
    const until = Date.now() + 5000;
    while (seen.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    assert.equal(seen[0]?.metadata?.annotations?.[`${P}/public-ip`], '198.18.0.33');
    assert.equal(seen[0]?.status, undefined);
    assert.equal(nodeToPeer(inf.list().find((n) => n.metadata!.name === 'n3')!, cfg).ok, true);
  } finally {
    inf.on('error', () => {});
    await inf.stop();
    await api.stop();
  }
});

test('rawNodeList: pages over plain HTTP with the kubeconfig, plain JSON items, EHTTP<status> on failure', async () => {
  const api = await FakeApiServer.create();
  try {
    const kc = new KubeConfig();
    kc.loadFromOptions(api.kubeconfigOptions());
    api.setNodes([2, 3, 4, 5, 6].map((i) => fullNode(i) as unknown as KubeObject));
    const list = rawNodeList(kc);
    const first = await list({ limit: 2 });
    assert.deepEqual(first.items.map((n) => n.metadata!.name), ['n2', 'n3']);
    assert.equal(typeof first.items[0]!.metadata!.creationTimestamp, 'string', 'plain JSON, not client-node models');
    const all = await listTrimmed(list, 2, P);
    assert.deepEqual(all.items.map((n) => n.metadata!.name), ['n2', 'n3', 'n4', 'n5', 'n6']);
    assert.equal(all.metadata!.resourceVersion, String(api.store.resourceVersion));
    assert.deepEqual(api.requests.filter((r) => r.query.watch !== 'true').map((r) => r.query.limit), ['2', '2', '2', '2']);
    assert.ok(all.items.every((n) => n.status === undefined));
    const verdict = nodeToPeer(all.items[0]!, cfg);
    assert.equal(verdict.ok, true, 'a string creationTimestamp works for the sync');
    api.failNextLists(1, 500);
    await assert.rejects(list({ limit: 2 }), (err: unknown) => err instanceof Error && (err as { code?: string }).code === 'EHTTP500'
      && (err as { statusCode?: number }).statusCode === 500 && err.message.startsWith('list nodes: HTTP 500'));
  } finally {
    await api.stop();
  }
});

test('makeNodeInformer with rawNodeList: lists, watches and restarts on a failed list', async () => {
  const api = await FakeApiServer.create();
  const kc = new KubeConfig();
  kc.loadFromOptions(api.kubeconfigOptions());
  const inf = makeNodeInformer(kc, rawNodeList(kc), { annotationPrefix: P, pageSize: 2, timeoutSeconds: 30 });
  const errors: unknown[] = [];
  inf.on('error', (err) => errors.push(err));
  try {
    api.setNodes([2, 3, 4].map((i) => fullNode(i) as unknown as KubeObject));
    api.failNextLists(1, 500);
    await inf.start();
    assert.equal((errors[0] as { statusCode?: number }).statusCode, 500, 'a failed list reaches the error callbacks (RestartingInformer restarts)');
    await inf.start();
    assert.deepEqual(inf.list().map((n) => n.metadata!.name).sort(), ['n2', 'n3', 'n4']);
    const changed = fullNode(4);
    changed.metadata!.annotations![`${P}/public-ip`] = '198.18.0.44';
    delete changed.metadata!.resourceVersion;
    api.upsertNode(changed as unknown as KubeObject);
    const until = Date.now() + 5000;
    const ip = () => inf.list().find((n) => n.metadata!.name === 'n4')?.metadata?.annotations?.[`${P}/public-ip`];
    while (ip() !== '198.18.0.44' && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    assert.equal(ip(), '198.18.0.44');
  } finally {
    await inf.stop();
    await api.stop();
  }
});
