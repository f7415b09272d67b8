/**
 * CNI versions: what the plugin speaks and what it asks of its delegates.
 *
 * The shim (native/cni/userlay-cni.c) answers VERSION with the same list; test/unit checks that
 * the two agree. Results of 1.1.0 have the shape of 1.0.0, so a 1.1.0 request is served with
 * delegates spoken to in 1.0.0 (what Debian's containernetworking-plugins 1.1 know) and the
 * result relabelled.
 */
import { CniCode, CniError } from './errors.js';

/** The versions the plugin supports, oldest first. */
export const SUPPORTED_VERSIONS = ['0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;

/** A supported version. */
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];

/** `v` as a supported version; throws CNI error 1 otherwise. */
export function checkVersion(v: unknown): CniVersion {
  if (typeof v === 'string' && (SUPPORTED_VERSIONS as readonly string[]).includes(v)) return v as CniVersion;
  throw new CniError(CniCode.incompatibleVersion, `userlay: unsupported cniVersion ${JSON.stringify(v)}`,
    { details: `supported: ${SUPPORTED_VERSIONS.join(', ')}` });
}

/** True when `v` is at least `min` (both supported versions). */
export function atLeast(v: CniVersion, min: CniVersion): boolean {
  return SUPPORTED_VERSIONS.indexOf(v) >= SUPPORTED_VERSIONS.indexOf(min);
}

/** The version the delegates are spoken to in for a request in `v`. */
export function delegateVersion(v: CniVersion): CniVersion {
  return v === '1.1.0' ? '1.0.0' : v;
}

/** The VERSION answer. */
export function versionResult(v: string): { cniVersion: string; supportedVersions: string[] } {
  const cniVersion = (SUPPORTED_VERSIONS as readonly string[]).includes(v) ? v : '1.1.0';
  return { cniVersion, supportedVersions: [...SUPPORTED_VERSIONS] };
}
