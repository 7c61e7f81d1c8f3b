/**
 * What one handshake and one verified message cost in Redis, on a single Redis and on a Redis Cluster, measured end to
 * end: core's real handler behind node:http, the test kit's `RawClient`, and a Redis client that counts every command
 * the store sends (client-side counting; the same numbers as `MONITOR`). Also the bytes a session holds
 * (`MEMORY USAGE`). The numbers are in packages/redis/README.md ("Cost"); PQC_TEST_VERBOSE=1 prints them.
 */
import { RawClient, report, seededIdentity } from '@pqc-mcp/test-kit';
import { createClient } from 'redis';
import { RedisSessionStore, type RedisClientLike, type RedisClusterLike } from '../src/index.js';
import { REDIS_URL, clusterDeletePrefix, connectTestCluster, connectTestRedis, deletePrefix, startServer, testClusterClient, uniquePrefix, type RawCluster, type RawRedis } from './helpers.js';

const SERVER = seededIdentity(41);

let redis: RawRedis;
let cluster: RawCluster;

beforeAll(async () => {
  redis = await connectTestRedis();
  cluster = await connectTestCluster();
});

afterAll(async () => {
  await redis.close();
  await cluster.close();
});

/** Counts the commands sent through `client`, and the round trips: a command sent while none is awaited starts one. */
interface Counter {
  commands: string[];
  roundTrips: number;
  reset(): void;
}

function counting<T extends object>(client: T, cluster: boolean): { client: T; counter: Counter } {
  const counter: Counter = {
    commands: [],
    roundTrips: 0,
    reset() {
      this.commands = [];
      this.roundTrips = 0;
    },
  };
  let inFlight = 0;
  const proxy = new Proxy(client, {
    get(target, prop) {
      if (prop === 'sendCommand') {
        return async (...params: unknown[]) => {
          const args = (cluster ? params[2] : params[0]) as string[];
          const name = args[0] === 'ZADD' && args[2] === 'XX' ? 'ZADD XX (last used, not awaited)' : args[0]!;
          counter.commands.push(name);
          if (inFlight === 0 && !name.startsWith('ZADD XX')) counter.roundTrips++;
          const track = !name.startsWith('ZADD XX');
          if (track) inFlight++;
          try {
            return await (target as { sendCommand: (...p: unknown[]) => Promise<unknown> }).sendCommand(...params);
          } finally {
            if (track) inFlight--;
          }
        };
      }
      const value = Reflect.get(target, prop, target) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { client: proxy, counter };
}

const tally = (commands: string[]) => commands.reduce<Record<string, number>>((acc, c) => ({ ...acc, [c]: (acc[c] ?? 0) + 1 }), {});

describe.each(['single Redis', 'Redis Cluster'] as const)('%s', (kind) => {
  test('round trips per handshake and per verified message, bytes per session', async () => {
    const keyPrefix = uniquePrefix('cost');
    const isCluster = kind === 'Redis Cluster';
    const inner = isCluster ? testClusterClient() : createClient({ url: REDIS_URL });
    inner.on('error', () => {});
    const { client, counter } = counting(inner, isCluster);
    const store = new RedisSessionStore({ client: client as unknown as RedisClientLike | RedisClusterLike, keyPrefix, commandTimeoutMs: 5000 });
    const server = await startServer({ identity: SERVER, store, maxSessions: 10_000 });
    try {
      await store.connect();
      // Loads every script on every node (EVALSHA, then EVAL on NOSCRIPT: once per script and node).
      for (let i = 0; i < 12; i++) {
        const warm = new RawClient(server.url, seededIdentity(50 + (i % 4)), SERVER.did);
        await warm.handshake();
        await warm.initialize();
      }

      const rawClient = new RawClient(server.url, seededIdentity(43), SERVER.did);
      counter.reset();
      const session = await rawClient.handshake();
      const handshake = { commands: tally(counter.commands), roundTrips: counter.roundTrips };

      const messages = 20;
      counter.reset();
      for (let i = 0; i < messages; i++) {
        const signed = await rawClient.sign({ jsonrpc: '2.0', id: rawClient.id(), method: 'tools/call', params: { name: 'echo', arguments: { text: `m${i}` } } });
        const response = await rawClient.post(signed.text);
        if (response.status !== 200) throw new Error(`message ${i}: ${response.status} ${await response.text()} ${String(store.lastError)}`);
        await rawClient.verified(response, signed.nonce);
      }
      const perMessage = { commands: counter.commands.length / messages, roundTrips: counter.roundTrips / messages, all: tally(counter.commands) };

      const k = store.keys;
      const id = session.sessionId;
      const memory = async (key: string) => Number((isCluster ? await cluster.memoryUsage(key) : await redis.memoryUsage(key)) ?? 0);
      const sessionBytes = (await Promise.all([k.session(id), k.nonces(id), k.nonceTimes(id)].map(memory))).reduce((a, b) => a + b);
      report(`${kind}: handshake ${handshake.roundTrips} round trips, commands ${JSON.stringify(handshake.commands)}`);
      report(`${kind}: verified message ${perMessage.roundTrips} round trips, ${perMessage.commands} commands (${JSON.stringify(perMessage.all)} over ${messages})`);
      report(`${kind}: session keys after ${messages} messages: ${sessionBytes} bytes (MEMORY USAGE of its hash, nonce ZSET and nonce hash)`);

      // Per verified message: core reads the session (HMGET: the pinned key), then records the nonce (one script on
      // the session's slot, which also decides liveness); on a cluster the refresh of "last used" in the session's
      // index shard follows, not awaited.
      expect(perMessage.roundTrips).toBe(2);
      const both = { HMGET: messages, EVALSHA: messages };
      expect(perMessage.all).toEqual(isCluster ? { ...both, 'ZADD XX (last used, not awaited)': messages } : both);
      // A handshake: its replay key, then the session (one script on a single Redis; three on a cluster: the
      // record, the client's index, the index shard).
      expect(handshake.commands).toEqual(isCluster ? { SET: 1, EVALSHA: 3 } : { SET: 1, EVALSHA: 1 });
      expect(handshake.roundTrips).toBe(isCluster ? 4 : 2);
      expect(sessionBytes).toBeGreaterThan(4000); // the client's public key (1952 bytes, hex in the record's JSON)
      expect(sessionBytes).toBeLessThan(16_000);
    } finally {
      await server.close();
      await store.close();
      if (isCluster) await clusterDeletePrefix(cluster, keyPrefix);
      else await deletePrefix(redis, keyPrefix);
      await inner.close();
    }
  });
});
