/**
 * `MemorySessionStore`: the `SessionStore` in this process's memory, for one server instance. Bounded everywhere:
 * live sessions (by the server's limits), ended records, nonces per session, handshake keys, v1 keys, MCP session
 * owners and server requests. Forgetting is only ever done where it cannot reopen a replay: a dropped nonce or
 * handshake key raises a floor, a forgotten session record makes its session unknown, and a v1 key is never dropped
 * early (the store refuses new ones instead).
 */
import { PQCTransportError } from '../errors.js';
import { DEFAULT_MAX_NONCES_PER_SESSION } from '../protocol.js';
import { NonceWindow } from './nonce-window.js';
import { recordRetainedUntil } from './record.js';
import type { NonceOutcome, SessionLimits, SessionRecord, SessionStore } from './types.js';

/** Options of `MemorySessionStore`. */
export interface MemorySessionStoreOptions {
  /** Per-session bound on remembered nonces (default 10 000). */
  maxNoncesPerSession?: number;
  /** Bound on remembered handshake keys (default 100 000). */
  maxHandshakes?: number;
  /** Bound on ended session records kept for their clients' recovery (default 10 000; the oldest are forgotten). */
  maxEndedSessions?: number;
  /** Bound on v1 keys (default 100 000; past it v1 messages are refused with `rate_limited` until keys expire). */
  maxOnceKeys?: number;
  /** Bound on MCP session owners and on server requests awaiting an answer (default 100 000 each). */
  maxMcpSessions?: number;
  /** The store's clock (default `Date.now`). */
  now?: () => number;
}

interface Entry {
  record: SessionRecord;
  nonces: NonceWindow;
  /** Retention of the record once ended or expired, ms. */
  retentionMs: number;
  lastUsed: number;
}

function positiveInt(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1) throw new TypeError(`MemorySessionStore: option "${name}" must be a positive integer, got ${String(value)}`);
  return value;
}

/** A Map bounded by count whose entries expire; the oldest is dropped when full. */
class ExpiringMap<V> {
  readonly #entries = new Map<string, { value: V; expires: number }>();
  constructor(readonly max: number) {}

  get(key: string, now: number): V | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expires <= now) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  set(key: string, value: V, expires: number): void {
    this.#entries.delete(key);
    if (this.#entries.size >= this.max) this.#entries.delete(this.#entries.keys().next().value as string);
    this.#entries.set(key, { value, expires });
  }

  delete(key: string): void {
    this.#entries.delete(key);
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Drops expired entries from the oldest on; true when room was made. */
  sweep(now: number): void {
    for (const [key, entry] of this.#entries) if (entry.expires <= now) this.#entries.delete(key);
  }

  clear(): void {
    this.#entries.clear();
  }
}

/** A `SessionStore` in this process's memory: for one server instance. */
export class MemorySessionStore implements SessionStore {
  readonly #live = new Map<string, Entry>(); // insertion order is refreshed on use: the first is the least recently used
  readonly #ended = new Map<string, Entry>(); // in the order they ended
  readonly #handshakes: NonceWindow;
  readonly #once: ExpiringMap<true>;
  readonly #owners: ExpiringMap<string>;
  readonly #serverRequests: ExpiringMap<string>;
  readonly #maxNonces: number;
  readonly #maxEnded: number;
  readonly #now: () => number;

  constructor(options: MemorySessionStoreOptions = {}) {
    this.#maxNonces = positiveInt(options.maxNoncesPerSession ?? DEFAULT_MAX_NONCES_PER_SESSION, 'maxNoncesPerSession');
    this.#handshakes = new NonceWindow(positiveInt(options.maxHandshakes ?? 100_000, 'maxHandshakes'));
    this.#maxEnded = positiveInt(options.maxEndedSessions ?? 10_000, 'maxEndedSessions');
    this.#once = new ExpiringMap(positiveInt(options.maxOnceKeys ?? 100_000, 'maxOnceKeys'));
    const maxMcp = positiveInt(options.maxMcpSessions ?? 100_000, 'maxMcpSessions');
    this.#owners = new ExpiringMap(maxMcp);
    this.#serverRequests = new ExpiringMap(maxMcp);
    if (options.now !== undefined && typeof options.now !== 'function') throw new TypeError('MemorySessionStore: option "now" must be a function');
    this.#now = options.now ?? Date.now;
  }

  async createSession(record: SessionRecord, limits: SessionLimits): Promise<string[]> {
    const now = this.#now();
    if (this.#live.has(record.sessionId) || this.#ended.has(record.sessionId)) {
      throw new PQCTransportError('store_unavailable', 'a session with this id exists already');
    }
    this.#expireLive(now);
    const ended: string[] = [];
    const mine = [...this.#live.values()].filter((e) => e.record.peerDid === record.peerDid);
    mine.sort((a, b) => a.record.createdAt - b.record.createdAt);
    while (mine.length >= limits.maxSessionsPerClient) ended.push(this.#end(mine.shift()!, now));
    while (this.#live.size >= limits.maxSessions) ended.push(this.#end(this.#live.values().next().value as Entry, now));
    this.#live.set(record.sessionId, {
      record: { ...record },
      nonces: new NonceWindow(this.#maxNonces),
      retentionMs: limits.retentionSec * 1000,
      lastUsed: now,
    });
    return ended;
  }

  async getSession(sessionId: string): Promise<SessionRecord | undefined> {
    return this.#entry(sessionId, this.#now())?.record;
  }

  async endSession(sessionId: string, retentionSec: number): Promise<void> {
    const now = this.#now();
    const entry = this.#entry(sessionId, now);
    if (!entry || entry.record.endedAt !== undefined) return;
    entry.retentionMs = Math.max(entry.retentionMs, retentionSec * 1000);
    this.#end(entry, now);
  }

  async endPeerSessions(peerDid: string, retentionSec: number): Promise<string[]> {
    const now = this.#now();
    this.#expireLive(now);
    const ended: string[] = [];
    for (const entry of [...this.#live.values()]) {
      if (entry.record.peerDid !== peerDid) continue;
      entry.retentionMs = Math.max(entry.retentionMs, retentionSec * 1000);
      ended.push(this.#end(entry, now));
    }
    return ended;
  }

  async recordNonce(sessionId: string, nonce: string, timestampMs: number, ttlSec: number): Promise<NonceOutcome> {
    const now = this.#now();
    const entry = this.#entry(sessionId, now);
    if (!entry) return 'unknown';
    if (!entry.nonces.record(nonce, timestampMs, ttlSec * 1000, now)) return 'replay';
    if (entry.record.endedAt !== undefined) return 'ended';
    if (entry.record.expiresAt <= now) return 'expired';
    entry.lastUsed = now;
    this.#live.delete(sessionId);
    this.#live.set(sessionId, entry);
    return 'accepted';
  }

  async recordHandshake(key: string, timestampMs: number, ttlSec: number): Promise<boolean> {
    return this.#handshakes.record(key, timestampMs, ttlSec * 1000, this.#now());
  }

  async recordOnce(key: string, ttlSec: number): Promise<boolean> {
    const now = this.#now();
    if (this.#once.get(key, now) !== undefined) return false;
    if (this.#once.size >= this.#once.max) {
      this.#once.sweep(now);
      if (this.#once.size >= this.#once.max) throw new PQCTransportError('rate_limited', 'too many v1 messages are remembered: try again later');
    }
    this.#once.set(key, true, now + ttlSec * 1000);
    return true;
  }

  async claimMcpSession(mcpSessionId: string, peerDid: string, ttlSec: number): Promise<boolean> {
    const now = this.#now();
    const owner = this.#owners.get(mcpSessionId, now);
    if (owner !== undefined && owner !== peerDid) return false;
    this.#owners.set(mcpSessionId, peerDid, now + ttlSec * 1000);
    return true;
  }

  async mcpSessionOwner(mcpSessionId: string, ttlSec: number): Promise<string | undefined> {
    const now = this.#now();
    const owner = this.#owners.get(mcpSessionId, now);
    if (owner !== undefined) this.#owners.set(mcpSessionId, owner, now + ttlSec * 1000);
    return owner;
  }

  async recordServerRequest(sessionId: string, requestKey: string, nonce: string, ttlSec: number): Promise<void> {
    this.#serverRequests.set(`${sessionId}:${requestKey}`, nonce, this.#now() + ttlSec * 1000);
  }

  async takeServerRequest(sessionId: string, requestKey: string): Promise<string | undefined> {
    const key = `${sessionId}:${requestKey}`;
    const nonce = this.#serverRequests.get(key, this.#now());
    this.#serverRequests.delete(key);
    return nonce;
  }

  /** Number of live sessions. */
  get size(): number {
    this.#expireLive(this.#now());
    return this.#live.size;
  }

  /** Number of nonces a session holds now (0 for an unknown session). */
  nonceCount(sessionId: string): number {
    return this.#entry(sessionId, this.#now())?.nonces.size ?? 0;
  }

  async close(): Promise<void> {
    this.#live.clear();
    this.#ended.clear();
    this.#once.clear();
    this.#owners.clear();
    this.#serverRequests.clear();
  }

  /** The entry of a session the store still keeps (forgetting those past their retention). */
  #entry(sessionId: string, now: number): Entry | undefined {
    const entry = this.#live.get(sessionId) ?? this.#ended.get(sessionId);
    if (entry && recordRetainedUntil(entry.record, entry.retentionMs) <= now) {
      this.#live.delete(sessionId);
      this.#ended.delete(sessionId);
      return undefined;
    }
    return entry;
  }

  /** Moves a live session to the ended records (the oldest ended record is forgotten past the bound). */
  #end(entry: Entry, now: number): string {
    const id = entry.record.sessionId;
    entry.record.endedAt = now;
    this.#live.delete(id);
    this.#ended.set(id, entry);
    while (this.#ended.size > this.#maxEnded) this.#ended.delete(this.#ended.keys().next().value as string);
    return id;
  }

  /** Expired live sessions stop counting against the limits (their records stay for the retention). */
  #expireLive(now: number): void {
    for (const [id, entry] of this.#live) {
      if (entry.record.expiresAt > now) continue;
      this.#live.delete(id);
      if (recordRetainedUntil(entry.record, entry.retentionMs) > now) {
        this.#ended.set(id, entry);
        while (this.#ended.size > this.#maxEnded) this.#ended.delete(this.#ended.keys().next().value as string);
      }
    }
  }
}
