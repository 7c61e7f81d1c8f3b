import type { Server } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { AgentIdentity, MessageSigner, PQCHandshake, pqcFetch, type PQCRequestContext } from '@pqc-mcp/core';
import express, { type Express } from 'express';
import request from 'supertest';
import { createExpressApp, type ExpressAppOptions } from '../../../examples/shared/express-app.js';
import { createNodeMcpApp1x, runConformanceSuite, runHostileSuite, runPythonClientSuite, type ServerSdk, type StartServer } from '@pqc-mcp/test-kit';
import { pqcMiddleware } from '../src/index.js';

const seeded = (n: number) => AgentIdentity.fromSeed(new Uint8Array(32).fill(n), { name: `agent-${n}` });
const SERVER = seeded(21);
const CLIENT = seeded(22);

interface Running {
  url: string;
  seen: unknown[];
  contexts: (PQCRequestContext | undefined)[];
  close(): Promise<void>;
}

async function listen(app: Express, closeApp: () => Promise<void> = async () => {}): Promise<{ url: string; close(): Promise<void> }> {
  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(0, '127.0.0.1', (err?: Error) => (err ? reject(err) : resolve(s)));
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    async close() {
      await closeApp();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The example app (the SDK v2 behind it), or with a 1.x stateful MCP app. */
async function start(options: Omit<ExpressAppOptions, 'onBody' | 'mcp'> & { sdk?: ServerSdk; json?: boolean }): Promise<Running> {
  const seen: unknown[] = [];
  const contexts: (PQCRequestContext | undefined)[] = [];
  const legacy = options.sdk === '1.x' ? createNodeMcpApp1x({ enableJsonResponse: options.json }) : undefined;
  const { app, close } = createExpressApp({
    ...options,
    responseMode: options.json ? 'json' : 'auto',
    mcp: legacy?.handle,
    onBody: (body, req) => {
      seen.push(body);
      contexts.push(req.pqc);
    },
  });
  return { ...(await listen(app, async () => (await legacy?.closeSessions(), await close()))), seen, contexts };
}

// docs/PROTOCOL.md §3–§6 over real HTTP, shared with every adapter.
const startForSuites: StartServer = ({ json, pqc, sdk }) => start({ pqc, json, sdk });
runConformanceSuite('express', startForSuites);
runHostileSuite('express', startForSuites, { sharedStore: true });
// A Python pqc-mcp-transport client (v1 profile), its captured requests replayed to the example app.
runPythonClientSuite('express', startForSuites);

describe.each([
  ['SSE', false],
  ['JSON', true],
])('pqcMiddleware with a stateful 1.x MCP server over HTTP (%s responses)', (_mode, json) => {
  let server: Running;
  beforeAll(async () => {
    server = await start({ pqc: { identity: SERVER }, sdk: '1.x', json });
  });
  afterAll(() => server.close());

  test('initialize, tools/list, tools/call, close; the app sees no _pqc and gets req.pqc', async () => {
    const fetch = pqcFetch({ identity: CLIENT, serverDid: SERVER.did, fetch: globalThis.fetch });
    const client = new Client({ name: 'express-test', version: '1.0.0' });
    const transport = new StreamableHTTPClientTransport(new URL(server.url), { fetch });
    await client.connect(transport);
    expect(transport.sessionId).toEqual(expect.any(String));
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(['add', 'echo', 'whoami']);
    expect(await client.callTool({ name: 'add', arguments: { a: 2, b: 3.5 } })).toMatchObject({ content: [{ type: 'text', text: '5.5' }] });
    expect(await client.callTool({ name: 'echo', arguments: { text: 'héllo 😀' } })).toMatchObject({
      content: [{ type: 'text', text: 'héllo 😀' }],
    });
    await transport.terminateSession(); // DELETE with its PQC-Envelope
    expect(transport.sessionId).toBeUndefined();
    await client.close();

    expect(server.seen.length).toBeGreaterThanOrEqual(4);
    expect(JSON.stringify(server.seen)).not.toContain('_pqc');
    expect(server.contexts.every((c) => c?.peerDid === CLIENT.did && c.profile === 2 && c.sessionId === fetch.session?.sessionId)).toBe(true);
    const audit = fetch.audit.entries();
    expect(audit.filter((e) => !e.verified)).toEqual([]);
    expect(audit.filter((e) => e.operation === 'response').length).toBeGreaterThanOrEqual(4);
  });
});

describe('pqcMiddleware in an Express chain', () => {
  test('express.json() before the middleware: a 500 that names the fix, the app never runs', async () => {
    const ran: unknown[] = [];
    const app = express();
    app.use(express.json());
    app.use(pqcMiddleware({ identity: SERVER }));
    app.post('/mcp', (req, res) => {
      ran.push(req.body);
      res.json({});
    });
    const response = await request(app).post('/mcp').send({ jsonrpc: '2.0', id: 1, method: 'ping' });
    expect(response.status).toBe(500);
    expect(response.body).toEqual({ jsonrpc: '2.0', id: null, error: { code: -32603, message: expect.stringContaining('before express.json()') } });
    expect(ran).toEqual([]);
  });

  test('other paths pass through untouched, so later body parsers still work there', async () => {
    const app = express();
    app.use(pqcMiddleware({ identity: SERVER }));
    app.use(express.json());
    app.post('/other', (req, res) => {
      res.json({ body: req.body as unknown, pqc: req.pqc ?? null });
    });
    const response = await request(app).post('/other').send({ a: 1 });
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ body: { a: 1 }, pqc: null });
  });

  test('a later express.json() leaves the verified body alone; the handshake and GET info answer', async () => {
    const app = express();
    app.use(pqcMiddleware({ identity: SERVER }));
    app.use(express.json({ limit: 1 })); // would fail with 413 if it read anything
    const seen: unknown[] = [];
    app.post('/mcp', (req, res) => {
      seen.push(req.body, req.pqc?.peerDid);
      res.json({ jsonrpc: '2.0', id: (req.body as { id: number }).id, result: {} });
    });
    const info = await request(app).get('/pqc/handshake');
    expect(info.body).toMatchObject({ did: SERVER.did, versions: [2] });
    const { url, close } = await listen(app);
    try {
      const { request: hello, pending } = await PQCHandshake.initiate(CLIENT, { serverDid: SERVER.did });
      const answer = await fetch(new URL('pqc/handshake', url), { method: 'POST', body: hello });
      const session = await PQCHandshake.complete(await answer.text(), CLIENT, pending, { serverDid: SERVER.did });
      const signed = await new MessageSigner(CLIENT).signMessage(
        { jsonrpc: '2.0', id: 5, method: 'ping' },
        { sessionId: session.sessionId, http: { method: 'POST', path: '/mcp', mcpSessionId: null } },
      );
      const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', 'pqc-session': session.sessionId }, body: signed.text });
      expect(response.status).toBe(200);
      expect(await response.text()).toContain('"_pqc"'); // signed by the core on the way out
      expect(seen).toEqual([{ jsonrpc: '2.0', id: 5, method: 'ping' }, CLIENT.did]);
    } finally {
      await close();
    }
  });

  test.each([
    ['POST', '/MCP'],
    ['POST', '/mcp/'],
    ['GET', '/Mcp'],
    ['DELETE', '/mcp/'],
    ['HEAD', '/mcp'],
  ])('%s %s: every spelling Express routes to /mcp is verified (unsigned → 401), never run unverified', async (method, path) => {
    const ran: string[] = [];
    const app = express();
    app.use(pqcMiddleware({ identity: SERVER }));
    app.all('/mcp', (req, res) => {
      ran.push(req.method);
      res.json({});
    });
    const verb = method.toLowerCase() as 'post' | 'get' | 'delete' | 'head';
    const response = await request(app)[verb](path).send(method === 'POST' ? { id: 1 } : undefined);
    expect(response.status).toBe(401);
    expect(ran).toEqual([]);
  });

  test.each([
    ['an absolute-form target', 'http://elsewhere/mcp', 'localhost'],
    ['a Host header that moves the path', '/mcp', 'a/b'],
    ['a Host header with a fragment', '/mcp', 'a#'],
  ])('%s cannot make the core see another path than Express routes', async (_name, target, host) => {
    const ran: string[] = [];
    const app = express();
    app.use(pqcMiddleware({ identity: SERVER }));
    app.post('/mcp', (req, res) => {
      ran.push(req.method);
      res.json({});
    });
    const { url, close } = await listen(app);
    try {
      const { port } = new URL(url);
      const head = await new Promise<string>((resolve, reject) => {
        const body = '{"jsonrpc":"2.0","id":1,"method":"ping"}';
        const socket = net.connect(Number(port), '127.0.0.1', () => {
          socket.write(`POST ${target} HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
        });
        let data = '';
        socket.on('data', (chunk: Buffer) => (data += chunk.toString()));
        socket.on('end', () => resolve(data));
        socket.on('error', reject);
      });
      expect(head.split('\r\n')[0]).toBe('HTTP/1.1 401 Unauthorized');
      expect(head).toContain('missing_envelope');
      expect(ran).toEqual([]);
    } finally {
      await close();
    }
  });

  test('mounted under a prefix: the endpoint is the full path', async () => {
    const router = express.Router();
    router.post('/mcp', (_req, res) => {
      res.json({});
    });
    const app = express();
    app.use('/api', pqcMiddleware({ identity: SERVER, endpoint: '/api/mcp' }), router);
    const response = await request(app).post('/api/mcp').send({ jsonrpc: '2.0', id: 9, method: 'ping' });
    expect(response.status).toBe(401);
    expect(response.headers['www-authenticate']).toMatch(/^PQC handshake="http:\/\/127\.0\.0\.1:\d+\/api\/pqc\/handshake"$/);
  });

  test('options are validated when the middleware is created: a TypeError naming the option', () => {
    expect(() => pqcMiddleware({} as never)).toThrow(TypeError);
    expect(() => pqcMiddleware({} as never)).toThrow(/"identity"/);
    expect(() => pqcMiddleware({ identity: SERVER, maxBodyBytes: -1 })).toThrow(/"maxBodyBytes"/);
    expect(() => pqcMiddleware({ identity: SERVER, profiles: [3 as never] })).toThrow(/"profiles"/);
    expect(() => pqcMiddleware({ identity: SERVER, endpoint: 'mcp' })).toThrow(/"endpoint"/);
  });
});
