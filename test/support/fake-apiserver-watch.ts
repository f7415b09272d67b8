/**
 * Watch streams of the in-process API server (test support).
 *
 * A watch is one chunked HTTP 200 response carrying newline-delimited JSON
 * events `{"type":...,"object":...}`:
 *   1. resourceVersion "" or "0": a synthetic ADDED per stored object; a
 *      number: the stored events after it, or, when it is older than the
 *      history window, one ERROR event with a 410 Expired Status and the end;
 *   2. then every committed event matching the selectors, as it happens;
 *   3. a BOOKMARK (a Node with only metadata.resourceVersion) every
 *      `bookmarkIntervalMs` when the client sent allowWatchBookmarks=true;
 *   4. a clean end after timeoutSeconds (or the server's watchTimeoutMs).
 * A stalled stream (stallAll) stays open and silent: what a client sees when
 * the server or the path to it vanished without a FIN or RST.
 * Selector changes are not turned into DELETED events (the real server does).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { NodeStore, StoredEvent } from './fake-apiserver-store.js';
import { matchesSelectors, type Selectors } from './fake-apiserver-select.js';
import { expired } from './fake-apiserver-status.js';

/** Settings read when a watch starts. */
export interface WatchSettings {
  /** BOOKMARK period, ms; 0 disables. */
  readonly bookmarkIntervalMs: number;
  /** Watch duration when the client gives no timeoutSeconds, ms; undefined: unlimited. */
  readonly watchTimeoutMs: number | undefined;
}

/** What one watch asked for (already validated by the server). */
export interface WatchRequest {
  readonly selectors: Selectors;
  /** undefined: start with the current state ("" or "0"). */
  readonly fromRv: number | undefined;
  /** The resourceVersion parameter as sent (for the 410 message). */
  readonly rvParam: string;
  readonly bookmarks: boolean;
  /** Client timeoutSeconds in ms, if given. */
  readonly timeoutMs: number | undefined;
}

interface ActiveWatch {
  readonly res: ServerResponse;
  readonly socket: Socket;
  readonly close: () => void;
  /** Stop sending anything (events, bookmarks, the timeout end) but keep the connection open. */
  readonly stall: () => void;
}

/** The set of open watch streams over one store. */
export class WatchHub {
  private readonly watches = new Set<ActiveWatch>();
  private waiters: Array<{ n: number; resolve: () => void }> = [];

  constructor(private readonly store: NodeStore) {}

  /** Number of open streams. */
  get size(): number {
    return this.watches.size;
  }

  /** Serve one watch on `res` until it ends. */
  serve(req: IncomingMessage, res: ServerResponse, w: WatchRequest, settings: WatchSettings): void {
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Transfer-Encoding': 'chunked' });
    res.flushHeaders();
    if (w.fromRv !== undefined && w.fromRv < this.store.compactedRevision) {
      res.end(JSON.stringify({ type: 'ERROR', object: expired(w.rvParam, this.store.compactedRevision) }) + '\n');
      return;
    }
    const write = (ev: StoredEvent): void => {
      if (!res.destroyed && !res.writableEnded && matchesSelectors(ev.object, w.selectors)) res.write(ev.line);
    };
    if (w.fromRv === undefined) {
      for (const o of this.store.list()) {
        if (matchesSelectors(o, w.selectors)) res.write(JSON.stringify({ type: 'ADDED', object: o }) + '\n');
      }
    } else {
      for (const ev of this.store.eventsAfter(w.fromRv)) write(ev);
    }
    const unsubscribe = this.store.subscribe(write);
    const timers: NodeJS.Timeout[] = [];
    if (w.bookmarks && settings.bookmarkIntervalMs > 0) {
      timers.push(setInterval(() => {
        if (res.destroyed || res.writableEnded) return;
        const object = { kind: 'Node', apiVersion: 'v1', metadata: { resourceVersion: String(this.store.resourceVersion) } };
        res.write(JSON.stringify({ type: 'BOOKMARK', object }) + '\n');
      }, settings.bookmarkIntervalMs));
    }
    let closed = false;
    const silence = (): void => {
      unsubscribe();
      for (const t of timers) clearTimeout(t);
    };
    const watch: ActiveWatch = {
      res,
      socket: req.socket,
      close: () => {
        if (closed) return;
        closed = true;
        silence();
        this.watches.delete(watch);
        if (!res.writableEnded && !res.destroyed) res.end();
      },
      stall: silence,
    };
    const timeoutMs = w.timeoutMs ?? settings.watchTimeoutMs;
    if (timeoutMs !== undefined && Number.isFinite(timeoutMs) && timeoutMs > 0) timers.push(setTimeout(watch.close, timeoutMs));
    res.on('close', watch.close);
    res.on('error', watch.close); // a write racing the client's disconnect
    this.watches.add(watch);
    const ready = this.waiters.filter((x) => this.watches.size >= x.n);
    this.waiters = this.waiters.filter((x) => this.watches.size < x.n);
    for (const x of ready) x.resolve();
  }

  /** Destroy every stream's socket (no chunked terminator), then forget it. */
  dropAll(): void {
    for (const w of [...this.watches]) {
      w.socket.destroy();
      w.close();
    }
  }

  /** Make every open stream go silent without closing it (a half-open connection, as seen by the client). */
  stallAll(): void {
    for (const w of this.watches) w.stall();
  }

  /** End every stream cleanly. */
  closeAll(): void {
    for (const w of [...this.watches]) w.close();
  }

  /** Send ERROR 410 (from the current revision) on every stream, then end it. */
  expireAll(): void {
    const line = JSON.stringify({ type: 'ERROR', object: expired(this.store.resourceVersion, this.store.compactedRevision) }) + '\n';
    for (const w of [...this.watches]) {
      w.res.write(line);
      w.close();
    }
  }

  /** Resolve when at least `n` streams are open; reject after `timeoutMs`. */
  waitFor(n: number, timeoutMs: number): Promise<void> {
    if (this.watches.size >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = {
        n,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== waiter);
        reject(new Error(`waitForWatches(${n}): ${this.watches.size} open after ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }
}
