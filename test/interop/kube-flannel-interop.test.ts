/**
 * Kube mode with `--annotation-prefix flannel.alpha.coreos.com` next to a flannel vxlan node
 * (root), over an IPv4 and (a lab of its own) an IPv6 underlay. n1 and n2 run `userlay agent` in
 * kube mode; n3 is set up the way flanneld's vxlan backend does it: a kernel vxlan device
 * (flannel.1 for IPv4, flannel-v6.1 for IPv6, local = the node's address of that family), its
 * lease as flannel's annotations on its Node (backend-data + public-ip, resp. backend-v6-data +
 * public-ipv6), and neighbour/FDB/route entries built from the userlay nodes' annotations of the
 * same family — read from the API server exactly as flanneld would read them. All pods must
 * reach each other.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encapOverhead } from '../../src/dataplane/backends.js';
import { parseCidr, type Family } from '../../src/dataplane/net.js';
import { annotationNames } from '../../src/control/kube/lease.js';
import { ip, nsRun } from '../../src/cli/lab/exec.js';
import { pingAllPairs } from '../../src/cli/lab/probes.js';
import { cleanupStale } from '../../src/cli/lab/stale.js';
import { createTopology, UNDERLAY_MTU, type LabNode, type Topology } from '../../src/cli/lab/topology.js';
import { NEEDS_ROOT, TEST_PREFIX_ROOT, pingUntil } from '../support/lab.js';
import { LabApiServer, labNodeObject, startKubeAgent, type KubeAgentProcess } from '../support/kube-lab.js';

const F = 'flannel.alpha.coreos.com';
const names = annotationNames(F);
/** flanneld's device per underlay family. */
const FLANNEL_DEV: Record<Family, string> = { 4: 'flannel.1', 6: 'flannel-v6.1' };

/** The flannel node's Node object, annotated as flanneld's kube subnet manager does for `family`. */
function flannelNode(node: LabNode, family: Family): Record<string, unknown> {
  const obj = labNodeObject(node) as { metadata: Record<string, unknown> };
  obj.metadata['annotations'] = {
    [names.backendType]: 'vxlan',
    [names.backendData[family]]: JSON.stringify({ VNI: 1, VtepMAC: node.vtepMACs[family] }),
    [names.publicIP[family]]: node.underlayIPs[family],
    [names.kubeSubnetManager]: 'true',
  };
  return obj;
}

/** What flanneld's vxlan backend does on a lease: neighbour, FDB entry, onlink route. */
async function flannelAddPeer(node: LabNode, dev: string, subnet: string, vtepMAC: string, publicIP: string): Promise<void> {
  const gw = parseCidr(subnet).addr;
  await ip(node.ns, ['neigh', 'replace', gw, 'lladdr', vtepMAC, 'dev', dev, 'nud', 'permanent']);
  await nsRun(node.ns, 'bridge', ['fdb', 'append', vtepMAC, 'dev', dev, 'dst', publicIP, 'self', 'permanent']);
  await ip(node.ns, ['route', 'replace', subnet, 'via', gw, 'dev', dev, 'onlink']);
}

for (const family of [4, 6] as Family[]) {
  test(`kube mode interoperates with a flannel vxlan node through flannel's annotations (IPv${family})`, { skip: NEEDS_ROOT, timeout: 120_000 }, async () => {
    await cleanupStale(TEST_PREFIX_ROOT);
    /** flannel's device MTU and the pods' MTU: the underlay MTU minus VXLAN over this family. */
    const podMtu = UNDERLAY_MTU - encapOverhead('vxlan', family);
    const dev = FLANNEL_DEV[family];
    let topo: Topology | undefined;
    let api: LabApiServer | undefined;
    const agents: KubeAgentProcess[] = [];
    try {
      topo = await createTopology({ prefix: `${TEST_PREFIX_ROOT}${process.pid}-f${family}.`, nodes: 3, family: family === 4 ? '4' : '6' });
      const [n1, n2, n3] = topo.nodes as [LabNode, LabNode, LabNode];
      api = await LabApiServer.start(topo);
      await api.call('upsert', { node: labNodeObject(n1) });
      await api.call('upsert', { node: labNodeObject(n2) });
      await api.call('upsert', { node: flannelNode(n3, family) });

      // the vxlan device on n3, as flanneld creates it
      await ip(n3.ns, ['link', 'add', dev, 'address', n3.vtepMACs[family]!, 'type', 'vxlan', 'id', '1', 'local', n3.underlayIPs[family]!,
        'dev', n3.underlayDev, 'dstport', '8472', 'nolearning']);
      await ip(n3.ns, ['addr', 'add', `${n3.subnetAddr}/${family === 4 ? 32 : 128}`, 'dev', dev, ...(family === 6 ? ['nodad'] : [])]);
      await ip(n3.ns, ['link', 'set', dev, 'mtu', String(podMtu), 'up']);

      for (const n of [n1, n2]) agents.push(await startKubeAgent(n, api.kubeconfig, topo.workDir, ['--annotation-prefix', F]));
      await Promise.all(agents.map((a) => a.ready));
      await topo.setPodMtu(podMtu);

      // the flannel side reads the userlay nodes' leases of this family from the API
      for (const n of [n1, n2]) {
        const obj = (await api.call('get', { name: n.name })) as { metadata: { annotations: Record<string, string> }; spec: { podCIDR: string } };
        const a = obj.metadata.annotations;
        assert.equal(a[names.backendType], 'vxlan');
        assert.equal(a[names.kubeSubnetManager], 'true');
        assert.equal(a[names.publicIP[family]], n.underlayIPs[family]);
        const other: Family = family === 4 ? 6 : 4;
        assert.equal(a[names.publicIP[other]], undefined, `no ${names.publicIP[other]}: nobody listens on that family`);
        const data = JSON.parse(a[names.backendData[family]]!) as { VNI: number; VtepMAC: string };
        assert.equal(data.VNI, 1);
        await flannelAddPeer(n3, dev, obj.spec.podCIDR, data.VtepMAC, a[names.publicIP[family]]!);
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
}
