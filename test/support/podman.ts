/**
 * podman for tests, kept away from the machine's own podman set-up: a private storage
 * (--root/--runroot) and a private containers.conf (CONTAINERS_CONF) that selects the CNI
 * network backend with the test's own network_config_dir and cni_plugin_dirs, runc, and
 * ulimit defaults this machine allows. podman's default network and config are never used:
 * every container names its network.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { run, type RunOptions, type RunResult } from '../../src/cli/lab/exec.js';

/** A private podman. */
export interface Podman {
  readonly dir: string;
  /** CNI conflists go here. */
  readonly netDir: string;
  /** podman args...; throws on failure unless allowFail. */
  run(args: readonly string[], options?: RunOptions): Promise<RunResult>;
  /** The environment podman runs with. */
  readonly env: Record<string, string>;
}

/** True when podman is installed. */
export async function havePodman(): Promise<boolean> {
  return (await run('podman', ['--version'], { allowFail: true }).catch(() => undefined))?.code === 0;
}

/** Ulimits podman would otherwise set above this machine's limits (runc then fails). */
async function ulimits(): Promise<string[]> {
  const sh = async (flag: string): Promise<number> => Number((await run('bash', ['-c', `ulimit ${flag}`])).stdout.trim()) || 1024;
  const nofile = Math.min(await sh('-Hn'), 4096);
  const nproc = Math.min(await sh('-Hu'), 4096);
  return [`nofile=${nofile}:${nofile}`, `nproc=${nproc}:${nproc}`];
}

/** Make a private podman under `dir` whose CNI plugins come from `pluginDirs`. */
export async function privatePodman(dir: string, pluginDirs: readonly string[]): Promise<Podman> {
  const netDir = path.join(dir, 'net.d');
  await mkdir(netDir, { recursive: true });
  const conf = path.join(dir, 'containers.conf');
  const q = (s: string): string => JSON.stringify(s);
  await writeFile(conf, [
    '[containers]',
    `default_ulimits = [${(await ulimits()).map(q).join(', ')}]`,
    '[network]',
    'network_backend = "cni"',
    `network_config_dir = ${q(netDir)}`,
    `cni_plugin_dirs = [${pluginDirs.map(q).join(', ')}]`,
    '[engine]',
    'runtime = "runc"',
    '',
  ].join('\n'));
  const env = { CONTAINERS_CONF: conf };
  const base = ['--root', path.join(dir, 'root'), '--runroot', path.join(dir, 'runroot')];
  return {
    dir, netDir, env,
    run: (args, options = {}) => runWithEnv('podman', [...base, ...args], env, options),
  };
}

/** run() with extra environment variables (exec.ts's run inherits the process env). */
async function runWithEnv(cmd: string, args: readonly string[], env: Record<string, string>, options: RunOptions): Promise<RunResult> {
  const saved: Record<string, string | undefined> = {};
  for (const k of Object.keys(env)) { saved[k] = process.env[k]; process.env[k] = env[k]; }
  try {
    return run(cmd, args, { timeoutMs: 600_000, ...options });
  } finally {
    for (const [k, v] of Object.entries(saved)) { if (v === undefined) delete process.env[k]; else process.env[k] = v; }
  }
}
