/**
 * The fake API server's building blocks without HTTP: merge patch semantics
 * (RFC 7386 section 3 / appendix A cases), JSON patch (RFC 6902 operations),
 * the simplified strategic merge, the
 * store's revision counter and history window, selectors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyJsonPatch, applyMergePatch, applyStrategicMergePatch, JsonPatchError, type Json } from '../support/fake-apiserver-patch.js';
import { NodeStore } from '../support/fake-apiserver-store.js';
import { matchesSelectors, parseSelectors } from '../support/fake-apiserver-select.js';

test('merge patch follows the RFC 7386 examples', () => {
  const cases: Array<[Json, Json, Json]> = [
    [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
    [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
    [{ a: 'b' }, { a: null }, {}],
    [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
    [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
    [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
    [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
    [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
    [['a', 'b'], ['c', 'd'], ['c', 'd']],
    [{ a: 'b' }, ['c'], ['c']],
    [{ a: 'foo' }, null, null],
    [{ a: 'foo' }, 'bar', 'bar'],
    [{ e: null }, { a: 1 }, { e: null, a: 1 }],
    [[1, 2], { a: 'b', c: null }, { a: 'b' }],
    [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
  ];
  for (const [target, patch, want] of cases) {
    assert.deepEqual(applyMergePatch(target, patch), want, `${JSON.stringify(target)} + ${JSON.stringify(patch)}`);
  }
});

test('merge patch leaves its inputs untouched', () => {
  const target = { metadata: { annotations: { a: '1' } } };
  const patch = { metadata: { annotations: { b: '2' } } };
  const out = applyMergePatch(target, patch) as { metadata: { annotations: Record<string, string> } };
  out.metadata.annotations.c = '3';
  assert.deepEqual(target, { metadata: { annotations: { a: '1' } } });
  assert.deepEqual(patch, { metadata: { annotations: { b: '2' } } });
});

test('strategic merge (simplified) merges conditions/addresses by type, replaces other lists', () => {
  const target: Json = {
    spec: { podCIDRs: ['198.19.1.0/24'] },
    status: {
      conditions: [{ type: 'Ready', status: 'True' }, { type: 'NetworkUnavailable', status: 'True', reason: 'NoRoute' }],
      addresses: [{ type: 'InternalIP', address: '198.18.0.1' }],
    },
  };
  const patch: Json = {
    spec: { podCIDRs: ['198.19.2.0/24'] },
    status: {
      conditions: [{ type: 'NetworkUnavailable', status: 'False', reason: null }, { type: 'Extra', status: 'True' }],
      addresses: [{ type: 'InternalIP', address: '198.18.0.9' }],
    },
  };
  assert.deepEqual(applyStrategicMergePatch(target, patch), {
    spec: { podCIDRs: ['198.19.2.0/24'] },
    status: {
      conditions: [{ type: 'Ready', status: 'True' }, { type: 'NetworkUnavailable', status: 'False' }, { type: 'Extra', status: 'True' }],
      addresses: [{ type: 'InternalIP', address: '198.18.0.9' }],
    },
  });
  // A plain merge patch replaces the whole list.
  const merged = applyMergePatch(target, patch) as { status: { conditions: unknown[] } };
  assert.equal(merged.status.conditions.length, 2);
});

test('store: one global revision, no-op updates keep it, history window compacts', () => {
  const store = new NodeStore({ historySize: 3, initialResourceVersion: 10 });
  const events: string[] = [];
  store.subscribe((ev) => events.push(`${ev.type} ${ev.object.metadata.name} ${ev.rv}`));
  store.create({ metadata: { name: 'a' } });
  store.create({ metadata: { name: 'b' } });
  assert.equal(store.create({ metadata: { name: 'a' } }), undefined, 'duplicate');
  const same = store.update({ metadata: { name: 'a' } });
  assert.equal(same?.metadata.resourceVersion, '11', 'no change, no new revision');
  store.update({ metadata: { name: 'a', labels: { x: 'y' } } });
  store.delete('b');
  assert.deepEqual(events, ['ADDED a 11', 'ADDED b 12', 'MODIFIED a 13', 'DELETED b 14']);
  assert.equal(store.resourceVersion, 14);
  assert.equal(store.compactedRevision, 11, 'history of 3 keeps revisions 12..14');
  assert.deepEqual(store.eventsAfter(12).map((e) => e.rv), [13, 14]);
  store.compact();
  assert.equal(store.compactedRevision, 14);
  assert.deepEqual(store.eventsAfter(0), []);
  assert.equal(typeof store.get('a')?.metadata.uid, 'string');
  assert.deepEqual(store.list().map((o) => o.metadata.name), ['a']);
});

test('selectors: labels (=, !=, exists, !exists) and metadata.name; other fields refused', () => {
  const obj = { metadata: { name: 'n1', labels: { role: 'edge', zone: 'a' } } };
  const ok = (l?: string, f?: string): boolean => matchesSelectors(obj, parseSelectors(l, f));
  assert.equal(ok('role=edge'), true);
  assert.equal(ok('role==edge,zone'), true);
  assert.equal(ok('role!=edge'), false);
  assert.equal(ok('!zone'), false);
  assert.equal(ok('missing'), false);
  assert.equal(ok(undefined, 'metadata.name=n1'), true);
  assert.equal(ok(undefined, 'metadata.name!=n1'), false);
  assert.throws(() => parseSelectors(undefined, 'spec.unschedulable=true'), /field label not supported/);
});

test('JSON patch (RFC 6902): add, remove, replace, move, copy, test; pointers escape ~0 ~1', () => {
  const doc: Json = { metadata: { annotations: { 'a/b': '1', 'c~d': '2' } }, list: ['x', 'z'] };
  const out = applyJsonPatch(doc, [
    { op: 'add', path: '/list/1', value: 'y' },
    { op: 'add', path: '/list/-', value: 'end' },
    { op: 'remove', path: '/metadata/annotations/a~1b' },
    { op: 'replace', path: '/metadata/annotations/c~0d', value: '3' },
    { op: 'copy', from: '/list/0', path: '/first' },
    { op: 'move', from: '/first', path: '/moved' },
    { op: 'test', path: '/moved', value: 'x' },
  ]);
  assert.deepEqual(out, { metadata: { annotations: { 'c~d': '3' } }, list: ['x', 'y', 'z', 'end'], moved: 'x' });
  assert.deepEqual(doc, { metadata: { annotations: { 'a/b': '1', 'c~d': '2' } }, list: ['x', 'z'] }, 'input untouched');
  const fails = (patch: Json, malformed: boolean): void => {
    assert.throws(() => applyJsonPatch(doc, patch), (e: unknown) => e instanceof JsonPatchError && e.malformed === malformed);
  };
  fails({ metadata: { annotations: { a: 'b' } } }, true); // a merge-patch body is not a JSON patch
  fails([{ op: 'frobnicate', path: '/x' }], true);
  fails([{ op: 'test', path: '/list/0', value: 'nope' }], false);
  fails([{ op: 'remove', path: '/missing' }], false);
  fails([{ op: 'replace', path: '/metadata/nothing/here', value: 1 }], false);
});
