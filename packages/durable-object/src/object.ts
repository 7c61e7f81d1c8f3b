/** `PQCSessionStoreObject`: the SQLite-backed Durable Object behind `DurableObjectSessionStore`. */
import type { NonceOutcome, SessionRecord } from '@pqc-mcp/core';
import { parseSessionRecord, recordRetainedUntil, serializeSessionRecord } from '@pqc-mcp/core/internal';
import type { SessionStoreStats, StoreCall } from './calls.js';
import { packHex, unpackHex } from './hex.js';

/** A SQLite value as the Workers runtime returns it. */
type SqlValue = ArrayBuffer | string | number | null;
type Row = Record<string, SqlValue>;

/** The part of a SQL cursor used here (`SqlStorageCursor`). */
export interface SqlCursorLike {
  toArray(): Record<string, unknown>[];
}

/** The part of `SqlStorage` used here. */
export interface SqlStorageLike {
  exec(query: string, ...bindings: unknown[]): SqlCursorLike;
  /** The database size, bytes (reported by `stats`). */
  readonly databaseSize?: number;
}

/** The part of `DurableObjectState` used here: SQLite-backed storage. */
export interface DurableObjectStateLike {
  storage: {
    sql?: SqlStorageLike;
    /** Runs `closure` as one transaction, rolled back if it throws (SQLite-backed objects have it). */
    transactionSync?<T>(closure: () => T): T;
  };
}

/** Tuning of `PQCSessionStoreObject`, for a subclass (the runtime constructs the class with `(state, env)` only). */
export interface PQCSessionStoreObjectOptions {
  /** Expired rows are swept at most this often, ms (default 60 000); the first call after the object starts sweeps. */
  sweepIntervalMs?: number;
  /** Rows a sweep deletes per table at most (default 1000); a sweep that hit it runs again on the next call. */
  sweepBatch?: number;
}

/** The version of the schema below; an object holding another one (or the tables of 0.1) starts afresh. */
const SCHEMA_VERSION = 2;

/**
 * One row per session, the record in columns, plus what the store keeps of it: whether it counts against the limits
 * (`live`), when it was last used, when its record may be forgotten, and its nonce window (floor, count, next arrival
 * number). The partial indexes cover only the rows each question is about. The public key (1312 to 2592 bytes, kept
 * as bytes) is in a row of its own, with the session's `n`: a session row holding it would fill a 4 KiB SQLite page
 * by itself, while two ML-DSA-65 keys share one and session rows pack by the dozen.
 */
const SCHEMA = [
  `CREATE TABLE pqc_sessions (
     n INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, profile INTEGER NOT NULL, peer_did TEXT NOT NULL,
     algorithm TEXT NOT NULL, local_did TEXT NOT NULL, created_at INTEGER NOT NULL,
     expires_at INTEGER NOT NULL, ended_at INTEGER, retention_ms INTEGER NOT NULL, forget_at INTEGER NOT NULL,
     live INTEGER NOT NULL, last_used INTEGER NOT NULL, floor_ms INTEGER, nonce_count INTEGER NOT NULL,
     next_seq INTEGER NOT NULL)`,
  'CREATE INDEX pqc_sessions_lru ON pqc_sessions (last_used) WHERE live = 1',
  'CREATE INDEX pqc_sessions_client ON pqc_sessions (peer_did, created_at) WHERE live = 1',
  'CREATE INDEX pqc_sessions_expiry ON pqc_sessions (expires_at) WHERE live = 1',
  'CREATE INDEX pqc_sessions_forget ON pqc_sessions (forget_at) WHERE live = 0',
  'CREATE TABLE pqc_keys (n INTEGER PRIMARY KEY, peer_key BLOB NOT NULL)',
  // A session's nonces in arrival order (seq), and by value.
  `CREATE TABLE pqc_nonces (
     sess INTEGER NOT NULL, seq INTEGER NOT NULL, nonce BLOB NOT NULL, expires_at INTEGER NOT NULL, ts INTEGER NOT NULL,
     PRIMARY KEY (sess, seq)) WITHOUT ROWID`,
  'CREATE UNIQUE INDEX pqc_nonces_value ON pqc_nonces (sess, nonce)',
  // Handshake keys in arrival order (seq); their floor is in pqc_meta.
  'CREATE TABLE pqc_handshakes (seq INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, expires_at INTEGER NOT NULL, ts INTEGER NOT NULL)',
  'CREATE TABLE pqc_once (key TEXT PRIMARY KEY, expires_at INTEGER NOT NULL) WITHOUT ROWID',
  'CREATE INDEX pqc_once_expiry ON pqc_once (expires_at)',
  'CREATE TABLE pqc_owners (mcp TEXT PRIMARY KEY, did TEXT NOT NULL, expires_at INTEGER NOT NULL) WITHOUT ROWID',
  'CREATE INDEX pqc_owners_expiry ON pqc_owners (expires_at)',
  `CREATE TABLE pqc_requests (
     sid TEXT NOT NULL, rkey TEXT NOT NULL, nonce TEXT NOT NULL, expires_at INTEGER NOT NULL, PRIMARY KEY (sid, rkey)) WITHOUT ROWID`,
  'CREATE INDEX pqc_requests_expiry ON pqc_requests (expires_at)',
];

/** Every table of this schema and of earlier ones (dropped when the schema changes). */
const TABLES = ['pqc_sessions', 'pqc_keys', 'pqc_nonces', 'pqc_handshakes', 'pqc_once', 'pqc_owners', 'pqc_requests'];

/** A number past every sequence number and time (SQLite integers are 64-bit). */
const BEYOND = Number.MAX_SAFE_INTEGER;

/** The columns of a session's record, with its key and what the store keeps of it. */
const RECORD = '*, (SELECT peer_key FROM pqc_keys WHERE pqc_keys.n = pqc_sessions.n) AS peer_key';

/** The columns of a session row needed for its nonce window and liveness. */
const STATE = 'n, expires_at, ended_at, forget_at, live, floor_ms, nonce_count, next_seq';

/** Those columns, as numbers. */
interface SessionState {
  n: number;
  expiresAt: number;
  endedAt: number | null;
  live: number;
  floorMs: number | null;
  nonceCount: number;
  nextSeq: number;
}

function stateOf(row: Row): SessionState {
  const orNull = (value: SqlValue) => (value === null ? null : Number(value));
  return {
    n: Number(row.n),
    expiresAt: Number(row.expires_at),
    endedAt: orNull(row.ended_at),
    live: Number(row.live),
    floorMs: orNull(row.floor_ms),
    nonceCount: Number(row.nonce_count),
    nextSeq: Number(row.next_seq),
  };
}

/** The counters the limits and bounds compare with, kept in memory (counted once when the object starts). */
interface Counts {
  live: number;
  retained: number;
  handshakes: number;
  once: number;
  owners: number;
  requests: number;
}

/** A call that is not a well-formed store operation (400). */
class BadCall extends Error {}

/** A refusal the protocol names, answered after the operation's writes (a sweep) are kept. */
class Refusal {
  constructor(
    readonly reason: 'rate_limited' | 'store_unavailable',
    readonly message: string,
  ) {}
}

function text(value: unknown, name: string, max = 1024): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > max) throw new BadCall(`"${name}" must be a non-empty string of at most ${max} characters`);
  return value;
}

function finite(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new BadCall(`"${name}" must be a finite number`);
  return value;
}

function duration(value: unknown, name: string): number {
  const ms = finite(value, name);
  if (ms < 0) throw new BadCall(`"${name}" must not be negative`);
  return ms;
}

function count(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) throw new BadCall(`"${name}" must be a positive integer`);
  return value;
}

function sessionRecord(value: unknown): SessionRecord {
  try {
    return parseSessionRecord(text(value, 'record', 16_384));
  } catch (err) {
    throw new BadCall(`"record" is not a session record: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** The session record a row holds. */
function recordOf(row: Row): SessionRecord {
  const record: SessionRecord = {
    sessionId: String(row.id),
    profile: Number(row.profile) as SessionRecord['profile'],
    peerDid: String(row.peer_did),
    peerAlgorithm: String(row.algorithm) as SessionRecord['peerAlgorithm'],
    peerPublicKey: unpackHex(row.peer_key),
    localDid: String(row.local_did),
    createdAt: Number(row.created_at),
    expiresAt: Number(row.expires_at),
  };
  if (row.ended_at !== null) record.endedAt = Number(row.ended_at);
  return record;
}

/**
 * The Durable Object class behind `DurableObjectSessionStore`. Export it from the Worker's main module and bind it
 * as a SQLite-backed class:
 *
 * ```toml
 * [[durable_objects.bindings]]
 * name = "PQC_SESSIONS"
 * class_name = "PQCSessionStoreObject"
 * [[migrations]]
 * tag = "v1"
 * new_sqlite_classes = ["PQCSessionStoreObject"]
 * ```
 *
 * Each request to it is one store operation, done in synchronous SQL inside one `transactionSync`: the runtime runs
 * one request of an object at a time and nothing awaits between a read and the write that depends on it, so each
 * operation is atomic (and an operation that throws leaves nothing behind). What it stores is bounded by the limits
 * and bounds every call carries, and by time: rows past their expiry are swept on the way, a batch at a time, through
 * indexes (no table is ever scanned or counted by a store operation).
 */
export class PQCSessionStoreObject {
  readonly #sql: SqlStorageLike;
  readonly #transaction: <T>(closure: () => T) => T;
  readonly #sweepIntervalMs: number;
  readonly #sweepBatch: number;
  #lastSweep = Number.NEGATIVE_INFINITY;
  #counts: Counts | undefined;

  constructor(state: DurableObjectStateLike, _env?: unknown, options: PQCSessionStoreObjectOptions = {}) {
    const storage = state?.storage;
    const sql = storage?.sql;
    if (!sql || typeof sql.exec !== 'function') {
      throw new Error('PQCSessionStoreObject needs SQLite-backed storage: declare it in new_sqlite_classes (wrangler migrations)');
    }
    this.#sql = sql;
    this.#transaction = typeof storage.transactionSync === 'function' ? (closure) => storage.transactionSync!(closure) : (closure) => closure();
    this.#sweepIntervalMs = options.sweepIntervalMs ?? 60_000;
    this.#sweepBatch = options.sweepBatch ?? 1000;
    this.#transaction(() => this.#migrate());
  }

  async fetch(request: Request): Promise<Response> {
    if (request.method !== 'POST') return Response.json({ ok: false, message: 'POST a store call' }, { status: 405 });
    let call: StoreCall;
    try {
      call = (await request.json()) as StoreCall;
    } catch {
      return Response.json({ ok: false, message: 'the call is not JSON' }, { status: 400 });
    }
    // From here on everything is synchronous, in one transaction: the operation is atomic.
    const lastSweep = this.#lastSweep;
    try {
      const value = this.#transaction(() => this.#run(call, Date.now()));
      if (value instanceof Refusal) return Response.json({ ok: false, reason: value.reason, message: value.message }, { status: 409 });
      return Response.json({ ok: true, value: value ?? null });
    } catch (err) {
      if (err instanceof BadCall) return Response.json({ ok: false, message: err.message }, { status: 400 }); // nothing was done
      // The transaction was rolled back: what memory holds of it goes too (the counters are counted again).
      this.#counts = undefined;
      this.#lastSweep = lastSweep;
      return Response.json({ ok: false, message: err instanceof Error ? err.message : String(err) }, { status: 500 });
    }
  }

  /** Creates the schema, or replaces one of another version (its sessions are forgotten: their clients re-handshake). */
  #migrate(): void {
    this.#exec('CREATE TABLE IF NOT EXISTS pqc_meta (name TEXT PRIMARY KEY, value) WITHOUT ROWID');
    if (this.#meta('schema') === SCHEMA_VERSION) return;
    for (const table of TABLES) this.#exec(`DROP TABLE IF EXISTS ${table}`);
    for (const statement of SCHEMA) this.#exec(statement);
    this.#exec('DELETE FROM pqc_meta');
    this.#setMeta('schema', SCHEMA_VERSION);
  }

  /** Runs a call: checked first, then the counters and a sweep if one is due, then the operation. */
  #run(call: StoreCall, now: number): unknown {
    const operation = this.#operation(call, now);
    void this.#count; // counted before any write: every write below adjusts the counters
    if (now - this.#lastSweep >= this.#sweepIntervalMs) this.#sweep(now);
    return operation();
  }

  /** The operation a call asks for, its arguments checked (a `BadCall` before anything is read or written). */
  #operation(call: StoreCall, now: number): () => unknown {
    if (typeof call !== 'object' || call === null) throw new BadCall('the call must be an object');
    switch (call.op) {
      case 'createSession': {
        const record = sessionRecord(call.record);
        const maxSessions = count(call.maxSessions, 'maxSessions');
        const maxPerClient = count(call.maxSessionsPerClient, 'maxSessionsPerClient');
        const retentionMs = duration(call.retentionMs, 'retentionMs');
        const maxEnded = count(call.maxEndedSessions, 'maxEndedSessions');
        return () => this.#createSession(record, maxSessions, maxPerClient, retentionMs, maxEnded, now);
      }
      case 'getSession': {
        const sessionId = text(call.sessionId, 'sessionId');
        return () => {
          const row = this.#session(sessionId, now);
          return row && serializeSessionRecord(recordOf(row));
        };
      }
      case 'endSession': {
        const sessionId = text(call.sessionId, 'sessionId');
        const retentionMs = duration(call.retentionMs, 'retentionMs');
        return () => this.#endSession(sessionId, retentionMs, now);
      }
      case 'endPeerSessions': {
        const peerDid = text(call.peerDid, 'peerDid');
        const retentionMs = duration(call.retentionMs, 'retentionMs');
        return () => this.#endPeerSessions(peerDid, retentionMs, now);
      }
      case 'recordNonce': {
        const sessionId = text(call.sessionId, 'sessionId');
        const nonce = text(call.nonce, 'nonce');
        const timestampMs = finite(call.timestampMs, 'timestampMs');
        const ttlMs = duration(call.ttlMs, 'ttlMs');
        const maxNonces = count(call.maxNonces, 'maxNonces');
        return () => this.#recordNonce(sessionId, nonce, timestampMs, ttlMs, maxNonces, now);
      }
      case 'recordHandshake': {
        const key = text(call.key, 'key');
        const timestampMs = finite(call.timestampMs, 'timestampMs');
        const ttlMs = duration(call.ttlMs, 'ttlMs');
        const maxHandshakes = count(call.maxHandshakes, 'maxHandshakes');
        return () => this.#recordHandshake(key, timestampMs, ttlMs, maxHandshakes, now);
      }
      case 'recordOnce': {
        const key = text(call.key, 'key');
        const ttlMs = duration(call.ttlMs, 'ttlMs');
        const maxOnceKeys = count(call.maxOnceKeys, 'maxOnceKeys');
        return () => this.#recordOnce(key, ttlMs, maxOnceKeys, now);
      }
      case 'claimMcpSession': {
        const mcpSessionId = text(call.mcpSessionId, 'mcpSessionId');
        const peerDid = text(call.peerDid, 'peerDid');
        const ttlMs = duration(call.ttlMs, 'ttlMs');
        const maxOwners = count(call.maxMcpSessions, 'maxMcpSessions');
        return () => this.#claimMcpSession(mcpSessionId, peerDid, ttlMs, maxOwners, now);
      }
      case 'mcpSessionOwner': {
        const mcpSessionId = text(call.mcpSessionId, 'mcpSessionId');
        const ttlMs = duration(call.ttlMs, 'ttlMs');
        return () => this.#mcpSessionOwner(mcpSessionId, ttlMs, now);
      }
      case 'recordServerRequest': {
        const sessionId = text(call.sessionId, 'sessionId');
        const requestKey = text(call.requestKey, 'requestKey');
        const nonce = text(call.nonce, 'nonce');
        const ttlMs = duration(call.ttlMs, 'ttlMs');
        const maxRequests = count(call.maxServerRequests, 'maxServerRequests');
        return () => this.#recordServerRequest(sessionId, requestKey, nonce, ttlMs, maxRequests, now);
      }
      case 'takeServerRequest': {
        const sessionId = text(call.sessionId, 'sessionId');
        const requestKey = text(call.requestKey, 'requestKey');
        return () => this.#takeServerRequest(sessionId, requestKey, now);
      }
      case 'stats':
        return () => this.#stats();
      default:
        throw new BadCall(`unknown operation ${String((call as { op?: unknown }).op)}`);
    }
  }

  // --- SQL plumbing ---

  #exec(query: string, ...bindings: unknown[]): void {
    this.#sql.exec(query, ...bindings);
  }

  #rows(query: string, ...bindings: unknown[]): Row[] {
    return this.#sql.exec(query, ...bindings).toArray() as Row[];
  }

  /** The number of rows a `… RETURNING` statement touched. */
  #changed(query: string, ...bindings: unknown[]): number {
    return this.#rows(query, ...bindings).length;
  }

  #number(query: string, ...bindings: unknown[]): number {
    const row = this.#rows(query, ...bindings)[0];
    return row ? Number(Object.values(row)[0] ?? 0) : 0;
  }

  #meta(name: string): number | undefined {
    const row = this.#rows('SELECT value FROM pqc_meta WHERE name = ?', name)[0];
    return row === undefined || row.value === null ? undefined : Number(row.value);
  }

  #setMeta(name: string, value: number): void {
    this.#exec('INSERT OR REPLACE INTO pqc_meta (name, value) VALUES (?, ?)', name, value);
  }

  /** The counters, counted once per start of the object (and after a rolled-back operation). */
  get #count(): Counts {
    return (this.#counts ??= {
      live: this.#number('SELECT COUNT(*) FROM pqc_sessions WHERE live = 1'),
      retained: this.#number('SELECT COUNT(*) FROM pqc_sessions WHERE live = 0'),
      handshakes: this.#number('SELECT COUNT(*) FROM pqc_handshakes'),
      once: this.#number('SELECT COUNT(*) FROM pqc_once'),
      owners: this.#number('SELECT COUNT(*) FROM pqc_owners'),
      requests: this.#number('SELECT COUNT(*) FROM pqc_requests'),
    });
  }

  // --- Sessions ---

  /** A session's row while its record is kept (one past its retention is forgotten here). */
  #session(sessionId: string, now: number, columns = RECORD): Row | undefined {
    const row = this.#rows(`SELECT ${columns} FROM pqc_sessions WHERE id = ?`, sessionId)[0];
    if (row === undefined) return undefined;
    if (Number(row.forget_at) <= now) {
      this.#forget(Number(row.n), Number(row.live));
      return undefined;
    }
    return row;
  }

  /** Deletes a session's record and nonces. */
  #forget(n: number, live: number): void {
    const counts = this.#count;
    this.#exec('DELETE FROM pqc_nonces WHERE sess = ?', n);
    this.#exec('DELETE FROM pqc_keys WHERE n = ?', n);
    this.#exec('DELETE FROM pqc_sessions WHERE n = ?', n);
    if (live === 1) counts.live -= 1;
    else counts.retained -= 1;
  }

  /** Live sessions past their expiry stop counting against the limits (their records stay for the retention). */
  #demoteExpired(now: number, limit: number): number {
    const counts = this.#count;
    const demoted = this.#changed(
      'UPDATE pqc_sessions SET live = 0 WHERE n IN (SELECT n FROM pqc_sessions WHERE live = 1 AND expires_at <= ? LIMIT ?) RETURNING n',
      now,
      limit,
    );
    counts.live -= demoted;
    counts.retained += demoted;
    return demoted;
  }

  /** Ends a session now (a `RECORD` row); its record is kept until `recordRetainedUntil`. Returns its id. */
  #end(row: Row, now: number, retentionMs = Number(row.retention_ms)): string {
    const counts = this.#count;
    const record = recordOf(row);
    record.endedAt = now;
    const forgetAt = recordRetainedUntil(record, retentionMs);
    this.#exec('UPDATE pqc_sessions SET live = 0, ended_at = ?, retention_ms = ?, forget_at = ? WHERE n = ?', now, retentionMs, forgetAt, row.n);
    if (Number(row.live) === 1) {
      counts.live -= 1;
      counts.retained += 1;
    }
    return record.sessionId;
  }

  #createSession(
    record: SessionRecord,
    maxSessions: number,
    maxSessionsPerClient: number,
    retentionMs: number,
    maxEndedSessions: number,
    now: number,
  ): string[] | Refusal {
    if (this.#session(record.sessionId, now, 'n, forget_at, live')) return new Refusal('store_unavailable', 'a session with this id exists already');
    const counts = this.#count;
    this.#demoteExpired(now, BEYOND);
    const ended: string[] = [];
    // The client's oldest live sessions, down to one less than its cap.
    const mine = this.#rows(`SELECT ${RECORD} FROM pqc_sessions WHERE live = 1 AND peer_did = ? ORDER BY created_at, n`, record.peerDid);
    for (let i = 0; mine.length - i >= maxSessionsPerClient; i++) ended.push(this.#end(mine[i]!, now));
    // The least recently used live sessions, down to one less than the cap.
    if (counts.live >= maxSessions) {
      const lru = this.#rows(`SELECT ${RECORD} FROM pqc_sessions WHERE live = 1 ORDER BY last_used, n LIMIT ?`, counts.live - maxSessions + 1);
      for (const row of lru) ended.push(this.#end(row, now));
    }
    const live = record.endedAt === undefined && record.expiresAt > now ? 1 : 0;
    const n = this.#number(
      `INSERT INTO pqc_sessions (id, profile, peer_did, algorithm, local_did, created_at, expires_at, ended_at,
         retention_ms, forget_at, live, last_used, floor_ms, nonce_count, next_seq)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, 0, 0) RETURNING n`,
      record.sessionId,
      record.profile,
      record.peerDid,
      record.peerAlgorithm,
      record.localDid,
      record.createdAt,
      record.expiresAt,
      record.endedAt ?? null,
      retentionMs,
      recordRetainedUntil(record, retentionMs),
      live,
      now,
    );
    this.#exec('INSERT INTO pqc_keys (n, peer_key) VALUES (?, ?)', n, packHex(record.peerPublicKey));
    if (live === 1) counts.live += 1;
    else counts.retained += 1;
    // Past the bound on kept records, those that would be forgotten first go now (their sessions become unknown).
    if (counts.retained > maxEndedSessions) {
      const excess = this.#rows('SELECT n FROM pqc_sessions WHERE live = 0 ORDER BY forget_at LIMIT ?', counts.retained - maxEndedSessions);
      for (const row of excess) this.#forget(Number(row.n), 0);
    }
    return ended;
  }

  #endSession(sessionId: string, retentionMs: number, now: number): void {
    const row = this.#session(sessionId, now);
    if (!row || row.ended_at !== null) return;
    this.#end(row, now, Math.max(Number(row.retention_ms), retentionMs));
  }

  /** Ends every live session of one client (its trust was withdrawn); the ids of those it ended. */
  #endPeerSessions(peerDid: string, retentionMs: number, now: number): string[] {
    this.#demoteExpired(now, BEYOND);
    const mine = this.#rows(`SELECT ${RECORD} FROM pqc_sessions WHERE live = 1 AND peer_did = ? ORDER BY created_at, n`, peerDid);
    return mine.map((row) => this.#end(row, now, Math.max(Number(row.retention_ms), retentionMs)));
  }

  /**
   * Step 7 of §3: the nonce window of `NonceWindow` (core store/nonce-window.ts) in SQL, and the session's liveness,
   * in one step. A nonce seen and unexpired is a replay; past `maxNonces` the oldest by arrival are dropped and their
   * time becomes the session's floor, at or below which a message can no longer be proven new (so dropping never
   * reopens a replay). A new nonce is recorded whether the session is live, ended or expired.
   */
  #recordNonce(sessionId: string, nonce: string, timestampMs: number, ttlMs: number, maxNonces: number, now: number): NonceOutcome {
    const row = this.#session(sessionId, now, STATE);
    if (!row) return 'unknown';
    const s = stateOf(row);
    const { nonceCount, nextSeq } = s;
    // The expired nonces at the front of the window go (every nonce gets a TTL of the same order, as in NonceWindow).
    s.nonceCount -= this.#changed(
      `DELETE FROM pqc_nonces WHERE sess = ?1 AND seq < COALESCE(
         (SELECT seq FROM pqc_nonces WHERE sess = ?1 AND expires_at > ?2 ORDER BY seq LIMIT 1), ?3) RETURNING 1`,
      s.n,
      now,
      s.nextSeq,
    );
    const value = packHex(nonce);
    const outcome = ((): NonceOutcome => {
      const seen = this.#rows('SELECT seq, expires_at FROM pqc_nonces WHERE sess = ? AND nonce = ?', s.n, value)[0];
      if (seen && Number(seen.expires_at) > now) return 'replay';
      if (s.floorMs !== null && timestampMs <= s.floorMs) return 'replay';
      if (seen) s.nonceCount -= this.#changed('DELETE FROM pqc_nonces WHERE sess = ? AND seq = ? RETURNING 1', s.n, seen.seq);
      if (s.nonceCount >= maxNonces) {
        const dropped = this.#rows(
          'DELETE FROM pqc_nonces WHERE sess = ?1 AND seq IN (SELECT seq FROM pqc_nonces WHERE sess = ?1 ORDER BY seq LIMIT ?2) RETURNING ts',
          s.n,
          s.nonceCount - maxNonces + 1,
        );
        s.nonceCount -= dropped.length;
        for (const { ts } of dropped) s.floorMs = Math.max(s.floorMs ?? Number(ts), Number(ts));
      }
      this.#exec('INSERT INTO pqc_nonces (sess, seq, nonce, expires_at, ts) VALUES (?, ?, ?, ?, ?)', s.n, s.nextSeq, value, now + ttlMs, timestampMs);
      s.nextSeq += 1;
      s.nonceCount += 1;
      if (s.endedAt !== null) return 'ended';
      if (s.expiresAt <= now) return 'expired';
      return 'accepted';
    })();
    const demote = s.live === 1 && s.expiresAt <= now; // met past its expiry before a sweep: it stops counting
    if (demote) {
      this.#count.live -= 1;
      this.#count.retained += 1;
    }
    const lastUsed = outcome === 'accepted' ? now : null;
    // One write of the session row, and none for a replay that changed nothing.
    if (lastUsed !== null || demote || s.nonceCount !== nonceCount || s.nextSeq !== nextSeq) {
      this.#exec(
        'UPDATE pqc_sessions SET nonce_count = ?, next_seq = ?, floor_ms = ?, live = ?, last_used = COALESCE(?, last_used) WHERE n = ?',
        s.nonceCount,
        s.nextSeq,
        s.floorMs,
        demote ? 0 : s.live,
        lastUsed,
        s.n,
      );
    }
    return outcome;
  }

  // --- Handshake keys, v1 keys ---

  /** The nonce-floor rule over handshake keys (one window for the object; its floor is kept in pqc_meta). */
  #recordHandshake(key: string, timestampMs: number, ttlMs: number, maxHandshakes: number, now: number): boolean {
    const counts = this.#count;
    if (counts.handshakes >= maxHandshakes) counts.handshakes -= this.#sweepHandshakes(now, this.#sweepBatch);
    const seen = this.#rows('SELECT seq, expires_at FROM pqc_handshakes WHERE key = ?', key)[0];
    if (seen && Number(seen.expires_at) > now) return false;
    const floor = this.#meta('handshake_floor');
    if (floor !== undefined && timestampMs <= floor) return false;
    if (seen) counts.handshakes -= this.#changed('DELETE FROM pqc_handshakes WHERE seq = ? RETURNING 1', seen.seq);
    if (counts.handshakes >= maxHandshakes) {
      const dropped = this.#rows(
        'DELETE FROM pqc_handshakes WHERE seq IN (SELECT seq FROM pqc_handshakes ORDER BY seq LIMIT ?) RETURNING ts',
        counts.handshakes - maxHandshakes + 1,
      );
      counts.handshakes -= dropped.length;
      if (dropped.length > 0) this.#setMeta('handshake_floor', Math.max(floor ?? Number.NEGATIVE_INFINITY, ...dropped.map((row) => Number(row.ts))));
    }
    this.#exec('INSERT INTO pqc_handshakes (key, expires_at, ts) VALUES (?, ?, ?)', key, now + ttlMs, timestampMs);
    counts.handshakes += 1;
    return true;
  }

  /**
   * Deletes expired handshake keys from the oldest on, stopping at the first live one or after `limit`; returns how
   * many. Read in growing chunks, so a sweep reads little more than it deletes.
   */
  #sweepHandshakes(now: number, limit: number): number {
    let last: number | undefined;
    let deleted = 0;
    for (let chunk = 8; deleted < limit; chunk = Math.min(chunk * 2, 512)) {
      const want = Math.min(chunk, limit - deleted);
      const rows = this.#rows('SELECT seq, expires_at FROM pqc_handshakes WHERE seq > ? ORDER BY seq LIMIT ?', last ?? -1, want);
      let expired = 0;
      while (expired < rows.length && Number(rows[expired]!.expires_at) <= now) expired++;
      if (expired > 0) last = Number(rows[expired - 1]!.seq);
      deleted += expired;
      if (expired < rows.length || rows.length < want) break;
    }
    return last === undefined ? 0 : this.#changed('DELETE FROM pqc_handshakes WHERE seq <= ? RETURNING 1', last);
  }

  /** A v1 key, never dropped before its TTL: a full table refuses (`rate_limited`) until keys expire. */
  #recordOnce(key: string, ttlMs: number, maxOnceKeys: number, now: number): boolean | Refusal {
    const counts = this.#count;
    const seen = this.#rows('SELECT expires_at FROM pqc_once WHERE key = ?', key)[0];
    if (seen && Number(seen.expires_at) > now) return false;
    if (!seen && counts.once >= maxOnceKeys) {
      counts.once -= this.#changed('DELETE FROM pqc_once WHERE key IN (SELECT key FROM pqc_once WHERE expires_at <= ?) RETURNING 1', now);
      if (counts.once >= maxOnceKeys) return new Refusal('rate_limited', 'too many v1 messages are remembered: try again later');
    }
    this.#exec('INSERT OR REPLACE INTO pqc_once (key, expires_at) VALUES (?, ?)', key, now + ttlMs);
    if (!seen) counts.once += 1;
    return true;
  }

  // --- MCP session owners, server requests ---

  /** Makes room for one more row in an expiring table: expired rows go, then those expiring first. */
  #makeRoom(table: 'pqc_owners' | 'pqc_requests', key: string, max: number, now: number): number {
    const expired = this.#changed(`DELETE FROM ${table} WHERE (${key}) IN (SELECT ${key} FROM ${table} WHERE expires_at <= ?) RETURNING 1`, now);
    const held = (table === 'pqc_owners' ? this.#count.owners : this.#count.requests) - expired;
    const dropped = held >= max ? this.#changed(`DELETE FROM ${table} WHERE (${key}) IN (SELECT ${key} FROM ${table} ORDER BY expires_at LIMIT ?) RETURNING 1`, held - max + 1) : 0;
    return expired + dropped;
  }

  #claimMcpSession(mcpSessionId: string, peerDid: string, ttlMs: number, maxOwners: number, now: number): boolean {
    const counts = this.#count;
    const row = this.#rows('SELECT did, expires_at FROM pqc_owners WHERE mcp = ?', mcpSessionId)[0];
    if (row && Number(row.expires_at) > now && row.did !== peerDid) return false;
    if (!row && counts.owners >= maxOwners) counts.owners -= this.#makeRoom('pqc_owners', 'mcp', maxOwners, now);
    this.#exec('INSERT OR REPLACE INTO pqc_owners (mcp, did, expires_at) VALUES (?, ?, ?)', mcpSessionId, peerDid, now + ttlMs);
    if (!row) counts.owners += 1;
    return true;
  }

  #mcpSessionOwner(mcpSessionId: string, ttlMs: number, now: number): string | undefined {
    const row = this.#rows('SELECT did, expires_at FROM pqc_owners WHERE mcp = ?', mcpSessionId)[0];
    if (!row) return undefined;
    if (Number(row.expires_at) <= now) {
      this.#count.owners -= this.#changed('DELETE FROM pqc_owners WHERE mcp = ? RETURNING 1', mcpSessionId);
      return undefined;
    }
    this.#exec('UPDATE pqc_owners SET expires_at = ? WHERE mcp = ?', now + ttlMs, mcpSessionId);
    return String(row.did);
  }

  #recordServerRequest(sessionId: string, requestKey: string, nonce: string, ttlMs: number, maxRequests: number, now: number): void {
    const counts = this.#count;
    const held = this.#rows('SELECT 1 FROM pqc_requests WHERE sid = ? AND rkey = ?', sessionId, requestKey).length > 0;
    if (!held && counts.requests >= maxRequests) counts.requests -= this.#makeRoom('pqc_requests', 'sid, rkey', maxRequests, now);
    this.#exec('INSERT OR REPLACE INTO pqc_requests (sid, rkey, nonce, expires_at) VALUES (?, ?, ?, ?)', sessionId, requestKey, nonce, now + ttlMs);
    if (!held) counts.requests += 1;
  }

  #takeServerRequest(sessionId: string, requestKey: string, now: number): string | undefined {
    const counts = this.#count;
    const row = this.#rows('DELETE FROM pqc_requests WHERE sid = ? AND rkey = ? RETURNING nonce, expires_at', sessionId, requestKey)[0];
    if (!row) return undefined;
    counts.requests -= 1;
    return Number(row.expires_at) > now ? String(row.nonce) : undefined;
  }

  // --- Sweeping, stats ---

  /**
   * Drops what can no longer matter, at most `sweepBatch` rows per table, each found through an index: live sessions
   * past their expiry stop counting, records past their retention go with their nonces, expired handshake keys, v1
   * keys, MCP session owners and server requests go. (A session's expired nonces go as it records new ones.)
   */
  #sweep(now: number): void {
    const batch = this.#sweepBatch;
    const counts = this.#count;
    let full = this.#demoteExpired(now, batch) === batch;
    const gone = this.#rows('SELECT n FROM pqc_sessions WHERE live = 0 AND forget_at <= ? ORDER BY forget_at LIMIT ?', now, batch);
    for (const row of gone) this.#forget(Number(row.n), 0);
    full ||= gone.length === batch;
    const handshakes = this.#sweepHandshakes(now, batch);
    counts.handshakes -= handshakes;
    const once = this.#changed('DELETE FROM pqc_once WHERE key IN (SELECT key FROM pqc_once WHERE expires_at <= ? LIMIT ?) RETURNING 1', now, batch);
    counts.once -= once;
    const owners = this.#changed('DELETE FROM pqc_owners WHERE mcp IN (SELECT mcp FROM pqc_owners WHERE expires_at <= ? LIMIT ?) RETURNING 1', now, batch);
    counts.owners -= owners;
    const requests = this.#changed(
      'DELETE FROM pqc_requests WHERE (sid, rkey) IN (SELECT sid, rkey FROM pqc_requests WHERE expires_at <= ? LIMIT ?) RETURNING 1',
      now,
      batch,
    );
    counts.requests -= requests;
    full ||= [handshakes, once, owners, requests].some((n) => n === batch);
    if (!full) this.#lastSweep = now;
  }

  /** Every table counted (rows read: for monitoring and tests, not for the store operations). */
  #stats(): SessionStoreStats {
    return {
      liveSessions: this.#number('SELECT COUNT(*) FROM pqc_sessions WHERE live = 1'),
      retainedSessions: this.#number('SELECT COUNT(*) FROM pqc_sessions WHERE live = 0'),
      nonces: this.#number('SELECT COUNT(*) FROM pqc_nonces'),
      handshakeKeys: this.#number('SELECT COUNT(*) FROM pqc_handshakes'),
      onceKeys: this.#number('SELECT COUNT(*) FROM pqc_once'),
      mcpSessionOwners: this.#number('SELECT COUNT(*) FROM pqc_owners'),
      serverRequests: this.#number('SELECT COUNT(*) FROM pqc_requests'),
      databaseBytes: this.#sql.databaseSize ?? 0,
    };
  }
}
