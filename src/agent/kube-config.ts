/**
 * Flags and validated configuration of `userlay agent` in kube mode. Everything here is
 * checked before anything is configured, so bad input is one line naming the field, exit 2.
 */
import { usageError } from '../errors.js';
import type { LogLevel } from '../log.js';
import type { EngineKind } from '../dataplane/types.js';
import type { OffloadMode } from '../dataplane/offloads.js';
import { loadNetConf, type NetConf } from '../control/net-conf.js';
import { DEFAULT_SUBNET_FILE } from '../control/subnet-env.js';
import { DEFAULT_STATE_DIR } from '../control/snapshot-store.js';
import { DEFAULT_ANNOTATION_PREFIX } from '../control/kube/lease.js';
import { resolveNodeName } from '../control/kube/identity.js';
import { cniFlags, cniFlagSpecs, logLevelFlag, offloadsFlag, offloadsFlagSpec, statusAddrFlag, threadsFlag, threadsFlagSpec, tunNameFlag, type CniFlags } from './agent-flags.js';
import { type FlagSpec, flagInt, flagList, flagOneOf, flagString, parseFlags } from './flags.js';

/** Flags of kube mode. */
export const kubeAgentFlags: readonly FlagSpec[] = [
  { name: 'kubeconfig', kind: 'string', help: 'kubeconfig file (default: in-cluster service account)' },
  { name: 'node-name', kind: 'string', help: 'this Node\'s name (default: $NODE_NAME)' },
  { name: 'net-conf', kind: 'string', help: 'flannel-style net-conf.json (Network, IPv6Network, EnableIPv4/6, Backend)' },
  { name: 'network', kind: 'string', help: 'cluster network CIDR when no --net-conf is given' },
  { name: 'backend', kind: 'string', help: 'override Backend.Type: vxlan, udp or host-gw' },
  { name: 'direct-routing', kind: 'bool', help: 'Backend.DirectRouting: route on-link peers by the kernel, encapsulate the others' },
  { name: 'vni', kind: 'int', help: 'override Backend.VNI' },
  { name: 'port', kind: 'int', help: 'override Backend.Port (default: the backend\'s, src/dataplane/backends.ts)' },
  { name: 'mtu', kind: 'int', help: 'TUN (= pod) MTU (default: underlay MTU minus encapsulation overhead)' },
  { name: 'iface', kind: 'list', help: 'underlay interface name or IP (repeatable: the first that exists)' },
  { name: 'iface-regex', kind: 'list', help: 'regex over interface names and addresses (repeatable)' },
  { name: 'iface-can-reach', kind: 'string', help: 'use the interface that routes to this address' },
  { name: 'public-ip', kind: 'string', help: 'address published to peers (default: the underlay address)' },
  { name: 'public-ipv6', kind: 'string', help: 'dual stack: IPv6 address published to peers (default: the underlay interface\'s IPv6 address)' },
  { name: 'annotation-prefix', kind: 'string', default: DEFAULT_ANNOTATION_PREFIX,
    help: 'Node annotation prefix; flannel.alpha.coreos.com interoperates with flannel vxlan nodes' },
  { name: 'state-dir', kind: 'string', default: DEFAULT_STATE_DIR, help: 'FDB snapshot and VTEP MAC directory' },
  { name: 'subnet-file', kind: 'string', default: DEFAULT_SUBNET_FILE, help: 'subnet.env written for the CNI plugin' },
  { name: 'ip-masq', kind: 'bool', help: 'masquerade pod traffic to destinations outside the cluster network (nftables table inet userlay; default: net-conf IPMasq)' },
  { name: 'status-addr', kind: 'string', help: 'HOST:PORT for /healthz /readyz /metrics /debug' },
  { name: 'log-level', kind: 'string', default: 'info', help: 'debug, info, warn or error' },
  { name: 'engine', kind: 'string', default: 'native', help: 'forwarding engine: native or js' },
  offloadsFlagSpec,
  threadsFlagSpec,
  { name: 'tun', kind: 'string', default: 'userlay0', help: 'TUN device name' },
  { name: 'resync-period', kind: 'int', default: 300, help: 'seconds between full peer resyncs (0: none)' },
  ...cniFlagSpecs,
];

/** Synopsis for --help. */
export const kubeAgentSynopsis =
  'usage: userlay agent --kubeconfig FILE [--node-name NAME] [--net-conf FILE | --network CIDR]\n' +
  '                     [--backend vxlan|udp|host-gw] [--direct-routing] [--vni N] [--port N] [--mtu N] [--iface NAME|IP]...\n' +
  '                     [--iface-regex RE]... [--iface-can-reach IP] [--public-ip IP] [--public-ipv6 IP]\n' +
  '                     [--annotation-prefix P] [--state-dir DIR] [--subnet-file FILE]\n' +
  '                     [--status-addr HOST:PORT] [--engine native|js] [--offloads auto|off]\n' +
  '                     [--threads N] [--tun NAME] [--resync-period S] [--cni-socket PATH] [--cni-state-dir DIR] [--ip-masq]';

/** Validated kube-mode configuration. */
export interface KubeAgentConfig {
  readonly kubeconfig: string | undefined;
  readonly nodeName: string;
  readonly netConf: NetConf;
  readonly iface: string[];
  readonly ifaceRegex: string[];
  readonly ifaceCanReach: string | undefined;
  readonly publicIP: string | undefined;
  /** --public-ipv6 (dual stack). */
  readonly publicIPv6?: string | undefined;
  readonly prefix: string;
  readonly stateDir: string;
  readonly subnetFile: string;
  /** Masquerade pod egress (--ip-masq, else net-conf IPMasq); also FLANNEL_IPMASQ in subnet.env. */
  readonly ipMasq: boolean;
  readonly statusAddr: string | undefined;
  readonly logLevel: LogLevel;
  readonly engine: EngineKind;
  /** --offloads. */
  readonly offloads: OffloadMode;
  /** --threads: forwarding thread pairs (native engine); absent = 1. */
  readonly threads?: number;
  readonly tunName: string;
  /** Full resync period, ms (0 = none). */
  readonly resyncMs: number;
  /** The CNI endpoint (absent or socket undefined: none). */
  readonly cni?: CniFlags;
}

/** Parse and check the flags (reads --net-conf). Throws EUSAGE naming the field. */
export async function parseKubeConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<KubeAgentConfig> {
  const f = parseFlags(kubeAgentFlags, argv);
  const logLevel = logLevelFlag(f);
  const engine = flagOneOf<EngineKind>(f, 'engine', ['native', 'js']);
  const offloads = offloadsFlag(f);
  const threads = threadsFlag(f, engine);
  const tunName = tunNameFlag(f);
  const statusAddr = statusAddrFlag(f);
  const cni = cniFlags(f);
  const prefix = flagString(f, 'annotation-prefix')!;
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(prefix) || prefix.length > 253) {
    throw usageError('--annotation-prefix', `"${prefix}" is not a DNS subdomain`);
  }
  const resync = flagInt(f, 'resync-period')!;
  if (resync < 0) throw usageError('--resync-period', `${resync} is negative`);
  const nodeName = resolveNodeName(flagString(f, 'node-name'), env);
  const netConf = await loadNetConf(flagString(f, 'net-conf'), {
    backend: flagString(f, 'backend'), vni: flagInt(f, 'vni'), port: flagInt(f, 'port'), mtu: flagInt(f, 'mtu'),
    network: flagString(f, 'network'), directRouting: f['direct-routing'] === true,
  });
  return {
    kubeconfig: flagString(f, 'kubeconfig'),
    nodeName,
    netConf,
    iface: flagList(f, 'iface'),
    ifaceRegex: flagList(f, 'iface-regex'),
    ifaceCanReach: flagString(f, 'iface-can-reach'),
    publicIP: flagString(f, 'public-ip'),
    publicIPv6: flagString(f, 'public-ipv6'),
    prefix,
    stateDir: flagString(f, 'state-dir')!,
    subnetFile: flagString(f, 'subnet-file')!,
    ipMasq: f['ip-masq'] === true || netConf.ipMasq === true,
    statusAddr,
    logLevel,
    engine,
    offloads,
    threads,
    tunName,
    resyncMs: resync * 1000,
    cni,
  };
}
