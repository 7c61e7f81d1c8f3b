/**
 * The seed's server tests (`PQCMCPServer`: tool registration, the tool list, `handle_handshake`, `handle_request`
 * for tools/call and tools/list, an unknown tool), ported to the in-memory API, plus what the port adds: JSON Schema
 * tools, the handler's return values, PQC rejections in memory, option validation.
 */
import {
  AuditLog,
  MessageSigner,
  PQCHandshake,
  parseLossless,
  verifyWithSession,
  type AgentIdentity,
  type JsonNumber,
  type JsonObject,
  type PQCSession,
} from '@pqc-mcp/core';
import { z } from 'zod';
import { PQCMCPServer, toCallToolResult } from '../src/index.js';
import { CLIENT, OTHER, SERVER, exampleServer } from './helpers.js';

/** A client in memory: handshake through `handleHandshake`, signed requests through `handleRequest`, verified answers. */
class MemoryClient {
  session!: PQCSession;
  readonly signer: MessageSigner;
  #id = 1;

  constructor(
    readonly server: PQCMCPServer,
    readonly identity: AgentIdentity = CLIENT,
  ) {
    this.signer = new MessageSigner(identity);
  }

  async handshake(): Promise<PQCSession> {
    const { request, pending } = await PQCHandshake.initiate(this.identity);
    const response = await this.server.handleHandshake(request);
    this.session = await PQCHandshake.complete(response, this.identity, pending, { serverDid: this.server.did });
    return this.session;
  }

  async sign(message: object) {
    return this.signer.signMessage(message, { sessionId: this.session.sessionId });
  }

  /** Sends a request; returns the verified answer without `_pqc`. */
  async request(method: string, params?: object): Promise<Record<string, unknown>> {
    const signed = await this.sign({ jsonrpc: '2.0', id: this.#id++, method, ...(params ? { params } : {}) });
    const text = await this.server.handleRequest(signed.text);
    const verdict = await verifyWithSession(parseLossless(text), this.session, { inReplyTo: signed.nonce });
    if (!verdict.ok) throw new Error(`answer refused: ${verdict.reason}`);
    return MessageSigner.stripPqc(JSON.parse(text) as Record<string, unknown>) as Record<string, unknown>;
  }
}

describe('tool registration (seed: test_server)', () => {
  test('tools are registered, listed with their schema, and chainable', () => {
    const server = exampleServer();
    const list = server.getToolList();
    expect(list.map((t) => t.name)).toEqual(['greet', 'add', 'echo']);
    expect(list[0]).toMatchObject({
      name: 'greet',
      description: 'Greets someone',
      inputSchema: { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] },
    });
    expect(list[1]!.inputSchema).toMatchObject({ type: 'object', properties: { a: { type: 'number' }, b: { type: 'number' } }, required: ['a', 'b'] });
    expect(list[2]!.inputSchema).toMatchObject({ type: 'object', properties: { message: { type: 'string' } }, required: ['message'] });
  });

  test('a tool without a schema takes no arguments; an empty server lists nothing', () => {
    expect(new PQCMCPServer({ identity: SERVER }).getToolList()).toEqual([]);
    const server = new PQCMCPServer({ identity: SERVER }).tool('ping', { description: 'pong' }, () => 'pong');
    expect(server.getToolList()).toEqual([{ name: 'ping', description: 'pong', inputSchema: expect.objectContaining({ type: 'object' }) }]);
  });

  test('a JSON Schema is listed as given, even one zod cannot convert', () => {
    const schema = {
      type: 'object' as const,
      properties: { when: { $ref: '#/definitions/date' } },
      definitions: { date: { type: 'string', format: 'date' } },
    };
    const server = new PQCMCPServer({ identity: SERVER }).tool('schedule', { inputSchema: schema }, (args) => args);
    expect(server.getToolList()[0]!.inputSchema).toMatchObject(schema);
  });

  test('a duplicate name, a bad schema or a missing handler throws', () => {
    const server = exampleServer();
    expect(() => server.tool('greet', {}, () => 'again')).toThrow(/already registered/);
    expect(() => server.tool('bad', { inputSchema: { type: 'string' } as never }, () => 1)).toThrow(/inputSchema must be/);
    expect(() => server.tool('bad2', { inputSchema: z.string() as never }, () => 1)).toThrow(/zod object/);
    expect(() => server.tool('bad3', {}, undefined as never)).toThrow(/handler must be a function/);
    expect(() => server.tool('', {}, () => 1)).toThrow(/non-empty/);
  });

  test('options are validated at construction', () => {
    expect(() => new PQCMCPServer(undefined as never)).toThrow(TypeError);
    expect(() => new PQCMCPServer({} as never)).toThrow(/identity/);
    expect(() => new PQCMCPServer({ identity: SERVER, sessionTtlSec: -1 })).toThrow(/sessionTtlSec/);
    expect(() => new PQCMCPServer({ identity: SERVER, name: 7 as never })).toThrow(/name/);
    expect(() => new PQCMCPServer({ identity: SERVER, audit: 'yes' as never })).toThrow(/audit/);
  });
});

describe('handler return values become MCP content', () => {
  test.each<[string, unknown, unknown]>([
    ['a string → text', 'hi', { content: [{ type: 'text', text: 'hi' }] }],
    ['a number → JSON text', 5.5, { content: [{ type: 'text', text: '5.5' }] }],
    ['an object → JSON text', { a: [1, 'x'] }, { content: [{ type: 'text', text: '{"a":[1,"x"]}' }] }],
    ['null → JSON text', null, { content: [{ type: 'text', text: 'null' }] }],
    ['undefined → no content', undefined, { content: [] }],
    ['a CallToolResult → as is', { content: [{ type: 'text', text: 'x' }], isError: true }, { content: [{ type: 'text', text: 'x' }], isError: true }],
  ])('%s', (_name, value, expected) => {
    expect(toCallToolResult(value)).toEqual(expected);
  });
});

describe('handleHandshake and handleRequest in memory (seed: test_server)', () => {
  let server: PQCMCPServer;
  let client: MemoryClient;

  beforeAll(async () => {
    server = exampleServer()
      .tool('whoami', {}, (_args, context) => context.pqc?.peerDid)
      .tool('fail', {}, () => {
        throw new Error('boom');
      });
    client = new MemoryClient(server);
    await client.handshake();
  });

  test('handleHandshake answers a signed handshake response that pins the server', async () => {
    expect(client.session.peerDid).toBe(SERVER.did);
    expect(client.session.sessionId).toMatch(/^[0-9a-f]{32}$/);
    expect(server.getAuditLog().some((e) => e.operation === 'handshake' && e.peer_did === CLIENT.did)).toBe(true);
  });

  test('a refused handshake comes back as the §6 error (unsigned, with its reason)', async () => {
    const { request } = await PQCHandshake.initiate(OTHER);
    const forged = JSON.stringify({ ...JSON.parse(request), client_did: CLIENT.did });
    const answer = JSON.parse(await server.handleHandshake(forged)) as { error: { code: number; data: { pqc: string } } };
    expect(answer.error).toMatchObject({ code: -32010, data: { pqc: 'did_mismatch' } });
    expect(JSON.parse(await server.handleHandshake(request))).toMatchObject({ type: 'pqc_handshake_response', server_did: SERVER.did });
    expect(JSON.parse(await server.handleHandshake(request))).toMatchObject({ error: { data: { pqc: 'replay_detected' } } });
  });

  test('tools/list', async () => {
    const answer = await client.request('tools/list');
    const tools = (answer.result as { tools: { name: string }[] }).tools;
    expect(tools.map((t) => t.name)).toEqual(['greet', 'add', 'echo', 'whoami', 'fail']);
  });

  test('tools/call: the result is signed, bound to the request, and verified', async () => {
    expect(await client.request('tools/call', { name: 'add', arguments: { a: 2, b: 3 } })).toEqual({
      jsonrpc: '2.0',
      id: expect.any(Number),
      result: { content: [{ type: 'text', text: '5' }] },
    });
    expect(await client.request('tools/call', { name: 'greet', arguments: { name: 'Seed' } })).toMatchObject({
      result: { content: [{ type: 'text', text: 'Hello, Seed!' }] },
    });
    expect(await client.request('tools/call', { name: 'echo', arguments: { message: 'm' } })).toMatchObject({
      result: { content: [{ type: 'text', text: 'm' }] },
    });
  });

  test('the tool handler knows the authenticated caller', async () => {
    expect(await client.request('tools/call', { name: 'whoami', arguments: {} })).toMatchObject({
      result: { content: [{ type: 'text', text: CLIENT.did }] },
    });
  });

  test('an unknown tool, invalid arguments, a throwing handler: signed error results', async () => {
    expect(await client.request('tools/call', { name: 'nope', arguments: {} })).toMatchObject({
      result: { isError: true, content: [{ type: 'text', text: expect.stringMatching(/Tool nope not found/) }] },
    });
    expect(await client.request('tools/call', { name: 'add', arguments: { a: 'x' } })).toMatchObject({
      result: { isError: true, content: [{ text: expect.stringMatching(/Invalid arguments/) }] },
    });
    expect(await client.request('tools/call', { name: 'echo', arguments: {} })).toMatchObject({ result: { isError: true } });
    expect(await client.request('tools/call', { name: 'fail', arguments: {} })).toMatchObject({
      result: { isError: true, content: [{ text: 'boom' }] },
    });
  });

  test('an unknown method: a signed JSON-RPC error', async () => {
    expect(await client.request('prompts/list')).toMatchObject({ error: { code: -32601 } });
  });

  test('a notification is answered with nothing', async () => {
    const signed = await client.sign({ jsonrpc: '2.0', method: 'notifications/initialized' });
    expect(await server.handleRequest(signed.text)).toBe('');
  });

  test('unsigned, tampered and replayed requests come back as §6 errors, never reaching a tool', async () => {
    const unsigned = JSON.parse(await server.handleRequest(JSON.stringify({ jsonrpc: '2.0', id: 90, method: 'tools/list' })));
    expect(unsigned).toEqual({ jsonrpc: '2.0', id: 90, error: { code: -32010, message: 'PQC authentication failed: missing_envelope', data: { pqc: 'missing_envelope' } } });
    const signed = await client.sign({ jsonrpc: '2.0', id: 91, method: 'tools/call', params: { name: 'add', arguments: { a: 2, b: 3 } } });
    const tampered = JSON.parse(await server.handleRequest(signed.text.replace('"a":2', '"a":20')));
    expect(tampered).toMatchObject({ id: 91, error: { data: { pqc: 'invalid_signature' } } });
    expect(JSON.parse(await server.handleRequest(signed.text))).toMatchObject({ id: 91, result: { content: [{ text: '5' }] } });
    expect(JSON.parse(await server.handleRequest(signed.text))).toMatchObject({ id: 91, error: { data: { pqc: 'replay_detected' } } });
    const rejected = server.getAuditLog().filter((e) => e.operation === 'rejected').map((e) => e.reason);
    expect(rejected).toEqual(expect.arrayContaining(['missing_envelope', 'invalid_signature', 'replay_detected']));
  });

  test('a batch: each answer signed and bound to its own request', async () => {
    const a = await client.sign({ jsonrpc: '2.0', id: 201, method: 'tools/call', params: { name: 'add', arguments: { a: 1, b: 1 } } });
    const b = await client.sign({ jsonrpc: '2.0', id: 202, method: 'tools/call', params: { name: 'greet', arguments: { name: 'B' } } });
    const answers = parseLossless(await server.handleRequest(`[${a.text},${b.text}]`)) as JsonObject[];
    expect(answers).toHaveLength(2);
    for (const answer of answers) {
      const id = Number((answer.get('id') as JsonNumber).lexeme);
      const verdict = await verifyWithSession(answer, client.session, { inReplyTo: id === 201 ? a.nonce : b.nonce });
      expect(verdict.ok).toBe(true);
    }
  });

  test('the same store and audit serve memory and HTTP: a session opened in memory works over HTTP', async () => {
    const audit = new AuditLog();
    const shared = exampleServer({ audit });
    const memory = new MemoryClient(shared);
    await memory.handshake();
    const running = await shared.run();
    try {
      const signed = await memory.sign({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'add', arguments: { a: 20, b: 22 } } });
      // Over HTTP a tools/call needs an MCP session; the PQC layer still verifies first: a tampered one is refused.
      const refused = await fetch(running.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: signed.text.replace('"a":20', '"a":21') });
      expect(refused.status).toBe(401);
      expect(await refused.json()).toMatchObject({ error: { data: { pqc: 'invalid_signature' } } });
      expect(JSON.parse(await shared.handleRequest(signed.text))).toMatchObject({ result: { content: [{ text: '42' }] } });
      expect(shared.audit).toBe(audit);
      expect(audit.entries().map((e) => e.operation)).toEqual(expect.arrayContaining(['handshake', 'rejected', 'request', 'response']));
    } finally {
      await shared.close();
    }
  });
});
