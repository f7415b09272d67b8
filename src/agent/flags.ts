/**
 * A small, strict command-line flag parser shared by every subcommand.
 *
 * Accepts `--name value` and `--name=value`; `bool` flags take no value
 * (`--json`) but also accept `--json=true|false`; `list` flags may repeat.
 * Anything it does not understand is a usage error naming the flag, so the
 * CLI can print one line and exit 2.
 */
import { usageError } from '../errors.js';

/** Value kinds a flag can take. */
export type FlagKind = 'string' | 'int' | 'bool' | 'list';

/** A parsed flag value. */
export type FlagValue = string | number | boolean | string[] | undefined;

/** Declaration of one flag. */
export interface FlagSpec {
  /** Name without the leading "--". */
  name: string;
  kind: FlagKind;
  /** Missing required flags are a usage error. */
  required?: boolean;
  /** Value when the flag is absent. */
  default?: string | number | boolean | string[];
  /** One-line description for --help. */
  help: string;
}

/** Parsed flags keyed by name; absent flags without a default are undefined. */
export type ParsedFlags = Record<string, FlagValue>;

function parseInt10(name: string, text: string): number {
  if (!/^-?[0-9]+$/.test(text)) throw usageError(`--${name}`, `"${text}" is not an integer`);
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw usageError(`--${name}`, `"${text}" is out of range`);
  return n;
}

/**
 * Parse `argv` (without the program and subcommand) against `specs`.
 * Throws UserlayError EUSAGE (field = "--name") on an unknown flag, a missing
 * value, a bad integer, a repeated non-list flag, a positional argument or a
 * missing required flag.
 */
export function parseFlags(specs: readonly FlagSpec[], argv: readonly string[]): ParsedFlags {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const out: ParsedFlags = {};
  const seen = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--') || arg === '--') {
      throw usageError(arg, 'unexpected argument (flags look like --name value)');
    }
    const eq = arg.indexOf('=');
    const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
    const spec = byName.get(name);
    if (!spec) throw usageError(`--${name}`, 'unknown flag (see --help)');
    if (seen.has(name) && spec.kind !== 'list') throw usageError(`--${name}`, 'given more than once');
    seen.add(name);
    let text: string | undefined = eq < 0 ? undefined : arg.slice(eq + 1);
    if (spec.kind === 'bool') {
      if (text === undefined || text === 'true') out[name] = true;
      else if (text === 'false') out[name] = false;
      else throw usageError(`--${name}`, `"${text}" is not true or false`);
      continue;
    }
    if (text === undefined) {
      const next = argv[i + 1];
      if (next === undefined || (next.startsWith('--') && next.length > 2)) {
        throw usageError(`--${name}`, 'missing value');
      }
      text = next;
      i++;
    }
    switch (spec.kind) {
      case 'string':
        out[name] = text;
        break;
      case 'int':
        out[name] = parseInt10(name, text);
        break;
      case 'list':
        out[name] = [...((out[name] as string[] | undefined) ?? []), text];
        break;
    }
  }
  for (const spec of specs) {
    if (out[spec.name] !== undefined) continue;
    if (spec.required) throw usageError(`--${spec.name}`, 'is required');
    const d = spec.default;
    out[spec.name] = Array.isArray(d) ? [...d] : d;
  }
  return out;
}

/** True when argv asks for help (`-h`, `--help`). */
export function wantsHelp(argv: readonly string[]): boolean {
  return argv.includes('--help') || argv.includes('-h');
}

/** Help text listing every flag: `  --name VALUE   help (default: x)`. */
export function formatUsage(specs: readonly FlagSpec[], synopsis = ''): string {
  const meta: Record<FlagKind, string> = { string: 'VALUE', int: 'N', bool: '', list: 'VALUE...' };
  const left = specs.map((s) => `  --${s.name}${meta[s.kind] ? ' ' + meta[s.kind] : ''}`);
  const width = Math.max(...left.map((l) => l.length)) + 2;
  const lines = specs.map((s, i) => {
    const extra = s.required ? ' (required)' : s.default !== undefined && s.default !== false
      ? ` (default: ${Array.isArray(s.default) ? s.default.join(',') : String(s.default)})` : '';
    return `${left[i]!.padEnd(width)}${s.help}${extra}`;
  });
  return (synopsis ? synopsis + '\n\n' : '') + 'Flags:\n' + lines.join('\n') + '\n';
}

/** Typed accessors over ParsedFlags (the parser already checked kinds). */
export function flagString(flags: ParsedFlags, name: string): string | undefined {
  const v = flags[name];
  return typeof v === 'string' ? v : undefined;
}

/** The value of a `string` flag that must be one of `allowed`; throws usageError naming the flag otherwise. */
export function flagOneOf<T extends string>(flags: ParsedFlags, name: string, allowed: readonly T[]): T {
  const v = flagString(flags, name);
  if (v !== undefined && (allowed as readonly string[]).includes(v)) return v as T;
  throw usageError(`--${name}`, `"${v}" must be one of ${allowed.join(', ')}`);
}

/** The integer value of an `int` flag, or undefined. */
export function flagInt(flags: ParsedFlags, name: string): number | undefined {
  const v = flags[name];
  return typeof v === 'number' ? v : undefined;
}

/** The value of a `bool` flag (false when absent). */
export function flagBool(flags: ParsedFlags, name: string): boolean {
  return flags[name] === true;
}

/** The values of a `list` flag ([] when absent). */
export function flagList(flags: ParsedFlags, name: string): string[] {
  const v = flags[name];
  return Array.isArray(v) ? v : [];
}
