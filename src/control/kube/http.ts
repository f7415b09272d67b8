/**
 * Streaming GETs against the API server, authenticated by client-node's KubeConfig.
 *
 * The list and the watch of Nodes do not go through client-node's generated API or its
 * Watch: both would hold whole Node objects (status.images included) before userlay could
 * trim them. Here a response is handed over as a byte stream, so the caller parses it item by
 * item (node-stream.ts) and keeps only the trimmed Nodes. KubeConfig still does what it is
 * there for: cluster URL, TLS (CA, client certificates) and credentials (tokens, exec and
 * auth-provider plugins) through applyToHTTPSOptions, asked afresh for every request so that
 * rotated tokens are picked up.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import { UserlayError } from '../../errors.js';

/** Opens a GET on the API server; resolves with the 200 response, unread. */
export type KubeGet = (pathAndQuery: string, opts: KubeGetOptions) => Promise<IncomingMessage>;

/** Options of one GET. */
export interface KubeGetOptions {
  /** Aborts the request and the response stream. */
  readonly signal: AbortSignal;
  /** The connection silent this long (before or while the body streams), ms: it is cut with ETIMEDOUT. */
  readonly idleTimeoutMs?: number;
  /** What is being done, for error messages ("list nodes", "watch nodes"). */
  readonly what: string;
}

/**
 * A KubeGet over node:http(s) with `kc`'s current cluster and user. A non-200 answer rejects
 * with UserlayError `EHTTP<status>` (with `statusCode`, and the Status message); a transport
 * failure with the errno code (ECONNREFUSED, ECONNRESET, ETIMEDOUT...).
 */
export function kubeGetFor(kc: KubeConfig): KubeGet {
  return async (pathAndQuery, opts) => {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new UserlayError('EKUBECONFIG', `${opts.what}: the kubeconfig has no current cluster`);
    // as client-node builds its URLs: the server may carry a path prefix
    const url = new URL(cluster.server.replace(/\/+$/, '') + pathAndQuery);
    const req: RequestOptions = { method: 'GET', signal: opts.signal };
    await kc.applyToHTTPSOptions(req);
    req.headers = { ...req.headers, Accept: 'application/json' };
    const res = await send(url, req, opts);
    if (res.statusCode === 200) return res;
    throw await statusError(res, opts.what);
  };
}

function send(url: URL, req: RequestOptions, opts: KubeGetOptions): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const issue = url.protocol === 'https:' ? httpsRequest : httpRequest;
    let response: IncomingMessage | undefined;
    const r = issue(url, req, (res) => {
      response = res;
      resolve(res);
    });
    if (opts.idleTimeoutMs !== undefined) {
      // socket inactivity, for the headers and the whole body: the response (once there) fails with it
      r.setTimeout(opts.idleTimeoutMs, () => {
        const err = Object.assign(new Error(`no data for ${opts.idleTimeoutMs} ms`), { code: 'ETIMEDOUT' });
        response?.destroy(err);
        r.destroy(err);
      });
    }
    r.on('error', (err) => reject(transportError(opts.what, err)));
    r.end();
  });
}

/** A transport failure as a UserlayError with the errno code (EABORTED for an abort). */
export function transportError(what: string, err: unknown): UserlayError {
  if (err instanceof UserlayError) return err;
  const e = err as { code?: unknown; name?: string; message?: string };
  const code = typeof e.code === 'string' ? (e.name === 'AbortError' ? 'EABORTED' : e.code) : 'EAPI';
  return new UserlayError(code, `${what}: ${e.message ?? String(err)}`, { cause: err });
}

async function statusError(res: IncomingMessage, what: string): Promise<UserlayError> {
  const status = res.statusCode ?? 0;
  let text = '';
  try {
    for await (const chunk of res) {
      if (text.length < 4096) text += (chunk as Buffer).toString('utf8');
    }
  } catch {
    // the body is only for the message
  }
  let reason = text.slice(0, 200);
  try {
    reason = (JSON.parse(text) as { message?: string }).message ?? reason;
  } catch {
    // not a Status object: keep the text
  }
  return Object.assign(new UserlayError(`EHTTP${status}`, `${what}: HTTP ${status}: ${reason}`), { statusCode: status });
}
