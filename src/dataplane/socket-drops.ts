/**
 * Datagrams the kernel dropped at the data plane's receive sockets, before
 * an engine saw them: the per-socket `drops` count (sk_drops) of
 * /proc/self/net/udp and udp6. Almost all of it is a full receive queue (the
 * netstat counter UdpRcvbufErrors); a bad UDP checksum counts there too.
 *
 * Neither engine can count these itself: the datagram never reaches recvmmsg
 * or the 'message' event. They are what a user sees as TCP retransmits with
 * no userlay drop to explain them. The kernel counts one per queued buffer,
 * so a UDP GRO buffer of 44 datagrams that did not fit is one drop.
 *
 * The sockets are found by their local port in the agent's own network
 * namespace (the one /proc/self/net shows): every receive socket of the
 * agent binds the data plane's port (one per family, more with --threads),
 * and nothing else can bind it while they hold it without SO_REUSEPORT from
 * the same user.
 */
import { readFileSync } from 'node:fs';

/** The files read, in the reading process's network namespace. */
export const PROC_UDP_FILES = ['/proc/self/net/udp', '/proc/self/net/udp6'] as const;

/**
 * Sum of the drops column of the sockets bound to local port `port` in the
 * text of /proc/net/udp or udp6 (header line first; columns: sl,
 * local_address "ADDR:PORT" in hex, rem_address, st, tx_queue:rx_queue,
 * tr:tm->when, retrnsmt, uid, timeout, inode, ref, pointer, drops). Lines
 * that do not parse are skipped.
 */
export function parseUdpDrops(text: string, port: number): bigint {
  let sum = 0n;
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 13) continue;
    const colon = f[1]!.lastIndexOf(':');
    if (colon < 0 || Number.parseInt(f[1]!.slice(colon + 1), 16) !== port) continue;
    if (!/^\d+$/.test(f[12]!)) continue;
    sum += BigInt(f[12]!);
  }
  return sum;
}

/**
 * Kernel drops at the receive sockets on `port` since they were opened, or
 * undefined when nothing can be read (no /proc, or port 0: a backend that
 * receives nothing). A missing udp6 file (IPv6 disabled) counts as none.
 */
export function udpSocketDrops(port: number, files: readonly string[] = PROC_UDP_FILES): bigint | undefined {
  if (port === 0) return undefined;
  let sum = 0n;
  let read = 0;
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    read++;
    sum += parseUdpDrops(text, port);
  }
  return read > 0 ? sum : undefined;
}
