/**
 * What the REAL client's informer (@kubernetes/client-node 1.4.0: ListWatch in
 * dist/cache.js + Watch in dist/watch.js) does against the in-process API
 * server on each fault. The agent's restart logic depends on exactly this:
 *
 *   clean close (timeoutSeconds)  -> 'connect', re-watch from the last RV, no re-list, no 'error'
 *   ERROR event 410 mid-stream    -> RV reset, then at close: 'connect', re-list, watch; no 'error'
 *   HTTP 410 on the watch request -> same as above (doneHandler checks err.statusCode === 410)
 *   HTTP 500 on the watch request -> 'error' (Error "Internal Server Error", statusCode 500); STOPS
 *   socket destroyed mid-stream   -> 'error' (code ERR_STREAM_PREMATURE_CLOSE); STOPS
 *   connection refused            -> 'error' (FetchError, code ECONNREFUSED); STOPS
 *   list fails (listFn rejects)   -> 'error' with the list's rejection; STOPS
 *   informer.stop() with a watch open -> 'error' (AbortError, type 'aborted') is still emitted
 *   informer.start() after a stop -> watch from latestResourceVersion() (no re-list unless 410)
 *   re-list after 410             -> 'delete' for vanished objects, fired BEFORE the new watch opens
 *   watch open but silent         -> nothing at all: no error, no re-watch (a half-open connection
 *                                    hangs the informer until TCP keepalive gives up)
 *
 * The stock informer sends neither allowWatchBookmarks nor timeoutSeconds and
 * its 30 s AbortSignal.timeout is overwritten (watch.js), so a quiet watch never
 * times out client-side. Query parameters put in the informer's path ARE sent
 * on every watch (Watch.watch builds `new URL(server + path)` and adds its own).
 */
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { ListWatch, Watch, makeInformer, type V1Node, type V1NodeList } from '@kubernetes/client-node';
import {
  clientFor, onCleanup, registerCleanups, requestLines, startInformer, startServer, testNode, waitFor,
} from '../support/fake-apiserver-client.js';

registerCleanups(afterEach);

test('informer path query parameters are sent: bookmarks advance its RV past unmatched changes', async () => {
  const api = await startServer({ bookmarkIntervalMs: 20 });
  api.upsertNode(testNode('n1', { metadata: { name: 'n1', labels: { role: 'x' } } }));
  const { kc, core } = clientFor(api);
  const listFn = (): Promise<V1NodeList> => core.listNode({ labelSelector: 'role=x' });
  const inf = new ListWatch<V1Node>('/api/v1/nodes?allowWatchBookmarks=true', new Watch(kc), listFn, false, 'role=x');
  onCleanup(() => inf.stop());
  inf.on('error', () => {});
  await inf.start();
  api.upsertNode(testNode('other'));
  const rv = String(api.store.resourceVersion);
  await waitFor('RV from a bookmark', () => inf.latestResourceVersion() === rv);
  const watchReq = api.requests.find((r) => r.query.watch === 'true')!;
  assert.equal(watchReq.query.allowWatchBookmarks, 'true');
  assert.equal(watchReq.query.labelSelector, 'role=x');
});

test('informer: ERROR 410 after a gap -> re-list (deletes what vanished), no error event', async () => {
  const api = await startServer();
  api.setNodes([testNode('n1'), testNode('n2')]);
  const w = await startInformer(api);
  api.clearRequests();
  api.closeWatchStreams();
  api.deleteNode('n2'); // happens while no watch is open...
  api.compactHistory(); // ...and falls out of the history: the re-watch gets 410
  await waitFor('n2 deleted and watching again', () => w.log.includes('delete n2') && api.activeWatches === 1);
  assert.deepEqual(w.errors, []);
  assert.deepEqual(requestLines(api).slice(0, 3), [
    `GET /api/v1/nodes watch rv=${api.store.resourceVersion - 1}`,
    'GET /api/v1/nodes',
    `GET /api/v1/nodes watch rv=${api.store.resourceVersion}`,
  ]);
  assert.deepEqual(w.inf.list().map((n) => n.metadata?.name), ['n1']);
});

test('informer: ERROR 410 mid-stream and HTTP 410 both re-list and keep watching', async () => {
  const api = await startServer();
  api.setNodes([testNode('n1')]);
  const w = await startInformer(api);
  api.clearRequests();
  api.expireWatchStreams();
  await waitFor('re-list + watch', () => api.activeWatches === 1 && api.requests.length === 2);
  api.failNextWatches(1, 410);
  api.closeWatchStreams();
  await waitFor('second re-list + watch', () => api.activeWatches === 1 && api.requests.length === 5);
  api.upsertNode(testNode('n3'));
  await waitFor('n3 added', () => w.log.includes('add n3'));
  assert.deepEqual(w.errors, []);
  assert.deepEqual(requestLines(api).map((r) => r.replace(/ rv=\d+/, '')), [
    'GET /api/v1/nodes', 'GET /api/v1/nodes watch', // after the ERROR event
    'GET /api/v1/nodes watch', 'GET /api/v1/nodes', 'GET /api/v1/nodes watch', // the 410 reply, then re-list
  ]);
});

test('informer: HTTP 500 on watch -> error event and the informer STOPS; start() resumes from its RV', async () => {
  const api = await startServer();
  api.setNodes([testNode('n1')]);
  const w = await startInformer(api);
  const rv = w.inf.latestResourceVersion();
  api.failNextWatches(1, 500);
  api.closeWatchStreams();
  await waitFor('error', () => w.errors.length === 1);
  assert.equal(w.errors[0]!.statusCode, 500);
  assert.equal(w.errors[0]!.message, 'Internal Server Error');
  await waitFor('the failed watch is gone', () => api.activeWatches === 0);
  api.upsertNode(testNode('n2'));
  // A witness informer started now sees n2: the change has been processed and streamed.
  // A restart of the first would have been issued when it emitted its error, before this.
  const witness = await startInformer(api);
  await waitFor('the witness saw n2', () => witness.log.includes('add n2'));
  assert.equal(api.activeWatches, 1, 'only the witness watches: the informer stopped');
  assert.ok(!w.log.includes('add n2'));
  api.clearRequests();
  await w.inf.start();
  await waitFor('n2 via replay', () => w.log.includes('add n2'));
  assert.deepEqual(requestLines(api), [`GET /api/v1/nodes watch rv=${rv}`], 'resumes without a re-list');
});

test('informer: socket dropped mid-stream -> error ERR_STREAM_PREMATURE_CLOSE and STOPS', async () => {
  const api = await startServer();
  api.setNodes([testNode('n1')]);
  const w = await startInformer(api);
  api.clearRequests();
  api.dropWatchStreams();
  await waitFor('error', () => w.errors.length === 1);
  assert.equal(w.errors[0]!.code, 'ERR_STREAM_PREMATURE_CLOSE');
  api.upsertNode(testNode('n2'));
  const witness = await startInformer(api); // see the HTTP 500 case
  await waitFor('the witness saw n2', () => witness.log.includes('add n2'));
  assert.equal(api.activeWatches, 1, 'only the witness watches');
  assert.deepEqual(requestLines(api).map((r) => r.replace(/ rv=\d+/, '')), ['GET /api/v1/nodes', 'GET /api/v1/nodes watch'],
    'the witness\'s list and watch only: no re-watch, no re-list');
  assert.ok(!w.log.includes('add n2'));
});

test('informer: a clean close at the watch timeout -> re-watch from the last RV, no re-list', async () => {
  const api = await startServer({ watchTimeoutMs: 100 });
  api.setNodes([testNode('n1')]);
  const w = await startInformer(api);
  api.upsertNode(testNode('n2'));
  await waitFor('two re-watches', () => api.requests.filter((r) => r.query.watch).length >= 3);
  assert.deepEqual(w.errors, []);
  assert.equal(api.requests.filter((r) => !r.query.watch).length, 1, 'only the initial list');
  const rvs = api.requests.filter((r) => r.query.watch).map((r) => Number(r.query.resourceVersion));
  assert.equal(rvs[rvs.length - 1], api.store.resourceVersion);
  assert.ok(w.log.includes('add n2'));
  assert.ok(w.log.filter((l) => l === 'connect').length >= 3);
});

test('informer: timeoutSeconds from the path closes the watch server-side, informer re-watches', async () => {
  const api = await startServer();
  api.setNodes([testNode('n1')]);
  const w = await startInformer(api, '/api/v1/nodes?timeoutSeconds=1');
  await waitFor('re-watch', () => api.requests.filter((r) => r.query.watch).length >= 2, 4000);
  assert.equal(api.requests[1]!.query.timeoutSeconds, '1');
  assert.deepEqual(w.errors, []);
});

test('informer: API server down -> premature close, then ECONNREFUSED; start() on the same port works', async () => {
  const api = await startServer();
  api.setNodes([testNode('n1')]);
  const w = await startInformer(api);
  const port = api.port;
  await api.stop();
  await waitFor('error', () => w.errors.length === 1);
  assert.equal(w.errors[0]!.code, 'ERR_STREAM_PREMATURE_CLOSE', 'stop() kills open streams like a crash');
  await w.inf.start();
  await waitFor('second error', () => w.errors.length === 2);
  assert.equal(w.errors[1]!.code, 'ECONNREFUSED');
  assert.equal(w.errors[1]!.name, 'FetchError');
  await api.start();
  assert.equal(api.port, port);
  await w.inf.start();
  await api.waitForWatches(1);
  api.upsertNode(testNode('n2'));
  await waitFor('n2', () => w.log.includes('add n2'));
});

test('informer.stop() with a watch open still emits an AbortError error event', async () => {
  const api = await startServer();
  const w = await startInformer(api);
  await w.inf.stop();
  await waitFor('abort error', () => w.errors.length === 1);
  assert.equal(w.errors[0]!.name, 'AbortError');
  assert.equal(w.errors[0]!.type, 'aborted');
  await waitFor('server saw the abort', () => api.activeWatches === 0);
});

test('makeInformer() is a ListWatch that does not auto-start; a failing list -> error and STOPS', async () => {
  const api = await startServer();
  api.setNodes([testNode('n1')]);
  const { kc, core } = clientFor(api);
  const inf = makeInformer<V1Node>(kc, '/api/v1/nodes', () => core.listNode());
  onCleanup(() => inf.stop());
  assert.ok(inf instanceof ListWatch);
  // a request of our own, issued after the informer was made, has done its round trip:
  // one the informer issued on construction would have reached the server before it
  await core.readNode({ name: 'n1' });
  assert.deepEqual(requestLines(api), ['GET /api/v1/nodes/n1'], 'nothing before start()');
  api.clearRequests();
  const errors: Array<{ code?: number }> = [];
  inf.on('error', (e) => errors.push(e as { code?: number }));
  api.failNextLists(1, 503);
  await inf.start();
  assert.equal(errors.length, 1);
  assert.equal(errors[0]!.code, 503, 'the ApiException of listNode');
  // start() resolved after the error was emitted; a retry or watch would be on its way already
  await core.readNode({ name: 'n1' });
  assert.deepEqual(requestLines(api), ['GET /api/v1/nodes', 'GET /api/v1/nodes/n1'], 'no retry, no watch');
  assert.equal(api.activeWatches, 0);
});

test('informer: a silent (half-open) watch is never noticed: no error, no re-watch, changes missed', async () => {
  const api = await startServer({ bookmarkIntervalMs: 20 });
  api.setNodes([testNode('n1')]);
  const w = await startInformer(api, '/api/v1/nodes?allowWatchBookmarks=true');
  api.clearRequests();
  api.stallWatchStreams();
  api.upsertNode(testNode('n2'));
  // a witness (new watches are not stalled) sees n2, and then n3 over its watch: the server
  // has streamed both changes meanwhile; the stalled informer got nothing and did nothing
  const witness = await startInformer(api, '/api/v1/nodes?allowWatchBookmarks=true');
  await waitFor('the witness saw n2', () => witness.log.includes('add n2'));
  api.upsertNode(testNode('n3'));
  await waitFor('the witness saw n3', () => witness.log.includes('add n3'));
  assert.deepEqual(w.errors, []);
  assert.deepEqual(requestLines(api).map((r) => r.replace(/ rv=\d+/, '')), ['GET /api/v1/nodes', 'GET /api/v1/nodes watch'],
    'only the witness\'s requests: the informer keeps waiting on the stalled stream');
  assert.ok(!w.log.includes('add n2') && !w.log.includes('add n3'));
  assert.equal(api.activeWatches, 2);
});
