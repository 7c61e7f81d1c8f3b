/**
 * The seed's client tests (`PQCMCPClient`: construction, connect, call_tool, list_tools, close, the session and the
 * audit trail), ported; then `PQCMCPClient` and the plain SDK client against the Express, Fastify and Hono example
 * servers over real loopback HTTP, SSE and JSON.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { pqc, type PQCVariables } from '@pqc-mcp/hono';
import { Hono } from 'hono';
import { createExpressApp } from '../../../examples/shared/express-app.js';
import { createFastifyApp } from '../../../examples/shared/fastify-app.js';
import { createWebMcpApp } from '../../../examples/shared/tools.js';
import { AuditLog, PQCMCPClient, pqcFetch, type FetchLike } from '../src/index.js';
import { CLIENT, SERVER, exampleServer, textOf } from './helpers.js';

describe('PQCMCPClient construction (seed: test_client)', () => {
  test('requires an identity, an absolute http(s) serverUrl, and a pinned server or trustOnFirstUse', () => {
    expect(() => new PQCMCPClient(undefined as never)).toThrow(TypeError);
    expect(() => new PQCMCPClient({ identity: CLIENT, serverUrl: 'not a url', serverDid: SERVER.did })).toThrow(/serverUrl/);
    expect(() => new PQCMCPClient({ identity: CLIENT, serverUrl: 'ftp://x/mcp', serverDid: SERVER.did })).toThrow(/http/);
    expect(() => new PQCMCPClient({ identity: {} as never, serverUrl: 'http://127.0.0.1/mcp', serverDid: SERVER.did })).toThrow(/identity/);
    expect(() => new PQCMCPClient({ identity: CLIENT, serverUrl: 'http://127.0.0.1/mcp' })).toThrow(/trustOnFirstUse/);
    expect(() => new PQCMCPClient({ identity: CLIENT, serverUrl: 'http://127.0.0.1/mcp', serverDid: SERVER.did, profile: 3 as never })).toThrow(/profile/);
    expect(() => new PQCMCPClient({ identity: CLIENT, serverUrl: 'http://127.0.0.1/mcp', serverDid: SERVER.did, clientInfo: { name: 1 } as never })).toThrow(/clientInfo/);
    const client = new PQCMCPClient({ identity: CLIENT, serverUrl: new URL('http://127.0.0.1:9/mcp'), serverDid: SERVER.did });
    expect(client.serverUrl.href).toBe('http://127.0.0.1:9/mcp');
    expect(client.session).toBeUndefined();
    expect(client.serverDid).toBe(SERVER.did);
    expect(client.getAuditLog()).toEqual([]);
  });

  test('calls before connect() throw; close() before connect() does nothing', async () => {
    const client = new PQCMCPClient({ identity: CLIENT, serverUrl: 'http://127.0.0.1:9/mcp', serverDid: SERVER.did });
    await expect(client.callTool('greet', {})).rejects.toThrow(/not connected/);
    await expect(client.listTools()).rejects.toThrow(/not connected/);
    await expect(client.close()).resolves.toBeUndefined();
  });

  test('a server that is not there: connect() rejects with the network error', async () => {
    const client = new PQCMCPClient({ identity: CLIENT, serverUrl: 'http://127.0.0.1:9/mcp', serverDid: SERVER.did });
    await expect(client.connect()).rejects.toThrow();
    expect(client.mcpClient).toBeUndefined();
  });

  test('in memory through a custom fetch: connect, call, list, audit sink, connect twice throws', async () => {
    const server = exampleServer();
    const sink: string[] = [];
    const client = new PQCMCPClient({
      identity: CLIENT,
      serverUrl: 'http://pqc.test/mcp',
      serverDid: SERVER.did,
      fetch: ((input, init) => server.fetch(new Request(input, init))) as FetchLike,
      audit: new AuditLog({ sink: (entry) => void sink.push(entry.operation) }),
    });
    const session = await client.connect();
    expect(session.peerDid).toBe(SERVER.did);
    await expect(client.connect()).rejects.toThrow(/already connected/);
    expect((await client.listTools()).map((t) => t.name)).toEqual(['greet', 'add', 'echo']);
    expect(textOf(await client.callTool('add', { a: 1, b: 2 }))).toBe('3');
    await client.close();
    await server.close();
    expect(sink[0]).toBe('handshake');
    expect(sink).toContain('response');
  });
});

interface Started {
  url: string;
  close(): Promise<void>;
}

function listening(server: Server, close: () => Promise<void>): Started {
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`, close };
}

function closeNode(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** The three framework example servers, as examples/*-server.ts build them. */
const frameworks: [string, (json: boolean) => Promise<Started>][] = [
  [
    'Express',
    async (json) => {
      const { app, closeSessions } = createExpressApp({ pqc: { identity: SERVER }, enableJsonResponse: json });
      const server = await new Promise<Server>((resolve) => {
        const s = app.listen(0, '127.0.0.1', () => resolve(s));
      });
      return listening(server, async () => {
        await closeSessions();
        await closeNode(server);
      });
    },
  ],
  [
    'Fastify',
    async (json) => {
      const { app, closeSessions } = createFastifyApp({ pqc: { identity: SERVER }, enableJsonResponse: json });
      await app.listen({ host: '127.0.0.1', port: 0 });
      return listening(app.server, async () => {
        await closeSessions();
        app.server.closeAllConnections();
        await app.close();
      });
    },
  ],
  [
    'Hono',
    async (json) => {
      const mcp = createWebMcpApp({ enableJsonResponse: json });
      const app = new Hono<{ Variables: PQCVariables }>();
      app.use('*', pqc({ identity: SERVER }));
      app.all('/mcp', (c) => mcp(c.req.raw, c.get('pqcBody')));
      const server = await new Promise<Server>((resolve) => {
        const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s as Server)) as Server;
      });
      return listening(server, () => closeNode(server));
    },
  ],
];

describe.each(frameworks)('against the %s example server', (_name, start) => {
  describe.each([
    ['SSE', false],
    ['JSON', true],
  ])('%s responses', (_mode, json) => {
    let server: Started;
    beforeAll(async () => {
      server = await start(json);
    });
    afterAll(() => server.close());

    test('PQCMCPClient: connect, listTools, callTool, close', async () => {
      const client = new PQCMCPClient({ identity: CLIENT, serverUrl: server.url, serverDid: SERVER.did });
      const session = await client.connect();
      expect(session.peerDid).toBe(SERVER.did);
      expect((await client.listTools()).map((t) => t.name).sort()).toEqual(['add', 'echo']);
      expect(textOf(await client.callTool('echo', { text: 'héllo 😀' }))).toBe('héllo 😀');
      expect(textOf(await client.callTool('add', { a: 2, b: 40 }))).toBe('42');
      await client.close();
      const audit = client.getAuditLog();
      expect(audit.filter((e) => e.operation === 'rejected')).toEqual([]);
      expect(audit.filter((e) => e.operation === 'response').length).toBeGreaterThanOrEqual(4);
    });

    test('the plain MCP SDK Client with pqcFetch', async () => {
      const fetch = pqcFetch({ identity: CLIENT, serverDid: SERVER.did });
      const client = new Client({ name: 'sdk', version: '1.0.0' });
      await client.connect(new StreamableHTTPClientTransport(new URL(server.url), { fetch }));
      expect(await client.callTool({ name: 'add', arguments: { a: 1, b: 2 } })).toMatchObject({ content: [{ type: 'text', text: '3' }] });
      await client.close();
      expect(fetch.audit.entries().filter((e) => e.operation === 'rejected')).toEqual([]);
    });
  });
});
