/**
 * The conformance suite every server adapter runs over real HTTP, with the real MCP SDK server behind it:
 * the SDK client through `pqcFetch` (SSE and JSON), then docs/PROTOCOL.md §3–§6 request by request: each rejection of §6
 * with its status, reason, id and `WWW-Authenticate`, and after each one a valid request still answered.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  AgentIdentity,
  MessageSigner,
  PQCHandshake,
  PQC_ENVELOPE_HEADER,
  parseLossless,
  pqcFetch,
  verifyWithSession,
  type JsonValue,
  type PQCServerOptions,
  type PQCSession,
} from '@pqc-mcp/core';
import { seededIdentity } from './identities.js';
import { readVector, type ProtocolVectors } from './vectors.js';

/** A server started by an adapter's test for the suite. */
export interface ServerUnderTest {
  /** The MCP endpoint URL, e.g. `http://127.0.0.1:43210/mcp`. */
  url: string;
  /**
   * Every parsed body the application received (the suite checks none holds `_pqc`, and that rejected requests add
   * none). Left out by a server in another process that cannot report them (Bun, Deno, workerd): those checks are
   * skipped, everything on the wire is still checked.
   */
  seen?: unknown[];
  close(): Promise<void>;
}

/** What the suite asks the adapter's `start` for. */
export interface StartOptions {
  /** Answer POSTs with JSON (`enableJsonResponse`) instead of SSE. */
  json: boolean;
  /** The PQC options (identity included) to give the adapter. */
  pqc: PQCServerOptions;
}

export type StartServer = (options: StartOptions) => Promise<ServerUnderTest>;

const SERVER = seededIdentity(11);
const CLIENT = seededIdentity(12);
const OTHER = seededIdentity(13);

/** The server identity every suite server is started with (an out-of-process server loads it from its JWK). */
export const CONFORMANCE_SERVER_IDENTITY = SERVER;

/**
 * Every client identity the suite connects with, so that a server in another process, which cannot run the
 * `authorize` function of `StartOptions`, can be given the same decision as a list of DIDs.
 */
export function conformancePeers(): AgentIdentity[] {
  const vectors = readVector<ProtocolVectors>('protocol.json');
  const python = vectors.identities.find((i) => i.role === 'client' && i.algorithm === 'ML-DSA-65')!;
  return [CLIENT, OTHER, AgentIdentity.fromSeed(python.seed, { algorithm: 'ML-DSA-65' })];
}

const PROTOCOL_VERSION = '2025-06-18';

function initializeMessage(id: number): Record<string, unknown> {
  return {
    jsonrpc: '2.0',
    id,
    method: 'initialize',
    params: { protocolVersion: PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'conformance', version: '1.0.0' } },
  };
}

const MCP_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

/** The JSON-RPC messages of a response body (JSON or SSE), as lossless trees. */
async function messagesOf(response: Response): Promise<JsonValue[]> {
  const text = await response.text();
  const type = response.headers.get('content-type') ?? '';
  if (type.startsWith('text/event-stream')) {
    const out: JsonValue[] = [];
    for (const event of text.split(/\r?\n\r?\n/)) {
      const data = event
        .split(/\r?\n/)
        .filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(5).replace(/^ /, ''))
        .join('\n');
      if (data.trim() !== '') out.push(parseLossless(data));
    }
    return out;
  }
  if (text.trim() === '') return [];
  const tree = parseLossless(text);
  return Array.isArray(tree) ? tree : [tree];
}

/** A raw protocol client: handshake, sign, send, verify, so every byte can be controlled. */
class RawClient {
  session!: PQCSession;
  mcpSessionId: string | undefined;
  private readonly signer: MessageSigner;
  private nextId = 100;

  constructor(
    readonly url: string,
    readonly identity: AgentIdentity = CLIENT,
    readonly serverDid: string = SERVER.did,
  ) {
    this.signer = new MessageSigner(identity);
  }

  get handshakeUrl(): string {
    return new URL('pqc/handshake', this.url).href;
  }

  async handshake(profile: 1 | 2 = 2): Promise<PQCSession> {
    const { request, pending } = await PQCHandshake.initiate(this.identity, { profile });
    const response = await fetch(this.handshakeUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: request });
    const text = await response.text();
    if (response.status !== 200) throw new Error(`handshake answered ${response.status}: ${text}`);
    this.session = await PQCHandshake.complete(text, this.identity, pending, { serverDid: this.serverDid });
    return this.session;
  }

  id(): number {
    return this.nextId++;
  }

  async sign(message: object | string, options: { now?: number; profile?: 1 | 2; sessionId?: string } = {}) {
    return this.signer.signMessage(message, {
      sessionId: options.sessionId ?? this.session.sessionId,
      profile: options.profile ?? this.session.profile,
      now: options.now,
    });
  }

  post(body: string, headers: Record<string, string> = {}): Promise<Response> {
    const h: Record<string, string> = { ...MCP_HEADERS, ...headers };
    if (this.mcpSessionId) {
      h['mcp-session-id'] = this.mcpSessionId;
      h['mcp-protocol-version'] = PROTOCOL_VERSION;
    }
    return fetch(this.url, { method: 'POST', headers: h, body });
  }

  /** Verifies every message of a response against the pinned server; returns them without `_pqc`. */
  async verified(response: Response, inReplyTo: string | null): Promise<Record<string, unknown>[]> {
    const out: Record<string, unknown>[] = [];
    for (const message of await messagesOf(response)) {
      const verdict = await verifyWithSession(message, this.session, { inReplyTo });
      if (!verdict.ok) throw new Error(`server message refused: ${verdict.reason} (${verdict.detail})`);
      out.push(JSON.parse(JSON.stringify(Object.fromEntries(message as Map<string, unknown>), (_k, v) =>
        v instanceof Map ? Object.fromEntries(v) : typeof v === 'object' && v !== null && 'lexeme' in v ? Number((v as { lexeme: string }).lexeme) : v,
      )) as Record<string, unknown>);
    }
    return out;
  }

  /** initialize + notifications/initialized, signed; leaves the MCP session id set. */
  async initialize(): Promise<Record<string, unknown>> {
    this.mcpSessionId = undefined;
    const signed = await this.sign(initializeMessage(this.id()));
    const response = await this.post(signed.text);
    expect(response.status).toBe(200);
    this.mcpSessionId = response.headers.get('mcp-session-id') ?? undefined;
    const [result] = await this.verified(response, signed.nonce);
    const note = await this.sign({ jsonrpc: '2.0', method: 'notifications/initialized' });
    const ack = await this.post(note.text);
    expect(ack.status).toBe(202);
    expect(await ack.text()).toBe('');
    return result!;
  }

  /** A signed tools/call, verified; returns the result message. */
  async call(name: string, args: Record<string, unknown>): Promise<Record<string, unknown>> {
    const signed = await this.sign({ jsonrpc: '2.0', id: this.id(), method: 'tools/call', params: { name, arguments: args } });
    const response = await this.post(signed.text);
    expect(response.status).toBe(200);
    const messages = await this.verified(response, signed.nonce);
    return messages.find((m) => 'result' in m || 'error' in m)!;
  }

  /** A bodyless request with its PQC-Envelope (docs/PROTOCOL.md §4). */
  async bodyless(method: 'GET' | 'DELETE', envelope?: string, signal?: AbortSignal): Promise<Response> {
    const url = new URL(this.url);
    const headers: Record<string, string> = { accept: 'text/event-stream' };
    if (this.mcpSessionId) {
      headers['mcp-session-id'] = this.mcpSessionId;
      headers['mcp-protocol-version'] = PROTOCOL_VERSION;
    }
    if (envelope === undefined) {
      const signed = await this.sign({ http: { method, path: url.pathname + url.search, mcp_session_id: this.mcpSessionId ?? null } });
      envelope = JSON.stringify(signed.envelope);
    }
    if (envelope !== '') headers[PQC_ENVELOPE_HEADER] = envelope;
    return fetch(url, { method, headers, signal });
  }
}

/** Expects a §6 rejection: status, reason, id, unsigned, and WWW-Authenticate on 401. */
async function expectRejection(response: Response, status: number, reason: string, id: string | number | null, client: RawClient): Promise<void> {
  const text = await response.text();
  expect({ status: response.status, body: text }).toMatchObject({ status });
  const body = JSON.parse(text) as { id: unknown; error: { code: number; data: { pqc: string } } };
  expect(body.error.data.pqc).toBe(reason);
  expect(body.error.code).toBe(-32010);
  expect(body.id).toBe(id);
  expect(text).not.toContain('_pqc');
  if (status === 401) expect(response.headers.get('www-authenticate')).toBe(`PQC handshake="${client.handshakeUrl}"`);
}

/** Replaces one envelope member of a signed message's text after signing. */
function tamperEnvelope(text: string, member: string, value: unknown): string {
  const message = JSON.parse(text) as { _pqc: Record<string, unknown> };
  message._pqc[member] = value;
  return JSON.stringify(message);
}

/** Runs the suite for one adapter. */
export function runConformanceSuite(name: string, start: StartServer): void {
  describe(`${name}: PQC conformance over HTTP`, () => {
    describe.each([
      ['SSE', false],
      ['JSON', true],
    ])('the MCP SDK client through pqcFetch (%s responses)', (_mode, json) => {
      let server: ServerUnderTest;
      beforeAll(async () => {
        server = await start({ json, pqc: { identity: SERVER } });
      });
      afterAll(() => server.close());

      test('initialize, tools/list, tools/call, close', async () => {
        const fetch = pqcFetch({ identity: CLIENT, serverDid: SERVER.did });
        const client = new Client({ name: 'conformance', version: '1.0.0' });
        await client.connect(new StreamableHTTPClientTransport(new URL(server.url), { fetch }));
        const { tools } = await client.listTools();
        expect(tools.map((t) => t.name).sort()).toEqual(['add', 'echo']);
        expect(await client.callTool({ name: 'echo', arguments: { text: 'héllo 😀' } })).toMatchObject({
          content: [{ type: 'text', text: 'héllo 😀' }],
        });
        expect(await client.callTool({ name: 'add', arguments: { a: 2, b: 40 } })).toMatchObject({ content: [{ type: 'text', text: '42' }] });
        await client.close();
        const audit = fetch.audit.entries();
        expect(audit.filter((e) => e.operation === 'rejected')).toEqual([]);
        expect(audit.filter((e) => e.operation === 'response').length).toBeGreaterThanOrEqual(3);
        if (server.seen) expect(JSON.stringify(server.seen)).not.toContain('_pqc');
      });
    });

    describe('request by request', () => {
      let server: ServerUnderTest;
      let client: RawClient;
      const vectors = readVector<ProtocolVectors>('protocol.json');

      beforeAll(async () => {
        server = await start({ json: false, pqc: { identity: SERVER, maxBodyBytes: 64 * 1024, authorize: (peer) => peer.did !== OTHER.did } });
        client = new RawClient(server.url);
        await client.handshake();
      });
      afterAll(() => server.close());

      /** After a rejection the server still answers a valid request. */
      async function stillServes(): Promise<void> {
        const seenBefore = server.seen?.length ?? 0;
        const result = await client.initialize();
        expect(result).toMatchObject({ result: { serverInfo: expect.any(Object) } });
        if (server.seen) {
          expect(server.seen.length).toBeGreaterThan(seenBefore);
          expect(JSON.stringify(server.seen)).not.toContain('_pqc');
        }
      }

      /** The app saw nothing of a rejected request. */
      async function rejected(send: () => Promise<Response>, status: number, reason: string, id: string | number | null) {
        const seenBefore = server.seen?.length ?? 0;
        await expectRejection(await send(), status, reason, id, client);
        if (server.seen) expect(server.seen.length).toBe(seenBefore);
        await stillServes();
      }

      test('GET pqc/handshake tells the server identity', async () => {
        const response = await fetch(client.handshakeUrl);
        expect(response.status).toBe(200);
        expect(await response.json()).toMatchObject({ did: SERVER.did, algorithm: SERVER.algorithm, public_key: SERVER.publicKeyHex, versions: [2] });
      });

      test('initialize, notification (202), tools/call: every message verified with in_reply_to', async () => {
        await client.initialize();
        expect(await client.call('add', { a: 1, b: 2 })).toMatchObject({ result: { content: [{ type: 'text', text: '3' }] } });
      });

      test('a batch: each message signed and bound to its request', async () => {
        await client.initialize();
        const a = await client.sign({ jsonrpc: '2.0', id: client.id(), method: 'tools/list' });
        const b = await client.sign({ jsonrpc: '2.0', id: client.id(), method: 'tools/call', params: { name: 'echo', arguments: { text: 'x' } } });
        const response = await client.post(`[${a.text},${b.text}]`);
        expect(response.status).toBe(200);
        const messages = await messagesOf(response);
        expect(messages.length).toBe(2);
        for (const message of messages) {
          const id = (message as Map<string, JsonValue>).get('id');
          const expected = String((id as { lexeme?: string }).lexeme) === String(a.message.id) ? a.nonce : b.nonce;
          const verdict = await verifyWithSession(message, client.session, { inReplyTo: expected });
          expect(verdict).toMatchObject({ ok: true });
        }
      });

      test('GET stream and DELETE with PQC-Envelope', async () => {
        await client.initialize();
        const abort = new AbortController();
        const stream = await client.bodyless('GET', undefined, abort.signal);
        expect(stream.status).toBe(200);
        expect(stream.headers.get('content-type')).toContain('text/event-stream');
        abort.abort();
        await stream.body?.cancel().catch(() => {});
        await expectRejection(await client.bodyless('GET', ''), 401, 'missing_envelope', null, client);
        const replayed = await client.sign({ http: { method: 'DELETE', path: new URL(client.url).pathname, mcp_session_id: client.mcpSessionId ?? null } });
        const del = await client.bodyless('DELETE', JSON.stringify(replayed.envelope));
        expect(del.status).toBe(200);
        await del.text();
        await expectRejection(await client.bodyless('DELETE', JSON.stringify(replayed.envelope)), 401, 'replay_detected', null, client);
        // An envelope for another path does not open this one.
        const wrongPath = await client.sign({ http: { method: 'GET', path: '/elsewhere', mcp_session_id: client.mcpSessionId ?? null } });
        await expectRejection(await client.bodyless('GET', JSON.stringify(wrongPath.envelope)), 401, 'invalid_signature', null, client);
      });

      test('Python-style floats signed by the vectors client key verify from the raw body', async () => {
        const seed = vectors.identities.find((i) => i.role === 'client' && i.algorithm === 'ML-DSA-65')!.seed;
        const python = new RawClient(server.url, AgentIdentity.fromSeed(seed, { algorithm: 'ML-DSA-65' }));
        await python.handshake();
        await python.initialize();
        const text = '{"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "add", "arguments": {"a": 7.0, "b": 1e-07}}}';
        const signed = await python.sign(text);
        expect(signed.text).toContain('7.0');
        const response = await python.post(signed.text);
        expect(response.status).toBe(200);
        const messages = await python.verified(response, signed.nonce);
        expect(messages.find((m) => 'result' in m)).toMatchObject({ result: { content: [{ type: 'text', text: '7.0000001' }] } });
      });

      test('variants of the endpoint path are protected too, other methods refused', async () => {
        const seenBefore = server.seen?.length ?? 0;
        const base = new URL(server.url);
        const variants = [base.pathname.toUpperCase(), `${base.pathname}/`, base.pathname.replace(/[a-z]$/, (c) => `%${c.charCodeAt(0).toString(16)}`)];
        for (const path of variants) {
          const response = await fetch(new URL(path, base), { method: 'POST', headers: MCP_HEADERS, body: JSON.stringify(initializeMessage(40)) });
          const text = await response.text();
          // Refused by the PQC layer, or not routed at all by the framework: never served unverified.
          expect({ path, status: response.status }).toEqual({ path, status: response.status === 404 ? 404 : 401 });
          if (response.status === 401) expect(JSON.parse(text)).toMatchObject({ error: { data: { pqc: 'missing_envelope' } } });
        }
        const put = await fetch(server.url, { method: 'PUT', headers: MCP_HEADERS, body: JSON.stringify(initializeMessage(40)) });
        expect([404, 405]).toContain(put.status);
        await put.text();
        if (server.seen) expect(server.seen.length).toBe(seenBefore);
        await stillServes();
      });

      test('unsigned → 401 missing_envelope', async () => {
        await rejected(() => client.post(JSON.stringify(initializeMessage(41))), 401, 'missing_envelope', 41);
      });

      test('malformed JSON → 400 malformed_json', async () => {
        await rejected(() => client.post('{"jsonrpc": "2.0", "id": 1,'), 400, 'malformed_json', null);
      });

      test('duplicate keys → 400 malformed_json', async () => {
        const signed = await client.sign(initializeMessage(42));
        await rejected(() => client.post(signed.text.replace('{"jsonrpc":"2.0",', '{"jsonrpc":"2.0","id":1,')), 400, 'malformed_json', null);
      });

      test('oversized body → 413 body_too_large', async () => {
        const big = await client.sign({ jsonrpc: '2.0', id: 43, method: 'tools/call', params: { name: 'echo', arguments: { text: 'x'.repeat(100 * 1024) } } });
        await rejected(() => client.post(big.text), 413, 'body_too_large', null);
      });

      test('bad hex → 400 invalid_envelope', async () => {
        const signed = await client.sign(initializeMessage(44));
        await rejected(() => client.post(tamperEnvelope(signed.text, 'signature', signed.envelope.signature.toUpperCase())), 400, 'invalid_envelope', 44);
      });

      test('unknown algorithm → 400 unsupported_algorithm', async () => {
        const signed = await client.sign(initializeMessage(45));
        await rejected(() => client.post(tamperEnvelope(signed.text, 'algorithm', 'ML-DSA-99')), 400, 'unsupported_algorithm', 45);
      });

      test('stale timestamp → 401 stale_timestamp', async () => {
        const signed = await client.sign(initializeMessage(46), { now: Date.now() - 10 * 60_000 });
        await rejected(() => client.post(signed.text), 401, 'stale_timestamp', 46);
      });

      test('unknown session → 401 unknown_session', async () => {
        const signed = await client.sign(initializeMessage(47), { sessionId: 'ab'.repeat(16) });
        await rejected(() => client.post(signed.text), 401, 'unknown_session', 47);
      });

      test('another key claiming the peer DID → 401 invalid_signature / peer_mismatch', async () => {
        const forger = new MessageSigner(OTHER);
        const forged = await forger.signMessage(initializeMessage(48), { sessionId: client.session.sessionId });
        await rejected(() => client.post(tamperEnvelope(forged.text, 'signer_did', CLIENT.did)), 401, 'invalid_signature', 48);
        const withKey = await forger.signMessage(initializeMessage(49), { sessionId: client.session.sessionId, includePublicKey: true });
        await rejected(() => client.post(tamperEnvelope(withKey.text, 'signer_did', CLIENT.did)), 401, 'peer_mismatch', 49);
      });

      test('tampered body → 401 invalid_signature', async () => {
        const signed = await client.sign(initializeMessage(50));
        await rejected(() => client.post(signed.text.replace('"conformance"', '"c0nformance"')), 401, 'invalid_signature', 50);
      });

      test('replayed nonce → 401 replay_detected', async () => {
        await client.initialize();
        const signed = await client.sign({ jsonrpc: '2.0', id: 51, method: 'tools/list' });
        expect((await client.post(signed.text)).status).toBe(200);
        await rejected(() => client.post(signed.text), 401, 'replay_detected', 51);
      });

      test('v1 while disabled → 400 unsupported_version', async () => {
        const signed = await client.sign(initializeMessage(52), { profile: 1 });
        await rejected(() => client.post(signed.text), 400, 'unsupported_version', 52);
      });

      test('unauthorized DID → 403 peer_not_authorized at the handshake', async () => {
        const outsider = new RawClient(server.url, OTHER);
        await expect(outsider.handshake()).rejects.toThrow(/403.*peer_not_authorized/);
        await stillServes();
      });

      test('a handshake from a DID that does not match its key → 401 did_mismatch', async () => {
        const { request } = await PQCHandshake.initiate(OTHER);
        const forged = JSON.stringify({ ...JSON.parse(request), client_did: CLIENT.did });
        const response = await fetch(client.handshakeUrl, { method: 'POST', body: forged });
        await expectRejection(response, 401, 'did_mismatch', null, client);
        await stillServes();
      });

      test('a replayed handshake → 401 replay_detected', async () => {
        const { request } = await PQCHandshake.initiate(CLIENT);
        expect((await fetch(client.handshakeUrl, { method: 'POST', body: request })).status).toBe(200);
        await expectRejection(await fetch(client.handshakeUrl, { method: 'POST', body: request }), 401, 'replay_detected', null, client);
        await stillServes();
      });
    });

    describe('session expiry', () => {
      let server: ServerUnderTest;
      beforeAll(async () => {
        server = await start({ json: true, pqc: { identity: SERVER, sessionTtlSec: 1 } });
      });
      afterAll(() => server.close());

      test('an expired session → 401 session_expired; a new handshake works', async () => {
        const client = new RawClient(server.url);
        await client.handshake();
        await client.initialize();
        await new Promise((resolve) => setTimeout(resolve, 1100));
        const signed = await client.sign({ jsonrpc: '2.0', id: 60, method: 'tools/list' });
        await expectRejection(await client.post(signed.text), 401, 'session_expired', 60, client);
        await client.handshake();
        await client.initialize();
        expect(await client.call('echo', { text: 'again' })).toMatchObject({ result: { content: [{ text: 'again' }] } });
      });
    });
  });
}
