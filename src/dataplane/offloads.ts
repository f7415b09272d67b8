/**
 * Segmentation offloads of the data plane (`--offloads auto|off`).
 *
 *   auto  TUN: TUNSETOFFLOAD CSUM|TSO4|TSO6, then USO4|USO6 where the kernel
 *         takes them, so one TUN read returns up to 64 KiB that the engines'
 *         one read path (native/src/tun-read.c) splits into segments.
 *         Underlay socket: UDP_GRO, so one receive returns a run of
 *         datagrams that the receive path cuts apart and validates one by
 *         one (the native engine by the cmsg's segment size, the js engine
 *         at its first datagram's length: dgram hands no cmsg to JS).
 *         js engine's GSO socket: UDP_SEGMENT as a socket option, so a run
 *         of equal datagrams to one peer leaves in one send (the native
 *         engine passes the segment size per message, a cmsg, and needs no
 *         option).
 *   off   neither: one packet per read, one datagram per receive (the path
 *         before offloads; for comparison and as an escape hatch).
 *
 * A flag the kernel refuses is logged once and counted in
 * OffloadState.refused (exported as userlay_offload_refused); the data
 * plane runs with what it got. The test hook USERLAY_TEST_REFUSE_OFFLOADS
 * (comma list of tso, uso, gro, gso, tun-gso) makes the refusal happen on
 * purpose; tun-gso makes the TUN answer every GSO write with EINVAL, as a
 * 6.1/6.6 LTS range did.
 *
 * GSO writes to the TUN (receive coalescing, super-frames) are probed at
 * start with offloads auto; a refusal then or at run time turns them off for
 * good and the engines cut those packets in software (native/src/tun.c).
 * That state is dynamic: OffloadCounters.tunGso.
 */
import type { NativeAddon, NativeEngineStats } from './addon.js';
import type { Logger } from '../log.js';

/** The --offloads modes. */
export const OFFLOAD_MODES = ['auto', 'off'] as const;
/** An --offloads mode. */
export type OffloadMode = (typeof OFFLOAD_MODES)[number];

/** Offload names as logged and exported. */
export type OffloadName = 'tso' | 'uso' | 'gro' | 'gso';

/** What is in force after setup. */
export interface OffloadState {
  readonly mode: OffloadMode;
  /** Offloads in force. */
  readonly active: readonly OffloadName[];
  /** Offloads asked for and refused by the kernel (or the test hook). */
  readonly refused: readonly OffloadName[];
  /** The engine is to probe GSO writes to the TUN (mode auto). */
  readonly probeTunGso: boolean;
  /** Test hook: the TUN refuses GSO writes. */
  readonly testRefuseTunGso: boolean;
}

/** What the engines count about offloads while running: the native engine's statistics. */
export type OffloadCounters = NativeEngineStats;

/** Environment variable of the refusal test hook. */
export const REFUSE_ENV = 'USERLAY_TEST_REFUSE_OFFLOADS';

function refusedByHook(env: NodeJS.ProcessEnv): Set<string> {
  return new Set((env[REFUSE_ENV] ?? '').split(',').map((s) => s.trim()).filter(Boolean));
}

/**
 * Give the further queues of a multi-queue TUN (tunFds) and the further
 * receive sockets (udpFds) what applyOffloads gave the first ones.
 * TUNSETOFFLOAD goes to every queue's fd (the kernel keeps the features
 * per device, so this repeats the first queue's set rather than relying on
 * that); UDP_GRO is per socket.
 */
export function applyQueueOffloads(
  addon: NativeAddon, state: OffloadState, tunFds: readonly number[], udpFds: readonly number[],
): void {
  const c = addon.constants;
  const want = (state.active.includes('tso') ? c.TUN_F_CSUM | c.TUN_F_TSO4 | c.TUN_F_TSO6 : 0)
    | (state.active.includes('uso') ? c.TUN_F_USO4 | c.TUN_F_USO6 : 0);
  for (const fd of tunFds) addon.tunSetOffloads(fd, want, 0);
  if (state.active.includes('gro')) for (const fd of udpFds) addon.udpSetGro(fd, true);
}

/**
 * Apply `mode` to the TUN fd and, when given, the engine's receive socket (udpFd: UDP_GRO) and
 * its GSO socket (gsoFd, the js engine's: UDP_SEGMENT is tried with 0, the engine sets the
 * size per run). Never throws for a refused offload; a TUN that rejects TUNSETOFFLOAD for
 * another reason than its flags throws the addon's error.
 */
export function applyOffloads(
  addon: NativeAddon, tunFd: number, udpFd: number | undefined, mode: OffloadMode, log: Logger,
  env: NodeJS.ProcessEnv = process.env, gsoFd?: number,
): OffloadState {
  const c = addon.constants;
  const tso = c.TUN_F_CSUM | c.TUN_F_TSO4 | c.TUN_F_TSO6;
  const uso = c.TUN_F_USO4 | c.TUN_F_USO6;
  const hook = refusedByHook(env);
  const testRefuseTunGso = hook.has('tun-gso');
  if (mode === 'off') {
    addon.tunSetOffloads(tunFd, 0, 0);
    return { mode, active: [], refused: [], probeTunGso: false, testRefuseTunGso };
  }
  const refuse = (hook.has('tso') ? tso : 0) | (hook.has('uso') ? uso : 0);
  const got = addon.tunSetOffloads(tunFd, tso | uso, refuse);
  const active: OffloadName[] = [];
  const refused: OffloadName[] = [];
  (got & tso) === tso ? active.push('tso') : refused.push('tso');
  (got & uso) === uso ? active.push('uso') : refused.push('uso');
  /** A socket option: in force, or refused (by the kernel or the hook) and logged. */
  const socketOption = (name: OffloadName, fd: number | undefined, set: (fd: number) => void, refusal: string): void => {
    if (fd === undefined) return;
    try {
      if (hook.has(name)) throw Object.assign(new Error('refused by ' + REFUSE_ENV), { code: 'ENOPROTOOPT' });
      set(fd);
      active.push(name);
    } catch (err) {
      refused.push(name);
      log.warn(refusal, { err });
    }
  };
  socketOption('gro', udpFd, (fd) => addon.udpSetGro(fd, true), 'UDP_GRO refused: receiving one datagram per read');
  socketOption('gso', gsoFd, (fd) => addon.udpSetSegment(fd, 0), 'UDP_SEGMENT refused: sending one datagram per send');
  if (refused.includes('tso')) log.warn('TUN refused TSO offloads: reading one packet per read', { got });
  if (refused.includes('uso')) log.info('TUN refused USO offloads (Linux < 6.2?): UDP is read one datagram per read', { got });
  return { mode, active, refused, probeTunGso: true, testRefuseTunGso };
}
