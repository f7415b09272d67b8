/**
 * The front of a lab-based subcommand (`userlay lab`, `userlay bench`):
 * --help, flags parsed and checked, root and tools present — each failure
 * one `userlay: ...` line and exit code 2 — then the command itself. Sets
 * process.exitCode to the result.
 */
import { formatUsage, parseFlags, wantsHelp, type FlagSpec, type ParsedFlags } from '../../agent/flags.js';
import { labPrerequisites } from './topology.js';

/** What a lab subcommand declares. */
export interface LabCommand<T> {
  /** The command line that runs it, e.g. "userlay lab". */
  readonly name: string;
  readonly specs: readonly FlagSpec[];
  /** First line of --help, e.g. "usage: userlay lab [flags]". */
  readonly synopsis: string;
  /** Validate parsed flags into the command's config; throw usageError(flag, ...) when bad. */
  check(flags: ParsedFlags): T;
  /** Run with a checked config; resolves with the exit code. */
  run(config: T): Promise<number>;
}

/** Run `cmd` with `argv` (the flags after the subcommand); resolves with the exit code. */
export async function runLabCommand<T>(cmd: LabCommand<T>, argv: readonly string[]): Promise<number> {
  const code = await front(cmd, argv);
  process.exitCode = code;
  return code;
}

async function front<T>(cmd: LabCommand<T>, argv: readonly string[]): Promise<number> {
  if (wantsHelp(argv)) {
    process.stdout.write(formatUsage(cmd.specs, cmd.synopsis));
    return 0;
  }
  let config: T;
  try {
    config = cmd.check(parseFlags(cmd.specs, argv));
  } catch (err) {
    process.stderr.write(`userlay: ${(err as Error).message}\n`);
    return 2;
  }
  const problem = await labPrerequisites(undefined, cmd.name);
  if (problem) {
    process.stderr.write(`userlay: ${problem}\n`);
    return 2;
  }
  return cmd.run(config);
}
