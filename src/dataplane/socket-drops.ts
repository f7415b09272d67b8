/**
 * Datagrams the kernel dropped at the data plane's receive sockets, before
 * an engine saw them: the per-socket `drops` count (sk_drops) of
 * /proc/self/net/udp and udp6. And, apart, those dropped at its send-only
 * sockets (the outer source ports), which take nothing in (a socket filter:
 * native/src/udp.c): every datagram that reaches one is a drop, so the
 * count is traffic nobody asked for, such as a flood aimed at a source
 * port. Those sockets are found by inode, their ports being ephemeral. Almost all of it is a full receive queue (the
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
import { readFileSync, readlinkSync } from 'node:fs';

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
  return sumDrops(text, (f) => {
    const colon = f[1]!.lastIndexOf(':');
    return colon >= 0 && Number.parseInt(f[1]!.slice(colon + 1), 16) === port;
  });
}

/** As parseUdpDrops, for the sockets whose inode (column 10) is in `inodes`. */
export function parseUdpDropsByInode(text: string, inodes: ReadonlySet<string>): bigint {
  return sumDrops(text, (f) => inodes.has(f[9]!));
}

/** Sum of the drops column over the lines (split into fields) that `match`. */
function sumDrops(text: string, match: (fields: readonly string[]) => boolean): bigint {
  let sum = 0n;
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 13 || !match(f) || !/^\d+$/.test(f[12]!)) continue;
    sum += BigInt(f[12]!);
  }
  return sum;
}

/** The inode of the socket behind this process's fd (/proc/self/fd), or undefined. */
export function socketInode(fd: number): string | undefined {
  try {
    return /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`))?.[1];
  } catch {
    return undefined;
  }
}

/**
 * Kernel drops at the receive sockets on `port` since they were opened, or
 * undefined when nothing can be read (no /proc, or port 0: a backend that
 * receives nothing). A missing udp6 file (IPv6 disabled) counts as none.
 */
export function udpSocketDrops(port: number, files: readonly string[] = PROC_UDP_FILES): bigint | undefined {
  if (port === 0) return undefined;
  return sumFiles(files, (text) => parseUdpDrops(text, port));
}

/**
 * Kernel drops at the sockets with these inodes (the send-only sockets,
 * socketInode) since they were opened, or undefined when there are none or
 * nothing can be read.
 */
export function udpSocketDropsByInode(inodes: ReadonlySet<string>, files: readonly string[] = PROC_UDP_FILES): bigint | undefined {
  if (inodes.size === 0) return undefined;
  return sumFiles(files, (text) => parseUdpDropsByInode(text, inodes));
}

function sumFiles(files: readonly string[], parse: (text: string) => bigint): bigint | undefined {
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
    sum += parse(text);
  }
  return read > 0 ? sum : undefined;
}
