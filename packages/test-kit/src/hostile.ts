/**
 * The hostile suite: the attacks of the security issue, each sent as real bytes over a real socket, against a server
 * an adapter starts (and, through a middlebox, against core's client). Every adapter, the gateway and the client run
 * it; docs/SECURITY.md names each test. The attackers: a network middlebox, another authenticated client, an
 * unauthenticated flood, and (for the client) a server or middlebox that lies.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { MemorySessionStore, PQCHandshake, PQCTransportError, pqcFetch, type SessionStore } from '@pqc-mcp/core';
import type { ServerUnderTest, StartServer, SuiteOptions } from './conformance.js';
import { seededIdentity } from './identities.js';
import { rawExchange, sendAllThenRead, startMiddlebox, type Middlebox } from './middlebox.js';
import { MCP_HEADERS, RawClient, initializeMessage } from './raw-client.js';
import { EXAMPLE_TOOLS, echoArgs } from './tools.js';

const SERVER = seededIdentity(41);
const CLIENT = seededIdentity(42);
const VICTIM = seededIdentity(43);
const OTHER_SERVER = seededIdentity(44);

/** What a server under test can do besides the wire (an out-of-process server cannot share a store object). */
export interface HostileFeatures extends SuiteOptions {
  /** The adapter's servers run in this process and can be given one `store` object (attack 10). */
  sharedStore: boolean;
  /** The store attack 10 shares between its two services (default: a `MemorySessionStore`), e.g. a shared store's. */
  newStore?: () => SessionStore;
}

/** The status line of a raw HTTP answer. */
function statusOf(raw: string): number {
  return Number(/^HTTP\/1\.[01] (\d{3})/.exec(raw)?.[1] ?? 0);
}

function portOf(url: string): number {
  return Number(new URL(url).port);
}

/** How many `tools/call` requests the application received (`seen` bodies). */
function toolCalls(server: ServerUnderTest): number {
  return (server.seen ?? []).filter((b) => typeof b === 'object' && b !== null && (b as { method?: string }).method === 'tools/call').length;
}

/** Runs the hostile suite against the servers `start` gives. */
export function runHostileSuite(name: string, start: StartServer, features: HostileFeatures): void {
  const tools = features.tools ?? EXAMPLE_TOOLS;
  /** A signed-to-be echo call. */
  const call = (id: number, text = 'x') => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: tools.echo.name, arguments: echoArgs(tools, text) } });
  /** An echo call on a raw client, and what its answer must hold. */
  const echo = (client: RawClient, text: string) => client.call(tools.echo.name, echoArgs(tools, text));
  const echoed = (text: string) => ({ result: { content: [{ text: tools.echo.result(text) }] } });
  describe(`${name}: hostile suite (real bytes over real sockets)`, () => {
    let server: ServerUnderTest;
    let client: RawClient;
    beforeAll(async () => {
      server = await start({ json: true, pqc: { identity: SERVER, maxSessionsPerClient: 16 } });
      client = new RawClient(server.url, CLIENT, SERVER.did);
      await client.handshake();
      await client.initialize();
    });
    afterAll(() => server.close());

    test('1. an unsigned request in absolute form (http:///mcp, https:///mcp, http://host/mcp) never reaches the app', async () => {
      const before = server.seen?.length ?? 0;
      const port = portOf(server.url);
      const path = new URL(server.url).pathname;
      const body = JSON.stringify(initializeMessage(1));
      for (const target of [`http://${path}`, `https://${path}`, `http://127.0.0.1:${port}${path}`, `HTTP://127.0.0.1${path}`, `http:${path}`]) {
        const raw = await rawExchange(
          port,
          `POST ${target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n` +
            `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
        );
        expect({ target, refused: statusOf(raw) >= 400 }).toEqual({ target, refused: true });
      }
      if (server.seen) expect(server.seen.length).toBe(before);
    });

    // Stateful MCP sessions need a server that issues Mcp-Session-Id: a 1.x app.
    if ((features.sdks ?? ['v2', '1.x']).includes('1.x'))
    test('3. MCP sessions belong to the PQC peer that opened them (POST, GET, DELETE; unknown ids too; a 1.x server)', async () => {
      const server = await start({ json: true, sdk: '1.x', pqc: { identity: SERVER } });
      const client = new RawClient(server.url, CLIENT, SERVER.did);
      await client.handshake();
      await client.initialize();
      const mine = client.mcpSessionId!;
      const intruder = new RawClient(server.url, VICTIM, SERVER.did);
      await intruder.handshake();
      const before = server.seen?.length ?? 0;
      for (const id of [mine, 'made-up-session-id']) {
        intruder.mcpSessionId = id;
        const signed = await intruder.sign(call(301));
        const post = await intruder.post(signed.text);
        expect({ id, status: post.status, reason: ((await post.json()) as { error?: { data?: { pqc?: string } } }).error?.data?.pqc }).toEqual({
          id,
          status: 401,
          reason: 'peer_mismatch',
        });
        for (const method of ['GET', 'DELETE'] as const) {
          const bodyless = await intruder.bodyless(method);
          expect({ id, method, status: bodyless.status }).toEqual({ id, method, status: 401 });
          await bodyless.text();
        }
      }
      if (server.seen) expect(server.seen.length).toBe(before);
      expect(await echo(client, 'still mine')).toMatchObject(echoed('still mine'));
      await server.close();
    });

    test('4. a forged 401 after a dropped answer never makes the client send the call again', async () => {
      const box = await startMiddlebox(new URL(server.url).origin);
      try {
        const fetch = pqcFetch({ identity: CLIENT, serverDid: SERVER.did });
        const sdk = new Client({ name: 'hostile', version: '1.0.0' });
        await sdk.connect(new StreamableHTTPClientTransport(new URL(box.url(server.url)), { fetch }));
        const before = toolCalls(server);
        // The middlebox forwards the signed call, drops the answer, and forges the "session unknown" the old client
        // resent on.
        box.tamper = {
          response: (answer, request) => {
            if (request.method === 'POST' && new TextDecoder().decode(request.body).includes('"tools/call"')) {
              return Response.json(
                { jsonrpc: '2.0', id: null, error: { code: -32010, message: 'PQC authentication failed: unknown_session', data: { pqc: 'unknown_session' } } },
                { status: 401 },
              );
            }
            return answer!;
          },
        };
        await expect(sdk.callTool({ name: tools.echo.name, arguments: echoArgs(tools, 'once') })).rejects.toThrow(/unknown_session/);
        box.tamper = {};
        if (server.seen) expect(toolCalls(server) - before).toBe(1);
        expect(box.requests.filter((r) => new TextDecoder().decode(r.body).includes('"once"'))).toHaveLength(1);
        await sdk.close();
      } finally {
        await box.close();
      }
    });

    test('5. one key opening sessions without end: never more than its cap live, and other clients keep working', async () => {
      const flooder = new RawClient(server.url, VICTIM, SERVER.did);
      const sessions = [];
      for (let i = 0; i < 40; i++) sessions.push((await flooder.handshake()).sessionId);
      // The flooder's oldest sessions were ended (their next request is told so, signed); the newest 16 live.
      const oldest = new RawClient(server.url, VICTIM, SERVER.did);
      oldest.session = Object.assign(Object.create(Object.getPrototypeOf(flooder.session) as object), flooder.session, { sessionId: sessions[0] });
      const signed = await oldest.sign({ jsonrpc: '2.0', id: 320, method: 'tools/list' });
      const ended = await oldest.post(signed.text);
      expect(ended.status).toBe(401);
      expect(await ended.text()).toContain('"_pqc"');
      expect(await echo(client, 'unaffected')).toMatchObject(echoed('unaffected'));
      const newcomer = new RawClient(server.url, seededIdentity(45), SERVER.did);
      await newcomer.handshake();
      await newcomer.initialize();
    });

    test('6. one signature reused on 440 batch elements is refused, and the app never sees it', async () => {
      const before = server.seen?.length ?? 0;
      const one = await client.sign(call(330));
      const response = await client.post(`[${Array.from({ length: 440 }, () => one.text).join(',')}]`);
      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({ error: { data: { pqc: 'invalid_envelope' } } });
      const within = await client.post(`[${Array.from({ length: 3 }, () => one.text).join(',')}]`);
      expect(await within.json()).toMatchObject({ error: { data: { pqc: 'replay_detected' } } });
      if (server.seen) expect(server.seen.length).toBe(before);
    });

    test('7. an unauthenticated 4 MiB junk body is refused on its headers, its session unknown or missing', async () => {
      const junk = `[${'{},'.repeat(1_398_000)}{}]`;
      for (const headers of [{}, { 'PQC-Session': 'cd'.repeat(16) }] as Record<string, string>[]) {
        const response = await fetch(server.url, { method: 'POST', headers: { ...MCP_HEADERS, ...headers }, body: junk });
        expect(response.status).toBe(401);
        expect(((await response.json()) as { error: { data: { pqc: string } } }).error.data.pqc).toMatch(/^(missing_envelope|unknown_session)$/);
      }
      expect(await echo(client, 'after the flood')).toMatchObject(echoed('after the flood'));
    });

    test('7b. an unauthenticated handshake is read to 64 KiB and 1024 JSON values at most: past either, 413 before any signature', async () => {
      const big = JSON.stringify({ v: 2, type: 'pqc_handshake_request', pad: 'x'.repeat(1024 * 1024) });
      const many = JSON.stringify({ v: 2, type: 'pqc_handshake_request', pad: Array.from({ length: 2000 }, () => 0) });
      for (const body of [big, many]) {
        const response = await fetch(client.handshakeUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
        expect(response.status).toBe(413);
        expect(((await response.json()) as { error: { data: { pqc: string } } }).error.data.pqc).toBe('body_too_large');
      }
      expect(await echo(client, 'after the big handshakes')).toMatchObject(echoed('after the big handshakes'));
    });

    test('11. a middlebox adding a query, or moving a signed POST to another path, gets target_mismatch', async () => {
      const box = await startMiddlebox(new URL(server.url).origin);
      try {
        const signed = await client.sign(call(340));
        box.tamper = { request: (r) => ({ ...r, path: `${r.path}?role=admin` }) };
        const query = await client.post(signed.text, {}, box.url(server.url));
        expect(query.status).toBe(401);
        expect(await query.json()).toMatchObject({ id: 340, error: { data: { pqc: 'target_mismatch' } } });
      } finally {
        await box.close();
      }
    });

    test('14. no stream resumption: Last-Event-ID is refused, and no event carries an id', async () => {
      const signed = await client.sign(call(350));
      const response = await client.post(signed.text, { 'Last-Event-ID': 'x' });
      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({ error: { data: { pqc: 'invalid_envelope' } } });
      const stream = await client.bodyless('GET', undefined, undefined, client.url, { 'last-event-id': '1' });
      expect(stream.status).toBe(400);
      await stream.text();
    });

    test('a DELETE or GET carrying a body is refused: a body would reach the app unsigned', async () => {
      const envelope = await client.envelope('DELETE');
      const response = await fetch(client.url, {
        method: 'DELETE',
        headers: { 'PQC-Envelope': envelope, 'content-type': 'application/json', ...(client.mcpSessionId ? { 'mcp-session-id': client.mcpSessionId } : {}) },
        body: JSON.stringify(call(360)),
      });
      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({ error: { data: { pqc: 'invalid_envelope' } } });
    });

    test('an oversized body is answered 413, and the client reads the answer every time', async () => {
      const small = await start({ json: true, pqc: { identity: SERVER, maxBodyBytes: 32 * 1024 } });
      try {
        const sender = new RawClient(small.url, CLIENT, SERVER.did);
        await sender.handshake();
        const big = await sender.sign(call(370, 'y'.repeat(512 * 1024)));
        for (let i = 0; i < 20; i++) {
          const response = await sender.post(big.text, { connection: 'close' });
          expect(response.status).toBe(413);
          expect(await response.json()).toMatchObject({ error: { data: { pqc: 'body_too_large' } } });
        }
      } finally {
        await small.close();
      }
    });

    test('an oversized body from a client that writes it all before reading: the 413 is still there to read', async () => {
      // Node answers `Connection: close` by closing the socket as soon as the answer is written; with the body still
      // arriving, that close is a reset, and the reset throws away the answer the client has not read yet.
      const small = await start({ json: true, pqc: { identity: SERVER, maxBodyBytes: 32 * 1024 } });
      try {
        const sender = new RawClient(small.url, CLIENT, SERVER.did);
        await sender.handshake();
        // More than loopback's socket buffers hold, so that the body is still arriving when the answer is written (the
        // server refuses it unread: the declared length is over the limit, or the limit is found while reading).
        const big = Buffer.alloc(12 * 1024 * 1024, 'y');
        const { host, pathname } = new URL(small.url);
        const head = (framing: string, connection: string) =>
          `POST ${pathname} HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nAccept: ${MCP_HEADERS.accept}\r\n` +
          `PQC-Session: ${sender.session.sessionId}\r\n${framing}\r\n${connection}\r\n`;
        const chunked = Buffer.concat([Buffer.from(`${big.length.toString(16)}\r\n`), big, Buffer.from('\r\n0\r\n\r\n')]);
        const cases = [
          { name: 'declared length, kept alive', head: head(`Content-Length: ${big.length}`, ''), body: big },
          { name: 'declared length, Connection: close', head: head(`Content-Length: ${big.length}`, 'Connection: close\r\n'), body: big },
          { name: 'chunked (the limit is found while reading)', head: head('Transfer-Encoding: chunked', ''), body: chunked },
        ];
        for (const c of cases) {
          for (let i = 0; i < 3; i++) {
            const { text, error } = await sendAllThenRead(portOf(small.url), c.head, c.body);
            expect({ case: c.name, status: statusOf(text), error }).toEqual({ case: c.name, status: 413, error: undefined });
            expect(text).toContain('"body_too_large"');
          }
        }
      } finally {
        await small.close();
      }
    });

    if (features.sharedStore) {
      test('10. two services on one store: a session opened on B is unknown on A', async () => {
        const store: SessionStore = features.newStore?.() ?? new MemorySessionStore();
        const a = await start({ json: true, pqc: { identity: SERVER, store } });
        const b = await start({ json: true, pqc: { identity: OTHER_SERVER, store } });
        try {
          const atB = new RawClient(b.url, CLIENT, OTHER_SERVER.did);
          await atB.handshake();
          const atA = new RawClient(a.url, CLIENT, SERVER.did);
          atA.session = atB.session;
          const signed = await atA.sign(initializeMessage(380));
          const response = await atA.post(signed.text);
          expect(response.status).toBe(401);
          expect(await response.json()).toMatchObject({ error: { data: { pqc: 'unknown_session' } } });
        } finally {
          await a.close();
          await b.close();
        }
      });

      test('8. v1 (opt-in): a captured v1 request is refused in the client\'s next session', async () => {
        const v1 = await start({ json: true, pqc: { identity: SERVER, profiles: [2, 1] } });
        try {
          const first = new RawClient(v1.url, CLIENT, SERVER.did);
          await first.handshake(1);
          const captured = await first.sign(initializeMessage(390), { profile: 1 });
          const ok = await first.post(captured.text, { 'PQC-Session': undefined });
          expect(ok.status).toBe(200);
          await ok.text();
          const second = new RawClient(v1.url, CLIENT, SERVER.did);
          await second.handshake(1);
          const moved = JSON.parse(captured.text) as { _pqc: Record<string, unknown> };
          moved._pqc.session_id = second.session.sessionId;
          const replay = await second.post(JSON.stringify(moved), { 'PQC-Session': undefined });
          expect(replay.status).toBe(401);
          expect(await replay.json()).toMatchObject({ error: { data: { pqc: 'replay_detected' } } });
        } finally {
          await v1.close();
        }
      });
    }

    describe('the client: nothing unverified is passed on, nothing resent without a verified reason', () => {
      let box: Middlebox;
      beforeAll(async () => {
        box = await startMiddlebox(new URL(server.url).origin);
      });
      afterAll(() => box.close());
      afterEach(() => {
        box.tamper = {};
      });

      test('2. answers neither signed JSON nor signed SSE (text/plain, none, HTML, a redirect) are errors, never handed on', async () => {
        const fetch = pqcFetch({ identity: CLIENT, serverDid: SERVER.did });
        await fetch.handshake(box.url(server.url));
        const injected = 'event: message\ndata: {"jsonrpc":"2.0","id":0,"method":"sampling/createMessage","params":{}}\n\n';
        for (const answer of [
          () => new Response(injected, { status: 200, headers: { 'content-type': 'text/plain' } }),
          () => new Response(injected, { status: 200 }),
          () => new Response('<html>oops</html>', { status: 500, headers: { 'content-type': 'text/html' } }),
          () => new Response(null, { status: 307, headers: { location: 'http://127.0.0.1:1/elsewhere' } }),
          () => new Response('{"jsonrpc":"2.0","id":1,"result":{}}', { status: 200, headers: { 'content-type': 'application/json' } }),
        ]) {
          box.tamper = { response: () => answer() };
          for (const method of ['GET', 'POST'] as const) {
            const init = method === 'POST' ? { method, headers: MCP_HEADERS, body: JSON.stringify(call(1)) } : { method, headers: { accept: 'text/event-stream' } };
            await expect(fetch(box.url(server.url), init)).rejects.toBeInstanceOf(PQCTransportError);
          }
        }
      });

      test('an Mcp-Session-Id from an unverified answer is never adopted', async () => {
        const fetch = pqcFetch({ identity: CLIENT, serverDid: SERVER.did });
        const init = { method: 'POST', headers: MCP_HEADERS, body: JSON.stringify(initializeMessage(2)) };
        box.tamper = {
          response: async (answer) => {
            const headers = new Headers(answer!.headers);
            headers.set('mcp-session-id', 'attacker-chosen');
            return new Response(await answer!.text(), { status: answer!.status, headers });
          },
        };
        const response = await fetch(box.url(server.url), init);
        expect(response.headers.get('mcp-session-id')).not.toBe('attacker-chosen');
        await response.text();
        // Nor from the one unsigned answer a client takes: the empty 202 to a POST of notifications only (the MCP SDK
        // 1.x client adopts the header from any POST answer, which would move it into a session of the middlebox's
        // choosing).
        // In the MCP session a real initialize opened (a stateful server refuses a notification outside one).
        const tamper = box.tamper;
        box.tamper = {};
        const opened = await fetch(box.url(server.url), { method: 'POST', headers: MCP_HEADERS, body: JSON.stringify(initializeMessage(3)) });
        const mcpSessionId = opened.headers.get('mcp-session-id');
        await opened.text();
        box.tamper = tamper;
        const headers: Record<string, string> = { ...MCP_HEADERS, ...(mcpSessionId ? { 'mcp-session-id': mcpSessionId } : {}) };
        const notification = { method: 'POST', headers, body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) };
        const accepted = await fetch(box.url(server.url), notification);
        expect(accepted.status).toBe(202);
        expect(accepted.headers.get('mcp-session-id')).toBeNull();
      });

      test('an answer over the size bound is refused, whole or per event', async () => {
        const fetch = pqcFetch({ identity: CLIENT, serverDid: SERVER.did, maxResponseBytes: 64 * 1024 });
        await fetch.handshake(box.url(server.url));
        box.tamper = { response: () => new Response(`{"pad":"${'z'.repeat(200 * 1024)}"}`, { headers: { 'content-type': 'application/json' } }) };
        await expect(fetch(box.url(server.url), { method: 'POST', headers: MCP_HEADERS, body: JSON.stringify(call(3)) })).rejects.toBeInstanceOf(PQCTransportError);
        box.tamper = { response: () => new Response(`data: ${'z'.repeat(200 * 1024)}\n\n`, { headers: { 'content-type': 'text/event-stream' } }) };
        const stream = await fetch(box.url(server.url), { method: 'POST', headers: MCP_HEADERS, body: JSON.stringify(call(4)) });
        await expect(stream.text()).rejects.toThrow();
      });

      test('a replayed signed answer, or one answer swapped for another, is refused', async () => {
        const fetch = pqcFetch({ identity: CLIENT, serverDid: SERVER.did });
        await fetch.handshake(box.url(server.url));
        let captured: string | undefined;
        box.tamper = {
          response: async (answer) => {
            const text = await answer!.text();
            captured ??= text;
            return new Response(captured, { status: answer!.status, headers: answer!.headers });
          },
        };
        const url = box.url(server.url);
        const first = await fetch(url, { method: 'POST', headers: MCP_HEADERS, body: JSON.stringify(initializeMessage(5)) });
        expect(await first.text()).toContain('"result"');
        // Refused: as an error (a JSON answer), or in a stream as the local -32010 error of the request it answered.
        const second = await fetch(url, { method: 'POST', headers: MCP_HEADERS, body: JSON.stringify(initializeMessage(6)) }).then(
          (r) => r.text(),
          (e: unknown) => e,
        );
        if (second instanceof PQCTransportError) expect(second.reason).toMatch(/replay_detected|peer_mismatch/);
        else expect(second).toMatch(/"data":\{"pqc":"(replay_detected|peer_mismatch)"\}/);
      });

      test('13. a handshake answered by another server identity than the one named is refused', async () => {
        const impostor = await start({ json: true, pqc: { identity: OTHER_SERVER } });
        try {
          const fetch = pqcFetch({ identity: CLIENT, serverDid: SERVER.did });
          await expect(fetch.handshake(impostor.url)).rejects.toMatchObject({ reason: 'peer_mismatch' });
          const { request } = await PQCHandshake.initiate(CLIENT, { serverDid: SERVER.did });
          const direct = await globalThis.fetch(new URL('pqc/handshake', impostor.url), { method: 'POST', body: request });
          expect(direct.status).toBe(401);
          expect(await direct.json()).toMatchObject({ error: { data: { pqc: 'peer_mismatch' } } });
        } finally {
          await impostor.close();
        }
      });

      test('a signed session rejection from an earlier request cannot make the client resend this one', async () => {
        const fetch = pqcFetch({ identity: CLIENT, serverDid: SERVER.did });
        const url = box.url(server.url);
        await fetch.handshake(url);
        // A genuine signed unknown_session, captured from an ended session of this client.
        const ended = new RawClient(server.url, CLIENT, SERVER.did);
        await ended.handshake();
        await (await ended.endSession()).text();
        const old = await ended.sign(call(7));
        const rejection = await (await ended.post(old.text)).text();
        expect(rejection).toContain('"_pqc"');
        const before = box.requests.length;
        box.tamper = { response: () => new Response(rejection, { status: 401, headers: { 'content-type': 'application/json' } }) };
        await expect(fetch(url, { method: 'POST', headers: MCP_HEADERS, body: JSON.stringify(call(8)) })).rejects.toBeInstanceOf(PQCTransportError);
        expect(box.requests.length - before).toBe(1);
      });
    });
  });
}

