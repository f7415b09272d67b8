/**
 * One TCP connection driven step by step (for tests that change things while
 * a connection stays open), run inside pod namespaces:
 *
 *   node dist/test/support/tcp-steps.js recv PORT
 *     accepts one connection; prints {"listening":PORT}, then {"bytes":N}
 *     each time another MiB has arrived, and at the end
 *     {"bytes":N,"sha256":HEX,"end":true}.
 *   node dist/test/support/tcp-steps.js send HOST PORT SEED
 *     connects and prints {"connected":true}; then reads commands on stdin:
 *     "send N" writes N more bytes of a deterministic stream (xorshift32 from
 *     SEED) and prints {"sent":TOTAL} once the socket took them all; "end"
 *     half-closes and prints {"bytes":TOTAL,"sha256":HEX,"end":true} when
 *     the connection closed cleanly. A socket error prints {"error":MSG} and
 *     exits 1 (a reset connection is what the tests look for).
 */
import { createHash } from 'node:crypto';
import net from 'node:net';
import { createInterface } from 'node:readline';

const MiB = 1024 * 1024;

function print(obj: unknown): void {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function recv(port: number): void {
  const server = net.createServer((sock) => {
    server.close();
    const hash = createHash('sha256');
    let bytes = 0;
    sock.on('data', (d: Buffer) => {
      hash.update(d);
      const before = Math.floor(bytes / MiB);
      bytes += d.length;
      if (Math.floor(bytes / MiB) !== before) print({ bytes });
    });
    sock.on('end', () => {
      print({ bytes, sha256: hash.digest('hex'), end: true });
      sock.end();
    });
    sock.on('error', (err) => { print({ error: err.message }); process.exit(1); });
  });
  server.listen(port, '0.0.0.0', () => print({ listening: port }));
}

function send(host: string, port: number, seed: number): void {
  const hash = createHash('sha256');
  let x = seed >>> 0 || 1;
  let total = 0;
  const sock = net.connect(port, host, () => print({ connected: true }));
  sock.on('error', (err) => { print({ error: err.message }); process.exit(1); });
  sock.on('close', (hadError) => { if (!hadError) print({ bytes: total, sha256: hash.digest('hex'), end: true }); });
  const chunk = (n: number): Buffer => {
    const words = new Uint32Array(Math.ceil(n / 4));
    for (let i = 0; i < words.length; i++) {
      x ^= x << 13; x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5; x >>>= 0;
      words[i] = x;
    }
    return Buffer.from(words.buffer, 0, n);
  };
  const queue: string[] = [];
  let busy = false;
  const next = (): void => {
    if (busy) return;
    const cmd = queue.shift();
    if (cmd === undefined) return;
    const [verb, arg] = cmd.trim().split(/\s+/);
    if (verb === 'end') {
      sock.end();
      return;
    }
    if (verb !== 'send') {
      print({ error: `unknown command ${cmd}` });
      process.exit(2);
    }
    busy = true;
    let left = Number(arg);
    const pump = (): void => {
      while (left > 0) {
        const b = chunk(Math.min(64 * 1024, left));
        left -= b.length;
        total += b.length;
        hash.update(b);
        if (!sock.write(b)) {
          sock.once('drain', pump);
          return;
        }
      }
      print({ sent: total });
      busy = false;
      next();
    };
    pump();
  };
  createInterface({ input: process.stdin }).on('line', (l) => {
    queue.push(l);
    next();
  });
}

const [mode, ...a] = process.argv.slice(2);
if (mode === 'recv') recv(Number(a[0]));
else if (mode === 'send') send(a[0]!, Number(a[1]), Number(a[2]));
else {
  process.stderr.write(`tcp-steps: unknown mode ${String(mode)}\n`);
  process.exit(2);
}
