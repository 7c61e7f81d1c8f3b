/**
 * @pqc-mcp/hono over real HTTP: a Hono app served by @hono/node-server on 127.0.0.1, the real MCP SDK server behind
 * the middleware (SDK 1.x transports and the SDK 2.x `createMcpHandler`), and the official SDK client on `pqcFetch`.
 */
import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import { McpServer as McpServerV2, createMcpHandler } from '@modelcontextprotocol/server';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Hono } from 'hono';
import { z } from 'zod';
import { createHonoApp } from '../../../examples/shared/hono-app.js';
import { createWebMcpApp1x, requestAfterIdle, runConformanceSuite, runHostileSuite, runPythonClientSuite, type StartServer } from '@pqc-mcp/test-kit';
import { applyKeepAliveTimeout } from '@pqc-mcp/core/node';
import { pqcFetch, type FetchLike } from '@pqc-mcp/core';
import { AuditLog, MemorySessionStore } from '@pqc-mcp/core';
import { AgentIdentity, pqc, type PQCRequestContext, type PQCVariables } from '../src/index.js';

const serverIdentity = AgentIdentity.fromSeed(new Uint8Array(32).fill(31), { name: 'hono-server' });
const clientIdentity = AgentIdentity.fromSeed(new Uint8Array(32).fill(32), { name: 'hono-client' });

interface Running {
  url: string;
  close(): Promise<void>;
}

const running: Running[] = [];

/** Serves `app` on 127.0.0.1, on a port the system picks; closed after each test unless `keep`. */
async function listen(app: Hono<{ Variables: PQCVariables }>, keep = false): Promise<Running> {
  const server = await new Promise<ServerType>((resolve) => {
    const s: ServerType = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s));
  });
  const { port } = server.address() as AddressInfo;
  const handle: Running = {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        (server as import('node:http').Server).closeAllConnections();
        server.close(() => resolve());
      }),
  };
  if (!keep) running.push(handle);
  return handle;
}

afterEach(async () => {
  await Promise.all(running.splice(0).map((r) => r.close()));
});

/** What the application behind the middleware saw. */
interface Seen {
  bodies: unknown[];
  rawBodies: string[];
  contexts: (PQCRequestContext | undefined)[];
}

/** A Hono app with the PQC middleware in front of `mcp`, recording what reaches the application. */
function mcpApp(mcp: (request: Request, parsedBody: unknown) => Promise<Response>, audit = new AuditLog()) {
  const seen: Seen = { bodies: [], rawBodies: [], contexts: [] };
  const app = new Hono<{ Variables: PQCVariables }>();
  app.use('*', pqc({ identity: serverIdentity, store: new MemorySessionStore(), audit }));
  app.all('/mcp', async (c) => {
    seen.contexts.push(c.get('pqc'));
    seen.bodies.push(c.get('pqcBody'));
    if (c.req.method === 'POST') seen.rawBodies.push(await c.req.raw.clone().text());
    return mcp(c.req.raw, c.get('pqcBody'));
  });
  return { app, seen, audit };
}

/** The MCP SDK client over pqcFetch; `raw` collects the responses as they came over the wire. */
function sdkClient(url: string) {
  const raw: Response[] = [];
  const recording: FetchLike = async (input, init) => {
    const response = await globalThis.fetch(input, init);
    const isMcp = new URL(input instanceof Request ? input.url : String(input)).pathname === '/mcp';
    if (isMcp && response.headers.get('content-type')?.startsWith('application/json')) raw.push(response.clone());
    return response;
  };
  const fetch = pqcFetch({ identity: clientIdentity, serverDid: serverIdentity.did, fetch: recording });
  const client = new Client({ name: 'hono-test', version: '1.0.0' });
  const connect = () => client.connect(new StreamableHTTPClientTransport(new URL(`${url}/mcp`), { fetch }));
  return { client, fetch, raw, connect };
}

function expectClean(seen: Seen): void {
  expect(seen.bodies.length).toBeGreaterThan(0);
  expect(JSON.stringify(seen.bodies)).not.toContain('_pqc');
  expect(seen.rawBodies.join('\n')).not.toContain('_pqc');
  for (const context of seen.contexts) {
    expect(context).toEqual({ sessionId: expect.stringMatching(/^[0-9a-f]{32}$/), peerDid: clientIdentity.did, profile: 2 });
  }
}

/** The suites (docs/PROTOCOL.md §3–§9 over HTTP) with the example app: the SDK v2 behind `pqc()`, or a 1.x app. */
const startForConformance: StartServer = async ({ json, pqc: options, sdk }) => {
  const legacy = sdk === '1.x' ? createWebMcpApp1x({ enableJsonResponse: json }) : undefined;
  const seen: unknown[] = [];
  const contexts: (PQCRequestContext | undefined)[] = [];
  const { app, close } = createHonoApp({
    pqc: options,
    responseMode: json ? 'json' : 'auto',
    mcp: legacy ? (request, body, authInfo) => legacy(request, body, authInfo) : undefined,
    onBody: (body, context) => {
      seen.push(body);
      contexts.push(context);
    },
  });
  const server = await listen(app, true);
  return { url: `${server.url}/mcp`, seen: seen as unknown[], contexts, close: async () => (await server.close(), await close()) };
};

runConformanceSuite('@pqc-mcp/hono', startForConformance);
runHostileSuite('@pqc-mcp/hono', startForConformance, { sharedStore: true });
// A Python pqc-mcp-transport client (v1 profile), its captured requests replayed to the example app.
runPythonClientSuite('@pqc-mcp/hono', startForConformance);

describe('pqc() options', () => {
  test('are validated when the middleware is created', () => {
    expect(() => pqc(undefined as never)).toThrow(TypeError);
    expect(() => pqc({} as never)).toThrow(/identity/);
    expect(() => pqc({ identity: serverIdentity, maxBodyBytes: -1 })).toThrow(/maxBodyBytes/);
    expect(() => pqc({ identity: serverIdentity, endpoint: 'mcp' })).toThrow(/endpoint/);
  });
});

describe.each([
  ['SSE', false],
  ['JSON', true],
])('MCP SDK 1.x server behind the Hono middleware (%s responses)', (_mode, enableJsonResponse) => {
  test('initialize, tools/list, tools/call; the application never sees _pqc', async () => {
    const { app, seen, audit } = mcpApp(createWebMcpApp1x({ enableJsonResponse }));
    const server = await listen(app);
    const { client, fetch, raw, connect } = sdkClient(server.url);
    await connect();
    expect(client.getServerVersion()?.name).toBe('pqc-mcp-example');
    const tools = await client.listTools();
    expect(tools.tools.map((t) => t.name).sort()).toEqual(['add', 'echo', 'whoami']);
    const sum = await client.callTool({ name: 'add', arguments: { a: 2, b: 3.5 } });
    expect(sum.content).toEqual([{ type: 'text', text: '5.5' }]);
    const echo = await client.callTool({ name: 'echo', arguments: { text: 'post-quantum ✓' } });
    expect(echo.content).toEqual([{ type: 'text', text: 'post-quantum ✓' }]);
    await client.close();

    expect(fetch.session?.peerDid).toBe(serverIdentity.did);
    expect(fetch.audit.entries().every((e) => e.verified)).toBe(true);
    expectClean(seen);
    const ops = audit.entries().map((e) => e.operation);
    expect(ops[0]).toBe('handshake');
    expect(ops).toEqual(expect.arrayContaining(['request', 'notification', 'response']));
    expect(ops).not.toContain('rejected');

    // What went over the wire: every JSON body signed, and a content-length (if any) that fits the signed body.
    if (enableJsonResponse) expect(raw.length).toBeGreaterThan(0);
    for (const response of raw) {
      const bytes = new Uint8Array(await response.arrayBuffer());
      const declared = response.headers.get('content-length');
      if (declared !== null) expect(Number(declared)).toBe(bytes.byteLength);
      if (bytes.byteLength > 0 && response.status === 200) expect(new TextDecoder().decode(bytes).includes('"_pqc"')).toBe(true);
    }
  });
});

describe('MCP SDK 2.x server (createMcpHandler().fetch) behind the Hono middleware', () => {
  test('initialize, tools/list, tools/call with the SDK 1.x client', async () => {
    const factory = () => {
      const server = new McpServerV2({ name: 'pqc-mcp-v2', version: '2.0.0' });
      server.registerTool(
        'add',
        { description: 'Adds two numbers', inputSchema: z.object({ a: z.number(), b: z.number() }) },
        async ({ a, b }) => ({ content: [{ type: 'text', text: String(a + b) }] }),
      );
      return server;
    };
    const handler = createMcpHandler(factory);
    const { app, seen, audit } = mcpApp((request, parsedBody) => handler.fetch(request, { parsedBody }));
    const server = await listen(app);
    const { client, fetch, connect } = sdkClient(server.url);
    try {
      await connect();
      expect(client.getServerVersion()?.name).toBe('pqc-mcp-v2');
      const tools = await client.listTools();
      expect(tools.tools.map((t) => t.name)).toEqual(['add']);
      const sum = await client.callTool({ name: 'add', arguments: { a: 40, b: 2 } });
      expect(sum.content).toEqual([{ type: 'text', text: '42' }]);
      await client.close();
    } finally {
      await handler.close();
    }
    expect(fetch.audit.entries().every((e) => e.verified)).toBe(true);
    expectClean(seen);
    expect(audit.entries().map((e) => e.operation)).not.toContain('rejected');
  });
});

describe('the Hono side of the adapter', () => {
  test('the handshake route answers on /pqc/handshake (app.request, no listener)', async () => {
    const { app } = mcpApp(createWebMcpApp1x());
    const response = await app.request('http://localhost/pqc/handshake');
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ did: serverIdentity.did, versions: [2] });
  });

  test("one instance on '/mcp' and '/pqc/*' covers the endpoint and the handshake", async () => {
    const mw = pqc({ identity: serverIdentity });
    const mcp = createWebMcpApp1x();
    const app = new Hono<{ Variables: PQCVariables }>();
    app.use('/mcp', mw);
    app.use('/pqc/*', mw);
    app.all('/mcp', (c) => mcp(c.req.raw, c.get('pqcBody')));
    const server = await listen(app);
    const { client, connect } = sdkClient(server.url);
    await connect();
    expect((await client.callTool({ name: 'add', arguments: { a: 1, b: 2 } })).content).toEqual([{ type: 'text', text: '3' }]);
    await client.close();
  });

  test("mounted on '/mcp/*' only, the handshake path is not covered", async () => {
    const mcp = createWebMcpApp1x();
    const app = new Hono<{ Variables: PQCVariables }>();
    app.use('/mcp/*', pqc({ identity: serverIdentity })); // matches /mcp itself, but not /pqc/handshake
    app.all('/mcp', (c) => mcp(c.req.raw, c.get('pqcBody')));
    expect((await app.request('http://localhost/pqc/handshake')).status).toBe(404);
    const unsigned = await app.request('http://localhost/mcp', { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
    expect(unsigned.status).toBe(401);
  });

  test('mounted twice on overlapping patterns, a request is verified once', async () => {
    const mw = pqc({ identity: serverIdentity });
    const mcp = createWebMcpApp1x();
    const app = new Hono<{ Variables: PQCVariables }>();
    app.use('*', mw);
    app.use('/mcp', mw);
    app.all('/mcp', (c) => mcp(c.req.raw, c.get('pqcBody')));
    const server = await listen(app);
    const { client, connect } = sdkClient(server.url);
    await connect();
    expect((await client.listTools()).tools).toHaveLength(3);
    await client.close();
  });

  test('signed responses replace the content-length and keep the application headers', async () => {
    const app = new Hono<{ Variables: PQCVariables }>();
    app.use('*', async (c, next) => {
      await next();
      c.header('x-outer', 'after');
    });
    app.use('*', pqc({ identity: serverIdentity }));
    app.post('/mcp', async (c) => {
      const request = (await c.req.json()) as { id: number };
      const body = JSON.stringify({ jsonrpc: '2.0', id: request.id, result: { body: c.get('pqcBody'), peer: c.get('pqc')?.peerDid } });
      c.header('x-app', 'kept');
      // An application that declares its (unsigned) length: it must not survive on the signed body.
      return c.body(body, 200, { 'content-type': 'application/json', 'content-length': String(body.length) });
    });
    const server = await listen(app);
    let wire: Response | undefined;
    const fetch = pqcFetch({
      identity: clientIdentity,
      serverDid: serverIdentity.did,
      fetch: async (input, init) => {
        const response = await globalThis.fetch(input, init);
        if (String(input).endsWith('/mcp')) wire = response.clone();
        return response;
      },
    });
    const response = await fetch(`${server.url}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'tools/call', params: { x: 7.0 } }),
    });
    expect(response.status).toBe(200);
    const plain = (await response.json()) as { result: { body: unknown; peer: string } };
    expect(plain.result).toEqual({ body: { jsonrpc: '2.0', id: 5, method: 'tools/call', params: { x: 7 } }, peer: clientIdentity.did });
    const bytes = new Uint8Array(await wire!.arrayBuffer());
    expect(new TextDecoder().decode(bytes)).toContain('"_pqc"');
    const declared = wire!.headers.get('content-length');
    if (declared !== null) expect(Number(declared)).toBe(bytes.byteLength);
    expect(wire!.headers.get('x-app')).toBe('kept');
    expect(wire!.headers.get('x-outer')).toBe('after');
  });

  test('paths the PQC layer does not protect pass through untouched', async () => {
    const app = new Hono<{ Variables: PQCVariables }>();
    app.use('*', pqc({ identity: serverIdentity }));
    app.get('/health', (c) => c.json({ ok: true, pqc: c.get('pqc') ?? null }));
    const server = await listen(app);
    const response = await globalThis.fetch(`${server.url}/health`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ ok: true, pqc: null });
  });
});

// §6 rejections over HTTP are the conformance suite's; here only what Hono's routing adds.
describe('Hono routing never hands a protected route an unverified request', () => {
  async function setup() {
    const { app, seen } = mcpApp(createWebMcpApp1x({ enableJsonResponse: true }));
    const server = await listen(app);
    return { server, seen };
  }
  const initialize = {
    jsonrpc: '2.0',
    id: 1,
    method: 'initialize',
    params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } },
  };

  test.each(['/m%63p', '/%6dcp'])('%s, which Hono routes to /mcp, never reaches the application unverified', async (path) => {
    const { server, seen } = await setup();
    const response = await globalThis.fetch(`${server.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify(initialize),
    });
    expect(response.status).toBe(401);
    expect(await response.json()).toMatchObject({ error: { data: { pqc: 'missing_envelope' } } });
    expect(seen.bodies).toHaveLength(0);
  });

  test("with strict: false, '/mcp/' never reaches the application unverified", async () => {
    const mcp = jest.fn(async (_request: Request, _body: unknown) => new Response('app'));
    const app = new Hono<{ Variables: PQCVariables }>({ strict: false });
    app.use('*', pqc({ identity: serverIdentity }));
    app.all('/mcp', (c) => mcp(c.req.raw, c.get('pqcBody')));
    const response = await app.request('http://localhost/mcp/', { method: 'POST', body: JSON.stringify(initialize) });
    expect(response.status).toBe(401);
    expect(mcp).not.toHaveBeenCalled();
  });
});

describe('keep-alive on @hono/node-server (examples/hono-server.ts)', () => {
  // A request sent on a connection left idle as long as Node keeps one by default (5 s + 1 s), made to arrive just as
  // the server's idle timer fires (see requestAfterIdle): what a proxy or an agent without an idle timeout does.
  const INFO = 'GET /mcp/pqc/handshake HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n\r\n';
  const serveExample = async (keepAlive: boolean) => {
    const { app, close } = createHonoApp({ pqc: { identity: serverIdentity } });
    const server = await new Promise<ServerType>((resolve) => {
      const s: ServerType = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s));
    });
    if (keepAlive) applyKeepAliveTimeout(server as import('node:http').Server);
    return {
      port: (server.address() as AddressInfo).port,
      close: async () => {
        (server as import('node:http').Server).closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await close();
      },
    };
  };

  test('with Node defaults the request is reset unanswered; with applyKeepAliveTimeout it is answered', async () => {
    for (const keepAlive of [false, true]) {
      const running = await serveExample(keepAlive);
      try {
        const { first, second, error } = await requestAfterIdle(running.port, INFO, 6000);
        expect(first).toMatch(/^HTTP\/1\.1 200 /);
        if (keepAlive) expect({ status: second.slice(0, 12), error }).toEqual({ status: 'HTTP/1.1 200', error: undefined });
        else expect({ second, error }).toEqual({ second: '', error: 'ECONNRESET' });
      } finally {
        await running.close();
      }
    }
  }, 30_000);
});
