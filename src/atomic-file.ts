/**
 * Atomic file replacement: write a temporary file next to the target, fsync it, rename it
 * over the target, then fsync the directory. A reader sees the old content or the new,
 * never a torn file, even after a crash or power loss.
 */
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { wrapSystemError } from './errors.js';

/** Atomically replace `path` with `data` (creating parent directories, mode 0644 by default). */
export async function writeFileAtomic(path: string, data: Uint8Array | string, mode = 0o644): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
  try {
    await mkdir(dir, { recursive: true });
    const fh = await open(tmp, 'w', mode);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    const dh = await open(dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => {});
    throw wrapSystemError(`write ${path}`, err);
  }
}
