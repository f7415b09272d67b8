/**
 * deploy/userlay.yaml is checked against the code it deploys: the agent's
 * flag spec accepts every argument, the ConfigMap's net-conf.json and conflist
 * parse with the agent's own parsers and point the shim at the agent's socket
 * and state dir, RBAC grants exactly the API calls the agent makes, the probes
 * point at the status address, and the image tag and the files the Dockerfile
 * puts into the image are what the manifest runs and copies.
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
import { cniFlags } from '../../src/agent/agent-flags.js';
import { parseNetworkConfig } from '../../src/cni/config.js';
import { SUPPORTED_VERSIONS } from '../../src/cni/version.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
type Obj = { kind: string; metadata: { name: string }; [k: string]: any };
const docs = (loadAllYaml(readFileSync(path.join(root, 'deploy/userlay.yaml'), 'utf8')) as Obj[]).filter(Boolean);
const dockerfile = readFileSync(path.join(root, 'Dockerfile'), 'utf8');
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

const daemonSet = (): any => byKind('DaemonSet').spec.template.spec;
const agentContainer = (): any => daemonSet().containers.find((c: any) => c.name === 'userlay');
const initContainer = (): any => daemonSet().initContainers.find((c: any) => c.name === 'install-cni');
const hostPathOf = (name: string): string => daemonSet().volumes.find((v: any) => v.name === name)?.hostPath?.path;
/** Host path of the volume mounted at `mountPath` in container `c`. */
const hostPathAt = (c: any, mountPath: string): string | undefined => {
  const m = c.volumeMounts.find((v: any) => v.mountPath === mountPath);
  return m ? hostPathOf(m.name) : undefined;
};

test('ConfigMap: net-conf.json parses with the agent parser; the conflist is userlay then portmap, pointed at the agent', () => {
  const cm = byKind('ConfigMap');
  const conf = parseNetConf(cm.data['net-conf.json'], 'deploy ConfigMap');
  assert.equal(conf.backend, 'vxlan');
  const list = JSON.parse(cm.data['cni-conf.json']);
  assert.deepEqual(list.plugins.map((p: any) => p.type), ['userlay', 'portmap']);
  assert.ok((SUPPORTED_VERSIONS as readonly string[]).includes(list.cniVersion));
  const plugin = parseNetworkConfig(JSON.stringify({ ...list.plugins[0], name: list.name, cniVersion: list.cniVersion }));
  assert.equal(plugin.type, 'userlay');
  const flags = parseFlags(kubeAgentFlags, agentContainer().args);
  const cni = cniFlags(flags);
  // the shim reads socket and stateDir from the conflist; they must be the agent's, on the host
  assert.equal(list.plugins[0].socket, cni.socket);
  assert.equal(list.plugins[0].stateDir, cni.stateDir);
  assert.equal(hostPathAt(agentContainer(), path.dirname(cni.socket!)), path.dirname(cni.socket!), 'socket dir is the host\'s');
  const stateMount = agentContainer().volumeMounts.find((m: any) => cni.stateDir.startsWith(m.mountPath + '/'));
  assert.ok(stateMount && cni.stateDir.startsWith(hostPathOf(stateMount.name) + '/'), 'CNI state dir is on the host at the same path');
});

test('DaemonSet: privileged, /dev/net/tun, netns with HostToContainer, CNI dirs, every taint tolerated, node-critical', () => {
  const spec = daemonSet();
  const agent = agentContainer();
  assert.equal(agent.securityContext.privileged, true);
  assert.equal(spec.priorityClassName, 'system-node-critical');
  assert.equal(spec.tolerations.length, 1);
  const t = spec.tolerations[0];
  assert.ok(t.operator === 'Exists' && !t.key && !t.effect, 'one toleration without key or effect matches every taint');
  assert.equal(hostPathAt(agent, '/dev/net/tun'), '/dev/net/tun');
  const netns = agent.volumeMounts.find((m: any) => m.mountPath === '/var/run/netns');
  assert.equal(netns?.mountPropagation, 'HostToContainer');
  assert.equal(hostPathOf(netns.name), '/var/run/netns');
  // delegates run from the runtime's CNI_PATH: the host's bin dir at the same path
  assert.equal(hostPathAt(agent, '/opt/cni/bin'), '/opt/cni/bin');
});

test('init container installs the shim and the conflist atomically (temp name, then rename) from files the image holds', () => {
  const init = initContainer();
  assert.equal(init.image, agentContainer().image);
  const script: string = init.command.join(' ');
  const moves = [...script.matchAll(/mv -f (\S+) (\S+);?/g)].map((m) => [m[1]!, m[2]!.replace(/;$/, '')]);
  const targets = moves.map(([, to]) => to);
  assert.deepEqual(targets.map((t) => path.basename(t)), ['userlay', '10-userlay.conflist']);
  for (const [from, to] of moves) {
    assert.equal(path.dirname(from!), path.dirname(to!), 'renamed within one directory');
    assert.match(path.basename(from!), /^\..*\.tmp$/, 'written under a hidden temporary name first');
    assert.ok(script.indexOf(`cp `) < script.indexOf(`mv -f ${from}`), 'copied before renamed');
  }
  assert.equal(hostPathAt(init, path.dirname(targets[0]!)), '/opt/cni/bin');
  assert.equal(hostPathAt(init, path.dirname(targets[1]!)), '/etc/cni/net.d');
  // the shim it copies is where the Dockerfile puts it
  const src = /cp (\S+) \S+\/\.userlay\.tmp/.exec(script)?.[1];
  assert.equal(src, '/opt/userlay/cni/userlay');
  assert.ok(dockerfile.includes(`cp native/build-cni/userlay /out${src}`), `the build stage puts the shim at /out${src}`);
  assert.match(dockerfile, /^COPY --from=build \/out\/opt\/userlay \/opt\/userlay$/m, 'and the runtime stage takes /out/opt/userlay');
});

test('image tag matches package.json and scripts/image.sh; the image runs the agent the manifest runs', () => {
  const version = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')).version as string;
  for (const c of [agentContainer(), initContainer()]) assert.equal(c.image, `ghcr.io/userlay/userlay:${version}`);
  const script = readFileSync(path.join(root, 'scripts/image.sh'), 'utf8');
  assert.match(script, /tag="ghcr\.io\/userlay\/userlay:\$\{version\}"/);
  // `userlay` on PATH is bin/userlay.js of the built tree; the addon sits where the loader looks
  assert.match(dockerfile, /ln -s \/opt\/userlay\/bin\/userlay\.js \/usr\/local\/bin\/userlay/);
  assert.match(dockerfile, /cp native\/build\/Release\/userlay\.node \/out\/opt\/userlay\/native\/build\/Release\//);
  assert.match(dockerfile, /^ARG BASE=/m);
  assert.match(dockerfile, /^FROM \$\{BASE\} AS build$/m);
  assert.match(dockerfile, /^FROM \$\{BASE\}$/m);
  assert.equal(agentContainer().command[0], 'userlay');
});

test('RBAC grants node read/watch and node status patch, nothing more', () => {
  const role = byKind('ClusterRole');
  const grants = role.rules.flatMap((r: any) => r.resources.flatMap((res: string) => r.verbs.map((v: string) => `${res}:${v}`))).sort();
  assert.deepEqual(grants, ['nodes/status:patch', 'nodes:get', 'nodes:list', 'nodes:watch']);
  const binding = byKind('ClusterRoleBinding');
  assert.equal(binding.roleRef.name, role.metadata.name);
  assert.equal(binding.subjects[0].name, byKind('ServiceAccount').metadata.name);
});
