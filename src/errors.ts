/**
 * One error type for the whole project. `code` is stable and machine-readable
 * (an errno name such as "EPERM" for system errors, or a userlay code such as
 * "EUSAGE"); the message says what was being done and why it failed.
 */
export class UserlayError extends Error {
  /** Stable code: an errno name ("EADDRINUSE") or a userlay code ("EUSAGE", "ECONFIG"...). */
  readonly code: string;
  /** The configuration field or flag at fault, when there is one. */
  readonly field: string | undefined;

  constructor(code: string, message: string, options: { cause?: unknown; field?: string } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'UserlayError';
    this.code = code;
    this.field = options.field;
  }
}

/** A usage or configuration error (bad flag, bad CIDR...): the CLI exits 2. */
export function usageError(field: string, message: string, cause?: unknown): UserlayError {
  return new UserlayError('EUSAGE', `${field}: ${message}`, { field, cause });
}

/** Run `parse`; whatever it throws becomes usageError(field, <its message>) with it as the cause. */
export function parseAs<T>(field: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    throw usageError(field, err instanceof Error ? err.message : String(err), err);
  }
}

/** The errno-style code of any thrown value, or undefined. */
export function errorCode(err: unknown): string | undefined {
  if (err && typeof err === 'object' && 'code' in err && typeof (err as { code: unknown }).code === 'string') {
    return (err as { code: string }).code;
  }
  return undefined;
}

/** Wrap a system error with context: "open /dev/net/tun for ovl0: EPERM (needs CAP_NET_ADMIN)". */
export function wrapSystemError(context: string, err: unknown, hint?: string): UserlayError {
  const code = errorCode(err) ?? 'EUNKNOWN';
  const detail = err instanceof Error ? err.message : String(err);
  const suffix = hint ? ` (${hint})` : '';
  return new UserlayError(code, `${context}: ${detail}${suffix}`, { cause: err });
}
