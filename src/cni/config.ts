/**
 * The userlay plugin's network configuration (what the runtime writes to stdin) and the CNI_*
 * environment, checked with the spec's error codes:
 *
 *   {
 *     "cniVersion": "1.0.0", "name": "userlay", "type": "userlay",
 *     "socket": "/run/userlay/cni.sock",     the agent's socket (read by the shim)
 *     "stateDir": "/var/lib/userlay/cni",    the agent's CNI state dir (the shim queues DELs under it)
 *     "bridge": "userlay0br",                bridge name on the node (default "ulbr0")
 *     "dataDir": "/var/lib/cni/networks",    host-local's dataDir (default <agent state dir>/networks)
 *     "hairpinMode": true, "isDefaultGateway": false, "ipMasq": null (null/absent: false; the agent masquerades, --ip-masq)
 *   }
 *
 * Runtimes add "prevResult" (CHECK, DEL), "runtimeConfig" and, for GC, "cni.dev/valid-attachments".
 */
import { CniCode, CniError } from './errors.js';
import { checkVersion, type CniVersion } from './version.js';

/** The verbs of the spec. */
export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'STATUS' | 'GC' | 'VERSION';

/** One attachment as GC's valid list names it. */
export interface AttachmentId {
  readonly containerID: string;
  readonly ifname: string;
}

/** A checked network config. */
export interface NetworkConfig {
  readonly cniVersion: CniVersion;
  readonly name: string;
  readonly type: string;
  readonly bridge: string | undefined;
  readonly dataDir: string | undefined;
  readonly hairpinMode: boolean;
  readonly isDefaultGateway: boolean;
  readonly ipMasq: boolean | undefined;
  readonly prevResult: Record<string, unknown> | undefined;
  readonly runtimeConfig: Record<string, unknown> | undefined;
  readonly validAttachments: readonly AttachmentId[] | undefined;
  /** The whole object as received. */
  readonly raw: Record<string, unknown>;
}

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

function optional<T>(raw: Record<string, unknown>, key: string, kind: 'string' | 'boolean' | 'object'): T | undefined {
  const v = raw[key];
  if (v === undefined || v === null) return undefined;
  if (kind === 'object' ? (typeof v !== 'object' || Array.isArray(v)) : typeof v !== kind) {
    throw new CniError(CniCode.invalidConfig, `userlay: network config "${key}" must be a ${kind}`);
  }
  return v as T;
}

/** Parse the config bytes. Errors: 6 not JSON, 1 unsupported cniVersion, 7 invalid fields. */
export function parseNetworkConfig(bytes: Buffer | string): NetworkConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString());
  } catch (err) {
    throw new CniError(CniCode.decodeFailure, 'userlay: the network config on stdin is not valid JSON',
      { details: (err as Error).message, cause: err });
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new CniError(CniCode.decodeFailure, 'userlay: the network config on stdin is not a JSON object');
  }
  const obj = raw as Record<string, unknown>;
  const cniVersion = checkVersion(obj['cniVersion']);
  const name = obj['name'];
  if (typeof name !== 'string' || !NAME_RE.test(name)) {
    throw new CniError(CniCode.invalidConfig, `userlay: network config "name" ${JSON.stringify(name)} is missing or not a valid network name`);
  }
  const type = optional<string>(obj, 'type', 'string') ?? 'userlay';
  const bridge = optional<string>(obj, 'bridge', 'string');
  if (bridge !== undefined && (bridge.length === 0 || bridge.length > 15 || /[\s/:%]/.test(bridge))) {
    throw new CniError(CniCode.invalidConfig, `userlay: network config "bridge" "${bridge}" is not a valid interface name`);
  }
  const gcList = obj['cni.dev/valid-attachments'];
  let validAttachments: AttachmentId[] | undefined;
  if (gcList !== undefined) {
    if (!Array.isArray(gcList) || !gcList.every((a) => a && typeof a.containerID === 'string' && typeof a.ifname === 'string')) {
      throw new CniError(CniCode.invalidConfig, 'userlay: "cni.dev/valid-attachments" must be a list of {containerID, ifname}');
    }
    validAttachments = gcList.map((a: AttachmentId) => ({ containerID: a.containerID, ifname: a.ifname }));
  }
  return {
    cniVersion, name, type, bridge,
    dataDir: optional<string>(obj, 'dataDir', 'string'),
    hairpinMode: optional<boolean>(obj, 'hairpinMode', 'boolean') ?? true,
    isDefaultGateway: optional<boolean>(obj, 'isDefaultGateway', 'boolean') ?? false,
    ipMasq: optional<boolean>(obj, 'ipMasq', 'boolean'),
    prevResult: optional<Record<string, unknown>>(obj, 'prevResult', 'object'),
    runtimeConfig: optional<Record<string, unknown>>(obj, 'runtimeConfig', 'object'),
    validAttachments,
    raw: obj,
  };
}

/** The CNI_* variables a verb needs. */
export interface CniEnv {
  readonly command: CniCommand;
  readonly containerID: string;
  readonly netns: string;
  readonly ifname: string;
  readonly args: string;
  readonly path: readonly string[];
}

const COMMANDS: readonly CniCommand[] = ['ADD', 'DEL', 'CHECK', 'STATUS', 'GC', 'VERSION'];

/**
 * Check the environment for `command`. ADD and CHECK need CNI_CONTAINERID, CNI_NETNS,
 * CNI_IFNAME and CNI_PATH; DEL needs CNI_CONTAINERID and CNI_IFNAME (the netns may be gone);
 * STATUS and GC need CNI_PATH only. Throws CNI error 4 naming the variable.
 */
export function parseEnv(env: Readonly<Record<string, string>>): CniEnv {
  const command = env['CNI_COMMAND'] as CniCommand;
  if (!COMMANDS.includes(command)) {
    throw new CniError(CniCode.invalidEnvironment, `userlay: CNI_COMMAND ${JSON.stringify(env['CNI_COMMAND'] ?? '')} is not one of ${COMMANDS.join(', ')}`);
  }
  const need = (name: string, when: boolean): string => {
    const v = env[name] ?? '';
    if (when && v === '') throw new CniError(CniCode.invalidEnvironment, `userlay: ${name} is required for ${command}`);
    return v;
  };
  const perAttachment = command === 'ADD' || command === 'DEL' || command === 'CHECK';
  const containerID = need('CNI_CONTAINERID', perAttachment);
  const netns = need('CNI_NETNS', command === 'ADD' || command === 'CHECK');
  const ifname = need('CNI_IFNAME', perAttachment);
  const cniPath = need('CNI_PATH', command !== 'DEL');
  if (perAttachment && !NAME_RE.test(containerID)) {
    throw new CniError(CniCode.invalidEnvironment, `userlay: CNI_CONTAINERID "${containerID}" has characters outside [a-zA-Z0-9_.-]`);
  }
  if (perAttachment && (ifname.length > 15 || ifname === '.' || ifname === '..' || /[\s/:%]/.test(ifname))) {
    throw new CniError(CniCode.invalidEnvironment, `userlay: CNI_IFNAME "${ifname}" is not a valid interface name`);
  }
  return { command, containerID, netns, ifname, args: env['CNI_ARGS'] ?? '', path: cniPath.split(':').filter(Boolean) };
}
