/**
 * The Python predecessor (`pqc-mcp-transport`) without Python: what its server answered its client, as captured,
 * read by the same checks our replays use.
 */
import { AgentIdentity, JsonNumber, MessageSigner, canonicalJson, pqcContextOf, type JsonObject, type PQCRequestContext } from '@pqc-mcp/core';
import { z } from 'zod';
import {
  checkPythonAnswer,
  checkPythonReplay,
  headerValue,
  replayPythonClient,
  runPythonClientSuite,
  seededIdentity,
  startPythonServer,
  type PythonServerFlavour,
  type PythonServerStandIn,
  type StartServer,
  completePythonHandshake,
  failedChecks,
  fixedClock,
  pythonCaptureTime,
  pythonIdentities,
  readPythonSession,
  type AnswerCheck,
  type PythonServerKind,
} from '@pqc-mcp/test-kit';
import { PQCMCPClient, PQCMCPServer } from '../src/index.js';

describe.each<PythonServerKind>(['standalone', 'asgi'])('the captured %s session', (kind) => {
  const session = readPythonSession(kind);
  const now = fixedClock(pythonCaptureTime(session));
  const { client, server } = pythonIdentities(session);

  test('the recorded answers verify and carry the values asked for, read by the replay checks', async () => {
    const [handshake, ...messages] = session.exchanges;
    const opened = await completePythonHandshake(handshake!.request.body, { status: 200, text: handshake!.response.body }, { client, serverDid: server.did, now });
    expect(opened.profile).toBe(1);
    const checks: AnswerCheck[] = [];
    for (const exchange of messages) {
      const status = Number(exchange.response.status_line.split(' ')[1]);
      checks.push(await checkPythonAnswer(exchange.request.body, { status, headers: exchange.response.headers, text: exchange.response.body }, { server, now, shape: 'python', name: exchange.name }));
    }
    expect(failedChecks(checks)).toEqual([]);
    expect(checks).toHaveLength(9);
  });

  test('the checks catch a changed value, an unsigned answer and another shape', async () => {
    const add = session.exchanges.find((e) => e.name.startsWith('tools/call add {"a": 7.0, "b": 3.5}'))!;
    const answer = (text: string) => ({ status: 200, headers: add.response.headers, text });
    const changed = await checkPythonAnswer(add.request.body, answer(add.response.body.replace('"content": 10.5', '"content": 10.6')), { server, now, shape: 'python' });
    expect(changed.problems).toEqual([expect.stringMatching(/^does not verify: invalid_signature/), 'add answered 10.6, not 10.5']);
    const unsigned = await checkPythonAnswer(add.request.body, answer(add.response.body.replace(/, "_pqc": \{.*\}\}$/, '}')), { server, now, shape: 'python' });
    expect(unsigned.problems).toEqual([expect.stringMatching(/^unsigned/)]);
    const shape = await checkPythonAnswer(add.request.body, answer(add.response.body), { server, now, shape: 'mcp' });
    expect(shape.problems).toEqual(['add: result content is 10.5']);
  });
});

/** An answer's text with what differs on every run (nonces, timestamps, signatures, session ids) blanked. */
function stable(text: string): string {
  return text
    .replace(/"(timestamp)": "[^"]*"/g, '"$1": "…"')
    .replace(/"(nonce|server_nonce|session_id)": "[0-9a-f]{32}"/g, '"$1": "…"')
    .replace(/"(signature)": "[0-9a-f]+"/g, '"$1": "…"');
}

describe.each<PythonServerKind>(['standalone', 'asgi'])('the stand-in for the Python %s server, against the recorded answers', (kind) => {
  const session = readPythonSession(kind);
  const capture = pythonCaptureTime(session);
  const now = fixedClock(capture);
  const { server } = pythonIdentities(session);
  let standIn: PythonServerStandIn;
  beforeAll(async () => {
    const identity = AgentIdentity.fromSeed(session.identities.server.seed, { algorithm: session.identities.server.algorithm });
    standIn = await startPythonServer({ identity, flavour: kind, nowMicros: () => capture * 1000 + 123 });
  });
  afterAll(() => standIn.close());

  test('the captured client requests get the same answers, byte for byte but for nonces, timestamps and signatures', async () => {
    const replay = await replayPythonClient(session, { serverUrl: standIn.url }, { serverDid: server.did, now, detectClose: true });
    replay.exchanges.forEach(({ exchange, response }) => {
      const recorded = exchange.response;
      expect({ name: exchange.name, status: response.statusLine, headers: response.headers.map(([k]) => k) }).toEqual({
        name: exchange.name,
        status: recorded.status_line,
        headers: recorded.headers.map(([k]) => k),
      });
      expect(headerValue(response.headers, 'content-length')).toBe(String(Buffer.byteLength(response.text)));
      expect(stable(response.text)).toBe(stable(recorded.body));
      // The standalone server closes every connection after its answer (without saying so); uvicorn keeps it.
      expect(response.closedByServer).toBe(kind === 'standalone');
      expect(headerValue(response.headers, 'connection')).toBeUndefined();
    });
    // And its answers pass the checks the recorded ones pass.
    expect(failedChecks(await checkPythonReplay(replay, { server, now, shape: 'python' }))).toEqual([]);
  });
});

describe.each<PythonServerFlavour>(['standalone', 'asgi'])('PQCMCPClient({ profile: 1 }) against the stand-in for the Python %s server', (flavour) => {
  const PY_SERVER = seededIdentity(71, 'ML-DSA-65', 'python-server');
  const TS_CLIENT = seededIdentity(72, 'ML-DSA-65', 'ts-client');
  let standIn: PythonServerStandIn;
  let client: PQCMCPClient;
  beforeAll(async () => {
    standIn = await startPythonServer({ identity: PY_SERVER, flavour });
    client = new PQCMCPClient({ identity: TS_CLIENT, serverUrl: standIn.mcpUrl, serverDid: PY_SERVER.did, profile: 1 });
    await client.connect();
  });
  afterAll(async () => {
    await client.close();
    await standIn.close();
  });

  test('connect is the v1 handshake at <base>/handshake; messages go to /mcp as raw JSON-RPC, without initialize or MCP/PQC session headers', async () => {
    expect(client.session).toMatchObject({ profile: 1, peerDid: PY_SERVER.did });
    const tools = await client.listTools();
    expect(tools).toEqual([
      { name: 'echo', description: 'Echo back the input text', inputSchema: { type: 'object' } },
      { name: 'add', description: 'Add two numbers', inputSchema: { type: 'object' } },
    ]);
    const [handshake, ...calls] = standIn.requests;
    expect(handshake).toMatchObject({ method: 'POST', path: '/handshake' });
    expect(JSON.parse(handshake!.body)).not.toHaveProperty('v');
    for (const request of calls) {
      const names = request.headers.map(([k]) => k.toLowerCase());
      expect({ path: request.path, method: request.method }).toEqual({ path: '/mcp', method: 'POST' });
      expect(names).not.toContain('pqc-session');
      expect(names).not.toContain('mcp-session-id');
      const body = JSON.parse(request.body) as { method: string; _pqc: Record<string, unknown> };
      expect(body.method).not.toBe('initialize');
      expect(body._pqc).not.toHaveProperty('v');
      expect(body._pqc).toMatchObject({ signer_did: TS_CLIENT.did, public_key: TS_CLIENT.publicKeyHex, session_id: client.session!.sessionId });
    }
  });

  test('tool results `{"content": value}` arrive as MCP results, numbers in the form Python wrote them', async () => {
    // JS sends 7.5 and 2.5; Python adds two floats: 10.0. An int and a float: 1.0000000000000002e+16.
    const cases: [Record<string, unknown>, string, unknown][] = [
      [{ a: 7.5, b: 2.5 }, '10.0', 10],
      [{ a: 7, b: 3 }, '10', 10],
      [{ a: 0.1, b: 0.2 }, '0.30000000000000004', 0.30000000000000004],
      [{ a: 1e16, b: 1.5 }, '1.0000000000000002e+16', 1.0000000000000002e16],
    ];
    for (const [args, text, value] of cases) {
      expect(await client.callTool('add', args)).toEqual({ content: [{ type: 'text', text }], structuredContent: { value } });
    }
    const tricky = 'quote" backslash\\ nl\n tab\t del\u007f nul\u0000 \u2028 </script> é 😀';
    expect(await client.callTool('echo', { text: tricky })).toEqual({ content: [{ type: 'text', text: tricky }], structuredContent: { value: tricky } });
  });

  test('JSON-RPC errors throw MCPToolError with the code the Python server gave', async () => {
    await expect(client.callTool('nope', {})).rejects.toMatchObject({ name: 'MCPToolError', code: -32601, message: 'Unknown tool: nope', tool: 'nope' });
    await expect(client.callTool('add', { a: 1 })).rejects.toMatchObject({ name: 'MCPToolError', code: -32000, message: expect.stringMatching(/^Tool error: .*'b'/) });
  });

  test('a fresh connection per request where the server closes them: many calls in a row, none lost', async () => {
    const before = standIn.connections;
    for (let i = 0; i < 40; i++) expect((await client.callTool('add', { a: i, b: 1 })).structuredContent).toEqual({ value: i + 1 });
    const opened = standIn.connections - before;
    if (flavour === 'standalone') expect(opened).toBe(40);
    else expect(opened).toBeLessThanOrEqual(40);
  });
});

describe('PQCMCPClient({ profile: 1 }) against a lying Python server: what the Python client accepts, ours refuses', () => {
  const PY_SERVER = seededIdentity(73, 'ML-DSA-65', 'python-server');
  const MALLORY = seededIdentity(74, 'ML-DSA-65', 'mallory');
  const TS_CLIENT = seededIdentity(75, 'ML-DSA-65', 'ts-client');

  async function withTamper(tamper: (text: string, message: JsonObject) => Promise<string> | string, run: (client: PQCMCPClient) => Promise<void>): Promise<void> {
    let armed = false;
    const standIn = await startPythonServer({ identity: PY_SERVER, tamper: (text, message) => (armed ? tamper(text, message) : text) });
    const client = new PQCMCPClient({ identity: TS_CLIENT, serverUrl: standIn.mcpUrl, serverDid: PY_SERVER.did, profile: 1 });
    try {
      await client.connect();
      armed = true;
      await run(client);
    } finally {
      await client.close();
      await standIn.close();
    }
  }

  /** The message re-signed (v1) by `who`, claiming `did`. */
  async function resigned(message: JsonObject, who: AgentIdentity): Promise<string> {
    const bare: JsonObject = new Map(message);
    bare.delete('_pqc');
    const signed = await new MessageSigner(who).signMessage(canonicalJson(bare), { profile: 1 });
    const envelope = { ...signed.envelope, signer_did: PY_SERVER.did };
    return JSON.stringify({ ...JSON.parse(canonicalJson(bare)), _pqc: envelope });
  }

  test('an unsigned answer', async () => {
    await withTamper(
      (text) => JSON.stringify({ ...(JSON.parse(text) as object), _pqc: undefined }),
      async (client) => {
        await expect(client.callTool('add', { a: 1, b: 2 })).rejects.toMatchObject({ reason: 'missing_envelope' });
      },
    );
  });

  test('an answer signed by another key, claiming the server', async () => {
    await withTamper(
      (_text, message) => resigned(message, MALLORY),
      async (client) => {
        await expect(client.callTool('add', { a: 1, b: 2 })).rejects.toMatchObject({ reason: 'peer_mismatch' });
      },
    );
  });

  test('a changed value under the server signature', async () => {
    await withTamper(
      (text) => text.replace('"content": 3', '"content": 4'),
      async (client) => {
        await expect(client.callTool('add', { a: 1, b: 2 })).rejects.toMatchObject({ reason: 'invalid_signature' });
      },
    );
  });

  test('an answer the server signed for another request (its id)', async () => {
    await withTamper(
      (_text, message) => resigned(new Map([...message].map(([k, v]) => [k, k === 'id' ? new JsonNumber('999999') : v])), PY_SERVER),
      async (client) => {
        await expect(client.callTool('add', { a: 1, b: 2 })).rejects.toMatchObject({ name: 'MCPToolError', message: expect.stringMatching(/for request 999999/) });
      },
    );
  });

  test('the same signed answer twice', async () => {
    let first: string | undefined;
    await withTamper(
      (text) => (first ??= text),
      async (client) => {
        await expect(client.callTool('add', { a: 1, b: 2 })).resolves.toMatchObject({ structuredContent: { value: 3 } });
        // The server answers every later call with that first answer: it was seen already.
        await expect(client.callTool('add', { a: 1, b: 2 })).rejects.toMatchObject({ reason: 'replay_detected' });
      },
    );
  });
});

/**
 * `PQCMCPServer.run` with tools like the Python peers' (`echo(text)`, `add(a, b)`), recording what the MCP SDK handler
 * receives (the body and who called, as `authInfo`).
 */
const startMcpServer: StartServer = async ({ pqc }) => {
  const server = new PQCMCPServer({ ...pqc, cryptoPool: false })
    .tool('echo', { description: 'Echoes the text back', inputSchema: z.object({ text: z.string() }) }, ({ text }) => text)
    .tool('add', { description: 'Adds two numbers', inputSchema: z.object({ a: z.number(), b: z.number() }) }, ({ a, b }) => a + b);
  const seen: unknown[] = [];
  const contexts: (PQCRequestContext | undefined)[] = [];
  const sdkFetch = server.mcp.fetch;
  Object.assign(server.mcp, {
    fetch: (request: Request, options?: { parsedBody?: unknown; authInfo?: unknown }) => {
      seen.push(options?.parsedBody);
      contexts.push(pqcContextOf(options?.authInfo));
      return sdkFetch(request, options as Parameters<typeof sdkFetch>[1]);
    },
  });
  const running = await server.run();
  return { url: running.url, seen, contexts, close: () => running.close() };
};

runPythonClientSuite('PQCMCPServer.run', startMcpServer);
