/**
 * Kube mode with `--annotation-prefix flannel.alpha.coreos.com` next to a flannel vxlan node
 * (root). n1 and n2 run `userlay agent` in kube mode; n3 is set up the way flanneld's vxlan
 * backend does it: a kernel vxlan device flannel.1, its lease as flannel's annotations on its
 * Node, and neighbour/FDB/route entries built from the userlay nodes' annotations — read from
 * the API server exactly as flanneld would read them. All pods must reach each other.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encapOverhead } from '../../src/dataplane/backends.js';
import { parseCidr } from '../../src/dataplane/net.js';
import { ip, nsRun } from '../../src/cli/lab/exec.js';
import { pingAllPairs } from '../../src/cli/lab/probes.js';
import { cleanupStale } from '../../src/cli/lab/stale.js';
import { createTopology, UNDERLAY_MTU, type LabNode, type Topology } from '../../src/cli/lab/topology.js';
import { NEEDS_ROOT, TEST_PREFIX_ROOT, pingUntil } from '../support/lab.js';
import { LabApiServer, labNodeObject, startKubeAgent, type KubeAgentProcess } from '../support/kube-lab.js';

const F = 'flannel.alpha.coreos.com';
/** flannel.1's MTU and the pods' MTU: the underlay MTU minus VXLAN over IPv4. */
const POD_MTU = UNDERLAY_MTU - encapOverhead('vxlan', 4);

/** The flannel node's Node object, annotated as flanneld's kube subnet manager does. */
function flannelNode(node: LabNode): Record<string, unknown> {
  const obj = labNodeObject(node) as { metadata: Record<string, unknown> };
  obj.metadata['annotations'] = {
    [`${F}/backend-type`]: 'vxlan',
    [`${F}/backend-data`]: JSON.stringify({ VNI: 1, VtepMAC: node.vtepMAC }),
    [`${F}/public-ip`]: node.underlayIP,
    [`${F}/kube-subnet-manager`]: 'true',
  };
  return obj;
}

/** What flanneld's vxlan backend does on a lease: neighbour, FDB entry, onlink route. */
async function flannelAddPeer(node: LabNode, subnet: string, vtepMAC: string, publicIP: string): Promise<void> {
  const gw = parseCidr(subnet).addr;
  await ip(node.ns, ['neigh', 'replace', gw, 'lladdr', vtepMAC, 'dev', 'flannel.1', 'nud', 'permanent']);
  await nsRun(node.ns, 'bridge', ['fdb', 'append', vtepMAC, 'dev', 'flannel.1', 'dst', publicIP, 'self', 'permanent']);
  await ip(node.ns, ['route', 'replace', subnet, 'via', gw, 'dev', 'flannel.1', 'onlink']);
}

test('kube mode interoperates with a flannel vxlan node through flannel\'s annotations', { skip: NEEDS_ROOT, timeout: 120_000 }, async () => {
  await cleanupStale(TEST_PREFIX_ROOT);
  let topo: Topology | undefined;
  let api: LabApiServer | undefined;
  const agents: KubeAgentProcess[] = [];
  try {
    topo = await createTopology({ prefix: `${TEST_PREFIX_ROOT}${process.pid}-f.`, nodes: 3 });
    const [n1, n2, n3] = topo.nodes as [LabNode, LabNode, LabNode];
    api = await LabApiServer.start(topo);
    await api.call('upsert', { node: labNodeObject(n1) });
    await api.call('upsert', { node: labNodeObject(n2) });
    await api.call('upsert', { node: flannelNode(n3) });

    // flannel.1 on n3, as flanneld creates it
    await ip(n3.ns, ['link', 'add', 'flannel.1', 'address', n3.vtepMAC, 'type', 'vxlan', 'id', '1', 'local', n3.underlayIP,
      'dev', n3.underlayDev, 'dstport', '8472', 'nolearning']);
    await ip(n3.ns, ['addr', 'add', `${n3.subnetAddr}/32`, 'dev', 'flannel.1']);
    await ip(n3.ns, ['link', 'set', 'flannel.1', 'mtu', String(POD_MTU), 'up']);

    for (const n of [n1, n2]) agents.push(await startKubeAgent(n, api.kubeconfig, topo.workDir, ['--annotation-prefix', F]));
    await Promise.all(agents.map((a) => a.ready));
    await topo.setPodMtu(POD_MTU);

    // the flannel side reads the userlay nodes' leases from the API
    for (const n of [n1, n2]) {
      const obj = (await api.call('get', { name: n.name })) as { metadata: { annotations: Record<string, string> }; spec: { podCIDR: string } };
      const a = obj.metadata.annotations;
      assert.equal(a[`${F}/backend-type`], 'vxlan');
      assert.equal(a[`${F}/kube-subnet-manager`], 'true');
      const data = JSON.parse(a[`${F}/backend-data`]!) as { VNI: number; VtepMAC: string };
      assert.equal(data.VNI, 1);
      await flannelAddPeer(n3, obj.spec.podCIDR, data.VtepMAC, a[`${F}/public-ip`]!);
    }

    await pingUntil(n1, n3, true);
    const pings = await pingAllPairs(topo.nodes);
    assert.deepEqual(pings.filter((p) => !p.ok).map((p) => `${p.from}->${p.to}`), [], 'all pairs, userlay <-> flannel');
  } finally {
    for (const a of agents) await a.stop().catch(() => {});
    await api?.close().catch(() => {});
    await topo?.close();
  }
});
