/**
 * `RedisSessionStore`: the `SessionStore` of `@pqc-mcp/core` on Redis, so several server instances behind a load
 * balancer share sessions, nonces and the handshake replay cache. Every write that decides something (a session
 * slot, a nonce, a handshake) is one atomic command or Lua script on the Redis server; on a Redis Cluster each on one
 * hash slot (cluster.ts).
 *
 * Failure: when Redis cannot be reached every method throws `PQCTransportError('store_unavailable')` quickly (the
 * client's offline queue is off, every command has a deadline), so the server answers 503 and fails closed; the
 * client reconnects by itself and traffic resumes when Redis is back.
 */
import {
  PQCTransportError,
  type NonceOutcome,
  type SessionLimits,
  type SessionRecord,
  type SessionStore,
} from '@pqc-mcp/core';
import { DEFAULT_MAX_NONCES_PER_SESSION, parseSessionRecord, recordRetainedUntil, serializeSessionRecord } from '@pqc-mcp/core/internal';
import { createClient } from 'redis';
import { ClusterSessions, clusterIndexKeys, type ClusterIndexKeys } from './cluster.js';
import { CLAIM_MCP_SESSION, CREATE_SESSION, END_PEER_SESSIONS, END_SESSION, RECORD_NONCE, type LuaScript } from './scripts.js';

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

/**
 * What the store needs of a Redis Cluster client: a node-redis v5/v6 cluster client (`createCluster()`), connected or
 * not, fits. The store then keeps every script on one hash slot (README: "Redis Cluster").
 */
export interface RedisClusterLike {
  readonly isOpen: boolean;
  readonly isReady: boolean;
  connect(): Promise<unknown>;
  sendCommand(firstKey: string | undefined, isReadonly: boolean | undefined, args: string[], options?: { timeout?: number }): Promise<unknown>;
  getSlotMaster(slot: number): unknown;
  on(event: 'error' | 'connect', listener: (arg?: unknown) => void): unknown;
  off(event: 'error' | 'connect', listener: (arg?: unknown) => void): unknown;
  close?(): Promise<unknown>;
  destroy?(): unknown;
}

/** Options of `RedisSessionStore`: give `client` or `url`, not both. */
export interface RedisSessionStoreOptions {
  /**
   * An existing node-redis client (`createClient()`) or cluster client (`createCluster()`), connected or not. The
   * store connects it if needed and never closes it.
   */
  client?: RedisClientLike | RedisClusterLike;
  /** A Redis URL (`redis://[[user]:password@]host[:port][/db]`, `rediss://` for TLS): the store owns that client. */
  url?: string;
  /** Prefix of every key the store writes (default `pqc:`). Stores with different prefixes share nothing. */
  keyPrefix?: string;
  /** Bound on the nonces remembered per session within the acceptance window (default 10 000). */
  maxNoncesPerSession?: number;
  /**
   * Bound on the records of ended or expired sessions kept for their clients' recovery (default 10 000, as the other
   * stores): past it, those that would be forgotten first are forgotten (their sessions become unknown).
   */
  maxEndedSessions?: number;
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
  /**
   * Redis Cluster only: the most index shards `maxSessions` and `maxEndedSessions` are split into (default 16), each
   * holding at least 256 sessions, so handshakes spread over the cluster (README: "Redis Cluster").
   */
  indexShards?: number;
}

/** The client as the store uses it, single or cluster alike. */
interface Connection {
  readonly cluster: boolean;
  readonly isOpen: boolean;
  readonly isReady: boolean;
  connect(): Promise<unknown>;
  send(args: string[], key: string | undefined, options: { timeout: number }): Promise<unknown>;
  on(event: 'error' | 'ready', listener: (arg?: unknown) => void): void;
  off(event: 'error' | 'ready', listener: (arg?: unknown) => void): void;
  close?(): Promise<unknown>;
  destroy?(): unknown;
}

function isCluster(client: RedisClientLike | RedisClusterLike): client is RedisClusterLike {
  return typeof (client as Partial<RedisClusterLike>).getSlotMaster === 'function';
}

function connection(client: RedisClientLike | RedisClusterLike): Connection {
  if (isCluster(client)) {
    // A cluster client says 'connect' once it knows the cluster's slots (it has no 'ready').
    const event = (e: 'error' | 'ready') => (e === 'ready' ? 'connect' : 'error');
    return {
      cluster: true,
      get isOpen() {
        return client.isOpen;
      },
      get isReady() {
        return client.isReady;
      },
      connect: () => client.connect(),
      send: (args, key, options) => client.sendCommand(key, false, args, options),
      on: (e, l) => void client.on(event(e), l),
      off: (e, l) => void client.off(event(e), l),
      close: client.close && (() => client.close!()),
      destroy: client.destroy && (() => client.destroy!()),
    };
  }
  return {
    cluster: false,
    get isOpen() {
      return client.isOpen;
    },
    get isReady() {
      return client.isReady;
    },
    connect: () => client.connect(),
    send: (args, _key, options) => client.sendCommand(args, options),
    on: (e, l) => void client.on(e, l),
    off: (e, l) => void client.off(e, l),
    close: client.close && (() => client.close!()),
    destroy: client.destroy && (() => client.destroy!()),
  };
}

const DEFAULT_KEY_PREFIX = 'pqc:';
const DEFAULT_MAX_ENDED_SESSIONS = 10_000;
const DEFAULT_CONNECT_TIMEOUT_MS = 2000;
const DEFAULT_COMMAND_TIMEOUT_MS = 1000;
const DEFAULT_MAX_RECONNECT_DELAY_MS = 1000;
const DEFAULT_INDEX_SHARDS = 16;
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

function isClientLike(value: unknown): value is RedisClientLike | RedisClusterLike {
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
  /** ZSET of live sessions: member session id, score when it was last used (ms): the global limit ends the lowest. */
  live: string;
  /** ZSET of live sessions: member session id, score expiresAt (ms): expired sessions leave the live sets by it. */
  expiry: string;
  /** ZSET of ended or expired sessions whose records are kept: member session id, score when they may be forgotten. */
  retained: string;
  /** ZSET of a client's live sessions: member session id, score createdAt (ms): its limit ends the lowest. */
  client(peerDid: string): string;
  /** HASH of a session: its record (JSON), client DID, expiry, retention, end, nonce floor and nonce counter. */
  session(sessionId: string): string;
  /** ZSET of a session's nonces: member nonce, score its arrival number (oldest first). */
  nonces(sessionId: string): string;
  /** HASH of a session's nonces: field nonce, value "<signed time> <expiry>" (ms). */
  nonceTimes(sessionId: string): string;
  /** The nonce of a request the server sent in a session, by JSON-RPC id key. */
  serverRequest(sessionId: string, requestKey: string): string;
  /** A handshake request key seen (client DID and nonce). */
  handshake(key: string): string;
  /** A key of `recordOnce` (v1 messages). */
  once(key: string): string;
  /** The DID owning an MCP session. */
  mcpSession(mcpSessionId: string): string;
  /** Redis Cluster only: a client's index and the index shards (README: "Redis Cluster"). */
  cluster: ClusterIndexKeys;
}

/**
 * The key layout under `prefix`. The keys of one session share the hash tag `{<session id>}` (one Redis Cluster
 * slot). `live`, `expiry`, `retained` and the client sets are the single Redis's; a cluster uses `cluster` instead.
 */
export function redisKeys(prefix: string): RedisKeys {
  const of = (id: string) => `${prefix}{${id}}:`;
  return {
    live: `${prefix}live`,
    expiry: `${prefix}expiry`,
    retained: `${prefix}retained`,
    client: (did) => `${prefix}c:${did}`,
    session: (id) => `${of(id)}s`,
    nonces: (id) => `${of(id)}n`,
    nonceTimes: (id) => `${of(id)}t`,
    serverRequest: (id, key) => `${of(id)}q:${key}`,
    handshake: (key) => `${prefix}h:${key}`,
    once: (key) => `${prefix}o:${key}`,
    mcpSession: (id) => `${prefix}m:${id}`,
    cluster: clusterIndexKeys(prefix),
  };
}

/** Session ids are 32 lowercase hex characters; no other string names a key of a session (no key can be forged). */
const SESSION_ID = /^[0-9a-f]{32}$/;

const NONCE_OUTCOMES: ReadonlySet<unknown> = new Set<NonceOutcome>(['accepted', 'replay', 'ended', 'expired', 'unknown']);

/** A TTL for Redis (PX), from seconds: a positive integer of milliseconds. */
function ttlMs(seconds: number): number {
  return Math.max(1, Math.ceil(seconds * 1000));
}

/** A retention in whole milliseconds (0 allowed). */
function retentionMs(seconds: number): number {
  return Math.max(0, Math.ceil(seconds * 1000));
}

function checkLimits(limits: SessionLimits): void {
  const { maxSessions, maxSessionsPerClient, retentionSec } = limits ?? ({} as SessionLimits);
  for (const [name, value] of [
    ['maxSessions', maxSessions],
    ['maxSessionsPerClient', maxSessionsPerClient],
  ] as const) {
    if (!Number.isInteger(value) || value < 1) throw new TypeError(`RedisSessionStore: limit "${name}" must be a positive integer, got ${String(value)}`);
  }
  if (typeof retentionSec !== 'number' || !Number.isFinite(retentionSec) || retentionSec < 0) {
    throw new TypeError(`RedisSessionStore: limit "retentionSec" must be a number >= 0, got ${String(retentionSec)}`);
  }
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

/**
 * A `SessionStore` on Redis, shared by every server instance that uses the same Redis and `keyPrefix`
 * (README: "Key layout"). Each method is one Redis round trip: one command, or one Lua script where a decision reads
 * and writes several keys (`createSession`, `endSession`, `recordNonce`, `claimMcpSession`).
 *
 * - Sessions: a hash per session (the record's JSON, and what the scripts read), kept until the record may be
 *   forgotten (`recordRetainedUntil`); live ones in the global `live` (by last use) and `expiry` sets and in their
 *   client's set, which `createSession` reads to end what the limits require. Ended or expired ones are in the
 *   `retained` set instead, bounded by `maxEndedSessions`: past it `createSession` forgets those that would be
 *   forgotten first, so what a flood of handshakes leaves behind is bounded by count, not only by time.
 * - Nonces: per session a window bounded by `maxNoncesPerSession`, with the floor rule of core's `NonceWindow`,
 *   expiring with the record.
 * - Handshake keys, v1 keys, MCP session owners and server requests: one key each, `SET … NX PX` and the like.
 *
 * Given a cluster client (`createCluster()`), the sessions' bounds live in index keys of their own slots instead
 * (README: "Redis Cluster"): `recordNonce` stays one round trip, `createSession` takes three (and two more when it
 * ends sessions), `endSession` two.
 */
export class RedisSessionStore implements SessionStore {
  readonly keyPrefix: string;
  readonly maxNoncesPerSession: number;
  readonly maxEndedSessions: number;
  readonly keys: RedisKeys;
  /** True when the client is a Redis Cluster client: every script then stays on one hash slot. */
  readonly cluster: boolean;
  readonly #client: Connection;
  readonly #clusterSessions: ClusterSessions | undefined;
  readonly #owned: boolean;
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
    this.maxEndedSessions = positiveInt(options.maxEndedSessions, 'maxEndedSessions', DEFAULT_MAX_ENDED_SESSIONS);
    this.#connectTimeoutMs = positiveNumber(options.connectTimeoutMs, 'connectTimeoutMs', DEFAULT_CONNECT_TIMEOUT_MS);
    this.#commandTimeoutMs = positiveNumber(options.commandTimeoutMs, 'commandTimeoutMs', DEFAULT_COMMAND_TIMEOUT_MS);
    const maxDelay = positiveNumber(options.maxReconnectDelayMs, 'maxReconnectDelayMs', DEFAULT_MAX_RECONNECT_DELAY_MS);
    if (options.onError !== undefined && typeof options.onError !== 'function') {
      throw optionError('onError', 'must be a function', options.onError);
    }
    this.#onError = options.onError;
    if (options.now !== undefined && typeof options.now !== 'function') throw optionError('now', 'must be a function', options.now);
    this.#now = options.now ?? Date.now;

    const maxShards = options.indexShards ?? DEFAULT_INDEX_SHARDS;
    if (typeof maxShards !== 'number' || !Number.isInteger(maxShards) || maxShards < 1 || maxShards > 1024) {
      throw optionError('indexShards', 'must be an integer from 1 to 1024', maxShards);
    }

    if (options.client !== undefined) {
      if (!isClientLike(options.client)) {
        throw new TypeError('RedisSessionStore: option "client" must be a node-redis client (createClient() or createCluster() from "redis")');
      }
      this.#client = connection(options.client);
      this.#owned = false;
    } else if (options.url !== undefined) {
      const url = checkUrl(options.url);
      this.#client = connection(createClient({
        url,
        // Fail at once while disconnected instead of queueing: a request gets 503, never a hang.
        disableOfflineQueue: true,
        commandsQueueMaxLength: MAX_PENDING_COMMANDS,
        socket: {
          connectTimeout: this.#connectTimeoutMs,
          // Never give up: retry with capped exponential backoff and jitter, so traffic resumes when Redis is back.
          reconnectStrategy: (retries: number) => Math.min(50 * 2 ** Math.min(retries, 10), maxDelay) + Math.floor(Math.random() * 50),
        },
      }) as unknown as RedisClientLike);
      this.#owned = true;
    } else {
      throw new TypeError('RedisSessionStore: give "url" (e.g. redis://127.0.0.1:6379) or "client" (a node-redis client)');
    }
    // node-redis emits 'error' on every lost connection and failed reconnection; unheard, that would crash the process.
    this.#client.on('error', this.#errorListener);
    this.#client.on('ready', this.#readyListener);
    this.#everReady = this.#client.isReady;
    this.cluster = this.#client.cluster;
    if (this.cluster) {
      // A brace in the prefix would change which part of a key Redis hashes: the slots below would no longer hold.
      if (/[{}]/.test(prefix)) throw optionError('keyPrefix', 'must not contain { or } on a Redis Cluster', prefix);
      this.#clusterSessions = new ClusterSessions(
        {
          eval: (lua, keys, args, what) => this.#eval(lua, keys, args, what),
          send: (args, what, key) => this.#send(args, what, key),
          fire: (args, what, key) => void this.#send(args, what, key).catch(this.#errorListener),
        },
        this.keys,
        this.keys.cluster,
        { maxShards, maxEndedSessions: this.maxEndedSessions, maxNoncesPerSession: this.maxNoncesPerSession },
      );
    }
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

  async createSession(record: SessionRecord, limits: SessionLimits): Promise<string[]> {
    checkLimits(limits);
    const json = this.#recordJson(record);
    const now = this.#clock();
    const k = this.keys;
    const id = record.sessionId;
    const reply = this.#clusterSessions
      ? await this.#clusterSessions.create(record, json, limits, retentionMs(limits.retentionSec), now)
      : await this.#eval(
      CREATE_SESSION,
      [k.live, k.expiry, k.client(record.peerDid), k.session(id), k.nonces(id), k.nonceTimes(id), k.retained],
      [
        this.keyPrefix,
        String(now),
        id,
        json,
        String(record.expiresAt),
        String(record.createdAt),
        String(retentionMs(limits.retentionSec)),
        String(limits.maxSessions),
        String(limits.maxSessionsPerClient),
        record.endedAt === undefined ? '' : String(record.endedAt),
        String(this.maxEndedSessions),
        record.peerDid,
      ],
      'createSession',
    );
    if (reply === -1) throw unavailable(`createSession: a session with id ${id} exists already`);
    if (!Array.isArray(reply) || !reply.every((x) => typeof x === 'string')) throw unavailable('createSession: unexpected reply');
    return reply as string[];
  }

  async getSession(sessionId: string): Promise<SessionRecord | undefined> {
    if (!SESSION_ID.test(sessionId)) return undefined;
    const key = this.keys.session(sessionId);
    const reply = await this.#send(['HMGET', key, 'record', 'ended', 'ret'], 'getSession', key);
    if (!Array.isArray(reply) || reply.length !== 3) throw unavailable('getSession: unexpected reply');
    const [text, ended, ret] = reply as unknown[];
    if (text === null || text === undefined) return undefined;
    let record: SessionRecord;
    let retainMs: number;
    try {
      if (typeof text !== 'string') throw new Error('not a string');
      record = parseSessionRecord(text);
      retainMs = Number(ret);
      if (record.sessionId !== sessionId || ret === null || !Number.isFinite(retainMs)) throw new Error('malformed session hash');
      if (ended !== null && ended !== undefined) {
        record.endedAt = Number(ended);
        if (!Number.isFinite(record.endedAt)) throw new Error('malformed endedAt');
      }
    } catch (err) {
      throw unavailable(`getSession: the stored session ${sessionId} is corrupt`, err);
    }
    // Redis forgets it at that time by the key's TTL; the store's clock decides too (instances agree on it).
    return recordRetainedUntil(record, retainMs) <= this.#clock() ? undefined : record;
  }

  async endSession(sessionId: string, retentionSec: number): Promise<void> {
    if (typeof retentionSec !== 'number' || !Number.isFinite(retentionSec) || retentionSec < 0) {
      throw new TypeError(`RedisSessionStore: endSession's retentionSec must be a number >= 0, got ${String(retentionSec)}`);
    }
    if (!SESSION_ID.test(sessionId)) return;
    if (this.#clusterSessions) return this.#clusterSessions.end(sessionId, retentionMs(retentionSec), this.#clock());
    const k = this.keys;
    await this.#eval(
      END_SESSION,
      [k.session(sessionId), k.nonces(sessionId), k.nonceTimes(sessionId), k.live, k.expiry, k.retained],
      [String(this.#clock()), sessionId, String(retentionMs(retentionSec)), this.keyPrefix],
      'endSession',
    );
  }

  async endPeerSessions(peerDid: string, retentionSec: number): Promise<string[]> {
    if (typeof retentionSec !== 'number' || !Number.isFinite(retentionSec) || retentionSec < 0) {
      throw new TypeError(`RedisSessionStore: endPeerSessions's retentionSec must be a number >= 0, got ${String(retentionSec)}`);
    }
    if (this.#clusterSessions) return this.#clusterSessions.endPeer(peerDid, retentionMs(retentionSec), this.#clock());
    const k = this.keys;
    const reply = await this.#eval(
      END_PEER_SESSIONS,
      [k.client(peerDid), k.live, k.expiry, k.retained],
      [String(this.#clock()), String(retentionMs(retentionSec)), this.keyPrefix],
      'endPeerSessions',
    );
    if (!Array.isArray(reply) || !reply.every((x) => typeof x === 'string')) throw unavailable('endPeerSessions: unexpected reply');
    return reply as string[];
  }

  async recordNonce(sessionId: string, nonce: string, timestampMs: number, ttlSec: number): Promise<NonceOutcome> {
    if (!SESSION_ID.test(sessionId)) return 'unknown';
    // A time that is not a number cannot be proven newer than anything.
    if (typeof timestampMs !== 'number' || !Number.isFinite(timestampMs)) return 'replay';
    const k = this.keys;
    const outcome = this.#clusterSessions
      ? await this.#clusterSessions.nonce(sessionId, nonce, timestampMs, ttlMs(ttlSec), this.#clock())
      : await this.#eval(
      RECORD_NONCE,
      [k.session(sessionId), k.nonces(sessionId), k.nonceTimes(sessionId), k.live],
      [String(this.#clock()), sessionId, nonce, String(timestampMs), String(ttlMs(ttlSec)), String(this.maxNoncesPerSession)],
      'recordNonce',
    );
    if (!NONCE_OUTCOMES.has(outcome)) throw unavailable(`recordNonce: unexpected reply ${String(outcome)}`);
    return outcome as NonceOutcome;
  }

  async recordHandshake(key: string, timestampMs: number, ttlSec: number): Promise<boolean> {
    // Redis never drops a key before its TTL (with the noeviction policy the README asks for), so no floor is needed:
    // a key is refused while it is kept, and the server refuses its timestamp as stale by then.
    if (typeof timestampMs !== 'number' || !Number.isFinite(timestampMs)) return false;
    const k = this.keys.handshake(key);
    const reply = await this.#send(['SET', k, String(timestampMs), 'NX', 'PX', String(ttlMs(ttlSec))], 'recordHandshake', k);
    return reply === 'OK';
  }

  async recordOnce(key: string, ttlSec: number): Promise<boolean> {
    const k = this.keys.once(key);
    const reply = await this.#send(['SET', k, '1', 'NX', 'PX', String(ttlMs(ttlSec))], 'recordOnce', k);
    return reply === 'OK';
  }

  async claimMcpSession(mcpSessionId: string, peerDid: string, ttlSec: number): Promise<boolean> {
    const reply = await this.#eval(CLAIM_MCP_SESSION, [this.keys.mcpSession(mcpSessionId)], [peerDid, String(ttlMs(ttlSec))], 'claimMcpSession');
    return reply === 1;
  }

  async mcpSessionOwner(mcpSessionId: string, ttlSec: number): Promise<string | undefined> {
    const key = this.keys.mcpSession(mcpSessionId);
    const reply = await this.#send(['GETEX', key, 'PX', String(ttlMs(ttlSec))], 'mcpSessionOwner', key);
    if (reply === null || reply === undefined) return undefined;
    if (typeof reply !== 'string') throw unavailable('mcpSessionOwner: unexpected reply');
    return reply;
  }

  async recordServerRequest(sessionId: string, requestKey: string, nonce: string, ttlSec: number): Promise<void> {
    if (!SESSION_ID.test(sessionId)) throw new TypeError('RedisSessionStore: a session id is 32 lowercase hex characters');
    const key = this.keys.serverRequest(sessionId, requestKey);
    await this.#send(['SET', key, nonce, 'PX', String(ttlMs(ttlSec))], 'recordServerRequest', key);
  }

  async takeServerRequest(sessionId: string, requestKey: string): Promise<string | undefined> {
    if (!SESSION_ID.test(sessionId)) return undefined;
    const key = this.keys.serverRequest(sessionId, requestKey);
    const reply = await this.#send(['GETDEL', key], 'takeServerRequest', key);
    if (reply === null || reply === undefined) return undefined;
    if (typeof reply !== 'string') throw unavailable('takeServerRequest: unexpected reply');
    return reply;
  }

  /** The store's clock as an integer (the scripts write times back as integers, see scripts.ts). */
  #clock(): number {
    return Math.floor(this.#now());
  }

  /** The record's JSON, checked to read back as the same record (what cannot be read back is never written). */
  #recordJson(record: SessionRecord): string {
    let json: string;
    try {
      json = serializeSessionRecord(record);
      parseSessionRecord(json);
    } catch (err) {
      throw new TypeError(`RedisSessionStore: createSession needs a valid session record (${errorText(err)})`, { cause: err });
    }
    return json;
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
      return await this.#send(['EVALSHA', lua.sha1, ...tail], what, keys[0]);
    } catch (err) {
      // After a Redis restart (or on a fresh one) the script cache is empty: send the source once.
      const cause = err instanceof PQCTransportError ? err.cause : err;
      if (!errorText(cause).startsWith('NOSCRIPT')) throw err;
      return this.#send(['EVAL', lua.source, ...tail], what, keys[0]);
    }
  }

  /** Sends a command (on a cluster, to the node of `key`'s slot); `store_unavailable` on any failure. */
  async #send(args: string[], what: string, key?: string): Promise<unknown> {
    await this.#ready(what);
    try {
      return await withDeadline(this.#client.send(args, key, { timeout: this.#commandTimeoutMs }), this.#commandTimeoutMs, what);
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
