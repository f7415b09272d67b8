/**
 * The lab harness without privileges: addressing, agent flags, peers-file
 * entries, the SVG chart, and the lab/bench commands' input checks.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { benchSvg, runBench } from '../../src/cli/bench.js';
import { runLab } from '../../src/cli/lab.js';
import { agentArgs } from '../../src/cli/lab/agent-process.js';
import { peerEntries } from '../../src/cli/lab/overlay.js';
import { barChartSvg } from '../../src/cli/lab/svg-chart.js';
import { labNode, labPrefix, labPrerequisites } from '../../src/cli/lab/topology.js';

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
    name: 'n3', subnet: '198.19.3.0/24', publicIP: '198.18.0.3', vtepMAC: '02:75:6c:00:00:03',
  });
  assert.deepEqual(peerEntries(peers, 'udp')[0], { name: 'n1', subnet: '198.19.1.0/24', publicIP: '198.18.0.1' });
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
  } finally {
    process.stderr.write = write;
    process.exitCode = saved;
  }
  assert.match(lines[0]!, /^userlay: --backend: "gre" must be one of vxlan, udp/);
  assert.match(lines[1]!, /^userlay: --nodes: 1 is not between 2 and 50/);
  assert.match(lines[2]!, /^userlay: --bogus/);
  assert.match(lines[3]!, /^userlay: --seconds/);
  assert.match(lines[4]!, /^userlay: --measures: "bogus" is not one of tcp, tcp4, reverse, udp64, udp1400, rtt, cpu/);
});

test('bench chart: one panel per measured value, a bar per path, ratios in the notes', () => {
  const values = { tcpGbps: 2, tcp4Gbps: null, reverseGbps: null, udp64Kpps: 100, udp1400Kpps: null, rttP50Us: 20, rttP99Us: 40, cpuSecondsPerGbit: null };
  const ratios = { tcpGbps: 0.5, tcp4Gbps: null, reverseGbps: null, udp64Kpps: 1, udp1400Kpps: null, rttP50Us: 2, rttP99Us: 2, cpuSecondsPerGbit: null };
  const svg = benchSvg({
    date: '2026-12-01T00:00:00Z', host: { cpus: 2, kernel: 'k', node: 'v20' }, seconds: 1, repeat: 1,
    measures: ['tcp', 'udp64', 'rtt'], cpuCounted: '',
    cases: [
      { name: 'kernel vxlan', values: { ...values, tcpGbps: 4 }, ratios, retransmits: 0, agentRssMB: null, podMtu: 1450, errors: {} },
      { name: 'userlay', values, ratios, retransmits: 0, agentRssMB: 40, podMtu: 1450, errors: {} },
    ],
  });
  // TCP, UDP64, RTT50, RTT99: four panels of two bars
  assert.equal([...svg.matchAll(/<rect x="220"/g)].length, 8);
  assert.match(svg, /TCP \(Gbit\/s\)/);
  assert.match(svg, /RTT99 \(us\)/);
  assert.doesNotMatch(svg, /TCPx4/);
  assert.match(svg, /2\.00 Gbit\/s \(0\.50x\)/);
});

test('missing root or tools is one line saying what to do', async () => {
  const msg = await labPrerequisites(['iperf3', 'no-such-tool-ul']);
  if (process.getuid?.() === 0) {
    assert.match(msg ?? '', /^missing no-such-tool-ul: install with "apt-get install no-such-tool-ul"$/);
  } else {
    assert.match(msg ?? '', /needs root: run it as root/);
  }
});
