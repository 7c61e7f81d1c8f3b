/**
 * `FileTrustStore`: a trust document in a file (`TrustStore` of core), reloaded when the file changes. Every handshake
 * checks the file first (a `stat`, cheap next to a signature; read and parsed again only when it changed), so a
 * revocation written to a file that several instances share is in force at their next handshake; messages check it
 * at most once per `checkIntervalMs`, in the background, and a watcher on the folder reloads it at once where the
 * platform reports changes. A file that cannot be read or parsed keeps the last good set in force and is reported to
 * `onError` once per version of the file.
 */
import { watch, type FSWatcher } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { TrustStore, type TrustStoreOptions } from '../trust/store.js';
import type { TrustSet } from '../trust/document.js';

/** Options of `FileTrustStore.load`. */
export interface FileTrustStoreOptions extends TrustStoreOptions {
  /** Least time between two checks of the file started by messages, ms (default 1 000). Handshakes always check. */
  checkIntervalMs?: number;
  /** Watch the file's folder and reload on a change (default true; the watcher does not keep the process alive). */
  watch?: boolean;
  /** Bound on the file, bytes (default 1 MiB); a larger file is refused. */
  maxBytes?: number;
}

/** What identifies one version of the file (inode, size, change times in ns). */
async function versionOf(path: string): Promise<string> {
  const s = await stat(path, { bigint: true });
  return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
}

async function readBounded(path: string, maxBytes: number): Promise<string> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(maxBytes + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length > maxBytes) throw new Error(`larger than ${maxBytes} bytes`);
    }
    return new TextDecoder('utf-8', { fatal: true }).decode(buffer.subarray(0, length));
  } finally {
    await handle.close();
  }
}

/** A trust document in a file (docs: packages/core/README.md, "Trust stores and revocation"). */
export class FileTrustStore extends TrustStore {
  readonly path: string;
  readonly #checkIntervalMs: number;
  readonly #maxBytes: number;
  #version: string;
  /** The version that failed last: reported once, not at every check. */
  #failedVersion: string | undefined;
  #lastCheck = Date.now();
  #watcher: FSWatcher | undefined;

  private constructor(path: string, text: string, version: string, options: FileTrustStoreOptions, checkIntervalMs: number, maxBytes: number) {
    super(text, options);
    this.path = path;
    this.#version = version;
    this.#checkIntervalMs = checkIntervalMs;
    this.#maxBytes = maxBytes;
    if (options.watch !== false) this.#watch();
  }

  /** Reads the file and builds the store; throws when it cannot be read or parsed (fail at start-up). */
  static async load(path: string, options: FileTrustStoreOptions = {}): Promise<FileTrustStore> {
    const checkIntervalMs = options.checkIntervalMs ?? 1_000;
    if (typeof checkIntervalMs !== 'number' || !Number.isFinite(checkIntervalMs) || checkIntervalMs < 0) {
      throw new TypeError(`FileTrustStore: option "checkIntervalMs" must be a number >= 0, got ${String(checkIntervalMs)}`);
    }
    const maxBytes = options.maxBytes ?? 1024 * 1024;
    if (!Number.isInteger(maxBytes) || maxBytes < 1) throw new TypeError(`FileTrustStore: option "maxBytes" must be a positive integer, got ${String(maxBytes)}`);
    const full = resolve(path);
    const version = await versionOf(full);
    const text = await readBounded(full, maxBytes).catch((err: unknown) => {
      throw new TypeError(`trust file ${full}: ${err instanceof Error ? err.message : String(err)}`);
    });
    return new FileTrustStore(full, text, version, options, checkIntervalMs, maxBytes);
  }

  override close(): void {
    this.#watcher?.close();
    this.#watcher = undefined;
  }

  protected override onUse(): void {
    if (Date.now() - this.#lastCheck >= this.#checkIntervalMs) void this.reload();
  }

  protected override async beforeAuthorize(): Promise<void> {
    await this.reload();
  }

  protected override async beforeSession(): Promise<void> {
    await this.reload();
  }

  protected override async load(): Promise<TrustSet | undefined> {
    this.#lastCheck = Date.now();
    let version: string | undefined;
    try {
      version = await versionOf(this.path);
      if (version === this.#version || version === this.#failedVersion) return undefined;
      const text = await readBounded(this.path, this.#maxBytes);
      // The file may have changed while it was read: read again at the next check.
      if ((await versionOf(this.path)) !== version) version = undefined;
      const set = this.parse(text);
      if (version !== undefined) this.#version = version;
      this.#failedVersion = undefined;
      return set;
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      const failed = version ?? `unreadable: ${message}`;
      if (failed === this.#failedVersion) return undefined;
      this.#failedVersion = failed;
      throw new Error(`trust file ${this.path} not reloaded (${message}): the last good set stays`, { cause: err });
    }
  }

  #watch(): void {
    const name = basename(this.path);
    try {
      this.#watcher = watch(dirname(this.path), { persistent: false }, (_event, file) => {
        if (file === null || file === name) void this.reload();
      });
      this.#watcher.on('error', (err) => {
        this.reportError(new Error(`trust file ${this.path}: watching stopped (${err.message}); changes are still seen at each check`));
        this.close();
      });
    } catch (err) {
      this.reportError(new Error(`trust file ${this.path}: cannot watch (${err instanceof Error ? err.message : String(err)}); changes are still seen at each check`));
    }
  }
}
