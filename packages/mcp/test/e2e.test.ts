/**
 * `PQCMCPServer.run()` and `PQCMCPClient` over real HTTP on 127.0.0.1, with every client the MCP world has: the v2
 * SDK client in its three negotiation modes (2025-11-25 `legacy`, `auto`, pinned 2026-07-28) through `pqcFetch` and
 * through the `withPqc` middleware, the 1.x SDK client through `pqcFetch`, and `PQCMCPClient` itself.
 */
import { Client as ClientV2, StreamableHTTPClientTransport as TransportV2, applyMiddlewares } from '@modelcontextprotocol/client';
import { Client as ClientV1 } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as TransportV1 } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { AgentIdentity, MemorySessionStore, pqcFetch } from '@pqc-mcp/core';
import { PQCMCPClient, withPqc, type PQCMCPServer, type RunningServer } from '../src/index.js';
import { CLIENT, OTHER, SERVER, exampleServer, textOf } from './helpers.js';

const MODES = [
  ['legacy (2025-11-25)', { mode: 'legacy' as const }],
  ['auto', { mode: 'auto' as const }],
  ['pinned 2026-07-28', { mode: { pin: '2026-07-28' } }],
] as const;

describe('PQCMCPServer.run with every client', () => {
  let server: PQCMCPServer;
  let running: RunningServer;
  beforeAll(async () => {
    server = exampleServer({ authorize: (peer) => peer.did !== OTHER.did });
    running = await server.run();
  });
  afterAll(() => server.close());

  test('run() resolves with the endpoint URL and port on 127.0.0.1; GET pqc/handshake tells the identity', async () => {
    expect(running.url).toBe(`http://127.0.0.1:${running.port}/mcp`);
    const info = await fetch(new URL('pqc/handshake', running.url));
    expect(await info.json()).toEqual({ did: SERVER.did, algorithm: SERVER.algorithm, public_key: SERVER.publicKeyHex, versions: [2] });
  });

  describe.each(MODES)('PQCMCPClient, %s', (_name, versionNegotiation) => {
    test('connect, listTools, callTool (text, float, non-ASCII, the caller), close', async () => {
      const client = new PQCMCPClient({ identity: CLIENT, serverUrl: running.url, serverDid: SERVER.did, versionNegotiation });
      const session = await client.connect();
      expect(session.peerDid).toBe(SERVER.did);
      expect((await client.listTools()).map((t) => t.name)).toEqual(['greet', 'add', 'echo', 'whoami']);
      expect(textOf(await client.callTool('add', { a: 7.5, b: 3 }))).toBe('10.5');
      expect(textOf(await client.callTool('echo', { message: 'héllo 😀' }))).toBe('héllo 😀');
      expect(textOf(await client.callTool('whoami'))).toBe(CLIENT.did);
      const pqcSession = client.session!.sessionId;
      await client.close();
      expect(client.getAuditLog().filter((e) => e.operation === 'rejected')).toEqual([]);
      // close() ended the PQC session at the server: its record says so.
      expect((await server.handler.store.getSession(pqcSession))?.endedAt).toEqual(expect.any(Number));
    });

    test('the SDK v2 client through the withPqc middleware', async () => {
      const client = new ClientV2({ name: 'v2', version: '1.0.0' }, { versionNegotiation });
      const fetchWithPqc = applyMiddlewares(withPqc({ identity: CLIENT, serverDid: SERVER.did }))(globalThis.fetch);
      await client.connect(new TransportV2(new URL(running.url), { fetch: fetchWithPqc }));
      expect(await client.callTool({ name: 'greet', arguments: { name: 'middleware' } })).toMatchObject({ content: [{ text: 'Hello, middleware!' }] });
      await client.close();
    });
  });

  test('the 1.x SDK client through pqcFetch', async () => {
    const client = new ClientV1({ name: 'v1-sdk', version: '1.0.0' });
    await client.connect(new TransportV1(new URL(running.url), { fetch: pqcFetch({ identity: CLIENT, serverDid: SERVER.did }) }));
    expect(await client.callTool({ name: 'add', arguments: { a: 2, b: 40 } })).toMatchObject({ content: [{ type: 'text', text: '42' }] });
    await client.close();
  });

  test('trust on first use pins the server that answered', async () => {
    const client = new PQCMCPClient({ identity: CLIENT, serverUrl: running.url, trustOnFirstUse: true });
    await client.connect();
    expect(client.serverDid).toBe(SERVER.did);
    await client.close();
  });

  test('a pinned DID of another server: the handshake fails with peer_mismatch', async () => {
    const client = new PQCMCPClient({ identity: CLIENT, serverUrl: running.url, serverDid: OTHER.did });
    await expect(client.connect()).rejects.toMatchObject({ name: 'HandshakeError', reason: 'peer_mismatch' });
  });

  test('an unauthorized client is refused at the handshake (403 peer_not_authorized)', async () => {
    const client = new PQCMCPClient({ identity: OTHER, serverUrl: running.url, serverDid: SERVER.did });
    await expect(client.connect()).rejects.toMatchObject({ reason: 'peer_not_authorized' });
  });

  test('calls before connect() throw; close() before connect() does nothing', async () => {
    const client = new PQCMCPClient({ identity: CLIENT, serverUrl: running.url, serverDid: SERVER.did });
    await expect(client.callTool('add')).rejects.toThrow(/not connected/);
    await expect(client.close()).resolves.toBeUndefined();
  });

  test('options are validated at construction', () => {
    expect(() => new PQCMCPClient(undefined as never)).toThrow(TypeError);
    expect(() => new PQCMCPClient({ identity: CLIENT, serverUrl: 'not a url', serverDid: SERVER.did })).toThrow(/serverUrl/);
    expect(() => new PQCMCPClient({ identity: CLIENT, serverUrl: 'ftp://x/mcp', serverDid: SERVER.did })).toThrow(/http/);
    expect(() => new PQCMCPClient({ identity: CLIENT, serverUrl: running.url })).toThrow(/pin the server/);
  });
});

describe('sessions across server events', () => {
  test('a session the server ended is re-opened once, transparently, after its signed unknown_session', async () => {
    const store = new MemorySessionStore();
    const server = exampleServer({ store });
    const running = await server.run();
    try {
      const client = new PQCMCPClient({ identity: CLIENT, serverUrl: running.url, serverDid: SERVER.did, versionNegotiation: { mode: 'auto' } });
      await client.connect();
      const first = client.session!.sessionId;
      await store.endSession(first, 660);
      expect(textOf(await client.callTool('add', { a: 1, b: 1 }))).toBe('2');
      expect(client.session!.sessionId).not.toBe(first);
      await client.close();
    } finally {
      await server.close();
    }
  });

  test('a server that lost its sessions (a restart without a shared store): the call fails unsigned, is not sent again, the next works', async () => {
    const store = new MemorySessionStore();
    const server = exampleServer({ store });
    const running = await server.run();
    try {
      const client = new PQCMCPClient({ identity: CLIENT, serverUrl: running.url, serverDid: SERVER.did, versionNegotiation: { mode: 'auto' } });
      await client.connect();
      await store.close(); // everything forgotten, as a restarted instance would have
      const calls = () => server.getAuditLog().filter((e) => e.operation === 'request' && e.method === 'tools/call').length;
      const before = calls();
      await expect(client.callTool('add', { a: 1, b: 2 })).rejects.toMatchObject({ name: 'SessionExpiredError', reason: 'unknown_session' });
      expect(calls()).toBe(before);
      expect(textOf(await client.callTool('add', { a: 1, b: 2 }))).toBe('3');
      expect(calls()).toBe(before + 1);
      await client.close();
    } finally {
      await server.close();
    }
  });
});

describe('errors', () => {
  test('an unknown tool is an MCPToolError invalid_params (signed, verified); an SDK timeout is request_timeout', async () => {
    const server = exampleServer().tool('slow', {}, () => new Promise((resolve) => setTimeout(() => resolve('late'), 2000)));
    const running = await server.run();
    try {
      const client = new PQCMCPClient({ identity: AgentIdentity.create('c'), serverUrl: running.url, serverDid: SERVER.did, versionNegotiation: { mode: 'legacy' } });
      await client.connect();
      await expect(client.callTool('nope', {})).rejects.toMatchObject({ name: 'MCPToolError', reason: 'invalid_params', tool: 'nope' });
      await expect(client.callTool('slow', {}, { timeout: 100 })).rejects.toMatchObject({ name: 'MCPToolError', reason: 'request_timeout' });
      await client.close();
    } finally {
      await server.close();
    }
  });
});
