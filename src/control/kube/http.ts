/**
 * Requests to the API server over node:http(s), with client-node's credentials.
 *
 * The list and the watch of Nodes do not go through client-node's generated API or its
 * Watch: both would hold whole Node objects (status.images included) before userlay could
 * trim them. Here a response is handed over as a byte stream, so the caller parses it item by
 * item (node-stream.ts) and keeps only the trimmed Nodes. The two other calls (get the own
 * Node, merge-patch its status) are small JSON requests (kubeJsonFor). client-node's
 * KubeConfig still does what it is there for: cluster URL, TLS (CA, client certificates) and
 * credentials (tokens, token files, exec and auth-provider plugins), asked for every request
 * (credentials.ts: in process, or through the credential helper); a 401 drops them.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { UserlayError } from '../../errors.js';
import { credentialsOf, type KubeAuth, type KubeCredentials } from './credentials.js';

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
 * A KubeGet over node:http(s) with `auth`'s cluster and credentials. A non-200 answer rejects
 * with UserlayError `EHTTP<status>` (with `statusCode`, and the Status message); a transport
 * failure with the errno code (ECONNREFUSED, ECONNRESET, ETIMEDOUT...).
 */
export function kubeGetFor(auth: KubeAuth): KubeGet {
  const creds = credentialsOf(auth);
  return async (pathAndQuery, opts) => {
    const res = await open(creds, 'GET', pathAndQuery, opts, undefined);
    if (res.statusCode === 200) return res;
    throw await statusError(res, opts.what, creds);
  };
}

/** A JSON request: method, path, optional body with its Content-Type; resolves with the parsed 2xx body. */
export type KubeJson = (method: 'GET' | 'PATCH', path: string, what: string, body?: { contentType: string; value: unknown }) => Promise<unknown>;

/**
 * A KubeJson over node:http(s) with `auth`'s cluster and credentials; fails as KubeGet does.
 * Each request may stay silent for `idleTimeoutMs` (default 30 s).
 */
export function kubeJsonFor(auth: KubeAuth, idleTimeoutMs = 30_000): KubeJson {
  const creds = credentialsOf(auth);
  return async (method, path, what, body) => {
    const res = await open(creds, method, path, { what, idleTimeoutMs }, body && { contentType: body.contentType, data: JSON.stringify(body.value) });
    if (res.statusCode === undefined || res.statusCode < 200 || res.statusCode > 299) throw await statusError(res, what, creds);
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of res) chunks.push(chunk as Buffer);
    } catch (err) {
      throw transportError(what, err);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw new UserlayError('EAPI', `${what}: the answer is not JSON: ${text.slice(0, 80)}`, { cause: err });
    }
  };
}

/** Open one request with the current credentials; resolves with the response, unread. */
async function open(creds: KubeCredentials, method: string, pathAndQuery: string, opts: SendOptions,
  body: { contentType: string; data: string } | undefined): Promise<IncomingMessage> {
  let auth;
  try {
    auth = await creds.get();
  } catch (err) {
    // a kubeconfig that cannot be loaded is a usage error at start (realDeps asks first); from
    // then on (a file being replaced...) it is one more failed request, retried as the others
    if (err instanceof UserlayError && err.code === 'EUSAGE') throw new UserlayError('EKUBECONFIG', `${opts.what}: ${err.message}`, { cause: err });
    throw transportError(opts.what, err);
  }
  // as client-node builds its URLs: the server may carry a path prefix
  const url = new URL(auth.server.replace(/\/+$/, '') + pathAndQuery);
  const headers: Record<string, string | string[] | number> = { ...(auth.options.headers as Record<string, string> | undefined), Accept: 'application/json' };
  if (body) {
    headers['Content-Type'] = body.contentType;
    headers['Content-Length'] = Buffer.byteLength(body.data);
  }
  const req: RequestOptions = { ...auth.options, method, headers, ...(opts.signal ? { signal: opts.signal } : {}) };
  return send(url, req, opts, body?.data);
}

/** What send() needs of KubeGetOptions. */
interface SendOptions {
  readonly signal?: AbortSignal;
  readonly idleTimeoutMs?: number;
  readonly what: string;
}

function send(url: URL, req: RequestOptions, opts: SendOptions, body?: string): Promise<IncomingMessage> {
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
    r.end(body);
  });
}

/** A transport failure as a UserlayError with the errno code (EABORTED for an abort). */
export function transportError(what: string, err: unknown): UserlayError {
  if (err instanceof UserlayError) return err;
  const e = err as { code?: unknown; name?: string; message?: string };
  const code = typeof e.code === 'string' ? (e.name === 'AbortError' ? 'EABORTED' : e.code) : 'EAPI';
  return new UserlayError(code, `${what}: ${e.message ?? String(err)}`, { cause: err });
}

async function statusError(res: IncomingMessage, what: string, creds: KubeCredentials): Promise<UserlayError> {
  const status = res.statusCode ?? 0;
  if (status === 401) creds.invalidate();
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
