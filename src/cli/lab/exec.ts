/**
 * Running system tools for the lab harness: ip(8), sysctl, ping, iperf3...
 *
 * Always execFile with an argument vector (never a shell string), so names
 * and addresses cannot be misread as shell syntax. Only the lab and the tests
 * use this; the agent itself talks netlink through the addon.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { UserlayError } from '../../errors.js';

/** Output of a finished command. */
export interface RunResult {
  readonly stdout: string;
  readonly stderr: string;
  /** Exit code; null when killed by a signal. */
  readonly code: number | null;
}

/** Options for run(). */
export interface RunOptions {
  /** Kill the command after this many milliseconds (default 60 s). */
  readonly timeoutMs?: number;
  /** Resolve with the non-zero exit code instead of throwing. */
  readonly allowFail?: boolean;
  /** Written to the command's stdin. */
  readonly input?: string;
}

/**
 * Run `cmd args...` and collect its output. Throws UserlayError (code "ECMD",
 * or "ENOENT" when the program is missing) on a non-zero exit unless
 * `allowFail` is set.
 */
export function run(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      { timeout: options.timeoutMs ?? 60_000, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null) : 0;
        if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') {
          reject(new UserlayError('ENOENT', `run ${cmd}: program not found`, { cause: err }));
          return;
        }
        if (err && !options.allowFail) {
          const killed = (err as { killed?: boolean }).killed === true;
          const detail = killed
            ? `timed out after ${options.timeoutMs ?? 60_000} ms`
            : (stderr || stdout || err.message).trim().split('\n').slice(-3).join(' | ');
          reject(new UserlayError('ECMD', `${cmd} ${args.join(' ')}: ${detail}`, { cause: err }));
          return;
        }
        resolve({ stdout, stderr, code });
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

/** Argument vector that runs `cmd args...` inside network namespace `ns`. */
export function nsArgv(ns: string, cmd: string, args: readonly string[]): string[] {
  return ['netns', 'exec', ns, cmd, ...args];
}

/** run() inside network namespace `ns` (via `ip netns exec`). */
export function nsRun(ns: string, cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return run('ip', nsArgv(ns, cmd, args), options);
}

/** `ip -n ns args...` (or plain `ip args...` when ns is undefined). */
export function ip(ns: string | undefined, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return run('ip', ns === undefined ? args : ['-n', ns, ...args], options);
}

/**
 * Start a long-running `cmd args...` inside `ns`. `ip netns exec` execs the
 * command, so the returned child's pid is the command's own pid.
 */
export function nsSpawn(ns: string, cmd: string, args: readonly string[]): ChildProcess {
  return spawn('ip', nsArgv(ns, cmd, args), { stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Resolve when `child` exits (immediately if it already has); returns its exit code or signal. */
export function waitExit(child: ChildProcess): Promise<number | string> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  if (child.signalCode !== null) return Promise.resolve(child.signalCode);
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
}

/**
 * Stop `child`: SIGTERM, then SIGKILL after `graceMs`. Resolves with how it
 * ended and whether the kill was needed.
 */
export async function stopChild(child: ChildProcess, graceMs = 5000): Promise<{ exit: number | string; killed: boolean }> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return { exit: child.exitCode ?? child.signalCode ?? -1, killed: false };
  }
  const done = waitExit(child);
  child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => { timer = setTimeout(() => resolve('timeout'), graceMs); });
  const first = await Promise.race([done, timedOut]);
  clearTimeout(timer);
  if (first !== 'timeout') return { exit: first, killed: false };
  child.kill('SIGKILL');
  return { exit: await done, killed: true };
}

/** True when a process with this pid exists. */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Resident set size of a process in bytes (VmRSS from /proc/<pid>/status), or undefined. */
export async function rssBytes(pid: number): Promise<number | undefined> {
  try {
    const text = await readFile(`/proc/${pid}/status`, 'utf8');
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(text);
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Sleep `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
