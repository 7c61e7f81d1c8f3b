/**
 * Several server instances sharing one store (docs/PROTOCOL.md §9): two real handlers (`createPQCHandler`) behind
 * node:http, each with its own `RedisSessionStore` (its own connection) on the same Redis and prefix, and behind them
 * the real MCP SDK.
 *
 * The app is the SDK v2's handler, stateless in both MCP eras (no Mcp-Session-Id), so any instance can answer any
 * call, as behind a load balancer without sticky sessions: the PQC session is what is shared, through Redis. Where
 * MCP sessions matter (§9: they belong to the PQC peer that opened them), both instances front one stateful 1.x app
 * and the ownership is what Redis shares.
 *
 * The same suite runs with the two instances on a Redis Cluster (each with its own cluster client), and on one
 * instance with a `MemorySessionStore` (A and B are then the same server): whatever holds for one process must hold
 * for several.
 */
import { MemorySessionStore, PQCHandshake, pqcFetch, type FetchLike, type PQCServerOptions, type SessionStore } from '@pqc-mcp/core';
import { RawClient, connectSdkClient, createWebMcpApp1x, seededIdentity, type SdkClientKind } from '@pqc-mcp/test-kit';
import { RedisSessionStore } from '../src/index.js';
import {
  REDIS_URL,
  clusterDeletePrefix,
  connectTestCluster,
  connectTestRedis,
  deletePrefix,
  testClusterClient,
  rejectionOf,
  sleep,
  startServer,
  uniquePrefix,
  type AppOptions,
  type RawCluster,
  type RawRedis,
  type TestServer,
} from './helpers.js';

const SERVER = seededIdentity(21);
const CLIENT = seededIdentity(22);
const INTRUDER = seededIdentity(23);

/** Two entry points (A and B) onto one logical server. */
interface Pair {
  a: TestServer;
  b: TestServer;
  stores: SessionStore[];
  /** The live sessions the store counts (Redis only: the `live` set). */
  liveCount?: () => Promise<number>;
  close(): Promise<void>;
}

type Topology = (options?: Partial<PQCServerOptions>, app?: AppOptions) => Promise<Pair>;

let redis: RawRedis;
let cluster: RawCluster;
const prefixes: string[] = [];
const clusterPrefixes: string[] = [];

beforeAll(async () => {
  redis = await connectTestRedis();
  cluster = await connectTestCluster();
});

afterAll(async () => {
  for (const prefix of prefixes) await deletePrefix(redis, prefix);
  for (const prefix of clusterPrefixes) await clusterDeletePrefix(cluster, prefix);
  await redis.close();
  await cluster.close();
});

const redisTwoInstances: Topology = async (options = {}, app = {}) => {
  const keyPrefix = uniquePrefix('shared');
  prefixes.push(keyPrefix);
  const storeA = new RedisSessionStore({ url: REDIS_URL, keyPrefix });
  const storeB = new RedisSessionStore({ url: REDIS_URL, keyPrefix });
  const a = await startServer({ identity: SERVER, ...options, store: storeA }, app);
  const b = await startServer({ identity: SERVER, ...options, store: storeB }, app);
  return {
    a,
    b,
    stores: [storeA, storeB],
    liveCount: () => redis.zCard(storeA.keys.live),
    close: async () => {
      await Promise.all([a.close(), b.close()]);
      await Promise.all([storeA.close(), storeB.close()]);
    },
  };
};

const clusterTwoInstances: Topology = async (options = {}, app = {}) => {
  const keyPrefix = uniquePrefix('cshared');
  clusterPrefixes.push(keyPrefix);
  const clients = [testClusterClient(), testClusterClient()];
  for (const client of clients) client.on('error', () => {});
  const [storeA, storeB] = clients.map((client) => new RedisSessionStore({ client, keyPrefix })) as [RedisSessionStore, RedisSessionStore];
  const a = await startServer({ identity: SERVER, ...options, store: storeA }, app);
  const b = await startServer({ identity: SERVER, ...options, store: storeB }, app);
  return {
    a,
    b,
    stores: [storeA, storeB],
    // The live sessions of every index shard (at most 16).
    liveCount: async () => (await Promise.all(Array.from({ length: 16 }, (_, n) => cluster.zCard(storeA.keys.cluster.shard(n)[0])))).reduce((x, y) => x + y),
    close: async () => {
      await Promise.all([a.close(), b.close()]);
      await Promise.all([storeA.close(), storeB.close()]);
      await Promise.all(clients.map((c) => c.close()));
    },
  };
};

const memoryOneInstance: Topology = async (options = {}, app = {}) => {
  const store = new MemorySessionStore();
  const a = await startServer({ identity: SERVER, ...options, store }, app);
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

/** A signed tools/call of `client`, POSTed to `server`. */
async function callOn(client: RawClient, server: TestServer, text: string) {
  const signed = await client.sign({ jsonrpc: '2.0', id: client.id(), method: 'tools/call', params: { name: 'echo', arguments: { text } } });
  return { signed, response: await client.post(signed.text, {}, server.url) };
}

/** The verified answer of a call on `server`: its result message. */
async function echoOn(client: RawClient, server: TestServer, text: string): Promise<Record<string, unknown>> {
  const { signed, response } = await callOn(client, server, text);
  expect(response.status).toBe(200);
  const [message] = await client.verified(response, signed.nonce);
  return message!;
}

/** A request in an ended or expired session: the signed rejection of §6, verified by the client as bound to it. */
async function expectSignedRejection(client: RawClient, server: TestServer, reason: 'unknown_session' | 'session_expired'): Promise<void> {
  const { signed, response } = await callOn(client, server, 'late');
  expect(response.status).toBe(401);
  expect(response.headers.get('www-authenticate')).toBe(`PQC handshake="${new URL('pqc/handshake', server.url).href}"`);
  // verified(): the pinned server's signature, this session, in_reply_to the request's nonce.
  expect(await client.verified(response, signed.nonce)).toMatchObject([{ error: { data: { pqc: reason } } }]);
  // Sent once more, anywhere, it is a replay: refused unsigned, so nobody can make the servers sign at will.
  const again = await rejectionOf(await client.post(signed.text, {}, server.url));
  expect(again).toEqual({ status: 401, reason: 'replay_detected', signed: false });
}

describe.each([
  ['Redis, two instances', redisTwoInstances],
  ['Redis Cluster, two instances', clusterTwoInstances],
  ['MemorySessionStore, one instance', memoryOneInstance],
])('%s', (_name, topology) => {
  describe('one session across instances', () => {
    let pair: Pair;
    beforeAll(async () => {
      pair = await topology();
    });
    afterAll(() => pair.close());

    test.each<SdkClientKind>(['1.x client', 'v2 client, auto'])(
      'the MCP SDK %s: handshake on A, initialize / tools/list / tools/call on B, all verified',
      async (kind) => {
        const routed = balancer(pair, 'handshake-on-a');
        const fetch = pqcFetch({ identity: CLIENT, serverDid: SERVER.did, fetch: routed });
        const handshakesOnA = operations(pair.a, 'handshake');
        const requestsOnB = operations(pair.b, 'request');
        const client = await connectSdkClient(kind, pair.a.url, fetch);
        expect((await client.listTools()).sort()).toEqual(['add', 'echo', 'whoami']);
        expect(await client.callTool('add', { a: 20, b: 22 })).toMatchObject({ content: [{ type: 'text', text: '42' }] });
        await client.close();
        expect(routed.hits.a).toBe(1);
        expect(operations(pair.a, 'handshake')).toBe(handshakesOnA + 1);
        expect(operations(pair.b, 'request')).toBeGreaterThanOrEqual(requestsOnB + 2); // tools/list, tools/call (and initialize)
        expect(fetch.audit.entries().filter((e) => e.operation === 'rejected')).toEqual([]);
        expect(fetch.audit.entries().filter((e) => e.operation === 'response').length).toBeGreaterThanOrEqual(2);
      },
    );

    test('the MCP SDK client, round-robin over A and B', async () => {
      const routed = balancer(pair, 'round-robin');
      const fetch = pqcFetch({ identity: CLIENT, serverDid: SERVER.did, fetch: routed });
      const client = await connectSdkClient('1.x client', pair.a.url, fetch);
      for (let i = 0; i < 4; i++) {
        expect(await client.callTool('echo', { text: `call ${i}` })).toMatchObject({ content: [{ text: `call ${i}` }] });
      }
      await client.close();
      expect(routed.hits.a).toBeGreaterThanOrEqual(3);
      expect(routed.hits.b).toBeGreaterThanOrEqual(3);
      expect(fetch.audit.entries().filter((e) => e.operation === 'rejected')).toEqual([]);
    });

    test('a request replayed on the other instance → 401 replay_detected, unsigned, never reaching the app', async () => {
      const client = new RawClient(pair.a.url, CLIENT, SERVER.did);
      await client.handshake();
      const first = await callOn(client, pair.b, 'once');
      expect(first.response.status).toBe(200);
      expect(await client.verified(first.response, first.signed.nonce)).toMatchObject([{ result: { content: [{ text: 'once' }] } }]);
      const seenOnA = pair.a.seen.length;
      expect(await rejectionOf(await client.post(first.signed.text, {}, pair.a.url))).toEqual({ status: 401, reason: 'replay_detected', signed: false });
      expect(pair.a.seen.length).toBe(seenOnA); // the application never saw the replay

      const second = await callOn(client, pair.a, 'twice');
      expect(second.response.status).toBe(200);
      await second.response.arrayBuffer();
      expect(await rejectionOf(await client.post(second.signed.text, {}, pair.b.url))).toEqual({ status: 401, reason: 'replay_detected', signed: false });
    });

    test('the same request sent to both instances at once: exactly one is answered', async () => {
      const client = new RawClient(pair.b.url, CLIENT, SERVER.did);
      await client.handshake();
      for (let round = 0; round < 3; round++) {
        const signed = await client.sign({ jsonrpc: '2.0', id: client.id(), method: 'tools/call', params: { name: 'echo', arguments: { text: `race ${round}` } } });
        const seen = pair.a.seen.length + (pair.b === pair.a ? 0 : pair.b.seen.length);
        const responses = await Promise.all([pair.a, pair.b, pair.a, pair.b].map((s) => client.post(signed.text, {}, s.url)));
        const outcomes = await Promise.all(responses.map((r) => (r.status === 200 ? r.arrayBuffer().then(() => ({ status: 200 })) : rejectionOf(r))));
        expect(outcomes.filter((o) => o.status === 200)).toHaveLength(1);
        expect(outcomes.filter((o) => o.status !== 200)).toEqual(Array(3).fill({ status: 401, reason: 'replay_detected', signed: false }));
        expect(pair.a.seen.length + (pair.b === pair.a ? 0 : pair.b.seen.length)).toBe(seen + 1);
      }
    });

    test('a handshake replayed on the other instance → 401 replay_detected', async () => {
      const { request } = await PQCHandshake.initiate(CLIENT, { serverDid: SERVER.did });
      const post = (server: TestServer) => fetch(new URL('pqc/handshake', server.url), { method: 'POST', body: request });
      expect((await post(pair.a)).status).toBe(200);
      expect(await rejectionOf(await post(pair.b))).toEqual({ status: 401, reason: 'replay_detected', signed: false });
    });

    test('a session its client ends on A (DELETE pqc/handshake) is ended on both: a signed unknown_session on each', async () => {
      const client = new RawClient(pair.a.url, CLIENT, SERVER.did);
      await client.handshake();
      expect(await echoOn(client, pair.b, 'before')).toMatchObject({ result: { content: [{ text: 'before' }] } });
      const ended = await client.endSession();
      expect(ended.status).toBe(204);
      const seen = [pair.a.seen.length, pair.b.seen.length];
      for (const server of [pair.b, pair.a]) await expectSignedRejection(client, server, 'unknown_session');
      expect([pair.a.seen.length, pair.b.seen.length]).toEqual(seen);
      // Ending it again, on B, is told (signed) that it has ended; a new handshake serves on either instance.
      const onB = new RawClient(pair.b.url, CLIENT, SERVER.did);
      onB.session = client.session;
      expect(await rejectionOf(await onB.endSession())).toEqual({ status: 401, reason: 'unknown_session', signed: true });
      await client.handshake();
      expect(await echoOn(client, pair.b, 'after')).toMatchObject({ result: { content: [{ text: 'after' }] } });
    });

    test('a session ended through one instance\'s store is ended on both', async () => {
      const client = new RawClient(pair.a.url, CLIENT, SERVER.did);
      const session = await client.handshake();
      expect(await echoOn(client, pair.b, 'x')).toMatchObject({ result: { content: [{ text: 'x' }] } });
      await pair.stores[0]!.endSession(session.sessionId, pair.a.handler.options.retentionSec);
      for (const server of [pair.a, pair.b]) await expectSignedRejection(client, server, 'unknown_session');
    });
  });

  test('maxSessions counts the sessions of every instance: a handshake past it ends the least recently used one', async () => {
    const pair = await topology({ maxSessions: 2 });
    try {
      const first = new RawClient(pair.a.url, seededIdentity(31), SERVER.did);
      const second = new RawClient(pair.b.url, seededIdentity(32), SERVER.did);
      const third = new RawClient(pair.a.url, seededIdentity(33), SERVER.did);
      await first.handshake();
      await sleep(5);
      await second.handshake(); // opened on B
      await sleep(5);
      expect(await echoOn(first, pair.b, 'used')).toMatchObject({ result: {} }); // first is now used more recently
      await sleep(5);
      // The table is full (one session per instance): a third client is never refused, the idle session is ended.
      await third.handshake();
      if (pair.liveCount) expect(await pair.liveCount()).toBe(2);
      for (const server of [pair.b, pair.a]) await expectSignedRejection(second, server, 'unknown_session');
      for (const server of [pair.a, pair.b]) {
        expect(await echoOn(first, server, 'kept')).toMatchObject({ result: { content: [{ text: 'kept' }] } });
        expect(await echoOn(third, server, 'new')).toMatchObject({ result: { content: [{ text: 'new' }] } });
      }
    } finally {
      await pair.close();
    }
  });

  test('maxSessionsPerClient counts every instance: a client\'s sessions opened on A and B, its oldest ended', async () => {
    const pair = await topology({ maxSessionsPerClient: 2 });
    try {
      const sessions = [];
      for (const server of [pair.a, pair.b, pair.a]) {
        const client = new RawClient(server.url, CLIENT, SERVER.did);
        await client.handshake();
        sessions.push(client);
        await sleep(2);
      }
      await expectSignedRejection(sessions[0]!, pair.b, 'unknown_session');
      for (const client of sessions.slice(1)) expect(await echoOn(client, pair.b, 'live')).toMatchObject({ result: {} });
      if (pair.liveCount) expect(await pair.liveCount()).toBe(2);
    } finally {
      await pair.close();
    }
  });

  test('a session expired on one instance is expired on both; a new handshake works on either', async () => {
    const pair = await topology({ sessionTtlSec: 1 });
    try {
      const client = new RawClient(pair.a.url, CLIENT, SERVER.did);
      await client.handshake();
      expect(await echoOn(client, pair.b, 'in time')).toMatchObject({ result: { content: [{ text: 'in time' }] } });
      await sleep(1100);
      for (const server of [pair.b, pair.a]) await expectSignedRejection(client, server, 'session_expired');
      await client.handshake();
      expect(await echoOn(client, pair.a, 'again')).toMatchObject({ result: { content: [{ text: 'again' }] } });
    } finally {
      await pair.close();
    }
  });

  test('an MCP session opened through A belongs to its PQC peer on B too; another client gets peer_mismatch on both', async () => {
    // Both instances front one stateful 1.x MCP app: the MCP session lives there, its owner in the shared store.
    const app = createWebMcpApp1x({ enableJsonResponse: true });
    const pair = await topology({}, { app: (request, body) => app(request, body) });
    try {
      const owner = new RawClient(pair.a.url, CLIENT, SERVER.did);
      await owner.handshake();
      await owner.initialize();
      const mcpSessionId = owner.mcpSessionId!;
      expect(mcpSessionId).toEqual(expect.any(String));
      expect(await echoOn(owner, pair.b, 'mine')).toMatchObject({ result: { content: [{ text: 'mine' }] } });

      const intruder = new RawClient(pair.b.url, INTRUDER, SERVER.did);
      await intruder.handshake();
      intruder.mcpSessionId = mcpSessionId;
      const seen = pair.a.seen.length + (pair.b === pair.a ? 0 : pair.b.seen.length);
      for (const server of [pair.b, pair.a]) {
        const { response } = await callOn(intruder, server, 'theirs');
        expect(await rejectionOf(response)).toEqual({ status: 401, reason: 'peer_mismatch', signed: false });
        for (const method of ['GET', 'DELETE'] as const) {
          expect(await rejectionOf(await intruder.bodyless(method, undefined, undefined, server.url))).toEqual({ status: 401, reason: 'peer_mismatch', signed: false });
        }
      }
      expect(pair.a.seen.length + (pair.b === pair.a ? 0 : pair.b.seen.length)).toBe(seen);
      expect(await echoOn(owner, pair.a, 'still mine')).toMatchObject({ result: { content: [{ text: 'still mine' }] } });
    } finally {
      await pair.close();
    }
  });
});
