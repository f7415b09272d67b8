/**
 * The contract between the control plane and the data plane.
 *
 * Control (static file, Kubernetes) hands the data plane whole peer sets; the
 * data plane turns them into an immutable FDB and swaps it in atomically
 * (flannel's Backend contract: lease events in, data-plane state out).
 */
import type { OffloadCounters, OffloadMode, OffloadState } from './offloads.js';
import type { Backend } from './backends.js';

/** A backend name; what it means is in backends.ts (BACKENDS). */
export type { Backend } from './backends.js';
/** Which forwarding engine runs the hot path. */
export type EngineKind = 'native' | 'js';

/** A remote node as the data plane sees it. */
export interface Peer {
  /** Stable name (the Node name); keys per-peer counters across FDB swaps. */
  readonly name: string;
  /** Pod subnets behind this peer, canonical CIDR strings ("198.19.1.0/24", "2001:2:0:101::/64"). */
  readonly subnets: readonly string[];
  /** Underlay address the peer receives encapsulated traffic on. */
  readonly publicIP: string;
  /** Peer VTEP MAC, "aa:bb:cc:dd:ee:ff" (required when the backend needsVtepMAC). */
  readonly vtepMAC?: string;
  /**
   * A dual-stack peer's IPv6 underlay address (publicIP is then its IPv4 one), as flannel's
   * public-ipv6: its IPv6 subnets travel over the IPv6 underlay to this address, its IPv4
   * subnets over IPv4 to publicIP, when this node has an underlay socket of that family.
   */
  readonly publicIPv6?: string;
  /** The VTEP MAC that goes with publicIPv6 (flannel's backend-v6-data; flannel-v6.1 has its own). */
  readonly vtepMACv6?: string;
  /** Underlay UDP port; defaults to the data plane's own port. */
  readonly port?: number;
  /** VNI to send with; defaults to the data plane's own VNI. */
  readonly vni?: number;
  /**
   * The MTU of the peer's underlay interface as it publishes it (bytes, already checked by the
   * control plane, src/control/path-mtu.ts); undefined counts as ours. With ours it gives the
   * path MTU the engines enforce for this peer (backends.ts pathMtu).
   */
  readonly underlayMtu?: number;
  /**
   * The peer takes inner TCP/UDP checksums left partial (a userlay node says so: lease annotation
   * userlay.io/partial-csum, a peers-file entry's partialCsum). The native engine then sends it
   * TSO segments without summing their payload, as the kernel's vxlan does on veth; the outer
   * UDP checksum covers them. Never set for a kernel vxlan or flannel node: it gets complete
   * checksums (native/src/csum.c, "Partial checksums").
   */
  readonly partialCsum?: boolean;
}

/** Everything needed to bring up the data plane on this node. */
export interface DataplaneOptions {
  readonly backend: Backend;
  readonly engine: EngineKind;
  /** Segmentation offloads (src/dataplane/offloads.ts); default 'auto'. */
  readonly offloads?: OffloadMode;
  /** TUN device name (IFNAMSIZ - 1 chars at most). */
  readonly tunName: string;
  /** TUN MTU in bytes (already computed from the underlay MTU). */
  readonly mtu: number;
  /**
   * MTU of our underlay interface, bytes: with each peer's it gives the per-peer path MTU the
   * engines enforce (larger packets that may not fragment get ICMP too big). Undefined: unknown,
   * no per-peer limit.
   */
  readonly underlayMtu?: number;
  /** Own underlay address; the UDP socket binds to it. */
  readonly publicIP: string;
  /**
   * Own IPv6 underlay address of a dual-stack node (publicIP is then its IPv4 one): a second
   * UDP socket on the same port binds to it, and peers' IPv6 subnets travel over it.
   */
  readonly publicIPv6?: string;
  /** UDP port to bind and, by default, to send to (0 for a backend that does not encapsulate: an ephemeral port, nothing is sent). */
  readonly port: number;
  /** Own VNI (vxlan). */
  readonly vni: number;
  /** Own VTEP MAC (vxlan), "aa:bb:cc:dd:ee:ff". */
  readonly vtepMAC: string;
  /** Own pod subnets (CIDR); the TUN gets each subnet's network address /32 (/128). */
  readonly ownSubnets: readonly string[];
  /** Cluster networks (CIDR) routed through the TUN. */
  readonly networks: readonly string[];
  /** Highest number of peers the counters must hold (default MAX_PEERS, 65,536). */
  readonly maxPeers?: number;
  /**
   * Forwarding thread pairs of the native engine, 1..MAX_THREADS (default
   * 1): a multi-queue TUN with one tx thread per queue and a SO_REUSEPORT
   * group of receive sockets with one rx thread each. The js engine has one
   * queue: more than 1 with it is a usage error.
   */
  readonly threads?: number;
}

/**
 * The host knobs the data plane sets besides its own devices and routes: sysctls. The agent hands
 * in the real one (src/control/host/sysctl.ts); tests a fake.
 */
export interface DataplaneHost {
  /** Write `value` to /proc/sys/<path> (e.g. "net/ipv4/conf/userlay0/accept_local"); throws on failure. */
  setSysctl(path: string, value: string): void;
}

/** The most thread pairs the native engine runs (UL_THREADS_MAX). */
export const MAX_THREADS = 8;

/** Per-direction counters for one peer or for the totals. */
export interface CounterSet {
  txPackets: bigint;
  txBytes: bigint;
  rxPackets: bigint;
  rxBytes: bigint;
  /** Drops keyed by reason name ("no_route", "spoofed", ...); zero entries omitted. */
  drops: Record<string, bigint>;
}

/** A stats snapshot. */
export interface DataplaneStats {
  readonly total: CounterSet;
  readonly peers: Record<string, CounterSet>;
  readonly fdbPeers: number;
  readonly fdbRoutes: number;
  /**
   * Datagrams the kernel dropped at the receive sockets before the engine saw them (a full
   * receive queue, mostly; one per buffer, so a UDP GRO buffer counts once), since they were
   * opened (src/dataplane/socket-drops.ts). Absent where it cannot be read.
   */
  readonly socketDrops?: bigint;
  /**
   * Datagrams the kernel dropped at the send-only sockets (the outer source ports), which
   * take nothing in: unsolicited traffic, such as a flood aimed at a source port. Absent where
   * it cannot be read.
   */
  readonly sendSocketDrops?: bigint;
  /** Offloads in force and refused at setup, and what the engine counted since. */
  readonly offloads?: Pick<OffloadState, 'mode' | 'active' | 'refused'> & { readonly counters: OffloadCounters };
}

/** A running data plane. Owns the TUN, the UDP socket, routes and threads. */
export interface Dataplane {
  readonly options: DataplaneOptions;
  /** Actual TUN name. */
  readonly tunName: string;
  /**
   * Replace the whole peer set atomically. Throws UserlayError (code "EFDB")
   * on an invalid set and leaves the previous FDB in force.
   */
  setPeers(peers: readonly Peer[]): void;
  /** Current peer set as last applied. */
  peers(): readonly Peer[];
  /** The TUN's MTU now (options.mtu until setMtu changes it). */
  mtu(): number;
  /** Set the TUN's MTU (bytes, checked like options.mtu); pods keep theirs (see README, MTU). */
  setMtu(mtu: number): void;
  /** Counters: the engines' from shared memory, the kernel's socket drops from /proc. */
  stats(): DataplaneStats;
  /** Stop threads, remove routes and the TUN, close every fd. Idempotent. */
  close(): Promise<void>;
}
