/**
 * What a backend is: one table every other file asks, instead of comparing a backend's name.
 *
 *   backend  encapsulates  codec  default port  VTEP MAC  overhead (IPv4 / IPv6 underlay)
 *   vxlan    yes           vxlan  8472          required  outer IP + UDP 8 + VXLAN 8 + Ethernet 14 = 50 / 70
 *   udp      yes           udp    8285          -         outer IP + UDP 8                        = 28 / 48
 *   host-gw  no (routes)   -      -             -         0
 *
 * Default ports are flannel's (kernel vxlan 8472, flannel's udp backend 8285). A backend that
 * does not encapsulate (host-gw) routes every peer's pod subnet through the kernel, via the
 * peer's underlay address; src/control/host/direct-routes.ts decides and installs those routes.
 */
import type { Family } from './net.js';

/** The backends, by name (flannel's names). */
export const BACKEND_NAMES = ['vxlan', 'udp', 'host-gw'] as const;
/** A backend name. */
export type Backend = (typeof BACKEND_NAMES)[number];
/** Wire formats of the engines' codec (struct ul_codec_cfg mode). */
export type CodecMode = 'vxlan' | 'udp';

/** What a backend is. */
export interface BackendInfo {
  readonly name: Backend;
  /** Packets to peers are encapsulated (false: kernel routes only). */
  readonly encapsulates: boolean;
  /** The codec the engine runs; undefined when nothing is encapsulated. */
  readonly codec: CodecMode | undefined;
  /** Default underlay UDP port; undefined when nothing is sent over UDP. */
  readonly defaultPort: number | undefined;
  /** Peers (and this node) need a VTEP MAC. */
  readonly needsVtepMAC: boolean;
  /** Bytes of encapsulation after the outer IP header (UDP and what follows it). */
  readonly headerBytes: number;
}

/** The table. */
export const BACKENDS = {
  vxlan: { name: 'vxlan', encapsulates: true, codec: 'vxlan', defaultPort: 8472, needsVtepMAC: true, headerBytes: 8 + 8 + 14 },
  udp: { name: 'udp', encapsulates: true, codec: 'udp', defaultPort: 8285, needsVtepMAC: false, headerBytes: 8 },
  'host-gw': { name: 'host-gw', encapsulates: false, codec: undefined, defaultPort: undefined, needsVtepMAC: false, headerBytes: 0 },
} as const satisfies { readonly [B in Backend]: BackendInfo };

/** True when `v` names a backend. */
export function isBackend(v: unknown): v is Backend {
  return typeof v === 'string' && (BACKEND_NAMES as readonly string[]).includes(v);
}

/** The table row of `b`. */
export function backendInfo(b: Backend): BackendInfo {
  return BACKENDS[b];
}

/** "vxlan, udp or host-gw", for messages. */
export function backendList(conj = 'or'): string {
  return `${BACKEND_NAMES.slice(0, -1).join(', ')} ${conj} ${BACKEND_NAMES[BACKEND_NAMES.length - 1]}`;
}

/** Bytes of encapsulation added to every inner packet, by backend and underlay family (0 for host-gw). */
export function encapOverhead(backend: Backend, family: Family): number {
  const b = BACKENDS[backend];
  if (!b.encapsulates) return 0;
  return (family === 4 ? 20 : 40) + b.headerBytes;
}

/**
 * The largest inner packet that crosses the path between two nodes unfragmented: the smaller of
 * the two underlay MTUs minus the backend's overhead for the underlay family (a peer that
 * publishes none counts as having ours). Undefined when our own is unknown.
 */
export function pathMtu(backend: Backend, family: Family, localUnderlayMtu: number | undefined, peerUnderlayMtu?: number): number | undefined {
  if (localUnderlayMtu === undefined) return undefined;
  return Math.min(localUnderlayMtu, peerUnderlayMtu ?? localUnderlayMtu) - encapOverhead(backend, family);
}

/** Smallest TUN MTU accepted (IPv4 minimum reassembly size; IPv6 needs 1280). */
export const MIN_MTU = 576;
/** Largest TUN MTU accepted. */
export const MAX_MTU = 65535;
