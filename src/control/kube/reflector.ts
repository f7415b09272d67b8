/**
 * NodeReflector: userlay's own list + watch of Nodes, with a cache of trimmed Nodes
 * (client-go's Reflector + Store with a transform, in one small class).
 *
 *   start()  list in pages (limit/continue), streamed and trimmed item by item
 *            (node-stream.ts, trimNode); the cache becomes exactly that list (add/update/delete
 *            events for the difference); onListed; then the watch loop runs in the background.
 *   watch    GET ?watch=true&resourceVersion=RV&allowWatchBookmarks=true&timeoutSeconds=T
 *            (T jittered), read line by line, each Node trimmed before it is kept.
 *            ADDED/MODIFIED/DELETED update the cache and fire the callbacks; BOOKMARK moves RV.
 *            A MODIFIED that leaves the trimmed Node as it was (a status heartbeat) fires
 *            nothing: most writes to Nodes are of that kind.
 *            A clean end (the server's timeout) re-watches from RV.
 *            ERROR 410 (or HTTP 410): RV is too old — list again, then watch on.
 *            A stream silent for longer than the server could keep it open (bookmarks come
 *            every minute or so) is a half-open connection: it is aborted (the watchdog).
 *   errors   any other failure (HTTP 500, a dropped socket, a refused connection, the watchdog,
 *            an expired continue token three times in a row) ends the loop and fires 'error',
 *            as client-node's ListWatch does; RestartingInformer (informer.ts) starts it again
 *            with backoff. stop() ends it for good and fires nothing.
 *
 * Why not client-node's ListWatch: it keeps whole Node objects (status.images: 10-20 KB each)
 * in its cache and parses each list and event into client-node models first; at 5,000 real
 * Nodes that was 250 MB of agent RSS (bench/RESULTS.md, issue 9).
 */
import type { IncomingMessage } from 'node:http';
import type { V1Node } from '@kubernetes/client-node';
import { UserlayError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { trimNode } from './desired-peers.js';
import { transportError, type KubeGet } from './http.js';
import { LineSplitter, ListSplitter } from './node-stream.js';
import type { NodeInformer } from './informer.js';

/** Options of NodeReflector. */
export interface NodeReflectorOptions {
  /** Opens GETs on the API server (kubeGetFor(kc), or a fake). */
  get: KubeGet;
  /** Keep only annotations under this prefix (default: keep all). */
  annotationPrefix?: string;
  /** Items per list page (default 500). */
  pageSize?: number;
  /** Server-side watch timeout, s (jittered up to twice this; default 300). */
  timeoutSeconds?: number;
  /** Silent-stream limit, ms (default: the jittered watch timeout + 30 s). */
  idleMs?: number;
  /** How long a list request may stay silent (before or during its body), ms (default 60 s). */
  listTimeoutMs?: number;
  /** Runs after each complete list has been applied to the cache. */
  onListed?: () => void;
  log?: Logger;
}

type Verb = 'add' | 'update' | 'delete' | 'change';
type WatchEnd = 'closed' | 'expired';

/** Continue tokens that expired (410) in a row before the list counts as failed. */
const LIST_ATTEMPTS = 3;

/** A list+watch loop over /api/v1/nodes with a cache of trimmed Nodes; see the file header. */
export class NodeReflector implements NodeInformer {
  private cache = new Map<string, V1Node>();
  private readonly callbacks: Record<Verb, Array<(n: V1Node) => void>> = { add: [], update: [], delete: [], change: [] };
  private readonly errorCallbacks: Array<(err?: unknown) => void> = [];
  private readonly connectCallbacks: Array<(err?: unknown) => void> = [];
  private resourceVersion = '';
  /** Each start() begins a new run; a run that is no longer current does nothing more. */
  private run = 0;
  private abort: AbortController | undefined;
  /** Complete lists done. */
  lists = 0;
  /** Watch requests made. */
  watches = 0;
  /** MODIFIED events that changed nothing the agent reads (no callbacks fired). */
  unchanged = 0;

  constructor(private readonly opts: NodeReflectorOptions) {}

  on(verb: 'add' | 'update' | 'delete' | 'change', cb: (obj: V1Node) => void): void;
  on(verb: 'error' | 'connect', cb: (err?: unknown) => void): void;
  on(verb: Verb | 'error' | 'connect', cb: (arg: never) => void): void {
    if (verb === 'error') this.errorCallbacks.push(cb as (err?: unknown) => void);
    else if (verb === 'connect') this.connectCallbacks.push(cb as (err?: unknown) => void);
    else this.callbacks[verb].push(cb as (n: V1Node) => void);
  }

  /** The cached (trimmed) Nodes. */
  list(): V1Node[] {
    return [...this.cache.values()];
  }

  /** The resourceVersion the next watch starts from ('' before the first list). */
  get lastResourceVersion(): string {
    return this.resourceVersion;
  }

  /**
   * List, then watch in the background. Resolves once the list is in the cache, or once a
   * failed list has been reported through 'error'. A running loop is replaced.
   */
  async start(): Promise<void> {
    this.abort?.abort();
    const run = ++this.run;
    const abort = new AbortController();
    this.abort = abort;
    for (const cb of this.connectCallbacks) cb();
    try {
      await this.listAll(abort.signal);
    } catch (err) {
      this.fail(run, err);
      return;
    }
    if (run !== this.run) return;
    void this.watchLoop(run, abort.signal);
  }

  /** Stop the loop for good (until the next start()); fires no 'error'. Idempotent. */
  async stop(): Promise<void> {
    this.run++;
    this.abort?.abort();
    this.abort = undefined;
  }

  private fail(run: number, err: unknown): void {
    if (run !== this.run) return; // stopped or restarted: not an error of the current run
    this.abort?.abort();
    for (const cb of this.errorCallbacks) cb(err);
  }

  private async watchLoop(run: number, signal: AbortSignal): Promise<void> {
    try {
      while (run === this.run) {
        const end = await this.watchOnce(signal);
        if (run !== this.run) return;
        if (end === 'expired') {
          this.opts.log?.info('node watch expired (410); listing again', { resourceVersion: this.resourceVersion });
          await this.listAll(signal);
        }
      }
    } catch (err) {
      this.fail(run, err);
    }
  }

  // ---- list -----------------------------------------------------------------

  private async listAll(signal: AbortSignal): Promise<void> {
    const started = Date.now();
    for (let attempt = 1; ; attempt++) {
      try {
        const { items, resourceVersion, pages, bytes } = await this.listPages(signal);
        if (signal.aborted) return;
        this.replace(items, resourceVersion);
        this.lists++;
        this.opts.log?.info('nodes listed', { nodes: items.size, pages, bytes, resourceVersion, ms: Date.now() - started });
        this.opts.onListed?.();
        return;
      } catch (err) {
        // an expired continue token: the snapshot is gone, start the list over
        if (!(err instanceof UserlayError && err.code === 'EHTTP410' && attempt < LIST_ATTEMPTS) || signal.aborted) throw err;
        this.opts.log?.info('node list continue token expired; listing again', { attempt });
      }
    }
  }

  private async listPages(signal: AbortSignal): Promise<{ items: Map<string, V1Node>; resourceVersion: string; pages: number; bytes: number }> {
    const items = new Map<string, V1Node>();
    const limit = this.opts.pageSize ?? 500;
    let resourceVersion: string | undefined;
    let token: string | undefined;
    let pages = 0;
    let bytes = 0;
    do {
      const query = new URLSearchParams({ limit: String(limit) });
      if (token !== undefined) query.set('continue', token);
      const res = await this.opts.get(`/api/v1/nodes?${query}`, { signal, what: 'list nodes', idleTimeoutMs: this.opts.listTimeoutMs ?? 60_000 });
      const splitter = new ListSplitter((item) => {
        const node = this.trim(item as V1Node);
        const name = node.metadata?.name;
        if (name !== undefined) items.set(name, node);
      });
      await consume(res, (chunk) => splitter.write(chunk), 'list nodes');
      const meta = (splitter.end().metadata ?? {}) as { resourceVersion?: string; continue?: string };
      bytes += splitter.bytes;
      pages++;
      // every page of one list is served from the first page's snapshot
      resourceVersion ??= meta.resourceVersion;
      token = meta.continue || undefined; // a server that ignores limit sends no token
    } while (token !== undefined);
    if (resourceVersion === undefined) throw new UserlayError('EBADLIST', 'list nodes: no metadata.resourceVersion in the answer');
    return { items, resourceVersion, pages, bytes };
  }

  /** Make the cache exactly `next`, firing events for the difference (as after a relist). */
  private replace(next: Map<string, V1Node>, resourceVersion: string): void {
    const old = this.cache;
    this.cache = next;
    this.resourceVersion = resourceVersion;
    for (const [name, node] of old) if (!next.has(name)) this.emit('delete', node);
    for (const [name, node] of next) {
      const was = old.get(name);
      if (was === undefined) this.emit('add', node);
      else if (was.metadata?.resourceVersion !== node.metadata?.resourceVersion) this.emit('update', node);
    }
  }

  // ---- watch ----------------------------------------------------------------

  private async watchOnce(signal: AbortSignal): Promise<WatchEnd> {
    const base = this.opts.timeoutSeconds ?? 300;
    const timeoutSeconds = Math.round(base * (1 + Math.random()));
    const idleMs = this.opts.idleMs ?? (timeoutSeconds + 30) * 1000;
    const query = new URLSearchParams({
      watch: 'true', resourceVersion: this.resourceVersion, allowWatchBookmarks: 'true', timeoutSeconds: String(timeoutSeconds),
    });
    const local = new AbortController();
    const onAbort = (): void => local.abort(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    let last = Date.now();
    let silent: UserlayError | undefined;
    const watchdog = setInterval(() => {
      if (Date.now() - last <= idleMs) return;
      silent = new UserlayError('EWATCHSILENT', `watch nodes: no event or bookmark for ${idleMs} ms (half-open connection?)`);
      local.abort(silent);
    }, Math.max(10, Math.min(5000, idleMs / 4)));
    watchdog.unref();
    let expired = false;
    try {
      this.watches++;
      let res: IncomingMessage;
      try {
        res = await this.opts.get(`/api/v1/nodes?${query}`, { signal: local.signal, what: 'watch nodes' });
      } catch (err) {
        if (err instanceof UserlayError && err.code === 'EHTTP410') return 'expired';
        throw err;
      }
      last = Date.now();
      const lines = new LineSplitter((line) => {
        if (expired) return;
        last = Date.now();
        if (this.onWatchEvent(line) === 'expired') {
          expired = true;
          local.abort(new UserlayError('EHTTP410', 'watch nodes: resourceVersion expired'));
        }
      });
      try {
        await consume(res, (chunk) => lines.write(chunk), 'watch nodes');
        lines.end();
      } catch (err) {
        if (expired) return 'expired';
        throw silent ?? err;
      }
      return expired ? 'expired' : 'closed';
    } catch (err) {
      throw silent ?? err;
    } finally {
      clearInterval(watchdog);
      signal.removeEventListener('abort', onAbort);
    }
  }

  /** Apply one watch event line; 'expired' for ERROR 410. Throws for any other ERROR. */
  private onWatchEvent(line: string): 'expired' | undefined {
    let ev: { type?: string; object?: Record<string, unknown> };
    try {
      ev = JSON.parse(line) as typeof ev;
    } catch (err) {
      throw new UserlayError('EBADWATCH', `watch nodes: not a JSON event: ${line.slice(0, 80)}`, { cause: err });
    }
    const obj = ev.object ?? {};
    switch (ev.type) {
      case 'ADDED':
      case 'MODIFIED': {
        const node = this.trim(obj as V1Node);
        const name = node.metadata?.name;
        if (name === undefined) return undefined;
        this.noteVersion(node);
        const old = this.cache.get(name);
        if (old !== undefined && sameButVersion(old, node)) {
          // a write to what userlay does not read (a kubelet heartbeat, new images): nothing
          // changed for the agent, so no event; the cached object (which PeerSync's verdicts
          // are keyed by) stays and only takes the new resourceVersion
          old.metadata!.resourceVersion = node.metadata!.resourceVersion;
          this.unchanged++;
          return undefined;
        }
        this.cache.set(name, node);
        this.emit(old === undefined ? 'add' : 'update', node);
        return undefined;
      }
      case 'DELETED': {
        const node = this.trim(obj as V1Node);
        const name = node.metadata?.name;
        this.noteVersion(node);
        if (name !== undefined && this.cache.delete(name)) this.emit('delete', node);
        return undefined;
      }
      case 'BOOKMARK':
        this.noteVersion(obj as V1Node);
        return undefined;
      case 'ERROR': {
        const status = obj as { code?: number; message?: string };
        if (status.code === 410) return 'expired';
        throw Object.assign(new UserlayError(`EHTTP${status.code ?? 0}`, `watch nodes: ERROR event: ${status.message ?? line.slice(0, 120)}`),
          { statusCode: status.code });
      }
      default:
        this.opts.log?.debug('ignoring watch event of unknown type', { type: ev.type });
        return undefined;
    }
  }

  private noteVersion(obj: V1Node): void {
    const rv = obj.metadata?.resourceVersion;
    if (rv !== undefined && rv !== '') this.resourceVersion = rv;
  }

  private trim(node: V1Node): V1Node {
    return trimNode(node, this.opts.annotationPrefix);
  }

  private emit(verb: 'add' | 'update' | 'delete', node: V1Node): void {
    for (const cb of this.callbacks[verb]) cb(node);
    for (const cb of this.callbacks.change) cb(node);
  }
}

/** Whether two trimmed Nodes are equal apart from metadata.resourceVersion. */
function sameButVersion(a: V1Node, b: V1Node): boolean {
  const key = (n: V1Node): string => JSON.stringify(n, (k, v: unknown) => (k === 'resourceVersion' ? undefined : v));
  return key(a) === key(b);
}

/** Read `res` to its end through `onChunk`; rejects when the stream is cut before its end. */
function consume(res: IncomingMessage, onChunk: (chunk: Buffer) => void, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const done = (err?: unknown): void => {
      if (settled) return;
      settled = true;
      if (err === undefined) resolve();
      else {
        res.destroy();
        reject(err);
      }
    };
    res.on('data', (chunk: Buffer) => {
      if (settled) return;
      try {
        onChunk(chunk);
      } catch (err) {
        done(err);
      }
    });
    res.on('end', () => done());
    res.on('error', (err) => done(transportError(what, err)));
    res.on('close', () => {
      if (!res.complete) done(new UserlayError('ECONNRESET', `${what}: the connection was cut mid-stream`));
    });
  });
}
