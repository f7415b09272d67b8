/**
 * flannel's net-conf.json, as kube-flannel-cfg mounts it at /etc/kube-flannel/net-conf.json:
 *
 *   { "Network": "198.19.0.0/16", "IPv6Network": "2001:2:0:100::/56",
 *     "EnableIPv4": true, "EnableIPv6": false, "IPMasq": false,
 *     "Backend": { "Type": "vxlan", "VNI": 1, "Port": 8472, "MTU": 1450, "DirectRouting": false } }

 * Backend.Type is one of src/dataplane/backends.ts (vxlan, udp, host-gw); DirectRouting (flannel's
 * name and meaning) routes peers on the same underlay segment by the kernel, and is accepted
 * only with an encapsulating backend (host-gw routes every peer already).
 *
 * Only the fields userlay uses are read; unknown top-level keys (SubnetLen, SubnetMin...)
 * are accepted and ignored, as flannel's kube subnet manager ignores them too (the
 * controller-manager allocates podCIDRs). Command-line flags override the file.
 * Every error names the field: "net-conf Backend.VNI: 16777216 is out of range 1-16777215".
 */
import { readFile } from 'node:fs/promises';
import { UserlayError, usageError, wrapSystemError } from '../errors.js';
import { BACKENDS, backendList, isBackend, type Backend } from '../dataplane/backends.js';
import { parseCidr, type Cidr, type Family } from '../dataplane/net.js';


/** The validated network configuration. */
export interface NetConf {
  /** Cluster networks by family, canonical CIDR; only enabled families are present. */
  readonly networks: Partial<Record<Family, string>>;
  readonly backend: Backend;
  /** VXLAN network identifier, 1..16777215 (ignored by the udp backend). */
  readonly vni: number;
  /** Underlay UDP port. */
  readonly port: number;
  /** TUN MTU in bytes; undefined means "derive from the underlay interface". */
  readonly mtu: number | undefined;
  /** Backend.DirectRouting: kernel routes to on-link peers, the overlay for the others (buildNetConf always sets it). */
  readonly directRouting?: boolean;
  /** `IPMasq` (userlay's key; flannel has only the --ip-masq flag): present only when the file sets it. */
  readonly ipMasq?: boolean;
}

/** Flag values that override the file (undefined = not given). */
export interface NetConfOverrides {
  backend?: string | undefined;
  vni?: number | undefined;
  port?: number | undefined;
  mtu?: number | undefined;
  /** --direct-routing (true overrides the file). */
  directRouting?: boolean | undefined;
  /** --network: the IPv4 (or IPv6) cluster network when no file gives one. */
  network?: string | undefined;
}

function fieldError(field: string, message: string): UserlayError {
  return usageError(`net-conf ${field}`, message);
}

function checkInt(field: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw fieldError(field, `${JSON.stringify(v)} is not an integer`);
  if (v < min || v > max) throw fieldError(field, `${v} is out of range ${min}-${max}`);
  return v;
}

function checkBackend(field: string, v: unknown): Backend {
  if (isBackend(v)) return v;
  throw fieldError(field, `${JSON.stringify(v)} is not a supported backend (${backendList()})`);
}

/** A cluster network CIDR (no host bits); errors name `field` ("net-conf Network", "--network"). */
function parseNetwork(field: string, v: string): Cidr {
  let c;
  try {
    c = parseCidr(v);
  } catch (err) {
    throw usageError(field, (err as Error).message, err);
  }
  if (c.hostBits) throw usageError(field, `${v} has host bits set (did you mean ${c.text}?)`);
  return c;
}

function checkNetwork(field: string, v: unknown, family: Family): string {
  if (typeof v !== 'string') throw fieldError(field, `${JSON.stringify(v)} is not a CIDR string`);
  const c = parseNetwork(`net-conf ${field}`, v);
  if (c.family !== family) throw fieldError(field, `${v} is not an IPv${family} network`);
  return c.text;
}

function flagBackend(v: string): Backend {
  if (isBackend(v)) return v;
  throw usageError('--backend', `"${v}" is not ${backendList()}`);
}

function checkBool(field: string, v: unknown): boolean {
  if (typeof v !== 'boolean') throw fieldError(field, `${JSON.stringify(v)} is not true or false`);
  return v;
}

/**
 * Validate a parsed net-conf object plus flag overrides. Throws usageError naming the
 * field ("net-conf Network: ...", "--vni: ...").
 */
export function buildNetConf(raw: unknown, overrides: NetConfOverrides = {}): NetConf {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw fieldError('(top level)', 'must be a JSON object');
  const o = raw as Record<string, unknown>;
  const b = o['Backend'] ?? {};
  if (b === null || typeof b !== 'object' || Array.isArray(b)) throw fieldError('Backend', 'must be a JSON object');
  const bo = b as Record<string, unknown>;

  const enable: Record<Family, boolean> = {
    4: o['EnableIPv4'] === undefined ? true : checkBool('EnableIPv4', o['EnableIPv4']),
    6: o['EnableIPv6'] === undefined ? false : checkBool('EnableIPv6', o['EnableIPv6']),
  };
  const keys: Record<Family, string> = { 4: 'Network', 6: 'IPv6Network' };
  const networks: Partial<Record<Family, string>> = {};
  if (overrides.network !== undefined) {
    const c = parseNetwork('--network', overrides.network);
    networks[c.family] = c.text;
    enable[c.family] = true;
  }
  for (const family of [4, 6] as const) {
    if (!enable[family] || networks[family] !== undefined) continue;
    const v = o[keys[family]];
    if (v === undefined) throw fieldError(keys[family], `is required when EnableIPv${family} is true`);
    networks[family] = checkNetwork(keys[family], v, family);
  }
  if (networks[4] === undefined && networks[6] === undefined) throw fieldError('EnableIPv4', 'no address family enabled');

  const backend = overrides.backend !== undefined ? flagBackend(overrides.backend)
    : bo['Type'] === undefined ? 'vxlan' : checkBackend('Backend.Type', bo['Type']);
  const rangeFlag = (flag: string, v: number, min: number, max: number): number => {
    if (v < min || v > max) throw usageError(flag, `${v} is out of range ${min}-${max}`);
    return v;
  };
  const vni = overrides.vni !== undefined ? rangeFlag('--vni', overrides.vni, 1, 0xffffff)
    : bo['VNI'] === undefined ? 1 : checkInt('Backend.VNI', bo['VNI'], 1, 0xffffff);
  // flannel's Port 0 means "the default port".
  const filePort = bo['Port'] === undefined ? 0 : checkInt('Backend.Port', bo['Port'], 0, 65535);
  const port = overrides.port !== undefined ? rangeFlag('--port', overrides.port, 1, 65535)
    : filePort === 0 ? BACKENDS[backend].defaultPort ?? 0 : filePort;
  const mtu = overrides.mtu !== undefined ? rangeFlag('--mtu', overrides.mtu, 576, 65535)
    : bo['MTU'] === undefined ? undefined : checkInt('Backend.MTU', bo['MTU'], 576, 65535);
  const ipMasq = o['IPMasq'] === undefined ? undefined : checkBool('IPMasq', o['IPMasq']);
  const directRouting = overrides.directRouting === true
    || (bo['DirectRouting'] === undefined ? false : checkBool('Backend.DirectRouting', bo['DirectRouting']));
  if (directRouting && !BACKENDS[backend].encapsulates) {
    throw overrides.directRouting === true ? usageError('--direct-routing', `${backend} routes every peer directly already`)
      : fieldError('Backend.DirectRouting', `${backend} routes every peer directly already; DirectRouting is for encapsulating backends`);
  }
  return { networks, backend, vni, port, mtu, directRouting, ...(ipMasq === undefined ? {} : { ipMasq }) };
}

/** Parse net-conf JSON text (`source` names the file in errors). */
export function parseNetConf(text: string, source: string, overrides: NetConfOverrides = {}): NetConf {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw usageError('--net-conf', `${source} is not valid JSON: ${(err as Error).message}`, err);
  }
  return buildNetConf(raw, overrides);
}

/**
 * Read and validate the net-conf file; without a file, build the config from the flags
 * alone (then --network is required).
 */
export async function loadNetConf(path: string | undefined, overrides: NetConfOverrides): Promise<NetConf> {
  if (path === undefined) {
    if (overrides.network === undefined) throw usageError('--net-conf', 'give --net-conf FILE or --network CIDR');
    return buildNetConf({ EnableIPv4: false }, overrides);
  }
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw usageError('--net-conf', wrapSystemError(`read ${path}`, err).message, err);
  }
  return parseNetConf(text, path, overrides);
}

/** The enabled cluster networks as a list (IPv4 first). */
export function networkList(conf: NetConf): string[] {
  return ([4, 6] as const).flatMap((f) => (conf.networks[f] ? [conf.networks[f]!] : []));
}
