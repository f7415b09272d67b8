/**
 * Packet capture for tests: tshark on an interface inside a namespace,
 * started and confirmed capturing before the traffic runs.
 */
import { createInterface } from 'node:readline';
import { nsSpawn, stopChild, waitExit } from '../../src/cli/lab/exec.js';
import { VXLAN_PORT } from '../../src/cli/lab/overlay.js';

/**
 * Capture `count` VXLAN datagrams sent by `srcIP` on `iface` in `ns` while
 * `traffic` runs (at most 15 s), decoded as VXLAN, and return one line per
 * datagram with the tshark `fields` separated by tabs (fields that occur in
 * outer and inner headers list both, comma-separated).
 */
export async function captureVxlan(ns: string, iface: string, srcIP: string, fields: readonly string[], count: number,
  traffic: () => Promise<unknown>): Promise<string[]> {
  const tshark = nsSpawn(ns, 'tshark', [
    '-i', iface, '-c', String(count), '-a', 'duration:15', '-l',
    '-f', `udp dst port ${VXLAN_PORT} and src host ${srcIP}`,
    '-d', `udp.port==${VXLAN_PORT},vxlan`,
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
