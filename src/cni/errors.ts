/**
 * CNI errors: the spec's well-known codes and the error object the plugin prints on stdout
 * ({"cniVersion","code","msg","details"}). A CniError is a UserlayError with code "ECNI" and
 * the CNI code in `cniCode`, so it travels through the agent like every other error.
 */
import { UserlayError } from '../errors.js';

/** The spec's well-known error codes (codes 100 and up are plugin-specific). */
export const CniCode = {
  incompatibleVersion: 1,
  unsupportedField: 2,
  unknownContainer: 3,
  invalidEnvironment: 4,
  ioFailure: 5,
  decodeFailure: 6,
  invalidConfig: 7,
  tryAgainLater: 11,
  /** STATUS (and, here, ADD): the plugin cannot serve requests now. */
  notAvailable: 50,
  /** A delegate plugin failed without saying how. */
  generic: 999,
} as const;

/** An error to report to the runtime as a CNI error object. */
export class CniError extends UserlayError {
  /** The CNI error code (see CniCode). */
  readonly cniCode: number;
  /** Longer explanation for the error object's "details". */
  readonly details: string | undefined;

  constructor(cniCode: number, message: string, options: { details?: string; cause?: unknown } = {}) {
    super('ECNI', message, options.cause === undefined ? {} : { cause: options.cause });
    this.name = 'CniError';
    this.cniCode = cniCode;
    this.details = options.details;
  }
}

/** The spec's error object for `err` (anything thrown becomes code 999 with its message). */
export function errorObject(cniVersion: string, err: unknown): Record<string, unknown> {
  if (err instanceof CniError) {
    return { cniVersion, code: err.cniCode, msg: err.message, ...(err.details ? { details: err.details } : {}) };
  }
  const msg = err instanceof Error ? err.message : String(err);
  return { cniVersion, code: CniCode.generic, msg: `userlay: ${msg}` };
}
