/**
 * Several server instances sharing one store: two `createPQCHandler` + node:http servers, each with its own
 * `RedisSessionStore` (its own connection) on the same Redis and prefix, behind them the real MCP SDK server.
 *
 * The MCP SDK keeps its own Mcp-Session-Id state in the process that answered `initialize`, so the app here is the
 * SDK's stateless mode (`sessionIdGenerator: undefined`, a new McpServer + transport per request): any instance can
 * answer any call, as behind a load balancer without sticky sessions. The PQC session is what is shared, through Redis.
 *
 * The same suite runs on one instance with a `MemorySessionStore` (A and B are then the same server): whatever holds
 * for one process must hold for the cluster.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { MemorySessionStore, PQCHandshake, pqcFetch, type FetchLike, type PQCServerOptions, type SessionStore } from '@pqc-mcp/core';
import { RedisSessionStore } from '../src/index.js';
import { seededIdentity } from '@pqc-mcp/test-kit';
import {
  REDIS_URL,
  RawClient,
  connectTestRedis,
  deletePrefix,
  reasonOf,
  sleep,
  startServer,
  uniquePrefix,
  type RawRedis,
  type TestServer,
} from './helpers.js';

const SERVER = seededIdentity(21);
const CLIENT = seededIdentity(22);

/** Two entry points (A and B) onto one logical server. */
interface Pair {
  a: TestServer;
  b: TestServer;
  stores: SessionStore[];
  close(): Promise<void>;
}

type Topology = (options?: Partial<PQCServerOptions>) => Promise<Pair>;

let redis: RawRedis;
const prefixes: string[] = [];

beforeAll(async () => {
  redis = await connectTestRedis();
});

afterAll(async () => {
  for (const prefix of prefixes) await deletePrefix(redis, prefix);
  await redis.close();
});

const redisTwoInstances: Topology = async (options = {}) => {
  const keyPrefix = uniquePrefix('shared');
  prefixes.push(keyPrefix);
  const storeA = new RedisSessionStore({ url: REDIS_URL, keyPrefix });
  const storeB = new RedisSessionStore({ url: REDIS_URL, keyPrefix });
  const a = await startServer({ identity: SERVER, ...options, store: storeA });
  const b = await startServer({ identity: SERVER, ...options, store: storeB });
  return {
    a,
    b,
    stores: [storeA, storeB],
    close: async () => {
      await Promise.all([a.close(), b.close()]);
      await Promise.all([storeA.close(), storeB.close()]);
    },
  };
};

const memoryOneInstance: Topology = async (options = {}) => {
  const store = new MemorySessionStore();
  const a = await startServer({ identity: SERVER, ...options, store });
  return { a, b: a, stores: [store], close: () => a.close() };
};

/** A fetch that sends the handshake to A and everything else to B (or round-robin). */
function balancer(pair: Pair, mode: 'handshake-on-a' | 'round-robin'): FetchLike & { hits: { a: number; b: number } } {
  const hits = { a: 0, b: 0 };
  let turn = 0;
  const fn = (input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const toA = mode === 'handshake-on-a' ? url.pathname.endsWith('/pqc/handshake') : turn++ % 2 === 0;
    const target = toA ? pair.a : pair.b;
    hits[toA ? 'a' : 'b']++;
    url.port = String(target.port);
    return fetch(url, init);
  };
  return Object.assign(fn, { hits });
}

function operations(server: TestServer, operation: string): number {
  return server.handler.audit.entries().filter((e) => e.operation === operation).length;
}

describe.each([
  ['Redis, two instances', redisTwoInstances],
  ['MemorySessionStore, one instance', memoryOneInstance],
])('%s', (_name, topology) => {
  describe('one session across instances', () => {
    let pair: Pair;
    beforeAll(async () => {
      pair = await topology();
    });
    afterAll(() => pair.close());

    test('the MCP SDK client: handshake on A, initialize / tools/list / tools/call on B, all verified', async () => {
      const routed = balancer(pair, 'handshake-on-a');
      const fetch = pqcFetch({ identity: CLIENT, serverDid: SERVER.did, fetch: routed });
      const handshakesOnA = operations(pair.a, 'handshake');
      const requestsOnB = operations(pair.b, 'request');
      const client = new Client({ name: 'shared-store', version: '1.0.0' });
      await client.connect(new StreamableHTTPClientTransport(new URL(pair.a.url), { fetch }));
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name).sort()).toEqual(['add', 'echo']);
      expect(await client.callTool({ name: 'add', arguments: { a: 20, b: 22 } })).toMatchObject({ content: [{ type: 'text', text: '42' }] });
      await client.close();
      expect(routed.hits.a).toBe(1);
      expect(operations(pair.a, 'handshake')).toBe(handshakesOnA + 1);
      expect(operations(pair.b, 'request')).toBeGreaterThanOrEqual(requestsOnB + 3); // initialize, tools/list, tools/call
      expect(fetch.audit.entries().filter((e) => e.operation === 'rejected')).toEqual([]);
      expect(fetch.audit.entries().filter((e) => e.operation === 'response').length).toBeGreaterThanOrEqual(3);
    });

    test('the MCP SDK client, round-robin over A and B', async () => {
      const routed = balancer(pair, 'round-robin');
      const fetch = pqcFetch({ identity: CLIENT, serverDid: SERVER.did, fetch: routed });
      const client = new Client({ name: 'shared-store', version: '1.0.0' });
      await client.connect(new StreamableHTTPClientTransport(new URL(pair.a.url), { fetch }));
      for (let i = 0; i < 4; i++) {
        expect(await client.callTool({ name: 'echo', arguments: { text: `call ${i}` } })).toMatchObject({ content: [{ text: `call ${i}` }] });
      }
      await client.close();
      expect(routed.hits.a).toBeGreaterThanOrEqual(3);
      expect(routed.hits.b).toBeGreaterThanOrEqual(3);
      expect(fetch.audit.entries().filter((e) => e.operation === 'rejected')).toEqual([]);
    });

    test('a request replayed on the other instance → 401 replay_detected', async () => {
      const client = new RawClient(CLIENT, SERVER.did);
      await client.handshake(pair.a.url);
      const first = await client.toolCall('echo', { text: 'once' });
      const ok = await client.post(pair.b.url, first.text);
      expect(ok.status).toBe(200);
      expect(await client.verified(ok, first.nonce)).toMatchObject([{ result: { content: [{ text: 'once' }] } }]);
      const seenOnA = pair.a.seen.length;
      const replayOnA = await client.post(pair.a.url, first.text);
      expect(replayOnA.status).toBe(401);
      expect(await reasonOf(replayOnA)).toBe('replay_detected');
      expect(pair.a.seen.length).toBe(seenOnA); // the application never saw the replay

      const second = await client.toolCall('add', { a: 1, b: 1 });
      expect((await client.post(pair.a.url, second.text)).status).toBe(200);
      const replayOnB = await client.post(pair.b.url, second.text);
      expect([replayOnB.status, await reasonOf(replayOnB)]).toEqual([401, 'replay_detected']);
    });

    test('the same request sent to both instances at once: exactly one is answered', async () => {
      const client = new RawClient(CLIENT, SERVER.did);
      await client.handshake(pair.b.url);
      for (let round = 0; round < 3; round++) {
        const signed = await client.toolCall('echo', { text: `race ${round}` });
        const responses = await Promise.all([pair.a, pair.b, pair.a, pair.b].map((s) => client.post(s.url, signed.text)));
        expect(responses.map((r) => r.status).sort()).toEqual([200, 401, 401, 401]);
        await Promise.all(responses.map((r) => r.arrayBuffer()));
      }
    });

    test('a handshake replayed on the other instance → 401 replay_detected', async () => {
      const { request } = await PQCHandshake.initiate(CLIENT);
      const post = (server: TestServer) => fetch(new URL('pqc/handshake', server.url), { method: 'POST', body: request });
      expect((await post(pair.a)).status).toBe(200);
      const replayed = await post(pair.b);
      expect([replayed.status, await reasonOf(replayed)]).toEqual([401, 'replay_detected']);
    });

    test('a session ended through one store is unknown on both instances', async () => {
      const client = new RawClient(CLIENT, SERVER.did);
      const session = await client.handshake(pair.a.url);
      expect((await client.post(pair.b.url, (await client.toolCall('echo', { text: 'x' })).text)).status).toBe(200);
      await pair.stores[0]!.deleteSession(session.sessionId);
      for (const server of [pair.a, pair.b]) {
        const response = await client.post(server.url, (await client.toolCall('echo', { text: 'x' })).text);
        expect([response.status, await reasonOf(response)]).toEqual([401, 'unknown_session']);
      }
    });
  });

  test('maxSessions counts the sessions of every instance', async () => {
    const pair = await topology({ maxSessions: 2 });
    try {
      const clients = [seededIdentity(31), seededIdentity(32), seededIdentity(33)].map((id) => new RawClient(id, SERVER.did));
      await clients[0]!.handshake(pair.a.url);
      await clients[1]!.handshake(pair.b.url);
      for (const server of [pair.a, pair.b]) {
        await expect(clients[2]!.handshake(server.url)).rejects.toThrow(/503.*too_many_sessions/);
      }
    } finally {
      await pair.close();
    }
  });

  test('a session expired on one instance is expired on both; a new handshake works on either', async () => {
    const pair = await topology({ sessionTtlSec: 1 });
    try {
      const client = new RawClient(CLIENT, SERVER.did);
      await client.handshake(pair.a.url);
      expect((await client.post(pair.b.url, (await client.toolCall('echo', { text: 'in time' })).text)).status).toBe(200);
      await sleep(1100);
      for (const server of [pair.b, pair.a]) {
        const signed = await client.toolCall('echo', { text: 'late' });
        const response = await client.post(server.url, signed.text);
        expect([response.status, await reasonOf(response)]).toEqual([401, 'session_expired']);
        expect(response.headers.get('www-authenticate')).toMatch(/^PQC handshake="http:\/\/127\.0\.0\.1:\d+\/pqc\/handshake"$/);
      }
      await client.handshake(pair.b.url);
      const again = await client.toolCall('echo', { text: 'again' });
      const response = await client.post(pair.a.url, again.text);
      expect(await client.verified(response, again.nonce)).toMatchObject([{ result: { content: [{ text: 'again' }] } }]);
    } finally {
      await pair.close();
    }
  });
});
