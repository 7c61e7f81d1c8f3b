/**
 * `RedisSessionStore`: the `SessionStore` of `@pqc-mcp/core` on Redis, so several server instances behind a load
 * balancer share sessions, nonces and the handshake replay cache. Every write that decides something (a session
 * slot, a nonce, a handshake) is one atomic command or Lua script on the Redis server.
 *
 * Failure: when Redis cannot be reached every method throws `PQCTransportError('store_unavailable')` quickly (the
 * client's offline queue is off, every command has a deadline), so the server answers 503 and fails closed; the
 * client reconnects by itself and traffic resumes when Redis is back.
 */
import {
  DEFAULT_MAX_NONCES_PER_SESSION,
  PQCTransportError,
  isAlgorithm,
  type SessionLimits,
  type SessionRecord,
  type SessionStore,
} from '@pqc-mcp/core';
import { createClient } from 'redis';
import { CREATE_SESSION, DELETE_SESSION, RECORD_NONCE, type LuaScript } from './scripts.js';

/**
 * What the store needs of a Redis client: a node-redis v5/v6 client (`createClient()`), connected or not, fits.
 * Commands are sent raw (`sendCommand`), so a `keyPrefix` set on the client itself is not applied: use the store's.
 */
export interface RedisClientLike {
  readonly isOpen: boolean;
  readonly isReady: boolean;
  connect(): Promise<unknown>;
  sendCommand(args: string[], options?: { timeout?: number }): Promise<unknown>;
  on(event: 'error' | 'ready', listener: (arg?: unknown) => void): unknown;
  off(event: 'error' | 'ready', listener: (arg?: unknown) => void): unknown;
  close?(): Promise<unknown>;
  destroy?(): unknown;
}

/** Options of `RedisSessionStore`: give `client` or `url`, not both. */
export interface RedisSessionStoreOptions {
  /** An existing node-redis client, connected or not. The store connects it if needed and never closes it. */
  client?: RedisClientLike;
  /** A Redis URL (`redis://[[user]:password@]host[:port][/db]`, `rediss://` for TLS): the store owns that client. */
  url?: string;
  /** Prefix of every key the store writes (default `pqc:`). Stores with different prefixes share nothing. */
  keyPrefix?: string;
  /** Bound on the nonces remembered per session within the acceptance window (default 10 000). */
  maxNoncesPerSession?: number;
  /** How long an expired session is still told apart from an unknown one, seconds (default 600). */
  expiredGraceSec?: number;
  /** How long the first connection may take before requests fail, ms (default 2000). */
  connectTimeoutMs?: number;
  /** Deadline of every command, ms (default 1000): past it the operation fails with `store_unavailable`. */
  commandTimeoutMs?: number;
  /** Longest wait between reconnection attempts of a client the store created, ms (default 1000). */
  maxReconnectDelayMs?: number;
  /** Told of every client error (a lost connection, a failed reconnection); they never crash the process. */
  onError?: (error: unknown) => void;
  /** The store's clock, epoch ms (default `Date.now`); servers sharing a Redis should have synchronized clocks. */
  now?: () => number;
}

const DEFAULT_KEY_PREFIX = 'pqc:';
const DEFAULT_GRACE_SEC = 600;
const DEFAULT_CONNECT_TIMEOUT_MS = 2000;
const DEFAULT_COMMAND_TIMEOUT_MS = 1000;
const DEFAULT_MAX_RECONNECT_DELAY_MS = 1000;
/** Bound on commands queued or awaiting a reply in a client the store created (a hung Redis cannot pile them up). */
const MAX_PENDING_COMMANDS = 10_000;

function optionError(name: string, rule: string, value: unknown): TypeError {
  return new TypeError(`RedisSessionStore: option "${name}" ${rule}, got ${typeof value === 'string' ? JSON.stringify(value) : String(value)}`);
}

function positiveInt(value: unknown, name: string, fallback: number): number {
  const v = value ?? fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw optionError(name, 'must be a positive integer', v);
  return v;
}

function positiveNumber(value: unknown, name: string, fallback: number): number {
  const v = value ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || !(v > 0)) throw optionError(name, 'must be a positive number', v);
  return v;
}

function isClientLike(value: unknown): value is RedisClientLike {
  const c = value as Partial<RedisClientLike> | null;
  return (
    typeof c === 'object' &&
    c !== null &&
    typeof c.sendCommand === 'function' &&
    typeof c.connect === 'function' &&
    typeof c.on === 'function' &&
    typeof c.off === 'function'
  );
}

function checkUrl(url: unknown): string {
  if (typeof url !== 'string' || url.trim() === '') throw optionError('url', 'must be a non-empty string', url);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw optionError('url', 'must be a URL such as redis://127.0.0.1:6379', url);
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw optionError('url', 'must use the redis: or rediss: scheme', url);
  }
  return url;
}

/** The key names of one prefix (README: "Key layout"). */
export interface RedisKeys {
  /** ZSET of live sessions: member session id, score expiresAt (ms). */
  live: string;
  /** The session record (JSON). */
  session(sessionId: string): string;
  /** ZSET of a session's nonces: member nonce, score signed timestamp (ms). */
  nonces(sessionId: string): string;
  /** The session's nonce floor (ms): messages not newer are refused. */
  floor(sessionId: string): string;
  /** A handshake replay-cache entry. */
  handshake(key: string): string;
}

/** The key layout under `prefix`. */
export function redisKeys(prefix: string): RedisKeys {
  return {
    live: `${prefix}live`,
    session: (id) => `${prefix}s:${id}`,
    nonces: (id) => `${prefix}n:${id}`,
    floor: (id) => `${prefix}f:${id}`,
    handshake: (key) => `${prefix}h:${key}`,
  };
}

function unavailable(detail: string, cause?: unknown): PQCTransportError {
  return new PQCTransportError('store_unavailable', `redis session store: ${detail}`, cause === undefined ? undefined : { cause });
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Rejects after `ms` unless `promise` settles first; a late rejection of `promise` is swallowed. */
function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  promise.catch(() => {});
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(unavailable(`${what} got no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

function parseRecord(text: string): SessionRecord {
  const r = JSON.parse(text) as Record<string, unknown>;
  const ok =
    typeof r === 'object' &&
    r !== null &&
    typeof r.sessionId === 'string' &&
    (r.profile === 1 || r.profile === 2) &&
    typeof r.peerDid === 'string' &&
    isAlgorithm(r.peerAlgorithm) &&
    typeof r.peerPublicKey === 'string' &&
    typeof r.localDid === 'string' &&
    typeof r.createdAt === 'number' &&
    typeof r.expiresAt === 'number';
  if (!ok) throw new Error('malformed session record');
  return {
    sessionId: r.sessionId as string,
    profile: r.profile as 1 | 2,
    peerDid: r.peerDid as string,
    peerAlgorithm: r.peerAlgorithm as SessionRecord['peerAlgorithm'],
    peerPublicKey: r.peerPublicKey as string,
    localDid: r.localDid as string,
    createdAt: r.createdAt as number,
    expiresAt: r.expiresAt as number,
  };
}

/**
 * A `SessionStore` on Redis, shared by every server instance that uses the same Redis and `keyPrefix`.
 *
 * - Sessions: JSON under `<prefix>s:<id>`, expiring `expiredGraceSec` after the session does (so `session_expired`
 *   is still told apart from `unknown_session`); live ones in the ZSET `<prefix>live`, which enforces `maxSessions`
 *   atomically across instances.
 * - Nonces: per session a ZSET by signed timestamp, bounded by `maxNoncesPerSession` with a floor (see `RECORD_NONCE`).
 * - Handshakes: `SET <prefix>h:<did>:<nonce> 1 NX PX <2 × skew>`.
 */
export class RedisSessionStore implements SessionStore {
  readonly keyPrefix: string;
  readonly maxNoncesPerSession: number;
  readonly keys: RedisKeys;
  readonly #client: RedisClientLike;
  readonly #owned: boolean;
  readonly #graceMs: number;
  readonly #connectTimeoutMs: number;
  readonly #commandTimeoutMs: number;
  readonly #now: () => number;
  readonly #onError: ((error: unknown) => void) | undefined;
  readonly #errorListener = (err?: unknown) => {
    this.#lastError = err;
    try {
      this.#onError?.(err);
    } catch {
      /* a throwing listener must not crash the client */
    }
  };
  readonly #readyListener = () => {
    this.#everReady = true;
  };
  #lastError: unknown;
  #everReady: boolean;
  #closed = false;
  #connecting: Promise<void> | undefined;
  #connectDeadline: number | undefined;
  #readyWait: Promise<void> | undefined;
  #readyDone: (() => void) | undefined;

  constructor(options: RedisSessionStoreOptions) {
    if (typeof options !== 'object' || options === null) {
      throw new TypeError('RedisSessionStore: options are required ({ url } or { client })');
    }
    if (options.client !== undefined && options.url !== undefined) {
      throw new TypeError('RedisSessionStore: give either "client" or "url", not both');
    }
    const prefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX;
    if (typeof prefix !== 'string' || prefix.length > 256 || /[\s]/.test(prefix)) {
      throw optionError('keyPrefix', 'must be a string of at most 256 characters without whitespace', prefix);
    }
    this.keyPrefix = prefix;
    this.keys = redisKeys(prefix);
    this.maxNoncesPerSession = positiveInt(options.maxNoncesPerSession, 'maxNoncesPerSession', DEFAULT_MAX_NONCES_PER_SESSION);
    const grace = options.expiredGraceSec ?? DEFAULT_GRACE_SEC;
    if (typeof grace !== 'number' || !Number.isFinite(grace) || grace < 0) {
      throw optionError('expiredGraceSec', 'must be a number >= 0', grace);
    }
    this.#graceMs = grace * 1000;
    this.#connectTimeoutMs = positiveNumber(options.connectTimeoutMs, 'connectTimeoutMs', DEFAULT_CONNECT_TIMEOUT_MS);
    this.#commandTimeoutMs = positiveNumber(options.commandTimeoutMs, 'commandTimeoutMs', DEFAULT_COMMAND_TIMEOUT_MS);
    const maxDelay = positiveNumber(options.maxReconnectDelayMs, 'maxReconnectDelayMs', DEFAULT_MAX_RECONNECT_DELAY_MS);
    if (options.onError !== undefined && typeof options.onError !== 'function') {
      throw optionError('onError', 'must be a function', options.onError);
    }
    this.#onError = options.onError;
    if (options.now !== undefined && typeof options.now !== 'function') throw optionError('now', 'must be a function', options.now);
    this.#now = options.now ?? Date.now;

    if (options.client !== undefined) {
      if (!isClientLike(options.client)) {
        throw new TypeError('RedisSessionStore: option "client" must be a node-redis client (createClient() from "redis")');
      }
      this.#client = options.client;
      this.#owned = false;
    } else if (options.url !== undefined) {
      const url = checkUrl(options.url);
      this.#client = createClient({
        url,
        // Fail at once while disconnected instead of queueing: a request gets 503, never a hang.
        disableOfflineQueue: true,
        commandsQueueMaxLength: MAX_PENDING_COMMANDS,
        socket: {
          connectTimeout: this.#connectTimeoutMs,
          // Never give up: retry with capped exponential backoff and jitter, so traffic resumes when Redis is back.
          reconnectStrategy: (retries: number) => Math.min(50 * 2 ** Math.min(retries, 10), maxDelay) + Math.floor(Math.random() * 50),
        },
      }) as unknown as RedisClientLike;
      this.#owned = true;
    } else {
      throw new TypeError('RedisSessionStore: give "url" (e.g. redis://127.0.0.1:6379) or "client" (a node-redis client)');
    }
    // node-redis emits 'error' on every lost connection and failed reconnection; unheard, that would crash the process.
    this.#client.on('error', this.#errorListener);
    this.#client.on('ready', this.#readyListener);
    this.#everReady = this.#client.isReady;
  }

  /** The last error the client reported (a lost connection, a failed reconnection), for diagnostics. */
  get lastError(): unknown {
    return this.#lastError;
  }

  /** True while the client is connected and ready. */
  get isReady(): boolean {
    return !this.#closed && this.#client.isReady;
  }

  /** Connects now (else the first operation does) and checks Redis answers; throws `store_unavailable` if not. */
  async connect(): Promise<void> {
    const reply = await this.#send(['PING'], 'PING');
    if (reply !== 'PONG') throw unavailable(`PING answered ${String(reply)}`);
  }

  async createSession(record: SessionRecord, limits: SessionLimits): Promise<void> {
    const now = this.#now();
    const ttlMs = Math.max(1, Math.ceil(record.expiresAt + this.#graceMs - now));
    const result = await this.#eval(
      CREATE_SESSION,
      [this.keys.live, this.keys.session(record.sessionId)],
      [
        String(now),
        String(record.expiresAt),
        String(limits.maxSessions),
        JSON.stringify({
          sessionId: record.sessionId,
          profile: record.profile,
          peerDid: record.peerDid,
          peerAlgorithm: record.peerAlgorithm,
          peerPublicKey: record.peerPublicKey,
          localDid: record.localDid,
          createdAt: record.createdAt,
          expiresAt: record.expiresAt,
        }),
        String(ttlMs),
        record.sessionId,
      ],
      'createSession',
    );
    if (result === 0) throw new PQCTransportError('too_many_sessions', 'the session limit is reached');
    if (result !== 1) throw unavailable(`createSession: session id ${record.sessionId} exists already`);
  }

  async getSession(sessionId: string): Promise<SessionRecord | undefined> {
    const text = await this.#send(['GET', this.keys.session(sessionId)], 'getSession');
    if (text === null || text === undefined) return undefined;
    if (typeof text !== 'string') throw unavailable('getSession: unexpected reply');
    try {
      return parseRecord(text);
    } catch (err) {
      throw unavailable(`getSession: the stored session ${sessionId} is corrupt`, err);
    }
  }

  async deleteSession(sessionId: string): Promise<void> {
    const k = this.keys;
    await this.#eval(DELETE_SESSION, [k.live, k.session(sessionId), k.nonces(sessionId), k.floor(sessionId)], [sessionId], 'deleteSession');
  }

  async recordNonce(sessionId: string, nonce: string, timestampMs: number, ttlSec: number): Promise<boolean> {
    if (!Number.isFinite(timestampMs)) return false;
    const ttlMs = Math.max(1, Math.ceil(ttlSec * 1000));
    const k = this.keys;
    const result = await this.#eval(
      RECORD_NONCE,
      [k.nonces(sessionId), k.floor(sessionId), k.session(sessionId)],
      [nonce, String(Math.trunc(timestampMs)), String(this.#now() - ttlMs), String(ttlMs), String(this.maxNoncesPerSession)],
      'recordNonce',
    );
    return result === 1;
  }

  async recordHandshake(key: string, ttlSec: number): Promise<boolean> {
    const ttlMs = Math.max(1, Math.ceil(ttlSec * 1000));
    const reply = await this.#send(['SET', this.keys.handshake(key), '1', 'PX', String(ttlMs), 'NX'], 'recordHandshake');
    return reply === 'OK';
  }

  /** Quits the client the store created (a given client is left open); later calls fail with `store_unavailable`. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#client.off('ready', this.#readyListener);
    this.#readyDone?.();
    if (!this.#owned) {
      this.#client.off('error', this.#errorListener);
      return;
    }
    // A client the store created keeps its 'error' listener: a late socket error must not crash the process.
    const client = this.#client;
    if (!client.isOpen) return;
    if (client.isReady && client.close) {
      try {
        await withDeadline(client.close(), this.#commandTimeoutMs, 'close');
        return;
      } catch {
        /* fall through to destroy */
      }
    }
    try {
      client.destroy?.();
    } catch {
      /* already closed */
    }
  }

  async #eval(lua: LuaScript, keys: string[], args: string[], what: string): Promise<unknown> {
    const tail = [String(keys.length), ...keys, ...args];
    try {
      return await this.#send(['EVALSHA', lua.sha1, ...tail], what);
    } catch (err) {
      // After a Redis restart (or on a fresh one) the script cache is empty: send the source once.
      const cause = err instanceof PQCTransportError ? err.cause : err;
      if (!errorText(cause).startsWith('NOSCRIPT')) throw err;
      return this.#send(['EVAL', lua.source, ...tail], what);
    }
  }

  async #send(args: string[], what: string): Promise<unknown> {
    await this.#ready(what);
    try {
      return await withDeadline(this.#client.sendCommand(args, { timeout: this.#commandTimeoutMs }), this.#commandTimeoutMs, what);
    } catch (err) {
      if (err instanceof PQCTransportError) throw err;
      throw unavailable(`${what} failed: ${errorText(err)}`, err);
    }
  }

  /**
   * Resolves when the client can take a command. The first connection may take up to `connectTimeoutMs`; once it was
   * made, a client that is reconnecting fails at once (the 503 says retry, the client reconnects meanwhile).
   */
  async #ready(what: string): Promise<void> {
    if (this.#closed) throw unavailable(`${what}: the store is closed`);
    const client = this.#client;
    if (client.isReady) return;
    if (!this.#everReady) this.#connectDeadline ??= Date.now() + this.#connectTimeoutMs;
    if (!client.isOpen) {
      if (this.#everReady && !this.#owned) throw unavailable(`${what}: the given Redis client was closed`);
      this.#startConnect();
    }
    const waitMs = this.#everReady ? 0 : Math.max(0, (this.#connectDeadline ?? 0) - Date.now());
    if (waitMs > 0 && (await this.#waitReady(waitMs))) return;
    if (client.isReady) return;
    const last = this.#lastError === undefined ? '' : ` (${errorText(this.#lastError)})`;
    throw unavailable(`${what}: Redis is unreachable${last}`, this.#lastError);
  }

  #startConnect(): void {
    if (this.#connecting) return;
    this.#connecting = this.#client.connect().then(
      () => {
        this.#connecting = undefined;
      },
      (err: unknown) => {
        // e.g. a bad password: keep the error for the 503's detail, try again on the next operation.
        this.#lastError = err;
        this.#connecting = undefined;
      },
    );
  }

  /** True once the client is ready, false after `ms`. */
  async #waitReady(ms: number): Promise<boolean> {
    this.#readyWait ??= new Promise<void>((resolve) => {
      const done = () => {
        this.#client.off('ready', done);
        this.#readyWait = undefined;
        this.#readyDone = undefined;
        resolve();
      };
      this.#readyDone = done;
      this.#client.on('ready', done);
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    });
    try {
      return await Promise.race([this.#readyWait.then(() => true), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}
