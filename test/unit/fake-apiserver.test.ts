/**
 * The in-process API server's HTTP behaviour, checked with the REAL client
 * (@kubernetes/client-node 1.4.0): list, watch replay/bookmarks/410, patch
 * media types, Status errors, CRUD, kubeconfig. The informer's reactions to
 * faults are in fake-apiserver-informer.test.ts.
 *
 * Merge patch with CoreV1Api 1.4.0: pass
 *   setHeaderOptions('Content-Type', PatchStrategy.MergePatch)
 * as the call's second argument (ConfigurationOptions with a middleware that
 * overrides the generated Content-Type, application/json-patch+json).
 */
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { ApiException, CoreV1Api, KubeConfig, PatchStrategy, Watch, setHeaderOptions } from '@kubernetes/client-node';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clientFor, onCleanup, registerCleanups, startInformer, startServer, testNode, waitFor } from '../support/fake-apiserver-client.js';

registerCleanups(afterEach);

test('list returns items and the global resourceVersion as a string', async () => {
  const api = await startServer();
  api.setNodes([testNode('n1'), testNode('n2'), testNode('n3')]);
  const { core } = clientFor(api);
  const list = await core.listNode();
  assert.deepEqual(list.items.map((n) => n.metadata?.name), ['n1', 'n2', 'n3']);
  assert.equal(list.metadata?.resourceVersion, String(api.store.resourceVersion));
  assert.equal(list.items[2]!.metadata?.resourceVersion, list.metadata?.resourceVersion);
  const one = await core.listNode({ fieldSelector: 'metadata.name=n2' });
  assert.deepEqual(one.items.map((n) => n.metadata?.name), ['n2']);
  const page1 = await core.listNode({ limit: 2 });
  assert.equal(page1.items.length, 2);
  assert.equal(page1.metadata?.remainingItemCount, 1);
  const page2 = await core.listNode({ limit: 2, _continue: page1.metadata!._continue! });
  assert.deepEqual(page2.items.map((n) => n.metadata?.name), ['n3']);
});

test('watch replays events after the given RV in order, then streams live ones', async () => {
  const api = await startServer();
  api.upsertNode(testNode('n1'));
  const from = api.store.resourceVersion;
  api.upsertNode(testNode('n2'));
  api.upsertNode(testNode('n1', { spec: { podCIDR: '198.19.9.0/24' } }));
  const { kc } = clientFor(api);
  const seen: string[] = [];
  const ctl = await new Watch(kc).watch('/api/v1/nodes', { resourceVersion: String(from) }, (type, obj) => {
    seen.push(`${type} ${obj.metadata.name} ${obj.metadata.resourceVersion}`);
  }, () => {});
  onCleanup(() => ctl.abort());
  await api.waitForWatches(1);
  api.deleteNode('n2');
  await waitFor('3 events', () => seen.length === 3);
  assert.deepEqual(seen, [`ADDED n2 ${from + 1}`, `MODIFIED n1 ${from + 2}`, `DELETED n2 ${from + 3}`]);
});

test('watch without RV sends a synthetic ADDED per object', async () => {
  const api = await startServer();
  api.setNodes([testNode('n1'), testNode('n2')]);
  const { kc } = clientFor(api);
  const seen: string[] = [];
  const ctl = await new Watch(kc).watch('/api/v1/nodes', {}, (type, obj) => seen.push(`${type} ${obj.metadata.name}`), () => {});
  onCleanup(() => ctl.abort());
  await waitFor('2 events', () => seen.length === 2);
  assert.deepEqual(seen, ['ADDED n1', 'ADDED n2']);
});

test('watch selectors: fieldSelector metadata.name, labelSelector, and the legacy /watch/nodes/NAME path', async () => {
  const api = await startServer();
  api.setNodes([testNode('n1'), testNode('n2', { metadata: { name: 'n2', labels: { role: 'edge' } } })]);
  const { kc } = clientFor(api);
  const byField: string[] = [];
  const byLabel: string[] = [];
  const byPath: string[] = [];
  const ctls = [
    await new Watch(kc).watch('/api/v1/nodes', { fieldSelector: 'metadata.name=n1' }, (t, o) => byField.push(`${t} ${o.metadata.name}`), () => {}),
    await new Watch(kc).watch('/api/v1/nodes', { labelSelector: 'role=edge' }, (t, o) => byLabel.push(`${t} ${o.metadata.name}`), () => {}),
    await new Watch(kc).watch('/api/v1/watch/nodes/n2', {}, (t, o) => byPath.push(`${t} ${o.metadata.name}`), () => {}),
  ];
  for (const c of ctls) onCleanup(() => c.abort());
  await api.waitForWatches(3);
  api.upsertNode(testNode('n1', { spec: { podCIDR: '198.19.7.0/24' } }));
  api.deleteNode('n2');
  await waitFor('events', () => byField.length === 2 && byLabel.length === 2 && byPath.length === 2);
  assert.deepEqual(byField, ['ADDED n1', 'MODIFIED n1']);
  assert.deepEqual(byLabel, ['ADDED n2', 'DELETED n2']);
  assert.deepEqual(byPath, ['ADDED n2', 'DELETED n2']);
});

test('BOOKMARK events arrive only when allowWatchBookmarks is asked for', async () => {
  const api = await startServer({ bookmarkIntervalMs: 20 });
  api.upsertNode(testNode('n1'));
  const { kc } = clientFor(api);
  const rv = String(api.store.resourceVersion);
  const withBm: Array<{ type: string; obj: { metadata?: { resourceVersion?: string } } }> = [];
  const without: string[] = [];
  const a = await new Watch(kc).watch('/api/v1/nodes', { resourceVersion: rv, allowWatchBookmarks: true }, (type, obj) => withBm.push({ type, obj }), () => {});
  const b = await new Watch(kc).watch('/api/v1/nodes', { resourceVersion: rv }, (type) => without.push(type), () => {});
  onCleanup(() => a.abort());
  onCleanup(() => b.abort());
  await waitFor('a bookmark', () => withBm.length >= 2);
  assert.equal(withBm[0]!.type, 'BOOKMARK');
  assert.equal(withBm[0]!.obj.metadata?.resourceVersion, rv);
  assert.deepEqual(without, []);
});

test('an expired RV gets one ERROR event with Status 410 Expired, then the stream closes', async () => {
  const api = await startServer();
  api.upsertNode(testNode('n1'));
  const old = api.store.resourceVersion;
  api.upsertNode(testNode('n2'));
  api.expireBefore(api.store.resourceVersion);
  const { kc } = clientFor(api);
  const seen: Array<{ type: string; obj: Record<string, unknown> }> = [];
  let done: unknown = 'not called';
  await new Watch(kc).watch('/api/v1/nodes', { resourceVersion: String(old) }, (type, obj) => seen.push({ type, obj }), (err) => (done = err));
  await waitFor('done', () => done !== 'not called');
  assert.equal(done, null, 'a clean close, not an error');
  assert.equal(seen.length, 1);
  assert.equal(seen[0]!.type, 'ERROR');
  assert.deepEqual(seen[0]!.obj, {
    kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', reason: 'Expired', code: 410,
    message: `too old resource version: ${old} (${api.store.resourceVersion})`,
  });
});

test('merge patch on nodes/{name}/status via CoreV1Api bumps the RV and emits MODIFIED', async () => {
  const api = await startServer();
  api.setNodes([testNode('n1', { metadata: { name: 'n1', annotations: { keep: '1', drop: '2' } } })]);
  const w = await startInformer(api);
  const before = api.store.resourceVersion;
  const body = {
    metadata: { annotations: { drop: null, added: '3' } },
    spec: { podCIDR: '198.19.200.0/24' }, // ignored on /status, as by the real server
    status: { conditions: [{ type: 'NetworkUnavailable', status: 'False', reason: 'UserlayUp' }] },
  };
  const out = await w.core.patchNodeStatus({ name: 'n1', body }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
  assert.equal(out.metadata?.resourceVersion, String(before + 1));
  assert.deepEqual(out.metadata?.annotations, { keep: '1', added: '3' });
  assert.equal(out.spec?.podCIDR, '198.19.1.0/24');
  assert.equal(out.status?.conditions?.[0]?.type, 'NetworkUnavailable');
  await waitFor('MODIFIED', () => w.log.includes('update n1'));
  assert.equal(w.inf.get('n1')?.metadata?.resourceVersion, String(before + 1));
  assert.equal(api.requests.at(-1)!.contentType, 'application/merge-patch+json');
  const again = await w.core.patchNodeStatus({ name: 'n1', body }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
  assert.equal(again.metadata?.resourceVersion, String(before + 1), 'a no-op patch keeps the RV');
});

test('the client default patch content type (JSON patch) is answered 415 with a Status', async () => {
  const api = await startServer();
  api.setNodes([testNode('n1')]);
  const { core } = clientFor(api);
  await assert.rejects(core.patchNodeStatus({ name: 'n1', body: { metadata: { annotations: { a: 'b' } } } }), (err: unknown) => {
    assert.ok(err instanceof ApiException);
    assert.equal(err.code, 415);
    const status = JSON.parse(err.body as string) as Record<string, unknown>;
    assert.equal(status.kind, 'Status');
    assert.equal(status.reason, 'UnsupportedMediaType');
    return true;
  });
  assert.equal(api.requests.at(-1)!.contentType, 'application/json-patch+json');
  assert.equal(api.store.get('n1')!.metadata.annotations && (api.store.get('n1')!.metadata.annotations as Record<string, string>).a, undefined);
});

test('rejectJsonPatch: false applies JSON patch; a merge body sent as JSON patch is 400, a failed test 422', async () => {
  const api = await startServer({ rejectJsonPatch: false });
  api.setNodes([testNode('n1')]);
  const { core } = clientFor(api);
  const ops = [{ op: 'add', path: '/metadata/annotations/example.test~1added', value: 'yes' }];
  const out = await core.patchNodeStatus({ name: 'n1', body: ops });
  assert.equal(out.metadata?.annotations?.['example.test/added'], 'yes');
  const codeOf = async (body: object): Promise<number> => {
    try {
      await core.patchNodeStatus({ name: 'n1', body });
    } catch (err) {
      assert.ok(err instanceof ApiException);
      return err.code;
    }
    return 200;
  };
  assert.equal(await codeOf({ metadata: { annotations: { a: 'b' } } }), 400);
  assert.equal(await codeOf([{ op: 'test', path: '/metadata/name', value: 'other' }]), 422);
});

test('strategic merge patch merges status.conditions by type', async () => {
  const api = await startServer();
  api.upsertNode(testNode('n1', { status: { conditions: [{ type: 'Ready', status: 'True' }, { type: 'NetworkUnavailable', status: 'True' }] } }));
  const { core } = clientFor(api);
  const opts = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch);
  const out = await core.patchNodeStatus({ name: 'n1', body: { status: { conditions: [{ type: 'NetworkUnavailable', status: 'False' }] } } }, opts);
  assert.deepEqual(out.status?.conditions?.map((c) => `${c.type}=${c.status}`), ['Ready=True', 'NetworkUnavailable=False']);
});

test('errors are Status objects: 404, 409 AlreadyExists, 409 Conflict, 400 bad JSON, 415 other type', async () => {
  const api = await startServer();
  api.upsertNode(testNode('n1'));
  const { core } = clientFor(api);
  const statusOf = async (p: Promise<unknown>): Promise<Record<string, unknown>> => {
    try {
      await p;
    } catch (err) {
      assert.ok(err instanceof ApiException, String(err));
      const s = (typeof err.body === 'string' ? JSON.parse(err.body) : err.body) as Record<string, unknown>;
      assert.equal(s.code, err.code);
      return s;
    }
    throw new Error('expected a rejection');
  };
  assert.equal((await statusOf(core.readNode({ name: 'nope' }))).reason, 'NotFound');
  assert.equal((await statusOf(core.createNode({ body: { metadata: { name: 'n1' } } }))).reason, 'AlreadyExists');
  const stale = { metadata: { name: 'n1', resourceVersion: '1' } };
  assert.equal((await statusOf(core.replaceNode({ name: 'n1', body: stale }))).reason, 'Conflict');
  const raw = async (name: string, ct: string, body: string): Promise<[number, Record<string, unknown>]> => {
    const r = await fetch(`${api.url}/api/v1/nodes/${name}/status`, { method: 'PATCH', headers: { 'Content-Type': ct }, body });
    return [r.status, (await r.json()) as Record<string, unknown>];
  };
  const [c400, s400] = await raw('n1', 'application/merge-patch+json', '{not json');
  assert.equal(c400, 400);
  assert.equal(s400.reason, 'BadRequest');
  const [c415, s415] = await raw('n1', 'application/json', '{}');
  assert.equal(c415, 415);
  assert.equal(s415.kind, 'Status');
  const [c404, s404] = await raw('gone', 'application/merge-patch+json', '{}');
  assert.equal(c404, 404);
  assert.equal(s404.message, 'nodes "gone" not found');
});

test('create, get, replace, delete through CoreV1Api', async () => {
  const api = await startServer();
  const { core } = clientFor(api);
  const created = await core.createNode({ body: { metadata: { name: 'n5' }, spec: { podCIDR: '198.19.5.0/24' } } });
  assert.ok(created.metadata?.uid);
  const got = await core.readNode({ name: 'n5' });
  assert.equal(got.spec?.podCIDR, '198.19.5.0/24');
  got.spec = { podCIDR: '198.19.6.0/24' };
  const replaced = await core.replaceNode({ name: 'n5', body: got });
  assert.equal(replaced.spec?.podCIDR, '198.19.6.0/24');
  assert.equal(Number(replaced.metadata?.resourceVersion), Number(created.metadata?.resourceVersion) + 1);
  await core.deleteNode({ name: 'n5' });
  assert.equal(api.getNode('n5'), undefined);
});

test('kubeconfigFile writes a kubeconfig that KubeConfig.loadFromFile accepts (http, no auth)', async () => {
  const api = await startServer();
  api.upsertNode(testNode('n1'));
  const dir = await mkdtemp(join(tmpdir(), 'ulT-kc-'));
  onCleanup(() => rm(dir, { recursive: true, force: true }));
  const kc = new KubeConfig();
  kc.loadFromFile(await api.kubeconfigFile(dir));
  assert.equal(kc.getCurrentCluster()?.server, api.url);
  const list = await kc.makeApiClient(CoreV1Api).listNode();
  assert.equal(list.items.length, 1);
});
