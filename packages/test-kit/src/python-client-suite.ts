/**
 * A Python `pqc-mcp-transport` client against one of our servers, without Python: its captured requests replayed byte
 * for byte over real sockets (python-peer.ts), with the v1 profile enabled (`profiles: [2, 1]`), and with it off. Every
 * server an adapter's example builds runs it, and `PQCMCPServer.run`. The server's clock is the capture's (`now`), and
 * `_pqc.session_id`, which v1 does not sign, names the session the server issued for the replayed handshake.
 *
 * What it holds the server to: each Python call served (HTTP 200, one JSON body, a v1 envelope that verifies under the
 * server key, the value asked for), the verified client handed to the application (`profile: 1`), nothing of `_pqc`
 * reaching it; and the v1 path letting no one skip anything: replays, unsigned or unsessioned calls, a v2 peer without
 * its header, a stale clock, all refused before the application; with v1 off, a v1 handshake told how to enable it.
 */
import { MessageSigner, parseLossless, type JsonObject, type PQCRequestContext } from '@pqc-mcp/core';
import type { ServerUnderTest, StartServer } from './conformance.js';
import { seededIdentity } from './identities.js';
import {
  capturedHandshake,
  checkPythonAnswer,
  checkPythonReplay,
  completePythonHandshake,
  failedChecks,
  pythonCaptureTime,
  pythonClientMessage,
  pythonCompactJson,
  pythonClientUrls,
  pythonHandshakeRequest,
  pythonIdentities,
  pythonIsoformat,
  readPythonSession,
  replayPythonClient,
  sendPythonRequest,
  withSessionId,
  type PythonServerKind,
  type PythonSession,
  type ReplayedExchange,
  type ResultShape,
} from './python-peer.js';
import { RawClient } from './raw-client.js';

const SERVER = seededIdentity(61);
const V2_CLIENT = seededIdentity(62);

/** What the suite needs to know of the servers an adapter starts. */
export interface PythonClientSuiteOptions {
  /** How the server's tools answer (default `'mcp'`: MCP `CallToolResult`s, as every server of ours). */
  shape?: ResultShape;
}

/** The PQC reason of an unsigned rejection's body. */
function reasonOf(text: string): string | undefined {
  try {
    return (JSON.parse(text) as { error?: { data?: { pqc?: string } } }).error?.data?.pqc;
  } catch {
    return undefined;
  }
}

/** A client message with its `_pqc` changed by `edit`, written as the Python client writes it (numbers keep their forms). */
function editEnvelope(body: string, edit: (envelope: JsonObject) => void): string {
  const tree = parseLossless(body) as JsonObject;
  const envelope = new Map(tree.get('_pqc') as JsonObject);
  edit(envelope);
  tree.set('_pqc', envelope);
  return pythonCompactJson(tree);
}

/** Runs the suite against the servers `start` gives. */
export function runPythonClientSuite(name: string, start: StartServer, options: PythonClientSuiteOptions = {}): void {
  const shape = options.shape ?? 'mcp';

  describe(`${name}: a pqc-mcp-transport (Python) client, its captured requests replayed`, () => {
    const sessions: Record<PythonServerKind, PythonSession> = { standalone: readPythonSession('standalone'), asgi: readPythonSession('asgi') };
    const { client: pythonClient } = pythonIdentities(sessions.standalone);
    let clock = pythonCaptureTime(sessions.standalone);
    const now = () => clock;
    let server: ServerUnderTest;
    let urls: ReturnType<typeof pythonClientUrls>;

    beforeAll(async () => {
      server = await start({ json: false, pqc: { identity: SERVER, profiles: [2, 1], now } });
      urls = pythonClientUrls({ serverUrl: new URL('/', server.url).href });
    });
    afterAll(() => server.close());

    /** Runs `send`; expects the unsigned rejection `status`/`reason`, and that the application saw nothing. */
    async function refused(send: () => Promise<ReplayedExchange>, status: number, reason: string): Promise<void> {
      const seen = server.seen?.length ?? 0;
      const { response } = await send();
      expect({ status: response.status, reason: reasonOf(response.text), signed: response.text.includes('"_pqc"') }).toEqual({ status, reason, signed: false });
      if (server.seen) expect(server.seen.length).toBe(seen);
    }

    test.each<PythonServerKind>(['standalone', 'asgi'])('the %s capture: every call served as one JSON body, v1-signed by the server, with the value asked for', async (kind) => {
      const session = sessions[kind];
      clock = pythonCaptureTime(session);
      const seen = server.seen?.length ?? 0;
      const contexts = server.contexts?.length ?? 0;
      const replay = await replayPythonClient(session, { serverUrl: new URL('/', server.url).href }, { serverDid: SERVER.did, now });
      const checks = await checkPythonReplay(replay, { server: SERVER.toPeer(), now, shape });
      expect(failedChecks(checks)).toEqual([]);
      expect(checks).toHaveLength(session.exchanges.length - 1);
      // The application got each call, without _pqc, from the verified Python client (profile 1).
      if (server.seen) {
        const bodies = server.seen.slice(seen);
        expect(bodies).toHaveLength(checks.length);
        expect(JSON.stringify(bodies)).not.toContain('_pqc');
      }
      if (server.contexts) {
        const expected: PQCRequestContext = { sessionId: replay.session.sessionId, peerDid: pythonClient.did, profile: 1 };
        expect(server.contexts.slice(contexts)).toEqual(checks.map(() => expected));
      }
      // The last call once more, byte for byte (the Python server answers it again): a replay.
      const last = replay.exchanges.at(-1)!;
      await refused(() => sendPythonRequest(last.exchange, last.sent.url, last.sent.body), 401, 'replay_detected');
    });

    test('Python timestamps without microseconds (`…:10+00:00`) are read as such', async () => {
      const session = sessions.standalone;
      clock = pythonCaptureTime(session) + 60_000;
      const second = Math.floor(clock / 1000) * 1000;
      const timestamp = pythonIsoformat(second * 1000);
      expect(timestamp).toMatch(/:\d\d\+00:00$/);
      const handshake = await pythonHandshakeRequest(pythonClient, timestamp);
      const answer = await sendPythonRequest(session.exchanges[0]!, urls.handshake, handshake);
      const opened = await completePythonHandshake(handshake, answer.response, { client: pythonClient, serverDid: SERVER.did, now });
      const call = '{"jsonrpc":"2.0","method":"tools/call","id":"0f3c","params":{"name":"add","arguments":{"a":1e+16,"b":1.0}}}';
      const body = await pythonClientMessage(pythonClient, call, { sessionId: opened.sessionId, timestamp });
      const { sent, response } = await sendPythonRequest(session.exchanges[2]!, urls.mcp, body);
      expect(failedChecks([await checkPythonAnswer(sent.body, response, { server: SERVER.toPeer(), now, shape })])).toEqual([]);
    });

    test('a replayed call is refused before the application: verbatim, with a new nonce, in the client\'s next session', async () => {
      const session = sessions.standalone;
      clock = pythonCaptureTime(session);
      const exchange = session.exchanges[3]!; // tools/call echo: the captured request's head
      const handshake = await pythonHandshakeRequest(pythonClient, pythonIsoformat((clock + 1) * 1000));
      const first = await completePythonHandshake(handshake, (await sendPythonRequest(session.exchanges[0]!, urls.handshake, handshake)).response, { client: pythonClient, serverDid: SERVER.did, now });
      const call = '{"jsonrpc":"2.0","method":"tools/call","id":"r1","params":{"name":"echo","arguments":{"text":"once"}}}';
      const fresh = await pythonClientMessage(pythonClient, call, { sessionId: first.sessionId, timestamp: pythonIsoformat(clock * 1000) });
      expect((await sendPythonRequest(exchange, urls.mcp, fresh)).response.status).toBe(200);
      await refused(() => sendPythonRequest(exchange, urls.mcp, fresh), 401, 'replay_detected');
      // v1 does not sign the nonce: a new one does not make the request new (the signed digest is remembered).
      const renonced = editEnvelope(fresh, (envelope) => envelope.set('nonce', 'ab'.repeat(16)));
      expect(renonced).not.toBe(fresh);
      await refused(() => sendPythonRequest(exchange, urls.mcp, renonced), 401, 'replay_detected');
      // Nor does another session of the same client: requests are remembered per client key.
      const again = await pythonHandshakeRequest(pythonClient, pythonIsoformat((clock + 2) * 1000));
      const second = await completePythonHandshake(again, (await sendPythonRequest(session.exchanges[0]!, urls.handshake, again)).response, { client: pythonClient, serverDid: SERVER.did, now });
      await refused(() => sendPythonRequest(exchange, urls.mcp, withSessionId(fresh, first.sessionId, second.sessionId)), 401, 'replay_detected');
    });

    test('the captured handshake replayed verbatim → 401 replay_detected (the Python server opens a new session)', async () => {
      clock = pythonCaptureTime(sessions.standalone);
      await refused(() => sendPythonRequest(sessions.standalone.exchanges[0]!, urls.handshake, sessions.standalone.exchanges[0]!.request.body), 401, 'replay_detected');
    });

    test('calls with no session, an unsigned call, a v2 session, or the v1 session in a PQC-Session header never reach the application', async () => {
      const session = sessions.standalone;
      clock = pythonCaptureTime(session);
      const exchange = session.exchanges[1]!; // tools/list
      const handshake = await pythonHandshakeRequest(pythonClient, pythonIsoformat((clock + 3) * 1000));
      const opened = await completePythonHandshake(handshake, (await sendPythonRequest(session.exchanges[0]!, urls.handshake, handshake)).response, { client: pythonClient, serverDid: SERVER.did, now });
      const list = '{"jsonrpc":"2.0","method":"tools/list","id":"s1"}';
      const timestamp = pythonIsoformat(clock * 1000);
      // No session named (the Python server serves these: its envelope's session_id is optional).
      await refused(async () => sendPythonRequest(exchange, urls.mcp, await pythonClientMessage(pythonClient, list, { timestamp })), 401, 'missing_envelope');
      // No envelope at all, with the Python client's headers (Accept: */*).
      await refused(() => sendPythonRequest(exchange, urls.mcp, list), 401, 'missing_envelope');
      // The v1 session named in a PQC-Session header: that is a v2 request, and v1 and v2 never mix in one session.
      const v1 = await pythonClientMessage(pythonClient, list, { sessionId: opened.sessionId, timestamp });
      await refused(() => sendPythonRequest(exchange, urls.mcp, v1, { extraHeaders: [['PQC-Session', opened.sessionId]] }), 400, 'unsupported_version');
      // A v2 session named by a v1 envelope: refused, whoever signs.
      const v2 = new RawClient(server.url, V2_CLIENT, SERVER.did);
      clock = Date.now(); // the v2 client signs with the wall clock
      await v2.handshake();
      clock = pythonCaptureTime(session);
      await refused(async () => sendPythonRequest(exchange, urls.mcp, await pythonClientMessage(pythonClient, list, { sessionId: v2.session.sessionId, timestamp })), 401, 'unknown_session');
      // A v2 message without its PQC-Session header is read as v1: its session is not a v1 one.
      clock = Date.now();
      const v2Message = await v2.sign({ jsonrpc: '2.0', id: 9, method: 'tools/list' });
      await refused(() => sendPythonRequest(exchange, urls.mcp, v2Message.text), 401, 'unknown_session');
      // And with its header it is still served as v2 (the v2 path is untouched by v1 being on).
      const served = await v2.post(v2Message.text);
      expect(served.status).toBe(200);
      expect((await v2.verified(served, v2Message.nonce)).find((m) => 'result' in m)).toMatchObject({ result: { tools: expect.any(Array) } });
      clock = pythonCaptureTime(session);
    });

    test('a server clock five minutes past the capture → the captured handshake is 401 stale_timestamp', async () => {
      clock = pythonCaptureTime(sessions.asgi) + 301_000;
      await refused(() => sendPythonRequest(sessions.asgi.exchanges[0]!, urls.handshake, sessions.asgi.exchanges[0]!.request.body), 401, 'stale_timestamp');
      clock = pythonCaptureTime(sessions.standalone);
    });
  });

  describe(`${name}: a pqc-mcp-transport (Python) client while v1 is off`, () => {
    const session = readPythonSession('standalone');
    const now = () => pythonCaptureTime(session);
    let server: ServerUnderTest;
    beforeAll(async () => {
      server = await start({ json: false, pqc: { identity: SERVER, now } });
    });
    afterAll(() => server.close());

    test('its handshake → 400 unsupported_version, saying v1 is disabled and how to enable it; its calls never reach the application', async () => {
      const seen = server.seen?.length ?? 0;
      const urls = pythonClientUrls({ serverUrl: new URL('/', server.url).href });
      const [handshake, list] = session.exchanges;
      for (const url of [urls.handshake, new URL('pqc/handshake', server.url)]) {
        const { response } = await sendPythonRequest(handshake!, url, handshake!.request.body);
        expect({ url: url.pathname, status: response.status, reason: reasonOf(response.text) }).toEqual({ url: url.pathname, status: 400, reason: 'unsupported_version' });
        const message = (JSON.parse(response.text) as { error: { message: string } }).error.message;
        expect(message).toMatch(/v1.*disabled/);
        expect(message).toContain('profiles: [2, 1]');
      }
      const { response } = await sendPythonRequest(list!, urls.mcp, list!.request.body);
      expect({ status: response.status, reason: reasonOf(response.text) }).toEqual({ status: 401, reason: 'missing_envelope' });
      if (server.seen) expect(server.seen.length).toBe(seen);
      // What the handshake carried is what a Python client sends (no `v`), so the refusal is about the profile alone.
      expect(capturedHandshake(session)).not.toHaveProperty('v');
      expect(await MessageSigner.verifyMessage(list!.request.body, { profiles: [1], now })).toMatchObject({ valid: true });
    });
  });
}
