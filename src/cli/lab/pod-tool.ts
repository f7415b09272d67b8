/**
 * A tiny traffic tool the lab runs inside pod (or node) namespaces:
 *
 *   tcp-recv PORT [HOST]          accept one connection, sha256 what arrives (listens on HOST,
 *                                 default 0.0.0.0; "::" for IPv6)
 *   tcp-send HOST PORT BYTES SEED send BYTES deterministic pseudo-random bytes
 *   udp-echo PORT [6]             echo every datagram back to its sender (IPv4, or IPv6 with 6)
 *   udp-sweep HOST PORT FROM TO   send sizes FROM..TO, expect each echoed intact
 *                                 (gives up after 10 lost sizes in a row)
 *   udp-burst HOST PORT FROM TO [gso]  like udp-sweep, but in bursts: COPIES datagrams of
 *                                 each size, BURST_SIZES sizes at once, sent without
 *                                 waiting; what is not echoed is resent (3 rounds);
 *                                 with gso the copies of a size leave as one send that
 *                                 the kernel cuts (UDP_SEGMENT, through the addon)
 *   udp-send HOST PORT HEX [SRC [SPORT]]  send one datagram (optionally from
 *                                 address SRC, port SPORT)
 *   tcp-serve PORT NAME           answer every connection with NAME and the peer's address
 *   tcp-ask HOST PORT COUNT       COUNT connections one after another; count the NAMEs answered
 *   udp-whoami PORT               IPv4 and IPv6: print {"from":ADDR} for every datagram and answer
 *                                 it with {"peer":ADDR} (the source address this end sees)
 *   udp-ask HOST PORT             send to a udp-whoami until it answers (5 tries); print its answer
 *
 * Results are one JSON line on stdout; servers first print {"listening":PORT}.
 * Run as `node dist/src/cli/lab/pod-tool.js <command> ...`.
 */
import { createHash } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';

const CHUNK = 64 * 1024;

/** Fill `out` with the xorshift32 stream continuing from `state`; returns the new state. */
function fill(out: Uint32Array, state: number): number {
  let x = state >>> 0 || 1;
  for (let i = 0; i < out.length; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    out[i] = x;
  }
  return x;
}

/** Byte k of the UDP probe of `size` bytes. */
function probeByte(size: number, k: number): number {
  return (size * 31 + k * 7) & 0xff;
}

function probe(size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let k = 0; k < size; k++) b[k] = probeByte(size, k);
  return b;
}

function print(obj: unknown): void {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function tcpRecv(port: number, host = '0.0.0.0'): void {
  const server = net.createServer((sock) => {
    const hash = createHash('sha256');
    let bytes = 0;
    sock.on('data', (d: Buffer) => { hash.update(d); bytes += d.length; });
    sock.on('end', () => {
      print({ bytes, sha256: hash.digest('hex') });
      sock.end();
      server.close();
    });
    sock.on('error', (err) => { print({ error: err.message }); process.exit(1); });
  });
  server.listen(port, host, () => print({ listening: port }));
}

function tcpSend(host: string, port: number, total: number, seed: number): void {
  const hash = createHash('sha256');
  const words = new Uint32Array(CHUNK / 4);
  let state = seed;
  let sent = 0;
  const sock = net.connect(port, host);
  const pump = (): void => {
    while (sent < total) {
      state = fill(words, state);
      const n = Math.min(CHUNK, total - sent);
      const chunk = Buffer.from(words.buffer, 0, n);
      const copy = Buffer.from(chunk); // the socket may hold it while we refill
      hash.update(copy);
      sent += n;
      if (!sock.write(copy)) { sock.once('drain', pump); return; }
    }
    sock.end();
  };
  sock.on('connect', pump);
  sock.on('close', (hadError) => { if (!hadError) print({ bytes: sent, sha256: hash.digest('hex') }); });
  sock.on('error', (err) => { print({ error: err.message }); process.exit(1); });
}

function udpEcho(port: number, v6: boolean): void {
  const sock = dgram.createSocket(v6 ? 'udp6' : 'udp4');
  sock.on('message', (msg, rinfo) => sock.send(msg, rinfo.port, rinfo.address));
  sock.bind(port, v6 ? '::' : '0.0.0.0', () => print({ listening: port }));
}

async function udpSweep(host: string, port: number, from: number, to: number): Promise<void> {
  const sock = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
  await new Promise<void>((resolve) => sock.bind(0, resolve));
  const failed: number[] = [];
  const errors: Record<string, string> = {};
  let ok = 0;
  let streak = 0;
  let waiter: ((msg: Buffer) => void) | undefined;
  sock.on('message', (msg) => waiter?.(msg));
  for (let size = from; size <= to; size++) {
    const want = probe(size);
    let good = false;
    for (let attempt = 0; attempt < 3 && !good; attempt++) {
      const reply = new Promise<Buffer | undefined>((resolve) => {
        const timer = setTimeout(() => resolve(undefined), 300);
        waiter = (msg) => { if (msg.length === size) { clearTimeout(timer); resolve(msg); } };
      });
      try {
        await new Promise<void>((resolve, reject) => sock.send(want, port, host, (err) => (err ? reject(err) : resolve())));
      } catch (err) {
        errors[String(size)] = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
        break;
      }
      const got = await reply;
      good = got !== undefined && got.equals(want);
    }
    if (good) {
      ok++;
      streak = 0;
    } else {
      failed.push(size);
      // The path is down, not size-dependent: give up instead of timing out on every size.
      if (++streak >= 10 && size < to) {
        errors['aborted'] = `${streak} sizes in a row lost; sizes ${size + 1}..${to} not tried`;
        break;
      }
    }
  }
  sock.close();
  print({ ok, failed, errors });
}

/** udp-burst: sizes per burst, equal datagrams per size (so GSO/GRO runs form). */
const BURST_SIZES = 32;
const COPIES = 4;

/** Datagram `copy` of `size`: the probe pattern with the copy number in byte 0 (size >= 2). */
function burstProbe(size: number, copy: number): Buffer {
  const b = probe(size);
  if (size >= 2) b[0] = copy;
  return b;
}

/** A socket whose fd the addon opened, so UDP_SEGMENT can be set on it (dgram does not tell its fd). */
async function gsoSocket(host: string): Promise<{ sock: dgram.Socket; setSegment: (size: number) => void }> {
  const { loadAddon } = await import('../../dataplane/addon.js');
  const addon = loadAddon();
  const v6 = net.isIPv6(host);
  const fd = addon.udpOpen(v6 ? '::' : '0.0.0.0', 0);
  const sock = dgram.createSocket(v6 ? 'udp6' : 'udp4');
  await new Promise<void>((resolve) => sock.bind({ fd }, resolve));
  return { sock, setSegment: (size) => addon.udpSetSegment(fd, size) };
}

async function udpBurst(host: string, port: number, from: number, to: number, gso: boolean): Promise<void> {
  const g = gso ? await gsoSocket(host) : undefined;
  const sock = g?.sock ?? dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
  if (!g) await new Promise<void>((resolve) => sock.bind(0, resolve));
  const errors: Record<string, string> = {};
  const failed: number[] = [];
  let ok = 0;
  let missing = new Set<string>();
  let onChange: (() => void) | undefined;
  sock.on('message', (msg) => {
    const size = msg.length;
    const copy = size >= 2 ? msg[0]! : 0;
    if (msg.equals(burstProbe(size, copy)) && missing.delete(`${size}/${copy}`) && missing.size === 0) onChange?.();
  });
  for (let lo = from; lo <= to; lo += BURST_SIZES) {
    const hi = Math.min(to, lo + BURST_SIZES - 1);
    const copies = (size: number): number => (size >= 2 ? COPIES : 1);
    missing = new Set();
    for (let size = lo; size <= hi; size++) for (let c = 0; c < copies(size); c++) missing.add(`${size}/${c}`);
    for (let round = 0; round < 3 && missing.size > 0; round++) {
      const done = new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 2000);
        onChange = () => { clearTimeout(timer); resolve(); };
      });
      const bySize = new Map<number, number[]>();
      for (const key of missing) {
        const [size, copy] = key.split('/').map(Number) as [number, number];
        bySize.set(size, [...(bySize.get(size) ?? []), copy]);
      }
      for (const [size, list] of bySize) {
        const sent = (err: Error | null): void => {
          if (err) errors[String(size)] = (err as NodeJS.ErrnoException).code ?? err.message;
        };
        if (!g) {
          for (const copy of list) sock.send(burstProbe(size, copy), port, host, sent);
          continue;
        }
        // one send of the size's copies back to back; the segment size must hold until it is out
        g.setSegment(size);
        await new Promise<void>((resolve) => sock.send(Buffer.concat(list.map((c) => burstProbe(size, c))), port, host, (err) => { sent(err); resolve(); }));
      }
      await done;
    }
    const lost = new Set([...missing].map((k) => Number(k.split('/')[0])));
    for (let size = lo; size <= hi; size++) if (lost.has(size)) failed.push(size); else ok++;
  }
  sock.close();
  print({ ok, failed, errors });
}

function udpSend(host: string, port: number, hex: string, src: string | undefined, sport: number): void {
  const sock = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
  sock.bind(sport, src, () => {
    sock.send(Buffer.from(hex, 'hex'), port, host, (err) => {
      print(err ? { error: err.message } : { sent: hex.length / 2 });
      sock.close();
    });
  });
}

function tcpServe(port: number, name: string): void {
  const server = net.createServer((sock) => {
    sock.on('error', () => {});
    sock.end(`${JSON.stringify({ name, peer: sock.remoteAddress })}\n`);
  });
  server.listen(port, '0.0.0.0', () => print({ listening: port }));
}

function askOnce(host: string, port: number): Promise<{ name?: string; peer?: string; error?: string }> {
  return new Promise((resolve) => {
    let data = '';
    const sock = net.connect({ host, port, timeout: 3000 });
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => { data += d; });
    sock.on('timeout', () => { sock.destroy(); resolve({ error: 'timeout' }); });
    sock.on('error', (err) => resolve({ error: err.message }));
    sock.on('end', () => {
      try { resolve(JSON.parse(data) as { name: string; peer: string }); } catch { resolve({ error: `bad answer ${JSON.stringify(data)}` }); }
    });
  });
}

async function tcpAsk(host: string, port: number, count: number): Promise<void> {
  const answers: Record<string, number> = {};
  const peers: Record<string, string> = {};
  const errors: string[] = [];
  for (let i = 0; i < count; i++) {
    const r = await askOnce(host, port);
    if (r.name !== undefined) {
      answers[r.name] = (answers[r.name] ?? 0) + 1;
      peers[r.name] = r.peer ?? '';
    } else {
      errors.push(r.error ?? 'unknown');
    }
  }
  print({ answers, peers, errors });
}

/** An address as the peer wrote it: IPv4-mapped IPv6 (a dual-stack socket's view) unmapped. */
function unmapped(address: string): string {
  return address.startsWith('::ffff:') && net.isIPv4(address.slice(7)) ? address.slice(7) : address;
}

function udpWhoami(port: number): void {
  const sock = dgram.createSocket({ type: 'udp6', ipv6Only: false });
  sock.on('message', (_msg, rinfo) => {
    const from = unmapped(rinfo.address);
    print({ from });
    sock.send(JSON.stringify({ peer: from }), rinfo.port, rinfo.address);
  });
  sock.bind(port, '::', () => print({ listening: port }));
}

async function udpAsk(host: string, port: number): Promise<void> {
  const sock = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
  const answer = new Promise<string>((resolve) => sock.on('message', (msg) => resolve(msg.toString())));
  let reply: string | undefined;
  for (let attempt = 0; attempt < 5 && reply === undefined; attempt++) {
    sock.send('whoami', port, host);
    let timer: NodeJS.Timeout | undefined;
    reply = await Promise.race([answer, new Promise<undefined>((resolve) => { timer = setTimeout(() => resolve(undefined), 1000); })]);
    clearTimeout(timer);
  }
  sock.close();
  print(reply === undefined ? { error: 'no answer' } : JSON.parse(reply));
}

function main(argv: string[]): void {
  const [cmd, ...a] = argv;
  const num = (i: number): number => Number(a[i]);
  switch (cmd) {
    case 'tcp-recv': return tcpRecv(num(0), a[1]);
    case 'tcp-send': return tcpSend(a[0]!, num(1), num(2), num(3));
    case 'udp-echo': return udpEcho(num(0), a[1] === '6');
    case 'udp-sweep': void udpSweep(a[0]!, num(1), num(2), num(3)); return;
    case 'udp-burst': void udpBurst(a[0]!, num(1), num(2), num(3), a[4] === 'gso'); return;
    case 'udp-send': return udpSend(a[0]!, num(1), a[2]!, a[3], a[4] === undefined ? 0 : num(4));
    case 'tcp-serve': return tcpServe(num(0), a[1]!);
    case 'tcp-ask': void tcpAsk(a[0]!, num(1), num(2)); return;
    case 'udp-whoami': return udpWhoami(num(0));
    case 'udp-ask': void udpAsk(a[0]!, num(1)); return;
    default:
      process.stderr.write(`pod-tool: unknown command ${String(cmd)}\n`);
      process.exit(2);
  }
}

main(process.argv.slice(2));
