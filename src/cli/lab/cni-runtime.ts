/**
 * A minimal container runtime's CNI side, for the lab and the tests: it runs a conflist's
 * plugins the way libcni does — each plugin binary from the CNI bin dirs, CNI_COMMAND /
 * CNI_CONTAINERID / CNI_NETNS / CNI_IFNAME / CNI_ARGS / CNI_PATH in the environment, the
 * plugin's config (with the list's name and cniVersion, and prevResult down the chain) on
 * stdin; ADD in list order, DEL in reverse. The runtime runs in the node's network namespace
 * (`ip netns exec`), as kubelet/containerd run in the host's.
 *
 * The userlay plugin is the shim (native/build-cni/userlay); the lab puts it, and nothing
 * else, in its own bin dir ahead of /usr/lib/cni.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { mkdir, copyFile, chmod } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserlayError } from '../../errors.js';

/** Where Debian's containernetworking-plugins live. */
export const SYSTEM_CNI_DIR = '/usr/lib/cni';

/** A conflist. */
export interface Conflist {
  readonly cniVersion: string;
  readonly name: string;
  readonly plugins: ReadonlyArray<Record<string, unknown>>;
}

/** What one plugin run printed and how it exited. */
export interface PluginRun {
  readonly exitCode: number;
  readonly stdout: string;
  /** Parsed stdout (undefined when empty or not JSON). */
  readonly json: Record<string, unknown> | undefined;
  readonly stderr: string;
}

/** Identity of one attachment, as the runtime passes it. */
export interface RuntimeAttachment {
  readonly containerID: string;
  /** Path of the pod's network namespace (e.g. /run/netns/<name>); '' for none. */
  readonly netns: string;
  readonly ifname: string;
  /** CNI_ARGS (e.g. "IgnoreUnknown=1;IP=198.19.1.2"). */
  readonly args?: string;
}

/** Path of the built shim (this file is dist/src/cli/lab/cni-runtime.js). */
export function shimPath(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  return path.resolve(here, '../../../../native/build-cni/userlay');
}

/** Make `dir` a CNI bin dir holding the shim as "userlay"; returns CNI_PATH (dir, then /usr/lib/cni). */
export async function installShim(dir: string): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const target = path.join(dir, 'userlay');
  await copyFile(shimPath(), target).catch((err: unknown) => {
    throw new UserlayError('ENOENT', `install the CNI shim from ${shimPath()}: ${(err as Error).message} (run "make -C native cni")`, { cause: err });
  });
  await chmod(target, 0o755);
  return [dir, SYSTEM_CNI_DIR];
}

/**
 * Run one plugin binary `type` from `cniPath` as a runtime does, inside network namespace
 * `ns` (undefined: the caller's). Never throws for a plugin failure: look at exitCode.
 */
export function execPlugin(ns: string | undefined, cniPath: readonly string[], type: string, env: Record<string, string>,
  config: Record<string, unknown>, timeoutMs = 120_000): Promise<PluginRun> {
  return new Promise((resolve, reject) => {
    const bin = findIn(cniPath, type);
    const argv = ns === undefined ? [bin] : ['ip', 'netns', 'exec', ns, bin];
    const child = spawn(argv[0]!, argv.slice(1), {
      env: { PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...env, CNI_PATH: cniPath.join(':') },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => { clearTimeout(timer); reject(err); });
    child.on('close', (code) => {
      clearTimeout(timer);
      let json: Record<string, unknown> | undefined;
      try { json = stdout.trim() ? JSON.parse(stdout) as Record<string, unknown> : undefined; } catch { json = undefined; }
      resolve({ exitCode: code ?? 128, stdout, json, stderr });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(JSON.stringify(config));
  });
}

/** The plugin in CNI_PATH order: the first dir that has it wins (the last candidate otherwise). */
function findIn(dirs: readonly string[], type: string): string {
  for (const d of dirs) {
    const f = path.join(d, type);
    try {
      accessSync(f, constants.X_OK);
      return f;
    } catch { /* next dir */ }
  }
  return path.join(dirs[dirs.length - 1] ?? '.', type);
}

/** The CNI_* environment for one verb on one attachment. */
export function cniEnv(command: string, a: RuntimeAttachment | undefined): Record<string, string> {
  return {
    CNI_COMMAND: command,
    ...(a ? { CNI_CONTAINERID: a.containerID, CNI_NETNS: a.netns, CNI_IFNAME: a.ifname, CNI_ARGS: a.args ?? '' } : {}),
  };
}

/** A plugin's config as the runtime hands it over: list name and version injected. */
function pluginConfig(list: Conflist, plugin: Record<string, unknown>, extra: Record<string, unknown>): Record<string, unknown> {
  return { ...plugin, name: list.name, cniVersion: list.cniVersion, ...extra };
}

/** A failed plugin run as an error carrying the CNI error object. */
export class PluginError extends UserlayError {
  constructor(readonly type: string, readonly command: string, readonly run: PluginRun) {
    super('ECNI', `${type} ${command} exited ${run.exitCode}: ${run.stdout.trim() || run.stderr.trim()}`);
  }
}

/**
 * ADD: every plugin in order, each getting the previous one's result as prevResult. On a
 * failure the plugins that ran are DELeted again (in reverse) and PluginError is thrown.
 */
export async function runtimeAdd(ns: string | undefined, cniPath: readonly string[], list: Conflist, a: RuntimeAttachment): Promise<Record<string, unknown>> {
  let prev: Record<string, unknown> | undefined;
  for (const [i, plugin] of list.plugins.entries()) {
    const run = await execPlugin(ns, cniPath, String(plugin['type']), cniEnv('ADD', a),
      pluginConfig(list, plugin, prev ? { prevResult: prev } : {}));
    if (run.exitCode !== 0 || !run.json) {
      await runtimeDel(ns, cniPath, { ...list, plugins: list.plugins.slice(0, i + 1) }, a, prev).catch(() => {});
      throw new PluginError(String(plugin['type']), 'ADD', run);
    }
    prev = run.json;
  }
  return prev ?? {};
}

/** DEL: every plugin in reverse order, with the ADD result as prevResult when known. */
export async function runtimeDel(ns: string | undefined, cniPath: readonly string[], list: Conflist, a: RuntimeAttachment,
  prevResult?: Record<string, unknown>): Promise<void> {
  const errors: PluginError[] = [];
  for (const plugin of [...list.plugins].reverse()) {
    const run = await execPlugin(ns, cniPath, String(plugin['type']), cniEnv('DEL', a),
      pluginConfig(list, plugin, prevResult ? { prevResult } : {}));
    if (run.exitCode !== 0) errors.push(new PluginError(String(plugin['type']), 'DEL', run));
  }
  if (errors.length > 0) throw errors[0]!;
}

/** The conflist of a lab node: userlay (the shim, pointed at the node's agent), then portmap. */
export function labConflist(socket: string, stateDir: string, cniVersion = '1.0.0'): Conflist {
  return {
    cniVersion,
    name: 'userlay',
    plugins: [
      // a default route through the bridge, as flannel's delegate has: service IPs lie outside the cluster network
      { type: 'userlay', socket, stateDir, isDefaultGateway: true },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  };
}
