/**
 * Running a delegate plugin (bridge, host-local through bridge, ...) the way a runtime runs a
 * plugin: the binary from CNI_PATH, CNI_* in the environment, the config on stdin, the result
 * or the error object on stdout. A delegate's error object is passed on with its own code.
 */
import { execFile } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import path from 'node:path';
import { CniCode, CniError } from './errors.js';

/** The environment of one delegate call. */
export interface DelegateEnv {
  readonly command: 'ADD' | 'DEL' | 'CHECK' | 'STATUS' | 'GC' | 'VERSION';
  readonly containerID: string;
  readonly netns: string;
  readonly ifname: string;
  readonly args: string;
  readonly path: readonly string[];
}

/** Runs delegates; tests replace it to count or fail calls. */
export type DelegateRunner = (type: string, env: DelegateEnv, config: Record<string, unknown>) => Promise<Record<string, unknown> | undefined>;

/** Milliseconds a delegate may run. */
const DELEGATE_TIMEOUT_MS = 60_000;

/** The first executable `type` in the CNI_PATH directories; throws CNI error 50 when none is. */
export async function findPlugin(type: string, dirs: readonly string[]): Promise<string> {
  if (!/^[A-Za-z0-9_.-]+$/.test(type)) throw new CniError(CniCode.invalidConfig, `userlay: "${type}" is not a plugin name`);
  for (const dir of dirs) {
    const file = path.join(dir, type);
    if (await access(file, constants.X_OK).then(() => true, () => false)) return file;
  }
  throw new CniError(CniCode.notAvailable, `userlay: delegate plugin "${type}" not found in CNI_PATH (${dirs.join(':') || 'empty'})`);
}

/** Run delegate `type`; resolves with its parsed stdout (undefined when it printed nothing). */
export const runDelegate: DelegateRunner = async (type, env, config) => {
  const file = await findPlugin(type, env.path);
  const childEnv: Record<string, string> = {
    PATH: process.env['PATH'] ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: env.command, CNI_CONTAINERID: env.containerID, CNI_NETNS: env.netns,
    CNI_IFNAME: env.ifname, CNI_ARGS: env.args, CNI_PATH: env.path.join(':'),
  };
  const { stdout, stderr, failed, spawnError } = await new Promise<{ stdout: string; stderr: string; failed: boolean; spawnError?: Error }>((resolve) => {
    const child = execFile(file, [], { env: childEnv, timeout: DELEGATE_TIMEOUT_MS, maxBuffer: 16 << 20, encoding: 'utf8' },
      (err, out, errOut) => resolve({ stdout: out, stderr: errOut, failed: err !== null,
        ...(err && typeof (err as NodeJS.ErrnoException).code === 'string' ? { spawnError: err } : {}) }));
    child.stdin?.on('error', () => {}); // a plugin that exits without reading stdin
    child.stdin?.end(JSON.stringify(config));
  });
  if (spawnError) throw new CniError(CniCode.ioFailure, `userlay: running ${file}: ${spawnError.message}`, { cause: spawnError });
  let parsed: unknown;
  if (stdout.trim() !== '') {
    try {
      parsed = JSON.parse(stdout);
    } catch {
      parsed = undefined;
    }
  }
  const obj = parsed && typeof parsed === 'object' ? parsed as Record<string, unknown> : undefined;
  if (failed) {
    if (obj && typeof obj['code'] === 'number') {
      const details = typeof obj['details'] === 'string' && obj['details'] !== '' ? obj['details'] as string : undefined;
      throw new CniError(obj['code'] as number, `${type} ${env.command}: ${String(obj['msg'] ?? 'failed')}`, details ? { details } : {});
    }
    const tail = (stderr || stdout).trim().split('\n').slice(-3).join(' | ');
    throw new CniError(CniCode.generic, `${type} ${env.command} failed${tail ? `: ${tail}` : ''}`);
  }
  if (stdout.trim() !== '' && !obj) throw new CniError(CniCode.decodeFailure, `${type} ${env.command} printed something that is not JSON`);
  return obj;
};
