/**
 * The audit chain in a file (docs/AUDIT.md): JSON Lines appended to `path`, created with mode 0600, fsynced after
 * every checkpoint (or every line, or never, as asked). Opening an existing file appends a new segment linked to its
 * last line; a file whose last line is cut (no newline) is refused, so that a new segment never hides a torn write.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { AuditChain, type AuditChainOptions } from '../audit-chain.js';
import type { AuditLog, AuditSink } from '../audit.js';
import { sha3_256Hex } from '../crypto/hash.js';

/** When the file is fsynced. */
export type AuditFsync = 'checkpoint' | 'always' | 'never';

/** Options of `openAuditFile`: those of `AuditChain` but where the lines go, and the fsync policy. */
export interface AuditFileOptions extends Omit<AuditChainOptions, 'write' | 'sync' | 'previous'> {
  /**
   * `'checkpoint'` (default): fsync after each checkpoint line, so a signed head is on disk before it is reported;
   * `'always'`: after every line (a power loss then loses at most the line being written; slower);
   * `'never'`: the operating system decides (a power loss may lose lines the process wrote, even signed ones).
   */
  fsync?: AuditFsync;
}

/** An audit file being written. */
export interface AuditFile {
  readonly path: string;
  /** The chain writing the file. */
  readonly chain: AuditChain;
  /** An `AuditLog` whose entries are written here: give it to a server as `audit`. */
  readonly log: AuditLog;
  /** The sink, for an `AuditLog` of your own. */
  readonly sink: AuditSink;
  /** Signs the head now; resolves once the checkpoint is written (and synced, unless fsync is `'never'`). */
  checkpoint(): Promise<void>;
  /** Signs a final checkpoint, syncs and closes the file. */
  close(): Promise<void>;
}

/** Hex SHA3-256 of the file's last line; undefined for an empty file. Throws when the last line has no newline. */
async function lastLineHash(handle: FileHandle, path: string): Promise<string | undefined> {
  const { size } = await handle.stat();
  if (size === 0) return undefined;
  const chunk = 64 * 1024;
  let end = size;
  let buffered = Buffer.alloc(0);
  for (;;) {
    const start = Math.max(0, end - chunk);
    const part = Buffer.alloc(end - start);
    await handle.read(part, 0, part.length, start);
    buffered = Buffer.concat([part, buffered]);
    end = start;
    if (buffered[buffered.length - 1] !== 0x0a) {
      throw Object.assign(new Error(`audit file ${path} does not end with a newline: its last line is cut; keep it aside and start a new file`), {
        reason: 'torn_line',
      });
    }
    const before = buffered.lastIndexOf(0x0a, buffered.length - 2);
    if (before >= 0) return sha3_256Hex(buffered.subarray(before + 1, buffered.length - 1));
    if (start === 0) return sha3_256Hex(buffered.subarray(0, buffered.length - 1));
  }
}

/**
 * Opens (or creates, mode 0600) an audit file and starts a chain segment in it. The file is opened for appending
 * only; a file that existed keeps its lines, and the new segment's start line links to its last one.
 */
export async function openAuditFile(path: string, options: AuditFileOptions): Promise<AuditFile> {
  const fsync = options.fsync ?? 'checkpoint';
  if (!['checkpoint', 'always', 'never'].includes(fsync)) throw new TypeError("openAuditFile: fsync must be 'checkpoint', 'always' or 'never'");
  const handle = await open(path, 'a+', 0o600);
  let chain: AuditChain;
  try {
    // A file made by someone else with a wider mode is narrowed: the trail may name clients and hold their requests.
    const { mode } = await handle.stat();
    if ((mode & 0o077) !== 0) await handle.chmod(0o600);
    const previous = await lastLineHash(handle, path);
    chain = new AuditChain({
      ...options,
      previous,
      write: async (line) => {
        await handle.write(line);
        if (fsync === 'always') await handle.datasync();
      },
      sync: fsync === 'never' ? undefined : () => handle.datasync(),
    });
  } catch (err) {
    await handle.close();
    throw err;
  }
  let closing: Promise<void> | undefined;
  return {
    path,
    chain,
    log: chain.log,
    sink: chain.sink,
    checkpoint: () => chain.checkpoint(),
    close: () =>
      (closing ??= (async () => {
        try {
          await chain.close();
        } finally {
          await handle.close();
        }
      })()),
  };
}
