/**
 * Patch semantics for the in-process API server (test support).
 *
 * - JSON merge patch (RFC 7386): objects merge recursively, `null` deletes a
 *   key, everything else (arrays included) replaces.
 * - Strategic merge patch, SIMPLIFIED: a merge patch, except that the lists the
 *   Node schema tags `patchStrategy:"merge"` with a `type` key
 *   (status.conditions, status.addresses) are merged element by element on
 *   `type`. Directives (`$patch`, `$retainKeys`, `$deleteFromPrimitiveList`...)
 *   and the primitive-list merge of spec.podCIDRs are not implemented; the
 *   agent must not depend on them.
 * - JSON patch (RFC 6902): add, remove, replace, move, copy, test. The server
 *   only uses it when `rejectJsonPatch` is off (see fake-apiserver.ts).
 */
import { isDeepStrictEqual } from 'node:util';

/** Any JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
/** A JSON object. */
export type JsonObject = { [key: string]: Json };

/** True for a plain JSON object (not an array, not null). */
export function isJsonObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Apply an RFC 7386 merge patch to `target` and return the result. Neither
 * argument is modified; the result shares no mutable state with `patch`.
 */
export function applyMergePatch(target: Json | undefined, patch: Json): Json {
  return mergeAt(target, patch, [], undefined);
}

/** The lists merged by key under the simplified strategic merge patch: dotted path -> key field. */
const strategicListKeys: Readonly<Record<string, string>> = {
  'status.conditions': 'type',
  'status.addresses': 'type',
};

/**
 * Apply a strategic merge patch, simplified as described in this file's
 * header: merge patch plus keyed merge of status.conditions/status.addresses.
 */
export function applyStrategicMergePatch(target: Json | undefined, patch: Json): Json {
  return mergeAt(target, patch, [], strategicListKeys);
}

function mergeAt(
  target: Json | undefined,
  patch: Json,
  path: readonly string[],
  listKeys: Readonly<Record<string, string>> | undefined,
): Json {
  if (listKeys && Array.isArray(patch)) {
    const key = listKeys[path.join('.')];
    if (key !== undefined && Array.isArray(target)) return mergeKeyedList(target, patch, key, path, listKeys);
  }
  if (!isJsonObject(patch)) return structuredClone(patch);
  const out: JsonObject = isJsonObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergeAt(out[k], v, [...path, k], listKeys);
  }
  return out;
}

/** Merge list `patch` into `target` element by element on field `key`; unkeyed elements are appended. */
function mergeKeyedList(
  target: readonly Json[],
  patch: readonly Json[],
  key: string,
  path: readonly string[],
  listKeys: Readonly<Record<string, string>>,
): Json[] {
  const out: Json[] = target.map((e) => structuredClone(e));
  for (const item of patch) {
    const id = isJsonObject(item) ? item[key] : undefined;
    const at = id === undefined ? -1 : out.findIndex((e) => isJsonObject(e) && e[key] === id);
    if (at < 0) out.push(structuredClone(item));
    else out[at] = mergeAt(out[at], item, path, listKeys);
  }
  return out;
}

/** A JSON patch that cannot be applied; `malformed` means the document itself is not a patch. */
export class JsonPatchError extends Error {
  constructor(message: string, readonly malformed: boolean) {
    super(message);
    this.name = 'JsonPatchError';
  }
}

/** RFC 6901 pointer -> reference tokens. */
function pointerTokens(pointer: unknown): string[] {
  if (typeof pointer !== 'string' || (pointer !== '' && !pointer.startsWith('/'))) {
    throw new JsonPatchError(`invalid JSON pointer ${JSON.stringify(pointer)}`, true);
  }
  return pointer === '' ? [] : pointer.slice(1).split('/').map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** The container holding the last token of `tokens` inside `doc`, and that token. */
function parentOf(doc: Json, tokens: readonly string[], path: string): [Json[] | JsonObject, string] {
  let cur: Json = doc;
  for (const t of tokens.slice(0, -1)) {
    const next: Json | undefined = Array.isArray(cur) ? cur[Number(t)] : isJsonObject(cur) ? cur[t] : undefined;
    if (next === undefined) throw new JsonPatchError(`doc is missing path: ${path}`, false);
    cur = next;
  }
  if (!Array.isArray(cur) && !isJsonObject(cur)) throw new JsonPatchError(`doc is missing path: ${path}`, false);
  return [cur, tokens[tokens.length - 1]!];
}

function getAt(doc: Json, tokens: readonly string[], path: string): Json {
  if (tokens.length === 0) return doc;
  const [c, key] = parentOf(doc, tokens, path);
  const v = Array.isArray(c) ? c[Number(key)] : c[key];
  if (v === undefined) throw new JsonPatchError(`doc is missing path: ${path}`, false);
  return v;
}

function removeAt(doc: Json, tokens: readonly string[], path: string): Json {
  const [c, key] = parentOf(doc, tokens, path);
  const v = getAt(doc, tokens, path);
  if (Array.isArray(c)) c.splice(Number(key), 1);
  else delete c[key];
  return v;
}

function addAt(doc: Json, tokens: readonly string[], value: Json, path: string): Json {
  if (tokens.length === 0) return value;
  const [c, key] = parentOf(doc, tokens, path);
  if (!Array.isArray(c)) c[key] = value;
  else if (key === '-') c.push(value);
  else {
    const i = Number(key);
    if (!Number.isInteger(i) || i < 0 || i > c.length) throw new JsonPatchError(`index out of range: ${path}`, false);
    c.splice(i, 0, value);
  }
  return doc;
}

/**
 * Apply an RFC 6902 JSON patch (add, remove, replace, move, copy, test) to a
 * copy of `target`. Throws JsonPatchError: `malformed` when `patch` is not an
 * array of operations, otherwise when an operation does not apply.
 */
export function applyJsonPatch(target: Json, patch: Json): Json {
  if (!Array.isArray(patch)) throw new JsonPatchError('a JSON patch must be an array of operations', true);
  let doc = structuredClone(target);
  for (const op of patch) {
    if (!isJsonObject(op) || typeof op.op !== 'string') throw new JsonPatchError('each JSON patch operation needs an "op"', true);
    const path = String(op.path);
    const tokens = pointerTokens(op.path);
    switch (op.op) {
      case 'add':
        doc = addAt(doc, tokens, structuredClone(op.value ?? null), path);
        break;
      case 'remove':
        removeAt(doc, tokens, path);
        break;
      case 'replace':
        getAt(doc, tokens, path);
        doc = tokens.length === 0 ? structuredClone(op.value ?? null) : (removeAt(doc, tokens, path), addAt(doc, tokens, structuredClone(op.value ?? null), path));
        break;
      case 'move':
      case 'copy': {
        const from = pointerTokens(op.from);
        const v = op.op === 'move' ? removeAt(doc, from, String(op.from)) : structuredClone(getAt(doc, from, String(op.from)));
        doc = addAt(doc, tokens, v, path);
        break;
      }
      case 'test':
        if (!isDeepStrictEqual(getAt(doc, tokens, path), op.value)) throw new JsonPatchError(`testing value ${path} failed`, false);
        break;
      default:
        throw new JsonPatchError(`unexpected JSON patch op ${JSON.stringify(op.op)}`, true);
    }
  }
  return doc;
}

/** True when `media` is a patch type applyPatchOfType applies. */
export function acceptsPatchType(media: string, allowJsonPatch: boolean): boolean {
  return media === 'application/merge-patch+json' || media === 'application/strategic-merge-patch+json' ||
    (allowJsonPatch && media === 'application/json-patch+json');
}

/** The result of applyPatchOfType. */
export type PatchOutcome = { ok: true; value: Json } | { ok: false; code: number; reason: string; message: string };

/**
 * Apply `body` to `target` as a patch of media type `media` (parameters such
 * as "; charset" already stripped). JSON patch only when `allowJsonPatch`.
 * Refusals come back as the HTTP code, Status reason and message to answer.
 */
export function applyPatchOfType(media: string, target: Json, body: Json, allowJsonPatch: boolean): PatchOutcome {
  if (media === 'application/merge-patch+json') return { ok: true, value: applyMergePatch(target, body) };
  if (media === 'application/strategic-merge-patch+json') return { ok: true, value: applyStrategicMergePatch(target, body) };
  if (media === 'application/json-patch+json' && allowJsonPatch) {
    try {
      return { ok: true, value: applyJsonPatch(target, body) };
    } catch (err) {
      if (!(err instanceof JsonPatchError)) throw err;
      return err.malformed ? { ok: false, code: 400, reason: 'BadRequest', message: err.message } : { ok: false, code: 422, reason: 'Invalid', message: err.message };
    }
  }
  return {
    ok: false, code: 415, reason: 'UnsupportedMediaType',
    message: `the body of the request was in an unknown format (${media}) - accepted media types include: ` +
      `application/merge-patch+json, application/strategic-merge-patch+json${allowJsonPatch ? ', application/json-patch+json' : ''}`,
  };
}
