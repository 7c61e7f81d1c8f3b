/**
 * `PQCSession`: a session as one side holds it in memory (the client's, or a test's): the pinned peer, its expiry,
 * the nonces seen and an audit trail. A server keeps its sessions in a `SessionStore` instead (store/).
 */
import { AuditLog, type AuditEntry, type AuditInput } from './audit.js';
import type { Algorithm } from './crypto/algorithms.js';
import { PeerIdentity } from './identity.js';
import { DEFAULT_MAX_NONCES_PER_SESSION, nonceRetentionSec } from './protocol.js';
import type { RotationChain } from './rotation.js';
import { NonceWindow } from './store/nonce-window.js';
import type { Profile, SessionRecord } from './store/types.js';
import { nowMs, type Clock } from './time.js';

/** Options of `PQCSession`. */
export interface PQCSessionOptions {
  /** Per-session bound on remembered nonces (default 10 000). */
  maxNonces?: number;
  /** How long a nonce is remembered, seconds (default 660: twice the default skew plus 60 s). */
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
  /** Set by `PQCHandshake.complete` when the server was reached through a key rotation (§11): the chain followed. */
  rotation: RotationChain | undefined;
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
    this.#nonces = new NonceWindow(options.maxNonces ?? DEFAULT_MAX_NONCES_PER_SESSION);
    this.#nonceTtlMs = (options.nonceTtlSec ?? nonceRetentionSec()) * 1000;
    this.rotation = undefined;
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
