/**
 * What the Redis tests share: the Redis they run against, servers (core + node:http + the real MCP SDK), a raw
 * protocol client, and a redis-server of their own that they start and kill.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import {
  AgentIdentity,
  MessageSigner,
  PQCHandshake,
  createPQCHandler,
  parseLossless,
  verifyWithSession,
  type JsonValue,
  type PQCHandler,
  type PQCServerOptions,
  type PQCSession,
} from '@pqc-mcp/core';
import { sendWebResponse, toWebRequest } from '@pqc-mcp/core/node';
import { REDIS_MISSING_HINT, testRedisUrl } from '@pqc-mcp/test-kit';
import { createClient } from 'redis';
import { createToolServer } from '../../../examples/shared/tools.js';

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

/** Bytes Redis holds (INFO memory used_memory). */
export async function redisUsedMemory(redis: RawRedis): Promise<number> {
  const info = await redis.info('memory');
  return Number(/used_memory:(\d+)/.exec(info)?.[1] ?? Number.NaN);
}

/**
 * A stateless MCP endpoint on the real SDK: a new McpServer and transport per request (`sessionIdGenerator:
 * undefined`), so any instance can answer any call: the SDK's own Mcp-Session-Id state lives in one process, the PQC
 * session lives in the shared store.
 */
export function createStatelessMcpApp(): (request: Request, parsedBody: unknown) => Promise<Response> {
  return async (request, parsedBody) => {
    if (request.method !== 'POST') return new Response(null, { status: 405, headers: { allow: 'POST' } });
    const server = createToolServer();
    const transport = new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    await server.connect(transport);
    try {
      const response = await transport.handleRequest(request, { parsedBody });
      const body = await response.arrayBuffer();
      return new Response(response.status === 202 || body.byteLength === 0 ? null : body, {
        status: response.status,
        headers: response.headers,
      });
    } finally {
      await server.close();
    }
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

/** Starts core (`createPQCHandler`) behind node:http with `app` (default: a stateless MCP SDK app). */
export async function startServer(
  pqc: PQCServerOptions,
  app: (request: Request, parsedBody: unknown) => Promise<Response> = createStatelessMcpApp(),
): Promise<TestServer> {
  const handler = createPQCHandler(pqc);
  const seen: unknown[] = [];
  const sockets = new Set<Socket>();
  let closedBytes = 0;
  const server: Server = createServer((req, res) => {
    handler
      .handle(toWebRequest(req), (request, body) => {
        seen.push(body);
        return app(request, body);
      })
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
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const MCP_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

/** The JSON-RPC messages of a JSON response body, as lossless trees. */
export async function messagesOf(response: Response): Promise<JsonValue[]> {
  const text = await response.text();
  if (text.trim() === '') return [];
  const tree = parseLossless(text);
  return Array.isArray(tree) ? tree : [tree];
}

/** A §6 error body's reason, or undefined. */
export async function reasonOf(response: Response): Promise<string | undefined> {
  const text = await response.text();
  try {
    return (JSON.parse(text) as { error?: { data?: { pqc?: string } } }).error?.data?.pqc;
  } catch {
    return undefined;
  }
}

/** A raw protocol client: handshake on one URL, signed requests to any, so every byte can be controlled. */
export class RawClient {
  session!: PQCSession;
  readonly signer: MessageSigner;
  #nextId = 1;

  constructor(
    readonly identity: AgentIdentity,
    readonly serverDid: string,
  ) {
    this.signer = new MessageSigner(identity);
  }

  /** Handshake with the server of `mcpUrl`; throws with the status and body on a refusal. */
  async handshake(mcpUrl: string): Promise<PQCSession> {
    const { request, pending } = await PQCHandshake.initiate(this.identity);
    const response = await fetch(new URL('pqc/handshake', mcpUrl), { method: 'POST', headers: { 'content-type': 'application/json' }, body: request });
    const text = await response.text();
    if (response.status !== 200) throw new Error(`handshake answered ${response.status}: ${text}`);
    this.session = await PQCHandshake.complete(text, this.identity, pending, { serverDid: this.serverDid });
    return this.session;
  }

  id(): number {
    return this.#nextId++;
  }

  sign(message: object | string, options: { now?: number } = {}) {
    return this.signer.signMessage(message, { sessionId: this.session.sessionId, now: options.now });
  }

  /** A signed tools/call (text and nonce), not sent. */
  toolCall(name: string, args: Record<string, unknown>) {
    return this.sign({ jsonrpc: '2.0', id: this.id(), method: 'tools/call', params: { name, arguments: args } });
  }

  post(mcpUrl: string, body: string): Promise<Response> {
    return fetch(mcpUrl, { method: 'POST', headers: MCP_HEADERS, body });
  }

  /** Verifies every message of a response against the pinned server and its request nonce; returns them plain. */
  async verified(response: Response, inReplyTo: string): Promise<Record<string, unknown>[]> {
    const out: Record<string, unknown>[] = [];
    for (const message of await messagesOf(response)) {
      const verdict = await verifyWithSession(message, this.session, { inReplyTo });
      if (!verdict.ok) throw new Error(`server message refused: ${verdict.reason} (${verdict.detail})`);
      out.push(JSON.parse(MessageSigner.stripPqc(JSON.stringify(Object.fromEntries(message as Map<string, unknown>), plainReplacer))) as Record<string, unknown>);
    }
    return out;
  }
}

function plainReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Map) return Object.fromEntries(value);
  if (typeof value === 'object' && value !== null && 'lexeme' in value) return Number((value as { lexeme: string }).lexeme);
  return value;
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
