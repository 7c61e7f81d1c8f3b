/** `DurableObjectSessionStore`: the `SessionStore` whose every method is one call to a `PQCSessionStoreObject`. */
import {
  PQCTransportError,
  type NonceOutcome,
  type SessionLimits,
  type SessionRecord,
  type SessionStore,
} from '@pqc-mcp/core';
import { DEFAULT_MAX_NONCES_PER_SESSION, parseSessionRecord, serializeSessionRecord } from '@pqc-mcp/core/internal';
import { STORE_URL, type SessionStoreStats, type StoreAnswer, type StoreCall } from './calls.js';

/** The part of a Durable Object stub used here (`DurableObjectStub`). */
export interface DurableObjectStubLike {
  fetch(input: string, init?: RequestInit): Promise<Response>;
}

/** The part of a Durable Object namespace binding used here (`DurableObjectNamespace`). */
export interface DurableObjectNamespaceLike {
  idFromName(name: string): unknown;
  get(id: never): DurableObjectStubLike;
}

/** Options of `DurableObjectSessionStore`. Every bound is applied by the object, as each call carries it. */
export interface DurableObjectSessionStoreOptions {
  /** Name of the object instance holding the sessions (default `pqc-sessions`); one name, one consistent store. */
  name?: string;
  /** Per-session bound on remembered nonces (default 10 000), as `MemorySessionStore`. */
  maxNoncesPerSession?: number;
  /** Bound on remembered handshake keys (default 100 000); past it the oldest go and their time becomes a floor. */
  maxHandshakes?: number;
  /** Bound on ended or expired session records kept for their clients' recovery (default 10 000). */
  maxEndedSessions?: number;
  /** Bound on v1 keys (default 100 000; past it v1 messages are refused with `rate_limited` until keys expire). */
  maxOnceKeys?: number;
  /** Bound on MCP session owners and on server requests awaiting an answer (default 100 000 each). */
  maxMcpSessions?: number;
}

const OUTCOMES: ReadonlySet<unknown> = new Set<NonceOutcome>(['accepted', 'replay', 'ended', 'expired', 'unknown']);
/** The refusals the object may name, thrown as they are (any other failure is an `Error`: `store_unavailable`). */
const REASONS: ReadonlySet<unknown> = new Set(['rate_limited', 'store_unavailable']);

function positiveInt(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1) throw new TypeError(`DurableObjectSessionStore: option "${name}" must be a positive integer, got ${String(value)}`);
  return value;
}

function malformed(op: string): Error {
  return new Error(`PQC session store object: malformed answer to ${op}`);
}

/**
 * A `SessionStore` kept by a `PQCSessionStoreObject` Durable Object: strongly consistent across every isolate and
 * location of a Worker, each operation atomic in the object. Create it per request or once per isolate (it holds
 * only the namespace binding). A call the object does not answer (unreachable, overloaded, reset) throws, and the
 * server answers `store_unavailable`.
 */
export class DurableObjectSessionStore implements SessionStore {
  readonly #namespace: DurableObjectNamespaceLike;
  readonly #name: string;
  readonly #maxNonces: number;
  readonly #maxHandshakes: number;
  readonly #maxEnded: number;
  readonly #maxOnce: number;
  readonly #maxMcp: number;

  constructor(namespace: DurableObjectNamespaceLike, options: DurableObjectSessionStoreOptions = {}) {
    if (!namespace || typeof namespace.idFromName !== 'function' || typeof namespace.get !== 'function') {
      throw new TypeError('DurableObjectSessionStore: the first argument must be a Durable Object namespace binding');
    }
    if (options.name !== undefined && (typeof options.name !== 'string' || options.name === '')) {
      throw new TypeError('DurableObjectSessionStore: option "name" must be a non-empty string');
    }
    this.#namespace = namespace;
    this.#name = options.name ?? 'pqc-sessions';
    this.#maxNonces = positiveInt(options.maxNoncesPerSession ?? DEFAULT_MAX_NONCES_PER_SESSION, 'maxNoncesPerSession');
    this.#maxHandshakes = positiveInt(options.maxHandshakes ?? 100_000, 'maxHandshakes');
    this.#maxEnded = positiveInt(options.maxEndedSessions ?? 10_000, 'maxEndedSessions');
    this.#maxOnce = positiveInt(options.maxOnceKeys ?? 100_000, 'maxOnceKeys');
    this.#maxMcp = positiveInt(options.maxMcpSessions ?? 100_000, 'maxMcpSessions');
  }

  async #call(call: StoreCall): Promise<unknown> {
    // A stub is made per call: a stub (an I/O object) may not be used across the requests of a Worker.
    const stub = this.#namespace.get(this.#namespace.idFromName(this.#name) as never);
    const response = await stub.fetch(STORE_URL, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(call),
    });
    const text = await response.text();
    let answer: StoreAnswer;
    try {
      answer = JSON.parse(text) as StoreAnswer;
    } catch {
      throw new Error(`PQC session store object: HTTP ${response.status} without a store answer to ${call.op}`);
    }
    if (typeof answer !== 'object' || answer === null) throw malformed(call.op);
    if (answer.ok === true) return answer.value;
    const message = typeof answer.message === 'string' ? answer.message : 'failed';
    if (REASONS.has(answer.reason)) throw new PQCTransportError(answer.reason as 'rate_limited' | 'store_unavailable', message);
    throw new Error(`PQC session store object: ${call.op}: ${message}`);
  }

  async createSession(record: SessionRecord, limits: SessionLimits): Promise<string[]> {
    const value = await this.#call({
      op: 'createSession',
      record: serializeSessionRecord(record),
      maxSessions: limits.maxSessions,
      maxSessionsPerClient: limits.maxSessionsPerClient,
      retentionMs: limits.retentionSec * 1000,
      maxEndedSessions: this.#maxEnded,
    });
    if (!Array.isArray(value) || !value.every((id) => typeof id === 'string')) throw malformed('createSession');
    return value as string[];
  }

  async getSession(sessionId: string): Promise<SessionRecord | undefined> {
    const value = await this.#call({ op: 'getSession', sessionId });
    if (value === null) return undefined;
    if (typeof value !== 'string') throw malformed('getSession');
    return parseSessionRecord(value);
  }

  async endSession(sessionId: string, retentionSec: number): Promise<void> {
    await this.#call({ op: 'endSession', sessionId, retentionMs: retentionSec * 1000 });
  }

  async endPeerSessions(peerDid: string, retentionSec: number): Promise<string[]> {
    const value = await this.#call({ op: 'endPeerSessions', peerDid, retentionMs: retentionSec * 1000 });
    if (!Array.isArray(value) || !value.every((id) => typeof id === 'string')) throw malformed('endPeerSessions');
    return value as string[];
  }

  async recordNonce(sessionId: string, nonce: string, timestampMs: number, ttlSec: number): Promise<NonceOutcome> {
    const value = await this.#call({ op: 'recordNonce', sessionId, nonce, timestampMs, ttlMs: ttlSec * 1000, maxNonces: this.#maxNonces });
    if (!OUTCOMES.has(value)) throw malformed('recordNonce');
    return value as NonceOutcome;
  }

  async recordHandshake(key: string, timestampMs: number, ttlSec: number): Promise<boolean> {
    return this.#boolean({ op: 'recordHandshake', key, timestampMs, ttlMs: ttlSec * 1000, maxHandshakes: this.#maxHandshakes });
  }

  async recordOnce(key: string, ttlSec: number): Promise<boolean> {
    return this.#boolean({ op: 'recordOnce', key, ttlMs: ttlSec * 1000, maxOnceKeys: this.#maxOnce });
  }

  async claimMcpSession(mcpSessionId: string, peerDid: string, ttlSec: number): Promise<boolean> {
    return this.#boolean({ op: 'claimMcpSession', mcpSessionId, peerDid, ttlMs: ttlSec * 1000, maxMcpSessions: this.#maxMcp });
  }

  async mcpSessionOwner(mcpSessionId: string, ttlSec: number): Promise<string | undefined> {
    return this.#optionalText({ op: 'mcpSessionOwner', mcpSessionId, ttlMs: ttlSec * 1000 });
  }

  async recordServerRequest(sessionId: string, requestKey: string, nonce: string, ttlSec: number): Promise<void> {
    await this.#call({ op: 'recordServerRequest', sessionId, requestKey, nonce, ttlMs: ttlSec * 1000, maxServerRequests: this.#maxMcp });
  }

  async takeServerRequest(sessionId: string, requestKey: string): Promise<string | undefined> {
    return this.#optionalText({ op: 'takeServerRequest', sessionId, requestKey });
  }

  /**
   * What the object holds, for monitoring and tests. It counts every row (billed as rows read), so call it rarely:
   * the store operations themselves never count a table.
   */
  async stats(): Promise<SessionStoreStats> {
    const value = (await this.#call({ op: 'stats' })) as SessionStoreStats | null;
    if (typeof value !== 'object' || value === null || !Object.values(value).every((n) => typeof n === 'number')) throw malformed('stats');
    return value;
  }

  async #boolean(call: StoreCall): Promise<boolean> {
    const value = await this.#call(call);
    if (typeof value !== 'boolean') throw malformed(call.op);
    return value;
  }

  async #optionalText(call: StoreCall): Promise<string | undefined> {
    const value = await this.#call(call);
    if (value === null) return undefined;
    if (typeof value !== 'string') throw malformed(call.op);
    return value;
  }
}
