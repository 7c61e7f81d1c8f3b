/**
 * Where a server keeps what it knows of sessions (docs/PROTOCOL.md §3, §5, §6, §9). Every method is async, so that a
 * shared store (Redis, a Durable Object) implements the same interface; a method that cannot reach its backend throws,
 * and the server answers `store_unavailable` (503). Every decision a method returns is atomic in the store, so several
 * server instances sharing it see one order.
 */
import type { Algorithm } from '../crypto/algorithms.js';

/** Protocol profiles: 2 is the hardened default, 1 the v1 (`pqc-mcp-transport`) format, opt-in (§7). */
export type Profile = 1 | 2;

/** What a store keeps of a session: plain data, so a shared store can hold it. */
export interface SessionRecord {
  /** 32 lowercase hex characters. */
  sessionId: string;
  profile: Profile;
  /** The client's DID, algorithm and raw public key (hex), pinned by the handshake. */
  peerDid: string;
  peerAlgorithm: Algorithm;
  peerPublicKey: string;
  /** The DID of the server identity that opened the session: any other identity treats the session as unknown (§5). */
  localDid: string;
  /** Epoch milliseconds. */
  createdAt: number;
  expiresAt: number;
  /** When the session was ended (by its client, a limit, or to make room); absent while it lasts (§6, §9). */
  endedAt?: number;
}

/** The outcome of step 7 of §3: the nonce check and the session's liveness, read in one atomic step. */
export type NonceOutcome =
  /** New nonce, recorded; the session is live. */
  | 'accepted'
  /** Seen before in this session, or too old to be proven new. */
  | 'replay'
  /** New nonce, recorded; the session was ended. */
  | 'ended'
  /** New nonce, recorded; the session is past its expiry. */
  | 'expired'
  /** The store holds no record of the session. */
  | 'unknown';

/** What `createSession` applies when it opens a session (§9). */
export interface SessionLimits {
  /** Live sessions in all: opening one more ends the least recently used live session. */
  maxSessions: number;
  /** Live sessions of one client key: opening one more ends that client's oldest. */
  maxSessionsPerClient: number;
  /** How long the record of a session and its nonces are kept after it ends or expires, seconds (§6). */
  retentionSec: number;
}

/** The session store of docs/PROTOCOL.md §9: one per server identity, shared by all its instances. */
export interface SessionStore {
  /**
   * Opens a session, first ending what the limits require: the client's oldest live session when it has
   * `maxSessionsPerClient`, the least recently used live session when the store has `maxSessions`. Resolves the ids
   * of the sessions it ended (they keep their records, so their clients recover through a signed `unknown_session`).
   */
  createSession(record: SessionRecord, limits: SessionLimits): Promise<string[]>;
  /** The session's record while the store keeps it: live, ended or expired. */
  getSession(sessionId: string): Promise<SessionRecord | undefined>;
  /** Ends a session (its client asked, §9): the record and nonces are kept for `retentionSec` or until it expires. */
  endSession(sessionId: string, retentionSec: number): Promise<void>;
  /**
   * Step 7 of §3 in one atomic operation: records `nonce` in the session unless seen before (or older than what
   * the store can still prove new), and reads whether the session is live. `timestampMs` is the message's signed time;
   * the nonce is kept `ttlSec`.
   */
  recordNonce(sessionId: string, nonce: string, timestampMs: number, ttlSec: number): Promise<NonceOutcome>;
  /**
   * Records a handshake request key (client key and nonce) atomically: false when seen within `ttlSec`, or when it is
   * older than what the store can still prove new (§5, §7). `timestampMs` is the request's signed time.
   */
  recordHandshake(key: string, timestampMs: number, ttlSec: number): Promise<boolean>;
  /**
   * Records a key atomically: false when seen within `ttlSec`. Used for v1 messages, whose timestamps are not signed
   * (§7): a store that cannot keep the key for `ttlSec` refuses (`rate_limited`) rather than forget it early.
   */
  recordOnce(key: string, ttlSec: number): Promise<boolean>;
  /**
   * Records that the client `peerDid` owns the MCP session `mcpSessionId` (§9). False when another DID owns it.
   * The ownership lasts `ttlSec` after its last use.
   */
  claimMcpSession(mcpSessionId: string, peerDid: string, ttlSec: number): Promise<boolean>;
  /** The DID owning an MCP session, and its ownership extended by `ttlSec`; undefined when none is recorded. */
  mcpSessionOwner(mcpSessionId: string, ttlSec: number): Promise<string | undefined>;
  /** Remembers the nonce of a request the server sent the client in a session, by JSON-RPC id key (§3). */
  recordServerRequest(sessionId: string, requestKey: string, nonce: string, ttlSec: number): Promise<void>;
  /** The nonce of that server request, forgotten as it is read: an answer is accepted once. */
  takeServerRequest(sessionId: string, requestKey: string): Promise<string | undefined>;
  /**
   * Ends every live session of the client `peerDid` (its trust was withdrawn: revoked, or no longer in the server's
   * trust store), atomically, and resolves their ids. Like `endSession`, the records and nonces are kept for
   * `retentionSec`, so any instance sharing the store answers the client's next message `ended`. Required by a server
   * whose `authorize` is a `TrustStore`.
   */
  endPeerSessions?(peerDid: string, retentionSec: number): Promise<string[]>;
  /** Releases what the store holds (timers, connections). */
  close?(): Promise<void>;
}

/** The methods a `SessionStore` must have (checked when a server is created). */
export const SESSION_STORE_METHODS = [
  'createSession',
  'getSession',
  'endSession',
  'recordNonce',
  'recordHandshake',
  'recordOnce',
  'claimMcpSession',
  'mcpSessionOwner',
  'recordServerRequest',
  'takeServerRequest',
] as const satisfies readonly (keyof SessionStore)[];
