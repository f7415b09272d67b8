/**
 * Status objects and JSON replies of the in-process API server (test
 * support), worded as kube-apiserver words them.
 */
import type { ServerResponse } from 'node:http';
import type { Json, JsonObject } from './fake-apiserver-patch.js';

/** A failure Status object as the real server returns it. */
export function statusObject(code: number, reason: string, message: string, details?: JsonObject): JsonObject {
  const s: JsonObject = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
  if (details) s.details = details;
  return s;
}

/** 404 for a Node. */
export function notFound(name: string): JsonObject {
  return statusObject(404, 'NotFound', `nodes "${name}" not found`, { name, kind: 'nodes' });
}

/** 410 Expired for a watch from `rv` when the oldest kept revision is `oldest`. */
export function expired(rv: number | string, oldest: number): JsonObject {
  return statusObject(410, 'Expired', `too old resource version: ${rv} (${oldest})`);
}

/** Reply `code` with `body` as application/json. */
export function sendJson(res: ServerResponse, code: number, body: Json): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}
