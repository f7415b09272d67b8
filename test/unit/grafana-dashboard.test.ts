/**
 * deploy/grafana-dashboard.json queries only what the agent exports: every metric name in its
 * PromQL is an AGENT_METRICS family, every label it groups or selects by is one of that
 * family's labels (or a target label: node, instance, job), and every family of the agent is
 * shown somewhere.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AGENT_METRICS, type MetricDef } from '../../src/agent/status-server.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const TARGET_LABELS = ['node', 'instance', 'job'];
const families = new Map<string, MetricDef>(Object.values(AGENT_METRICS).map((d) => [d.name, d]));

/** Every PromQL expression of a dashboard: panel targets and query variables. */
function expressions(dashboard: any): string[] {
  const out: string[] = [];
  for (const p of dashboard.panels ?? []) for (const t of p.targets ?? []) if (typeof t.expr === 'string') out.push(t.expr);
  for (const v of dashboard.templating?.list ?? []) {
    if (v.type !== 'query') continue;
    out.push(typeof v.query === 'string' ? v.query : v.query.query);
  }
  return out;
}

/** What is wrong with one expression ([] when nothing). */
function problems(expr: string): string[] {
  const found: string[] = [];
  const names = [...expr.matchAll(/\b(?:userlay|process)_[a-z0-9_]+\b/g)].map((m) => m[0]);
  if (names.length === 0) found.push(`names no userlay metric: ${expr}`);
  const labels = new Set(TARGET_LABELS);
  for (const n of names) {
    const def = families.get(n);
    if (!def) found.push(`unknown metric ${n} in: ${expr}`);
    else for (const l of def.labels) labels.add(l);
  }
  const used = [
    ...[...expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)].flatMap((m) => m[1]!.split(',').map((s) => s.trim()).filter(Boolean)),
    ...[...expr.matchAll(/\{([^}]*)\}/g)].flatMap((m) => [...m[1]!.matchAll(/([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)/g)].map((x) => x[1]!)),
    ...[...expr.matchAll(/label_values\([^,]+,\s*(\w+)\)/g)].map((m) => m[1]!),
  ];
  for (const l of used) if (!labels.has(l)) found.push(`label ${l} is on none of ${names.join(', ')}: ${expr}`);
  return found;
}

test('grafana dashboard: every query names agent metrics and their labels, every family is shown', () => {
  const dashboard = JSON.parse(readFileSync(path.join(root, 'deploy/grafana-dashboard.json'), 'utf8'));
  const exprs = expressions(dashboard);
  assert.ok(exprs.length >= 10, `queries found: ${exprs.length}`);
  assert.deepEqual(exprs.flatMap(problems), []);
  const shown = new Set(exprs.flatMap((e) => [...e.matchAll(/\b(?:userlay|process)_[a-z0-9_]+\b/g)].map((m) => m[0])));
  assert.deepEqual([...families.keys()].filter((n) => !shown.has(n)), [], 'families no panel shows');
  for (const p of dashboard.panels) assert.ok(p.targets?.length > 0 && p.title, `panel ${p.id} has a title and queries`);
  assert.equal(new Set(dashboard.panels.map((p: { id: number }) => p.id)).size, dashboard.panels.length, 'panel ids are unique');
});

test('grafana dashboard check: catches a renamed metric and a label the metric lacks', () => {
  assert.deepEqual(problems('sum by (node, peer) (rate(userlay_tx_bytes_total{node=~"$node"}[5m]))'), []);
  assert.match(problems('rate(userlay_drops_total[5m])').join(), /unknown metric userlay_drops_total/);
  assert.match(problems('sum by (peer) (rate(userlay_dropped_packets_total[5m]))').join(), /label peer is on none of userlay_dropped_packets_total/);
  assert.match(problems('userlay_fdb_peers{reason="x"}').join(), /label reason/);
});
