/**
 * The Node informer: userlay's own list + watch (reflector.ts), kept alive.
 *
 * A run of the reflector ends on any error it cannot handle itself (HTTP 500 on list or watch,
 * a socket dropped mid-stream, a refused connection, a silent watch aborted by its watchdog):
 * it only calls the 'error' callbacks, as client-node's ListWatch does. (A clean end of a watch
 * re-watches and a 410 re-lists inside the run.) RestartingInformer starts it again from there
 * after an exponential backoff with jitter, resets the backoff once a run has stayed up for a
 * while, counts restarts for /metrics, and honours a stop flag so that a deliberate stop()
 * stays stopped even when an error arrives afterwards.
 */
import type { V1Node } from '@kubernetes/client-node';
import type { Logger } from '../../log.js';
import { exponentialBackoff, systemClock, type Backoff, type Clock } from '../backoff.js';
import type { KubeAuth } from './credentials.js';
import { kubeGetFor } from './http.js';
import { NodeReflector, type NodeReflectorOptions } from './reflector.js';

/** The informer surface RestartingInformer and PeerSync drive (NodeReflector implements it; tests fake it). */
export interface NodeInformer {
  on(verb: 'add' | 'update' | 'delete' | 'change', cb: (obj: V1Node) => void): void;
  on(verb: 'error' | 'connect', cb: (err?: unknown) => void): void;
  start(): Promise<void>;
  stop(): Promise<void>;
  list(): V1Node[];
}

/** Options of makeNodeInformer: NodeReflectorOptions without the transport. */
export type NodeInformerOptions = Omit<NodeReflectorOptions, 'get'>;

/**
 * The agent's Node informer: a NodeReflector whose requests go to `auth`'s cluster with its
 * credentials (kubeGetFor), listing in pages of 500 and trimming every Node (trimNode).
 */
export function makeNodeInformer(auth: KubeAuth, opts: NodeInformerOptions = {}): NodeReflector {
  return new NodeReflector({ ...opts, get: kubeGetFor(auth) });
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
