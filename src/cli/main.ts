/**
 * The `userlay` command: dispatches to a subcommand. Importing this module
 * runs the CLI with process.argv (bin/userlay.js does exactly that).
 *
 * Errors end the process with one line on stderr, "userlay: <message>":
 * exit 2 for usage, configuration and setup errors (bad flag or file, port
 * in use, no permission), 1 for anything else.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { UserlayError } from '../errors.js';

/** Codes that mean "the user must fix the input or the environment": exit 2. */
const setupCodes = new Set([
  'EUSAGE', 'ECONFIG', 'EFDB', 'EADDRINUSE', 'EADDRNOTAVAIL', 'EPERM', 'EACCES', 'ENOADDON', 'ENOENT', 'ENODEV', 'EBUSY', 'EEXIST',
]);

const usage = `usage: userlay <command> [flags]

commands:
  agent     run the node agent (static peers file, or kube mode with --kubeconfig)
  lab       build a local multi-node lab in network namespaces and test it
  bench     compare engines and kernel VXLAN on the lab
  version   print the version
  help      show this help

"userlay <command> --help" lists the flags of a command.
`;

function version(): string {
  const pkg = fileURLToPath(new URL('../../../package.json', import.meta.url));
  return (JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version;
}

/** Exit code for an error thrown out of a command. */
export function exitCodeFor(err: unknown): number {
  if (err instanceof UserlayError) return setupCodes.has(err.code) ? 2 : 1;
  return 1;
}

/**
 * Run one command line (without "node userlay"). Resolves when the command has
 * finished (lab, bench: with process.exitCode set) or, for agent, is up.
 */
export async function main(argv: readonly string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'agent':
      await (await import('../agent/main.js')).runAgent(rest);
      return;
    case 'lab':
      process.exitCode = await (await import('./lab.js')).runLab(rest);
      return;
    case 'bench':
      process.exitCode = await (await import('./bench.js')).runBench(rest);
      return;
    case 'version':
    case '--version':
      process.stdout.write(`userlay ${version()}\n`);
      return;
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(usage);
      return;
    default:
      process.stderr.write(cmd === undefined ? usage : `userlay: unknown command "${cmd}"\n${usage}`);
      process.exitCode = 2;
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`userlay: ${message.replace(/\s*\n\s*/g, ' ')}\n`);
  process.exit(exitCodeFor(err));
});
