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
 *
 * Apart from those, the drops at the send-only sockets (the outer source
 * ports), which take nothing in (a socket filter: native/src/udp.c): every
 * datagram that reaches one is a drop, so the count is traffic nobody asked
 * for, such as a flood aimed at a source port. Their ports are ephemeral, so
 * they are found by inode.
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

/** Kernel drops since the sockets were opened, each undefined where it cannot be read. */
export interface UdpDrops {
  /** At the receive sockets on the data plane's port (undefined for port 0: nothing is received). */
  readonly receive?: bigint;
  /** At the send-only sockets, by inode (undefined when there are none). */
  readonly send?: bigint;
}

/**
 * Kernel drops at the receive sockets on `port` and at the send-only
 * sockets `sendInodes` (socketInode), with each file read once. Nothing
 * readable (no /proc) leaves both undefined; a missing udp6 file (IPv6
 * disabled) counts as none.
 */
export function udpDrops(port: number, sendInodes: ReadonlySet<string>, files: readonly string[] = PROC_UDP_FILES): UdpDrops {
  let receive = 0n;
  let send = 0n;
  let read = 0;
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    read++;
    if (port !== 0) receive += parseUdpDrops(text, port);
    if (sendInodes.size > 0) send += parseUdpDropsByInode(text, sendInodes);
  }
  return {
    ...(read > 0 && port !== 0 ? { receive } : {}),
    ...(read > 0 && sendInodes.size > 0 ? { send } : {}),
  };
}
