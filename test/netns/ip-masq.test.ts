/**
 * Pod egress (--ip-masq) in a 2-node lab whose pods are attached through the userlay CNI
 * plugin, with an "outside" namespace on the underlay (198.18.0.250, outside the cluster
 * network 198.19.0.0/16) running servers that report the source address they see:
 *   - a pod reaching outside is seen with its node's underlay address (TCP and UDP);
 *   - a pod reaching a pod on the other node, directly or through a kube-proxy ClusterIP
 *     (DNATed before our postrouting chain), is seen with its own address;
 *   - the table `inet userlay` holds one masquerade rule across restarts; a crash (SIGKILL)
 *     leaves it and egress keeps working; the next start replaces it (new table, one rule);
 *     a clean stop deletes it, and then outside sees the pod's own address;
 *   - without nft, static mode refuses --ip-masq (exit 2 naming the flag) and leaves no TUN;
 *   - `userlay lab --ip-masq` reports every pod seen outside with its node's address.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ip, nsRun, run, stopChild } from '../../src/cli/lab/exec.js';
import { applyOverlay, type Overlay } from '../../src/cli/lab/overlay.js';
import { AGENT_NODE_FLAGS } from '../../src/agent/node-flags.js';
import { agentArgs, startAgent, userlayBin, type AgentProcess, type UserlayAgentConfig } from '../../src/cli/lab/agent-process.js';
import { podToolPath, startPodTool, type PodToolServer } from '../../src/cli/lab/probes.js';
import { CLUSTER_NETWORK, createTopology, type LabNode, type Topology } from '../../src/cli/lab/topology.js';
import { systemNftables } from '../../src/control/host/nftables.js';
import { IP_MASQ_TABLE } from '../../src/control/host/ip-masq.js';
import { kubeProxyNatRules } from '../support/kube-proxy-rules.js';
import { NEEDS_ROOT, TEST_PREFIX_ROOT } from '../support/lab.js';

const TCP_PORT = 8080;
const UDP_PORT = 8081;
const CLUSTER_IP = '198.18.100.20';

interface Answers { answers: Record<string, number>; peers: Record<string, string>; errors: string[] }

/** The masquerade rules and the table handle of `ns`'s inet userlay table (undefined: no table). */
async function masqTable(ns: string): Promise<{ handle: number; chains: number; masquerades: number } | undefined> {
  const nft = systemNftables({ command: ['ip', 'netns', 'exec', ns, 'nft'] });
  const items = await nft.listTable(IP_MASQ_TABLE.family, IP_MASQ_TABLE.name) as Array<Record<string, { handle?: number; expr?: unknown[] }>> | undefined;
  if (items === undefined) return undefined;
  const table = items.find((i) => i['table'])?.['table'];
  return {
    handle: table?.handle ?? -1,
    chains: items.filter((i) => i['chain']).length,
    masquerades: items.filter((i) => i['rule']?.expr?.some((e) => typeof e === 'object' && e !== null && 'masquerade' in e)).length,
  };
}

for (const engine of ['native', 'js'] as const) {
  describe(`ip-masq: pod egress through the node's address (${engine} engine)`, { skip: NEEDS_ROOT }, () => {
    let topo: Topology;
    let overlay: Overlay | undefined;
    const servers: PodToolServer[] = [];
    let udp: PodToolServer;
    const restarted: AgentProcess[] = [];
    const config: UserlayAgentConfig = { backend: 'vxlan', engine, ipMasq: true };
    const outsideIP = (): string => topo.outside!.ip;

    const tcpAsk = async (from: LabNode, host: string, count = 3): Promise<Answers> => {
      const r = await nsRun(from.podNs, process.execPath, [podToolPath(), 'tcp-ask', host, String(TCP_PORT), String(count)], { timeoutMs: 60_000 });
      return JSON.parse(r.stdout) as Answers;
    };
    const udpAsk = async (from: LabNode): Promise<{ peer?: string; error?: string }> => {
      const r = await nsRun(from.podNs, process.execPath, [podToolPath(), 'udp-ask', outsideIP(), String(UDP_PORT)], { timeoutMs: 30_000 });
      return JSON.parse(r.stdout) as { peer?: string; error?: string };
    };
    const serve = async (ns: string, args: string[]): Promise<PodToolServer> => {
      const s = startPodTool(ns, args);
      servers.push(s);
      assert.ok('listening' in await s.nextLine(10_000));
      return s;
    };

    before(async () => {
      topo = await createTopology({ prefix: `${TEST_PREFIX_ROOT}${process.pid}-m${engine[0]}.`, nodes: 2, pods: 'cni', outside: true });
      overlay = await applyOverlay(topo, { modes: ['userlay', 'userlay'], userlay: config });
      await serve(topo.outside!.ns, ['tcp-serve', String(TCP_PORT), 'outside']);
      udp = await serve(topo.outside!.ns, ['udp-whoami', String(UDP_PORT)]);
      for (const n of topo.nodes) await serve(n.podNs, ['tcp-serve', String(TCP_PORT), n.name]);
      const rules = kubeProxyNatRules({
        id: 'MASQ', clusterIP: CLUSTER_IP, port: TCP_PORT, nodePort: 30081, clusterCidr: CLUSTER_NETWORK,
        endpoints: [{ id: 'N2', ip: topo.nodes[1]!.podIP, port: TCP_PORT }],
      });
      await run('ip', ['netns', 'exec', topo.nodes[0]!.ns, 'iptables-restore', '--noflush'], { input: rules });
    });

    after(async () => {
      for (const s of servers) await stopChild(s.child, 2000);
      for (const a of restarted) await a.stop(2000);
      await overlay?.remove();
      await topo?.close();
    });

    test('outside sees each pod with its node\'s underlay address (TCP and UDP)', async () => {
      for (const n of topo.nodes) {
        const t = await tcpAsk(n, outsideIP());
        assert.deepEqual(t.errors, [], `TCP from ${n.name}'s pod`);
        assert.equal(t.peers['outside'], n.underlayIP, `TCP from ${n.name}'s pod leaves with the node's address`);
        const u = await udpAsk(n);
        assert.equal(u.peer, n.underlayIP, `UDP from ${n.name}'s pod: ${JSON.stringify(u)}`);
      }
    });

    test('pod to pod keeps the pod\'s address, directly and through a ClusterIP outside the cluster network', async () => {
      const [n1, n2] = topo.nodes as [LabNode, LabNode];
      const direct = await tcpAsk(n1, n2.podIP);
      assert.deepEqual(direct.errors, []);
      assert.equal(direct.peers['n2'], n1.podIP, 'no NAT between pods');
      const back = await tcpAsk(n2, n1.podIP);
      assert.equal(back.peers['n1'], n2.podIP, 'no NAT between pods, the other way');
      const viaService = await tcpAsk(n1, CLUSTER_IP);
      assert.deepEqual(viaService.errors, []);
      assert.equal(viaService.peers['n2'], n1.podIP, 'service traffic is DNATed to a pod address before our chain');
    });

    test('one table with one masquerade rule; a crash leaves it, the next start replaces it, a clean stop deletes it', async () => {
      const n1 = topo.nodes[0]!;
      const first = await masqTable(n1.ns);
      assert.deepEqual(first && { chains: first.chains, masquerades: first.masquerades }, { chains: 1, masquerades: 1 });

      // crash: the table stays and pods keep their egress
      const exit = await overlay!.agents.get(1)!.kill();
      assert.equal(exit, 'SIGKILL');
      const afterCrash = await masqTable(n1.ns);
      assert.equal(afterCrash?.handle, first!.handle, 'the crashed agent\'s table is still there');
      assert.equal((await udpAsk(n1)).peer, n1.underlayIP, 'egress is still masqueraded while the agent is down');

      // the next start replaces it: a new table, still one rule
      const again = await startAgent(n1, config, overlay!.peersFile(1), overlay!.agents.get(1)!.cni);
      restarted.push(again);
      const replaced = await masqTable(n1.ns);
      assert.notEqual(replaced?.handle, first!.handle, 'the table was replaced, not added to');
      assert.deepEqual(replaced && { chains: replaced.chains, masquerades: replaced.masquerades }, { chains: 1, masquerades: 1 });

      // a clean restart: still exactly one
      assert.deepEqual(await again.stop(), { exit: 0, killed: false });
      const third = await startAgent(n1, config, overlay!.peersFile(1), overlay!.agents.get(1)!.cni);
      restarted.push(third);
      const afterRestart = await masqTable(n1.ns);
      assert.deepEqual(afterRestart && { chains: afterRestart.chains, masquerades: afterRestart.masquerades }, { chains: 1, masquerades: 1 });
      assert.equal((await udpAsk(n1)).peer, n1.underlayIP);

      // a clean stop deletes it: outside now sees the pod's own address (and cannot answer it)
      assert.deepEqual(await third.stop(), { exit: 0, killed: false });
      assert.equal(await masqTable(n1.ns), undefined, 'no table after a clean stop');
      await nsRun(n1.podNs, process.execPath, [podToolPath(), 'udp-send', outsideIP(), String(UDP_PORT), '00']);
      const nodeAddresses = new Set(topo.nodes.map((n) => n.underlayIP));
      for (;;) {
        const seen = await udp.nextLine(10_000); // skips what the earlier asks left in its output
        if (!nodeAddresses.has(String(seen['from']))) {
          assert.deepEqual(seen, { from: n1.podIP });
          break;
        }
      }
    });

    test('static mode without nft: exit 2 naming --ip-masq, the data plane rolled back', async () => {
      const n1 = topo.nodes[0]!; // its agent was stopped by the test before
      const argv = agentArgs(n1, config, overlay!.peersFile(1), overlay!.agents.get(1)!.cni);
      const r = await run('ip', ['netns', 'exec', n1.ns, 'env', 'PATH=/nonexistent', process.execPath, ...AGENT_NODE_FLAGS, userlayBin(), ...argv],
        { allowFail: true, timeoutMs: 30_000 });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /--ip-masq: run nft: program not found/);
      const tun = await ip(n1.ns, ['link', 'show', 'userlay0'], { allowFail: true });
      assert.notEqual(tun.code, 0, 'no TUN left behind');
    });
  });
}

test('userlay lab --ip-masq: every pod is seen outside with its node\'s address', { skip: NEEDS_ROOT }, async () => {
  const r = await run(process.execPath, [userlayBin(), 'lab', '--nodes', '2', '--seconds', '1', '--ip-masq', '--json'], { allowFail: true, timeoutMs: 180_000 });
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout) as { egress: Array<{ from: string; seenAs: string | null; ok: boolean }>; ok: boolean };
  assert.deepEqual(report.egress, [
    { from: 'n1', seenAs: '198.18.0.1', ok: true },
    { from: 'n2', seenAs: '198.18.0.2', ok: true },
  ]);
  assert.equal(report.ok, true);
});
