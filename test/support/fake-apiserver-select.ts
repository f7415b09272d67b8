/**
 * Minimal label and field selectors for the in-process API server (test
 * support). Labels: comma-separated `k=v`, `k==v`, `k!=v`, `k`, `!k` (no set
 * syntax). Fields: `metadata.name` with `=`, `==`, `!=` only; any other field
 * is refused as the real server refuses unknown field labels.
 */
import { isJsonObject } from './fake-apiserver-patch.js';
import type { KubeObject } from './fake-apiserver-store.js';

interface Requirement {
  readonly key: string;
  readonly op: 'eq' | 'ne' | 'exists' | 'absent';
  readonly value: string;
}

/** Parsed selectors; empty lists match everything. */
export interface Selectors {
  readonly labels: readonly Requirement[];
  readonly fields: readonly Requirement[];
}

/** Parse the labelSelector and fieldSelector query parameters; throws Error with the real server's wording. */
export function parseSelectors(labelSelector: string | undefined, fieldSelector: string | undefined): Selectors {
  const labels = parseTerms(labelSelector ?? '', true);
  const fields = parseTerms(fieldSelector ?? '', false);
  for (const f of fields) {
    if (f.key !== 'metadata.name') throw new Error(`field label not supported: ${f.key}`);
  }
  return { labels, fields };
}

function parseTerms(text: string, allowExists: boolean): Requirement[] {
  const out: Requirement[] = [];
  for (const raw of text.split(',')) {
    const term = raw.trim();
    if (term === '') continue;
    const m = /^([^!=]+?)\s*(==|!=|=)\s*(.*)$/.exec(term);
    if (m) out.push({ key: m[1]!, op: m[2] === '!=' ? 'ne' : 'eq', value: m[3]! });
    else if (allowExists && term.startsWith('!')) out.push({ key: term.slice(1).trim(), op: 'absent', value: '' });
    else if (allowExists) out.push({ key: term, op: 'exists', value: '' });
    else throw new Error(`invalid selector: '${term}'; can't understand '${term}'`);
  }
  return out;
}

/** True when `obj` satisfies every requirement. */
export function matchesSelectors(obj: KubeObject, s: Selectors): boolean {
  const labels = isJsonObject(obj.metadata.labels) ? obj.metadata.labels : {};
  for (const r of s.labels) {
    const v = labels[r.key];
    const has = typeof v === 'string';
    if (r.op === 'exists' && !has) return false;
    if (r.op === 'absent' && has) return false;
    if (r.op === 'eq' && v !== r.value) return false;
    if (r.op === 'ne' && v === r.value) return false;
  }
  for (const r of s.fields) {
    const equal = obj.metadata.name === r.value;
    if ((r.op === 'eq') !== equal) return false;
  }
  return true;
}
