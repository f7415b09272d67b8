/**
 * The pod egress ruleset in the kernel, both families (the lab is IPv4 only): three
 * namespaces, a "pod" behind a "node" that applies the agent's table through IpMasq and
 * systemNftables, and on the node's far side an "outside" host and a "peer" inside the
 * cluster network. The outside host sees the node's address; the peer sees the pod's own.
 *
 *   pod  eth0 198.18.9.2/24   2001:2:0:9::2/64  ── node pod0 198.18.9.1 / 2001:2:0:9::1
 *   node up0  198.18.20.1/24  2001:2:0:20::1/64 ── outside eth0 198.18.20.2 / 2001:2:0:20::2
 *   node peer0 198.18.8.1/24  2001:2:0:8::1/64  ── peer eth0 198.18.8.2 / 2001:2:0:8::2
 *   cluster networks 198.18.8.0/23 and 2001:2:0:8::/63; pod subnets 198.18.9.0/24, 2001:2:0:9::/64
 *
 * Next to our table, an iptables-nft and an iptables-legacy nat rule SNAT one port each (as
 * kube-proxy's KUBE-POSTROUTING masquerades marked packets): their decision stands, since
 * both sit at priority srcnat and ours at srcnat + 10; everything else is ours.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ip, nsRun, stopChild } from '../../src/cli/lab/exec.js';
import { podToolPath, startPodTool, type PodToolServer } from '../../src/cli/lab/probes.js';
import { deleteNamespaces } from '../../src/cli/lab/topology.js';
import { IpMasq, IP_MASQ_TABLE } from '../../src/control/host/ip-masq.js';
import { systemNftables } from '../../src/control/host/nftables.js';
import { silentLogger } from '../../src/log.js';
import { NEEDS_ROOT, TEST_PREFIX_ROOT } from '../support/lab.js';

const PORT = 8082;
/** Ports SNATed by iptables rules, and to which node address. */
const IPTABLES_SNAT = [
  { tool: 'iptables-nft', port: 8083, to: '198.18.20.3' },
  { tool: 'iptables-legacy', port: 8084, to: '198.18.20.4' },
] as const;
const FAMILIES = [
  { family: 4, pod: '198.18.9.2', gw: '198.18.9.1', len: 24, outside: '198.18.20.2', nodeOut: '198.18.20.1', peer: '198.18.8.2', peerGw: '198.18.8.1',
    subnet: '198.18.9.0/24', network: '198.18.8.0/23' },
  { family: 6, pod: '2001:2:0:9::2', gw: '2001:2:0:9::1', len: 64, outside: '2001:2:0:20::2', nodeOut: '2001:2:0:20::1', peer: '2001:2:0:8::2', peerGw: '2001:2:0:8::1',
    subnet: '2001:2:0:9::/64', network: '2001:2:0:8::/63' },
] as const;

describe('ip-masq ruleset in the kernel, IPv4 and IPv6', { skip: NEEDS_ROOT }, () => {
  const prefix = `${TEST_PREFIX_ROOT}${process.pid}-r.`;
  const ns = { pod: `${prefix}pod`, node: `${prefix}node`, outside: `${prefix}out`, peer: `${prefix}peer` };
  const made: string[] = [];
  const servers: PodToolServer[] = [];
  const nft = systemNftables({ command: ['ip', 'netns', 'exec', ns.node, 'nft'] });
  const masq = new IpMasq(nft, silentLogger);

  const link = async (a: string, aDev: string, b: string, bDev: string): Promise<void> => {
    await ip(a, ['link', 'add', aDev, 'type', 'veth', 'peer', 'name', bDev, 'netns', b]);
    await ip(a, ['link', 'set', aDev, 'up']);
    await ip(b, ['link', 'set', bDev, 'up']);
  };
  const addr = (n: string, dev: string, a: string, len: number): Promise<unknown> => ip(n, ['addr', 'add', `${a}/${len}`, 'dev', dev, ...(a.includes(':') ? ['nodad'] : [])]);
  const ask = async (host: string, port: number = PORT): Promise<{ peer?: string; error?: string }> => {
    const r = await nsRun(ns.pod, process.execPath, [podToolPath(), 'udp-ask', host, String(port)], { timeoutMs: 30_000 });
    return JSON.parse(r.stdout) as { peer?: string; error?: string };
  };

  before(async () => {
    for (const n of Object.values(ns)) {
      await ip(undefined, ['netns', 'add', n]);
      made.push(n);
      await ip(n, ['link', 'set', 'lo', 'up']);
      await nsRun(n, 'sysctl', ['-q', '-w', 'net.ipv6.conf.all.disable_ipv6=0', 'net.ipv6.conf.default.disable_ipv6=0',
        'net.ipv6.conf.all.accept_ra=0', 'net.ipv6.conf.default.accept_ra=0']);
    }
    await nsRun(ns.node, 'sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
    await link(ns.node, 'pod0', ns.pod, 'eth0');
    await link(ns.node, 'up0', ns.outside, 'eth0');
    await link(ns.node, 'peer0', ns.peer, 'eth0');
    for (const f of FAMILIES) {
      const v = f.family === 6 ? ['-6'] : [];
      await addr(ns.pod, 'eth0', f.pod, f.len);
      await addr(ns.node, 'pod0', f.gw, f.len);
      await addr(ns.node, 'up0', f.nodeOut, f.len);
      await addr(ns.outside, 'eth0', f.outside, f.len);
      await addr(ns.node, 'peer0', f.peerGw, f.len);
      await addr(ns.peer, 'eth0', f.peer, f.len);
      await ip(ns.pod, [...v, 'route', 'add', 'default', 'via', f.gw]);
      // the peer routes back to the pod subnet (cluster routing); outside has no such route
      await ip(ns.peer, [...v, 'route', 'add', f.subnet, 'via', f.peerGw]);
    }
    for (const [n, port] of [[ns.outside, PORT], [ns.peer, PORT], ...IPTABLES_SNAT.map((r) => [ns.outside, r.port] as const)] as const) {
      const s = startPodTool(n, ['udp-whoami', String(port)]);
      servers.push(s);
      assert.ok('listening' in await s.nextLine(10_000));
    }
    for (const r of IPTABLES_SNAT) {
      await addr(ns.node, 'up0', r.to, 24);
      await nsRun(ns.node, r.tool, ['-t', 'nat', '-A', 'POSTROUTING', '-p', 'udp', '--dport', String(r.port), '-j', 'SNAT', '--to-source', r.to]);
    }
    await masq.apply({ enabled: true, podSubnets: FAMILIES.map((f) => f.subnet), networks: FAMILIES.map((f) => f.network) });
  });

  after(async () => {
    for (const s of servers) await stopChild(s.child, 2000);
    await deleteNamespaces([...made].reverse());
  });

  for (const f of FAMILIES) {
    test(`IPv${f.family}: outside sees the node's address, a cluster peer the pod's`, async () => {
      assert.deepEqual(await ask(f.outside), { peer: f.nodeOut });
      assert.deepEqual(await ask(f.peer), { peer: f.pod });
    });
  }

  test('an iptables-nft or iptables-legacy SNAT at srcnat decides first; our chain the rest', async () => {
    for (const r of IPTABLES_SNAT) assert.deepEqual(await ask('198.18.20.2', r.port), { peer: r.to }, r.tool);
    assert.deepEqual(await ask('198.18.20.2'), { peer: '198.18.20.1' }, 'not NATed by iptables: masqueraded by us');
  });

  test('applying again (a restart) leaves one table with one rule per family; remove deletes it', async () => {
    // each agent start is a fresh IpMasq that runs the whole script over the table already there
    let again: IpMasq | undefined;
    for (let start = 0; start < 2; start++) {
      again = new IpMasq(nft, silentLogger);
      await again.apply({ enabled: true, podSubnets: FAMILIES.map((f) => f.subnet), networks: FAMILIES.map((f) => f.network) });
    }
    const items = await nft.listTable(IP_MASQ_TABLE.family, IP_MASQ_TABLE.name) as Array<Record<string, { expr?: Array<Record<string, unknown>> }>>;
    const rules = items.filter((i) => i['rule']).map((i) => i['rule']!.expr!);
    assert.equal(items.filter((i) => i['chain']).length, 1);
    assert.equal(rules.length, 2);
    const protocols = rules.map((expr) => (expr[0]!['match'] as { left: { payload: { protocol: string } } }).left.payload.protocol);
    assert.deepEqual(protocols, ['ip', 'ip6']);
    assert.ok(rules.every((expr) => expr.some((e) => 'masquerade' in e)));
    await again!.remove();
    assert.equal(await nft.listTable(IP_MASQ_TABLE.family, IP_MASQ_TABLE.name), undefined);
  });
});
