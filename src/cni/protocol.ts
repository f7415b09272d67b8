/**
 * The wire format between the CNI shim (native/cni/userlay-cni.c) and the agent, over a unix
 * stream socket, one request per connection:
 *
 *   request  "USERLAY-CNI 1\n"  then each CNI_* variable as "NAME=value\0"  then "\0"
 *            then the network config bytes (what the runtime wrote to the plugin's stdin);
 *            the shim then shuts down its write side
 *   answer   "<exit code>\n" then the bytes for the plugin's stdout
 *
 * A DEL the shim could not deliver is stored in the queue directory in the request format.
 */
import { CniCode, CniError } from './errors.js';

const MAGIC = 'USERLAY-CNI 1\n';

/** A decoded request: the CNI_* environment and the raw config. */
export interface CniRequest {
  readonly env: Readonly<Record<string, string>>;
  readonly config: Buffer;
}

/** Encode a request (tests and the lab's runtime use it; the shim writes the same bytes). */
export function encodeRequest(req: CniRequest): Buffer {
  const vars = Object.entries(req.env).filter(([k]) => k.startsWith('CNI_')).map(([k, v]) => `${k}=${v}\0`).join('');
  return Buffer.concat([Buffer.from(MAGIC + vars + '\0'), req.config]);
}

/** Decode a request; throws CNI error 6 on anything that is not one. */
export function decodeRequest(data: Buffer): CniRequest {
  if (data.subarray(0, MAGIC.length).toString('latin1') !== MAGIC) {
    throw new CniError(CniCode.decodeFailure, 'userlay: not a userlay CNI request (shim and agent versions differ?)');
  }
  const env: Record<string, string> = {};
  let i = MAGIC.length;
  for (;;) {
    const end = data.indexOf(0, i);
    if (end < 0) throw new CniError(CniCode.decodeFailure, 'userlay: truncated CNI request');
    if (end === i) {
      i++;
      break;
    }
    const entry = data.subarray(i, end).toString('utf8');
    const eq = entry.indexOf('=');
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
    i = end + 1;
  }
  return { env, config: data.subarray(i) };
}

/** Encode the answer: exit code line, then stdout. */
export function encodeAnswer(exitCode: number, stdout: string): Buffer {
  return Buffer.from(`${exitCode}\n${stdout}`);
}
