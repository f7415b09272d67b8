/**
 * The Node informer: client-node 1.4.x ListWatch with watch bookmarks, kept alive.
 *
 * client-node's ListWatch re-watches by itself after a clean close and relists after a 410,
 * but it stops for good on any other error (HTTP 500 on watch, a socket dropped mid-stream,
 * a failed list): it only calls the 'error' callbacks. RestartingInformer restarts it from
 * there after an exponential backoff with jitter, resets the backoff once a watch has stayed up
 * for a while, counts restarts for /metrics, and honours a stop flag so that a deliberate
 * stop() stays stopped even when an error arrives afterwards.
 *
 * Memory: a real Node object is several KB (status.images, conditions, nodeInfo, managedFields,
 * labels) and the agent reads a few hundred bytes of it. Every Node is trimmed to what the agent
 * reads (trimNode, in sync.ts next to the code that reads it) before it reaches the cache, on
 * the list and on every watch event, and the list is fetched in pages, so neither the cache nor
 * the listing holds whole Nodes for the whole cluster at once.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { ListWatch, Watch, type KubeConfig, type V1Node, type V1NodeList } from '@kubernetes/client-node';
import { UserlayError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { exponentialBackoff, systemClock, type Backoff, type Clock } from '../backoff.js';
import { trimNode } from './desired-peers.js';

/** The informer surface RestartingInformer drives (ListWatch implements it; tests fake it). */
export interface NodeInformer {
  on(verb: 'add' | 'update' | 'delete' | 'change', cb: (obj: V1Node) => void): void;
  on(verb: 'error' | 'connect', cb: (err?: unknown) => void): void;
  start(): Promise<void>;
  stop(): Promise<void>;
  list(): V1Node[];
}

/** One page request of a list: at most `limit` items, after the `continue` token of the previous page. */
export interface ListPage {
  readonly limit: number;
  readonly continue?: string;
}

/**
 * List all Nodes through `list`, `pageSize` at a time, trimming each page as it arrives.
 * The resourceVersion is the first page's: the API server serves every page of one list from
 * that snapshot, and a watch from it replays anything that changed meanwhile. A `list` that
 * ignores the page argument returns everything in one go, which is fine too. An expired
 * continue token (410) rejects, and the informer starts over with a fresh list.
 */
export async function listTrimmed(list: (page: ListPage) => Promise<V1NodeList>, pageSize: number, annotationPrefix?: string): Promise<V1NodeList> {
  const items: V1Node[] = [];
  let resourceVersion: string | undefined;
  let token: string | undefined;
  do {
    const page = await list(token === undefined ? { limit: pageSize } : { limit: pageSize, continue: token });
    resourceVersion ??= page.metadata?.resourceVersion;
    for (const item of page.items) items.push(trimNode(item, annotationPrefix));
    // client-node's deserializer names it _continue; a plain JSON list has `continue`
    token = page.metadata?._continue || (page.metadata as { continue?: string } | undefined)?.continue || undefined;
  } while (token !== undefined);
  return { apiVersion: 'v1', kind: 'NodeList', metadata: resourceVersion === undefined ? {} : { resourceVersion }, items };
}

/** How long one list page may take before the request is aborted, ms. */
const LIST_TIMEOUT_MS = 60_000;

/**
 * A list function that GETs /api/v1/nodes pages straight over node:http(s), with the
 * KubeConfig's TLS settings and credentials (applyToHTTPSOptions), and parses the JSON itself.
 * client-node's CoreV1Api.listNode first turns every field of every Node into model objects
 * (status.images included) that trimNode then throws away: with 30 images per Node that
 * transient alone took the agent from ~160 to ~260 MB RSS at 5,000 Nodes (bench/RESULTS.md).
 * Items come back as plain JSON (creationTimestamp a string). Errors: UserlayError
 * `EHTTP<status>` with `statusCode` (what RestartingInformer logs and ListWatch checks for 410).
 */
export function rawNodeList(kc: KubeConfig): (page: ListPage) => Promise<V1NodeList> {
  return async (page) => {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new UserlayError('EKUBECONFIG', 'list nodes: the kubeconfig has no current cluster');
    // as client-node's Watch builds its URL: the server may carry a path prefix
    const url = new URL(`${cluster.server}/api/v1/nodes`);
    url.searchParams.set('limit', String(page.limit));
    if (page.continue !== undefined) url.searchParams.set('continue', page.continue);
    const opts: RequestOptions = { method: 'GET', timeout: LIST_TIMEOUT_MS };
    await kc.applyToHTTPSOptions(opts);
    opts.headers = { ...opts.headers, Accept: 'application/json' };
    const { status, body } = await fetchText(url, opts);
    if (status !== 200) {
      let reason = body.slice(0, 200);
      try {
        reason = (JSON.parse(body) as { message?: string }).message ?? reason;
      } catch {
        // not a Status object: keep the text
      }
      throw Object.assign(new UserlayError(`EHTTP${status}`, `list nodes: HTTP ${status}: ${reason}`), { statusCode: status });
    }
    return JSON.parse(body) as V1NodeList;
  };
}

function fetchText(url: URL, opts: RequestOptions): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = send(url, opts, (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', (err) => reject(new UserlayError('EAPI', `list nodes: ${err.message}`, { cause: err })));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${LIST_TIMEOUT_MS} ms`)));
    req.on('error', (err) => reject(new UserlayError((err as { code?: string }).code ?? 'EAPI', `list nodes: ${err.message}`, { cause: err })));
    req.end();
  });
}

/**
 * A Watch that always asks for bookmarks and a server-side timeout (jittered), and aborts a
 * stream that stays silent longer than the server could legitimately keep it open (a network
 * partition leaves a half-open socket that would otherwise hang until TCP gives up). The abort
 * reaches ListWatch as an error, so RestartingInformer restarts it.
 */
class BookmarkWatch extends Watch {
  /**
   * Set while the informer is stopped. client-node's ListWatch.stop() aborts only a watch
   * that is already connected; one still connecting (a re-watch or re-list in flight) would
   * open afterwards and live on after the stop. Such a stream is aborted as soon as it opens.
   */
  stopped = false;

  constructor(
    config: KubeConfig,
    private readonly timeoutSeconds: number,
    private readonly idleMs: number | undefined,
    private readonly annotationPrefix: string | undefined,
  ) {
    super(config);
  }

  override async watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: any, watchObj?: any) => void,
    done: (err: any) => void,
  ): Promise<AbortController> {
    const timeout = Math.round(this.timeoutSeconds * (1 + Math.random()));
    const idleMs = this.idleMs ?? (timeout + 30) * 1000;
    let last = Date.now();
    let timer: NodeJS.Timeout | undefined;
    const onEvent = (phase: string, obj: any, w?: any) => {
      last = Date.now();
      const node = phase === 'ADDED' || phase === 'MODIFIED' || phase === 'DELETED';
      callback(phase, node && obj ? trimNode(obj as V1Node, this.annotationPrefix) : obj, w);
    };
    const onDone = (err: any) => {
      clearInterval(timer);
      done(err);
    };
    const controller = await super.watch(path, { ...queryParams, allowWatchBookmarks: true, timeoutSeconds: timeout }, onEvent, onDone);
    if (this.stopped) controller.abort(new Error('informer stopped while the watch was connecting'));
    if (!controller.signal.aborted) {
      timer = setInterval(() => {
        if (Date.now() - last <= idleMs) return;
        clearInterval(timer);
        controller.abort(new Error(`watch silent for ${idleMs} ms`));
      }, Math.max(10, Math.min(5000, idleMs / 4)));
      timer.unref();
    }
    return controller;
  }
}

/** Options of makeNodeInformer. */
export interface NodeInformerOptions {
  /** Server-side watch timeout, s (jittered up to twice this; default 300). */
  timeoutSeconds?: number;
  /** Silent-stream limit, ms (default: the watch timeout + 30 s). */
  idleMs?: number;
  /** Runs after each successful list has been applied to the cache. */
  onListed?: () => void;
  /** Keep only annotations under this prefix in the cache (default: keep all annotations). */
  annotationPrefix?: string;
  /** Items per list page (default 500). */
  pageSize?: number;
}

/**
 * A ListWatch over /api/v1/nodes using `list` for the initial and re-lists, paged (see
 * listTrimmed), with every Node trimmed (see trimNode) on the list and on the watch.
 * `rawNodeList(kc)` is the list to use; any function returning a NodeList works (one that
 * ignores the page argument is called once).
 */
export function makeNodeInformer(
  kc: KubeConfig,
  list: (page: ListPage) => Promise<V1NodeList>,
  opts: NodeInformerOptions = {},
): NodeInformer {
  const watch = new BookmarkWatch(kc, opts.timeoutSeconds ?? 300, opts.idleMs, opts.annotationPrefix);
  const listFn = async (): Promise<V1NodeList> => {
    const result = await listTrimmed(list, opts.pageSize ?? 500, opts.annotationPrefix);
    // ListWatch fills its cache right after this promise resolves.
    if (opts.onListed) setImmediate(opts.onListed);
    return result;
  };
  const informer = new ListWatch<V1Node>('/api/v1/nodes', watch, listFn, false);
  const start = informer.start.bind(informer);
  const stop = informer.stop.bind(informer);
  informer.start = async () => {
    watch.stopped = false;
    await start();
  };
  informer.stop = async () => {
    watch.stopped = true;
    await stop();
  };
  return informer as unknown as NodeInformer;
}

/** Options of RestartingInformer. */
export interface RestartingInformerOptions {
  informer: NodeInformer;
  log: Logger;
  clock?: Clock;
  backoff?: Backoff;
  /** A run that lasted this long (ms) resets the backoff (default 30000). */
  healthyAfterMs?: number;
}

/** Keeps an informer running until stop(). */
export class RestartingInformer {
  /** Restarts after errors since construction. */
  restarts = 0;
  /** The last error seen, if any. */
  lastError: unknown;
  private stopped = true;
  private timer: unknown;
  private startedAt = 0;
  private readonly clock: Clock;
  private readonly backoff: Backoff;

  constructor(private readonly opts: RestartingInformerOptions) {
    this.clock = opts.clock ?? systemClock;
    this.backoff = opts.backoff ?? exponentialBackoff({ initialMs: 500, maxMs: 30_000 });
    opts.informer.on('error', (err) => this.onError(err));
    opts.informer.on('connect', () => opts.log.debug('node informer connecting'));
  }

  /** True between start() and stop(). */
  get running(): boolean {
    return !this.stopped;
  }

  /** Start listing and watching. */
  async start(): Promise<void> {
    this.stopped = false;
    await this.run();
  }

  /** Stop for good: cancels a pending restart and the watch. Idempotent. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    await this.opts.informer.stop();
  }

  private async run(): Promise<void> {
    this.startedAt = this.clock.now();
    try {
      await this.opts.informer.start();
    } catch (err) {
      this.onError(err);
    }
  }

  private onError(err: unknown): void {
    this.lastError = err;
    if (this.stopped || this.timer !== undefined) return;
    if (this.clock.now() - this.startedAt >= (this.opts.healthyAfterMs ?? 30_000)) this.backoff.reset();
    const delay = this.backoff.next();
    this.opts.log.warn('node informer stopped; restarting', { err: describe(err), delayMs: delay, attempt: this.backoff.attempts });
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      if (this.stopped) return;
      this.restarts++;
      void this.run();
    }, delay);
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const status = (err as { statusCode?: unknown; code?: unknown }).statusCode ?? (err as { code?: unknown }).code;
    return status !== undefined ? `${err.message} (${String(status)})` : err.message;
  }
  return String(err);
}
