/**
 * What `DurableObjectSessionStore` and `PQCSessionStoreObject` say to each other: one JSON body per store operation,
 * posted to the object, and one JSON answer. Internal to this package (both ends are of the same version: they are
 * bundled into one Worker).
 */

/** The URL the store calls the object on (a Durable Object stub needs an absolute URL; the host is not used). */
export const STORE_URL = 'https://pqc-session-store.internal/';

/** The operations the object answers, with their arguments. Durations are milliseconds. */
export type StoreCall =
  | {
      op: 'createSession';
      /** `serializeSessionRecord` text. */
      record: string;
      maxSessions: number;
      maxSessionsPerClient: number;
      retentionMs: number;
      maxEndedSessions: number;
    }
  | { op: 'getSession'; sessionId: string }
  | { op: 'endSession'; sessionId: string; retentionMs: number }
  | { op: 'endPeerSessions'; peerDid: string; retentionMs: number }
  | { op: 'recordNonce'; sessionId: string; nonce: string; timestampMs: number; ttlMs: number; maxNonces: number }
  | { op: 'recordHandshake'; key: string; timestampMs: number; ttlMs: number; maxHandshakes: number }
  | { op: 'recordOnce'; key: string; ttlMs: number; maxOnceKeys: number }
  | { op: 'claimMcpSession'; mcpSessionId: string; peerDid: string; ttlMs: number; maxMcpSessions: number }
  | { op: 'mcpSessionOwner'; mcpSessionId: string; ttlMs: number }
  | { op: 'recordServerRequest'; sessionId: string; requestKey: string; nonce: string; ttlMs: number; maxServerRequests: number }
  | { op: 'takeServerRequest'; sessionId: string; requestKey: string }
  | { op: 'stats' };

/**
 * The object's answer. A refusal the protocol names (`rate_limited`, `store_unavailable`) carries its `reason`; any
 * other failure only a message.
 */
export type StoreAnswer = { ok: true; value: unknown } | { ok: false; reason?: string; message: string };

/** What the object holds, counted row by row (`DurableObjectSessionStore.stats()`). */
export interface SessionStoreStats {
  /** Sessions that count against the limits: neither ended nor past their expiry. */
  liveSessions: number;
  /** Records of ended or expired sessions, kept for their retention (§6). */
  retainedSessions: number;
  /** Nonces recorded, in all sessions. */
  nonces: number;
  handshakeKeys: number;
  /** `recordOnce` keys (v1 messages). */
  onceKeys: number;
  mcpSessionOwners: number;
  serverRequests: number;
  /** The size of the object's SQLite database, bytes. */
  databaseBytes: number;
}
