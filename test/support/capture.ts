/**
 * Packet capture for tests: tshark on an interface inside a namespace,
 * started and confirmed capturing before the traffic runs.
 */
import { createInterface } from 'node:readline';
import { nsSpawn, stopChild, waitExit } from '../../src/cli/lab/exec.js';
import { VXLAN_PORT } from '../../src/cli/lab/overlay.js';
import { parseIP } from '../../src/dataplane/net.js';

/**
 * Capture `count` VXLAN datagrams sent by `srcIP` on `iface` in `ns` while
 * `traffic` runs (at most 15 s), decoded as VXLAN, and return one line per
 * datagram with the tshark `fields` separated by tabs (fields that occur in
 * outer and inner headers list both, comma-separated). `options` are tshark
 * preferences ("tcp.check_checksum:TRUE").
 */
export async function captureVxlan(ns: string, iface: string, srcIP: string, fields: readonly string[], count: number,
  traffic: () => Promise<unknown>, options: readonly string[] = []): Promise<string[]> {
  const tshark = nsSpawn(ns, 'tshark', [
    '-i', iface, '-c', String(count), '-a', 'duration:15', '-l',
    '-f', `udp dst port ${VXLAN_PORT} and src host ${srcIP}`,
    '-d', `udp.port==${VXLAN_PORT},vxlan`, ...options.flatMap((o) => ['-o', o]),
    '-T', 'fields', ...fields.flatMap((f) => ['-e', f]),
  ]);
  let out = '';
  tshark.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('tshark did not start capturing')), 15_000);
      createInterface({ input: tshark.stderr! }).on('line', (l) => {
        if (/Capturing on/.test(l)) { clearTimeout(timer); resolve(); }
      });
    });
    await traffic();
    await waitExit(tshark);
    return out.trim().split('\n').filter((l) => l.length > 0);
  } finally {
    await stopChild(tshark, 1000);
  }
}

/** One inner TCP segment of a capture: its checksum field and what it should hold. */
export interface InnerTcpChecksum {
  /** Payload bytes. */
  readonly len: number;
  /** The checksum field. */
  readonly field: number;
  /** The pseudo-header sum of the segment (folded, not complemented): what a partial field holds. */
  readonly pseudo: number;
  /** tshark verified the full checksum (tcp.checksum.status 1). */
  readonly good: boolean;
}

/** Sum of the 16-bit words of an IPv4 or IPv6 address, folded. */
function addressSum(ip: string): number {
  const b = parseIP(ip).bytes;
  let sum = 0;
  for (let i = 0; i < b.length; i += 2) sum += (b[i]! << 8) | b[i + 1]!;
  return fold(sum);
}

function fold(s: number): number {
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

/**
 * The inner TCP segments `srcIP` sends while `traffic` runs (`count` datagrams of the capture),
 * with their checksum fields checked two ways: the pseudo-header sum computed here from the
 * inner addresses and lengths, and tshark's own verification of the full checksum.
 */
export async function captureInnerTcpChecksums(ns: string, iface: string, srcIP: string, count: number,
  traffic: () => Promise<unknown>): Promise<InnerTcpChecksum[]> {
  const lines = await captureVxlan(ns, iface, srcIP,
    ['ip.src', 'ip.dst', 'ipv6.src', 'ipv6.dst', 'tcp.hdr_len', 'tcp.len', 'tcp.checksum', 'tcp.checksum.status'], count, traffic,
    ['tcp.check_checksum:TRUE']);
  const out: InnerTcpChecksum[] = [];
  for (const line of lines) {
    const [src4 = '', dst4 = '', src6 = '', dst6 = '', hdr, len, field, status] = line.split('\t');
    if (!field) continue; // not TCP
    // each field lists its family's headers outer first: of the two sources, the inner is not
    // srcIP, and the inner destination stands where the inner source does
    const list = (a: string, b: string) => [...a.split(','), ...b.split(',')].filter((x) => x.length > 0);
    const [srcs, dsts] = [list(src4, src6), list(dst4, dst6)];
    const at = srcs.findIndex((a) => a !== srcIP);
    const [src, dst] = [srcs[at], dsts[at]];
    if (srcs.length !== 2 || dsts.length !== 2 || src === undefined || dst === undefined) throw new Error(`tshark: cannot tell inner from outer in ${line}`);
    const l4 = Number(hdr) + Number(len);
    out.push({ len: Number(len), field: parseInt(field, 16), pseudo: fold(addressSum(src) + addressSum(dst) + 6 + l4), good: status === '1' });
  }
  return out;
}
