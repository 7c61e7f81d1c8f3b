/**
 * `@pqc-mcp/durable-object`: a `SessionStore` on a Cloudflare Durable Object, for PQC servers on Workers.
 *
 * A Worker runs in many isolates at once, in many locations, and an isolate's memory lives only as long as the
 * isolate: a `MemorySessionStore` there forgets sessions at random and, worse, two isolates would each accept the
 * same replayed nonce. Sessions and nonces need one strongly consistent home, which is what a Durable Object is: one
 * instance in the world per name, its requests handled one at a time, its storage transactional.
 *
 * Workers KV is NOT safe for nonces: it is eventually consistent (a write is visible in other locations only after up
 * to 60 seconds), and it has no atomic compare-and-set, so "was this nonce seen? if not, record it" is a race that
 * two requests (or two locations) can both win: a replayed request inside that window would be accepted.
 *
 * Two pieces:
 *   - `PQCSessionStoreObject`, the Durable Object class: export it from the Worker's main module and bind it as a
 *     SQLite-backed class (wrangler `new_sqlite_classes`, the only kind the Workers free plan offers). Every store
 *     operation runs as synchronous SQL inside one `fetch` of the object, with no `await` between its read and its
 *     write: it is atomic, and it is durable before the answer leaves the object (output gates).
 *   - `DurableObjectSessionStore`, the `SessionStore` the PQC layer uses: each method is one call to the object.
 *     A call that fails (the object cannot be reached) throws, and the server answers `store_unavailable`.
 *
 * ```ts
 * import { DurableObjectSessionStore, PQCSessionStoreObject } from '@pqc-mcp/durable-object';
 * export { PQCSessionStoreObject };
 * // in fetch(request, env): pqc({ identity, store: new DurableObjectSessionStore(env.PQC_SESSIONS) })
 * ```
 *
 * Only web standards and the Workers runtime's Durable Object API are used; no Cloudflare type package is needed
 * (the `*Like` interfaces below are the parts used, and the real types fit them).
 */
import {
  DEFAULT_MAX_NONCES_PER_SESSION,
  PQCTransportError,
  isAlgorithm,
  type SessionLimits,
  type SessionRecord,
  type SessionStore,
} from '@pqc-mcp/core';

/** The part of a Durable Object stub used here (`DurableObjectStub`). */
export interface DurableObjectStubLike {
  fetch(input: string, init?: RequestInit): Promise<Response>;
}

/** The part of a Durable Object namespace binding used here (`DurableObjectNamespace`). */
export interface DurableObjectNamespaceLike {
  idFromName(name: string): unknown;
  get(id: never): DurableObjectStubLike;
}

/** The part of a SQL cursor used here (`SqlStorageCursor`). */
export interface SqlCursorLike {
  toArray(): Record<string, unknown>[];
}

/** The part of `DurableObjectState` used here: SQLite-backed storage. */
export interface DurableObjectStateLike {
  storage: { sql?: { exec(query: string, ...bindings: unknown[]): SqlCursorLike } };
}

/** Options of `DurableObjectSessionStore`. */
export interface DurableObjectSessionStoreOptions {
  /** Name of the object instance holding the sessions (default `pqc-sessions`); one name, one consistent store. */
  name?: string;
  /** Per-session bound on remembered nonces (default 10 000), as `MemorySessionStore`. */
  maxNoncesPerSession?: number;
  /** Bound on remembered handshake keys (default 100 000); the oldest are dropped first. */
  maxHandshakes?: number;
  /** How long an expired session is still told apart from an unknown one, seconds (default 600). */
  expiredGraceSec?: number;
}

/** The operations the object answers, with their arguments (one JSON body per call). */
type StoreCall =
  | { op: 'createSession'; record: SessionRecord; maxSessions: number; graceMs: number }
  | { op: 'getSession'; sessionId: string }
  | { op: 'deleteSession'; sessionId: string }
  | { op: 'recordNonce'; sessionId: string; nonce: string; timestampMs: number; ttlMs: number; maxNonces: number }
  | { op: 'recordHandshake'; key: string; ttlMs: number; maxHandshakes: number };

type StoreAnswer = { ok: true; value: unknown } | { ok: false; reason?: string; message: string };

/** The URL the store calls the object on (a Durable Object stub needs an absolute URL; the host is not used). */
const STORE_URL = 'https://pqc-session-store.internal/';

function positiveInt(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1) throw new TypeError(`${name} must be a positive integer`);
  return value;
}

/**
 * A `SessionStore` kept by a `PQCSessionStoreObject` Durable Object: strongly consistent across every isolate and
 * location of a Worker, each operation atomic in the object. Create it per request or once per isolate (it holds
 * only the namespace binding).
 */
export class DurableObjectSessionStore implements SessionStore {
  readonly #namespace: DurableObjectNamespaceLike;
  readonly #name: string;
  readonly #maxNonces: number;
  readonly #maxHandshakes: number;
  readonly #graceMs: number;

  constructor(namespace: DurableObjectNamespaceLike, options: DurableObjectSessionStoreOptions = {}) {
    if (!namespace || typeof namespace.idFromName !== 'function' || typeof namespace.get !== 'function') {
      throw new TypeError('DurableObjectSessionStore: the first argument must be a Durable Object namespace binding');
    }
    this.#namespace = namespace;
    this.#name = options.name ?? 'pqc-sessions';
    this.#maxNonces = positiveInt(options.maxNoncesPerSession ?? DEFAULT_MAX_NONCES_PER_SESSION, 'maxNoncesPerSession');
    this.#maxHandshakes = positiveInt(options.maxHandshakes ?? 100_000, 'maxHandshakes');
    const grace = options.expiredGraceSec ?? 600;
    if (!(grace >= 0) || !Number.isFinite(grace)) throw new TypeError('expiredGraceSec must be a non-negative number');
    this.#graceMs = grace * 1000;
  }

  async #call(call: StoreCall): Promise<unknown> {
    // A stub is made per call: a stub (an I/O object) may not be used across the requests of a Worker.
    const stub = this.#namespace.get(this.#namespace.idFromName(this.#name) as never);
    const response = await stub.fetch(STORE_URL, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(call),
    });
    const answer = (await response.json()) as StoreAnswer;
    if (answer.ok) return answer.value;
    if (answer.reason === 'too_many_sessions') throw new PQCTransportError('too_many_sessions', answer.message);
    throw new Error(`PQC session store object: ${answer.message}`);
  }

  async createSession(record: SessionRecord, limits: SessionLimits): Promise<void> {
    await this.#call({ op: 'createSession', record, maxSessions: limits.maxSessions, graceMs: this.#graceMs });
  }

  async getSession(sessionId: string): Promise<SessionRecord | undefined> {
    return ((await this.#call({ op: 'getSession', sessionId })) as SessionRecord | null) ?? undefined;
  }

  async deleteSession(sessionId: string): Promise<void> {
    await this.#call({ op: 'deleteSession', sessionId });
  }

  async recordNonce(sessionId: string, nonce: string, timestampMs: number, ttlSec: number): Promise<boolean> {
    const value = await this.#call({ op: 'recordNonce', sessionId, nonce, timestampMs, ttlMs: ttlSec * 1000, maxNonces: this.#maxNonces });
    return value === true;
  }

  async recordHandshake(key: string, ttlSec: number): Promise<boolean> {
    const value = await this.#call({ op: 'recordHandshake', key, ttlMs: ttlSec * 1000, maxHandshakes: this.#maxHandshakes });
    return value === true;
  }
}

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS pqc_sessions (
     id TEXT PRIMARY KEY, record TEXT NOT NULL, expires_at INTEGER NOT NULL, purge_at INTEGER NOT NULL, floor_ms REAL)`,
  'CREATE INDEX IF NOT EXISTS pqc_sessions_purge ON pqc_sessions (purge_at)',
  `CREATE TABLE IF NOT EXISTS pqc_nonces (
     seq INTEGER PRIMARY KEY, session_id TEXT NOT NULL, nonce TEXT NOT NULL, expires_at INTEGER NOT NULL, ts REAL NOT NULL,
     UNIQUE (session_id, nonce))`,
  'CREATE INDEX IF NOT EXISTS pqc_nonces_order ON pqc_nonces (session_id, seq)',
  'CREATE INDEX IF NOT EXISTS pqc_nonces_expiry ON pqc_nonces (expires_at)',
  'CREATE TABLE IF NOT EXISTS pqc_handshakes (key TEXT PRIMARY KEY, expires_at INTEGER NOT NULL)',
  'CREATE INDEX IF NOT EXISTS pqc_handshakes_expiry ON pqc_handshakes (expires_at)',
];

/** Expired rows are swept at most this often (besides the sweeps a full table triggers). */
const SWEEP_INTERVAL_MS = 60_000;

class BadCall extends Error {}

function text(value: unknown, name: string, max = 512): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > max) throw new BadCall(`"${name}" must be a non-empty string`);
  return value;
}

function finite(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new BadCall(`"${name}" must be a finite number`);
  return value;
}

function count(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) throw new BadCall(`"${name}" must be a positive integer`);
  return value;
}

function sessionRecord(value: unknown): SessionRecord {
  const r = value as Partial<SessionRecord> | null;
  if (typeof r !== 'object' || r === null) throw new BadCall('"record" must be an object');
  if (r.profile !== 1 && r.profile !== 2) throw new BadCall('"record.profile" must be 1 or 2');
  if (!isAlgorithm(r.peerAlgorithm)) throw new BadCall('"record.peerAlgorithm" is not an algorithm');
  return {
    sessionId: text(r.sessionId, 'record.sessionId', 128),
    profile: r.profile,
    peerDid: text(r.peerDid, 'record.peerDid'),
    peerAlgorithm: r.peerAlgorithm,
    peerPublicKey: text(r.peerPublicKey, 'record.peerPublicKey', 8192),
    localDid: text(r.localDid, 'record.localDid'),
    createdAt: finite(r.createdAt, 'record.createdAt'),
    expiresAt: finite(r.expiresAt, 'record.expiresAt'),
  };
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
 * Each request to it is one store operation, done in synchronous SQL: the runtime runs one request of an object at
 * a time and nothing awaits between a read and the write that depends on it, so each operation is atomic.
 */
export class PQCSessionStoreObject {
  readonly #sql: { exec(query: string, ...bindings: unknown[]): SqlCursorLike };
  #lastSweep = 0;

  constructor(state: DurableObjectStateLike, _env?: unknown) {
    const sql = state?.storage?.sql;
    if (!sql || typeof sql.exec !== 'function') {
      throw new Error('PQCSessionStoreObject needs SQLite-backed storage: declare it in new_sqlite_classes (wrangler migrations)');
    }
    this.#sql = sql;
    for (const statement of SCHEMA) sql.exec(statement);
  }

  async fetch(request: Request): Promise<Response> {
    if (request.method !== 'POST') return Response.json({ ok: false, message: 'POST a store call' }, { status: 405 });
    let call: StoreCall;
    try {
      call = (await request.json()) as StoreCall;
    } catch {
      return Response.json({ ok: false, message: 'the call is not JSON' }, { status: 400 });
    }
    // From here on everything is synchronous: the operation is atomic.
    try {
      return Response.json({ ok: true, value: this.#run(call, Date.now()) ?? null });
    } catch (err) {
      if (err instanceof PQCTransportError) return Response.json({ ok: false, reason: err.reason, message: err.message }, { status: 409 });
      if (err instanceof BadCall) return Response.json({ ok: false, message: err.message }, { status: 400 });
      return Response.json({ ok: false, message: err instanceof Error ? err.message : String(err) }, { status: 500 });
    }
  }

  #rows(query: string, ...bindings: unknown[]): Record<string, unknown>[] {
    return this.#sql.exec(query, ...bindings).toArray();
  }

  #number(query: string, ...bindings: unknown[]): number {
    const row = this.#rows(query, ...bindings)[0];
    return row ? Number(Object.values(row)[0]) : 0;
  }

  #run(call: StoreCall, now: number): unknown {
    if (typeof call !== 'object' || call === null) throw new BadCall('the call must be an object');
    if (now - this.#lastSweep >= SWEEP_INTERVAL_MS) this.#sweep(now);
    switch (call.op) {
      case 'createSession':
        return this.#createSession(sessionRecord(call.record), count(call.maxSessions, 'maxSessions'), Math.max(0, finite(call.graceMs, 'graceMs')), now);
      case 'getSession':
        return this.#getSession(text(call.sessionId, 'sessionId'), now);
      case 'deleteSession':
        return this.#deleteSession(text(call.sessionId, 'sessionId'));
      case 'recordNonce':
        return this.#recordNonce(
          text(call.sessionId, 'sessionId'),
          text(call.nonce, 'nonce'),
          finite(call.timestampMs, 'timestampMs'),
          finite(call.ttlMs, 'ttlMs'),
          count(call.maxNonces, 'maxNonces'),
          now,
        );
      case 'recordHandshake':
        return this.#recordHandshake(text(call.key, 'key', 1024), finite(call.ttlMs, 'ttlMs'), count(call.maxHandshakes, 'maxHandshakes'), now);
      default:
        throw new BadCall(`unknown operation ${String((call as { op?: unknown }).op)}`);
    }
  }

  /** Drops what can no longer matter: sessions past their grace, expired nonces and handshake keys. */
  #sweep(now: number): void {
    this.#lastSweep = now;
    this.#sql.exec('DELETE FROM pqc_nonces WHERE session_id IN (SELECT id FROM pqc_sessions WHERE purge_at <= ?)', now);
    this.#sql.exec('DELETE FROM pqc_sessions WHERE purge_at <= ?', now);
    this.#sql.exec('DELETE FROM pqc_nonces WHERE expires_at <= ?', now);
    this.#sql.exec('DELETE FROM pqc_handshakes WHERE expires_at <= ?', now);
  }

  #createSession(record: SessionRecord, maxSessions: number, graceMs: number, now: number): void {
    if (this.#number('SELECT COUNT(*) FROM pqc_sessions') >= maxSessions) {
      this.#sql.exec('DELETE FROM pqc_nonces WHERE session_id IN (SELECT id FROM pqc_sessions WHERE expires_at <= ?)', now);
      this.#sql.exec('DELETE FROM pqc_sessions WHERE expires_at <= ?', now);
      if (this.#number('SELECT COUNT(*) FROM pqc_sessions') >= maxSessions) {
        throw new PQCTransportError('too_many_sessions', 'the session limit is reached');
      }
    }
    this.#deleteSession(record.sessionId);
    this.#sql.exec(
      'INSERT INTO pqc_sessions (id, record, expires_at, purge_at, floor_ms) VALUES (?, ?, ?, ?, NULL)',
      record.sessionId,
      JSON.stringify(record),
      record.expiresAt,
      record.expiresAt + graceMs,
    );
  }

  #getSession(sessionId: string, now: number): SessionRecord | undefined {
    const row = this.#rows('SELECT record, purge_at FROM pqc_sessions WHERE id = ?', sessionId)[0];
    if (!row) return undefined;
    if (Number(row.purge_at) <= now) {
      this.#deleteSession(sessionId);
      return undefined;
    }
    return JSON.parse(String(row.record)) as SessionRecord;
  }

  #deleteSession(sessionId: string): void {
    this.#sql.exec('DELETE FROM pqc_nonces WHERE session_id = ?', sessionId);
    this.#sql.exec('DELETE FROM pqc_sessions WHERE id = ?', sessionId);
  }

  /**
   * The nonce window of `NonceWindow` (core session.ts), in SQL: a nonce seen and unexpired is a replay; past
   * `maxNonces` the oldest are dropped and their newest timestamp becomes a floor, below which a message can no
   * longer be proven fresh and is refused (so dropping never reopens a replay).
   */
  #recordNonce(sessionId: string, nonce: string, timestampMs: number, ttlMs: number, maxNonces: number, now: number): boolean {
    const session = this.#rows('SELECT floor_ms FROM pqc_sessions WHERE id = ?', sessionId)[0];
    if (!session) return false;
    let held = this.#number('SELECT COUNT(*) FROM pqc_nonces WHERE session_id = ?', sessionId);
    if (held >= maxNonces) {
      this.#sql.exec('DELETE FROM pqc_nonces WHERE session_id = ? AND expires_at <= ?', sessionId, now);
      held = this.#number('SELECT COUNT(*) FROM pqc_nonces WHERE session_id = ?', sessionId);
    }
    const seen = this.#rows('SELECT expires_at FROM pqc_nonces WHERE session_id = ? AND nonce = ?', sessionId, nonce)[0];
    if (seen && Number(seen.expires_at) > now) return false;
    let floor = session.floor_ms === null || session.floor_ms === undefined ? Number.NEGATIVE_INFINITY : Number(session.floor_ms);
    if (timestampMs <= floor) return false;
    if (seen) {
      this.#sql.exec('DELETE FROM pqc_nonces WHERE session_id = ? AND nonce = ?', sessionId, nonce);
      held -= 1;
    }
    if (held >= maxNonces) {
      const excess = held - maxNonces + 1;
      const oldest = 'SELECT seq FROM pqc_nonces WHERE session_id = ? ORDER BY seq LIMIT ?';
      const dropped = this.#number(`SELECT MAX(ts) FROM pqc_nonces WHERE seq IN (${oldest})`, sessionId, excess);
      this.#sql.exec(`DELETE FROM pqc_nonces WHERE seq IN (${oldest})`, sessionId, excess);
      floor = Math.max(floor, dropped);
      this.#sql.exec('UPDATE pqc_sessions SET floor_ms = ? WHERE id = ?', floor, sessionId);
    }
    this.#sql.exec(
      'INSERT INTO pqc_nonces (session_id, nonce, expires_at, ts) VALUES (?, ?, ?, ?)',
      sessionId,
      nonce,
      now + Math.max(0, ttlMs),
      timestampMs,
    );
    return true;
  }

  #recordHandshake(key: string, ttlMs: number, maxHandshakes: number, now: number): boolean {
    const seen = this.#rows('SELECT expires_at FROM pqc_handshakes WHERE key = ?', key)[0];
    if (seen && Number(seen.expires_at) > now) return false;
    if (this.#number('SELECT COUNT(*) FROM pqc_handshakes') >= maxHandshakes) {
      this.#sql.exec('DELETE FROM pqc_handshakes WHERE expires_at <= ?', now);
      const excess = this.#number('SELECT COUNT(*) FROM pqc_handshakes') - maxHandshakes + 1;
      if (excess > 0) {
        this.#sql.exec('DELETE FROM pqc_handshakes WHERE key IN (SELECT key FROM pqc_handshakes ORDER BY expires_at LIMIT ?)', excess);
      }
    }
    this.#sql.exec('INSERT OR REPLACE INTO pqc_handshakes (key, expires_at) VALUES (?, ?)', key, now + Math.max(0, ttlMs));
    return true;
  }
}
