import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import dgram from 'node:dgram';
import { parseUdpDrops, parseUdpDropsByInode, socketInode, udpDrops } from '../../src/dataplane/socket-drops.js';

// Lines as the kernel prints them (net/ipv4/udp.c udp4_format_sock, net/ipv6/datagram.c;
// copied off this machine with the addresses and counts changed):
// port 8472 = 0x2118, 4789 = 0x12B5.
const UDP4 = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  101: 020012C6:2118 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 31012 2 0000000000000000 17
  102: 020012C6:2118 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 31013 2 0000000000000000 3
  103: 020012C6:12B5 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 31014 2 0000000000000000 1000
  104: 020012C6:D431 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 31015 2 0000000000000000 9
`;
const UDP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  201: 00000220000000000000000002000000:2118 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 41012 2 0000000000000000 5
`;

test('parseUdpDrops sums the drops of the sockets on one local port, v4 and v6 lines alike', () => {
  assert.equal(parseUdpDrops(UDP4, 8472), 20n, 'two sockets of a SO_REUSEPORT group on 8472');
  assert.equal(parseUdpDrops(UDP4, 4789), 1000n);
  assert.equal(parseUdpDrops(UDP4, 9999), 0n);
  assert.equal(parseUdpDrops(UDP6, 8472), 5n);
  // the header, blank and cut lines, a drops field that is not a number: skipped, never thrown
  assert.equal(parseUdpDrops(`${UDP4}\n  105: 020012C6:2118 00000000:0000 07\n  106: x:2118 0 0 0 0 0 0 0 0 0 0 -1\n`, 8472), 20n);
  assert.equal(parseUdpDrops('', 8472), 0n);
});

test('parseUdpDropsByInode sums the drops of the sockets with the given inodes, whatever their port', () => {
  assert.equal(parseUdpDropsByInode(UDP4, new Set(['31015'])), 9n);
  assert.equal(parseUdpDropsByInode(UDP4, new Set(['31012', '31014'])), 1017n);
  assert.equal(parseUdpDropsByInode(UDP4 + UDP6.split('\n').slice(1).join('\n'), new Set(['41012', '31013'])), 8n);
  assert.equal(parseUdpDropsByInode(UDP4, new Set(['99999'])), 0n);
  assert.equal(parseUdpDropsByInode(UDP4, new Set()), 0n);
});

/** Run `fn` with the fixture texts written to files udp and udp6 in a temporary directory. */
function withFiles(fn: (v4: string, v6: string, absent: string) => void): void {
  const dir = mkdtempSync(path.join(tmpdir(), 'userlay-drops-'));
  try {
    const v4 = path.join(dir, 'udp');
    const v6 = path.join(dir, 'udp6');
    writeFileSync(v4, UDP4);
    writeFileSync(v6, UDP6);
    fn(v4, v6, path.join(dir, 'absent'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('udpDrops adds the files it can read, by port and by inode, each undefined where it cannot say', () => {
  withFiles((v4, v6, absent) => {
    const none = new Set<string>();
    assert.deepEqual(udpDrops(8472, new Set(['31015', '41012']), [v4, v6]), { receive: 25n, send: 14n });
    assert.deepEqual(udpDrops(8472, none, [v4, absent]), { receive: 20n }, 'no udp6 file (IPv6 off) counts as none; no send-only socket');
    assert.deepEqual(udpDrops(8472, new Set(['31015']), [absent]), {}, 'nothing readable');
    assert.deepEqual(udpDrops(0, new Set(['31015']), [v4, v6]), { send: 9n }, 'port 0: nothing is received');
  });
});

test('socketInode names the socket behind an fd of this process, and nothing for a non-socket', async () => {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((res) => s.bind(0, '127.0.0.1', res));
  try {
    // the fd of a dgram socket is not public; find it as the one whose inode /proc lists on its port
    const port = s.address().port;
    const line = readFileSync('/proc/self/net/udp', 'utf8').split('\n')
      .find((l) => l.trim().split(/\s+/)[1]?.endsWith(`:${port.toString(16).toUpperCase().padStart(4, '0')}`));
    assert.ok(line, 'the socket is in /proc/self/net/udp');
    const inode = line.trim().split(/\s+/)[9]!;
    const fds = readdirSync('/proc/self/fd').map(Number);
    assert.ok(fds.some((fd) => socketInode(fd) === inode), 'one fd of this process is that socket');
    assert.equal(udpDrops(0, new Set([inode])).send, 0n, 'it dropped nothing');
  } finally {
    await new Promise<void>((res) => s.close(res));
  }
  assert.equal(socketInode(0x7ffffff), undefined, 'no such fd');
});

test("udpDrops reads this process's own sockets from /proc", async () => {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((res) => s.bind(0, '127.0.0.1', res));
  try {
    assert.equal(udpDrops(s.address().port, new Set()).receive, 0n, 'a bound socket that dropped nothing');
  } finally {
    await new Promise<void>((res) => s.close(res));
  }
});
