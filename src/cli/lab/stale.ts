/**
 * Leftovers of a crashed lab run: namespaces named `<root><pid>-...` whose
 * pid is dead. Removing them kills whatever still runs inside (an orphaned
 * agent, iperf3) first.
 */
import { readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ip, pidAlive } from './exec.js';
import { deleteNamespaces } from './topology.js';

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Names of all network namespaces (`ip netns list`). */
export async function listNamespaces(): Promise<string[]> {
  const out = await ip(undefined, ['netns', 'list']);
  return out.stdout.split('\n').map((l) => l.trim().split(/\s+/)[0] ?? '').filter(Boolean);
}

/**
 * Delete namespaces (and work dirs in the temp dir) left by dead runs whose
 * prefix starts with `prefixRoot` (`<root><pid>-`). Returns the namespaces removed.
 */
export async function cleanupStale(prefixRoot: string): Promise<string[]> {
  const pattern = new RegExp(`^${escapeRegExp(prefixRoot)}(\\d+)-`);
  const deadPid = (name: string): boolean => {
    const m = pattern.exec(name);
    return m !== null && Number(m[1]) !== process.pid && !pidAlive(Number(m[1]));
  };
  const stale = (await listNamespaces()).filter(deadPid);
  // Nodes and pods before the underlay namespace that holds their veth peers.
  stale.sort((a, b) => Number(a.endsWith('-u')) - Number(b.endsWith('-u')));
  await deleteNamespaces(stale);
  const tmp = os.tmpdir();
  for (const entry of await readdir(tmp).catch(() => [] as string[])) {
    if (deadPid(entry)) await rm(path.join(tmp, entry), { recursive: true, force: true });
  }
  return stale;
}
