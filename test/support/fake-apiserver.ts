/**
 * An in-process Kubernetes API server for core/v1 Nodes (test support).
 *
 * It behaves like kube-apiserver for what @kubernetes/client-node 1.4.0 uses:
 *
 *   GET    /api/v1/nodes                     list; metadata.resourceVersion = global revision;
 *                                            labelSelector, fieldSelector (metadata.name), limit/continue
 *                                            (a token older than the compacted revision: 410;
 *                                            `ignoreLimit`: whole lists, as from the watch cache)
 *   GET    /api/v1/nodes?watch=true&resourceVersion=RV[&allowWatchBookmarks=true][&timeoutSeconds=N]
 *          (also /api/v1/watch/nodes[/NAME]) newline-delimited JSON events. RV "" or "0": synthetic
 *                                            ADDED for every object, then live. RV older than the history
 *                                            window: one ERROR event (Status 410 Expired), then close.
 *                                            BOOKMARK every `bookmarkIntervalMs` when asked. Clean close
 *                                            at timeoutSeconds (or the server's `watchTimeoutMs`).
 *   GET/PUT/PATCH/DELETE /api/v1/nodes/NAME, GET/PUT/PATCH /api/v1/nodes/NAME/status, POST /api/v1/nodes
 *          PATCH: application/merge-patch+json (RFC 7386), application/strategic-merge-patch+json
 *          (simplified, see fake-apiserver-patch.ts); application/json-patch+json -> 415 while
 *          `rejectJsonPatch` (default true), else RFC 6902; any other type -> 415. A change bumps the revision
 *          and emits MODIFIED; a change-free write does neither (as the real server).
 *          /status writes keep spec; main-resource writes keep status (the Node strategies).
 *   Errors are Status objects: 400 BadRequest, 404 NotFound, 409 AlreadyExists/Conflict, 415,
 *   422 Invalid, 500 (injected).
 *   (The verbs are answered in fake-apiserver-rest.ts, watches in fake-apiserver-watch.ts.)
 *
 * Deliberate strictness (`rejectJsonPatch`, default true): the real server accepts JSON
 * patch, but client-node 1.4.x sends application/json-patch+json unless told otherwise, and a
 * merge-patch body sent that way is a bug the real server reports only as a malformed JSON
 * patch. The fake refuses the media type outright (415) so a test catches the missing
 * Content-Type override. With `rejectJsonPatch: false` JSON patch is applied (RFC 6902); a body
 * that is not an array of operations gets 400 BadRequest, an operation that does not apply
 * 422 Invalid.
 *
 * Faults for tests: failNextWatches / failNextLists (HTTP error instead of the stream),
 * dropWatchStreams (sockets destroyed mid-stream), closeWatchStreams (clean end),
 * stallWatchStreams (open but silent: a half-open connection),
 * expireWatchStreams (ERROR 410 mid-stream, then close), expireBefore / compactHistory,
 * stop() / start() on the same port (API server down), a request log.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Json, JsonObject } from './fake-apiserver-patch.js';
import { NodeStore, type KubeObject } from './fake-apiserver-store.js';
import { parseSelectors, type Selectors } from './fake-apiserver-select.js';
import { sendJson, statusObject } from './fake-apiserver-status.js';
import { WatchHub } from './fake-apiserver-watch.js';
import { kubeconfigFor, kubeconfigOptionsFor, type KubeconfigOptions } from './fake-apiserver-kubeconfig.js';
import { readJsonBody, serveCreate, serveDelete, serveGet, serveList, serveWrite } from './fake-apiserver-rest.js';

export type { KubeObject } from './fake-apiserver-store.js';
export { statusObject } from './fake-apiserver-status.js';

/** Options of the fake API server. */
export interface FakeApiServerOptions {
  /** Watch events kept for replay (default 1000). */
  readonly historySize?: number;
  /** BOOKMARK period for watches that ask for them, ms (default 1000; 0 disables). */
  readonly bookmarkIntervalMs?: number;
  /** Server-imposed watch duration when the client gives no timeoutSeconds, ms (default: unlimited). */
  readonly watchTimeoutMs?: number;
  /** Answer application/json-patch+json with 415 (default true; see the file header). */
  readonly rejectJsonPatch?: boolean;
  /** First revision is this + 1 (default 1000). */
  readonly initialResourceVersion?: number;
  /** Ignore `limit` on lists (default false; see ListBehaviour in fake-apiserver-rest.ts). */
  readonly ignoreLimit?: boolean;
}

/** One logged request. */
export interface LoggedRequest {
  readonly method: string;
  /** URL path without the query. */
  readonly path: string;
  /** Parsed query parameters. */
  readonly query: Readonly<Record<string, string>>;
  /** Content-Type header as sent (undefined when absent). */
  readonly contentType: string | undefined;
  /** When it arrived: performance.timeOrigin + performance.now(), ms. */
  readonly at: number;
}

type FailKind = 'watch' | 'list';

/**
 * The fake API server. `start()` listens on 127.0.0.1 (an ephemeral port the
 * first time, the same port after a `stop()`); `url` is valid after the first start.
 */
export class FakeApiServer {
  /** The object store (direct access for assertions). */
  readonly store: NodeStore;
  /** Every request received, oldest first (cleared by clearRequests). */
  readonly requests: LoggedRequest[] = [];
  /** BOOKMARK period (ms) for watches started from now on; 0 disables. */
  bookmarkIntervalMs: number;
  /** Server-imposed watch duration (ms) for watches started from now on; undefined: unlimited. */
  watchTimeoutMs: number | undefined;
  /** See FakeApiServerOptions.rejectJsonPatch. */
  rejectJsonPatch: boolean;
  /** See FakeApiServerOptions.ignoreLimit. */
  ignoreLimit: boolean;

  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly watches: WatchHub;
  private readonly failures: Record<FailKind, { count: number; code: number }> = {
    watch: { count: 0, code: 500 },
    list: { count: 0, code: 500 },
  };
  private listenPort = 0;

  constructor(opts: FakeApiServerOptions = {}) {
    this.store = new NodeStore(opts);
    this.watches = new WatchHub(this.store);
    this.bookmarkIntervalMs = opts.bookmarkIntervalMs ?? 1000;
    this.watchTimeoutMs = opts.watchTimeoutMs;
    this.rejectJsonPatch = opts.rejectJsonPatch ?? true;
    this.ignoreLimit = opts.ignoreLimit ?? false;
  }

  /** Create and start a server. */
  static async create(opts: FakeApiServerOptions = {}): Promise<FakeApiServer> {
    const s = new FakeApiServer(opts);
    await s.start();
    return s;
  }

  /** The TCP port (0 before the first start). */
  get port(): number {
    return this.listenPort;
  }

  /** Base URL, "http://127.0.0.1:PORT". */
  get url(): string {
    return `http://127.0.0.1:${this.listenPort}`;
  }

  /** True while listening. */
  get running(): boolean {
    return this.server !== undefined;
  }

  /** Number of watch streams currently open. */
  get activeWatches(): number {
    return this.watches.size;
  }

  /** Listen (again) on 127.0.0.1; the same port as before after a stop(). */
  async start(): Promise<void> {
    if (this.server) return;
    const server = createServer((req, res) => this.handle(req, res));
    server.on('connection', (sock) => {
      this.sockets.add(sock);
      sock.on('close', () => this.sockets.delete(sock));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.listenPort, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    const addr = server.address();
    if (addr && typeof addr === 'object') this.listenPort = addr.port;
    this.server = server;
  }

  /** Stop listening and destroy every connection (a crashed API server). Idempotent. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    this.watches.closeAll();
    await closed;
  }

  /** Write a kubeconfig (JSON, valid YAML) for this server into `dir`; returns its path. */
  async kubeconfigFile(dir: string, name = 'kubeconfig'): Promise<string> {
    const path = join(dir, name);
    await writeFile(path, JSON.stringify(this.kubeconfig(), null, 2) + '\n', { mode: 0o600 });
    return path;
  }

  /** The kubeconfig for this server in file format (see fake-apiserver-kubeconfig.ts). */
  kubeconfig(): JsonObject {
    return kubeconfigFor(this.url);
  }

  /** The kubeconfig for this server in `KubeConfig.loadFromOptions()` shape. */
  kubeconfigOptions(): KubeconfigOptions {
    return kubeconfigOptionsFor(this.url);
  }

  // ---- objects -------------------------------------------------------------

  /** Create or replace a Node (ADDED or MODIFIED); returns the stored object. */
  upsertNode(node: KubeObject): KubeObject {
    return this.store.update(node) ?? this.store.create(node)!;
  }

  /** Delete a Node (DELETED); returns whether it existed. */
  deleteNode(name: string): boolean {
    return this.store.delete(name) !== undefined;
  }

  /** Make the Node set exactly `nodes`: deletes the others, upserts these. */
  setNodes(nodes: readonly KubeObject[]): void {
    const keep = new Set(nodes.map((n) => n.metadata.name));
    for (const old of this.store.list()) if (!keep.has(old.metadata.name)) this.store.delete(old.metadata.name);
    for (const n of nodes) this.upsertNode(n);
  }

  /** The stored Node (a copy), or undefined. */
  getNode(name: string): KubeObject | undefined {
    const n = this.store.get(name);
    return n && structuredClone(n);
  }

  // ---- faults --------------------------------------------------------------

  /** The next `n` watch requests get HTTP `statusCode` with a Status body instead of a stream. */
  failNextWatches(n: number, statusCode = 500): void {
    this.failures.watch = { count: n, code: statusCode };
  }

  /** The next `n` list requests get HTTP `statusCode` with a Status body. */
  failNextLists(n: number, statusCode = 500): void {
    this.failures.list = { count: n, code: statusCode };
  }

  /** Destroy the sockets of every open watch mid-stream (no chunked terminator). */
  dropWatchStreams(): void {
    this.watches.dropAll();
  }

  /**
   * Make every open watch silent but keep its connection open: no events, no
   * bookmarks, no timeout end (a half-open connection). New watches are normal.
   */
  stallWatchStreams(): void {
    this.watches.stallAll();
  }

  /** End every open watch cleanly (as at timeoutSeconds). */
  closeWatchStreams(): void {
    this.watches.closeAll();
  }

  /** Compact history up to now, send ERROR 410 on every open watch, then end it. */
  expireWatchStreams(): void {
    this.compactHistory();
    this.watches.expireAll();
  }

  /** Watches from a resourceVersion older than `rv` now get 410 Expired. */
  expireBefore(rv: number): void {
    this.store.compact(rv);
  }

  /** Forget the whole event history: only a watch from the current revision is still valid. */
  compactHistory(): void {
    this.store.compact();
  }

  /** Resolve when at least `n` watches are open (rejects after `timeoutMs`). */
  waitForWatches(n: number, timeoutMs = 5000): Promise<void> {
    return this.watches.waitFor(n, timeoutMs);
  }

  /** Empty the request log. */
  clearRequests(): void {
    this.requests.length = 0;
  }

  // ---- HTTP ----------------------------------------------------------------

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://fake');
    const query = Object.fromEntries(url.searchParams);
    const method = req.method ?? 'GET';
    this.requests.push({ method, path: url.pathname, query, contentType: req.headers['content-type'], at: performance.timeOrigin + performance.now() });
    const m = /^\/api\/v1\/(watch\/)?nodes(?:\/([^/]+))?(\/status)?\/?$/.exec(url.pathname);
    if (!m) {
      this.send(res, 404, statusObject(404, 'NotFound', 'the server could not find the requested resource'));
      return;
    }
    const watchPath = m[1] !== undefined;
    const name = m[2] === undefined ? undefined : decodeURIComponent(m[2]);
    const status = m[3] !== undefined;
    const watch = watchPath || query.watch === 'true' || query.watch === '1';
    if (method === 'GET' && watch && !status) return this.serveWatch(req, res, query, name);
    if (watchPath) return this.send(res, 405, statusObject(405, 'MethodNotAllowed', `${method} not allowed on watch`));
    if (name === undefined) {
      if (method === 'GET') return this.serveList(res, query);
      if (method === 'POST') return void readJsonBody(req, res, (body) => serveCreate(this.store, res, body));
    } else {
      if (method === 'GET') return serveGet(this.store, res, name);
      if (method === 'PUT') return void readJsonBody(req, res, (body) => this.serveWrite(res, name, status, body, undefined));
      if (method === 'PATCH') {
        return void readJsonBody(req, res, (body) => this.serveWrite(res, name, status, body, req.headers['content-type']));
      }
      if (method === 'DELETE' && !status) return serveDelete(this.store, res, name);
    }
    this.send(res, 405, statusObject(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource`));
  }

  private send(res: ServerResponse, code: number, body: Json): void {
    sendJson(res, code, body);
  }

  private takeFailure(kind: FailKind): number | undefined {
    const f = this.failures[kind];
    if (f.count <= 0) return undefined;
    f.count -= 1;
    return f.code;
  }

  private failWith(res: ServerResponse, code: number): void {
    this.send(res, code, statusObject(code, code === 500 ? 'InternalError' : 'Unknown', `injected failure (HTTP ${code})`));
  }

  private serveList(res: ServerResponse, query: Record<string, string>): void {
    const failed = this.takeFailure('list');
    if (failed !== undefined) return this.failWith(res, failed);
    serveList(this.store, res, query, { ignoreLimit: this.ignoreLimit });
  }

  private serveWrite(res: ServerResponse, name: string, statusOnly: boolean, body: Json, contentType: string | undefined): void {
    serveWrite(this.store, res, name, statusOnly, body, contentType, !this.rejectJsonPatch);
  }

  private serveWatch(req: IncomingMessage, res: ServerResponse, query: Record<string, string>, name: string | undefined): void {
    const failed = this.takeFailure('watch');
    if (failed !== undefined) return this.failWith(res, failed);
    let selectors: Selectors;
    try {
      selectors = parseSelectors(query.labelSelector, name === undefined ? query.fieldSelector : `metadata.name=${name}`);
    } catch (err) {
      return this.send(res, 400, statusObject(400, 'BadRequest', (err as Error).message));
    }
    const rvParam = query.resourceVersion ?? '';
    const fromRv = rvParam === '' || rvParam === '0' ? undefined : Number(rvParam);
    if (fromRv !== undefined && !Number.isSafeInteger(fromRv)) {
      return this.send(res, 400, statusObject(400, 'BadRequest', `invalid resource version: ${rvParam}`));
    }
    const timeoutMs = query.timeoutSeconds === undefined ? undefined : Number(query.timeoutSeconds) * 1000;
    const watch = { selectors, fromRv, rvParam, bookmarks: query.allowWatchBookmarks === 'true', timeoutMs };
    this.watches.serve(req, res, watch, { bookmarkIntervalMs: this.bookmarkIntervalMs, watchTimeoutMs: this.watchTimeoutMs });
  }
}
