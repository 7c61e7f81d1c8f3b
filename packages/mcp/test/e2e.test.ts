/**
 * End to end over real loopback HTTP: `PQCMCPServer.run()` (the Hono adapter on @hono/node-server) with
 * `PQCMCPClient` and with the plain MCP SDK `Client` on `pqcFetch`, in SSE and JSON modes; session expiry and a
 * forgotten session, both healed by one transparent re-handshake.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  HandshakeError,
  MCPToolError,
  MemorySessionStore,
  PQCMCPClient,
  PQCMCPServer,
  pqcFetch,
  type RunningServer,
} from '../src/index.js';
import { CLIENT, OTHER, SERVER, exampleServer, textOf } from './helpers.js';

describe.each([
  ['SSE', false],
  ['JSON', true],
])('PQCMCPClient against PQCMCPServer.run (%s responses)', (_mode, json) => {
  let server: PQCMCPServer;
  let running: RunningServer;
  const seenPeers: (string | undefined)[] = [];

  beforeAll(async () => {
    server = exampleServer({ enableJsonResponse: json }).tool(
      'whoami',
      { description: 'The caller DID, as the PQC layer authenticated it' },
      (_args, context) => {
        seenPeers.push(context.pqc?.peerDid);
        return { did: context.pqc?.peerDid ?? null };
      },
    );
    running = await server.run({ port: 0 });
  });
  afterAll(() => server.close());

  test('run() resolves with the endpoint URL and port on 127.0.0.1', () => {
    expect(running.host).toBe('127.0.0.1');
    expect(running.port).toBeGreaterThan(0);
    expect(running.url).toBe(`http://127.0.0.1:${running.port}/mcp`);
  });

  test('GET pqc/handshake tells the server identity', async () => {
    const response = await fetch(new URL('pqc/handshake', running.url));
    expect(await response.json()).toMatchObject({ did: SERVER.did, algorithm: SERVER.algorithm, versions: [2] });
  });

  test('connect, listTools, callTool (string, number, content, JSON), audit, close', async () => {
    const client = new PQCMCPClient({ identity: CLIENT, serverUrl: running.url, serverDid: SERVER.did, clientInfo: { name: 'e2e', version: '1.0.0' } });
    expect(client.session).toBeUndefined();
    const session = await client.connect();
    expect(session.peerDid).toBe(SERVER.did);
    expect(session.localDid).toBe(CLIENT.did);
    expect(client.session).toBe(session);
    expect(client.serverDid).toBe(SERVER.did);
    expect(client.mcpClient?.getServerVersion()).toMatchObject({ name: 'test-server', version: '1.2.3' });

    const tools = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(['add', 'echo', 'greet', 'whoami']);
    expect(tools.find((t) => t.name === 'echo')?.inputSchema).toMatchObject({
      type: 'object',
      properties: { message: { type: 'string' } },
      required: ['message'],
    });

    expect(textOf(await client.callTool('greet', { name: 'Ada 😀' }))).toBe('Hello, Ada 😀!');
    expect(textOf(await client.callTool('add', { a: 2, b: 3.5 }))).toBe('5.5');
    expect(textOf(await client.callTool('echo', { message: 'héllo' }))).toBe('héllo');
    expect(JSON.parse(textOf(await client.callTool('whoami'))!)).toEqual({ did: CLIENT.did });
    expect(seenPeers.at(-1)).toBe(CLIENT.did);

    // Tool failures are results (MCP), not exceptions: invalid arguments, unknown tool.
    const invalid = await client.callTool('add', { a: 'two', b: 3 });
    expect(invalid.isError).toBe(true);
    expect(textOf(invalid)).toMatch(/Invalid arguments for tool add/);
    const unknown = await client.callTool('nope');
    expect(unknown.isError).toBe(true);
    expect(textOf(unknown)).toMatch(/Tool nope not found/);

    await client.close();
    await expect(client.callTool('greet', { name: 'x' })).rejects.toThrow(/not connected/);

    const audit = client.getAuditLog();
    expect(audit[0]).toMatchObject({ operation: 'handshake', verified: true, peer_did: SERVER.did });
    expect(audit.filter((e) => e.operation === 'rejected')).toEqual([]);
    expect(audit.filter((e) => e.operation === 'response').length).toBeGreaterThanOrEqual(8);
    expect(audit.every((e) => e.verified)).toBe(true);

    const serverAudit = server.getAuditLog();
    expect(serverAudit.some((e) => e.operation === 'handshake' && e.peer_did === CLIENT.did)).toBe(true);
    expect(serverAudit.some((e) => e.operation === 'request' && e.method === 'tools/call' && e.verified)).toBe(true);
  });

  test('the plain MCP SDK Client with pqcFetch', async () => {
    const fetch = pqcFetch({ identity: CLIENT, serverDid: SERVER.did });
    const client = new Client({ name: 'sdk', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(running.url), { fetch }));
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name)).toContain('greet');
    const result = await client.callTool({ name: 'add', arguments: { a: 40, b: 2 } });
    expect(result.content).toEqual([{ type: 'text', text: '42' }]);
    await client.close();
    expect(fetch.session?.peerDid).toBe(SERVER.did);
    expect(fetch.audit.entries().filter((e) => e.operation === 'rejected')).toEqual([]);
  });

  test('trust on first use pins the server that answered', async () => {
    const client = new PQCMCPClient({ identity: OTHER, serverUrl: running.url, trustOnFirstUse: true });
    await client.connect();
    expect(client.serverDid).toBe(SERVER.did);
    expect(textOf(await client.callTool('greet', { name: 'tofu' }))).toBe('Hello, tofu!');
    await client.close();
  });

  test('a pinned DID of another server: the handshake fails with peer_mismatch', async () => {
    const client = new PQCMCPClient({ identity: CLIENT, serverUrl: running.url, serverDid: OTHER.did });
    const error = await client.connect().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HandshakeError);
    expect(error).toMatchObject({ reason: 'peer_mismatch' });
  });

  test('an unauthorized client is refused at the handshake (403 peer_not_authorized)', async () => {
    const guarded = new PQCMCPServer({ identity: SERVER, authorize: [CLIENT.did], enableJsonResponse: json });
    const r = await guarded.run();
    try {
      const outsider = new PQCMCPClient({ identity: OTHER, serverUrl: r.url, serverDid: SERVER.did });
      await expect(outsider.connect()).rejects.toMatchObject({ name: 'HandshakeError', reason: 'peer_not_authorized' });
    } finally {
      await guarded.close();
    }
  });
});

describe('JSON-RPC errors become MCPToolError', () => {
  test('a server without tools: tools/call is method_not_found; a timeout is request_timeout', async () => {
    const bare = new PQCMCPServer({ identity: SERVER });
    const r = await bare.run();
    const client = new PQCMCPClient({ identity: CLIENT, serverUrl: r.url, serverDid: SERVER.did });
    try {
      await client.connect();
      const error = await client.callTool('anything').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(MCPToolError);
      expect(error).toMatchObject({ code: -32601, reason: 'method_not_found', tool: 'anything' });
    } finally {
      await client.close();
      await bare.close();
    }

    const slow = new PQCMCPServer({ identity: SERVER }).tool('slow', {}, () => new Promise((resolve) => setTimeout(() => resolve('late'), 1500)));
    const r2 = await slow.run();
    const client2 = new PQCMCPClient({ identity: CLIENT, serverUrl: r2.url, serverDid: SERVER.did });
    try {
      await client2.connect();
      await expect(client2.callTool('slow', {}, { timeout: 100 })).rejects.toMatchObject({ name: 'MCPToolError', reason: 'request_timeout' });
    } finally {
      await client2.close();
      await slow.close();
    }
  });
});

describe('sessions', () => {
  test.each([
    ['SSE', false],
    ['JSON', true],
  ])('server-side expiry (sessionTtlSec: 1, %s): the client re-handshakes transparently', async (_mode, json) => {
    const server = exampleServer({ sessionTtlSec: 1, enableJsonResponse: json });
    const r = await server.run();
    const client = new PQCMCPClient({ identity: CLIENT, serverUrl: r.url, serverDid: SERVER.did });
    try {
      const first = await client.connect();
      expect(textOf(await client.callTool('greet', { name: 'before' }))).toBe('Hello, before!');
      await new Promise((resolve) => setTimeout(resolve, 1100));
      expect(textOf(await client.callTool('greet', { name: 'after' }))).toBe('Hello, after!');
      expect(client.session?.sessionId).not.toBe(first.sessionId);
      expect(client.getAuditLog().filter((e) => e.operation === 'handshake')).toHaveLength(2);
      expect(server.getAuditLog().filter((e) => e.operation === 'handshake')).toHaveLength(2);
    } finally {
      await client.close();
      await server.close();
    }
  });

  test('a session the server forgot (unknown_session) is re-opened once, transparently', async () => {
    const store = new MemorySessionStore();
    const server = exampleServer({ store });
    const r = await server.run();
    const client = new PQCMCPClient({ identity: CLIENT, serverUrl: r.url, serverDid: SERVER.did });
    try {
      const first = await client.connect();
      await store.deleteSession(first.sessionId); // as after a restart of a server with memory sessions
      expect(textOf(await client.callTool('add', { a: 1, b: 1 }))).toBe('2');
      expect(client.session?.sessionId).not.toBe(first.sessionId);
      const audit = client.getAuditLog();
      expect(audit.filter((e) => e.operation === 'handshake')).toHaveLength(2);
      // The tools/call POST (and the SDK's GET stream, if it opened after the deletion) met unknown_session once.
      const reasons = audit.filter((e) => e.operation === 'rejected').map((e) => e.reason);
      expect(reasons.length).toBeGreaterThanOrEqual(1);
      expect(new Set(reasons)).toEqual(new Set(['unknown_session']));
    } finally {
      await client.close();
      await server.close();
    }
  });

  test('an MCP session belongs to the DID that opened it', async () => {
    const server = exampleServer({ enableJsonResponse: true });
    const r = await server.run();
    const owner = new PQCMCPClient({ identity: CLIENT, serverUrl: r.url, serverDid: SERVER.did });
    try {
      await owner.connect();
      const mcpSessionId = (owner.mcpClient!.transport as StreamableHTTPClientTransport).sessionId!;
      const intruder = pqcFetch({ identity: OTHER, serverDid: SERVER.did });
      const response = await intruder(r.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': mcpSessionId, 'mcp-protocol-version': '2025-06-18' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
      });
      expect(response.status).toBe(404);
      expect(await owner.listTools()).toHaveLength(3);
    } finally {
      await owner.close();
      await server.close();
    }
  });
});

describe('PQCMCPServer.close', () => {
  test('ends open SSE streams and stops listening; run() can start again', async () => {
    const server = exampleServer();
    const r = await server.run();
    const client = new PQCMCPClient({ identity: CLIENT, serverUrl: r.url, serverDid: SERVER.did });
    await client.connect(); // SSE mode: the client holds a GET stream open
    await new Promise((resolve) => setTimeout(resolve, 100));
    const started = Date.now();
    await server.close();
    expect(Date.now() - started).toBeLessThan(1500);
    await expect(fetch(r.url)).rejects.toThrow();
    await client.close();
    const again = await server.run();
    expect(again.port).toBeGreaterThan(0);
    await server.close();
  });

  test('a JSON Schema tool validates its arguments', async () => {
    const server = new PQCMCPServer({ identity: SERVER }).tool(
      'sum',
      { inputSchema: { type: 'object', properties: { xs: { type: 'array', items: { type: 'number' } } }, required: ['xs'] } },
      (args) => (args.xs as number[]).reduce((a, b) => a + b, 0),
    );
    const r = await server.run();
    const client = new PQCMCPClient({ identity: CLIENT, serverUrl: r.url, serverDid: SERVER.did });
    try {
      await client.connect();
      expect(textOf(await client.callTool('sum', { xs: [1, 2, 3] }))).toBe('6');
      expect((await client.callTool('sum', { xs: ['a'] })).isError).toBe(true);
    } finally {
      await client.close();
      await server.close();
    }
  });
});

