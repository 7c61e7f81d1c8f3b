import { connect, type AddressInfo } from 'node:net';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { AgentIdentity, pqcFetch, type FetchLike, type PQCRequestContext } from '@pqc-mcp/core';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { createFastifyApp } from '../../../examples/shared/fastify-app.js';
import { createNodeMcpApp1x, runConformanceSuite, runHostileSuite, runPythonClientSuite, type StartServer } from '@pqc-mcp/test-kit';
import { pqcPlugin } from '../src/index.js';

const identity = (n: number) => AgentIdentity.fromSeed(new Uint8Array(32).fill(n), { name: `agent-${n}` });
const SERVER = identity(21);
const CLIENT = identity(22);

/** Every log line Fastify writes at warn or above, over the whole file: none is expected. */
const problems: string[] = [];
const fastifyOptions = (extra: FastifyServerOptions = {}): FastifyServerOptions => ({
  logger: {
    level: 'warn',
    stream: {
      write: (line: string) => {
        problems.push(line);
      },
    },
  },
  ...extra,
});

afterAll(() => {
  expect(problems).toEqual([]);
});

async function listen(app: FastifyInstance): Promise<string> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
}

/** A fetch that records the raw bodies the server sent (before pqcFetch verifies and strips them). */
function recordingFetch(): { fetch: FetchLike; bodies: string[] } {
  const bodies: string[] = [];
  const fetch: FetchLike = async (input, init) => {
    const response = await globalThis.fetch(input, init);
    const text = await response.text();
    bodies.push(text);
    return new Response(text, { status: response.status, statusText: response.statusText, headers: response.headers });
  };
  return { fetch, bodies };
}

const startForSuites: StartServer = async ({ json, pqc, sdk }) => {
  const seen: unknown[] = [];
  const contexts: (PQCRequestContext | undefined)[] = [];
  const legacy = sdk === '1.x' ? createNodeMcpApp1x({ enableJsonResponse: json }) : undefined;
  const { app, close } = createFastifyApp({
    pqc,
    responseMode: json ? 'json' : 'auto',
    mcp: legacy?.handle,
    fastify: fastifyOptions(),
    onBody: (body, request) => {
      seen.push(body);
      contexts.push(request.pqc);
    },
  });
  const base = await listen(app);
  return {
    url: `${base}/mcp`,
    seen,
    contexts,
    async close() {
      await legacy?.closeSessions();
      await close();
    },
  };
};

runConformanceSuite('@pqc-mcp/fastify', startForSuites);
// A Python pqc-mcp-transport client (v1 profile), its captured requests replayed to the example app.
runPythonClientSuite('@pqc-mcp/fastify', startForSuites);
runHostileSuite('@pqc-mcp/fastify', startForSuites, { sharedStore: true });

describe.each([
  ['SSE', false],
  ['JSON', true],
])('the example app with a stateful 1.x MCP server and the 1.x client (%s responses)', (_mode, json) => {
  test('initialize, tools/list, tools/call, close; the app sees no _pqc and request.pqc names the client', async () => {
    const bodies: unknown[] = [];
    const contexts: (PQCRequestContext | undefined)[] = [];
    const legacy = createNodeMcpApp1x({ enableJsonResponse: json });
    const { app, close } = createFastifyApp({
      pqc: { identity: SERVER },
      mcp: legacy.handle,
      fastify: fastifyOptions(),
      onBody: (body, request) => {
        bodies.push(body);
        contexts.push(request.pqc);
      },
    });
    const base = await listen(app);
    try {
      const recorded = recordingFetch();
      const fetch = pqcFetch({ identity: CLIENT, serverDid: SERVER.did, fetch: recorded.fetch });
      const client = new Client({ name: 'fastify-test', version: '1.0.0' });
      await client.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { fetch }));
      expect((await client.listTools()).tools.map((t) => t.name).sort()).toEqual(['add', 'echo', 'whoami']);
      expect(await client.callTool({ name: 'add', arguments: { a: 2, b: 3.5 } })).toMatchObject({ content: [{ type: 'text', text: '5.5' }] });
      expect(await client.callTool({ name: 'echo', arguments: { text: 'héllo 😀' } })).toMatchObject({
        content: [{ type: 'text', text: 'héllo 😀' }],
      });
      await client.close();

      expect(bodies.length).toBeGreaterThanOrEqual(4);
      expect(JSON.stringify(bodies)).not.toContain('_pqc');
      for (const context of contexts) expect(context).toMatchObject({ peerDid: CLIENT.did, profile: 2, sessionId: fetch.session?.sessionId });
      // What the server wrote carried signatures (JSON bodies or SSE events).
      expect(recorded.bodies.filter((b) => b.includes('"_pqc"')).length).toBeGreaterThanOrEqual(3);
      const serverOps = app.pqc.audit.entries();
      expect(serverOps.filter((e) => e.operation === 'rejected')).toEqual([]);
      expect(serverOps.filter((e) => e.operation === 'response').length).toBeGreaterThanOrEqual(3);
      expect(fetch.audit.entries().every((e) => e.verified)).toBe(true);
    } finally {
      await legacy.closeSessions();
      await close();
    }
  });
});

test('the example app takes a signed call larger than Fastify\'s default bodyLimit (1 MiB)', async () => {
  const { app, close } = createFastifyApp({ pqc: { identity: SERVER }, fastify: fastifyOptions() });
  const base = await listen(app);
  try {
    const client = new Client({ name: 'fastify-test', version: '1.0.0' });
    const fetch = pqcFetch({ identity: CLIENT, serverDid: SERVER.did });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { fetch }));
    const text = 'y'.repeat(1_200_000);
    const result = (await client.callTool({ name: 'echo', arguments: { text } })) as { content: { text: string }[] };
    expect(result.content[0]!.text.length).toBe(text.length);
    await client.close();
  } finally {
    await close();
  }
});

describe('plain Fastify routes behind the plugin', () => {
  let app: FastifyInstance;
  let base: string;
  const seen: unknown[] = [];

  beforeAll(async () => {
    app = Fastify(fastifyOptions({ bodyLimit: 1024, ignoreTrailingSlash: true }));
    await app.register(pqcPlugin, { identity: SERVER, endpoint: ['/mcp', '/rpc', '/async', '/stream', '/twice'], maxBodyBytes: 256 * 1024 });
    app.post('/rpc', (request, reply) => {
      seen.push(request.body);
      const body = request.body as { id: number; params?: unknown };
      reply.header('x-app', 'yes').send({ jsonrpc: '2.0', id: body.id, result: { echoed: body.params ?? null, pqc: request.pqc } });
    });
    app.post('/async', async (request) => {
      seen.push(request.body);
      return { jsonrpc: '2.0', id: (request.body as { id: number }).id, result: { peer: request.pqc?.peerDid } };
    });
    app.get('/rpc', async (request) => ({ jsonrpc: '2.0', method: 'notifications/message', params: { pqc: request.pqc } }));
    app.post('/mcp', async (request) => {
      seen.push(request.body);
      return { jsonrpc: '2.0', id: 1, result: {} };
    });
    app.post('/open', async (request) => ({ body: request.body, pqc: request.pqc ?? null }));
    // An SSE stream written to reply.raw over time, as the MCP SDK's Node transport does.
    app.post('/stream', async (request, reply) => {
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.flushHeaders();
      for (let i = 0; i < 3; i++) {
        res.write(`event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/progress', params: { i } })}\n\n`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      res.end(`event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', id: (request.body as { id: number }).id, result: { done: true } })}\n\n`);
    });
    // A route that answers twice (a common bug): only the first, signed, answer may reach the client.
    app.post('/twice', async (request, reply) => {
      const id = (request.body as { id: number }).id;
      reply.send({ jsonrpc: '2.0', id, result: { first: true } });
      return { jsonrpc: '2.0', id, result: { second: true } };
    });
    base = await listen(app);
  });
  afterAll(() => app.close());

  const rpc = (id: number, params: unknown = {}) =>
    JSON.stringify({ jsonrpc: '2.0', id, method: 'test/echo', params });

  test('reply.send() output is signed; the route gets the body without _pqc and request.pqc', async () => {
    const recorded = recordingFetch();
    const fetch = pqcFetch({ identity: CLIENT, serverDid: SERVER.did, fetch: recorded.fetch });
    const response = await fetch(`${base}/rpc`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: rpc(1, { a: 1 }) });
    expect(response.status).toBe(200);
    expect(response.headers.get('x-app')).toBe('yes');
    const body = (await response.json()) as { id: number; result: { echoed: unknown; pqc: PQCRequestContext } };
    expect(body).toMatchObject({ id: 1, result: { echoed: { a: 1 }, pqc: { peerDid: CLIENT.did, profile: 2 } } });
    expect(body).not.toHaveProperty('_pqc');
    expect(recorded.bodies.at(-1)).toContain('"_pqc"');
    expect(fetch.audit.entries().filter((e) => e.operation === 'response' && e.verified).length).toBe(1);
    expect(JSON.stringify(seen)).not.toContain('_pqc');
  });

  test('an async handler returning a value is signed too', async () => {
    const recorded = recordingFetch();
    const fetch = pqcFetch({ identity: CLIENT, serverDid: SERVER.did, fetch: recorded.fetch });
    const response = await fetch(`${base}/async`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: rpc(2) });
    expect(await response.json()).toEqual({ jsonrpc: '2.0', id: 2, result: { peer: CLIENT.did } });
    expect(recorded.bodies.at(-1)).toContain('"_pqc"');
  });

  test('an SSE stream written to reply.raw is signed event by event, as it is written', async () => {
    const fetch = pqcFetch({ identity: CLIENT, serverDid: SERVER.did });
    const response = await fetch(`${base}/stream`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: rpc(7),
    });
    const head = Date.now();
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/event-stream');
    const text = await response.text();
    expect(Date.now() - head).toBeGreaterThanOrEqual(100); // the head arrived while the route was still writing
    const events = text.split('\n\n').filter((e) => e.includes('data:'));
    expect(events.map((e) => JSON.parse(e.slice(e.indexOf('data:') + 5)) as unknown)).toEqual([
      { jsonrpc: '2.0', method: 'notifications/progress', params: { i: 0 } },
      { jsonrpc: '2.0', method: 'notifications/progress', params: { i: 1 } },
      { jsonrpc: '2.0', method: 'notifications/progress', params: { i: 2 } },
      { jsonrpc: '2.0', id: 7, result: { done: true } },
    ]);
    // pqcFetch verified each event (signature and in_reply_to) before handing it over.
    const verified = fetch.audit.entries().filter((e) => e.verified && e.operation !== 'handshake');
    expect(verified.map((e) => e.operation)).toEqual(['notification', 'notification', 'notification', 'response']);
  });

  test('a second answer from the route is dropped, never sent unsigned', async () => {
    const fetch = pqcFetch({ identity: CLIENT, serverDid: SERVER.did });
    const response = await fetch(`${base}/twice`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: rpc(8) });
    expect(await response.json()).toEqual({ jsonrpc: '2.0', id: 8, result: { first: true } });
    // The connection is still good for the next request.
    const again = await fetch(`${base}/async`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: rpc(9) });
    expect(await again.json()).toMatchObject({ id: 9 });
  });

  test('a GET with PQC-Envelope reaches the route, whose JSON is signed', async () => {
    const recorded = recordingFetch();
    const fetch = pqcFetch({ identity: CLIENT, serverDid: SERVER.did, fetch: recorded.fetch });
    const response = await fetch(`${base}/rpc`, { method: 'GET' });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ method: 'notifications/message', params: { pqc: { peerDid: CLIENT.did } } });
    expect(recorded.bodies.at(-1)).toContain('"_pqc"');
  });

  test('a verified body over Fastify\'s bodyLimit but within maxBodyBytes is served', async () => {
    const fetch = pqcFetch({ identity: CLIENT, serverDid: SERVER.did });
    const text = 'x'.repeat(50_000);
    const response = await fetch(`${base}/rpc`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: rpc(3, { text }) });
    expect(response.status).toBe(200);
    expect(((await response.json()) as { result: { echoed: { text: string } } }).result.echoed.text).toBe(text);
  });

  test('a body over maxBodyBytes gets the core\'s 413, not Fastify\'s; without a session it is never read (401)', async () => {
    const seenBefore = seen.length;
    const client = pqcFetch({ identity: CLIENT, serverDid: SERVER.did });
    const session = await client.handshake(`${base}/rpc`);
    const big = rpc(4, { text: 'x'.repeat(300 * 1024) });
    const anonymous = await globalThis.fetch(`${base}/rpc`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: big });
    expect(anonymous.status).toBe(401);
    await anonymous.text();
    const response = await globalThis.fetch(`${base}/rpc`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'pqc-session': session.sessionId },
      body: big,
    });
    expect(response.status).toBe(413);
    expect(await response.json()).toMatchObject({ error: { code: -32010, data: { pqc: 'body_too_large' } } });
    expect(seen.length).toBe(seenBefore);
  });

  test('unsigned requests never reach the route, whatever their content type or path spelling', async () => {
    const seenBefore = seen.length;
    for (const [path, type] of [
      ['/rpc', 'application/json'],
      ['/rpc', 'text/plain'],
      ['/rpc/', 'application/json'],
      ['/rpc?x=1', 'application/json'],
    ] as const) {
      const response = await globalThis.fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': type }, body: rpc(5) });
      expect({ path, type, status: response.status }).toEqual({ path, type, status: 401 });
      // Refused on the missing PQC-Session header, before the body is read: the id is unknown.
      expect(await response.json()).toMatchObject({ id: null, error: { data: { pqc: 'missing_envelope' } } });
      expect(response.headers.get('www-authenticate')).toBe(`PQC handshake="${base}/pqc/handshake"`);
    }
    const get = await globalThis.fetch(`${base}/rpc`);
    expect(get.status).toBe(401);
    await get.text();
    expect(seen.length).toBe(seenBefore);
  });

  test('an absolute-form request target (which Fastify routes by its path) is protected', async () => {
    const seenBefore = seen.length;
    const { port } = app.server.address() as AddressInfo;
    const body = rpc(10);
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.end(
          `POST http://127.0.0.1:${port}/rpc HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\n` +
            `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
        );
      });
      let data = '';
      socket.on('data', (chunk) => (data += chunk.toString()));
      socket.on('end', () => resolve(data));
      socket.on('error', reject);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 401 /); // Fastify routes it to /rpc: the plugin must protect it
    expect(seen.length).toBe(seenBefore);
  });

  test('other paths pass through untouched, with request.pqc undefined', async () => {
    const response = await globalThis.fetch(`${base}/open`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' });
    expect(await response.json()).toEqual({ body: { a: 1 }, pqc: null });
  });

  test('fastify.inject works too: the handshake identity and a rejection', async () => {
    const info = await app.inject({ method: 'GET', url: '/pqc/handshake' });
    expect(info.statusCode).toBe(200);
    expect(info.json()).toMatchObject({ did: SERVER.did, versions: [2] });
    const rejected = await app.inject({ method: 'POST', url: '/rpc', headers: { 'content-type': 'application/json' }, payload: rpc(6) });
    expect(rejected.statusCode).toBe(401);
    expect(rejected.json()).toMatchObject({ id: null, error: { data: { pqc: 'missing_envelope' } } });
  });
});

describe('options', () => {
  test.each([
    [{ identity: 'not an identity' }, /option "identity"/],
    [{ identity: SERVER, maxBodyBytes: -1 }, /option "maxBodyBytes"/],
    [{ identity: SERVER, profiles: [3] }, /option "profiles"/],
    [{ identity: SERVER, endpoint: 'mcp' }, /option "endpoint"/],
  ])('are validated at registration (%#)', async (options, message) => {
    const app = Fastify({ logger: false });
    app.register(pqcPlugin, options as never);
    await expect(app.ready()).rejects.toThrow(message);
    await app.close();
  });

  test('the v1 profile also serves the seed handshake path', async () => {
    const app = Fastify({ logger: false });
    app.register(pqcPlugin, { identity: SERVER, profiles: [2, 1] });
    await app.ready();
    const legacy = await app.inject({ method: 'GET', url: '/handshake' });
    expect(legacy.json()).toMatchObject({ did: SERVER.did, versions: [2, 1] });
    await app.close();
  });
});
