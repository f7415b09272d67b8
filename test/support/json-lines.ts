/**
 * A child process that speaks JSON lines on stdout (the test tools under
 * test/support and src/cli/lab/pod-tool.ts): wait for the first line that
 * matches, send a command line on stdin.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { nsArgv } from '../../src/cli/lab/exec.js';

/** One parsed output line. */
export type JsonLine = Record<string, unknown>;

/** Line-level access to a JSON-lines child. */
export class JsonLines {
  private readonly seen: JsonLine[] = [];
  private readonly waiters: Array<() => void> = [];
  private readonly listeners: Array<(l: JsonLine) => void> = [];
  private stderr = '';
  private exited: string | undefined;

  constructor(readonly child: ChildProcess, private readonly name: string) {
    createInterface({ input: child.stdout! }).on('line', (l) => {
      let parsed: JsonLine;
      try {
        parsed = JSON.parse(l) as JsonLine;
      } catch {
        parsed = { unparsed: l };
      }
      this.seen.push(parsed);
      for (const cb of this.listeners) cb(parsed);
      this.wake();
    });
    child.stderr?.on('data', (d: Buffer) => { this.stderr = (this.stderr + d.toString()).slice(-2000); });
    child.once('exit', (code, signal) => {
      this.exited = `exited (${code ?? signal})`;
      this.wake();
    });
  }

  /**
   * The first line (oldest first, from the start) that `pred` accepts; waits
   * for it. Rejects naming `what` when the child exits without it or after
   * `timeoutMs` (a bound for a stuck child, not a delay).
   */
  line(what: string, pred: (l: JsonLine) => boolean, timeoutMs = 60_000): Promise<JsonLine> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => fail('no such line'), timeoutMs);
      const fail = (why: string): void => {
        clearTimeout(timer);
        reject(new Error(`${this.name}: ${why} while waiting for ${what}; last lines ${JSON.stringify(this.seen.slice(-3))} ${this.stderr.trim()}`));
      };
      const check = (): void => {
        const hit = this.seen.find(pred);
        if (hit) {
          clearTimeout(timer);
          resolve(hit);
        } else if (this.exited) fail(this.exited);
        else this.waiters.push(check);
      };
      check();
    });
  }

  /** Call `cb` with every line from now on. */
  onLine(cb: (l: JsonLine) => void): void {
    this.listeners.push(cb);
  }

  /** Write one command line to the child's stdin. */
  send(line: string): void {
    this.child.stdin!.write(line + '\n');
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}

/** Start `cmd args...` inside network namespace `ns` with stdin, stdout and stderr piped. */
export function nsSpawnJson(ns: string, cmd: string, args: readonly string[]): JsonLines {
  const child = spawn('ip', nsArgv(ns, cmd, args), { stdio: ['pipe', 'pipe', 'pipe'] });
  return new JsonLines(child, `${args[0] ?? cmd} in ${ns}`);
}
