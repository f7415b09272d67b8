/**
 * Leftovers of a crashed lab run: namespaces named `<root><pid>-...` whose
 * pid is dead. Removing them kills whatever still runs inside (an orphaned
 * agent, iperf3) first. Its work directories in the temp dir go too, after
 * the processes outside the namespaces that still use one (the lab's
 * Prometheus, which runs in the host namespace) are killed.
 */
import { readFile, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ip, pidAlive, sleep } from './exec.js';
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
  const dirs = (await readdir(tmp).catch(() => [] as string[])).filter(deadPid).map((e) => path.join(tmp, e));
  await killUsers(dirs);
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  return stale;
}

/** SIGKILL every process whose command line names a path in one of `dirs`, and wait until it is gone. */
async function killUsers(dirs: readonly string[]): Promise<void> {
  if (dirs.length === 0) return;
  const names = (arg: string) => dirs.some((d) => arg === d || arg.includes(`${d}/`));
  const killed: number[] = [];
  for (const entry of await readdir('/proc').catch(() => [] as string[])) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (!cmdline.split('\0').some(names)) continue;
    try {
      process.kill(pid, 'SIGKILL');
      killed.push(pid);
    } catch { /* gone already */ }
  }
  const deadline = Date.now() + 5000;
  while (killed.some(pidAlive) && Date.now() < deadline) await sleep(20);
}
