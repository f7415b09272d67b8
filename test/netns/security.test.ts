/**
 * Crafted datagrams into a userlay node (needs root): wrong VXLAN flags,
 * wrong VNI, truncated, unknown outer source, spoofed inner source and wrong
 * inner MAC are each dropped and counted under their reason (read from the
 * agent's /debug/stats): exactly that counter moves, by the number sent, in
 * the totals and, where the engine has identified the sending peer (spoofed:
 * the inner source is checked against that peer's subnets), in the peer's
 * slot too; the cheaper checks run before the peer lookup, so those drops are
 * counted in the totals only. Meanwhile a ping flow between the pods keeps
 * going and a hashed TCP transfer afterwards still arrives intact. A
 * well-formed crafted datagram is delivered: a UDP sink in the pod receives
 * its payload. The same checks hold on the IPv6 socket of a dual-stack node
 * (a socket per underlay family): spoofed, unknown and wrong-MAC datagrams
 * over IPv6 are dropped and counted alike, and the peer's IPv4 pod packet
 * from its IPv6 underlay address is its own and delivered. The agent's
 * sockets that only send (the native engine's per-flow source ports, the js
 * engine's GSO socket) take nothing in: datagrams sent to them are dropped by
 * the kernel, counted in their drops, and none stays queued.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { ip, nsRun, nsSpawn, sleep, stopChild } from '../../src/cli/lab/exec.js';
import { VXLAN_PORT, VXLAN_VNI } from '../../src/cli/lab/overlay.js';
import { hashedTransfer, sendDatagram } from '../../src/cli/lab/probes.js';
import type { LabNode } from '../../src/cli/lab/topology.js';
import { TX_SOURCE_PORTS } from '../../src/dataplane/native-engine.js';
import type { EngineKind } from '../../src/dataplane/types.js';
import { NEEDS_ROOT, openTestLab, statusJson, type TestLab } from '../support/lab.js';
import { nsSpawnJson } from '../support/json-lines.js';
import { startPingFlow } from '../support/ping-flow.js';
import { drop, dropDeltas, readStats, waitForStats } from '../support/stats.js';

const STATUS_PORT = 9464;
const STRANGER_IP = '198.18.0.200';
const STRANGER_IP6 = '2001:2::c8';
const SINK_PORT = 5399;
const udpSink = path.join(path.dirname(fileURLToPath(import.meta.url)), '../support/udp-sink.js');

function macBytes(mac: string): Buffer {
  return Buffer.from(mac.split(':').map((h) => parseInt(h, 16)));
}

function ipBytes(addr: string): Buffer {
  return Buffer.from(addr.split('.').map(Number));
}

/** An IPv4 ICMP echo request src -> dst with valid checksums. */
function icmpEcho(src: string, dst: string): Buffer {
  const icmp = Buffer.from([8, 0, 0, 0, 0x12, 0x34, 0, 1, ...Buffer.from('userlay-crafted!')]);
  icmp.writeUInt16BE(checksum(icmp), 2);
  const hdr = Buffer.alloc(20);
  hdr[0] = 0x45;
  hdr.writeUInt16BE(20 + icmp.length, 2);
  hdr[8] = 64;
  hdr[9] = 1;
  ipBytes(src).copy(hdr, 12);
  ipBytes(dst).copy(hdr, 16);
  hdr.writeUInt16BE(checksum(hdr), 10);
  return Buffer.concat([hdr, icmp]);
}

function checksum(b: Buffer): number {
  let sum = 0;
  for (let i = 0; i < b.length; i += 2) sum += (b[i]! << 8) | (b[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** A VXLAN datagram payload: header, inner Ethernet, inner IP packet. */
function vxlan(opts: { flags?: number; vni?: number; dstMac: string; srcMac: string; inner: Buffer }): Buffer {
  const hdr = Buffer.alloc(8);
  hdr[0] = opts.flags ?? 0x08;
  hdr.writeUIntBE(opts.vni ?? VXLAN_VNI, 4, 3);
  const eth = Buffer.concat([macBytes(opts.dstMac), macBytes(opts.srcMac), Buffer.from([0x08, 0x00])]);
  return Buffer.concat([hdr, eth, opts.inner]);
}

/** An IPv4 UDP datagram src:sport -> dst:dport (UDP checksum 0: none, allowed for IPv4). */
function udpPacket(src: string, dst: string, sport: number, dport: number, payload: Buffer): Buffer {
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(sport, 0);
  udp.writeUInt16BE(dport, 2);
  udp.writeUInt16BE(8 + payload.length, 4);
  const hdr = Buffer.alloc(20);
  hdr[0] = 0x45;
  hdr.writeUInt16BE(28 + payload.length, 2);
  hdr[8] = 64;
  hdr[9] = 17;
  ipBytes(src).copy(hdr, 12);
  ipBytes(dst).copy(hdr, 16);
  hdr.writeUInt16BE(checksum(hdr), 10);
  return Buffer.concat([hdr, udp, payload]);
}

/** An IPv4 UDP socket of a process (/proc/PID/net/udp, the process's namespace). */
interface UdpSocket {
  readonly port: number;
  readonly rxQueue: number;
  readonly drops: number;
}

/** The IPv4 UDP sockets process `pid` holds, by inode. */
function udpSocketsOf(pid: number): Map<string, UdpSocket> {
  const held = new Set(readdirSync(`/proc/${pid}/fd`).map((fd) => {
    try {
      return /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1];
    } catch {
      return undefined; // closed meanwhile
    }
  }));
  const out = new Map<string, UdpSocket>();
  for (const line of readFileSync(`/proc/${pid}/net/udp`, 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 13 || !held.has(f[9])) continue;
    out.set(f[9]!, { port: parseInt(f[1]!.split(':')[1]!, 16), rxQueue: parseInt(f[4]!.split(':')[1]!, 16), drops: Number(f[12]) });
  }
  return out;
}

/** Send `count` datagrams of `size` bytes to each of `ports` of `host`, from `src` in namespace `ns`. */
async function flood(ns: string, src: string, host: string, ports: readonly number[], count: number, size: number): Promise<void> {
  const code = `const s = require('node:dgram').createSocket('udp4');
s.bind(0, ${JSON.stringify(src)}, async () => {
  const b = Buffer.alloc(${size}, 0x5a);
  for (const p of ${JSON.stringify(ports)}) for (let i = 0; i < ${count}; i++) await new Promise((r, j) => s.send(b, p, ${JSON.stringify(host)}, (e) => (e ? j(e) : r())));
  s.close();
});`;
  await nsRun(ns, process.execPath, ['-e', code], { timeoutMs: 30_000 });
}

interface Case {
  readonly name: string;
  readonly reason: string;
  /** The peer whose slot also counts the drop, or undefined: totals only. */
  readonly peer: 'n2' | undefined;
  /** Namespace to send from and source address to bind. */
  readonly from: (lab: TestLab) => { ns: string; src: string };
  readonly payload: (to: LabNode, peer: LabNode) => Buffer;
}

const fromPeer = (lab: TestLab): { ns: string; src: string } => ({ ns: lab.node(2).ns, src: lab.node(2).underlayIP });
const good = (to: LabNode, peer: LabNode): Buffer => vxlan({ dstMac: to.vtepMAC, srcMac: peer.vtepMAC, inner: icmpEcho(peer.podIP, to.podIP) });

const cases: Case[] = [
  { name: 'VXLAN flags without the I bit', reason: 'bad_flags', peer: undefined, from: fromPeer,
    payload: (to, peer) => vxlan({ flags: 0x00, dstMac: to.vtepMAC, srcMac: peer.vtepMAC, inner: icmpEcho(peer.podIP, to.podIP) }) },
  { name: 'wrong VNI', reason: 'bad_vni', peer: undefined, from: fromPeer,
    payload: (to, peer) => vxlan({ vni: VXLAN_VNI + 41, dstMac: to.vtepMAC, srcMac: peer.vtepMAC, inner: icmpEcho(peer.podIP, to.podIP) }) },
  { name: 'truncated datagram', reason: 'short', peer: undefined, from: fromPeer, payload: (to, peer) => good(to, peer).subarray(0, 11) },
  { name: 'unknown outer source', reason: 'unknown_peer', peer: undefined,
    from: (lab) => ({ ns: lab.topo.underlayNs, src: STRANGER_IP }), payload: good },
  { name: 'spoofed inner source', reason: 'spoofed', peer: 'n2', from: fromPeer,
    payload: (to, peer) => vxlan({ dstMac: to.vtepMAC, srcMac: peer.vtepMAC, inner: icmpEcho('198.19.77.7', to.podIP) }) },
  { name: 'wrong inner destination MAC', reason: 'bad_mac', peer: undefined, from: fromPeer,
    payload: (to, peer) => vxlan({ dstMac: '02:00:00:00:00:99', srcMac: peer.vtepMAC, inner: icmpEcho(peer.podIP, to.podIP) }) },
];

const SENT = 3;
/** Drop reasons of the transmit side (TUN -> UDP). */
const TX_REASONS = new Set(['no_route', 'tx_malformed', 'udp_send', 'tun_read']);

for (const engine of ['native', 'js'] as EngineKind[]) {
  describe(`security: crafted datagrams into a userlay node (${engine} engine)`, { skip: NEEDS_ROOT, timeout: 180_000 }, () => {
    let lab: TestLab;
    before(async () => {
      lab = await openTestLab(2, { modes: ['userlay', 'userlay'], userlay: { backend: 'vxlan', engine, statusPort: STATUS_PORT } });
      await ip(lab.topo.underlayNs, ['addr', 'add', `${STRANGER_IP}/24`, 'dev', 'br0']);
    });
    after(async () => { await lab?.close(); });

    test('each crafted datagram is dropped under its reason while a flow goes on', async () => {
      const n1 = lab.node(1);
      const n2 = lab.node(2);
      // A steady flow n2 pod -> n1 pod for the whole test.
      const flow = startPingFlow(n2.podNs, n1.podIP);
      for (const c of cases) {
        const before = await readStats(n1, STATUS_PORT);
        const { ns, src } = c.from(lab);
        for (let i = 0; i < SENT; i++) await sendDatagram(ns, n1.underlayIP, VXLAN_PORT, c.payload(n1, n2), src);
        const after = await waitForStats(n1, STATUS_PORT, `${c.name}: ${SENT} drops{reason="${c.reason}"}`,
          (s) => drop(s.total, c.reason) >= drop(before.total, c.reason) + SENT);
        assert.deepEqual(dropDeltas(before.total, after.total), { [c.reason]: SENT }, `${c.name}: total drops moved`);
        assert.deepEqual(dropDeltas(before.peers['n2'], after.peers['n2']), c.peer ? { [c.reason]: SENT } : {}, `${c.name}: drops of peer n2 moved`);
      }
      const flowResult = await flow.stop();
      assert.ok(flowResult.transmitted >= 10, `the flow ran too briefly: ${flowResult.output}`);
      assert.deepEqual(flowResult.lost, [], `the flow lost echo requests during the attack: ${flowResult.output}`);
      const r = await hashedTransfer(n2, n1, 10 * 1024 * 1024);
      assert.equal(r.received.sha256, r.sent.sha256);
    });

    test('the send-only sockets take nothing in: datagrams to them are dropped by the kernel, none queued', async () => {
      const n1 = lab.node(1);
      const pid = lab.overlay.agents.get(1)!.pid;
      const before = [...udpSocketsOf(pid)].filter(([, u]) => u.port !== VXLAN_PORT);
      assert.equal(before.length, engine === 'native' ? TX_SOURCE_PORTS : 1, 'send-only sockets of the agent');
      const COUNT = 200; // 200 x 1,400 B queued would be ~0.5 MB per socket
      await flood(lab.node(2).ns, lab.node(2).underlayIP, n1.underlayIP, before.map(([, u]) => u.port), COUNT, 1400);
      // the kernel counts each drop when the datagram reaches the socket: wait for all of them
      let now = udpSocketsOf(pid);
      for (let i = 0; i < 100 && before.some(([inode, u]) => (now.get(inode)?.drops ?? 0) < u.drops + COUNT); i++) {
        await sleep(100);
        now = udpSocketsOf(pid);
      }
      for (const [inode, u] of before) {
        const after = now.get(inode);
        assert.ok(after, `socket of port ${u.port} is gone`);
        assert.equal(after.drops - u.drops, COUNT, `port ${u.port}: drops`);
        assert.equal(after.rxQueue, 0, `port ${u.port}: bytes queued`);
      }
      // and the agent says so: every one of them in its send-socket drop count
      const sum = (m: Map<string, UdpSocket>) => [...m].filter(([, u]) => u.port !== VXLAN_PORT).reduce((s, [, u]) => s + u.drops, 0);
      const stats = (await statusJson(n1, STATUS_PORT, '/debug/stats')) as { sendSocketDrops?: string };
      assert.equal(stats.sendSocketDrops, String(sum(now)), '/debug/stats sendSocketDrops');
      assert.ok(sum(now) >= before.length * COUNT);
    });

    test('a well-formed datagram from the peer is delivered, not dropped', async () => {
      const n1 = lab.node(1);
      const n2 = lab.node(2);
      const sink = nsSpawnJson(n1.podNs, process.execPath, [udpSink, String(SINK_PORT)]);
      try {
        const text = `userlay-delivered-${process.pid}-${engine}`;
        await sink.line('listening line', (r) => r['listening'] !== undefined);
        const before = await readStats(n1, STATUS_PORT);
        const inner = udpPacket(n2.podIP, n1.podIP, 40000, SINK_PORT, Buffer.from(text, 'latin1'));
        await sendDatagram(n2.ns, n1.underlayIP, VXLAN_PORT, vxlan({ dstMac: n1.vtepMAC, srcMac: n2.vtepMAC, inner }), n2.underlayIP);
        const rec = await sink.line(`datagram "${text}"`, (r) => r['text'] === text, 20_000);
        assert.equal(rec['from'], `${n2.podIP}:40000`);
        const after = await readStats(n1, STATUS_PORT);
        assert.ok(after.peers['n2']!.rxPackets >= before.peers['n2']!.rxPackets + 1, 'rx counter of n2 did not move');
        assert.deepEqual(dropDeltas(before.total, after.total), {}, 'a drop was counted');
      } finally {
        await stopChild(sink.child, 1000);
      }
    });
  });
}

describe('security: crafted datagrams into the IPv6 socket of a dual-stack node (native engine)', { skip: NEEDS_ROOT, timeout: 120_000 }, () => {
  let lab: TestLab;
  before(async () => {
    lab = await openTestLab(2, { modes: ['userlay', 'userlay'], userlay: { backend: 'vxlan', engine: 'native', dualUnderlay: true, statusPort: STATUS_PORT } },
      { family: 'dual' });
    await ip(lab.topo.underlayNs, ['addr', 'add', `${STRANGER_IP6}/64`, 'dev', 'br0', 'nodad']);
  });
  after(async () => { await lab?.close(); });

  test('spoofed, unknown and wrong-MAC datagrams over IPv6 are dropped under their reason', async () => {
    const [n1, n2] = [lab.node(1), lab.node(2)];
    const peer6 = { ns: n2.ns, src: n2.underlayIPs[6]! };
    const v6cases: Array<{ name: string; reason: string; peer: boolean; from: { ns: string; src: string }; payload: Buffer }> = [
      { name: 'spoofed inner source', reason: 'spoofed', peer: true, from: peer6,
        payload: vxlan({ dstMac: n1.vtepMAC, srcMac: n2.vtepMAC, inner: icmpEcho('198.19.77.7', n1.podIP) }) },
      { name: 'unknown outer source', reason: 'unknown_peer', peer: false, from: { ns: lab.topo.underlayNs, src: STRANGER_IP6 }, payload: good(n1, n2) },
      { name: 'wrong inner destination MAC', reason: 'bad_mac', peer: false, from: peer6,
        payload: vxlan({ dstMac: '02:00:00:00:00:99', srcMac: n2.vtepMAC, inner: icmpEcho(n2.podIP, n1.podIP) }) },
    ];
    // the receive side's reasons only: the TUN's own IPv6 chatter (MLD reports to ff02::16 at link
    // up) is no cluster address and counts no_route on the transmit side meanwhile
    const received = (d: Record<string, number>) => Object.fromEntries(Object.entries(d).filter(([r]) => !TX_REASONS.has(r)));
    for (const c of v6cases) {
      const before = await readStats(n1, STATUS_PORT);
      for (let i = 0; i < SENT; i++) await sendDatagram(c.from.ns, n1.underlayIPs[6]!, VXLAN_PORT, c.payload, c.from.src);
      const after = await waitForStats(n1, STATUS_PORT, `${c.name}: ${SENT} drops{reason="${c.reason}"}`,
        (st) => drop(st.total, c.reason) >= drop(before.total, c.reason) + SENT);
      assert.deepEqual(received(dropDeltas(before.total, after.total)), { [c.reason]: SENT }, `${c.name}: total drops moved`);
      assert.deepEqual(dropDeltas(before.peers['n2'], after.peers['n2']), c.peer ? { [c.reason]: SENT } : {}, `${c.name}: drops of peer n2 moved`);
    }
  });

  test('the peer\'s IPv4 pod packet from its IPv6 underlay address is delivered', async () => {
    const [n1, n2] = [lab.node(1), lab.node(2)];
    const sink = nsSpawnJson(n1.podNs, process.execPath, [udpSink, String(SINK_PORT)]);
    try {
      const text = `userlay-dual-delivered-${process.pid}`;
      await sink.line('listening line', (r) => r['listening'] !== undefined);
      const before = await readStats(n1, STATUS_PORT);
      const inner = udpPacket(n2.podIP, n1.podIP, 40001, SINK_PORT, Buffer.from(text, 'latin1'));
      await sendDatagram(n2.ns, n1.underlayIPs[6]!, VXLAN_PORT, vxlan({ dstMac: n1.vtepMAC, srcMac: n2.vtepMAC, inner }), n2.underlayIPs[6]);
      const rec = await sink.line(`datagram "${text}"`, (r) => r['text'] === text, 20_000);
      assert.equal(rec['from'], `${n2.podIP}:40001`);
      const after = await readStats(n1, STATUS_PORT);
      assert.ok(after.peers['n2']!.rxPackets >= before.peers['n2']!.rxPackets + 1, 'rx counter of n2 did not move');
      assert.equal(drop(after.total, 'spoofed') + drop(after.total, 'unknown_peer'), drop(before.total, 'spoofed') + drop(before.total, 'unknown_peer'),
        'it was taken for a spoofed or unknown datagram');
    } finally {
      await stopChild(sink.child, 1000);
    }
  });
});
