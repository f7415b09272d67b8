/**
 * Helpers for tests that drive the in-process API server with the real
 * @kubernetes/client-node: a server and clients that are cleaned up after each
 * test, an instrumented informer, polling waits.
 *
 * Call `registerCleanups(afterEach)` once per test file.
 */
import { CoreV1Api, KubeConfig, ListWatch, Watch, type V1Node } from '@kubernetes/client-node';
import { FakeApiServer, type FakeApiServerOptions, type KubeObject } from './fake-apiserver.js';

const cleanups: Array<() => Promise<void> | void> = [];

/** Run `fn` at the end of the current test (last registered runs first). */
export function onCleanup(fn: () => Promise<void> | void): void {
  cleanups.push(fn);
}

/** Hook the cleanup list into node:test's afterEach. */
export function registerCleanups(afterEach: (fn: () => Promise<void>) => void): void {
  afterEach(async () => {
    while (cleanups.length > 0) await cleanups.pop()!();
  });
}

/** A small Node object; `extra` replaces top-level fields. */
export function testNode(name: string, extra: Record<string, unknown> = {}): KubeObject {
  return { metadata: { name, annotations: { 'example.test/k': 'v' } }, spec: { podCIDR: '198.19.1.0/24' }, ...extra } as KubeObject;
}

/** A started server, stopped after the test. */
export async function startServer(opts: FakeApiServerOptions = {}): Promise<FakeApiServer> {
  const api = await FakeApiServer.create(opts);
  onCleanup(() => api.stop());
  return api;
}

/** A KubeConfig and CoreV1Api for `api`. */
export function clientFor(api: FakeApiServer): { kc: KubeConfig; core: CoreV1Api } {
  const kc = new KubeConfig();
  kc.loadFromOptions(api.kubeconfigOptions());
  return { kc, core: kc.makeApiClient(CoreV1Api) };
}

/** Poll `cond` every 5 ms; throw naming `what` after `timeoutMs`. */
export async function waitFor(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Sleep (only for "nothing happens" checks). */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** An error as the informer hands it to 'error' callbacks. */
export type InformerError = Error & { statusCode?: number; code?: string | number; type?: string };

/** An instrumented informer. */
export interface Watched {
  inf: ListWatch<V1Node>;
  core: CoreV1Api;
  /** "add NAME", "update NAME", "delete NAME", "connect", "error" in order. */
  log: string[];
  errors: InformerError[];
}

/**
 * A started informer on nodes (what makeInformer() builds: a ListWatch,
 * typed so latestResourceVersion() is visible), stopped after the test.
 * Resolves once its watch is open.
 */
export async function startInformer(api: FakeApiServer, path = '/api/v1/nodes'): Promise<Watched> {
  const { kc, core } = clientFor(api);
  const inf = new ListWatch<V1Node>(path, new Watch(kc), () => core.listNode(), false);
  const log: string[] = [];
  const errors: InformerError[] = [];
  inf.on('add', (o) => log.push(`add ${o.metadata?.name}`));
  inf.on('update', (o) => log.push(`update ${o.metadata?.name}`));
  inf.on('delete', (o) => log.push(`delete ${o.metadata?.name}`));
  inf.on('connect', () => log.push('connect'));
  inf.on('error', (e) => {
    errors.push(e as InformerError);
    log.push('error');
  });
  onCleanup(() => inf.stop());
  await inf.start();
  await api.waitForWatches(1);
  return { inf, core, log, errors };
}

/** The request log as "METHOD PATH[ watch rv=RV]" lines. */
export function requestLines(api: FakeApiServer): string[] {
  return api.requests.map((r) => `${r.method} ${r.path}${r.query.watch ? ` watch rv=${r.query.resourceVersion}` : ''}`);
}
