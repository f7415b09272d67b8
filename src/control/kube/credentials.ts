/**
 * Request credentials for the API server: what one request needs (server URL, TLS material,
 * auth headers), as client-node's KubeConfig makes them.
 *
 * Two sources, one interface (KubeCredentials):
 *   credentialsOf(kc)    a KubeConfig in this process, asked afresh for every request
 *                        (applyToHTTPSOptions). Tests; and the agent when the kubeconfig names
 *                        a proxy-url (the proxy agent is an object that cannot be handed over).
 *   helperCredentials()  the agent's way: client-node runs in a short-lived child process
 *                        (credential-helper.ts) that prints the credentials as JSON and exits.
 *
 * Why a child process: importing client-node costs the agent ~42 MB of RSS for good. It is an
 * ES module, and V8 keeps every loaded module with its source (21 MB of JavaScript: config.js
 * imports the whole generated API); dropping the references frees nothing (measured: heap
 * used 3 -> 31 MB, unchanged after a GC), and a worker thread that loads it and is terminated
 * leaves 19-35 MB behind. A helper process gives all of it back when it exits.
 *
 * Freshness: the helper's answer is used for at most `maxAgeMs` (60 s: client-node re-reads a
 * token file after 60 s, so does client-go), and dropped at once when the server answers 401,
 * so rotated service-account tokens, rotated client certificates and expired exec
 * credentials are picked up as they are with client-node in process. The agent makes few
 * requests (a watch lasts 5-10 minutes), so the helper runs a few times an hour.
 */
import { spawn } from 'node:child_process';
import type { RequestOptions } from 'node:https';
import { fileURLToPath } from 'node:url';
import type { KubeConfig } from '@kubernetes/client-node';
import { UserlayError, usageError } from '../../errors.js';

/** What one request to the API server needs. `options` may hold Buffers and an http(s).Agent. */
export interface KubeRequestAuth {
  /** Cluster URL ("https://10.0.0.1:443", maybe with a path prefix). */
  readonly server: string;
  /** node:https options: ca, cert, key, rejectUnauthorized, servername, headers, auth, agent... */
  readonly options: RequestOptions;
  /** The cluster's proxy-url, when it has one. */
  readonly proxyUrl?: string;
}

/** A source of request credentials. */
export interface KubeCredentials {
  /** The credentials for a request made now. Rejects with UserlayError when none can be had. */
  get(): Promise<KubeRequestAuth>;
  /** The server refused them (401): the next get() must not reuse them. */
  invalidate(): void;
}

/** A KubeConfig in this process, or a source of credentials. */
export type KubeAuth = KubeConfig | KubeCredentials;

/** The request options `kc` makes now (applyToHTTPSOptions: TLS, tokens, plugins, its agent). */
export async function requestAuthOf(kc: KubeConfig): Promise<KubeRequestAuth> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new UserlayError('EKUBECONFIG', 'the kubeconfig has no current cluster');
  const options: RequestOptions = {};
  await kc.applyToHTTPSOptions(options);
  return { server: cluster.server, options, ...(cluster.proxyUrl ? { proxyUrl: cluster.proxyUrl } : {}) };
}

/** `auth` as KubeCredentials; a KubeConfig is asked afresh for every request. */
export function credentialsOf(auth: KubeAuth): KubeCredentials {
  if (!isKubeConfig(auth)) return auth;
  return { get: () => requestAuthOf(auth), invalidate: () => {} };
}

function isKubeConfig(auth: KubeAuth): auth is KubeConfig {
  return typeof (auth as KubeConfig).applyToHTTPSOptions === 'function';
}

/** The request options that can cross a process boundary (no agent, no functions). */
const WIRE_OPTIONS = ['ca', 'cert', 'key', 'pfx', 'passphrase', 'rejectUnauthorized', 'servername', 'headers', 'auth'] as const;

type WireValue = string | boolean | { base64: string } | Record<string, string | string[]>;

/** `auth` as the helper prints it: JSON, Buffers as { base64 }; the agent is left out. */
export function encodeRequestAuth(auth: KubeRequestAuth): string {
  const options: Record<string, WireValue> = {};
  const opts = auth.options as Record<string, unknown>;
  for (const k of WIRE_OPTIONS) {
    const v = opts[k];
    if (v === undefined || v === null) continue;
    options[k] = Buffer.isBuffer(v) ? { base64: v.toString('base64') } : v instanceof Uint8Array ? { base64: Buffer.from(v).toString('base64') } : (v as WireValue);
  }
  return JSON.stringify({ server: auth.server, options, ...(auth.proxyUrl ? { proxyUrl: auth.proxyUrl } : {}) });
}

/** The inverse of encodeRequestAuth. Throws UserlayError 'EKUBECONFIG' on a malformed text. */
export function decodeRequestAuth(text: string): KubeRequestAuth {
  let o: { server?: unknown; options?: Record<string, unknown>; proxyUrl?: unknown };
  try {
    o = JSON.parse(text) as typeof o;
  } catch (err) {
    throw new UserlayError('EKUBECONFIG', `credential helper: not JSON: ${text.slice(0, 80)}`, { cause: err });
  }
  if (typeof o.server !== 'string' || typeof o.options !== 'object' || o.options === null) {
    throw new UserlayError('EKUBECONFIG', `credential helper: no server/options in its answer`);
  }
  const options: Record<string, unknown> = {};
  for (const k of WIRE_OPTIONS) {
    const v = o.options[k];
    if (v === undefined) continue;
    options[k] = typeof v === 'object' && v !== null && typeof (v as { base64?: unknown }).base64 === 'string'
      ? Buffer.from((v as { base64: string }).base64, 'base64') : v;
  }
  return { server: o.server, options: options as RequestOptions, ...(typeof o.proxyUrl === 'string' ? { proxyUrl: o.proxyUrl } : {}) };
}

/** Runs the helper once: its stdout on exit 0; rejects with its stderr and exit code. */
export type HelperRunner = (args: readonly string[]) => Promise<string>;

/** Options of helperCredentials. */
export interface HelperCredentialsOptions {
  /** --kubeconfig; undefined = in-cluster service account. */
  readonly kubeconfig: string | undefined;
  /** How long one answer is used, ms (default 60 s). */
  readonly maxAgeMs?: number;
  /** How long the helper may take (an exec plugin may be slow), ms (default 30 s). */
  readonly timeoutMs?: number;
  /** Replaces the child process (tests). */
  readonly run?: HelperRunner;
  /** Milliseconds now (tests). */
  readonly now?: () => number;
}

/** Exit code of the helper when the kubeconfig cannot be loaded at all (a usage error). */
export const HELPER_USAGE_EXIT = 2;

/**
 * KubeCredentials from credential-helper.ts in a child process (see the file header): one run
 * at a time, its answer reused for `maxAgeMs`. A helper that exits HELPER_USAGE_EXIT rejects
 * with usageError('--kubeconfig', ...); any other failure with UserlayError 'EKUBECONFIG'.
 */
export function helperCredentials(o: HelperCredentialsOptions): KubeCredentials {
  const run = o.run ?? runHelper(o.timeoutMs ?? 30_000);
  const now = o.now ?? Date.now;
  const maxAgeMs = o.maxAgeMs ?? 60_000;
  const args = o.kubeconfig === undefined ? [] : ['--kubeconfig', o.kubeconfig];
  let cached: { auth: KubeRequestAuth; at: number } | undefined;
  let pending: Promise<KubeRequestAuth> | undefined;
  return {
    get() {
      if (cached && now() - cached.at < maxAgeMs) return Promise.resolve(cached.auth);
      pending ??= run(args).then((text) => {
        const auth = decodeRequestAuth(text);
        cached = { auth, at: now() };
        return auth;
      }).finally(() => { pending = undefined; });
      return pending;
    },
    invalidate() {
      cached = undefined;
    },
  };
}

/**
 * V8 flags of the helper: its peak RSS (it lives ~0.5 s) 113 MB with the semi-space limit
 * alone, 99 MB with --optimize-for-size too. (--lite-mode/--jitless would give 85-90 MB but
 * turn off WebAssembly, which fetch-based auth providers need.)
 */
const HELPER_NODE_FLAGS = ['--optimize-for-size', '--max-semi-space-size=1'];

/** The helper as a child process: this node binary, HELPER_NODE_FLAGS, credential-helper.js. */
function runHelper(timeoutMs: number): HelperRunner {
  const script = fileURLToPath(new URL('./credential-helper.js', import.meta.url));
  return (args) => new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...HELPER_NODE_FLAGS, script, ...args], { stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { if (err.length < 4096) err += d; });
    child.on('error', (e) => reject(new UserlayError('EKUBECONFIG', `credential helper: ${e.message}`, { cause: e })));
    child.on('close', (code, signal) => {
      if (code === 0) return resolve(out);
      const why = err.trim().split('\n')[0] || (signal ? `killed by ${signal}` : `exit ${code}`);
      if (code === HELPER_USAGE_EXIT) return reject(usageError('--kubeconfig', why.replace(/^--kubeconfig: /, '')));
      reject(new UserlayError('EKUBECONFIG', `credential helper: ${why}`));
    });
  });
}
