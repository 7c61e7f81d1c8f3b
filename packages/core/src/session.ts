import type { Algorithm } from './crypto/algorithms.js';
import { AuditLog, type AuditEntry, type AuditInput } from './audit.js';
import { PQCTransportError } from './errors.js';
import { PeerIdentity } from './identity.js';
import type { Profile } from './envelope.js';
import { nowMs, type Clock } from './time.js';

/** Default session lifetime, seconds (docs/PROTOCOL.md §5). */
export const DEFAULT_SESSION_TTL_SEC = 3600;
/** Default bound on live sessions in one store. */
export const DEFAULT_MAX_SESSIONS = 10_000;
/** Default bound on nonces remembered per session within the acceptance window. */
export const DEFAULT_MAX_NONCES_PER_SESSION = 10_000;

/** What a store keeps of a session: plain data, so a shared store (Redis, a Durable Object) can hold it. */
export interface SessionRecord {
  /** 32 lowercase hex characters. */
  sessionId: string;
  profile: Profile;
  /** The peer's DID, algorithm and raw public key (hex), pinned by the handshake. */
  peerDid: string;
  peerAlgorithm: Algorithm;
  peerPublicKey: string;
  /** This side's DID. */
  localDid: string;
  /** Epoch milliseconds. */
  createdAt: number;
  expiresAt: number;
}

/** Limits a store applies when it opens a session. */
export interface SessionLimits {
  maxSessions: number;
}

/**
 * Where a server keeps sessions and the nonces it has seen. Every method is async so a shared store (Redis,
 * a Durable Object) implements the same interface; a method that cannot reach its backend throws, and the
 * server answers `store_unavailable`.
 */
export interface SessionStore {
  /** Opens a session; throws `PQCTransportError('too_many_sessions')` when the limit is reached. */
  createSession(record: SessionRecord, limits: SessionLimits): Promise<void>;
  /** The session, expired ones included while the store still holds them (so `session_expired` can be told). */
  getSession(sessionId: string): Promise<SessionRecord | undefined>;
  /** Ends a session. */
  deleteSession(sessionId: string): Promise<void>;
  /**
   * Records a message nonce atomically. Resolves false when it was seen before in this session (a replay), or when
   * it cannot be proven fresh. `timestampMs` is the message's signed time; the nonce is kept `ttlSec` seconds.
   */
  recordNonce(sessionId: string, nonce: string, timestampMs: number, ttlSec: number): Promise<boolean>;
  /** Records a handshake request key atomically; false when seen within `ttlSec` (a replayed handshake). */
  recordHandshake(key: string, ttlSec: number): Promise<boolean>;
  /** Releases what the store holds (timers, connections). */
  close?(): Promise<void>;
}

/**
 * The nonces of one session within the acceptance window, bounded. When the cap is reached the oldest nonce is
 * dropped and its timestamp becomes a floor: a message not newer than the floor can no longer be proven fresh and
 * is refused, so dropping never reopens a replay.
 */
export class NonceWindow {
  readonly #nonces = new Map<string, number>(); // nonce -> expiry (ms)
  readonly #timestamps = new Map<string, number>(); // nonce -> signed time (ms)
  #floorMs = Number.NEGATIVE_INFINITY;
  readonly maxNonces: number;

  constructor(maxNonces = DEFAULT_MAX_NONCES_PER_SESSION) {
    this.maxNonces = maxNonces;
  }

  /** True (and recorded) when `nonce` is new and provably fresh; false for a replay. */
  record(nonce: string, timestampMs: number, ttlMs: number, now: number): boolean {
    if (this.#nonces.size >= this.maxNonces) this.#sweep(now);
    const seen = this.#nonces.get(nonce);
    if (seen !== undefined && seen > now) return false;
    if (timestampMs <= this.#floorMs) return false;
    while (this.#nonces.size >= this.maxNonces) {
      const oldest = this.#nonces.keys().next().value as string;
      this.#floorMs = Math.max(this.#floorMs, this.#timestamps.get(oldest) ?? Number.NEGATIVE_INFINITY);
      this.#nonces.delete(oldest);
      this.#timestamps.delete(oldest);
    }
    this.#nonces.delete(nonce);
    this.#nonces.set(nonce, now + ttlMs);
    this.#timestamps.set(nonce, timestampMs);
    return true;
  }

  /** Number of nonces held. */
  get size(): number {
    return this.#nonces.size;
  }

  #sweep(now: number): void {
    // Insertion order is expiry order (every nonce gets the same TTL), so stop at the first live one.
    for (const [nonce, expires] of this.#nonces) {
      if (expires > now) break;
      this.#nonces.delete(nonce);
      this.#timestamps.delete(nonce);
    }
  }
}

/** Options of `PQCSession`. */
export interface PQCSessionOptions {
  /** Per-session bound on remembered nonces (default 10 000). */
  maxNonces?: number;
  /** How long a nonce is remembered, seconds (default 600: twice the default skew). */
  nonceTtlSec?: number;
  /** The audit trail entries are written to (default: a new bounded `AuditLog`). */
  audit?: AuditLog;
}

/** A session as one side holds it in memory: the pinned peer, its expiry, the nonces seen and an audit trail. */
export class PQCSession implements SessionRecord {
  readonly sessionId: string;
  readonly profile: Profile;
  readonly peerDid: string;
  readonly peerAlgorithm: Algorithm;
  readonly peerPublicKey: string;
  readonly localDid: string;
  readonly createdAt: number;
  readonly expiresAt: number;
  /** The pinned peer, with its verifying key prepared. */
  readonly peer: PeerIdentity;
  readonly audit: AuditLog;
  readonly #nonces: NonceWindow;
  readonly #nonceTtlMs: number;

  constructor(record: SessionRecord, options: PQCSessionOptions = {}) {
    this.sessionId = record.sessionId;
    this.profile = record.profile;
    this.peerDid = record.peerDid;
    this.peerAlgorithm = record.peerAlgorithm;
    this.peerPublicKey = record.peerPublicKey;
    this.localDid = record.localDid;
    this.createdAt = record.createdAt;
    this.expiresAt = record.expiresAt;
    this.peer = new PeerIdentity(record.peerAlgorithm, record.peerPublicKey, { did: record.peerDid });
    this.audit = options.audit ?? new AuditLog();
    this.#nonces = new NonceWindow(options.maxNonces);
    this.#nonceTtlMs = (options.nonceTtlSec ?? 600) * 1000;
  }

  /** True while the session has not expired. */
  isValid(now?: Clock): boolean {
    return nowMs(now) < this.expiresAt;
  }

  /**
   * True (and remembered) the first time a nonce is seen in this session; false for a replay.
   * `timestampMs` is the message's signed time (default: now). The nonce is kept `ttlSec` seconds when that is longer
   * than the session's `nonceTtlSec` (a verifier with a wider clock skew needs it kept twice that skew).
   */
  checkNonce(nonce: string, timestampMs?: number, now?: Clock, ttlSec?: number): boolean {
    const t = nowMs(now);
    const ttlMs = Math.max(this.#nonceTtlMs, (ttlSec ?? 0) * 1000);
    return this.#nonces.record(nonce, timestampMs ?? t, ttlMs, t);
  }

  /** Number of nonces remembered now. */
  get nonceCount(): number {
    return this.#nonces.size;
  }

  /** Writes an audit entry for this session (session and peer filled in). */
  logOperation(input: AuditInput): AuditEntry {
    return this.audit.record({ session_id: this.sessionId, peer_did: this.peerDid, ...input });
  }

  /** The audit entries kept in memory, oldest first. */
  getAuditLog(): AuditEntry[] {
    return this.audit.entries();
  }

  /** The plain record (for stores). */
  toRecord(): SessionRecord {
    return {
      sessionId: this.sessionId,
      profile: this.profile,
      peerDid: this.peerDid,
      peerAlgorithm: this.peerAlgorithm,
      peerPublicKey: this.peerPublicKey,
      localDid: this.localDid,
      createdAt: this.createdAt,
      expiresAt: this.expiresAt,
    };
  }
}

/** Options of `MemorySessionStore`. */
export interface MemorySessionStoreOptions {
  /** Per-session bound on remembered nonces (default 10 000). */
  maxNoncesPerSession?: number;
  /** Bound on remembered handshake keys (default 100 000); the oldest are dropped first. */
  maxHandshakes?: number;
  /** How long an expired session is still told apart from an unknown one, seconds (default 600). */
  expiredGraceSec?: number;
  /** The store's clock (default: now). */
  now?: () => number;
}

interface MemoryEntry {
  record: SessionRecord;
  nonces: NonceWindow;
}

/**
 * A `SessionStore` in this process's memory: for one server instance. Bounded everywhere: sessions (by the
 * server's `maxSessions`), nonces per session, handshake keys; expired entries are evicted as new ones come.
 */
export class MemorySessionStore implements SessionStore {
  readonly #sessions = new Map<string, MemoryEntry>();
  readonly #handshakes = new Map<string, number>(); // key -> expiry (ms)
  readonly #maxNonces: number;
  readonly #maxHandshakes: number;
  readonly #graceMs: number;
  readonly #now: () => number;

  constructor(options: MemorySessionStoreOptions = {}) {
    this.#maxNonces = positiveInt(options.maxNoncesPerSession ?? DEFAULT_MAX_NONCES_PER_SESSION, 'maxNoncesPerSession');
    this.#maxHandshakes = positiveInt(options.maxHandshakes ?? 100_000, 'maxHandshakes');
    this.#graceMs = (options.expiredGraceSec ?? 600) * 1000;
    this.#now = options.now ?? Date.now;
  }

  async createSession(record: SessionRecord, limits: SessionLimits): Promise<void> {
    if (this.#sessions.size >= limits.maxSessions) this.#evictExpired(this.#now(), true);
    if (this.#sessions.size >= limits.maxSessions) {
      throw new PQCTransportError('too_many_sessions', 'the session limit is reached');
    }
    this.#sessions.set(record.sessionId, { record: { ...record }, nonces: new NonceWindow(this.#maxNonces) });
  }

  async getSession(sessionId: string): Promise<SessionRecord | undefined> {
    const entry = this.#sessions.get(sessionId);
    if (!entry) return undefined;
    if (entry.record.expiresAt + this.#graceMs <= this.#now()) {
      this.#sessions.delete(sessionId);
      return undefined;
    }
    return entry.record;
  }

  async deleteSession(sessionId: string): Promise<void> {
    this.#sessions.delete(sessionId);
  }

  async recordNonce(sessionId: string, nonce: string, timestampMs: number, ttlSec: number): Promise<boolean> {
    const entry = this.#sessions.get(sessionId);
    if (!entry) return false;
    return entry.nonces.record(nonce, timestampMs, ttlSec * 1000, this.#now());
  }

  async recordHandshake(key: string, ttlSec: number): Promise<boolean> {
    const now = this.#now();
    const seen = this.#handshakes.get(key);
    if (seen !== undefined && seen > now) return false;
    if (this.#handshakes.size >= this.#maxHandshakes) {
      for (const [k, expires] of this.#handshakes) {
        if (expires > now && this.#handshakes.size < this.#maxHandshakes) break;
        this.#handshakes.delete(k);
      }
    }
    this.#handshakes.delete(key);
    this.#handshakes.set(key, now + ttlSec * 1000);
    return true;
  }

  /** Number of sessions held (expired ones within their grace period included). */
  get size(): number {
    return this.#sessions.size;
  }

  /** Number of nonces a session holds now, at most `maxNoncesPerSession` (0 for an unknown session). */
  nonceCount(sessionId: string): number {
    return this.#sessions.get(sessionId)?.nonces.size ?? 0;
  }

  async close(): Promise<void> {
    this.#sessions.clear();
    this.#handshakes.clear();
  }

  #evictExpired(now: number, ignoreGrace: boolean): void {
    for (const [id, entry] of this.#sessions) {
      const limit = ignoreGrace ? entry.record.expiresAt : entry.record.expiresAt + this.#graceMs;
      if (limit <= now) this.#sessions.delete(id);
    }
  }
}

function positiveInt(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1) throw new TypeError(`${name} must be a positive integer`);
  return value;
}
