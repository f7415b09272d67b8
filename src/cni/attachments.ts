/**
 * Attachment records: one JSON file per attachment (container ID + interface name) in
 * `<state dir>/attachments/`, holding the delegate config ADD used. DEL, CHECK and GC use the
 * record, never the node's current settings, so an attachment made before the pod subnet or
 * the MTU changed is released with what made it. A record is written *before* the delegate
 * ADD runs, so a crash in the middle still leaves DEL something to undo.
 */
import { readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../atomic-file.js';
import { errorCode } from '../errors.js';
import { CniCode, CniError } from './errors.js';

/** What ADD did for one attachment. */
export interface AttachmentRecord {
  readonly version: 1;
  /** Network name from the config. */
  readonly network: string;
  readonly containerID: string;
  readonly ifname: string;
  readonly netns: string;
  /** CNI_PATH of the ADD (used when a DEL comes without one). */
  readonly cniPath: readonly string[];
  /** CNI_ARGS of the ADD. */
  readonly args: string;
  /** The delegate plugin's config exactly as ADD gave it. */
  readonly delegate: Record<string, unknown>;
  /** Milliseconds since the epoch. */
  readonly addedAt: number;
}

/** The record store of one agent. */
export class AttachmentStore {
  private readonly dir: string;

  constructor(stateDir: string) {
    this.dir = path.join(stateDir, 'attachments');
  }

  private file(containerID: string, ifname: string): string {
    // both are checked against [a-zA-Z0-9_.-] / interface-name rules before they get here
    return path.join(this.dir, `${containerID}_${ifname}.json`);
  }

  /** The record of an attachment, or undefined. */
  async get(containerID: string, ifname: string): Promise<AttachmentRecord | undefined> {
    let text: string;
    try {
      text = await readFile(this.file(containerID, ifname), 'utf8');
    } catch (err) {
      if (errorCode(err) === 'ENOENT') return undefined;
      throw new CniError(CniCode.ioFailure, `userlay: reading the attachment record of ${containerID}/${ifname}: ${(err as Error).message}`, { cause: err });
    }
    try {
      return JSON.parse(text) as AttachmentRecord;
    } catch (err) {
      throw new CniError(CniCode.ioFailure, `userlay: attachment record of ${containerID}/${ifname} is corrupt`, { cause: err });
    }
  }

  /** Write (replace) a record atomically. */
  async put(rec: AttachmentRecord): Promise<void> {
    try {
      await writeFileAtomic(this.file(rec.containerID, rec.ifname), JSON.stringify(rec) + '\n', 0o600);
    } catch (err) {
      throw new CniError(CniCode.ioFailure, `userlay: saving the attachment record: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Remove a record (missing is fine). */
  async remove(containerID: string, ifname: string): Promise<void> {
    await rm(this.file(containerID, ifname), { force: true });
  }

  /** Every record. */
  async list(): Promise<AttachmentRecord[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if (errorCode(err) === 'ENOENT') return [];
      throw err;
    }
    const out: AttachmentRecord[] = [];
    for (const name of names.filter((n) => n.endsWith('.json') && !n.startsWith('.')).sort()) {
      try {
        out.push(JSON.parse(await readFile(path.join(this.dir, name), 'utf8')) as AttachmentRecord);
      } catch {
        // removed meanwhile, or corrupt: GC and DEL report those when they meet them
      }
    }
    return out;
  }
}
