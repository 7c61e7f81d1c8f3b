import type { PQCReason } from './errors.js';

/** What an audit entry records (docs/PROTOCOL.md §8). */
export type AuditOperation = 'handshake' | 'request' | 'notification' | 'response' | 'rejected';

/** One audit entry, with the field names of docs/PROTOCOL.md §8 (so JSON lines match the seed's trail). */
export interface AuditEntry {
  timestamp: string;
  session_id: string | null;
  operation: AuditOperation;
  method: string | null;
  signer_did: string | null;
  peer_did: string | null;
  algorithm: string | null;
  /** First 32 hex characters of the signature. */
  signature_truncated: string | null;
  /** Hex SHA3-256 of the signed input. */
  digest: string | null;
  verified: boolean;
  reason: PQCReason | null;
  details: Record<string, unknown> | null;
  /**
   * The whole signed message (its JSON text, envelope and signature included): present only when the log keeps
   * messages (`keepMessages`), on verified handshakes, requests, notifications and responses. With the signer's
   * public key, anyone can verify it offline (docs/AUDIT.md).
   */
  message?: string;
}

/** A function that receives every entry, for real logging (a file, a SIEM, stdout). Errors it throws are ignored. */
export type AuditSink = (entry: AuditEntry) => void | Promise<void>;

/** Options of `AuditLog`. */
export interface AuditLogOptions {
  /** Entries kept in memory, oldest dropped first (default 1000; 0 keeps none, only the sink sees them). */
  maxEntries?: number;
  /** Called with every entry. */
  sink?: AuditSink;
  /**
   * Keep the whole signed message in each verified entry (`AuditEntry.message`), so that a third party can later
   * verify who asked and what was answered (default false: entries hold a digest and a truncated signature only).
   */
  keepMessages?: boolean;
}

/**
 * The fields a caller gives; the rest default to null and the timestamp to now. `message` is kept only when the log
 * keeps messages: callers test `keepMessages` first, so that nothing is serialized for a log that drops it.
 */
export type AuditInput = Partial<AuditEntry> & Pick<AuditEntry, 'operation' | 'verified'>;

/** A bounded in-memory audit trail with an optional sink. */
export class AuditLog {
  readonly maxEntries: number;
  /** Whether entries keep the whole signed message (`AuditLogOptions.keepMessages`). */
  readonly keepMessages: boolean;
  readonly #sink: AuditSink | undefined;
  #entries: AuditEntry[] = [];
  #start = 0;

  constructor(options: AuditLogOptions = {}) {
    const max = options.maxEntries ?? 1000;
    if (!Number.isInteger(max) || max < 0) throw new TypeError('AuditLog: maxEntries must be a non-negative integer');
    if (options.sink !== undefined && typeof options.sink !== 'function') {
      throw new TypeError('AuditLog: sink must be a function');
    }
    if (options.keepMessages !== undefined && typeof options.keepMessages !== 'boolean') {
      throw new TypeError('AuditLog: keepMessages must be a boolean');
    }
    this.maxEntries = max;
    this.keepMessages = options.keepMessages ?? false;
    this.#sink = options.sink;
  }

  /** Records an entry and hands it to the sink. Returns the full entry. */
  record(input: AuditInput): AuditEntry {
    const entry: AuditEntry = {
      timestamp: input.timestamp ?? new Date().toISOString(),
      session_id: input.session_id ?? null,
      operation: input.operation,
      method: input.method ?? null,
      signer_did: input.signer_did ?? null,
      peer_did: input.peer_did ?? null,
      algorithm: input.algorithm ?? null,
      signature_truncated: input.signature_truncated ? input.signature_truncated.slice(0, 32) : null,
      digest: input.digest ?? null,
      verified: input.verified,
      reason: input.reason ?? null,
      details: input.details ?? null,
    };
    if (this.keepMessages && typeof input.message === 'string') entry.message = input.message;
    if (this.maxEntries > 0) {
      // A ring buffer: dropping the oldest entry is O(1).
      if (this.#entries.length < this.maxEntries) {
        this.#entries.push(entry);
      } else {
        this.#entries[this.#start] = entry;
        this.#start = (this.#start + 1) % this.maxEntries;
      }
    }
    if (this.#sink) {
      try {
        const pending = this.#sink(entry);
        if (pending && typeof (pending as Promise<void>).catch === 'function') (pending as Promise<void>).catch(() => {});
      } catch {
        // A failing sink must not turn a verified message into a failure.
      }
    }
    return entry;
  }

  /** The entries kept in memory, oldest first. */
  entries(): AuditEntry[] {
    return [...this.#entries.slice(this.#start), ...this.#entries.slice(0, this.#start)];
  }

  /** Number of entries kept in memory. */
  get size(): number {
    return this.#entries.length;
  }

  /** Forgets the entries kept in memory. */
  clear(): void {
    this.#entries = [];
    this.#start = 0;
  }
}
