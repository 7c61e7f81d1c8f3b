/**
 * `RedisSessionStore` on a real 3-master Redis Cluster (started on loopback by the jest global setup): the session-
 * store contract of the test kit, the same random operations as `MemorySessionStore` (the rules are the same), the
 * bounds split into index shards and their slack, one hash slot per script (a cluster refuses any other: every test
 * here would fail with CROSSSLOT), TTLs on every key, round trips and bytes per session.
 */
import type { NonceOutcome, SessionLimits } from '@pqc-mcp/core';
import { freePort, runSessionStoreContract } from '@pqc-mcp/test-kit';
import { randomBytes } from 'node:crypto';
import { createCluster } from 'redis';
import { RedisSessionStore, type RedisSessionStoreOptions } from '../src/index.js';
import { MIN_SESSIONS_PER_SHARD } from '../src/cluster.js';
import { clusterDeletePrefix, clusterKeysUnder, connectTestCluster, sameAnswersAsMemoryStore, testRecord as record, testClusterClient, uniquePrefix, type RawCluster } from './helpers.js';

let cluster: RawCluster;
const prefixes: string[] = [];
const stores: RedisSessionStore[] = [];
const clients: RawCluster[] = [];

beforeAll(async () => {
  cluster = await connectTestCluster();
});

afterAll(async () => {
  await Promise.all(stores.map((s) => s.close()));
  await Promise.all(clients.map((c) => c.close()));
  for (const prefix of prefixes) await clusterDeletePrefix(cluster, prefix);
  await cluster.close();
});

/** A cluster client of its own (another server instance), closed after the file. */
function clusterClient(): RawCluster {
  const client = testClusterClient();
  client.on('error', () => {});
  clients.push(client);
  return client;
}

function newStore(options: Partial<RedisSessionStoreOptions> = {}): RedisSessionStore {
  const keyPrefix = options.keyPrefix ?? uniquePrefix('cluster');
  prefixes.push(keyPrefix);
  const store = new RedisSessionStore({ client: clusterClient(), ...options, keyPrefix });
  stores.push(store);
  return store;
}

runSessionStoreContract('RedisSessionStore on a Redis Cluster', async ({ maxNoncesPerSession }) => {
  const keyPrefix = uniquePrefix('ccontract');
  const opened: RedisSessionStore[] = [];
  const ownClients: RawCluster[] = [];
  const open = () => {
    const client = testClusterClient();
    client.on('error', () => {});
    ownClients.push(client);
    const store = new RedisSessionStore({ client, keyPrefix, maxNoncesPerSession });
    opened.push(store);
    return store;
  };
  return {
    store: open(),
    sibling: async () => open(),
    close: async () => {
      await Promise.all(opened.map((s) => s.close()));
      await Promise.all(ownClients.filter((c) => c.isOpen).map((c) => c.close()));
      await clusterDeletePrefix(cluster, keyPrefix);
    },
  };
});

const hex = (bytes: number) => randomBytes(bytes).toString('hex');

const LIMITS: SessionLimits = { maxSessions: 1000, maxSessionsPerClient: 16, retentionSec: 660 };
/** Below 512 sessions the global bound has one index shard (shard 0). */
const ONE_SHARD: SessionLimits = { ...LIMITS, maxSessions: 500 };

/** The slot Redis Cluster computes for a key (CRC16 of its hash tag, mod 16384). */
function slotOf(key: string): number {
  const open = key.indexOf('{');
  const close = key.indexOf('}', open + 1);
  const tag = open >= 0 && close > open + 1 ? key.slice(open + 1, close) : key;
  let crc = 0;
  for (const byte of Buffer.from(tag)) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}

describe('the store on a cluster', () => {
  test('a cluster client is recognized; a prefix with a brace is refused there (it would move the slots)', () => {
    const store = newStore();
    expect(store.cluster).toBe(true);
    expect(() => new RedisSessionStore({ client: clusterClient(), keyPrefix: 'a{b}:' })).toThrow(/keyPrefix/);
    expect(() => new RedisSessionStore({ client: clusterClient(), indexShards: 0 })).toThrow(/indexShards/);
    expect(slotOf('123456789')).toBe(12739); // the CRC16 of the Redis Cluster specification
  });

  test('the keys of a session, of a client, of a shard each share one slot; sessions spread over the masters', async () => {
    const store = newStore({ maxNoncesPerSession: 3 });
    const k = store.keys;
    const rs = Array.from({ length: 30 }, (_, i) => record({ peerDid: `did:pqaid:${String(i % 3).repeat(64)}` }));
    for (const r of rs) {
      await store.createSession(r, ONE_SHARD);
      for (let i = 0; i < 4; i++) expect(await store.recordNonce(r.sessionId, hex(16), Date.now() + i, 660)).toBe('accepted');
      await store.recordServerRequest(r.sessionId, 'n:1', hex(16), 60);
      const own = [k.session(r.sessionId), k.nonces(r.sessionId), k.nonceTimes(r.sessionId), k.serverRequest(r.sessionId, 'n:1')];
      expect(new Set(own.map(slotOf)).size).toBe(1);
    }
    expect(new Set(k.cluster.client(rs[0]!.peerDid).map(slotOf)).size).toBe(1);
    expect(new Set(k.cluster.shard(0).map(slotOf)).size).toBe(1);
    const masters = new Set(rs.map((r) => cluster.getSlotMaster(slotOf(k.session(r.sessionId))).port));
    expect(masters.size).toBe(3);
    await store.endSession(rs[0]!.sessionId, 660);
    // Every key under the prefix has a TTL, and nothing else is written.
    const keys = await clusterKeysUnder(cluster, store.keyPrefix);
    for (const key of keys) {
      const ttl = await cluster.pTTL(key);
      if (!(ttl > 0)) throw new Error(`key ${key} has no TTL (${ttl})`);
    }
    expect(await cluster.zCard(k.cluster.shard(0)[0])).toBe(29);
    expect(await cluster.zCard(k.cluster.shard(0)[3])).toBe(1);
  });
});

describe('the rules are MemorySessionStore\'s', () => {
  test.each([1, 2, 3])('the same random operations on both stores (seed %i) give the same answers', (seed) =>
    sameAnswersAsMemoryStore((options) => newStore(options), seed),
  );
});

describe('bounds split into index shards', () => {
  test(`maxSessions ${4 * MIN_SESSIONS_PER_SHARD}: 4 shards of ${MIN_SESSIONS_PER_SHARD}; a flood past it never leaves more live than maxSessions + shards - 1`, async () => {
    const store = newStore({ indexShards: 4, commandTimeoutMs: 5000 });
    const maxSessions = 4 * MIN_SESSIONS_PER_SHARD;
    const limits = { ...LIMITS, maxSessions, maxSessionsPerClient: 1_000_000 };
    const total = maxSessions + 300;
    const ended: string[] = [];
    const ids: string[] = [];
    for (let i = 0; i < total; i += 32) {
      const batch = Array.from({ length: Math.min(32, total - i) }, (_, j) => record({ peerDid: `did:pqaid:${((i + j) % 50).toString(16).padStart(64, '0')}` }));
      ids.push(...batch.map((r) => r.sessionId));
      ended.push(...(await Promise.all(batch.map((r) => store.createSession(r, limits)))).flat());
    }
    const live = await Promise.all([0, 1, 2, 3].map((n) => cluster.zCard(store.keys.cluster.shard(n)[0])));
    for (const n of live) expect(n).toBeLessThanOrEqual(MIN_SESSIONS_PER_SHARD);
    expect(live.reduce((a, b) => a + b)).toBe(total - ended.length);
    expect(new Set(ended).size).toBe(ended.length);
    // Ended means ended: every session the store reported is refused, every one still in an index is accepted.
    const inIndex = new Set((await Promise.all([0, 1, 2, 3].map((n) => cluster.zRange(store.keys.cluster.shard(n)[0], 0, -1)))).flat());
    const sample = ids.filter((_, i) => i % 7 === 0);
    const outcomes: NonceOutcome[] = [];
    for (let i = 0; i < sample.length; i += 32) {
      outcomes.push(...(await Promise.all(sample.slice(i, i + 32).map((id) => store.recordNonce(id, hex(16), Date.now(), 660)))));
    }
    sample.forEach((id, i) => expect([id, outcomes[i]]).toEqual([id, inIndex.has(id) ? 'accepted' : 'ended']));
    expect(ended.length).toBeGreaterThanOrEqual(300);
  }, 60_000);
});

describe('limits across instances', () => {
  test('50 concurrent handshakes through two stores (own cluster clients): never more live than maxSessions, each end reported once', async () => {
    const prefix = uniquePrefix('crace');
    const a = newStore({ keyPrefix: prefix });
    const b = newStore({ keyPrefix: prefix });
    const limits = { ...LIMITS, maxSessions: 10 };
    const rs = Array.from({ length: 50 }, (_, i) => record({ peerDid: `did:pqaid:${(i % 25).toString(16).padStart(64, '0')}` }));
    const ended = (await Promise.all(rs.map((r, i) => (i % 2 ? a : b).createSession(r, limits)))).flat();
    expect(ended).toHaveLength(40);
    expect(new Set(ended).size).toBe(40);
    expect(await cluster.zCard(a.keys.cluster.shard(0)[0])).toBe(10);
    const outcomes = await Promise.all(rs.map((r) => a.recordNonce(r.sessionId, hex(16), Date.now(), 660)));
    expect(outcomes.filter((o) => o === 'accepted')).toHaveLength(10);
    expect(outcomes.filter((o) => o === 'ended')).toHaveLength(40);
  });

  test('one client flooding handshakes on two instances: never more than its cap live, whatever the interleaving', async () => {
    const prefix = uniquePrefix('cflood');
    const a = newStore({ keyPrefix: prefix });
    const b = newStore({ keyPrefix: prefix });
    const limits = { ...LIMITS, maxSessionsPerClient: 3 };
    const peer = `did:pqaid:${'f'.repeat(64)}`;
    const rs = Array.from({ length: 60 }, (_, i) => record({ peerDid: peer, createdAt: Date.now() + i }));
    const ended = (await Promise.all(rs.map((r, i) => (i % 2 ? a : b).createSession(r, limits)))).flat();
    expect(new Set(ended).size).toBe(57);
    expect(await cluster.zCard(a.keys.cluster.client(peer)[0])).toBe(3);
    const outcomes = await Promise.all(rs.map((r) => b.recordNonce(r.sessionId, hex(16), Date.now(), 660)));
    expect(outcomes.filter((o) => o === 'accepted')).toHaveLength(3);
    // Another client is untouched by this one's flood.
    const other = record({ peerDid: `did:pqaid:${'e'.repeat(64)}` });
    expect(await a.createSession(other, limits)).toEqual([]);
    expect(await b.recordNonce(other.sessionId, hex(16), Date.now(), 660)).toBe('accepted');
  });

  test('recordNonce is one script on the session\'s slot whatever its outcome; a forged session id sends nothing', async () => {
    const store = newStore({ maxNoncesPerSession: 2 });
    const r = record();
    await store.createSession(r, ONE_SHARD);
    const t = Date.now();
    expect(await store.recordNonce(r.sessionId, 'a', t, 660)).toBe('accepted');
    expect(await store.recordNonce(r.sessionId, 'a', t, 660)).toBe('replay');
    expect(await store.recordNonce(`${r.sessionId}}:s`, 'b', t, 660)).toBe('unknown');
    await store.endSession(r.sessionId, 660);
    expect(await store.recordNonce(r.sessionId, 'c', t + 1, 660)).toBe('ended');
    // Ended: out of its client's index and its shard's live set, into the kept set.
    expect(await cluster.zScore(store.keys.cluster.client(r.peerDid)[0], r.sessionId)).toBeNull();
    expect(await cluster.zScore(store.keys.cluster.shard(0)[0], r.sessionId)).toBeNull();
    expect(await cluster.zScore(store.keys.cluster.shard(0)[3], r.sessionId)).toEqual(expect.any(Number));
  });
});

describe('cluster unreachable', () => {
  test('every method fails fast with store_unavailable (fail closed), lastError kept', async () => {
    const port = await freePort(); // nothing listens there
    const client = createCluster({ rootNodes: [{ url: `redis://127.0.0.1:${port}` }], defaults: { disableOfflineQueue: true, socket: { reconnectStrategy: false } } });
    const store = new RedisSessionStore({ client, connectTimeoutMs: 300 });
    try {
      const t = Date.now();
      await expect(store.createSession(record(), LIMITS)).rejects.toMatchObject({ reason: 'store_unavailable' });
      await expect(store.recordNonce('a'.repeat(32), 'n', Date.now(), 660)).rejects.toMatchObject({ reason: 'store_unavailable' });
      await expect(store.recordHandshake('k', Date.now(), 660)).rejects.toMatchObject({ reason: 'store_unavailable' });
      expect(Date.now() - t).toBeLessThan(3000);
      expect(String(store.lastError)).toMatch(/unavailable|ECONNREFUSED/i);
    } finally {
      await store.close();
    }
  });
});
