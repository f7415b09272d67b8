/**
 * Checks of the flags both agent modes (static and kube) share, so a bad
 * value is refused with the same message whichever mode reads it.
 */
import { usageError } from '../errors.js';
import { parseLogLevel, type LogLevel } from '../log.js';
import { DEFAULT_CNI_STATE_DIR } from '../cni/defaults.js';
import { OFFLOAD_MODES, type OffloadMode } from '../dataplane/offloads.js';
import { type EngineKind, MAX_THREADS } from '../dataplane/types.js';
import { type FlagSpec, type ParsedFlags, flagInt, flagOneOf, flagString } from './flags.js';

/**
 * Default of --threads. Measured (README, Performance, "Threads"): on the
 * 2-core test machine under other load, 2 pairs gave -5% and +17% on four
 * TCP streams in two runs, not clearly better, so one pair (two threads)
 * stays the default; more pairs are for nodes with cores to spare.
 */
export const DEFAULT_THREADS = 1;

/** --threads, shared by both modes. */
export const threadsFlagSpec: FlagSpec = {
  name: 'threads', kind: 'int', default: DEFAULT_THREADS,
  help: `forwarding thread pairs of the native engine, 1..${MAX_THREADS} (multi-queue TUN, SO_REUSEPORT receive sockets)`,
};

/** --threads: 1..MAX_THREADS; more than 1 needs --engine native. */
export function threadsFlag(f: ParsedFlags, engine: EngineKind): number {
  const n = flagInt(f, 'threads')!;
  if (n < 1 || n > MAX_THREADS) throw usageError('--threads', `${n} is outside 1..${MAX_THREADS}`);
  if (n > 1 && engine !== 'native') {
    throw usageError('--threads', `${n} needs --engine native: the js engine forwards on the JS thread from one TUN queue`);
  }
  return n;
}

/** --offloads, shared by both modes. */
export const offloadsFlagSpec: FlagSpec = {
  name: 'offloads', kind: 'string', default: 'auto',
  help: 'segmentation offloads: auto (TSO/USO on the TUN, UDP GRO on the socket, where the kernel takes them) or off',
};

/** --offloads: auto or off. */
export function offloadsFlag(f: ParsedFlags): OffloadMode {
  return flagOneOf<OffloadMode>(f, 'offloads', OFFLOAD_MODES);
}

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

/**
 * Split a listen address "HOST:PORT", "[V6]:PORT" or ":PORT" (all addresses) into host and port.
 * Throws usageError('--status-addr', ...) on anything else.
 */
export function parseListenAddress(addr: string): { host: string | undefined; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(addr);
  if (!m) throw usageError('--status-addr', `"${addr}" is not HOST:PORT, [IPv6]:PORT or :PORT`);
  const port = Number(m[3]);
  if (port > 65535) throw usageError('--status-addr', `port ${port} is out of range 0-65535`);
  const host = m[1] ?? m[2];
  return { host: host === '' ? undefined : host, port };
}

/** The CNI endpoint flags both modes take (the shim's conflist must name the same paths). */
export const cniFlagSpecs: readonly FlagSpec[] = [
  { name: 'cni-socket', kind: 'string', help: 'serve the userlay CNI plugin on this unix socket (off when not given)' },
  { name: 'cni-state-dir', kind: 'string', default: DEFAULT_CNI_STATE_DIR, help: 'CNI attachment records, host-local data and the DEL queue' },
];

/** Checked CNI endpoint settings; socket undefined means no endpoint. */
export interface CniFlags {
  readonly socket: string | undefined;
  readonly stateDir: string;
}

/** --cni-socket and --cni-state-dir: absolute paths. */
export function cniFlags(f: ParsedFlags): CniFlags {
  const socket = flagString(f, 'cni-socket');
  const stateDir = flagString(f, 'cni-state-dir')!;
  if (socket !== undefined && (!socket.startsWith('/') || Buffer.byteLength(socket) > 107)) {
    throw usageError('--cni-socket', `"${socket}" is not an absolute path of at most 107 bytes`);
  }
  if (!stateDir.startsWith('/')) throw usageError('--cni-state-dir', `"${stateDir}" is not an absolute path`);
  return { socket, stateDir };
}
