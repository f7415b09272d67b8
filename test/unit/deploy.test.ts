/**
 * deploy/userlay.yaml is checked against the code it deploys: the agent's
 * flag spec accepts every argument, the ConfigMap's net-conf.json parses with
 * the agent's own parser, RBAC grants exactly the API calls the agent makes,
 * and the probes point at the status address.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadAllYaml } from '@kubernetes/client-node';
import { parseFlags } from '../../src/agent/flags.js';
import { kubeAgentFlags } from '../../src/agent/kube-config.js';
import { parseNetConf } from '../../src/control/net-conf.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
type Obj = { kind: string; metadata: { name: string }; [k: string]: any };
const docs = (loadAllYaml(readFileSync(path.join(root, 'deploy/userlay.yaml'), 'utf8')) as Obj[]).filter(Boolean);
const byKind = (kind: string): Obj => {
  const found = docs.find((d) => d.kind === kind);
  assert.ok(found, `deploy/userlay.yaml has a ${kind}`);
  return found;
};

test('manifest holds the objects a node agent needs', () => {
  const kinds = docs.map((d) => d.kind).sort();
  assert.deepEqual(kinds, ['ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'DaemonSet', 'Namespace', 'ServiceAccount']);
});

test('DaemonSet arguments are all accepted by the kube-mode flag parser', () => {
  const ds = byKind('DaemonSet');
  const agent = ds.spec.template.spec.containers.find((c: any) => c.name === 'userlay');
  assert.deepEqual(agent.command, ['userlay', 'agent']);
  const flags = parseFlags(kubeAgentFlags, agent.args);
  assert.equal(flags['net-conf'], '/etc/userlay/net-conf.json');
  const nodeName = agent.env.find((e: any) => e.name === 'NODE_NAME');
  assert.equal(nodeName.valueFrom.fieldRef.fieldPath, 'spec.nodeName');
  assert.equal(ds.spec.template.spec.hostNetwork, true);
  assert.equal(ds.spec.template.spec.serviceAccountName, byKind('ServiceAccount').metadata.name);

  // probes hit the status server the agent is told to listen on
  const [host, port] = String(flags['status-addr']).split(':');
  for (const probe of [agent.readinessProbe, agent.livenessProbe]) {
    assert.equal(probe.httpGet.host, host);
    assert.equal(String(probe.httpGet.port), port);
  }
  assert.equal(agent.readinessProbe.httpGet.path, '/readyz');
  assert.equal(agent.livenessProbe.httpGet.path, '/healthz');

  // the mounts the flags refer to exist
  const mounts: string[] = agent.volumeMounts.map((m: any) => m.mountPath);
  for (const p of [flags['state-dir'], path.dirname(String(flags['subnet-file'])), '/dev/net/tun']) {
    assert.ok(mounts.includes(String(p)), `${p} is mounted`);
  }
});

test('ConfigMap net-conf.json parses with the agent parser and the conflist reads subnet.env', () => {
  const cm = byKind('ConfigMap');
  const conf = parseNetConf(cm.data['net-conf.json'], 'deploy ConfigMap');
  assert.equal(conf.backend, 'vxlan');
  const cni = JSON.parse(cm.data['cni-conf.json']);
  const ds = byKind('DaemonSet');
  const agent = ds.spec.template.spec.containers.find((c: any) => c.name === 'userlay');
  const flags = parseFlags(kubeAgentFlags, agent.args);
  assert.equal(cni.plugins[0].subnetFile, flags['subnet-file']);
});

test('RBAC grants node read/watch and node status patch, nothing more', () => {
  const role = byKind('ClusterRole');
  const grants = role.rules.flatMap((r: any) => r.resources.flatMap((res: string) => r.verbs.map((v: string) => `${res}:${v}`))).sort();
  assert.deepEqual(grants, ['nodes/status:patch', 'nodes:get', 'nodes:list', 'nodes:watch']);
  const binding = byKind('ClusterRoleBinding');
  assert.equal(binding.roleRef.name, role.metadata.name);
  assert.equal(binding.subjects[0].name, byKind('ServiceAccount').metadata.name);
});
