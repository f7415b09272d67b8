/**
 * The lab harness without privileges: addressing, agent flags, peers-file
 * entries, the SVG chart, and the lab/bench commands' input checks.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import os from 'node:os';
import { benchSvg, formatTable, runBench } from '../../src/cli/bench.js';
import { runLab } from '../../src/cli/lab.js';
import { signalExitCode } from '../../src/cli/lab/session.js';
import { agentArgs } from '../../src/cli/lab/agent-process.js';
import { peerEntries } from '../../src/cli/lab/overlay.js';
import { barChartSvg } from '../../src/cli/lab/svg-chart.js';
import { CLUSTER_NETWORKS, labNode, labPrefix, labPrerequisites } from '../../src/cli/lab/topology.js';
import { cidrContains } from '../../src/dataplane/net.js';

test('lab addressing follows the shared plan', () => {
  const n = labNode('ulT1-', 7);
  assert.equal(n.ns, 'ulT1-n7');
  assert.equal(n.podNs, 'ulT1-p7');
  assert.equal(n.underlayIP, '198.18.0.7');
  assert.equal(n.subnet, '198.19.7.0/24');
  assert.equal(n.subnetAddr, '198.19.7.0');
  assert.equal(n.podIP, '198.19.7.2');
  assert.equal(n.gatewayIP, '198.19.7.1');
  assert.equal(n.vtepMAC, '02:75:6c:00:00:07');
  assert.equal(labPrefix('ulL', 42), 'ulL42-');
});

test('agent flags carry the node identity, backend and optional status address', () => {
  const n = labNode('x-', 2);
  const vx = agentArgs(n, { backend: 'vxlan', engine: 'js', statusPort: 9464 }, '/tmp/p.json');
  const at = (flag: string): string | undefined => vx[vx.indexOf(flag) + 1];
  assert.equal(vx[0], 'agent');
  assert.equal(at('--node'), 'n2');
  assert.equal(at('--public-ip'), '198.18.0.2');
  assert.equal(at('--subnet'), '198.19.2.0/24');
  assert.equal(at('--network'), '198.19.0.0/16');
  assert.equal(at('--engine'), 'js');
  assert.equal(at('--vtep-mac'), '02:75:6c:00:00:02');
  assert.equal(at('--status-addr'), '127.0.0.1:9464');
  const udp = agentArgs(n, { backend: 'udp', engine: 'native' }, '/tmp/p.json');
  assert.ok(!udp.includes('--vtep-mac'));
  assert.ok(!udp.includes('--status-addr'));
});

test('peers-file entries carry the VTEP MAC only for vxlan', () => {
  const peers = [labNode('x-', 1), labNode('x-', 3)];
  assert.deepEqual(peerEntries(peers, 'vxlan')[1], {
    name: 'n3', subnets: ['198.19.3.0/24'], publicIP: '198.18.0.3', vtepMAC: '02:75:6c:00:00:03',
  });
  assert.deepEqual(peerEntries(peers, 'udp')[0], { name: 'n1', subnets: ['198.19.1.0/24'], publicIP: '198.18.0.1' });
});

test('peers-file entries carry the underlay MTU in a lab with per-node MTUs, and agents get --mtu and --subnet-file', () => {
  const jumbo = { ...labNode('x-', 2), underlayMtu: 9000 };
  assert.equal(peerEntries([jumbo], 'udp')[0]!.mtu, 9000);
  assert.equal(peerEntries([labNode('x-', 2)], 'udp')[0]!.mtu, undefined);
  const args = agentArgs(jumbo, { backend: 'udp', engine: 'native', mtu: 8950 }, '/tmp/p.json', undefined, '/tmp/subnet.env');
  assert.equal(args[args.indexOf('--mtu') + 1], '8950');
  assert.equal(args[args.indexOf('--subnet-file') + 1], '/tmp/subnet.env');
});

test('IPv6 lab addressing: 2001:2::/48 only, cluster network clear of the underlay', () => {
  const n = labNode('x-', 18, '6');
  assert.deepEqual(n.families, [6]);
  assert.equal(n.underlayIP, '2001:2::12');
  assert.equal(n.underlayFamily, 6);
  assert.equal(n.subnet, '2001:2:0:112::/64');
  assert.equal(n.subnetAddr, '2001:2:0:112::');
  assert.equal(n.podIP, '2001:2:0:112::2');
  assert.equal(n.gatewayIP, '2001:2:0:112::1');
  assert.equal(n.vtepMAC, '02:75:6c:00:00:12');
  assert.ok(cidrContains(CLUSTER_NETWORKS[6], n.subnet));
  assert.ok(!cidrContains(CLUSTER_NETWORKS[6], n.underlayIP));
  assert.ok(cidrContains('2001:2::/48', CLUSTER_NETWORKS[6]));
  const args = agentArgs(n, { backend: 'vxlan', engine: 'js' }, '/tmp/p.json');
  assert.equal(args[args.indexOf('--public-ip') + 1], '2001:2::12');
  assert.equal(args[args.indexOf('--network') + 1], '2001:2:0:100::/56');
});

test('dual-stack lab node: both pod families, agents on the chosen underlay, one VTEP MAC per kernel device', () => {
  const d = labNode('x-', 2, 'dual', 6);
  assert.deepEqual(d.families, [4, 6]);
  assert.equal(d.podIP, '198.19.2.2');
  assert.equal(d.inner[6]?.podIP, '2001:2:0:102::2');
  assert.deepEqual(d.underlayIPs, { 4: '198.18.0.2', 6: '2001:2::2' });
  assert.equal(d.underlayIP, '2001:2::2');
  assert.equal(d.vtepMACs[6], d.vtepMAC);
  assert.notEqual(d.vtepMACs[4], d.vtepMAC);
  const args = agentArgs(d, { backend: 'udp', engine: 'native' }, '/tmp/p.json');
  const values = (flag: string): string[] => args.flatMap((a, i) => (a === flag ? [args[i + 1]!] : []));
  assert.deepEqual(values('--subnet'), ['198.19.2.0/24', '2001:2:0:102::/64']);
  assert.deepEqual(values('--network'), ['198.19.0.0/16', '2001:2:0:100::/56']);
  assert.deepEqual(peerEntries([d], 'udp')[0]?.subnets, ['198.19.2.0/24', '2001:2:0:102::/64']);
  assert.equal(labNode('x-', 2, 'dual').underlayIP, '198.18.0.2', 'IPv4 underlay unless asked');
  assert.throws(() => labNode('x-', 2, '4', 6), /IPv6 is not a family/);
});

test('dual underlay: agents get --public-ipv6, peers both addresses with the MAC each side uses', () => {
  const [a, b] = [labNode('x-', 1, 'dual'), labNode('x-', 2, 'dual')];
  const args = agentArgs(a, { backend: 'vxlan', engine: 'native', dualUnderlay: true }, '/tmp/p.json');
  const value = (flag: string): string | undefined => args[args.indexOf(flag) + 1];
  assert.deepEqual([value('--public-ip'), value('--public-ipv6')], ['198.18.0.1', '2001:2::1']);
  assert.equal(agentArgs(a, { backend: 'vxlan', engine: 'native' }, '/tmp/p.json').includes('--public-ipv6'), false);
  // as seen from a userlay node: b is a kernel node with a MAC per device
  const macOf = (n: typeof b, f: 4 | 6) => n.vtepMACs[f]!;
  assert.deepEqual(peerEntries([b], 'vxlan', macOf)[0], {
    name: 'n2', subnets: ['198.19.2.0/24', '2001:2:0:102::/64'], publicIP: '198.18.0.2', publicIPv6: '2001:2::2', vtepMAC: b.vtepMACs[4], vtepMACv6: b.vtepMACs[6],
  });
  assert.equal(peerEntries([b], 'vxlan')[0]?.publicIPv6, undefined, 'one underlay family unless asked');
});

test('the bar chart scales bars to the largest value and escapes text', () => {
  const svg = barChartSvg('a <b> & c', 'Gbit/s', [
    { label: 'kernel', value: 2, note: '2.00' },
    { label: 'half', value: 1, note: '1.00' },
    { label: 'failed', value: Number.NaN, note: 'failed' },
  ]);
  assert.match(svg, /^<svg /);
  assert.match(svg, /a &lt;b&gt; &amp; c/);
  const widths = [...svg.matchAll(/<rect x="\d+" y="\d+" width="([\d.]+)"/g)].map((m) => Number(m[1]));
  assert.deepEqual(widths, [460, 230, 0]);
});

test('lab and bench reject bad flags with exit code 2 before touching the system', async () => {
  const saved = process.exitCode;
  const write = process.stderr.write.bind(process.stderr);
  const lines: string[] = [];
  process.stderr.write = ((chunk: string | Uint8Array) => { lines.push(String(chunk)); return true; }) as typeof process.stderr.write;
  try {
    assert.equal(await runLab(['--backend', 'gre']), 2);
    assert.equal(await runLab(['--nodes', '1']), 2);
    assert.equal(await runLab(['--bogus']), 2);
    assert.equal(await runBench(['--seconds', '0']), 2);
    assert.equal(await runBench(['--measures', 'tcp,bogus']), 2);
    assert.equal(await runLab(['--family', '5']), 2);
    assert.equal(await runLab(['--family', '6', '--underlay-family', '4']), 2);
    assert.equal(await runLab(['--family', 'dual', '--underlay', 'routed']), 2);
    assert.equal(await runBench(['--out', '/proc/self/status/out']), 2);
    assert.equal(await runBench(['--out', os.tmpdir(), '--json', '/proc']), 2);
    assert.equal(await runBench(['--out', '/proc/sys/new']), 2);
  } finally {
    process.stderr.write = write;
    process.exitCode = saved;
  }
  assert.match(lines[0]!, /^userlay: --backend: "gre" must be one of vxlan, udp/);
  assert.match(lines[1]!, /^userlay: --nodes: 1 is not between 2 and 50/);
  assert.match(lines[2]!, /^userlay: --bogus/);
  assert.match(lines[3]!, /^userlay: --seconds/);
  assert.match(lines[4]!, /^userlay: --measures: "bogus" is not one of tcp, tcp4, reverse, udp64, udp1400, rtt, cpu/);
  assert.match(lines[5]!, /^userlay: --family: "5" must be one of 4, 6, dual/);
  assert.match(lines[6]!, /^userlay: --underlay-family: IPv4 is not a family of --family 6/);
  assert.match(lines[7]!, /^userlay: --underlay: a routed underlay is IPv4 only/);
  assert.match(lines[8]!, /^userlay: --out: \/proc\/self\/status is not a directory/);
  assert.match(lines[9]!, /^userlay: --json: \/proc is a directory/);
  assert.match(lines[10]!, /^userlay: --out: \/proc\/sys is not writable/);
});

test('bench chart: one panel per measured value, a bar per path, ratios in the notes', () => {
  const values = { tcpGbps: 2, tcp4Gbps: null, reverseGbps: null, udp64Kpps: 100, udp1400Kpps: null, rttP50Us: 20, rttP99Us: 40, cpuSecondsPerGbit: null };
  const ratios = { tcpGbps: 0.5, tcp4Gbps: null, reverseGbps: null, udp64Kpps: 1, udp1400Kpps: null, rttP50Us: 2, rttP99Us: 2, cpuSecondsPerGbit: null };
  const svg = benchSvg({
    date: '2026-12-01T00:00:00Z', host: { cpus: 2, kernel: 'k', node: 'v20' }, seconds: 1, repeat: 1,
    measures: ['tcp', 'udp64', 'rtt'], cpuCounted: '',
    cases: [
      { name: 'kernel vxlan', values: { ...values, tcpGbps: 4 }, ratios, retransmits: 0, agentRssMB: null, stealPercent: null, podMtu: 1450, errors: {} },
      { name: 'userlay', values, ratios, retransmits: 0, agentRssMB: 40, stealPercent: null, podMtu: 1450, errors: {} },
    ],
  });
  // TCP, UDP64, RTT50, RTT99: four panels of two bars
  assert.equal([...svg.matchAll(/<rect x="220"/g)].length, 8);
  assert.match(svg, /TCP \(Gbit\/s\)/);
  assert.match(svg, /RTT99 \(us\)/);
  assert.doesNotMatch(svg, /TCPx4/);
  assert.match(svg, /2\.00 Gbit\/s \(0\.50x\)/);
});

test('bench table: a path name longer than the usual column keeps every value column aligned', () => {
  const values = { tcpGbps: 9.05, tcp4Gbps: null, reverseGbps: null, udp64Kpps: null, udp1400Kpps: null, rttP50Us: 157, rttP99Us: 721, cpuSecondsPerGbit: null };
  const ratios = { tcpGbps: 0.88, tcp4Gbps: null, reverseGbps: null, udp64Kpps: null, udp1400Kpps: null, rttP50Us: 4.13, rttP99Us: 4.77, cpuSecondsPerGbit: null };
  const table = formatTable({
    date: '2026-12-01T00:00:00Z', host: { cpus: 2, kernel: 'k', node: 'v20' }, seconds: 1, repeat: 1,
    measures: ['tcp', 'rtt'], cpuCounted: '',
    cases: [
      { name: 'kernel vxlan', values, ratios, retransmits: 0, agentRssMB: null, stealPercent: 0.4, podMtu: 1450, errors: {} },
      { name: 'userlay native vxlan, offloads off', values, ratios, retransmits: 0, agentRssMB: 52.2, stealPercent: 11.2, podMtu: 1450, errors: {} },
    ],
  });
  const lines = table.split('\n').filter((l) => /^(PATH|kernel|userlay)/.test(l));
  assert.equal(lines.length, 3);
  const ends = (l: string) => [...l.matchAll(/(Gbit\/s|us|x\))(?= |$)/g)].map((m) => m.index! + m[0].length);
  assert.deepEqual(ends(lines[1]!), ends(lines[2]!), `value columns line up:\n${lines.join('\n')}`);
  assert.equal(lines[0]!.length, lines[2]!.length, 'the header is as wide as a row');
  assert.match(lines[2]!, /^userlay native vxlan, offloads off {2,}9\.05 \(0\.88x\)/);
  // steal of 2% or more is named under the table, path by path; less is not
  assert.match(table, /^steal: the hypervisor ran something else for 11% \(userlay native vxlan, offloads off\) of the CPUs' time/m);
  assert.doesNotMatch(table, /kernel vxlan\) of the CPUs|0% \(kernel vxlan\)/);
});

test('missing root or tools is one line saying what to do', async () => {
  const msg = await labPrerequisites(['iperf3', 'no-such-tool-ul'], 'userlay bench');
  if (process.getuid?.() === 0) {
    assert.match(msg ?? '', /^missing no-such-tool-ul: install with "apt-get install no-such-tool-ul"$/);
  } else {
    assert.match(msg ?? '', /needs root: run it as root \(e\.g\. sudo userlay bench\)$/);
  }
});

test('a lab ended by a signal exits with 128 + its number', () => {
  assert.deepEqual((['SIGHUP', 'SIGINT', 'SIGTERM'] as const).map(signalExitCode), [129, 130, 143]);
});
