/**
 * The session operations of `RedisSessionStore` on a Redis Cluster: the single-Redis scripts split by hash slot
 * (cluster-scripts.ts). Each script touches one slot; a decision on a bound is atomic on its index slot, and the
 * sessions it ends are ended by a script on their own slot right after (README: "Redis Cluster", which states the
 * guarantee).
 */
import { createHash } from 'node:crypto';
import type { NonceOutcome, SessionLimits, SessionRecord } from '@pqc-mcp/core';
import { C_CLIENT, C_CREATE, C_END, C_INDEX, C_LEAVE, C_NONCE, C_RETIRE } from './cluster-scripts.js';
import type { LuaScript } from './scripts.js';

/** Below this many sessions per shard, the global bound is not split further (each shard is an LRU of its own). */
export const MIN_SESSIONS_PER_SHARD = 256;

/** How the cluster operations reach Redis: a script or a command, routed by the slot of `key`. */
export interface ClusterRunner {
  eval(lua: LuaScript, keys: string[], args: string[], what: string): Promise<unknown>;
  send(args: string[], what: string, key: string): Promise<unknown>;
  /** Sends without waiting; a failure is reported to the store's error listener. */
  fire(args: string[], what: string, key: string): void;
}

/** The key names of the cluster's index slots under `prefix`. */
export interface ClusterIndexKeys {
  /** A client's index: ZSET session id -> createdAt, HASH session id -> expiresAt (hash tag: the DID's SHA-256). */
  client(peerDid: string): [zset: string, hash: string];
  /** Index shard n: ZSET live (id -> last used), ZSET exp (id -> expiresAt), HASH ret (id -> retention ms), ZSET kept. */
  shard(n: number): [live: string, exp: string, ret: string, kept: string];
}

/** The index key layout under `prefix` (README: "Redis Cluster"). */
export function clusterIndexKeys(prefix: string): ClusterIndexKeys {
  return {
    client: (did) => {
      const tag = `${prefix}{c:${createHash('sha256').update(did).digest('hex')}}:`;
      return [`${tag}z`, `${tag}e`];
    },
    shard: (n) => {
      const tag = `${prefix}{i:${n}}:`;
      return [`${tag}live`, `${tag}exp`, `${tag}ret`, `${tag}kept`];
    },
  };
}

/** How many index shards hold `maxSessions`: at most `maxShards`, each of at least `MIN_SESSIONS_PER_SHARD`. */
export function shardCount(maxSessions: number, maxShards: number): number {
  return Math.max(1, Math.min(maxShards, Math.floor(maxSessions / MIN_SESSIONS_PER_SHARD)));
}

/** The shard of a session: from its id (random, chosen by the server: a client cannot pick its shard). */
export function shardOf(sessionId: string, shards: number): number {
  return Number.parseInt(sessionId.slice(0, 8), 16) % shards;
}

/** What the cluster store needs to name a session's keys. */
export interface SessionKeyNames {
  session(id: string): string;
  nonces(id: string): string;
  nonceTimes(id: string): string;
}

const strings = (value: unknown): string[] => (Array.isArray(value) ? value.map(String) : []);

/** The session operations on a cluster. */
export class ClusterSessions {
  readonly #run: ClusterRunner;
  readonly #keys: SessionKeyNames;
  readonly #index: ClusterIndexKeys;
  readonly #maxShards: number;
  readonly #maxEnded: number;
  readonly #maxNonces: number;

  constructor(run: ClusterRunner, keys: SessionKeyNames, index: ClusterIndexKeys, options: { maxShards: number; maxEndedSessions: number; maxNoncesPerSession: number }) {
    this.#run = run;
    this.#keys = keys;
    this.#index = index;
    this.#maxShards = options.maxShards;
    this.#maxEnded = options.maxEndedSessions;
    this.#maxNonces = options.maxNoncesPerSession;
  }

  #sessionKeys(id: string): string[] {
    return [this.#keys.session(id), this.#keys.nonces(id), this.#keys.nonceTimes(id)];
  }

  /**
   * Opens a session: its record on its slot (refused if the id exists), then the client's cap on the client's slot
   * (its oldest ended), then the global bound on the session's index shard (its least recently used ended, the kept
   * records past the bound forgotten). Returns the ids it ended.
   */
  async create(record: SessionRecord, json: string, limits: SessionLimits, retMs: number, now: number): Promise<string[] | -1> {
    const id = record.sessionId;
    const shards = shardCount(limits.maxSessions, this.#maxShards);
    const shard = shardOf(id, shards);
    const ended = record.endedAt === undefined ? '' : String(record.endedAt);
    const live = record.expiresAt > now && record.endedAt === undefined;
    const created = await this.#run.eval(
      C_CREATE,
      this.#sessionKeys(id),
      [String(now), json, record.peerDid, String(record.expiresAt), String(retMs), ended, String(shard)],
      'createSession',
    );
    if (created === -1) return -1;

    const out: string[] = [];
    const clientVictims = strings(
      await this.#run.eval(
        C_CLIENT,
        this.#index.client(record.peerDid),
        [String(now), id, String(record.createdAt), String(record.expiresAt), String(limits.maxSessionsPerClient), live ? '1' : '0'],
        'createSession',
      ),
    );
    // Ended on their slots, then out of their shards, before the global bound counts its shard.
    const first = await Promise.all(clientVictims.map((victim) => this.#end(victim, 0, now, { client: false, shard: true })));
    clientVictims.forEach((victim, i) => first[i] && out.push(victim));

    const reply = await this.#run.eval(
      C_INDEX,
      this.#index.shard(shard),
      [String(now), id, String(record.expiresAt), String(retMs), String(Math.ceil(limits.maxSessions / shards)), String(Math.ceil(this.#maxEnded / shards)), ended],
      'createSession',
    );
    const [lru, forgotten] = Array.isArray(reply) ? [strings(reply[0]), strings(reply[1])] : [[], []];
    const second = await Promise.all([
      ...lru.map((victim) => this.#end(victim, 0, now, { client: true, shard: false })),
      ...forgotten.map((gone) => this.#run.send(['DEL', ...this.#sessionKeys(gone)], 'createSession', this.#keys.session(gone)).then(() => false)),
    ]);
    lru.forEach((victim, i) => second[i] && out.push(victim));
    return out;
  }

  /** Ends a session on its slot; if it ended it, takes it out of its client's index and its shard. */
  async end(sessionId: string, retMs: number, now: number): Promise<void> {
    await this.#end(sessionId, retMs, now, { client: true, shard: true });
  }

  /** Ends every live session of a client (its index on its slot lists them); returns the ids it ended. */
  async endPeer(peerDid: string, retMs: number, now: number): Promise<string[]> {
    const [zset] = this.#index.client(peerDid);
    const ids = strings(await this.#run.send(['ZRANGE', zset, '0', '-1'], 'endPeerSessions', zset));
    const ended = await Promise.all(ids.map((id) => this.#end(id, retMs, now, { client: true, shard: true })));
    return ids.filter((_, i) => ended[i]);
  }

  async #end(id: string, minRetMs: number, now: number, leave: { client: boolean; shard: boolean }): Promise<boolean> {
    const reply = await this.#run.eval(C_END, this.#sessionKeys(id), [String(now), String(minRetMs)], 'endSession');
    if (!Array.isArray(reply) || Number(reply[0]) !== 1) return false;
    const [, peer, shard, until] = reply.map(String) as [string, string, string, string];
    const steps: Promise<unknown>[] = [];
    if (leave.client && peer !== '') steps.push(this.#run.eval(C_LEAVE, this.#index.client(peer), [id], 'endSession'));
    if (leave.shard && /^\d+$/.test(shard)) steps.push(this.#run.eval(C_RETIRE, this.#index.shard(Number(shard)), [String(now), id, until], 'endSession'));
    await Promise.all(steps);
    return true;
  }

  /** Records a nonce (one script on the session's slot); an accepted one refreshes "last used" in its shard, unawaited. */
  async nonce(sessionId: string, nonce: string, timestampMs: number, ttlMs: number, now: number): Promise<unknown> {
    const reply = await this.#run.eval(
      C_NONCE,
      this.#sessionKeys(sessionId),
      [String(now), sessionId, nonce, String(timestampMs), String(ttlMs), String(this.#maxNonces)],
      'recordNonce',
    );
    if (!Array.isArray(reply)) return reply;
    const [outcome, shard] = reply.map(String) as [NonceOutcome, string];
    if (/^\d+$/.test(shard)) {
      const live = this.#index.shard(Number(shard))[0];
      this.#run.fire(['ZADD', live, 'XX', String(now), sessionId], 'recordNonce', live);
    }
    return outcome;
  }
}
