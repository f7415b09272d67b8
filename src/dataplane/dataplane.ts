/**
 * openDataplane: bring up this node's side of the overlay and hand back a
 * Dataplane that the control plane feeds with peer sets.
 *
 * Setup order (each step registers its undo; a failure undoes them all in
 * reverse, so nothing is left half-configured):
 *   1. validate the options (pure)
 *   2. open and bind the underlay UDP socket (a dual-stack node: one per
 *      family, publicIP and publicIPv6, same port) — first, so "port in
 *      use" fails before any device exists
 *   3. open the TUN (virtio-net header on); EPERM -> "needs CAP_NET_ADMIN";
 *      offloads (offloads.ts): TSO/USO on the TUN, UDP_GRO on a native socket
 *   4. accept_local, and IPv6 on when a range is IPv6 (TUN_SYSCTLS), both
 *      through the caller's DataplaneHost (the agent's host seam); MTU + link up; each own subnet's network address
 *      as /32 (/128)
 *   5. a route for each cluster network through the TUN
 *   6. engine (native or js) with an empty FDB, started
 * The TUN is not persistent: closing its fd removes the device, its address
 * and its routes, which is also what happens if the process dies.
 */
import { existsSync, readFileSync } from 'node:fs';
import { type NativeAddon, loadAddon } from './addon.js';
import { allocCounters, clearSlot, readStats } from './counters.js';
import type { Engine, EngineKindImpl } from './engine.js';
import { type FdbDefaults, FdbTable, MAX_VNI, SlotAllocator, buildFdb } from './fdb.js';
import { jsEngine } from './js-engine.js';
import { OFFLOAD_MODES, applyOffloads, applyQueueOffloads, type OffloadState } from './offloads.js';
import { BACKENDS, MAX_MTU, MIN_MTU, backendList, isBackend } from './backends.js';
import { type Cidr, type Family, canonicalIP, cidrContains, familyBits, parseCidr, parseIP, parseMac, vtepMacProblem } from './net.js';
import { nativeEngine } from './native-engine.js';
import { socketInode, udpDrops } from './socket-drops.js';
import { type Dataplane, type DataplaneHost, type DataplaneOptions, type DataplaneStats, type Peer, MAX_THREADS } from './types.js';
import { UserlayError, errorCode, parseAs, usageError, wrapSystemError } from '../errors.js';
import type { Logger } from '../log.js';

/**
 * Peers one data plane holds by default: the counters block has a slot for each (160 bytes, in
 * memory the kernel hands out only when a slot is first used), so the cap costs nothing until
 * the cluster is that large. 65,536 nodes is far past the largest Kubernetes clusters.
 */
export const MAX_PEERS = 65536;

interface Checked {
  /** Families of the underlay sockets: publicIP's, then publicIPv6's. */
  families: Family[];
  own: Cidr[];
  networks: Cidr[];
}

function check(field: string, ok: boolean, message: string): void {
  if (!ok) throw usageError(field, message);
}

/** Validate DataplaneOptions; throws a usage error naming the option. */
export function validateDataplaneOptions(o: DataplaneOptions): Checked {
  check('backend', isBackend(o.backend), `"${o.backend}" is not ${backendList()}`);
  const backend = BACKENDS[o.backend];
  check('engine', o.engine === 'native' || o.engine === 'js', `"${o.engine}" is not native or js`);
  check('offloads', o.offloads === undefined || OFFLOAD_MODES.includes(o.offloads), `"${o.offloads}" is not ${OFFLOAD_MODES.join(' or ')}`);
  check('tunName', typeof o.tunName === 'string' && o.tunName.length <= 15 && !/[\s/:]/.test(o.tunName),
    `"${o.tunName}" is not a valid interface name (at most 15 characters, no spaces, "/" or ":")`);
  check('mtu', Number.isInteger(o.mtu) && o.mtu >= MIN_MTU && o.mtu <= MAX_MTU, `${o.mtu} is outside ${MIN_MTU}..${MAX_MTU}`);
  const family = parseAs('publicIP', () => parseIP(o.publicIP)).family;
  const families: Family[] = [family];
  if (o.publicIPv6 !== undefined) {
    const v6 = parseAs('publicIPv6', () => parseIP(o.publicIPv6!));
    check('publicIPv6', v6.family === 6, `${o.publicIPv6} is not an IPv6 address`);
    check('publicIPv6', family === 4, `needs an IPv4 publicIP (${o.publicIP} is IPv6): a dual-stack node has one underlay address per family`);
    families.push(6);
  }
  const minPort = backend.encapsulates ? 1 : 0;
  check('port', Number.isInteger(o.port) && o.port >= minPort && o.port <= 65535, `${o.port} is outside ${minPort}..65535`);
  check('vni', Number.isInteger(o.vni) && o.vni >= 0 && o.vni <= MAX_VNI, `${o.vni} is outside 0..${MAX_VNI}`);
  if (backend.needsVtepMAC) parseAs('vtepMAC', () => parseMac(o.vtepMAC));
  const networks = o.networks.map((n) => parseAs('networks', () => parseCidr(n)));
  check('networks', networks.length > 0, 'at least one cluster network is required');
  const own = o.ownSubnets.map((s) => parseAs('ownSubnets', () => parseCidr(s)));
  check('ownSubnets', own.length > 0, 'at least one own subnet is required');
  for (const n of [...networks, ...own]) {
    for (const ip of [o.publicIP, ...(o.publicIPv6 !== undefined ? [o.publicIPv6] : [])]) {
      check(own.includes(n) ? 'ownSubnets' : 'networks', !cidrContains(n, ip),
        `${n.text} contains the underlay address ${ip}: the agent's own datagrams would route into its TUN`);
    }
  }
  if (backend.needsVtepMAC) {
    const problem = vtepMacProblem(o.vtepMAC);
    check('vtepMAC', problem === undefined, `${o.vtepMAC} ${problem ?? ''}: a VTEP needs a unicast address`);
  }
  for (const s of own) {
    check('ownSubnets', networks.some((n) => cidrContains(n, s)), `${s.text} is not inside any cluster network (${networks.map((n) => n.text).join(', ')})`);
    check('mtu', s.family === 4 || o.mtu >= 1280, `${o.mtu} is below 1280, the IPv6 minimum`);
  }
  const maxPeers = o.maxPeers ?? MAX_PEERS;
  check('maxPeers', Number.isInteger(maxPeers) && maxPeers >= 1 && maxPeers <= 1 << 20, `${maxPeers} is outside 1..${1 << 20}`);
  const threads = o.threads ?? 1;
  check('threads', Number.isInteger(threads) && threads >= 1 && threads <= MAX_THREADS, `${threads} is outside 1..${MAX_THREADS}`);
  check('threads', threads === 1 || o.engine === 'native',
    `${threads} needs --engine native: the js engine reads one TUN queue on the JS thread`);
  return { families, own, networks };
}

/** Undo steps, run in reverse; each one's failure is logged, not thrown. */
class Rollback {
  private readonly steps: Array<{ what: string; undo: () => unknown }> = [];

  constructor(private readonly log: Logger) {}

  push(what: string, undo: () => unknown): void {
    this.steps.push({ what, undo });
  }

  async run(): Promise<void> {
    for (const step of this.steps.splice(0).reverse()) {
      try {
        await step.undo();
      } catch (err) {
        this.log.debug('undo step failed', { step: step.what, err });
      }
    }
  }
}

const privilegeHint = 'needs CAP_NET_ADMIN / run as root';

/** Turn an addon/system error into a UserlayError; addon messages already say what was done ("add route ..."). */
function systemError(context: string, err: unknown, hint?: string): UserlayError {
  const code = errorCode(err) ?? 'EUNKNOWN';
  const fromAddon = err instanceof Error && typeof (err as { code?: unknown }).code === 'string' && err.message !== '';
  const message = fromAddon ? err.message : `${context}: ${err instanceof Error ? err.message : String(err)}`;
  return new UserlayError(code, hint ? `${message} (${hint})` : message, { cause: err });
}

function system<T>(context: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof UserlayError) throw err; // already says what and why
    const code = errorCode(err);
    throw systemError(context, err, code === 'EPERM' || code === 'EACCES' ? privilegeHint : undefined);
  }
}

/**
 * The TUN's two sysctls, through the caller's DataplaneHost; a failure is logged with what it
 * costs and the data plane goes on.
 * - accept_local = 1: ICMP errors for unroutable destinations come out of the TUN with the TUN's
 *   own address as source, and the kernel drops packets arriving with a local source address
 *   ("martian source") unless accept_local is set on the device.
 * - disable_ipv6 = 0: a new device inherits net.ipv6.conf.default.disable_ipv6; on a host where
 *   that is 1 the TUN would refuse its IPv6 address (EACCES, which reads like a missing
 *   privilege). IPv6 goes on for the TUN alone, and the address step says what is wrong if not.
 */
const TUN_SYSCTLS = {
  allowLocalSource: { knob: (tun: string) => `net/ipv4/conf/${tun}/accept_local`, value: '1',
    cost: 'cannot set accept_local: ICMP unreachable errors will not reach local senders' },
  enableIPv6: { knob: (tun: string) => `net/ipv6/conf/${tun}/disable_ipv6`, value: '0',
    cost: 'cannot enable IPv6 on the TUN: its IPv6 address may be refused' },
} as const;

function setTunSysctl(host: DataplaneHost, tun: string, which: keyof typeof TUN_SYSCTLS, log: Logger): void {
  const { knob, value, cost } = TUN_SYSCTLS[which];
  try {
    host.setSysctl(knob(tun), value);
  } catch (err) {
    log.warn(cost, { knob: knob(tun), err });
  }
}

/**
 * Bring up the data plane (see the file comment for the order). Rejects with
 * a UserlayError: EUSAGE for bad options, EADDRINUSE for a taken port, EPERM /
 * EACCES without privileges, ENOADDON when the addon is not built. `host` sets the TUN's sysctls
 * (the agent's src/control/host/sysctl.ts).
 */
export async function openDataplane(opts: DataplaneOptions, log: Logger, addonArg: NativeAddon | undefined, host: DataplaneHost): Promise<Dataplane> {
  const checked = validateDataplaneOptions(opts);
  const addon = addonArg ?? loadAddon();
  const kind = (opts.engine === 'js' ? jsEngine : nativeEngine) as EngineKindImpl<unknown>;
  const rollback = new Rollback(log);
  try {
    const threads = opts.threads ?? 1;
    // one socket set per underlay family, on the same port
    const sockets: unknown[] = [];
    let socketOwned = false;
    for (const address of [opts.publicIP, ...(opts.publicIPv6 !== undefined ? [opts.publicIPv6] : [])]) {
      const socket = await kind.openSocket(addon, address, opts.port, threads).catch((err: unknown) => {
        const code = errorCode(err);
        throw systemError(`bind UDP ${address} port ${opts.port}`, err,
          code === 'EADDRINUSE' ? 'port in use: is another agent or flanneld running?'
            : code === 'EADDRNOTAVAIL' ? 'the address is not on any local interface' : undefined);
      });
      sockets.push(socket);
      rollback.push(`close UDP socket ${address}`, () => (socketOwned ? undefined : kind.closeSocket(addon, socket)));
    }

    const tun = system(`open /dev/net/tun for ${opts.tunName || '(auto)'}`, () => {
      try {
        // one thread pair: a single-queue TUN, exactly as before --threads
        return threads > 1 ? addon.tunOpenQueue(opts.tunName, true) : addon.tunOpen(opts.tunName, true);
      } catch (err) {
        const kind = errorCode(err) === 'EINVAL' ? existingLinkKind(opts.tunName) : undefined;
        if (kind !== undefined) throw usageError('tunName', `${opts.tunName} exists and is not a TUN device (it is a ${kind} link); choose another name`, err);
        throw err;
      }
    });
    rollback.push(`close TUN ${tun.name}`, () => addon.close(tun.fd));
    const tunQueueFds: number[] = [];
    while (tunQueueFds.length < threads - 1) {
      const q = system(`open queue ${tunQueueFds.length + 1} of TUN ${tun.name}`, () => addon.tunOpenQueue(tun.name, true));
      tunQueueFds.push(q.fd);
      rollback.push(`close queue ${tunQueueFds.length} of TUN ${tun.name}`, () => addon.close(q.fd));
    }
    const offloads = system(`set offloads on ${tun.name}`, () => {
      const [first, ...more] = sockets;
      const state = applyOffloads(addon, tun.fd, kind.nativeFd(first), opts.offloads ?? 'auto', log, process.env, kind.gsoFd(first));
      applyQueueOffloads(addon, state, tunQueueFds, kind.queueFds(first));
      // the other family's sockets get what the first got (UDP_GRO is per socket)
      for (const s of more) applyQueueOffloads(addon, state, [], [kind.nativeFd(s), ...kind.queueFds(s)].filter((fd) => fd !== undefined));
      return state;
    });
    setTunSysctl(host, tun.name, 'allowLocalSource', log);
    if ([...checked.own, ...checked.networks].some((c) => c.family === 6)) setTunSysctl(host, tun.name, 'enableIPv6', log);
    system(`set MTU ${opts.mtu} and up on ${tun.name}`, () => addon.linkSet(tun.name, opts.mtu, true));
    for (const s of checked.own) {
      system(`add address ${s.addr}/${familyBits(s.family)} to ${tun.name}`, () => addon.addrAdd(tun.name, s.addr, familyBits(s.family)));
    }
    const routes: Cidr[] = [];
    for (const n of checked.networks) {
      system(`add route ${n.text} dev ${tun.name}`, () => {
        try {
          addon.routeAdd(tun.name, n.addr, n.prefixLen);
        } catch (err) {
          if (errorCode(err) !== 'EEXIST') throw err;
          const dev = routeDevice(addon, n);
          throw new UserlayError('EEXIST', `networks: a route for ${n.text} exists already${dev ? ` (dev ${dev})` : ''}; `
            + 'userlay does not take over routes it did not add: remove it, or stop the agent that owns it', { cause: err, field: 'networks' });
        }
      });
      routes.push(n);
      rollback.push(`delete route ${n.text}`, () => addon.routeDel(tun.name, n.addr, n.prefixLen));
    }

    const maxSlot = opts.maxPeers ?? MAX_PEERS;
    const counters = allocCounters(maxSlot);
    const icmpSrc = (family: Family): string | undefined => checked.own.find((s) => s.family === family)?.addr;
    const icmpSrc4 = icmpSrc(4);
    const icmpSrc6 = icmpSrc(6);
    const engine = kind.create({
      addon, tunFd: tun.fd, counters, maxSlot, log,
      ...(tunQueueFds.length > 0 ? { tunQueueFds } : {}),
      // a backend without a codec (host-gw) runs the udp one with an empty FDB: packets that
      // reach the TUN are unroutable, counted and answered with ICMP destination unreachable
      codec: { mode: BACKENDS[opts.backend].codec ?? 'udp', vni: opts.vni, mac: BACKENDS[opts.backend].needsVtepMAC ? opts.vtepMAC : '00:00:00:00:00:00' },
      ...(offloads.active.includes('gro') ? { udpGro: true } : {}),
      ...(offloads.active.includes('gso') ? { udpGso: true } : {}),
      ...(offloads.probeTunGso ? { probeTunGso: 1 as const } : {}),
      ...(offloads.testRefuseTunGso ? { testRefuseTunGso: 1 as const } : {}),
      ...(icmpSrc4 ? { icmpSrc4 } : {}),
      ...(icmpSrc6 ? { icmpSrc6 } : {}),
    }, sockets);
    socketOwned = true;
    rollback.push('close engine', () => engine.close());
    const sendOnly = new Set(sockets.flatMap((s) => kind.sendOnlyFds(s)).map(socketInode).filter((i) => i !== undefined));
    const dp = new DataplaneImpl(opts, tun.name, tun.fd, checked, addon, engine, counters, maxSlot, routes, offloads, log, tunQueueFds, sendOnly);
    dp.setPeers([]);
    engine.start();
    log.info('dataplane up', { tun: tun.name, mtu: opts.mtu, engine: opts.engine, backend: opts.backend, publicIP: opts.publicIP, ...(opts.publicIPv6 !== undefined ? { publicIPv6: opts.publicIPv6 } : {}), port: opts.port, offloads: offloads.active, threads });
    return dp;
  } catch (err) {
    await rollback.run();
    if (err instanceof UserlayError) throw err;
    throw wrapSystemError('open dataplane', err);
  }
}

/** What buildFdb checks peers against: our own side of the overlay. */
export function fdbDefaults(o: DataplaneOptions, checked: { families: readonly Family[]; own: readonly Cidr[]; networks: readonly Cidr[] }): FdbDefaults {
  return {
    backend: o.backend, port: o.port, vni: o.vni, underlayFamilies: checked.families,
    ownSubnets: checked.own.map((c) => c.text), networks: checked.networks.map((c) => c.text), ownPublicIP: o.publicIP,
    ...(o.underlayMtu !== undefined ? { underlayMtu: o.underlayMtu } : {}),
    ...(o.publicIPv6 !== undefined ? { ownPublicIPv6: o.publicIPv6 } : {}),
    ...(BACKENDS[o.backend].needsVtepMAC ? { ownVtepMAC: o.vtepMAC } : {}),
  };
}

/** The kind of an existing link that is not a TUN ("veth", "bridge", ...; "ether" when unknown), or undefined. */
function existingLinkKind(name: string): string | undefined {
  const dir = `/sys/class/net/${name}`;
  if (!existsSync(dir) || existsSync(`${dir}/tun_flags`)) return undefined;
  try {
    const uevent = readFileSync(`${dir}/uevent`, 'utf8');
    return /^DEVTYPE=(.+)$/m.exec(uevent)?.[1] ?? 'ether';
  } catch {
    return 'ether';
  }
}

/** The device of the main-table route for exactly `c` (a netlink route dump), if any. */
function routeDevice(addon: NativeAddon, c: Cidr): string | undefined {
  try {
    const route = addon.routeList(c.family, null, -1).find((r) => r.prefixLen === c.prefixLen && canonicalIP(r.dst) === c.addr);
    return route === undefined ? undefined : addon.linkName(route.ifindex) ?? undefined;
  } catch {
    // no dump: the message just names no device
    return undefined;
  }
}

class DataplaneImpl implements Dataplane {
  private readonly slots: SlotAllocator;
  private table: FdbTable;
  private closing: Promise<void> | undefined;
  private tunMtu: number;

  constructor(
    readonly options: DataplaneOptions,
    readonly tunName: string,
    private readonly tunFd: number,
    private readonly checked: Checked,
    private readonly addon: NativeAddon,
    private readonly engine: Engine,
    private readonly counters: BigUint64Array,
    maxSlot: number,
    private readonly routes: readonly Cidr[],
    private readonly offloads: OffloadState,
    private readonly log: Logger,
    private readonly tunQueueFds: readonly number[],
    /** Inodes of the engine's send-only sockets (socket-drops.ts). */
    private readonly sendOnlyInodes: ReadonlySet<string>,
  ) {
    this.slots = new SlotAllocator(maxSlot);
    this.table = new FdbTable([], [], [], []);
    this.tunMtu = options.mtu;
  }

  setPeers(peers: readonly Peer[]): void {
    if (this.closing) throw new UserlayError('ECLOSED', 'setPeers on a closed data plane');
    const o = this.options;
    // build against a copy of the allocator so a rejected snapshot changes nothing
    const trial = this.slots.clone();
    const table = buildFdb(peers, fdbDefaults(o, this.checked), trial);
    for (const slot of table.freshSlots) clearSlot(this.counters, slot);
    try {
      this.engine.setFdb(table);
    } catch (err) {
      throw new UserlayError('EFDB', `install FDB: ${(err as Error).message}`, { cause: err });
    }
    // the old table is gone: nothing counts into a recycled slot for its former peer any more
    for (const slot of table.recycledSlots) clearSlot(this.counters, slot);
    this.slots.adopt(trial);
    this.table = table;
    this.log.debug('fdb installed', { peers: table.peers.length, routes: table.routes.length });
  }

  peers(): readonly Peer[] {
    return this.table.peerList();
  }

  mtu(): number {
    return this.tunMtu;
  }

  setMtu(mtu: number): void {
    if (this.closing) throw new UserlayError('ECLOSED', 'setMtu on a closed data plane');
    const v6 = this.checked.own.some((c) => c.family === 6);
    if (!Number.isInteger(mtu) || mtu < (v6 ? 1280 : MIN_MTU) || mtu > MAX_MTU) {
      throw new UserlayError('EUSAGE', `TUN MTU ${mtu} is outside ${v6 ? 1280 : MIN_MTU}..${MAX_MTU}`);
    }
    if (mtu === this.tunMtu) return;
    system(`set MTU ${mtu} on ${this.tunName}`, () => this.addon.linkSet(this.tunName, mtu, true));
    this.log.info('TUN MTU changed', { tun: this.tunName, from: this.tunMtu, to: mtu });
    this.tunMtu = mtu;
  }

  stats(): DataplaneStats {
    const { mode, active, refused } = this.offloads;
    const drops = udpDrops(this.options.port, this.sendOnlyInodes);
    return {
      ...readStats(this.counters, this.table.slotNames(), this.table.peers.length, this.table.routes.length),
      ...(drops.receive !== undefined ? { socketDrops: drops.receive } : {}),
      ...(drops.send !== undefined ? { sendSocketDrops: drops.send } : {}),
      offloads: { mode, active, refused, counters: this.engine.offloadStats() },
    };
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.engine.close();
      for (const n of this.routes) {
        try {
          this.addon.routeDel(this.tunName, n.addr, n.prefixLen);
        } catch (err) {
          this.log.debug('route already gone', { route: n.text, err });
        }
      }
      for (const fd of [this.tunFd, ...this.tunQueueFds]) this.addon.close(fd);
      this.log.info('dataplane closed', { tun: this.tunName });
    })();
    return this.closing;
  }
}
