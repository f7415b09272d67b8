/**
 * Kube mode with `--annotation-prefix flannel.alpha.coreos.com` next to a flannel vxlan node
 * (root), over an IPv4 and (a lab of its own) an IPv6 underlay. n1 and n2 run `userlay agent` in
 * kube mode; n3 is set up the way flanneld's vxlan backend does it: a kernel vxlan device
 * (flannel.1 for IPv4, flannel-v6.1 for IPv6, local = the node's address of that family), its
 * lease as flannel's annotations on its Node (backend-data + public-ip, resp. backend-v6-data +
 * public-ipv6), and neighbour/FDB/route entries built from the userlay nodes' annotations of the
 * same family — read from the API server exactly as flanneld would read them. All pods must
 * reach each other.
 *
 * Dual stack (a lab of its own): every node has node.spec.podCIDRs of both families and an
 * underlay address of each. The userlay agents (cluster networks of both families) pick both
 * underlay addresses off --iface and publish both leases, with their one VTEP MAC in
 * backend-data and backend-v6-data; n3 is flannel's dual stack (flannel.1 and flannel-v6.1,
 * a MAC each, both leases). Pods reach each other in both families, userlay <-> userlay and
 * userlay <-> flannel; the agents' counters show traffic from n3 on both underlays.
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
import { NEEDS_ROOT, TEST_PREFIX_ROOT, pingUntil, statusJson } from '../support/lab.js';
import { LabApiServer, labNodeObject, startKubeAgent, type KubeAgentProcess } from '../support/kube-lab.js';

const F = 'flannel.alpha.coreos.com';
const names = annotationNames(F);
/** flanneld's device per underlay family. */
const FLANNEL_DEV: Record<Family, string> = { 4: 'flannel.1', 6: 'flannel-v6.1' };

/** The flannel node's Node object, annotated as flanneld's kube subnet manager does for `families`. */
function flannelNode(node: LabNode, families: readonly Family[]): Record<string, unknown> {
  const obj = labNodeObject(node) as { metadata: Record<string, unknown> };
  const annotations: Record<string, string> = { [names.backendType]: 'vxlan', [names.kubeSubnetManager]: 'true' };
  for (const f of families) {
    annotations[names.backendData[f]] = JSON.stringify({ VNI: 1, VtepMAC: node.vtepMACs[f] });
    annotations[names.publicIP[f]] = node.underlayIPs[f]!;
  }
  obj.metadata['annotations'] = annotations;
  return obj;
}

/** flanneld's vxlan device of `family` on `node` (local = the node's address of that family). */
async function flannelDevice(node: LabNode, family: Family, mtu: number): Promise<void> {
  const dev = FLANNEL_DEV[family];
  await ip(node.ns, ['link', 'add', dev, 'address', node.vtepMACs[family]!, 'type', 'vxlan', 'id', '1', 'local', node.underlayIPs[family]!,
    'dev', node.underlayDev, 'dstport', '8472', 'nolearning']);
  await ip(node.ns, ['addr', 'add', `${node.inner[family]!.subnetAddr}/${family === 4 ? 32 : 128}`, 'dev', dev, ...(family === 6 ? ['nodad'] : [])]);
  await ip(node.ns, ['link', 'set', dev, 'mtu', String(mtu), 'up']);
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
      await api.call('upsert', { node: flannelNode(n3, [family]) });

      // the vxlan device on n3, as flanneld creates it
      await flannelDevice(n3, family, podMtu);

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

test('kube mode dual stack: both underlays, both leases, pods reach each other in both families (userlay and flannel\'s dual stack)', { skip: NEEDS_ROOT, timeout: 120_000 }, async () => {
  await cleanupStale(TEST_PREFIX_ROOT);
  const families: Family[] = [4, 6];
  // a dual-stack node's pods fit the IPv6 underlay, whose overhead is the larger
  const podMtu = UNDERLAY_MTU - encapOverhead('vxlan', 6);
  let topo: Topology | undefined;
  let api: LabApiServer | undefined;
  const agents: KubeAgentProcess[] = [];
  try {
    topo = await createTopology({ prefix: `${TEST_PREFIX_ROOT}${process.pid}-fd.`, nodes: 3, family: 'dual' });
    const [n1, n2, n3] = topo.nodes as [LabNode, LabNode, LabNode];
    api = await LabApiServer.start(topo);
    await api.call('upsert', { node: labNodeObject(n1) });
    await api.call('upsert', { node: labNodeObject(n2) });
    await api.call('upsert', { node: flannelNode(n3, families) });
    for (const f of families) await flannelDevice(n3, f, UNDERLAY_MTU - encapOverhead('vxlan', f));

    for (const n of [n1, n2]) agents.push(await startKubeAgent(n, api.kubeconfig, topo.workDir, ['--annotation-prefix', F]));
    const ready = await Promise.all(agents.map((a) => a.ready));
    for (const r of ready) assert.equal(r['podMTU'], podMtu, 'the pod MTU leaves room for VXLAN over IPv6');
    await topo.setPodMtu(podMtu);

    for (const n of [n1, n2]) {
      const obj = (await api.call('get', { name: n.name })) as { metadata: { annotations: Record<string, string> }; spec: { podCIDRs: string[] } };
      const a = obj.metadata.annotations;
      const macs = families.map((f) => {
        assert.equal(a[names.publicIP[f]], n.underlayIPs[f], `${n.name} publishes ${names.publicIP[f]}`);
        return (JSON.parse(a[names.backendData[f]]!) as { VNI: number; VtepMAC: string }).VtepMAC;
      });
      assert.equal(macs[0], macs[1], 'one VTEP MAC, published for both families');
      // flanneld reads each family's lease into that family's device
      for (const [k, f] of families.entries()) {
        const subnet = obj.spec.podCIDRs.find((c) => parseCidr(c).family === f)!;
        await flannelAddPeer(n3, FLANNEL_DEV[f], subnet, macs[k]!, a[names.publicIP[f]]!);
      }
    }

    await pingUntil(n1, n3, true);
    for (const f of families) {
      const pings = await pingAllPairs(topo.nodes, f);
      assert.equal(pings.length, 6);
      assert.deepEqual(pings.filter((p) => !p.ok).map((p) => `${p.from}->${p.to}`), [], `all pairs in IPv${f}`);
    }
    // n3's traffic arrived on both of n1's sockets and was counted under its one peer
    const stats = await statusJson(n1, agents[0]!.statusPort, '/debug/stats') as { peers?: Record<string, { rxPackets?: string | number }> };
    assert.ok(Number(stats.peers?.[n3.name]?.rxPackets ?? 0) >= 8, `n1 counted n3's packets: ${JSON.stringify(stats.peers?.[n3.name])}`);
  } finally {
    for (const a of agents) await a.stop().catch(() => {});
    await api?.close().catch(() => {});
    await topo?.close();
  }
});
