/**
 * The object store behind the in-process API server (test support): Node
 * objects keyed by name, one global resourceVersion counter (as etcd's
 * revision), and a bounded window of past watch events for watch replay.
 *
 * Stored objects are never mutated: every change stores a fresh object, so an
 * event keeps the exact object state it announced. Each event's JSON line is
 * serialized once and shared by every watcher.
 */
import { randomUUID } from 'node:crypto';
import { isJsonObject, type JsonObject } from './fake-apiserver-patch.js';

/** A stored Kubernetes object (a core/v1 Node here); metadata.name is required. */
export type KubeObject = JsonObject & { metadata: JsonObject & { name: string } };

/** One event in the history window. */
export interface StoredEvent {
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED';
  /** The revision the event happened at. */
  readonly rv: number;
  readonly object: KubeObject;
  /** The newline-terminated JSON line sent to watchers. */
  readonly line: string;
}

/** Store options. */
export interface NodeStoreOptions {
  /** Events kept for watch replay (default 1000); older ones are compacted. */
  readonly historySize?: number;
  /** First revision handed out is this + 1 (default 1000, like a non-empty etcd). */
  readonly initialResourceVersion?: number;
}

/** Node objects + revision counter + bounded event history. */
export class NodeStore {
  private readonly objects = new Map<string, KubeObject>();
  private readonly history: StoredEvent[] = [];
  private readonly historySize: number;
  private rv: number;
  /** Revisions <= this are compacted: a watch from an older RV gets 410. */
  private compacted: number;
  private readonly listeners = new Set<(ev: StoredEvent) => void>();

  constructor(opts: NodeStoreOptions = {}) {
    this.historySize = opts.historySize ?? 1000;
    this.rv = opts.initialResourceVersion ?? 1000;
    this.compacted = this.rv;
  }

  /** Current (latest) revision. */
  get resourceVersion(): number {
    return this.rv;
  }

  /** Oldest revision a watch may still start from (older -> 410 Expired). */
  get compactedRevision(): number {
    return this.compacted;
  }

  /** The stored object, or undefined. Do not mutate it. */
  get(name: string): KubeObject | undefined {
    return this.objects.get(name);
  }

  /** All objects sorted by name. Do not mutate them. */
  list(): KubeObject[] {
    return [...this.objects.values()].sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1));
  }

  /** Number of stored objects. */
  get size(): number {
    return this.objects.size;
  }

  /** Events with revision > `rv` still in the window, oldest first. */
  eventsAfter(rv: number): StoredEvent[] {
    return this.history.filter((e) => e.rv > rv);
  }

  /** Subscribe to every committed event; returns the unsubscribe function. */
  subscribe(fn: (ev: StoredEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /**
   * Create `obj` (fills uid, creationTimestamp, resourceVersion, kind,
   * apiVersion). Returns undefined when the name exists already.
   */
  create(obj: KubeObject): KubeObject | undefined {
    if (this.objects.has(obj.metadata.name)) return undefined;
    const fresh = structuredClone(obj);
    fresh.apiVersion = 'v1';
    fresh.kind = 'Node';
    fresh.metadata.uid = randomUUID();
    fresh.metadata.creationTimestamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    return this.commit('ADDED', fresh);
  }

  /**
   * Replace the stored object named `obj.metadata.name` with `obj`, keeping
   * uid and creationTimestamp. A change-free update keeps the revision and
   * emits nothing (as the real server); returns the stored object.
   */
  update(obj: KubeObject): KubeObject | undefined {
    const old = this.objects.get(obj.metadata.name);
    if (!old) return undefined;
    const fresh = structuredClone(obj);
    fresh.apiVersion = 'v1';
    fresh.kind = 'Node';
    fresh.metadata.uid = old.metadata.uid ?? randomUUID();
    fresh.metadata.creationTimestamp = old.metadata.creationTimestamp ?? null;
    fresh.metadata.resourceVersion = old.metadata.resourceVersion ?? null;
    if (JSON.stringify(canonical(fresh)) === JSON.stringify(canonical(old))) return old;
    return this.commit('MODIFIED', fresh);
  }

  /** Delete `name`; returns the deleted object (with the deletion's revision) or undefined. */
  delete(name: string): KubeObject | undefined {
    const old = this.objects.get(name);
    if (!old) return undefined;
    return this.commit('DELETED', structuredClone(old));
  }

  /** Compact: forget events with revision <= `rv` (default: all so far). */
  compact(rv: number = this.rv): void {
    this.compacted = Math.max(this.compacted, Math.min(rv, this.rv));
    while (this.history.length > 0 && this.history[0]!.rv <= this.compacted) this.history.shift();
  }

  private commit(type: StoredEvent['type'], obj: KubeObject): KubeObject {
    this.rv += 1;
    obj.metadata.resourceVersion = String(this.rv);
    if (type === 'DELETED') this.objects.delete(obj.metadata.name);
    else this.objects.set(obj.metadata.name, obj);
    const ev: StoredEvent = { type, rv: this.rv, object: obj, line: JSON.stringify({ type, object: obj }) + '\n' };
    this.history.push(ev);
    if (this.history.length > this.historySize) this.compacted = this.history.shift()!.rv;
    for (const fn of this.listeners) fn(ev);
    return obj;
  }
}

/** A copy with object keys sorted, so equality does not depend on key order. */
function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (!isJsonObject(v)) return v;
  return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical(v[k])]));
}

/** True for a JSON object with a non-empty metadata.name (what the store accepts). */
export function isNamedObject(v: unknown): v is KubeObject {
  return isJsonObject(v) && isJsonObject(v.metadata) && typeof v.metadata.name === 'string' && v.metadata.name !== '';
}

/** metadata.name of `v` for messages, or "<none>". */
export function describeName(v: unknown): string {
  return isJsonObject(v) && isJsonObject(v.metadata) ? String(v.metadata.name) : '<none>';
}
