/**
 * The fuzz driver, run inside the namespace of the node under test (as root):
 *
 *   node dist/test/support/fuzz-tool.js '<FuzzToolConfig as JSON>'
 *
 * It plays a fake peer "fp" whose underlay address is a local address of the
 * node (on lo), so its datagrams reach the agent over loopback (no
 * fragmentation, no veth queue) and whatever the agent sends to it comes back
 * to this process. A second socket on the node's own address is a sender the
 * agent does not know (unknown outer source). A helper TUN ("fz…", routed
 * for the TUN packets' source /24) injects packets that the kernel forwards
 * into the agent's TUN.
 *
 * Rounds, until the totals are reached: send `window` datagrams and write
 * `tunWindow` TUN packets, then read the agent's /debug/stats and
 * /proc/net/udp until every one of them is accounted for:
 *
 *   datagrams sent = Δ(received + rx drops by reason) of everything that is
 *                    not peer `realPeer` (whose own traffic keeps flowing)
 *                  + Δ datagrams the kernel dropped at the agent's socket
 *   TUN packets    = fuzz packets the fake peer received (inner source in the
 *                    TUN source /24) + Δ tx drops by reason, within the fake
 *                    peer socket's own kernel drops
 *
 * More than sent is an error at once; less after `roundTimeoutMs` is an
 * error (a packet lost without being counted, or the agent stuck). The
 * agent's RSS is sampled every 10 rounds after the warm-up (the first tenth).
 * Valid frames must all be delivered (Δ fake peer rx >= valid frames sent).
 *
 * Output: JSON lines; {"progress":…} now and then, and a last line that is
 * either the FuzzResult or {"error": "...", ...}. Exit code 0 or 1.
 */
import dgram from 'node:dgram';
import { readFileSync, writeFileSync, writeSync } from 'node:fs';
import http from 'node:http';
import { loadAddon } from '../../src/dataplane/addon.js';
import { DatagramFuzzer, INNER_IP, Prng, TunFuzzer, type FuzzTarget } from './fuzz-gen.js';

/** What the tool is told. */
export interface FuzzToolConfig {
  readonly seed: number;
  readonly datagrams: number;
  readonly tunPackets: number;
  /** Datagrams per round. */
  readonly window: number;
  /** TUN packets per round. */
  readonly tunWindow: number;
  readonly statusPort: number;
  readonly agentPid: number;
  /** The node's underlay address and port (the agent's socket). */
  readonly nodeIP: string;
  readonly port: number;
  /** The fake peer's underlay address (added to lo by the caller). */
  readonly fakePeerIP: string;
  /** Name of the fake peer in the agent's peers file. */
  readonly fakePeer: string;
  /** The real peer whose traffic is left out of the datagram count. */
  readonly realPeer: string;
  readonly target: FuzzTarget;
  /** Name of the helper TUN. */
  readonly tunName: string;
  readonly roundTimeoutMs: number;
}

/** Drop reasons of the receive side (enum ul_drop 1..8 and 13) and of the transmit side (9..12). */
const RX_DROPS = ['short', 'bad_flags', 'bad_vni', 'bad_mac', 'malformed', 'unknown_peer', 'spoofed', 'tun_write', 'udp_recv'];
const TX_DROPS = ['no_route', 'tx_malformed', 'udp_send', 'tun_read'];

/** What a run found. */
export interface FuzzResult {
  readonly seed: number;
  readonly rounds: number;
  readonly seconds: number;
  readonly datagrams: {
    readonly sent: number;
    /** Sends that failed in this process (not counted as sent). */
    readonly sendErrors: number;
    readonly byKind: Record<string, number>;
    readonly delivered: number;
    readonly drops: Record<string, number>;
    /** Dropped by the kernel at the agent's socket (receive buffer full). */
    readonly kernelDrops: number;
    readonly validSent: number;
    readonly validDelivered: number;
  };
  readonly tun: {
    readonly sent: number;
    readonly toPeer: number;
    readonly toNoRoute: number;
    /** Fuzz packets the fake peer received, encapsulated by the agent. */
    readonly delivered: number;
    readonly drops: Record<string, number>;
    /** Dropped by the kernel at the fake peer's socket (these were delivered by the agent). */
    readonly peerSocketDrops: number;
    /** Other datagrams the fake peer received (replies of the pod to accepted frames). */
    readonly replies: number;
  };
  readonly rss: { readonly warmMB: number; readonly maxMB: number; readonly endMB: number; readonly samples: number };
  /** Drops counted in the real peer's slot during the run (its flow must not lose any). */
  readonly realPeerDrops: Record<string, number>;
}

interface Slot { txPackets: number; rxPackets: number; drops: Record<string, number> }
interface Snap { total: Slot; peers: Record<string, Slot> }

function print(obj: unknown): void {
  writeSync(1, JSON.stringify(obj) + '\n');
}

function getStats(port: number): Promise<Snap> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/debug/stats', timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => {
        try {
          const doc = JSON.parse(body) as { total: Record<string, unknown>; peers: Record<string, Record<string, unknown>> };
          const slot = (s: Record<string, unknown> | undefined): Slot => ({
            txPackets: Number(s?.['txPackets'] ?? 0),
            rxPackets: Number(s?.['rxPackets'] ?? 0),
            drops: Object.fromEntries(Object.entries((s?.['drops'] ?? {}) as Record<string, string>).map(([k, v]) => [k, Number(v)])),
          });
          resolve({ total: slot(doc.total), peers: Object.fromEntries(Object.entries(doc.peers ?? {}).map(([k, v]) => [k, slot(v)])) });
        } catch (err) {
          reject(err);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('/debug/stats: no answer')));
    req.on('error', reject);
  });
}

/** /proc/net/udp's address form of ip:port ("0100A8C0:2118" for 192.168.0.1:8472 on little-endian). */
function procAddr(ip: string, port: number): string {
  const b = ip.split('.').map(Number);
  const le = [b[3]!, b[2]!, b[1]!, b[0]!].map((x) => x.toString(16).padStart(2, '0')).join('').toUpperCase();
  return `${le}:${port.toString(16).padStart(4, '0').toUpperCase()}`;
}

/** Kernel drops of the UDP socket bound to ip:port in this namespace (last column of /proc/net/udp). */
function socketDrops(ip: string, port: number): number {
  const want = procAddr(ip, port);
  for (const line of readFileSync('/proc/net/udp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1] === want) return Number(f[f.length - 1]);
  }
  throw new Error(`no UDP socket ${want} in /proc/net/udp`);
}

function rssMB(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) / 1024;
}

const sum = (o: Record<string, number>, keys: readonly string[]): number => keys.reduce((a, k) => a + (o[k] ?? 0), 0);
const rxSide = (s: Slot | undefined): number => (s ? s.rxPackets + sum(s.drops, RX_DROPS) : 0);

function diff(a: Record<string, number>, b: Record<string, number>, keys: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of keys) if ((b[k] ?? 0) !== (a[k] ?? 0)) out[k] = (b[k] ?? 0) - (a[k] ?? 0);
  return out;
}

async function bindSocket(address: string, port: number): Promise<dgram.Socket> {
  const s = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.bind({ address, port, exclusive: true }, () => { s.off('error', reject); resolve(); });
  });
  return s;
}

function sendOne(s: dgram.Socket, b: Buffer, port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => s.send(b, port, host, (err) => resolve(!err)));
}

async function main(cfg: FuzzToolConfig): Promise<FuzzResult> {
  const addon = loadAddon();
  const rng = new Prng(cfg.seed);
  const gen = new DatagramFuzzer(rng, cfg.target);
  const tunGen = new TunFuzzer(rng, cfg.target);

  // the fake peer (sends from fakePeerIP:port, receives what the agent encapsulates for it)
  const peer = await bindSocket(cfg.fakePeerIP, cfg.port);
  const stranger = await bindSocket(cfg.nodeIP, 0);
  let fuzzDelivered = 0;
  let replies = 0;
  const tunSrc = cfg.target.tunSrc24.split('.').slice(0, 3).map(Number);
  peer.on('message', (msg) => {
    const ip = INNER_IP;
    if (msg.length >= ip + 20 && msg[ip + 12] === tunSrc[0] && msg[ip + 13] === tunSrc[1] && msg[ip + 14] === tunSrc[2]) fuzzDelivered++;
    else replies++;
  });
  stranger.on('message', () => {});

  // the helper TUN: packets written to it enter the node's routing as if received
  const tun = addon.tunOpen(cfg.tunName, false);
  try {
    addon.linkSet(tun.name, 1500, true);
    addon.routeAdd(tun.name, `${cfg.target.tunSrc24}0`, 24);
    for (const conf of [tun.name, 'all']) {
      try {
        writeFileSync(`/proc/sys/net/ipv4/conf/${conf}/rp_filter`, '0');
      } catch {
        // best effort: the lab's node namespaces have rp_filter=0 already
      }
    }
    return await rounds(cfg, { gen, tunGen, peer, stranger, tunFd: tun.fd, delivered: () => fuzzDelivered, replies: () => replies });
  } finally {
    addon.close(tun.fd);
    peer.close();
    stranger.close();
  }
}

interface RoundIO {
  gen: DatagramFuzzer;
  tunGen: TunFuzzer;
  peer: dgram.Socket;
  stranger: dgram.Socket;
  tunFd: number;
  delivered(): number;
  replies(): number;
}

async function rounds(cfg: FuzzToolConfig, io: RoundIO): Promise<FuzzResult> {
  const t0 = performance.now();
  const base = await getStats(cfg.statusPort);
  const baseSockDrops = socketDrops(cfg.nodeIP, cfg.port);
  const basePeerSockDrops = socketDrops(cfg.fakePeerIP, cfg.port);
  const others = (s: Snap): number => rxSide(s.total) - rxSide(s.peers[cfg.realPeer]);
  const byKind: Record<string, number> = {};
  let sent = 0;
  let sendErrors = 0;
  let validSent = 0;
  let tunSent = 0;
  let toPeer = 0;
  let toNoRoute = 0;
  const totalRounds = Math.max(Math.ceil(cfg.datagrams / cfg.window), Math.ceil(cfg.tunPackets / cfg.tunWindow));
  const warmRound = Math.max(1, Math.floor(totalRounds / 10));
  let warmMB = 0;
  let maxMB = 0;
  let samples = 0;
  let last = base;
  for (let round = 1; round <= totalRounds; round++) {
    const sends: Array<Promise<boolean>> = [];
    for (let i = 0; i < cfg.window && sent + sends.length < cfg.datagrams; i++) {
      const d = io.gen.next();
      byKind[d.kind] = (byKind[d.kind] ?? 0) + 1;
      if (d.kind === 'valid' && !d.stranger) validSent++;
      sends.push(sendOne(d.stranger ? io.stranger : io.peer, d.payload, cfg.port, cfg.nodeIP));
    }
    for (const ok of await Promise.all(sends)) {
      if (ok) sent++;
      else sendErrors++;
    }
    for (let i = 0; i < cfg.tunWindow && tunSent < cfg.tunPackets; i++) {
      const p = io.tunGen.next();
      writeSync(io.tunFd, p.packet);
      tunSent++;
      if (p.dst === 'peer') toPeer++;
      else toNoRoute++;
    }
    // wait until every datagram and TUN packet of this round is accounted for
    const deadline = performance.now() + cfg.roundTimeoutMs;
    // The native engine counts a packet in the totals first and in its peer's slot next, so a
    // snapshot taken in between puts one of the real peer's packets among `others` for that
    // instant. So two snapshots in a row decide: more counted than sent fails, all counted ends
    // the round (and gives `last`, from which the totals below are taken).
    let overBefore = false;
    let doneBefore = false;
    for (;;) {
      const s = await getStats(cfg.statusPort);
      last = s;
      const rxCounted = others(s) - others(base) + (socketDrops(cfg.nodeIP, cfg.port) - baseSockDrops);
      const txDrops = sum(s.total.drops, TX_DROPS) - sum(base.total.drops, TX_DROPS);
      const peerSockDrops = socketDrops(cfg.fakePeerIP, cfg.port) - basePeerSockDrops;
      const tunLow = io.delivered() + txDrops;
      if (rxCounted > sent && overBefore) throw Object.assign(new Error(`round ${round}: ${rxCounted} datagrams counted, only ${sent} sent`), { round });
      overBefore = rxCounted > sent;
      if (tunLow > tunSent) throw Object.assign(new Error(`round ${round}: ${tunLow} TUN packets counted, only ${tunSent} written`), { round });
      const tunDone = peerSockDrops === 0 ? tunLow === tunSent : tunLow + peerSockDrops >= tunSent;
      const done = rxCounted === sent && tunDone;
      if (done && doneBefore) break;
      doneBefore = done;
      if (performance.now() > deadline) {
        throw Object.assign(new Error(`round ${round}: after ${cfg.roundTimeoutMs} ms, ${rxCounted} of ${sent} datagrams and ${tunLow} of ${tunSent} TUN packets accounted for`),
          { round, stats: s, peerSockDrops });
      }
      await new Promise((r) => setTimeout(r, 2));
    }
    if (round === warmRound) warmMB = rssMB(cfg.agentPid);
    if (round >= warmRound && (round % 10 === 0 || round === totalRounds)) {
      maxMB = Math.max(maxMB, rssMB(cfg.agentPid));
      samples++;
    }
    if (round % 50 === 0) print({ progress: { round, of: totalRounds, sent, tunSent } });
  }
  const endMB = rssMB(cfg.agentPid);
  const fp = (s: Snap): Slot | undefined => s.peers[cfg.fakePeer];
  return {
    seed: cfg.seed,
    rounds: totalRounds,
    seconds: (performance.now() - t0) / 1000,
    datagrams: {
      sent, sendErrors, byKind,
      delivered: (last.total.rxPackets - base.total.rxPackets) - ((last.peers[cfg.realPeer]?.rxPackets ?? 0) - (base.peers[cfg.realPeer]?.rxPackets ?? 0)),
      drops: diff(base.total.drops, last.total.drops, RX_DROPS),
      kernelDrops: socketDrops(cfg.nodeIP, cfg.port) - baseSockDrops,
      validSent,
      validDelivered: (fp(last)?.rxPackets ?? 0) - (fp(base)?.rxPackets ?? 0),
    },
    tun: {
      sent: tunSent, toPeer, toNoRoute,
      delivered: io.delivered(),
      drops: diff(base.total.drops, last.total.drops, TX_DROPS),
      peerSocketDrops: socketDrops(cfg.fakePeerIP, cfg.port) - basePeerSockDrops,
      replies: io.replies(),
    },
    rss: { warmMB, maxMB: Math.max(maxMB, endMB), endMB, samples },
    realPeerDrops: diff(base.peers[cfg.realPeer]?.drops ?? {}, last.peers[cfg.realPeer]?.drops ?? {}, [...RX_DROPS, ...TX_DROPS]),
  };
}

const cfg = JSON.parse(process.argv[2] ?? '{}') as FuzzToolConfig;
main(cfg).then((r) => {
  print(r);
  process.exit(0);
}, (err: unknown) => {
  const e = err as Error & Record<string, unknown>;
  print({ error: e.message, seed: cfg.seed, ...Object.fromEntries(Object.entries(e).filter(([k]) => k !== 'message')) });
  process.exit(1);
});
