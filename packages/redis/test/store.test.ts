/**
 * `RedisSessionStore` against a real Redis: the session-store contract of the test kit (each test on a prefix of its
 * own, `sibling()` a second store with its own client on that prefix), then what only Redis has: options, the key
 * layout and its hash tags, prefixes, TTLs on every key, round trips, the clock, outages and clients.
 */
import { MemorySessionStore, type SessionLimits } from '@pqc-mcp/core';
import { freePort, runSessionStoreContract } from '@pqc-mcp/test-kit';
import { randomBytes } from 'node:crypto';
import { createClient } from 'redis';
import { RedisSessionStore, redisKeys, storeFromEnv, type RedisClientLike, type RedisSessionStoreOptions } from '../src/index.js';
import { REDIS_URL, connectTestRedis, deletePrefix, keysUnder, sameAnswersAsMemoryStore, testRecord as record, sleep, trackUnhandledRejections, uniquePrefix, type RawRedis } from './helpers.js';

let redis: RawRedis;
const prefixes: string[] = [];
const stores: RedisSessionStore[] = [];

beforeAll(async () => {
  redis = await connectTestRedis();
});

afterAll(async () => {
  await Promise.all(stores.map((s) => s.close()));
  for (const prefix of prefixes) await deletePrefix(redis, prefix);
  await redis.close();
});

runSessionStoreContract('RedisSessionStore', async ({ maxNoncesPerSession }) => {
  const keyPrefix = uniquePrefix('contract');
  const opened: RedisSessionStore[] = [];
  const open = () => {
    const store = new RedisSessionStore({ url: REDIS_URL, keyPrefix, maxNoncesPerSession });
    opened.push(store);
    return store;
  };
  return {
    store: open(),
    sibling: async () => open(),
    close: async () => {
      await Promise.all(opened.map((s) => s.close()));
      await deletePrefix(redis, keyPrefix);
    },
  };
});

function newStore(options: Partial<RedisSessionStoreOptions> = {}): RedisSessionStore {
  const keyPrefix = options.keyPrefix ?? uniquePrefix('store');
  prefixes.push(keyPrefix);
  const store = new RedisSessionStore({ url: REDIS_URL, ...options, keyPrefix });
  stores.push(store);
  return store;
}

const hex = (bytes: number) => randomBytes(bytes).toString('hex');

const LIMITS: SessionLimits = { maxSessions: 1000, maxSessionsPerClient: 16, retentionSec: 660 };

/** The first `{…}` of a key: what Redis Cluster hashes to pick its slot. */
function hashTag(key: string): string {
  const open = key.indexOf('{');
  const close = key.indexOf('}', open + 1);
  return open >= 0 && close > open + 1 ? key.slice(open + 1, close) : key;
}

describe('options are validated eagerly', () => {
  test.each([
    ['no options', undefined, /options are required/],
    ['neither url nor client', {}, /give "url"/],
    ['both url and client', { url: 'redis://127.0.0.1:6379', client: createClient() }, /either "client" or "url"/],
    ['an empty url', { url: '' }, /"url" must be a non-empty string/],
    ['a url that is not one', { url: 'not a url' }, /"url" must be a URL/],
    ['an http url', { url: 'http://127.0.0.1:6379' }, /redis: or rediss:/],
    ['a client that is not one', { client: { get: () => 1 } }, /"client" must be a node-redis client/],
    ['a keyPrefix with a space', { url: 'redis://127.0.0.1:6379', keyPrefix: 'a b' }, /keyPrefix/],
    ['a keyPrefix that is a number', { url: 'redis://127.0.0.1:6379', keyPrefix: 5 }, /keyPrefix/],
    ['maxNoncesPerSession 0', { url: 'redis://127.0.0.1:6379', maxNoncesPerSession: 0 }, /maxNoncesPerSession" must be a positive integer, got 0/],
    ['maxNoncesPerSession 1.5', { url: 'redis://127.0.0.1:6379', maxNoncesPerSession: 1.5 }, /maxNoncesPerSession/],
    ['maxEndedSessions 0', { url: 'redis://127.0.0.1:6379', maxEndedSessions: 0 }, /maxEndedSessions" must be a positive integer, got 0/],
    ['connectTimeoutMs -1', { url: 'redis://127.0.0.1:6379', connectTimeoutMs: -1 }, /connectTimeoutMs" must be a positive number/],
    ['commandTimeoutMs NaN', { url: 'redis://127.0.0.1:6379', commandTimeoutMs: Number.NaN }, /commandTimeoutMs/],
    ['maxReconnectDelayMs 0', { url: 'redis://127.0.0.1:6379', maxReconnectDelayMs: 0 }, /maxReconnectDelayMs/],
    ['onError not a function', { url: 'redis://127.0.0.1:6379', onError: 'log' }, /onError/],
    ['now not a function', { url: 'redis://127.0.0.1:6379', now: 5 }, /"now" must be a function/],
  ])('%s → TypeError', (_name, options, message) => {
    expect(() => new RedisSessionStore(options as never)).toThrow(TypeError);
    expect(() => new RedisSessionStore(options as never)).toThrow(message);
  });

  test('constructing opens no connection (lazy), connect() checks Redis', async () => {
    const store = newStore();
    expect(store.isReady).toBe(false);
    await store.connect();
    expect(store.isReady).toBe(true);
  });

  test('limits and records are checked before anything is sent: TypeErrors naming what is wrong', async () => {
    const store = newStore();
    await expect(store.createSession(record(), { ...LIMITS, maxSessions: 0 })).rejects.toThrow(/"maxSessions" must be a positive integer/);
    await expect(store.createSession(record(), { ...LIMITS, maxSessionsPerClient: 1.5 })).rejects.toThrow(/"maxSessionsPerClient"/);
    await expect(store.createSession(record(), { ...LIMITS, retentionSec: Number.NaN })).rejects.toThrow(/"retentionSec"/);
    await expect(store.createSession(record({ sessionId: 'ABC' }), LIMITS)).rejects.toThrow(TypeError);
    await expect(store.createSession(record({ expiresAt: Number.NaN }), LIMITS)).rejects.toThrow(/valid session record/);
    await expect(store.recordServerRequest('not-a-session', 'n:0', hex(16), 60)).rejects.toThrow(TypeError);
    await expect(store.endSession(hex(16), -1)).rejects.toThrow(/retentionSec/);
    expect(await keysUnder(redis, store.keyPrefix)).toEqual([]);
  });

  test('a session id that is not 32 lowercase hex names no key: unknown, without a round trip', async () => {
    const store = newStore();
    const r = record();
    await store.createSession(r, LIMITS);
    const forged = `${r.sessionId}}:s`;
    expect(await store.getSession(forged)).toBeUndefined();
    expect(await store.recordNonce(forged, hex(16), Date.now(), 660)).toBe('unknown');
    expect(await store.takeServerRequest(forged, 'x')).toBeUndefined();
    await store.endSession(r.sessionId.toUpperCase(), 660);
    expect((await store.getSession(r.sessionId))?.endedAt).toBeUndefined();
  });
});

describe('key layout', () => {
  test('every key is under the prefix, named as store.keys says; the keys of a session share its hash tag', async () => {
    const store = newStore({ maxNoncesPerSession: 3 });
    const r = record();
    await store.createSession(r, LIMITS);
    const t = Date.now();
    for (let i = 0; i < 5; i++) expect(await store.recordNonce(r.sessionId, `n${i}`, t + i, 660)).toBe('accepted');
    await store.recordServerRequest(r.sessionId, 'n:7', 'srv', 60);
    await store.recordHandshake('did:x:h1', t, 660);
    await store.recordOnce('v1:k', 60);
    await store.claimMcpSession('mcp-1', r.peerDid, 60);
    const k = store.keys;
    const expected = [
      k.live,
      k.expiry,
      k.client(r.peerDid),
      k.session(r.sessionId),
      k.nonces(r.sessionId),
      k.nonceTimes(r.sessionId),
      k.serverRequest(r.sessionId, 'n:7'),
      k.handshake('did:x:h1'),
      k.once('v1:k'),
      k.mcpSession('mcp-1'),
    ];
    expect((await keysUnder(redis, store.keyPrefix)).sort()).toEqual(expected.sort());
    for (const key of [k.session(r.sessionId), k.nonces(r.sessionId), k.nonceTimes(r.sessionId), k.serverRequest(r.sessionId, 'n:7')]) {
      expect(hashTag(key)).toBe(r.sessionId);
    }

    // What the hashes hold: the record's JSON as core serializes it, and the nonce window by arrival.
    const session = await redis.hGetAll(k.session(r.sessionId));
    expect(JSON.parse(session.record!)).toEqual(r);
    expect(session).toMatchObject({ exp: String(r.expiresAt), ret: '660000', seq: '5', floor: String(t + 1) });
    expect(await redis.zRange(k.nonces(r.sessionId), 0, -1)).toEqual(['n2', 'n3', 'n4']);
    expect((await redis.hGet(k.nonceTimes(r.sessionId), 'n4'))?.split(' ')[0]).toBe(String(t + 4));
    expect(await redis.zScore(k.expiry, r.sessionId)).toBe(r.expiresAt);
    expect(await redis.zScore(k.client(r.peerDid), r.sessionId)).toBe(r.createdAt);
    expect(await redis.get(k.mcpSession('mcp-1'))).toBe(r.peerDid);

    expect(redisKeys('p:').session('ab')).toBe('p:{ab}:s');
    expect(redisKeys('p:').live).toBe('p:live');
  });

  test('the default prefix is pqc:', () => {
    const store = new RedisSessionStore({ url: REDIS_URL });
    expect(store.keyPrefix).toBe('pqc:');
    expect(store.keys.live).toBe('pqc:live');
    expect(store.keys.session('0'.repeat(32))).toBe(`pqc:{${'0'.repeat(32)}}:s`);
  });

  test('stores with different prefixes share nothing: sessions, limits, nonces, handshakes, owners', async () => {
    const a = newStore();
    const b = newStore();
    const r = record();
    await a.createSession(r, { ...LIMITS, maxSessions: 1 });
    expect(await b.getSession(r.sessionId)).toBeUndefined();
    expect(await b.createSession(record(), { ...LIMITS, maxSessions: 1 })).toEqual([]); // a's session does not count in b
    await b.createSession(r, LIMITS);
    const now = Date.now();
    expect(await a.recordNonce(r.sessionId, 'n', now, 660)).toBe('accepted');
    expect(await b.recordNonce(r.sessionId, 'n', now, 660)).toBe('accepted');
    expect(await a.recordHandshake('k', now, 660)).toBe(true);
    expect(await b.recordHandshake('k', now, 660)).toBe(true);
    expect(await a.recordOnce('k', 60)).toBe(true);
    expect(await b.recordOnce('k', 60)).toBe(true);
    expect(await a.claimMcpSession('m', 'did:a', 60)).toBe(true);
    expect(await b.claimMcpSession('m', 'did:b', 60)).toBe(true);
    await a.endSession(r.sessionId, 660);
    expect(await b.recordNonce(r.sessionId, 'n2', now, 660)).toBe('accepted');
    for (const key of await keysUnder(redis, a.keyPrefix)) expect(key.startsWith(a.keyPrefix)).toBe(true);
  });
});

describe('TTLs: every key expires, so Redis memory stays bounded', () => {
  test('after a workload of every operation, every key under the prefix has a TTL', async () => {
    const store = newStore({ maxNoncesPerSession: 4 });
    const limits = { maxSessions: 5, maxSessionsPerClient: 2, retentionSec: 30 };
    const peers = ['1', '2', '3'].map((c) => `did:pqaid:${c.repeat(64)}`);
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) {
      const r = record({ peerDid: peers[i % 3]!, createdAt: Date.now() + i, expiresAt: Date.now() + (i % 4 === 0 ? -1 : 60_000) });
      ids.push(r.sessionId);
      await store.createSession(r, limits);
      for (let j = 0; j < 6; j++) await store.recordNonce(r.sessionId, hex(16), Date.now() + j, 20);
      await store.recordServerRequest(r.sessionId, `n:${i}`, hex(16), 60);
      if (i % 5 === 0) await store.endSession(r.sessionId, 30);
      await store.recordHandshake(`${peers[i % 3]}:${hex(16)}`, Date.now(), 660);
      await store.recordOnce(`v1:${hex(8)}`, 60);
      await store.claimMcpSession(`mcp-${i}`, peers[i % 3]!, 60);
      await store.mcpSessionOwner(`mcp-${i}`, 60);
    }
    await store.takeServerRequest(ids[0]!, 'n:0');
    const keys = await keysUnder(redis, store.keyPrefix);
    expect(keys.length).toBeGreaterThan(40);
    for (const key of keys) {
      const ttl = await redis.pTTL(key);
      if (!(ttl > 0)) throw new Error(`key ${key} has no TTL (${ttl})`);
    }
    // The global sets hold live sessions only, bounded by maxSessions; a session's nonces by maxNoncesPerSession.
    expect(await redis.zCard(store.keys.live)).toBeLessThanOrEqual(5);
    expect(await redis.zCard(store.keys.expiry)).toBe(await redis.zCard(store.keys.live));
    for (const id of ids) expect(await redis.zCard(store.keys.nonces(id))).toBeLessThanOrEqual(4);
  });

  test('a session\'s keys expire with its record: at expiresAt + retention, re-timed when it ends', async () => {
    const store = newStore();
    const now = Date.now();
    const r = record({ createdAt: now, expiresAt: now + 60_000 });
    await store.createSession(r, { ...LIMITS, retentionSec: 600 });
    await store.recordNonce(r.sessionId, 'n', now, 660);
    const k = store.keys;
    const ttl = await redis.pTTL(k.session(r.sessionId));
    expect(ttl).toBeGreaterThan(660_000 - 5_000);
    expect(ttl).toBeLessThanOrEqual(660_000);
    for (const key of [k.nonces(r.sessionId), k.nonceTimes(r.sessionId)]) expect(Math.abs((await redis.pTTL(key)) - ttl)).toBeLessThan(2_000);
    for (const key of [k.live, k.expiry, k.client(r.peerDid)]) {
      const t = await redis.pTTL(key);
      expect(t).toBeGreaterThan(55_000);
      expect(t).toBeLessThanOrEqual(60_000);
    }
    // Ended now: kept until its expiry and at least the retention after now (here 900 s > 60 s to expiry).
    await store.endSession(r.sessionId, 900);
    for (const key of [k.session(r.sessionId), k.nonces(r.sessionId), k.nonceTimes(r.sessionId)]) {
      const t = await redis.pTTL(key);
      expect(t).toBeGreaterThan(895_000);
      expect(t).toBeLessThanOrEqual(900_000);
    }
    expect(await redis.zScore(k.live, r.sessionId)).toBeNull();
    expect(await redis.zScore(k.expiry, r.sessionId)).toBeNull();
  });

  test('handshake, v1, MCP owner and server request keys live their TTL; an owner read extends it (GETEX)', async () => {
    const store = newStore();
    const k = store.keys;
    expect(await store.recordHandshake('did:x:n1', Date.now(), 660)).toBe(true);
    expect(await redis.pTTL(k.handshake('did:x:n1'))).toBeGreaterThan(655_000);
    expect(await store.recordOnce('v1:a', 3600)).toBe(true);
    expect(await redis.pTTL(k.once('v1:a'))).toBeGreaterThan(3_595_000);
    const sid = hex(16);
    await store.recordServerRequest(sid, 'n:0', 'nonce', 30);
    expect(await redis.pTTL(k.serverRequest(sid, 'n:0'))).toBeGreaterThan(25_000);
    expect(await store.claimMcpSession('m1', 'did:a', 10)).toBe(true);
    expect(await redis.pTTL(k.mcpSession('m1'))).toBeLessThanOrEqual(10_000);
    expect(await store.mcpSessionOwner('m1', 3600)).toBe('did:a');
    expect(await redis.pTTL(k.mcpSession('m1'))).toBeGreaterThan(3_595_000);
    expect(await store.mcpSessionOwner('m2', 3600)).toBeUndefined();
    expect(await redis.exists(k.mcpSession('m2'))).toBe(0);

    expect(await store.recordHandshake('did:x:short', Date.now(), 0.2)).toBe(true);
    expect(await store.recordHandshake('did:x:short', Date.now(), 0.2)).toBe(false);
    await sleep(300);
    expect(await store.recordHandshake('did:x:short', Date.now(), 0.2)).toBe(true);
    expect(await store.recordHandshake('did:x:nan', Number.NaN, 660)).toBe(false);
  });
});

describe('records of ended and expired sessions are bounded by count (maxEndedSessions)', () => {
  test('past the bound, the records that would be forgotten first are forgotten: their sessions become unknown', async () => {
    const store = newStore({ maxEndedSessions: 2 });
    const now = Date.now();
    // Forgotten first: the earliest expiry (each is ended now, more than the retention before its expiry, so it is
    // kept until then).
    const rs = [1, 2, 3, 4].map((i) => record({ createdAt: now + i, expiresAt: now + 3_600_000 + i * 1000 }));
    for (const r of rs) await store.createSession(r, LIMITS);
    for (const r of rs.slice(0, 3)) await store.endSession(r.sessionId, 660);
    expect(await redis.zCard(store.keys.retained)).toBe(3); // the bound is applied when a session is opened
    const fifth = record();
    expect(await store.createSession(fifth, LIMITS)).toEqual([]);
    expect(await redis.zRange(store.keys.retained, 0, -1)).toEqual([rs[1]!.sessionId, rs[2]!.sessionId]);
    expect(await store.getSession(rs[0]!.sessionId)).toBeUndefined();
    expect(await store.recordNonce(rs[0]!.sessionId, 'n', Date.now(), 660)).toBe('unknown');
    for (const key of [store.keys.session(rs[0]!.sessionId), store.keys.nonces(rs[0]!.sessionId), store.keys.nonceTimes(rs[0]!.sessionId)]) {
      expect(await redis.exists(key)).toBe(0);
    }
    for (const r of rs.slice(1, 3)) expect(await store.recordNonce(r.sessionId, 'n', Date.now(), 660)).toBe('ended');
    for (const r of [rs[3]!, fifth]) expect(await store.recordNonce(r.sessionId, 'n', Date.now(), 660)).toBe('accepted');
    expect(await redis.pTTL(store.keys.retained)).toBeGreaterThan(60_000);
  });

  test('sessions ended by the limits, and expired ones, count against the bound and are forgotten oldest first', async () => {
    const store = newStore({ maxEndedSessions: 3 });
    const limits = { ...LIMITS, maxSessions: 2 };
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) {
      const r = record({ peerDid: `did:pqaid:${String(i).repeat(64)}`, createdAt: Date.now() + i, expiresAt: Date.now() + 3_600_000 + i * 1000 });
      ids.push(r.sessionId);
      await store.createSession(r, limits);
    }
    // 8 opened, 2 live, 6 ended by maxSessions: the 3 ended last are kept, the 3 before them forgotten.
    expect(await redis.zCard(store.keys.live)).toBe(2);
    expect(await redis.zRange(store.keys.retained, 0, -1)).toEqual(ids.slice(3, 6));
    for (const id of ids.slice(0, 3)) expect(await store.getSession(id)).toBeUndefined();
    for (const id of ids.slice(3, 6)) expect((await store.getSession(id))?.endedAt).toEqual(expect.any(Number));
    // An expired session joins them when it leaves the live sets; kept only the retention past its expiry, it is the
    // first to be forgotten past the bound.
    const short = record({ peerDid: `did:pqaid:${'e'.repeat(64)}`, expiresAt: Date.now() + 100 });
    await store.createSession(short, { ...limits, maxSessions: 10 });
    await sleep(150);
    expect(await store.recordNonce(short.sessionId, 'n', Date.now(), 660)).toBe('expired');
    await store.createSession(record(), { ...limits, maxSessions: 10 });
    expect(await store.getSession(short.sessionId)).toBeUndefined();
    expect(await redis.zRange(store.keys.retained, 0, -1)).toEqual(ids.slice(3, 6));
  });

  test("a client's set holds its live sessions: ended and expired ones leave it, and it goes with the last", async () => {
    const store = newStore();
    const peer = `did:pqaid:${'c'.repeat(64)}`;
    const a = record({ peerDid: peer });
    const b = record({ peerDid: peer, expiresAt: Date.now() + 100 });
    await store.createSession(a, LIMITS);
    await store.createSession(b, LIMITS);
    expect(await redis.zCard(store.keys.client(peer))).toBe(2);
    await store.endSession(a.sessionId, 660);
    expect(await redis.zRange(store.keys.client(peer), 0, -1)).toEqual([b.sessionId]);
    await sleep(150);
    await store.createSession(record(), LIMITS); // sweeps the expired session out of the live sets
    expect(await redis.exists(store.keys.client(peer))).toBe(0);
    expect((await store.getSession(b.sessionId))?.sessionId).toBe(b.sessionId);
    expect(await store.recordNonce(b.sessionId, 'n', Date.now(), 660)).toBe('expired');
  });
});

describe('one round trip per operation', () => {
  /** A node-redis client that counts the commands sent through it. */
  function countingClient(): { client: RedisClientLike; sent: string[][]; close(): Promise<unknown> } {
    const inner = createClient({ url: REDIS_URL });
    const sent: string[][] = [];
    const client = new Proxy(inner, {
      get(target, prop) {
        if (prop === 'sendCommand') {
          return (args: string[], options?: unknown) => {
            sent.push(args);
            return (target.sendCommand as (a: string[], o?: unknown) => Promise<unknown>)(args, options);
          };
        }
        const value = Reflect.get(target, prop, target) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    }) as unknown as RedisClientLike;
    return { client, sent, close: () => inner.close() };
  }

  test('recordNonce is one command (EVALSHA), whatever its outcome; so is every other method', async () => {
    const { client, sent, close } = countingClient();
    const store = newStore({ client, url: undefined, maxNoncesPerSession: 2 });
    try {
      await store.connect();
      const r = record();
      await store.createSession(r, LIMITS); // loads the scripts (EVALSHA, then EVAL on NOSCRIPT)
      const rounds = async (fn: () => Promise<unknown>) => {
        sent.length = 0;
        await fn();
        return sent.map((args) => args[0]);
      };
      const t = Date.now();
      await rounds(() => store.recordNonce(r.sessionId, 'warm', t, 660));
      for (const [nonce, time] of [['a', t + 1], ['b', t + 2], ['c', t + 3], ['c', t + 3], ['d', t]] as const) {
        expect(await rounds(() => store.recordNonce(r.sessionId, nonce, time, 660))).toEqual(['EVALSHA']);
      }
      expect(await rounds(() => store.recordNonce(hex(16), 'x', t, 660))).toEqual(['EVALSHA']);
      expect(await rounds(() => store.createSession(record(), LIMITS))).toEqual(['EVALSHA']);
      expect(await rounds(() => store.getSession(r.sessionId))).toEqual(['HMGET']);
      expect(await rounds(() => store.endSession(r.sessionId, 660))).toEqual(['EVALSHA']);
      expect(await rounds(() => store.recordNonce(r.sessionId, 'e', Date.now(), 660))).toEqual(['EVALSHA']);
      expect(await rounds(() => store.recordHandshake('h', Date.now(), 660))).toEqual(['SET']);
      expect(await rounds(() => store.recordOnce('o', 60))).toEqual(['SET']);
      expect(await rounds(() => store.claimMcpSession('m', 'did:a', 60))).toEqual(['EVALSHA']);
      expect(await rounds(() => store.mcpSessionOwner('m', 60))).toEqual(['GETEX']);
      expect(await rounds(() => store.recordServerRequest(r.sessionId, 'n:1', 'x', 60))).toEqual(['SET']);
      expect(await rounds(() => store.takeServerRequest(r.sessionId, 'n:1'))).toEqual(['GETDEL']);
    } finally {
      await store.close();
      await close();
    }
  });
});

describe('the nonce rule is core\'s NonceWindow, and the limits are MemorySessionStore\'s', () => {
  test.each([1, 2, 3])('the same random operations on both stores (seed %i) give the same answers', (seed) =>
    sameAnswersAsMemoryStore((options) => newStore(options), seed),
  );
});

describe('nonce windows', () => {
  test('a full window first sweeps expired nonces (no floor from them), then drops the oldest arrival', async () => {
    let clock = Date.now();
    const now = () => clock;
    const memory = new MemorySessionStore({ maxNoncesPerSession: 2, now });
    const store = newStore({ maxNoncesPerSession: 2, now });
    const r = record({ createdAt: clock, expiresAt: clock + 60_000 });
    const t = clock;
    const both = async (nonce: string, time: number, ttlSec: number) => {
      const [m, s] = [await memory.recordNonce(r.sessionId, nonce, time, ttlSec), await store.recordNonce(r.sessionId, nonce, time, ttlSec)];
      expect(s).toBe(m);
      return s;
    };
    await memory.createSession(r, LIMITS);
    await store.createSession(r, LIMITS);
    expect(await both('a', t, 1)).toBe('accepted');
    expect(await both('b', t + 1, 1)).toBe('accepted');
    clock += 2_000; // a and b expired
    expect(await both('c', clock, 660)).toBe('accepted'); // sweeps a and b: no floor
    expect(await both('a', t, 660)).toBe('accepted'); // an expired nonce is new again (the server's skew check refuses its time)
    expect(await both('d', t + 5, 660)).toBe('accepted'); // drops c (oldest arrival): floor = c's time
    expect(await both('e', clock, 660)).toBe('replay');
    expect(await both('c', clock + 1, 660)).toBe('accepted'); // c was dropped; its new time is above the floor
    expect(await redis.hGet(store.keys.session(r.sessionId), 'floor')).toBe(String(clock));
    await memory.close();
  });
});

describe('the store\'s clock decides what is forgotten, ended or expired', () => {
  test('a record is forgotten at recordRetainedUntil by the store\'s clock, even while Redis still holds it', async () => {
    let clock = Date.now();
    const store = newStore({ now: () => clock });
    const r = record({ createdAt: clock, expiresAt: clock + 10_000 });
    await store.createSession(r, { ...LIMITS, retentionSec: 5 });
    clock += 12_000; // expired, within the retention
    expect((await store.getSession(r.sessionId))?.expiresAt).toBe(r.expiresAt);
    expect(await store.recordNonce(r.sessionId, 'a', clock, 660)).toBe('expired');
    clock += 4_000; // past expiresAt + 5 s
    expect(await store.getSession(r.sessionId)).toBeUndefined();
    expect(await store.recordNonce(r.sessionId, 'b', clock, 660)).toBe('unknown');
    await store.endSession(r.sessionId, 660); // nothing to end: it is not made to last again
    expect(await redis.hGet(store.keys.session(r.sessionId), 'ended')).toBeNull();
  });

  test('ending an expired session marks it ended; an ended one is not ended twice', async () => {
    let clock = Date.now();
    const store = newStore({ now: () => clock });
    const r = record({ createdAt: clock, expiresAt: clock + 1_000 });
    await store.createSession(r, LIMITS);
    clock += 2_000;
    await store.endSession(r.sessionId, 660);
    expect((await store.getSession(r.sessionId))?.endedAt).toBe(clock);
    expect(await store.recordNonce(r.sessionId, 'a', clock, 660)).toBe('ended');
    clock += 5;
    await store.endSession(r.sessionId, 660);
    expect((await store.getSession(r.sessionId))?.endedAt).toBe(clock - 5);
  });

  test('a record created ended stays out of the limits and reads back ended', async () => {
    const store = newStore();
    const ended = record({ endedAt: Date.now() });
    await store.createSession(ended, { ...LIMITS, maxSessions: 1 });
    expect(await store.getSession(ended.sessionId)).toEqual(ended);
    expect(await store.createSession(record(), { ...LIMITS, maxSessions: 1 })).toEqual([]);
    expect(await store.recordNonce(ended.sessionId, 'a', Date.now(), 660)).toBe('ended');
  });
});

describe('limits across instances', () => {
  test('50 concurrent handshakes through two stores: never more live sessions than maxSessions, each end reported once', async () => {
    const prefix = uniquePrefix('race');
    const a = newStore({ keyPrefix: prefix });
    const b = newStore({ keyPrefix: prefix });
    const limits = { ...LIMITS, maxSessions: 10 };
    const rs = Array.from({ length: 50 }, (_, i) => record({ peerDid: `did:pqaid:${(i % 25).toString(16).padStart(64, '0')}` }));
    const ended = (await Promise.all(rs.map((r, i) => (i % 2 ? a : b).createSession(r, limits)))).flat();
    expect(ended).toHaveLength(40);
    expect(new Set(ended).size).toBe(40);
    expect(await redis.zCard(a.keys.live)).toBe(10);
    const outcomes = await Promise.all(rs.map((r) => a.recordNonce(r.sessionId, hex(16), Date.now(), 660)));
    expect(outcomes.filter((o) => o === 'accepted')).toHaveLength(10);
    expect(outcomes.filter((o) => o === 'ended')).toHaveLength(40);
  });
});

describe('stored data', () => {
  test('a corrupt stored session is store_unavailable, never a crash', async () => {
    const store = newStore();
    const k = store.keys;
    const [c, d, e] = ['c', 'd', 'e'].map((x) => x.repeat(32)) as [string, string, string];
    await redis.hSet(k.session(c), { record: '{"sessionId": 5}', exp: '1', ret: '1' });
    await expect(store.getSession(c)).rejects.toMatchObject({ reason: 'store_unavailable' });
    await redis.hSet(k.session(d), { record: 'not json', exp: '1', ret: '1' });
    await expect(store.getSession(d)).rejects.toMatchObject({ reason: 'store_unavailable' });
    await redis.hSet(k.session(e), { record: JSON.stringify(record({ sessionId: e })), exp: 'soon', ret: '1' });
    await expect(store.recordNonce(e, 'n', Date.now(), 660)).rejects.toMatchObject({ reason: 'store_unavailable' });
    await redis.set(k.session('f'.repeat(32)), 'a string, not a hash');
    await expect(store.getSession('f'.repeat(32))).rejects.toMatchObject({ reason: 'store_unavailable' });
  });

  test('a session id is never opened twice, even through another instance', async () => {
    const prefix = uniquePrefix('dup');
    const a = newStore({ keyPrefix: prefix });
    const b = newStore({ keyPrefix: prefix });
    const r = record();
    await a.createSession(r, LIMITS);
    await expect(b.createSession(r, LIMITS)).rejects.toMatchObject({ reason: 'store_unavailable', message: /exists already/ });
  });
});

describe('clients and close()', () => {
  test('close() quits a client the store created; later calls fail with store_unavailable', async () => {
    const store = newStore();
    await store.connect();
    await store.close();
    await store.close(); // idempotent
    await expect(store.getSession('a'.repeat(32))).rejects.toMatchObject({ reason: 'store_unavailable', message: /closed/ });
  });

  test('a given client, not yet connected: the store connects it, and close() leaves it open', async () => {
    const client = createClient({ url: REDIS_URL });
    const store = newStore({ client, url: undefined });
    expect(client.isOpen).toBe(false);
    const r = record();
    await store.createSession(r, LIMITS);
    expect(client.isReady).toBe(true);
    await store.close();
    expect(client.isReady).toBe(true);
    expect(await client.exists(store.keys.session(r.sessionId))).toBe(1);
    await expect(store.getSession(r.sessionId)).rejects.toMatchObject({ reason: 'store_unavailable' });
    await client.close();
  });

  test('the scripts are loaded again after SCRIPT FLUSH (as after a Redis restart)', async () => {
    const store = newStore();
    const r = record();
    await store.createSession(r, LIMITS);
    await redis.scriptFlush();
    expect(await store.recordNonce(r.sessionId, 'after-flush', Date.now(), 660)).toBe('accepted');
    await redis.scriptFlush();
    expect(await store.createSession(record(), LIMITS)).toEqual([]);
    await redis.scriptFlush();
    await store.endSession(r.sessionId, 660);
    await redis.scriptFlush();
    expect(await store.claimMcpSession('m', 'did:a', 60)).toBe(true);
  });
});

describe('Redis unreachable', () => {
  test('every method fails fast with store_unavailable, no unhandled rejection, lastError kept', async () => {
    const port = await freePort(); // nothing listens there
    const errors: unknown[] = [];
    const unhandled = trackUnhandledRejections();
    const store = new RedisSessionStore({ url: `redis://127.0.0.1:${port}`, connectTimeoutMs: 300, onError: (e) => errors.push(e) });
    const id = 'a'.repeat(32);
    try {
      let t = Date.now();
      await expect(store.createSession(record(), LIMITS)).rejects.toMatchObject({ reason: 'store_unavailable' });
      expect(Date.now() - t).toBeLessThan(1500);
      t = Date.now();
      const calls = [
        store.getSession(id),
        store.endSession(id, 660),
        store.recordNonce(id, 'n', Date.now(), 660),
        store.recordHandshake('k', Date.now(), 660),
        store.recordOnce('k', 60),
        store.claimMcpSession('m', 'did:a', 60),
        store.mcpSessionOwner('m', 60),
        store.recordServerRequest(id, 'n:0', 'x', 60),
        store.takeServerRequest(id, 'n:0'),
        store.connect(),
      ];
      for (const call of calls) await expect(call).rejects.toMatchObject({ reason: 'store_unavailable', message: /unreachable/ });
      expect(Date.now() - t).toBeLessThan(300);
      expect(errors.length).toBeGreaterThan(0);
      expect(String(store.lastError)).toMatch(/ECONNREFUSED/);
      await sleep(100);
      expect(unhandled.count()).toBe(0);
    } finally {
      unhandled.stop();
      await store.close();
    }
  });
});

describe('storeFromEnv', () => {
  test('undefined without PQC_REDIS_URL, a RedisSessionStore with it', async () => {
    expect(storeFromEnv({})).toBeUndefined();
    expect(storeFromEnv({ PQC_REDIS_URL: '  ' })).toBeUndefined();
    const store = storeFromEnv({ PQC_REDIS_URL: REDIS_URL, PQC_REDIS_PREFIX: 'app1:' });
    expect(store).toBeInstanceOf(RedisSessionStore);
    expect(store!.keyPrefix).toBe('app1:');
    expect(storeFromEnv({ PQC_REDIS_URL: REDIS_URL })!.keyPrefix).toBe('pqc:');
    expect(() => storeFromEnv({ PQC_REDIS_URL: 'http://x' })).toThrow(TypeError);
    await store!.connect();
    await store!.close();
  });
});
