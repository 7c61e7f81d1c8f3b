/**
 * What the Redis tests share: the Redis they run against (started by the jest global setup), a look at its keys, and
 * servers under test: the real handler (`createPQCHandler`) behind node:http, with a real MCP SDK app behind it. The
 * protocol client is the test kit's `RawClient`; the SDK clients go through `pqcFetch`.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import {
  MemorySessionStore,
  createPQCHandler,
  pqcAuthInfo,
  type NonceOutcome,
  type PQCHandler,
  type PQCRequestContext,
  type PQCServerOptions,
  type SessionRecord,
  type SessionStore,
} from '@pqc-mcp/core';
import { nodeRequestTarget, sendWebResponse, toWebRequest } from '@pqc-mcp/core/node';
import { REDIS_CLUSTER_MISSING_HINT, REDIS_MISSING_HINT, createWebMcpApp1x, testRedisClusterUrls, testRedisUrl, type ServerSdk } from '@pqc-mcp/test-kit';
import { createClient, createCluster } from 'redis';
import { createMcpApp } from '../../../examples/shared/tools.js';

/** The Redis every test uses (started by the jest global setup). */
export const REDIS_URL = testRedisUrl();

function rawClient(url: string) {
  return createClient({ url, socket: { connectTimeout: 1500, reconnectStrategy: false } });
}

export type RawRedis = ReturnType<typeof rawClient>;

/**
 * A plain node-redis client on the test Redis, for looking at keys. Fails the test (never skips it) with how to start
 * Redis when it cannot be reached.
 */
export async function connectTestRedis(url = REDIS_URL): Promise<RawRedis> {
  const client = rawClient(url);
  client.on('error', () => {});
  try {
    await client.connect();
    await client.ping();
  } catch (err) {
    await client.destroy();
    throw new Error(`Redis is not reachable at ${url} (${err instanceof Error ? err.message : String(err)}): ${REDIS_MISSING_HINT}`, {
      cause: err,
    });
  }
  return client;
}

/** A key prefix of this test run alone, so parallel test files and runs never see each other's keys. */
export function uniquePrefix(name: string): string {
  return `pqc-test:${name}:${randomBytes(4).toString('hex')}:`;
}

/** Keys under a prefix. */
export async function keysUnder(redis: RawRedis, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const batch of redis.scanIterator({ MATCH: `${prefix}*`, COUNT: 1000 })) out.push(...batch);
  return out;
}

/** Deletes every key under a prefix. */
export async function deletePrefix(redis: RawRedis, prefix: string): Promise<void> {
  const keys = await keysUnder(redis, prefix);
  for (let i = 0; i < keys.length; i += 500) await redis.del(keys.slice(i, i + 500));
}

/**
 * A node-redis cluster client on the test Redis Cluster (started by the jest global setup), configured as the README
 * recommends: no offline queue, bounded reconnection. Not connected.
 */
export function testClusterClient(urls: readonly string[] = testRedisClusterUrls()) {
  return createCluster({
    rootNodes: urls.map((url) => ({ url })),
    defaults: { disableOfflineQueue: true, socket: { connectTimeout: 1500, reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 1000) } },
  });
}

export type RawCluster = ReturnType<typeof testClusterClient>;

/** A connected cluster client for looking at keys; fails the test (never skips it) when the cluster is unreachable. */
export async function connectTestCluster(): Promise<RawCluster> {
  const cluster = testClusterClient();
  cluster.on('error', () => {});
  try {
    await cluster.connect();
  } catch (err) {
    cluster.destroy();
    throw new Error(`the Redis Cluster is not reachable (${err instanceof Error ? err.message : String(err)}): ${REDIS_CLUSTER_MISSING_HINT}`, { cause: err });
  }
  return cluster;
}

/** Keys under a prefix, on every master of the cluster. */
export async function clusterKeysUnder(cluster: RawCluster, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for (const master of cluster.masters) {
    const node = await cluster.nodeClient(master);
    for await (const batch of node.scanIterator({ MATCH: `${prefix}*`, COUNT: 1000 })) out.push(...batch);
  }
  return out;
}

/** Deletes every key under a prefix on the cluster (one key per command: they are on many slots). */
export async function clusterDeletePrefix(cluster: RawCluster, prefix: string): Promise<void> {
  const keys = await clusterKeysUnder(cluster, prefix);
  for (let i = 0; i < keys.length; i += 200) await Promise.all(keys.slice(i, i + 200).map((k) => cluster.del(k)));
}

/** Bytes Redis holds (INFO memory used_memory). */
export async function redisUsedMemory(redis: RawRedis): Promise<number> {
  const info = await redis.info('memory');
  return Number(/used_memory:(\d+)/.exec(info)?.[1] ?? Number.NaN);
}

/** A web-standard application behind the handler: the verified request, its body without `_pqc`, and the caller. */
export type WebApp = (request: Request, parsedBody: unknown, context: PQCRequestContext | undefined) => Promise<Response>;

/** What runs behind the handler: an app of the test's own, or a real MCP SDK server. */
export interface AppOptions {
  /** An application of the test's own (default: an MCP SDK server, as `sdk` and `json` say). */
  app?: WebApp;
  /**
   * The MCP SDK behind the handler (default `'v2'`): v2 is the example tools on the SDK v2's `createMcpHandler`,
   * stateless (no Mcp-Session-Id: any instance answers any call, the PQC session is what the instances share); `'1.x'`
   * is the test kit's stateful 1.x app (MCP sessions live in the app, their owners in the PQC store).
   */
  sdk?: ServerSdk;
  /**
   * 1.x: answer POSTs with JSON rather than SSE (default true). v2: `true` is `responseMode: 'json'`; by default
   * `'auto'`, which answers JSON until a tool streams (and does not warn that JSON drops mid-call notifications).
   */
  json?: boolean;
}

/** The MCP SDK app `options` name, and what closes it. */
export function mcpApp(options: Omit<AppOptions, 'app'> = {}): { app: WebApp; close(): Promise<void> } {
  if (options.sdk === '1.x') {
    const app = createWebMcpApp1x({ enableJsonResponse: options.json ?? true });
    return { app: (request, body) => app(request, body), close: async () => {} };
  }
  const handler = createMcpApp({ responseMode: options.json ? 'json' : 'auto' });
  return {
    app: (request, body, context) => handler.fetch(request, { parsedBody: body, authInfo: pqcAuthInfo(context) }),
    close: () => handler.close(),
  };
}

/** A server under test: core behind node:http. */
export interface TestServer {
  url: string;
  port: number;
  handler: PQCHandler;
  /** Bodies the application received. */
  seen: unknown[];
  /** Bytes read from every socket so far. */
  bytesRead(): number;
  close(): Promise<void>;
}

/**
 * Starts the real handler (`createPQCHandler`) behind node:http, as core's own node:http test does (the request
 * target as received, the caller handed to the app as `authInfo`), with `options`' app behind it.
 */
export async function startServer(pqc: PQCServerOptions, options: AppOptions = {}): Promise<TestServer> {
  const handler = createPQCHandler(pqc);
  const mcp = options.app ? undefined : mcpApp(options);
  const app = options.app ?? mcp!.app;
  const seen: unknown[] = [];
  const sockets = new Set<Socket>();
  let closedBytes = 0;
  const server: Server = createServer((req, res) => {
    handler
      .handle(
        toWebRequest(req),
        (request, body, context) => {
          seen.push(body);
          return app(request, body, context);
        },
        { target: nodeRequestTarget(req) },
      )
      .then((response) => sendWebResponse(res, response))
      .catch((err: unknown) => {
        if (!res.headersSent) res.statusCode = 500;
        res.end(String(err));
      });
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => {
      closedBytes += socket.bytesRead;
      sockets.delete(socket);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    port,
    handler,
    seen,
    bytesRead: () => closedBytes + [...sockets].reduce((n, s) => n + s.bytesRead, 0),
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await mcp?.close();
    },
  };
}

/** A §6 rejection's status, reason and whether it is signed (it carries `_pqc`); reason undefined when not one. */
export async function rejectionOf(response: Response): Promise<{ status: number; reason: string | undefined; signed: boolean }> {
  const text = await response.text();
  let reason: string | undefined;
  try {
    reason = (JSON.parse(text) as { error?: { data?: { pqc?: string } } }).error?.data?.pqc;
  } catch {
    reason = undefined;
  }
  return { status: response.status, reason, signed: text.includes('"_pqc"') };
}

/** A §6 error body's reason, or undefined. */
export async function reasonOf(response: Response): Promise<string | undefined> {
  return (await rejectionOf(response)).reason;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Counts unhandled rejections while a test runs (a store must never leave one behind). */
export function trackUnhandledRejections(): { count(): number; stop(): void } {
  let count = 0;
  const listener = () => {
    count++;
  };
  process.on('unhandledRejection', listener);
  return { count: () => count, stop: () => process.off('unhandledRejection', listener) };
}

/** A session record for store tests (fixed keys; a fresh id). */
export function testRecord(overrides: Partial<SessionRecord> = {}): SessionRecord {
  const now = Date.now();
  return {
    sessionId: randomBytes(16).toString('hex'),
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

/** A small deterministic generator (mulberry32), so a failure replays. */
export function seededRandom(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * 600 random operations (create, end, get, nonces; a clock that jumps) on a MemorySessionStore and on the store
 * `makeStore` gives, with the same options: every answer must be the same (the rules are core's).
 */
export async function sameAnswersAsMemoryStore(makeStore: (options: { maxNoncesPerSession: number; now: () => number }) => SessionStore, seed: number): Promise<void> {
  let clock = Date.now();
  const now = () => clock;
  const options = { maxNoncesPerSession: 3 };
  const memory = new MemorySessionStore({ ...options, now });
  const store = makeStore({ ...options, now });
  const rnd = seededRandom(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const session = () => (rnd() < 0.9 ? pick(ids.slice(-5)) : pick(ids));
  const limits = { maxSessions: 4, maxSessionsPerClient: 2, retentionSec: 2 };
  const peers = ['1', '2', '3'].map((c) => `did:pqaid:${c.repeat(64)}`);
  const nonces = ['n1', 'n2', 'n3', 'n4', 'n5', 'n6'];
  const ids: string[] = [];
  const log: string[] = [];
  const seen = new Set<string>();
  const created = new Set<number>();
  for (let step = 0; step < 600; step++) {
    clock += 1 + Math.floor(rnd() * (rnd() < 0.03 ? 3000 : 100));
    const roll = rnd();
    if (roll < 0.15 || ids.length === 0) {
      let createdAt = clock - Math.floor(rnd() * 2000);
      while (created.has(createdAt)) createdAt--;
      created.add(createdAt);
      const r = testRecord({ peerDid: pick(peers), createdAt, expiresAt: clock + (rnd() < 0.1 ? -1 : Math.floor(rnd() * 8000)) });
      ids.push(r.sessionId);
      const [m, s] = [await memory.createSession(r, limits), await store.createSession(r, limits)];
      log.push(`${step} create ${r.sessionId}: ${m.join(',')} | ${s.join(',')}`);
      if (s.join() !== m.join()) throw new Error(`step ${step}: memory ended ${m.join()}, redis ${s.join()}\n${log.slice(-30).join('\n')}`);
    } else if (roll < 0.2) {
      const id = session();
      await memory.endSession(id, limits.retentionSec);
      await store.endSession(id, limits.retentionSec);
      log.push(`${step} end ${id}`);
    } else if (roll < 0.3) {
      const id = session();
      const [m, s] = [await memory.getSession(id), await store.getSession(id)];
      expect(s).toEqual(m);
    } else {
      const id = session();
      const nonce = pick(nonces);
      const time = clock - Math.floor(rnd() * 1500);
      const ttl = pick([1, 2, 660]);
      const [m, s]: NonceOutcome[] = [await memory.recordNonce(id, nonce, time, ttl), await store.recordNonce(id, nonce, time, ttl)];
      log.push(`${step} nonce ${id} ${nonce} ${time} ${ttl}: ${m} | ${s}`);
      if (s !== m) throw new Error(`step ${step}: memory ${m}, redis ${s}\n${log.slice(-30).join('\n')}`);
      seen.add(s);
    }
  }
  expect([...seen].sort()).toEqual(['accepted', 'ended', 'expired', 'replay', 'unknown']);
  await memory.close();
}
