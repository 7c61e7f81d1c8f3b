import { PQCTransportError, type SessionRecord } from '@pqc-mcp/core';
import { createClient } from 'redis';
import { RedisSessionStore, redisKeys, storeFromEnv } from '../src/index.js';
import { freePort } from '@pqc-mcp/test-kit';
import {
  REDIS_URL,
  connectTestRedis,
  deletePrefix,
  keysUnder,
  sleep,
  trackUnhandledRejections,
  uniquePrefix,
  type RawRedis,
} from './helpers.js';

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

function newStore(options: Partial<ConstructorParameters<typeof RedisSessionStore>[0]> = {}): RedisSessionStore {
  const keyPrefix = options.keyPrefix ?? uniquePrefix('store');
  prefixes.push(keyPrefix);
  const store = new RedisSessionStore({ url: REDIS_URL, ...options, keyPrefix });
  stores.push(store);
  return store;
}

let counter = 0;
function record(overrides: Partial<SessionRecord> = {}): SessionRecord {
  const now = Date.now();
  counter++;
  return {
    sessionId: counter.toString(16).padStart(32, 'a'),
    profile: 2,
    peerDid: `did:pqaid:${'1'.repeat(64)}`,
    peerAlgorithm: 'ML-DSA-65',
    peerPublicKey: 'ab'.repeat(1952),
    localDid: `did:pqaid:${'2'.repeat(64)}`,
    createdAt: now,
    expiresAt: now + 60_000,
    ...overrides,
  };
}

const LIMITS = { maxSessions: 1000 };

describe('options are validated eagerly', () => {
  test.each([
    ['no options', undefined, /options are required/],
    ['neither url nor client', {}, /give "url"/],
    ['both url and client', { url: REDIS_URL, client: createClient() }, /either "client" or "url"/],
    ['an empty url', { url: '' }, /"url" must be a non-empty string/],
    ['a url that is not one', { url: 'not a url' }, /"url" must be a URL/],
    ['an http url', { url: 'http://127.0.0.1:6379' }, /redis: or rediss:/],
    ['a client that is not one', { client: { get: () => 1 } }, /"client" must be a node-redis client/],
    ['a keyPrefix with a space', { url: REDIS_URL, keyPrefix: 'a b' }, /keyPrefix/],
    ['a keyPrefix that is a number', { url: REDIS_URL, keyPrefix: 5 }, /keyPrefix/],
    ['maxNoncesPerSession 0', { url: REDIS_URL, maxNoncesPerSession: 0 }, /maxNoncesPerSession" must be a positive integer, got 0/],
    ['maxNoncesPerSession 1.5', { url: REDIS_URL, maxNoncesPerSession: 1.5 }, /maxNoncesPerSession/],
    ['connectTimeoutMs -1', { url: REDIS_URL, connectTimeoutMs: -1 }, /connectTimeoutMs" must be a positive number/],
    ['commandTimeoutMs NaN', { url: REDIS_URL, commandTimeoutMs: Number.NaN }, /commandTimeoutMs/],
    ['expiredGraceSec -1', { url: REDIS_URL, expiredGraceSec: -1 }, /expiredGraceSec/],
    ['onError not a function', { url: REDIS_URL, onError: 'log' }, /onError/],
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
});

describe('sessions', () => {
  test('a session round-trips as a plain record, with a TTL of expiresAt + grace', async () => {
    const store = newStore({ expiredGraceSec: 600 });
    const r = record();
    await store.createSession(r, LIMITS);
    expect(await store.getSession(r.sessionId)).toEqual(r);
    const ttl = await redis.pTTL(store.keys.session(r.sessionId));
    expect(ttl).toBeGreaterThan(600_000 + 55_000);
    expect(ttl).toBeLessThanOrEqual(660_000);
    expect(await redis.zScore(store.keys.live, r.sessionId)).toBe(r.expiresAt);
    expect(await store.getSession('f'.repeat(32))).toBeUndefined();
  });

  test('an expired session is still returned during the grace period (session_expired), then forgotten', async () => {
    const store = newStore({ expiredGraceSec: 1 });
    const now = Date.now();
    const r = record({ createdAt: now, expiresAt: now + 200 });
    await store.createSession(r, LIMITS);
    await sleep(300);
    const expired = await store.getSession(r.sessionId);
    expect(expired?.expiresAt).toBeLessThan(Date.now());
    await sleep(1000);
    expect(await store.getSession(r.sessionId)).toBeUndefined();
  });

  test('deleteSession removes the record, its nonces and its slot', async () => {
    const store = newStore();
    const r = record();
    await store.createSession(r, LIMITS);
    expect(await store.recordNonce(r.sessionId, 'n1', Date.now(), 600)).toBe(true);
    await store.deleteSession(r.sessionId);
    expect(await store.getSession(r.sessionId)).toBeUndefined();
    expect(await redis.exists(store.keys.nonces(r.sessionId))).toBe(0);
    expect(await redis.zScore(store.keys.live, r.sessionId)).toBeNull();
    await store.deleteSession(r.sessionId); // idempotent
  });

  test('maxSessions: refused with too_many_sessions; a deleted or expired session frees its slot', async () => {
    const store = newStore();
    const live = [record(), record(), record()];
    for (const r of live) await store.createSession(r, { maxSessions: 3 });
    const refused = store.createSession(record(), { maxSessions: 3 });
    await expect(refused).rejects.toBeInstanceOf(PQCTransportError);
    await expect(store.createSession(record(), { maxSessions: 3 })).rejects.toMatchObject({ reason: 'too_many_sessions' });
    await store.deleteSession(live[0]!.sessionId);
    await store.createSession(record(), { maxSessions: 3 });
    await expect(store.createSession(record(), { maxSessions: 3 })).rejects.toMatchObject({ reason: 'too_many_sessions' });

    // An expired session (still kept for its grace period) no longer counts.
    const other = newStore();
    const now = Date.now();
    await other.createSession(record({ expiresAt: now + 100 }), { maxSessions: 1 });
    await expect(other.createSession(record(), { maxSessions: 1 })).rejects.toMatchObject({ reason: 'too_many_sessions' });
    await sleep(150);
    await other.createSession(record(), { maxSessions: 1 });
  });

  test('maxSessions holds under concurrency across two stores (one Lua script each)', async () => {
    const prefix = uniquePrefix('race');
    const a = newStore({ keyPrefix: prefix });
    const b = newStore({ keyPrefix: prefix });
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, (_, i) => (i % 2 ? a : b).createSession(record(), { maxSessions: 10 })),
    );
    expect(results.filter((r) => r.status === 'fulfilled').length).toBe(10);
    const reasons = results.flatMap((r) => (r.status === 'rejected' ? [(r.reason as PQCTransportError).reason] : []));
    expect(new Set(reasons)).toEqual(new Set(['too_many_sessions']));
    expect(await redis.zCard(a.keys.live)).toBe(10);
  });

  test('a corrupt stored record is store_unavailable, never a crash', async () => {
    const store = newStore();
    await redis.set(store.keys.session('c'.repeat(32)), '{"sessionId": 5}');
    await expect(store.getSession('c'.repeat(32))).rejects.toMatchObject({ reason: 'store_unavailable' });
    await redis.set(store.keys.session('d'.repeat(32)), 'not json');
    await expect(store.getSession('d'.repeat(32))).rejects.toMatchObject({ reason: 'store_unavailable' });
  });
});

describe('nonces', () => {
  test('first use true, replay false, another session independent, unknown session false', async () => {
    const store = newStore();
    const r1 = record();
    const r2 = record();
    await store.createSession(r1, LIMITS);
    await store.createSession(r2, LIMITS);
    const now = Date.now();
    expect(await store.recordNonce(r1.sessionId, 'aa', now, 600)).toBe(true);
    expect(await store.recordNonce(r1.sessionId, 'aa', now, 600)).toBe(false);
    expect(await store.recordNonce(r1.sessionId, 'aa', now + 5, 600)).toBe(false);
    expect(await store.recordNonce(r2.sessionId, 'aa', now, 600)).toBe(true);
    expect(await store.recordNonce('e'.repeat(32), 'aa', now, 600)).toBe(false);
    expect(await store.recordNonce(r1.sessionId, 'bb', Number.NaN, 600)).toBe(false);
    const ttl = await redis.pTTL(store.keys.nonces(r1.sessionId));
    expect(ttl).toBeGreaterThan(590_000);
    expect(ttl).toBeLessThanOrEqual(600_000);
  });

  test('SET NX atomicity: 50 parallel recordNonce of one nonce from two stores → exactly one true', async () => {
    const prefix = uniquePrefix('nx');
    const a = newStore({ keyPrefix: prefix });
    const b = newStore({ keyPrefix: prefix });
    const r = record();
    await a.createSession(r, LIMITS);
    const now = Date.now();
    for (let round = 0; round < 5; round++) {
      const nonce = `race-${round}`;
      const results = await Promise.all(Array.from({ length: 50 }, (_, i) => (i % 2 ? a : b).recordNonce(r.sessionId, nonce, now, 600)));
      expect(results.filter(Boolean).length).toBe(1);
    }
  });

  test('a nonce is forgotten once its timestamp is older than the window (it would be stale anyway)', async () => {
    let clock = Date.now();
    const store = newStore({ now: () => clock });
    const r = record();
    await store.createSession(r, LIMITS);
    const ts = clock;
    expect(await store.recordNonce(r.sessionId, 'old', ts, 10)).toBe(true);
    clock += 9_000;
    expect(await store.recordNonce(r.sessionId, 'old', ts, 10)).toBe(false);
    clock += 2_000;
    expect(await store.recordNonce(r.sessionId, 'fresh', clock, 10)).toBe(true);
    expect(await redis.zScore(store.keys.nonces(r.sessionId), 'old')).toBeNull();
  });

  test('the per-session cap: oldest timestamps dropped, the floor refuses what can no longer be proven fresh', async () => {
    const store = newStore({ maxNoncesPerSession: 5 });
    const r = record();
    await store.createSession(r, LIMITS);
    const t0 = Date.now();
    for (let i = 0; i < 10; i++) expect(await store.recordNonce(r.sessionId, `n${i}`, t0 + i, 600)).toBe(true);
    expect(await redis.zCard(store.keys.nonces(r.sessionId))).toBe(5);
    expect(Number(await redis.get(store.keys.floor(r.sessionId)))).toBe(t0 + 4);
    // Every accepted nonce stays refused: held ones as replays, dropped ones by the floor.
    for (let i = 0; i < 10; i++) expect(await store.recordNonce(r.sessionId, `n${i}`, t0 + i, 600)).toBe(false);
    // A new nonce not newer than the floor cannot be proven fresh; a newer one is fine.
    expect(await store.recordNonce(r.sessionId, 'late', t0 + 4, 600)).toBe(false);
    expect(await store.recordNonce(r.sessionId, 'ok', t0 + 5, 600)).toBe(true);
    expect(await redis.zCard(store.keys.nonces(r.sessionId))).toBe(5);
  });
});

describe('handshakes', () => {
  test('SET NX PX: once true, then false; 50 in parallel → one true', async () => {
    const store = newStore();
    expect(await store.recordHandshake('did:x:n1', 600)).toBe(true);
    expect(await store.recordHandshake('did:x:n1', 600)).toBe(false);
    const ttl = await redis.pTTL(store.keys.handshake('did:x:n1'));
    expect(ttl).toBeGreaterThan(590_000);
    const results = await Promise.all(Array.from({ length: 50 }, () => store.recordHandshake('did:x:n2', 600)));
    expect(results.filter(Boolean).length).toBe(1);
  });

  test('a handshake key expires after its TTL', async () => {
    const store = newStore();
    expect(await store.recordHandshake('did:x:short', 0.2)).toBe(true);
    expect(await store.recordHandshake('did:x:short', 0.2)).toBe(false);
    await sleep(300);
    expect(await store.recordHandshake('did:x:short', 0.2)).toBe(true);
  });
});

describe('key prefixes', () => {
  test('stores with different prefixes share nothing; every key is under the prefix', async () => {
    const a = newStore();
    const b = newStore();
    const r = record();
    await a.createSession(r, { maxSessions: 1 });
    expect(await b.getSession(r.sessionId)).toBeUndefined();
    await b.createSession(record(), { maxSessions: 1 }); // a's session does not count against b
    await b.createSession(r, LIMITS);
    const now = Date.now();
    expect(await a.recordNonce(r.sessionId, 'n', now, 600)).toBe(true);
    expect(await b.recordNonce(r.sessionId, 'n', now, 600)).toBe(true);
    expect(await a.recordHandshake('k', 600)).toBe(true);
    expect(await b.recordHandshake('k', 600)).toBe(true);
    const keysA = await keysUnder(redis, a.keyPrefix);
    expect(keysA.sort()).toEqual(
      [a.keys.live, a.keys.session(r.sessionId), a.keys.nonces(r.sessionId), a.keys.handshake('k')].sort(),
    );
    expect(redisKeys('p:').session('x')).toBe('p:s:x');
  });

  test('the default prefix is pqc:', () => {
    const store = new RedisSessionStore({ url: REDIS_URL });
    expect(store.keyPrefix).toBe('pqc:');
    expect(store.keys.live).toBe('pqc:live');
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

  test('a given, connected client is used as is', async () => {
    const client = createClient({ url: REDIS_URL });
    await client.connect();
    const store = newStore({ client, url: undefined });
    const r = record();
    await store.createSession(r, LIMITS);
    expect(await store.getSession(r.sessionId)).toEqual(r);
    await store.close();
    await client.close();
  });

  test('the scripts are reloaded after SCRIPT FLUSH (as after a Redis restart)', async () => {
    const store = newStore();
    const r = record();
    await store.createSession(r, LIMITS);
    await redis.scriptFlush();
    expect(await store.recordNonce(r.sessionId, 'after-flush', Date.now(), 600)).toBe(true);
    await store.createSession(record(), LIMITS);
  });
});

describe('Redis unreachable', () => {
  test('every method fails fast with store_unavailable, no unhandled rejection, lastError kept', async () => {
    const port = await freePort(); // nothing listens there
    const errors: unknown[] = [];
    const unhandled = trackUnhandledRejections();
    const store = new RedisSessionStore({ url: `redis://127.0.0.1:${port}`, connectTimeoutMs: 300, onError: (e) => errors.push(e) });
    try {
      let t = Date.now();
      await expect(store.createSession(record(), LIMITS)).rejects.toMatchObject({ reason: 'store_unavailable' });
      expect(Date.now() - t).toBeLessThan(1500);
      t = Date.now();
      const calls = [
        store.getSession('a'.repeat(32)),
        store.deleteSession('a'.repeat(32)),
        store.recordNonce('a'.repeat(32), 'n', Date.now(), 600),
        store.recordHandshake('k', 600),
        store.connect(),
      ];
      for (const call of calls) await expect(call).rejects.toMatchObject({ reason: 'store_unavailable', message: /unreachable/ });
      expect(Date.now() - t).toBeLessThan(200);
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
