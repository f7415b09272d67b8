/**
 * Injectable time for control loops, so tests drive retries without sleeping
 * (the pattern of client-go's and client-node's cache tests).
 */

/** A clock and timer source. */
export interface Clock {
  /** Milliseconds, monotonic enough for intervals. */
  now(): number;
  /** Run `fn` after `ms` milliseconds; returns a handle for `clearTimeout`. */
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** The real clock; its timers do not keep the process alive on their own. */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/** A retry delay sequence. */
export interface Backoff {
  /** The next delay in milliseconds (grows until reset). */
  next(): number;
  /** Start again from the initial delay (after a success). */
  reset(): void;
  /** Attempts since the last reset. */
  readonly attempts: number;
}

/** Parameters of `exponentialBackoff`. */
export interface BackoffOptions {
  /** First delay, ms (default 500). */
  initialMs?: number;
  /** Cap, ms (default 30000). */
  maxMs?: number;
  /** Growth per attempt (default 2). */
  factor?: number;
  /** Jitter fraction: each delay is scaled by a factor in [1 - jitter, 1 + jitter] (default 0.2). */
  jitter?: number;
  /** Random source in [0, 1) (default Math.random). */
  random?: () => number;
}

/** Exponential backoff with jitter, capped. */
export function exponentialBackoff(opts: BackoffOptions = {}): Backoff {
  const initial = opts.initialMs ?? 500;
  const max = opts.maxMs ?? 30_000;
  const factor = opts.factor ?? 2;
  const jitter = opts.jitter ?? 0.2;
  const random = opts.random ?? Math.random;
  let attempts = 0;
  return {
    next() {
      const base = Math.min(max, initial * factor ** attempts);
      attempts++;
      const scaled = base * (1 - jitter + 2 * jitter * random());
      return Math.max(0, Math.round(Math.min(max, scaled)));
    },
    reset() {
      attempts = 0;
    },
    get attempts() {
      return attempts;
    },
  };
}

/** Sleep on `clock`; resolves early when `signal` aborts. */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clock.clearTimeout(h);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const h = clock.setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
