/**
 * The agent's CNI endpoint: a unix socket the shim connects to (protocol.ts), and the DEL
 * queue the shim writes when it cannot reach the agent.
 *
 * Start-up order: replay the queue (so no ADD overtakes a DEL queued for the same
 * attachment), then listen, then watch the queue directory for DELs that a shim queued
 * while the socket was unreachable anyway (retry every `retryMs` while some fail).
 * A queued file is removed only after its DEL succeeded.
 */
import { chmod, mkdir, readdir, readFile, rm, lstat } from 'node:fs/promises';
import { watch, type FSWatcher } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { errorCode, wrapSystemError } from '../errors.js';
import type { Logger } from '../log.js';
import { errorObject } from './errors.js';
import { CniPlugin, type CniPluginOptions } from './plugin.js';
import { decodeRequest, encodeAnswer } from './protocol.js';


const MAX_REQUEST = 4 << 20;
const REQUEST_TIMEOUT_MS = 30_000;

/** Options of the server. */
export interface CniServerOptions extends CniPluginOptions {
  readonly socket: string;
  /** Milliseconds between retries of queued DELs that failed (default 10 s). */
  readonly retryMs?: number;
}

/** A running CNI endpoint. */
export interface CniServer {
  readonly plugin: CniPlugin;
  /** Replay the DEL queue now; resolves with how many entries are still pending. */
  drainQueue(): Promise<number>;
  /** Stop listening (requests in flight finish), remove the socket. Idempotent. */
  close(): Promise<void>;
}

/** Start the endpoint: replay the queue, then listen on `opts.socket`. */
export async function startCniServer(opts: CniServerOptions): Promise<CniServer> {
  const { log } = opts;
  const plugin = new CniPlugin(opts);
  const queueDir = path.join(opts.stateDir, 'queue');
  await mkdir(queueDir, { recursive: true, mode: 0o700 });

  let draining: Promise<number> | undefined;
  let again = false;
  const drainOnce = async (): Promise<number> => {
    let pending = 0;
    const names = (await readdir(queueDir).catch(() => [] as string[])).filter((n) => n.endsWith('.req')).sort();
    for (const name of names) {
      const file = path.join(queueDir, name);
      let data: Buffer;
      try {
        data = await readFile(file);
      } catch {
        continue; // taken by a concurrent drain
      }
      let ok = false;
      try {
        const req = decodeRequest(data);
        if (req.env['CNI_COMMAND'] !== 'DEL') {
          log.warn('dropping a queued CNI request that is not a DEL', { file, command: req.env['CNI_COMMAND'] });
          ok = true;
        } else {
          const answer = await plugin.handle(req);
          ok = answer.exitCode === 0;
          if (ok) log.info('queued DEL done', { containerID: req.env['CNI_CONTAINERID'], ifname: req.env['CNI_IFNAME'] });
          else log.warn('queued DEL failed; kept for a retry', { file, answer: answer.stdout.trim() });
        }
      } catch (err) {
        log.warn('dropping an unreadable CNI queue entry', { file, err });
        ok = true;
      }
      if (ok) await rm(file, { force: true });
      else pending++;
    }
    return pending;
  };
  const drainQueue = (): Promise<number> => {
    if (draining) {
      again = true;
      return draining;
    }
    draining = (async () => {
      let pending: number;
      do {
        again = false;
        pending = await drainOnce();
      } while (again);
      return pending;
    })().finally(() => { draining = undefined; });
    return draining;
  };

  let retryTimer: NodeJS.Timeout | undefined;
  const retryMs = opts.retryMs ?? 10_000;
  const drainAndSchedule = (): void => {
    void drainQueue().then((pending) => {
      clearTimeout(retryTimer);
      if (pending > 0 && !closed) retryTimer = setTimeout(drainAndSchedule, retryMs).unref();
    }, (err: unknown) => log.error('replaying the CNI DEL queue failed', { err }));
  };

  const pendingAtStart = await drainQueue();

  await mkdir(path.dirname(opts.socket), { recursive: true });
  await removeStaleSocket(opts.socket);
  const inflight = new Set<net.Socket>();
  // half-open: the shim shuts down its write side and then waits for the answer
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    inflight.add(sock);
    sock.on('close', () => inflight.delete(sock));
    sock.on('error', () => {});
    const chunks: Buffer[] = [];
    let size = 0;
    sock.setTimeout(REQUEST_TIMEOUT_MS, () => sock.destroy());
    sock.on('data', (d: Buffer) => {
      size += d.length;
      if (size > MAX_REQUEST) sock.destroy();
      else chunks.push(d);
    });
    sock.on('end', () => {
      sock.setTimeout(0);
      void (async () => {
        let answer: { exitCode: number; stdout: string };
        try {
          answer = await plugin.handle(decodeRequest(Buffer.concat(chunks)));
        } catch (err) {
          // not a shim request (decodeRequest's CNI error): answer it like any other error
          log.warn('bad CNI request', { err });
          answer = { exitCode: 1, stdout: JSON.stringify(errorObject('1.1.0', err)) + '\n' };
        }
        if (!sock.destroyed) sock.end(encodeAnswer(answer.exitCode, answer.stdout));
      })();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(wrapSystemError(`listen on the CNI socket ${opts.socket}`, err)));
    server.listen(opts.socket, () => resolve());
  });
  await chmod(opts.socket, 0o600);

  let closed = false;
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(queueDir, () => { if (!closed) drainAndSchedule(); });
    watcher.on('error', () => {});
  } catch (err) {
    log.warn('cannot watch the CNI DEL queue; retrying on a timer only', { err });
  }
  drainAndSchedule(); // entries written between the first drain and listen
  log.info('CNI endpoint listening', { socket: opts.socket, stateDir: opts.stateDir, queuedDELsPending: pendingAtStart });

  return {
    plugin,
    drainQueue,
    async close() {
      if (closed) return;
      closed = true;
      clearTimeout(retryTimer);
      watcher?.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await draining;
      await rm(opts.socket, { force: true });
    },
  };
}

/** Remove a socket file left by an agent that died; refuse to remove anything else. */
async function removeStaleSocket(socket: string): Promise<void> {
  try {
    const st = await lstat(socket);
    if (!st.isSocket()) throw wrapSystemError(`CNI socket path ${socket}`, Object.assign(new Error('exists and is not a socket'), { code: 'EEXIST' }));
    await rm(socket, { force: true });
  } catch (err) {
    if (errorCode(err) !== 'ENOENT') throw err;
  }
}
