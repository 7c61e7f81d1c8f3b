/**
 * `PQCMCPServer` in memory: tool registration and the tool list, `handleHandshake`, `handleRequest` for tools/call and
 * tools/list (the Python predecessor's server tests, ported), the verified caller reaching every tool, PQC
 * rejections, batches, option validation.
 */
import { PQCHandshake } from '@pqc-mcp/core';
import { z } from 'zod';
import { PQCMCPServer, toCallToolResult } from '../src/index.js';
import { CLIENT, MemoryClient, OTHER, SERVER, exampleServer } from './helpers.js';

describe('tool registration', () => {
  test('tools are registered, listed with their schema, and chainable', async () => {
    const server = exampleServer();
    const list = await server.getToolList();
    expect(list.map((t) => t.name)).toEqual(['greet', 'add', 'echo', 'whoami']);
    expect(list[0]).toMatchObject({ name: 'greet', description: 'Greets someone', inputSchema: { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] } });
    expect(list[2]).toMatchObject({ inputSchema: { type: 'object', properties: { message: { type: 'string' } }, required: ['message'] } });
  });

  test('a duplicate name, a bad schema or a missing handler throws', () => {
    const server = exampleServer();
    expect(() => server.tool('add', {}, () => 1)).toThrow(/already registered/);
    expect(() => server.tool('x', { inputSchema: { a: z.number() } as never }, () => 1)).toThrow(/Standard Schema object/);
    expect(() => server.tool('y', {}, undefined as never)).toThrow(/handler must be a function/);
    expect(() => server.tool('', {}, () => 1)).toThrow(/non-empty string/);
  });

  test('options are validated at construction', () => {
    expect(() => new PQCMCPServer(undefined as never)).toThrow(TypeError);
    expect(() => new PQCMCPServer({ identity: 'x' as never })).toThrow(/identity/);
    expect(() => new PQCMCPServer({ identity: SERVER, name: 5 as never })).toThrow(/name/);
    expect(() => new PQCMCPServer({ identity: SERVER, maxBatch: 0 })).toThrow(/maxBatch/);
  });
});

describe('handler return values become MCP content', () => {
  test.each([
    ['a string', 'hi', { content: [{ type: 'text', text: 'hi' }] }],
    ['a number', 7.5, { content: [{ type: 'text', text: '7.5' }] }],
    ['undefined', undefined, { content: [] }],
    ['an object', { a: 1 }, { content: [{ type: 'text', text: '{"a":1}' }] }],
    ['a CallToolResult', { content: [{ type: 'text', text: 'x' }], isError: true }, { content: [{ type: 'text', text: 'x' }], isError: true }],
  ])('%s', (_name, value, expected) => {
    expect(toCallToolResult(value)).toEqual(expected);
  });
});

describe('handleHandshake and handleRequest in memory', () => {
  let server: PQCMCPServer;
  let client: MemoryClient;

  beforeAll(async () => {
    server = exampleServer().tool('fail', {}, () => {
      throw new Error('boom');
    });
    client = new MemoryClient(server);
    await client.handshake();
  });

  test('handleHandshake answers a signed handshake response that pins the server', () => {
    expect(client.session.peerDid).toBe(SERVER.did);
    expect(server.getAuditLog().some((e) => e.operation === 'handshake' && e.peer_did === CLIENT.did)).toBe(true);
  });

  test('a refused handshake comes back as the §6 error (unsigned, with its reason)', async () => {
    const { request } = await PQCHandshake.initiate(OTHER, { serverDid: SERVER.did });
    const forged = JSON.stringify({ ...JSON.parse(request), client_did: CLIENT.did });
    expect(JSON.parse(await server.handleHandshake(forged))).toMatchObject({ error: { code: -32010, data: { pqc: 'did_mismatch' } } });
    expect(JSON.parse(await server.handleHandshake(request))).toMatchObject({ type: 'pqc_handshake_response', server_did: SERVER.did });
    expect(JSON.parse(await server.handleHandshake(request))).toMatchObject({ error: { data: { pqc: 'replay_detected' } } });
  });

  test('tools/list and tools/call, without initialize (the stateless legacy path), signed and bound', async () => {
    const list = await client.request('tools/list');
    expect((list.result as { tools: { name: string }[] }).tools.map((t) => t.name)).toEqual(['greet', 'add', 'echo', 'whoami', 'fail']);
    expect(await client.request('tools/call', { name: 'add', arguments: { a: 2, b: 3 } })).toMatchObject({ result: { content: [{ type: 'text', text: '5' }] } });
    expect(await client.request('tools/call', { name: 'greet', arguments: { name: 'Seed' } })).toMatchObject({ result: { content: [{ text: 'Hello, Seed!' }] } });
    expect(await client.request('tools/call', { name: 'echo', arguments: { message: 'm' } })).toMatchObject({ result: { content: [{ text: 'm' }] } });
  });

  test('every tool knows the verified caller', async () => {
    expect(await client.request('tools/call', { name: 'whoami', arguments: {} })).toMatchObject({ result: { content: [{ text: CLIENT.did }] } });
  });

  test('an unknown tool, invalid arguments, a throwing handler: signed errors', async () => {
    const unknown = await client.request('tools/call', { name: 'nope', arguments: {} });
    expect(JSON.stringify(unknown)).toMatch(/nope/);
    expect(await client.request('tools/call', { name: 'add', arguments: { a: 'x' } })).toMatchObject({ result: { isError: true } });
    expect(await client.request('tools/call', { name: 'echo', arguments: {} })).toMatchObject({ result: { isError: true } });
    expect(await client.request('tools/call', { name: 'fail', arguments: {} })).toMatchObject({ result: { isError: true, content: [{ text: expect.stringContaining('boom') }] } });
  });

  test('unsigned, tampered and replayed requests come back as §6 errors, never reaching a tool', async () => {
    const unsigned = JSON.parse(await server.handleRequest(JSON.stringify({ jsonrpc: '2.0', id: 90, method: 'tools/list' })));
    expect(unsigned).toMatchObject({ id: null, error: { code: -32010, data: { pqc: 'missing_envelope' } } });
    const signed = await client.sign({ jsonrpc: '2.0', id: 91, method: 'tools/call', params: { name: 'add', arguments: { a: 2, b: 3 } } });
    expect(JSON.parse(await server.handleRequest(signed.text.replace('"a":2', '"a":20')))).toMatchObject({ id: 91, error: { data: { pqc: 'invalid_signature' } } });
    expect(JSON.parse(await server.handleRequest(signed.text))).toMatchObject({ id: 91, result: { content: [{ text: '5' }] } });
    expect(JSON.parse(await server.handleRequest(signed.text))).toMatchObject({ id: 91, error: { data: { pqc: 'replay_detected' } } });
  });
});
