/**
 * Kernel parameters under /proc/sys as the agent sets them: today the data plane's knobs on its
 * own TUN (accept_local so ICMP errors from the TUN's address reach local senders, IPv6 on for
 * the TUN alone; src/dataplane/dataplane.ts says why). The one place that writes /proc/sys;
 * tests hand the data plane a fake.
 */
import { writeFileSync } from 'node:fs';
import { wrapSystemError } from '../../errors.js';
import type { DataplaneHost } from '../../dataplane/types.js';

/** Writes sysctls (the data plane's DataplaneHost). */
export type Sysctls = DataplaneHost;

/** The real one: /proc/sys/<path>. Throws UserlayError with the errno code (EACCES, ENOENT...). */
export const systemSysctls: Sysctls = {
  setSysctl(path: string, value: string): void {
    const file = `/proc/sys/${path}`;
    try {
      writeFileSync(file, value);
    } catch (err) {
      throw wrapSystemError(`write ${value} to ${file}`, err);
    }
  },
};
