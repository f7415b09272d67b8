/**
 * The Node informer: client-node 1.4.x ListWatch with watch bookmarks, kept alive.
 *
 * client-node's ListWatch re-watches by itself after a clean close and relists after a 410,
 * but it stops for good on any other error (HTTP 500 on watch, a socket dropped mid-stream,
 * a failed list): it only calls the 'error' callbacks. RestartingInformer restarts it from
 * there after an exponential backoff with jitter, resets the backoff once a watch has stayed up
 * for a while, counts restarts for /metrics, and honours a stop flag so that a deliberate
 * stop() stays stopped even when an error arrives afterwards.
 */
import { ListWatch, Watch, type KubeConfig, type V1Node, type V1NodeList } from '@kubernetes/client-node';
import type { Logger } from '../../log.js';
import { exponentialBackoff, systemClock, type Backoff, type Clock } from '../backoff.js';

/** The informer surface RestartingInformer drives (ListWatch implements it; tests fake it). */
export interface NodeInformer {
  on(verb: 'add' | 'update' | 'delete' | 'change', cb: (obj: V1Node) => void): void;
  on(verb: 'error' | 'connect', cb: (err?: unknown) => void): void;
  start(): Promise<void>;
  stop(): Promise<void>;
  list(): V1Node[];
}

/**
 * A Watch that always asks for bookmarks and a server-side timeout (jittered), and aborts a
 * stream that stays silent longer than the server could legitimately keep it open (a network
 * partition leaves a half-open socket that would otherwise hang until TCP gives up). The abort
 * reaches ListWatch as an error, so RestartingInformer restarts it.
 */
class BookmarkWatch extends Watch {
  constructor(config: KubeConfig, private readonly timeoutSeconds: number, private readonly idleMs: number | undefined) {
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
      callback(phase, obj, w);
    };
    const onDone = (err: any) => {
      clearInterval(timer);
      done(err);
    };
    const controller = await super.watch(path, { ...queryParams, allowWatchBookmarks: true, timeoutSeconds: timeout }, onEvent, onDone);
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

/**
 * A ListWatch over /api/v1/nodes using `list` for the initial and re-lists.
 * `onListed` runs after each successful list has been applied to the cache; `idleMs`
 * overrides the silent-stream limit (default: the watch timeout + 30 s).
 */
export function makeNodeInformer(
  kc: KubeConfig,
  list: () => Promise<V1NodeList>,
  opts: { timeoutSeconds?: number; idleMs?: number; onListed?: () => void } = {},
): NodeInformer {
  const watch = new BookmarkWatch(kc, opts.timeoutSeconds ?? 300, opts.idleMs);
  const listFn = async (): Promise<V1NodeList> => {
    const result = await list();
    // ListWatch fills its cache right after this promise resolves.
    if (opts.onListed) setImmediate(opts.onListed);
    return result;
  };
  return new ListWatch<V1Node>('/api/v1/nodes', watch, listFn, false) as unknown as NodeInformer;
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
