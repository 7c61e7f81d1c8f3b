/**
 * The conformance suite every server adapter runs over real HTTP, with a real MCP SDK server behind it: the SDK
 * client through `pqcFetch` (SSE and JSON), then docs/PROTOCOL.md §3-§6 request by request: each rejection of §6 with
 * its status, reason, id, signature (only session rejections of recorded sessions are signed) and
 * `WWW-Authenticate`, and after each one a valid request still answered and the application untouched.
 */
import { AgentIdentity, MessageSigner, PQCHandshake, pqcFetch, type PQCRequestContext, type PQCServerOptions } from '@pqc-mcp/core';
import { seededIdentity } from './identities.js';
import { MCP_HEADERS, RawClient, initializeMessage, messageTexts } from './raw-client.js';
import { connectSdkClient } from './sdk-clients.js';
import { EXAMPLE_TOOLS, addArgs, echoArgs, type SuiteTools } from './tools.js';
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
  /** The verified caller handed to the application with each body of `seen` (where the server can report it). */
  contexts?: (PQCRequestContext | undefined)[];
  close(): Promise<void>;
}

/** The MCP SDK line of the server behind the adapter: v2 (stateless, both eras) or 1.x (stateful, MCP sessions). */
export type ServerSdk = 'v2' | '1.x';

/** What the suite asks the adapter's `start` for. */
export interface StartOptions {
  /**
   * Answer with JSON rather than SSE where the server can: 1.x `enableJsonResponse`, v2 `responseMode: 'json'` (the
   * v2 SDK streams its 2025-11-25 answers whatever it is told).
   */
  json: boolean;
  /** The PQC options (identity included) to give the adapter. */
  pqc: PQCServerOptions;
  /** The MCP server behind the adapter (default `'v2'`). */
  sdk?: ServerSdk;
}

/** What a suite runs against, and what to expect of it. */
export interface SuiteOptions {
  /**
   * The server SDKs an adapter can start (default both). `'1.x'` also runs the tests of stateful MCP sessions, which
   * need a server that issues `Mcp-Session-Id` (a 1.x app, or a stateful server behind a gateway).
   */
  sdks?: readonly ServerSdk[];
  /** Whether the MCP app learns the verified caller as `authInfo` (default true; not behind a gateway's HTTP hop). */
  callerReachesTools?: boolean;
  /** The tools of the MCP server behind the server under test (default: the examples' `echo`, `add`, `whoami`). */
  tools?: SuiteTools;
  /**
   * The session lifetime of the expiry test, seconds (default 1): the test opens a session and initializes in it
   * before it lapses, then waits it out. A server whose first requests are slow (a fresh workerd isolate, signing with
   * noble, whose clock stands still while it computes) is given longer for the same checks.
   */
  expiryTtlSec?: number;
}

export type StartServer = (options: StartOptions) => Promise<ServerUnderTest>;

const SERVER = seededIdentity(11);
const CLIENT = seededIdentity(12);
const OTHER = seededIdentity(13);
/** Another authorized client that tries to use the MCP session of CLIENT. */
const INTRUDER = seededIdentity(14);

/** The server identity every suite server is started with (an out-of-process server loads it from its JWK). */
export const CONFORMANCE_SERVER_IDENTITY = SERVER;

/**
 * Every client identity the suite connects with, so that a server in another process, which cannot run the
 * `authorize` function of `StartOptions`, can be given the same decision as a list of DIDs.
 */
export function conformancePeers(): AgentIdentity[] {
  const vectors = readVector<ProtocolVectors>('protocol.json');
  const python = vectors.identities.find((i) => i.role === 'client' && i.algorithm === 'ML-DSA-65')!;
  return [CLIENT, OTHER, INTRUDER, AgentIdentity.fromSeed(python.seed, { algorithm: 'ML-DSA-65' })];
}

/** Expects a rejection of §6: status, reason, id, signed or not, and WWW-Authenticate on 401. */
async function expectRejection(
  response: Response,
  status: number,
  reason: string,
  id: string | number | null,
  client: RawClient,
  signed = false,
): Promise<string> {
  const text = await response.text();
  expect({ status: response.status, body: text }).toMatchObject({ status });
  const body = JSON.parse(text) as { id: unknown; error: { code: number; data: { pqc: string } } };
  expect(body.error.data.pqc).toBe(reason);
  expect(body.error.code).toBe(-32010);
  expect(body.id).toBe(id);
  expect({ reason, signed: text.includes('"_pqc"') }).toEqual({ reason, signed });
  if (status === 401) expect(response.headers.get('www-authenticate')).toBe(`PQC handshake="${client.handshakeUrl}"`);
  return text;
}

/** Replaces one envelope member of a signed message's text after signing. */
function tamperEnvelope(text: string, member: string, value: unknown): string {
  const message = JSON.parse(text) as { _pqc: Record<string, unknown> };
  message._pqc[member] = value;
  return JSON.stringify(message);
}

/** Runs the suite for one adapter. */
export function runConformanceSuite(name: string, start: StartServer, options: SuiteOptions = {}): void {
  const tools = options.tools ?? EXAMPLE_TOOLS;
  const echo = (text: string) => ({ name: tools.echo.name, arguments: echoArgs(tools, text) });
  const echoed = (text: string) => ({ result: { content: [{ text: tools.echo.result(text) }] } });
  describe(`${name}: PQC conformance over HTTP`, () => {
    const sdks = options.sdks ?? ['v2', '1.x'];
    // The matrix of clients and servers: the 1.x client, the v2 client in each negotiation mode, against 1.x and v2
    // servers, with streamed and JSON answers. Pinned 2026-07-28 needs a v2 server (1.x speaks up to 2025-11-25).
    const clients = ['1.x client', 'v2 client, legacy', 'v2 client, auto', 'v2 client, pinned 2026-07-28'] as const;
    const cases = sdks.flatMap((sdk) =>
      [false, true].flatMap((json) => clients.filter((c) => sdk === 'v2' || !c.includes('pinned')).map((client) => [sdk, json ? 'JSON' : 'SSE', client, json] as const)),
    );
    describe.each(cases)('the MCP SDK clients through pqcFetch: %s server, %s answers, %s', (sdk, _answers, clientKind, json) => {
      let server: ServerUnderTest;
      beforeAll(async () => {
        server = await start({ json, sdk, pqc: { identity: SERVER } });
      });
      afterAll(() => server.close());

      test('connect, tools/list, tools/call, close: every answer verified, nothing refused', async () => {
        const fetch = pqcFetch({ identity: CLIENT, serverDid: SERVER.did });
        const sdkClient = await connectSdkClient(clientKind, server.url, fetch);
        const names = (await sdkClient.listTools()).sort();
        if (tools.exact) expect(names).toEqual([...tools.listed].sort());
        else expect(names).toEqual(expect.arrayContaining([...tools.listed]));
        expect(await sdkClient.callTool(tools.echo.name, echoArgs(tools, 'héllo 😀'))).toMatchObject({
          content: [{ type: 'text', text: tools.echo.result('héllo 😀') }],
        });
        expect(await sdkClient.callTool(tools.add.name, addArgs(tools, 2, 40))).toMatchObject({
          content: [{ type: 'text', text: tools.add.result(2, 40) }],
        });
        if (tools.whoami !== undefined) {
          // §9: the application learns who called (the SDK's authInfo), and no one else.
          const caller = options.callerReachesTools === false ? 'anonymous' : CLIENT.did;
          expect(await sdkClient.callTool(tools.whoami, {})).toMatchObject({ content: [{ type: 'text', text: caller }] });
        }
        await sdkClient.close();
        await fetch.endSession();
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
        server = await start({ json: false, pqc: { identity: SERVER, maxBodyBytes: 64 * 1024, maxBatch: 4, authorize: (peer) => peer.did !== OTHER.did } });
        client = new RawClient(server.url, CLIENT, SERVER.did);
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

      /** The app saw nothing of a rejected request, and the server still serves. */
      async function rejected(send: () => Promise<Response>, status: number, reason: string, id: string | number | null, signed = false) {
        const seenBefore = server.seen?.length ?? 0;
        await expectRejection(await send(), status, reason, id, client, signed);
        if (server.seen) expect(server.seen.length).toBe(seenBefore);
        await stillServes();
      }

      test('GET pqc/handshake tells the server identity', async () => {
        const response = await fetch(client.handshakeUrl);
        expect(response.status).toBe(200);
        expect(await response.json()).toEqual({ did: SERVER.did, algorithm: SERVER.algorithm, public_key: SERVER.publicKeyHex, versions: [2] });
      });

      test('initialize, notification (202), tools/call: every message verified, bound to its request, no event ids', async () => {
        await client.initialize();
        expect(await client.call(tools.add.name, addArgs(tools, 1, 2))).toMatchObject({ result: { content: [{ type: 'text', text: tools.add.result(1, 2) }] } });
      });

      test('a batch: each message signed and bound to its request', async () => {
        await client.initialize();
        const a = await client.sign({ jsonrpc: '2.0', id: client.id(), method: 'tools/list' });
        const b = await client.sign({ jsonrpc: '2.0', id: client.id(), method: 'tools/call', params: echo('x') });
        const response = await client.post(`[${a.text},${b.text}]`);
        expect(response.status).toBe(200);
        const texts = await messageTexts(response);
        expect(texts.length).toBe(2);
        for (const text of texts) {
          const result = await MessageSigner.verifyMessage(text, { peer: client.session.peer });
          expect(result).toMatchObject({ valid: true, sessionId: client.session.sessionId });
          const id = (JSON.parse(text) as { id: number }).id;
          expect(result.inReplyTo).toBe(id === (a.message.id as number) ? a.nonce : b.nonce);
        }
      });

      test('Python-style floats signed by the vectors client key verify from the raw body', async () => {
        const seed = vectors.identities.find((i) => i.role === 'client' && i.algorithm === 'ML-DSA-65')!.seed;
        const python = new RawClient(server.url, AgentIdentity.fromSeed(seed, { algorithm: 'ML-DSA-65' }), SERVER.did);
        await python.handshake();
        await python.initialize();
        const { name: add, a, b } = tools.add;
        const text = `{"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "${add}", "arguments": {"${a}": 7.0, "${b}": 1e-07}}}`;
        const signed = await python.sign(text);
        expect(signed.text).toContain('7.0');
        const response = await python.post(signed.text);
        expect(response.status).toBe(200);
        const messages = await python.verified(response, signed.nonce);
        expect(messages.find((m) => 'result' in m)).toMatchObject({ result: { content: [{ type: 'text', text: tools.add.result(7, 1e-7) }] } });
      });

      test('variants of the endpoint path are protected too, other methods refused, OPTIONS answered here', async () => {
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
        // Not even a preflight reaches the app unverified: CORS middleware, if any, answers it before the PQC layer.
        const options = await fetch(server.url, { method: 'OPTIONS' });
        expect([204, 404]).toContain(options.status);
        await options.text();
        if (server.seen) expect(server.seen.length).toBe(seenBefore);
        await stillServes();
      });

      test('no PQC-Session header → 401 missing_envelope, before the body is read', async () => {
        const signed = await client.sign(initializeMessage(41));
        await rejected(() => client.post(signed.text, { [`PQC-Session`]: undefined }), 401, 'missing_envelope', null);
      });

      test('a PQC-Session of no recorded session → 401 unknown_session, unsigned', async () => {
        const signed = await client.sign(initializeMessage(47), { sessionId: 'ab'.repeat(16) });
        await rejected(() => client.post(signed.text, { 'PQC-Session': 'ab'.repeat(16) }), 401, 'unknown_session', null);
      });

      test('messages naming another session than the header → 400 invalid_envelope', async () => {
        const other = new RawClient(server.url, CLIENT, SERVER.did);
        await other.handshake();
        const signed = await client.sign(initializeMessage(48));
        await rejected(() => client.post(signed.text, { 'PQC-Session': other.session.sessionId }), 400, 'invalid_envelope', 48);
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

      test('oversized body → 413 body_too_large, and the client reads the answer', async () => {
        const big = await client.sign({ jsonrpc: '2.0', id: 43, method: 'tools/call', params: echo('x'.repeat(100 * 1024)) });
        await rejected(() => client.post(big.text), 413, 'body_too_large', null);
      });

      test('a batch over the limit → 400 invalid_envelope', async () => {
        const batch = await Promise.all([1, 2, 3, 4, 5].map(async (i) => (await client.sign({ jsonrpc: '2.0', id: 300 + i, method: 'tools/list' })).text));
        await rejected(() => client.post(`[${batch.join(',')}]`), 400, 'invalid_envelope', null);
      });

      test('no http in the envelope → 400 invalid_envelope; another target → 401 target_mismatch', async () => {
        const bare = await new MessageSigner(CLIENT).signMessage(initializeMessage(53), { sessionId: client.session.sessionId });
        await rejected(() => client.post(bare.text), 400, 'invalid_envelope', 53);
        const elsewhere = await client.sign(initializeMessage(54), { path: `${client.path}?x=1` });
        await rejected(() => client.post(elsewhere.text), 401, 'target_mismatch', 54);
        const query = await client.sign(initializeMessage(55));
        await rejected(() => client.post(query.text, {}, `${client.url}?injected=1`), 401, 'target_mismatch', 55);
      });

      test('Last-Event-ID → 400 invalid_envelope (no stream resumption)', async () => {
        const signed = await client.sign(initializeMessage(56));
        await rejected(() => client.post(signed.text, { 'Last-Event-ID': '0' }), 400, 'invalid_envelope', null);
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

      test('another key claiming the peer DID → 401 invalid_signature / peer_mismatch', async () => {
        const forger = new MessageSigner(OTHER);
        const http = { method: 'POST', path: client.path, mcpSessionId: null };
        const forged = await forger.signMessage(initializeMessage(48), { sessionId: client.session.sessionId, http });
        await rejected(() => client.post(tamperEnvelope(forged.text, 'signer_did', CLIENT.did)), 401, 'invalid_signature', 48);
        const withKey = await forger.signMessage(initializeMessage(49), { sessionId: client.session.sessionId, includePublicKey: true, http });
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

      test('v1 while disabled: a v1 message → 401 missing_envelope; a v1 handshake → 400 unsupported_version, said why', async () => {
        const signed = await new MessageSigner(CLIENT).signMessage(initializeMessage(52), { profile: 1, sessionId: client.session.sessionId });
        await rejected(() => client.post(signed.text, { 'PQC-Session': undefined }), 401, 'missing_envelope', null);
        const { request } = await PQCHandshake.initiate(CLIENT, { profile: 1 });
        for (const path of ['handshake', 'pqc/handshake']) {
          const response = await fetch(new URL(path, client.url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: request });
          const text = await expectRejection(response, 400, 'unsupported_version', null, client);
          expect(text).toMatch(/v1.*disabled.*profiles/);
        }
      });

      test('unauthorized DID → 403 peer_not_authorized at the handshake', async () => {
        const outsider = new RawClient(server.url, OTHER, SERVER.did);
        await expect(outsider.handshake()).rejects.toThrow(/403.*peer_not_authorized/);
        await stillServes();
      });

      test('a handshake from a DID that does not match its key → 401 did_mismatch; for another server → 401 peer_mismatch', async () => {
        const { request } = await PQCHandshake.initiate(OTHER, { serverDid: SERVER.did });
        const forged = JSON.stringify({ ...JSON.parse(request), client_did: CLIENT.did });
        await expectRejection(await fetch(client.handshakeUrl, { method: 'POST', body: forged }), 401, 'did_mismatch', null, client);
        const meant = await PQCHandshake.initiate(CLIENT, { serverDid: OTHER.did });
        await expectRejection(await fetch(client.handshakeUrl, { method: 'POST', body: meant.request }), 401, 'peer_mismatch', null, client);
        await stillServes();
      });

      test('a replayed handshake → 401 replay_detected', async () => {
        const { request } = await PQCHandshake.initiate(CLIENT, { serverDid: SERVER.did });
        expect((await fetch(client.handshakeUrl, { method: 'POST', body: request })).status).toBe(200);
        await expectRejection(await fetch(client.handshakeUrl, { method: 'POST', body: request }), 401, 'replay_detected', null, client);
        await stillServes();
      });

      test('a session ended by its client (DELETE pqc/handshake) → 204; its next request a signed 401 unknown_session', async () => {
        const ending = new RawClient(server.url, CLIENT, SERVER.did);
        await ending.handshake();
        await ending.initialize();
        const end = await ending.endSession();
        expect(end.status).toBe(204);
        const signed = await ending.sign({ jsonrpc: '2.0', id: 57, method: 'tools/list' });
        const text = await expectRejection(await ending.post(signed.text), 401, 'unknown_session', 57, client, true);
        const result = await MessageSigner.verifyMessage(text, { peer: ending.session.peer });
        expect(result).toMatchObject({ valid: true, sessionId: ending.session.sessionId, inReplyTo: signed.nonce });
        // Not twice: the same request again is a replay, answered unsigned.
        await expectRejection(await ending.post(signed.text), 401, 'replay_detected', 57, client);
      });

    });

    if (sdks.includes('1.x')) {
      describe('stateful MCP sessions (a 1.x server)', () => {
        let server: ServerUnderTest;
        let client: RawClient;
        beforeAll(async () => {
          server = await start({ json: false, sdk: '1.x', pqc: { identity: SERVER } });
          client = new RawClient(server.url, CLIENT, SERVER.did);
          await client.handshake();
        });
        afterAll(() => server.close());

        test('GET stream and DELETE of the MCP session with PQC-Envelope; no body, no resumption', async () => {
          await client.initialize();
          const abort = new AbortController();
          const stream = await client.bodyless('GET', undefined, abort.signal);
          expect(stream.status).toBe(200);
          expect(stream.headers.get('content-type')).toContain('text/event-stream');
          abort.abort();
          await stream.body?.cancel().catch(() => {});
          await expectRejection(await client.bodyless('GET', ''), 401, 'missing_envelope', null, client);
          await expectRejection(await client.bodyless('GET', undefined, undefined, client.url, { 'last-event-id': '1' }), 400, 'invalid_envelope', null, client);
          const envelope = await client.envelope('DELETE');
          const del = await client.bodyless('DELETE', envelope);
          expect(del.status).toBe(200);
          await del.text();
          await expectRejection(await client.bodyless('DELETE', envelope), 401, 'replay_detected', null, client);
          // An envelope for another path does not open this one.
          const wrongPath = await client.envelope('GET', { path: '/elsewhere' });
          await expectRejection(await client.bodyless('GET', wrongPath), 401, 'invalid_signature', null, client);
        });

        test('the app answers carry the MCP session they belong to (mcp_session_id), and it belongs to this client', async () => {
          await client.initialize();
          expect(client.mcpSessionId).toEqual(expect.any(String));
          const intruder = new RawClient(server.url, INTRUDER, SERVER.did);
          await intruder.handshake();
          intruder.mcpSessionId = client.mcpSessionId;
          const signed = await intruder.sign({ jsonrpc: '2.0', id: 58, method: 'tools/list' });
          await expectRejection(await intruder.post(signed.text), 401, 'peer_mismatch', 58, client);
          await expectRejection(await intruder.bodyless('DELETE'), 401, 'peer_mismatch', null, client);
          expect(await client.call(tools.echo.name, echoArgs(tools, 'still mine'))).toMatchObject(echoed('still mine'));
        });
      });
    }

    describe('session expiry', () => {
      const ttlSec = options.expiryTtlSec ?? 1;
      let server: ServerUnderTest;
      beforeAll(async () => {
        server = await start({ json: true, pqc: { identity: SERVER, sessionTtlSec: ttlSec } });
      });
      afterAll(() => server.close());

      test('an expired session → a signed 401 session_expired; a new handshake works', async () => {
        const client = new RawClient(server.url, CLIENT, SERVER.did);
        await client.handshake();
        await client.initialize();
        await new Promise((resolve) => setTimeout(resolve, ttlSec * 1000 + 100));
        const signed = await client.sign({ jsonrpc: '2.0', id: 60, method: 'tools/list' });
        const text = await expectRejection(await client.post(signed.text), 401, 'session_expired', 60, client, true);
        expect(await MessageSigner.verifyMessage(text, { peer: client.session.peer })).toMatchObject({ valid: true, inReplyTo: signed.nonce });
        await client.handshake();
        await client.initialize();
        expect(await client.call(tools.echo.name, echoArgs(tools, 'again'))).toMatchObject(echoed('again'));
      });
    });
  });
}
