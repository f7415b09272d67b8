/**
 * The Node REST verbs of the fake API server (test support): list (selectors,
 * limit/continue), get, create, delete, and PUT/PATCH of a Node or its
 * status, each answering from a NodeStore the way kube-apiserver does
 * (Status objects for errors, resourceVersion preconditions, the Node
 * strategies). Routing, fault injection and watches stay in fake-apiserver.ts.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { acceptsPatchType, applyPatchOfType, type Json, type JsonObject } from './fake-apiserver-patch.js';
import { describeName, isNamedObject, type NodeStore } from './fake-apiserver-store.js';
import { matchesSelectors, parseSelectors, type Selectors } from './fake-apiserver-select.js';
import { notFound, sendJson as send, statusObject } from './fake-apiserver-status.js';

/** Read a JSON body; answers 400 itself when the body is not JSON. */
export function readJsonBody(req: IncomingMessage, res: ServerResponse, then: (body: Json) => void): void {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const text = Buffer.concat(chunks).toString('utf8');
    let body: Json;
    try {
      body = JSON.parse(text) as Json;
    } catch (err) {
      send(res, 400, statusObject(400, 'BadRequest', `error decoding request body: ${(err as Error).message}`));
      return;
    }
    then(body);
  });
}

/** How serveList pages. */
export interface ListBehaviour {
  /** Answer every list whole, as kube-apiserver does from its watch cache (resourceVersion=0). */
  readonly ignoreLimit?: boolean;
}

/**
 * GET /api/v1/nodes: a NodeList after labelSelector/fieldSelector, paged by limit/continue.
 * A continue token carries the first page's resourceVersion (every page reports it, as the
 * real server serves all pages from one snapshot) and the last name served; once that revision
 * is compacted the token is too old: 410 Expired, as kube-apiserver answers.
 */
export function serveList(store: NodeStore, res: ServerResponse, query: Record<string, string>, behaviour: ListBehaviour = {}): void {
  let selectors: Selectors;
  try {
    selectors = parseSelectors(query.labelSelector, query.fieldSelector);
  } catch (err) {
    return send(res, 400, statusObject(400, 'BadRequest', (err as Error).message));
  }
  let items = store.list().filter((o) => matchesSelectors(o, selectors));
  let rv = store.resourceVersion;
  const limit = query.limit === undefined || behaviour.ignoreLimit ? 0 : Number(query.limit);
  if (query.continue && !behaviour.ignoreLimit) {
    let token: { rv: number; after: string };
    try {
      token = JSON.parse(Buffer.from(query.continue, 'base64url').toString('utf8')) as { rv: number; after: string };
      if (!Number.isSafeInteger(token.rv) || typeof token.after !== 'string') throw new Error('bad token');
    } catch {
      return send(res, 400, statusObject(400, 'BadRequest', 'invalid continue token'));
    }
    if (token.rv <= store.compactedRevision && token.rv < store.resourceVersion) {
      return send(res, 410, statusObject(410, 'Expired',
        'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.'));
    }
    rv = token.rv;
    items = items.filter((o) => o.metadata.name > token.after);
  }
  const metadata: JsonObject = { resourceVersion: String(rv) };
  if (limit > 0 && items.length > limit) {
    metadata.remainingItemCount = items.length - limit;
    items = items.slice(0, limit);
    const after = items[items.length - 1]!.metadata.name;
    metadata.continue = Buffer.from(JSON.stringify({ rv, after }), 'utf8').toString('base64url');
  }
  send(res, 200, { kind: 'NodeList', apiVersion: 'v1', metadata, items });
}

/** GET /api/v1/nodes/NAME. */
export function serveGet(store: NodeStore, res: ServerResponse, name: string): void {
  const obj = store.get(name);
  if (!obj) return send(res, 404, notFound(name));
  send(res, 200, obj);
}

/** POST /api/v1/nodes: 201 with the stored object, 409 AlreadyExists. */
export function serveCreate(store: NodeStore, res: ServerResponse, body: Json): void {
  if (!isNamedObject(body)) return send(res, 400, statusObject(400, 'BadRequest', 'metadata.name: Required value'));
  const created = store.create(body);
  if (!created) {
    const name = body.metadata.name;
    return send(res, 409, statusObject(409, 'AlreadyExists', `nodes "${name}" already exists`, { name, kind: 'nodes' }));
  }
  send(res, 201, created);
}

/** DELETE /api/v1/nodes/NAME: a Success Status naming the deleted object. */
export function serveDelete(store: NodeStore, res: ServerResponse, name: string): void {
  const gone = store.delete(name);
  if (!gone) return send(res, 404, notFound(name));
  const details: JsonObject = { name, kind: 'nodes', uid: gone.metadata.uid ?? null };
  send(res, 200, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details });
}

/**
 * PUT (contentType undefined) or PATCH of a Node or its status; JSON patch
 * is applied only when `allowJsonPatch` (see FakeApiServerOptions.rejectJsonPatch).
 */
export function serveWrite(store: NodeStore, res: ServerResponse, name: string, statusOnly: boolean, body: Json, contentType: string | undefined, allowJsonPatch: boolean): void {
  const old = store.get(name);
  let next: Json;
  if (contentType === undefined) {
    next = body;
  } else {
    const media = contentType.split(';')[0]!.trim().toLowerCase();
    if (!old && acceptsPatchType(media, allowJsonPatch)) return send(res, 404, notFound(name));
    const out = applyPatchOfType(media, old ?? {}, body, allowJsonPatch);
    if (!out.ok) return send(res, out.code, statusObject(out.code, out.reason, out.message, { name, kind: 'nodes' }));
    next = out.value;
  }
  if (!old) return send(res, 404, notFound(name));
  if (!isNamedObject(next) || next.metadata.name !== name) {
    return send(res, 400, statusObject(400, 'BadRequest', `the name of the object (${describeName(next)}) does not match the name on the URL (${name})`));
  }
  const wantRv = next.metadata.resourceVersion;
  if (wantRv !== undefined && wantRv !== null && wantRv !== '' && wantRv !== old.metadata.resourceVersion) {
    const msg = `Operation cannot be fulfilled on nodes "${name}": the object has been modified; please apply your changes to the latest version and try again`;
    return send(res, 409, statusObject(409, 'Conflict', msg, { name, kind: 'nodes' }));
  }
  // Node strategies: /status keeps spec, the main resource keeps status.
  const keep = statusOnly ? 'spec' : 'status';
  if (old[keep] === undefined) delete next[keep];
  else next[keep] = old[keep]!;
  send(res, 200, store.update(next)!);
}
