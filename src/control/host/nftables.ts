/**
 * nftables as userlay uses it: scripts fed to `nft -f -`, each one kernel transaction
 * (all of it applies or none), and the JSON listing of a table (`nft -j list table`).
 *
 * This is the only place that runs nft; everything above it (ip-masq.ts) builds script text
 * and takes an `Nftables` so tests can record the scripts instead of running them.
 */
import { execFile } from 'node:child_process';
import { UserlayError } from '../../errors.js';

/** What userlay asks of nftables. */
export interface Nftables {
  /** Run `script` as one transaction (`nft -f -`). Rejects with UserlayError (ENOENT: no nft; ENFT: nft refused it). */
  run(script: string): Promise<void>;
  /**
   * The `nftables` array of `nft -j list table FAMILY NAME` (metainfo, table, chains, rules),
   * or undefined when the table does not exist.
   */
  listTable(family: string, name: string): Promise<unknown[] | undefined>;
}

/** Options of systemNftables(). */
export interface SystemNftablesOptions {
  /** Program and leading arguments (default ["nft"]; tests: ["ip", "netns", "exec", NS, "nft"]). */
  readonly command?: readonly string[];
  /** Kill nft after this many milliseconds (default 10 s). */
  readonly timeoutMs?: number;
}

interface NftResult { code: number | string | null; stdout: string; stderr: string }

function nft(command: readonly string[], args: readonly string[], input: string | undefined, timeoutMs: number): Promise<NftResult> {
  const [bin, ...lead] = command;
  return new Promise((resolve, reject) => {
    const child = execFile(bin!, [...lead, ...args], { timeout: timeoutMs, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(new UserlayError('ENOENT', `run ${bin}: program not found (install the nftables package)`, { cause: err }));
        return;
      }
      const code = err ? ((err as { code?: number | string }).code ?? (err as { signal?: string }).signal ?? null) : 0;
      resolve({ code, stdout, stderr });
    });
    // nft may exit before it reads stdin (`list` never does): the EPIPE that
    // writing then gives is no error of ours, the exit status tells the outcome
    child.stdin?.on('error', () => {});
    child.stdin?.end(input ?? '');
  });
}

/** The last lines of nft's complaint, on one line. */
function detail(r: NftResult): string {
  return (r.stderr || r.stdout || `exit ${String(r.code)}`).trim().split('\n').slice(-4).join(' | ');
}

/** nftables through the `nft` program of this host (in the caller's network namespace). */
export function systemNftables(options: SystemNftablesOptions = {}): Nftables {
  const command = options.command ?? ['nft'];
  const timeoutMs = options.timeoutMs ?? 10_000;
  return {
    async run(script) {
      const r = await nft(command, ['-f', '-'], script, timeoutMs);
      if (r.code !== 0) throw new UserlayError('ENFT', `nft -f -: ${detail(r)}`);
    },
    async listTable(family, name) {
      const r = await nft(command, ['-j', 'list', 'table', family, name], undefined, timeoutMs);
      if (r.code !== 0) {
        if (/No such file or directory/.test(r.stderr)) return undefined;
        throw new UserlayError('ENFT', `nft -j list table ${family} ${name}: ${detail(r)}`);
      }
      const doc = JSON.parse(r.stdout) as { nftables?: unknown[] };
      return doc.nftables ?? [];
    },
  };
}
