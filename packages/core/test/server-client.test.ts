import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { MemorySessionStore, createPQCHandler, pqcFetch, type FetchLike } from '../src/index.js';
import { createWebMcpApp1x, seededIdentity } from '@pqc-mcp/test-kit';

const serverIdentity = seededIdentity(1);
const clientIdentity = seededIdentity(2);

function setup(enableJsonResponse: boolean) {
  const app = createWebMcpApp1x({ enableJsonResponse });
  const seen: unknown[] = [];
  const handler = createPQCHandler({ identity: serverIdentity, store: new MemorySessionStore() });
  const inMemory: FetchLike = (input, init) =>
    handler.handle(new Request(input instanceof Request ? input : String(input), init), (request, body) => {
      seen.push(body);
      return app(request, body);
    });
  const fetch = pqcFetch({ identity: clientIdentity, serverDid: serverIdentity.did, fetch: inMemory });
  return { handler, fetch, seen };
}

describe.each([
  ['SSE', false],
  ['JSON', true],
])('core server and client with the MCP SDK (%s responses)', (_mode, json) => {
  test('initialize, list tools, call a tool, close', async () => {
    const { handler, fetch, seen } = setup(json);
    const client = new Client({ name: 'test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL('http://127.0.0.1/mcp'), { fetch }));
    const tools = await client.listTools();
    expect(tools.tools.map((t) => t.name).sort()).toEqual(['add', 'echo', 'whoami']);
    const result = await client.callTool({ name: 'add', arguments: { a: 2, b: 3.5 } });
    expect(result.content).toEqual([{ type: 'text', text: '5.5' }]);
    await client.close();
    expect(fetch.session?.peerDid).toBe(serverIdentity.did);
    expect(JSON.stringify(seen)).not.toContain('_pqc');
    const ops = handler.audit.entries().map((e) => e.operation);
    expect(ops[0]).toBe('handshake');
    expect(ops).toContain('request');
    expect(ops).toContain('response');
    expect(ops).not.toContain('rejected');
    const answers = handler.audit.entries().filter((e) => e.operation === 'response');
    expect(answers.map((e) => e.peer_did)).toEqual(answers.map(() => clientIdentity.did));
    const clientOps = fetch.audit.entries();
    expect(clientOps.every((e) => e.verified)).toBe(true);
  });
});

test('the plain SDK client gets a prompt -32010 error when an SSE answer fails verification (no timeout)', async () => {
  const app = createWebMcpApp1x({ enableJsonResponse: false });
  const handler = createPQCHandler({ identity: serverIdentity, store: new MemorySessionStore() });
  let tamper = false;
  // A man in the middle below pqcFetch: once armed, it changes a tool name inside the signed SSE answer.
  const network: FetchLike = async (input, init) => {
    const response = await handler.handle(new Request(String(input), init), (request, body) => app(request, body));
    if (!tamper || !response.body) return response;
    const text = (await response.text()).replace('"echo"', '"ech0"');
    return new Response(text, { status: response.status, headers: response.headers });
  };
  const fetch = pqcFetch({ identity: clientIdentity, serverDid: serverIdentity.did, fetch: network });
  const client = new Client({ name: 'test', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL('http://127.0.0.1/mcp'), { fetch }));
  tamper = true;
  const started = Date.now();
  const error = await client.listTools(undefined, { timeout: 20_000 }).catch((e: unknown) => e);
  expect(Date.now() - started).toBeLessThan(5_000);
  expect(error).toMatchObject({ code: -32010, data: { pqc: 'invalid_signature' } });
  tamper = false;
  await client.close();
});

test('a handler given `now` and no store keeps its sessions on that clock (a replay of exchanges recorded long ago)', async () => {
  // The server's clock an hour and a half in the past, as when replaying a recorded session: the session the
  // handshake opens must be live on that clock, not expired on the wall clock of the default store.
  const past = Date.now() - 90 * 60_000;
  const now = () => past;
  const app = createWebMcpApp1x({ enableJsonResponse: true });
  const handler = createPQCHandler({ identity: serverIdentity, now });
  const inMemory: FetchLike = (input, init) => handler.handle(new Request(input instanceof Request ? input : String(input), init), (request, body) => app(request, body));
  const fetch = pqcFetch({ identity: clientIdentity, serverDid: serverIdentity.did, fetch: inMemory, now });
  const client = new Client({ name: 'test', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL('http://127.0.0.1/mcp'), { fetch }));
  expect((await client.listTools()).tools.map((t) => t.name).sort()).toEqual(['add', 'echo', 'whoami']);
  await client.close();
  expect(handler.audit.entries().filter((e) => e.operation === 'rejected')).toEqual([]);
});
