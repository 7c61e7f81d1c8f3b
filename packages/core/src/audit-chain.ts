/**
 * A hash-chained, signed audit trail (docs/AUDIT.md): each audit entry becomes one JSON line holding the SHA3-256 of
 * the line before it, and the chain head is signed with the server's key at intervals (checkpoint lines), so that a
 * third party with the server's public key can check offline that no line was changed, inserted or removed before the
 * last checkpoint. Web-standard: the bytes go to a `write` function (core/node's `openAuditFile` writes a file).
 */
import { AuditLog, type AuditEntry, type AuditSink } from './audit.js';
import { toHex, utf8 } from './bytes.js';
import { sha3_256, sha3_256Hex } from './crypto/hash.js';
import { AgentIdentity } from './identity.js';
import { canonicalJson } from './json/canonical.js';
import { AUDIT_CHECKPOINT_CONTEXT, AUDIT_FORMAT_VERSION } from './protocol.js';
import { formatTimestamp, nowMs, type Clock } from './time.js';

/** Default number of entries between two checkpoints. */
export const DEFAULT_AUDIT_CHECKPOINT_EVERY = 100;
/** Default time between two checkpoints while entries come (milliseconds). */
export const DEFAULT_AUDIT_CHECKPOINT_INTERVAL_MS = 60_000;

/** Options of `AuditChain`. */
export interface AuditChainOptions {
  /** The key that signs the checkpoints: the server's identity. */
  identity: AgentIdentity;
  /** Appends one line (it ends with `\n`). Lines are handed over one at a time, in order. */
  write: (line: string) => void | Promise<void>;
  /** Makes what was written durable (an fsync); called after each checkpoint line. */
  sync?: () => void | Promise<void>;
  /**
   * Hex SHA3-256 of the last line already in the file, when this chain continues one: the new segment's start line
   * links to it. Omitted for a new file.
   */
  previous?: string;
  /** Sign the head after this many entries (default 100; 0: not by count). */
  checkpointEvery?: number;
  /** Sign the head this long after the first unsigned entry (default 60 000 ms; 0: not by time). */
  checkpointIntervalMs?: number;
  /** Keep the whole signed request and answer in each verified entry (default false; docs/AUDIT.md). */
  keepMessages?: boolean;
  /** Entries `log` keeps in memory (default 1000, as `AuditLog`). */
  maxEntries?: number;
  /** Called once when writing or signing fails; the chain then stops (fail closed). */
  onError?: (error: unknown) => void;
  /** The clock of the timestamps (default: now). */
  now?: Clock;
}

/** A start line: the first line of each segment (a new file, or each time a file is opened again to append). */
export interface AuditStartLine {
  pqc_audit: number;
  type: 'start';
  seq: 0;
  prev: string | null;
  timestamp: string;
  signer_did: string;
  algorithm: string;
  public_key: string;
  keep_messages: boolean;
}

/** An entry line. */
export interface AuditEntryLine {
  type: 'entry';
  seq: number;
  prev: string;
  entry: AuditEntry;
}

/** A checkpoint line: the segment's signer signs every member but `signature` (docs/AUDIT.md). */
export interface AuditCheckpointLine {
  type: 'checkpoint';
  seq: number;
  prev: string;
  timestamp: string;
  /** Entry lines in this segment so far. */
  entries: number;
  /** True on the checkpoint written at close: nothing follows in this segment. */
  final: boolean;
  signature: string;
}

/** The digest a checkpoint line signs: SHA3-256 of the canonical JSON of the line without `signature`. */
export function checkpointDigest(line: Record<string, unknown> | Map<string, unknown>): Uint8Array {
  const unsigned = line instanceof Map ? new Map(line) : new Map(Object.entries(line));
  unsigned.delete('signature');
  return sha3_256(utf8(canonicalJson(unsigned)));
}

function nonNegativeInteger(value: number | undefined, fallback: number, name: string): number {
  const n = value ?? fallback;
  if (!Number.isSafeInteger(n) || n < 0) throw new TypeError(`AuditChain: ${name} must be a non-negative integer`);
  return n;
}

/**
 * Writes audit entries as a hash chain with signed checkpoints. Hand `log` to a server (`audit: chain.log`), or
 * `sink` to an `AuditLog` of your own. Lines are written in the order entries are recorded; `close()` signs a final
 * checkpoint and waits for every line.
 */
export class AuditChain {
  /** An `AuditLog` whose entries go to this chain (keeping messages when the chain does). */
  readonly log: AuditLog;
  /** The sink: appends one entry. Never throws; a failure stops the chain and is reported to `onError`. */
  readonly sink: AuditSink;
  readonly identity: AgentIdentity;
  readonly keepMessages: boolean;
  readonly checkpointEvery: number;
  readonly checkpointIntervalMs: number;
  readonly #write: AuditChainOptions['write'];
  readonly #sync: AuditChainOptions['sync'];
  readonly #onError: AuditChainOptions['onError'];
  readonly #now: Clock | undefined;
  #queue: Promise<void> = Promise.resolve();
  #head: string | null;
  #seq = 0;
  #entries = 0;
  /** Entries queued since the last checkpoint was queued. */
  #unsigned = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  #error: unknown = undefined;

  constructor(options: AuditChainOptions) {
    if (!options || !(options.identity instanceof AgentIdentity)) throw new TypeError('AuditChain: identity must be an AgentIdentity');
    if (typeof options.write !== 'function') throw new TypeError('AuditChain: write must be a function');
    if (options.sync !== undefined && typeof options.sync !== 'function') throw new TypeError('AuditChain: sync must be a function');
    if (options.previous !== undefined && !/^[0-9a-f]{64}$/.test(options.previous)) {
      throw new TypeError('AuditChain: previous must be a hex SHA3-256 (64 lowercase hex characters)');
    }
    this.identity = options.identity;
    this.keepMessages = options.keepMessages ?? false;
    this.checkpointEvery = nonNegativeInteger(options.checkpointEvery, DEFAULT_AUDIT_CHECKPOINT_EVERY, 'checkpointEvery');
    this.checkpointIntervalMs = nonNegativeInteger(options.checkpointIntervalMs, DEFAULT_AUDIT_CHECKPOINT_INTERVAL_MS, 'checkpointIntervalMs');
    this.#write = options.write;
    this.#sync = options.sync;
    this.#onError = options.onError;
    this.#now = options.now;
    this.#head = options.previous ?? null;
    this.sink = (entry) => this.append(entry);
    this.log = new AuditLog({ sink: this.sink, keepMessages: this.keepMessages, maxEntries: options.maxEntries });
    const start: AuditStartLine = {
      pqc_audit: AUDIT_FORMAT_VERSION,
      type: 'start',
      seq: 0,
      prev: this.#head,
      timestamp: formatTimestamp(nowMs(this.#now)),
      signer_did: this.identity.did,
      algorithm: this.identity.algorithm,
      public_key: this.identity.publicKeyHex,
      keep_messages: this.keepMessages,
    };
    this.#enqueue(() => this.#emit(start));
  }

  /** Hex SHA3-256 of the last line written (null before the first). */
  get head(): string | null {
    return this.#head;
  }

  /** Whether the chain stopped on a failure (then `close()` rejects with it). */
  get failed(): boolean {
    return this.#error !== undefined;
  }

  /** Appends one entry; a checkpoint follows when `checkpointEvery` entries are unsigned. Ignored after close. */
  append(entry: AuditEntry): void {
    if (this.#closed || this.#error !== undefined) return;
    this.#enqueue(() => this.#emit({ type: 'entry', seq: ++this.#seq, prev: this.#head!, entry } satisfies AuditEntryLine));
    this.#entries++;
    this.#unsigned++;
    if (this.checkpointEvery > 0 && this.#unsigned >= this.checkpointEvery) {
      this.#queueCheckpoint(false);
    } else if (this.checkpointIntervalMs > 0 && this.#timer === undefined) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        if (this.#unsigned > 0 && !this.#closed) this.#queueCheckpoint(false);
      }, this.checkpointIntervalMs);
      (this.#timer as { unref?: () => void }).unref?.();
    }
  }

  /** Signs the current head now (a checkpoint line) and resolves once it is written and synced. */
  checkpoint(): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('AuditChain: closed'));
    this.#queueCheckpoint(false);
    return this.flush();
  }

  /** Waits for every line queued so far. Rejects with the failure that stopped the chain, if any. */
  async flush(): Promise<void> {
    await this.#queue;
    if (this.#error !== undefined) throw this.#error;
  }

  /**
   * Signs a final checkpoint and waits for every line; later entries are ignored. Rejects with the failure that
   * stopped the chain, if any. Calling it again waits for the same close.
   */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#queueCheckpoint(true);
    }
    return this.flush();
  }

  #queueCheckpoint(final: boolean): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    this.#unsigned = 0;
    const entries = this.#entries;
    this.#enqueue(async () => {
      const line: Omit<AuditCheckpointLine, 'signature'> = {
        type: 'checkpoint',
        seq: ++this.#seq,
        prev: this.#head!,
        timestamp: formatTimestamp(nowMs(this.#now)),
        entries,
        final,
      };
      const signature = await this.identity.sign(checkpointDigest(line), AUDIT_CHECKPOINT_CONTEXT);
      await this.#emit({ ...line, signature: toHex(signature) });
      if (this.#sync) await this.#sync();
    });
  }

  async #emit(line: object): Promise<void> {
    const text = JSON.stringify(line);
    await this.#write(`${text}\n`);
    this.#head = sha3_256Hex(text);
  }

  #enqueue(task: () => void | Promise<void>): void {
    this.#queue = this.#queue.then(async () => {
      if (this.#error !== undefined) return;
      try {
        await task();
      } catch (err) {
        // Fail closed: a line that may be half written breaks the chain, so nothing more is written after it.
        this.#error = err;
        this.#closed = true;
        if (this.#timer !== undefined) clearTimeout(this.#timer);
        try {
          this.#onError?.(err);
        } catch {
          // the report must not hide the failure
        }
      }
    });
  }
}
