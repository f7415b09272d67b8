/**
 * A lab session for CLI commands: builds the topology, brings up an overlay
 * and guarantees teardown on return, on error, on Ctrl-C (SIGINT), SIGTERM,
 * SIGHUP (the terminal went away: an SSH session dropped) and on process
 * exit (a last synchronous sweep of the namespaces).
 */
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { applyOverlay, type Overlay, type OverlaySpec } from './overlay.js';
import { cleanupStale } from './stale.js';
import { createTopology, labPrefix, type PodWiring, type Topology, type TopologyOptions } from './topology.js';

/** Namespace prefix root of `userlay lab` / `userlay bench` runs. */
export const CLI_PREFIX_ROOT = 'ulL';

/** A topology plus the overlay currently on it. */
export interface LabSession {
  readonly topo: Topology;
  overlay: Overlay | undefined;
  /** The signal that is tearing the session down, if any (errors after it are noise). */
  readonly interrupted: NodeJS.Signals | undefined;
  /** Replace the current overlay (removing the old one first). */
  setOverlay(spec: OverlaySpec): Promise<Overlay>;
  /** Remove the overlay and the topology; unregisters the signal handlers. Idempotent. */
  close(): Promise<void>;
}

/** Best-effort synchronous removal of every namespace starting with `prefix` (for the exit handler). */
function sweepSync(prefix: string): void {
  try {
    const names = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
      .split('\n').map((l) => l.trim().split(/\s+/)[0] ?? '').filter((n) => n.startsWith(prefix));
    names.sort((a, b) => Number(a.endsWith('-u')) - Number(b.endsWith('-u')));
    for (const ns of names) {
      const pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).split(/\s+/).filter(Boolean);
      for (const pid of pids) { try { process.kill(Number(pid), 'SIGKILL'); } catch { /* gone */ } }
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    }
  } catch { /* nothing more we can do while exiting */ }
}

/** The signals that tear a session down. */
const TEARDOWN_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/** Exit code of a run ended by `signal`: 128 + its number (SIGHUP 129, SIGINT 130, SIGTERM 143). */
export function signalExitCode(signal: NodeJS.Signals): number {
  return 128 + os.constants.signals[signal];
}

/**
 * Remove leftovers of crashed runs, build an `nodes`-node topology (pods wired by `pods`, with the
 * outside namespace when `outside`, pod and underlay families by `addressing`, default IPv4) and
 * register teardown handlers. `onSignal` is told which signal ended the run
 * (after teardown) so the caller can exit with 128 + n.
 */
export async function openLabSession(nodes: number, onSignal: (signal: NodeJS.Signals) => void, pods: PodWiring = 'veth',
  outside = false, addressing: Pick<TopologyOptions, 'family' | 'underlayFamily' | 'underlay'> = {}): Promise<LabSession> {
  await cleanupStale(CLI_PREFIX_ROOT);
  const prefix = labPrefix(CLI_PREFIX_ROOT);
  const onExit = (): void => sweepSync(prefix);
  process.on('exit', onExit);
  let session: LabSession | undefined;
  let interrupted: NodeJS.Signals | undefined;
  const handler = (signal: NodeJS.Signals): void => {
    interrupted ??= signal;
    process.stderr.write(`userlay: ${signal}: tearing the lab down\n`);
    void (session ? session.close() : Promise.resolve()).finally(() => onSignal(signal));
  };
  for (const sig of TEARDOWN_SIGNALS) process.on(sig, handler);
  const unregister = (): void => {
    for (const sig of TEARDOWN_SIGNALS) process.off(sig, handler);
    process.off('exit', onExit);
  };
  let topo: Topology;
  try {
    topo = await createTopology({ prefix, nodes, pods, outside, ...addressing });
  } catch (err) {
    unregister();
    throw err;
  }
  let closing: Promise<void> | undefined;
  const s: LabSession = {
    topo,
    overlay: undefined,
    get interrupted() { return interrupted; },
    async setOverlay(spec) {
      await s.overlay?.remove();
      s.overlay = undefined;
      s.overlay = await applyOverlay(topo, spec);
      return s.overlay;
    },
    close() {
      closing ??= (async () => {
        try {
          await s.overlay?.remove();
        } finally {
          await topo.close();
          unregister();
        }
      })();
      return closing;
    },
  };
  session = s;
  return s;
}
