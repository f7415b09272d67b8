/**
 * Checks of the flags both agent modes (static and kube) share, so a bad
 * value is refused with the same message whichever mode reads it.
 */
import { usageError } from '../errors.js';
import { parseLogLevel, type LogLevel } from '../log.js';
import { type ParsedFlags, flagString } from './flags.js';
import { parseListenAddress } from './status-server.js';

/** --log-level: one of debug, info, warn, error. */
export function logLevelFlag(f: ParsedFlags): LogLevel {
  const text = flagString(f, 'log-level')!;
  const level = parseLogLevel(text);
  if (!level) throw usageError('--log-level', `"${text}" is not one of debug, info, warn, error`);
  return level;
}

/** --tun: a Linux interface name (1-15 characters, no whitespace, "/", ":" or "%"). */
export function tunNameFlag(f: ParsedFlags): string {
  const name = flagString(f, 'tun')!;
  if (name.length === 0 || name.length > 15 || /[\s/:%]/.test(name)) {
    throw usageError('--tun', `"${name}" is not a valid interface name (1-15 characters, no spaces, "/", ":" or "%")`);
  }
  return name;
}

/** --status-addr (optional): checked with the status server's own address parser. */
export function statusAddrFlag(f: ParsedFlags): string | undefined {
  const addr = flagString(f, 'status-addr');
  if (addr !== undefined) parseListenAddress(addr);
  return addr;
}
