import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import dgram from 'node:dgram';
import { parseUdpDrops, udpSocketDrops } from '../../src/dataplane/socket-drops.js';

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

test('udpSocketDrops adds the files it can read, and is undefined for port 0 or no file', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'userlay-drops-'));
  try {
    const v4 = path.join(dir, 'udp');
    const v6 = path.join(dir, 'udp6');
    writeFileSync(v4, UDP4);
    writeFileSync(v6, UDP6);
    assert.equal(udpSocketDrops(8472, [v4, v6]), 25n);
    assert.equal(udpSocketDrops(8472, [v4, path.join(dir, 'absent')]), 20n, 'no udp6 file (IPv6 off) counts as none');
    assert.equal(udpSocketDrops(8472, [path.join(dir, 'absent')]), undefined);
    assert.equal(udpSocketDrops(0, [v4, v6]), undefined, 'port 0: nothing is received');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("udpSocketDrops reads this process's own sockets from /proc", async () => {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((res) => s.bind(0, '127.0.0.1', res));
  try {
    assert.equal(udpSocketDrops(s.address().port), 0n, 'a bound socket that dropped nothing');
  } finally {
    await new Promise<void>((res) => s.close(res));
  }
});
