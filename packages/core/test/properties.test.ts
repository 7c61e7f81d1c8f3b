/**
 * Properties over hostile input (fast-check), through the real handler on a real node:http socket and the real
 * client against a real socket: whatever an attacker sends, the application sees only verified messages, every
 * refusal is a documented reason with its documented status, and a client passes on nothing it has not verified.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { REASON_HTTP_STATUS, createPQCHandler, isPQCReason, pqcFetch, PQCTransportError, type PQCHandler } from '../src/index.js';
import { handleNodeRequest } from '../src/node/index.js';
import { PQC_ENVELOPE_HEADER, PQC_SESSION_HEADER } from '../src/protocol.js';
import { MCP_HEADERS, RawClient, seededIdentity } from '@pqc-mcp/test-kit';

const serverIdentity = seededIdentity(40, 'ML-DSA-44', 'properties-server');
const clientIdentity = seededIdentity(41, 'ML-DSA-44', 'properties-client');
const RUNS = 150;

/** A real socket in front of `handler`, whose app records each body it is handed and answers it. */
async function listen(handler: PQCHandler, seen: unknown[]): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    void handleNodeRequest(
      handler,
      req,
      res,
      (body) => {
        seen.push(body);
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ jsonrpc: '2.0', id: (body as { id?: unknown } | undefined)?.id ?? null, result: {} }));
      },
      { routedPath: new URL(req.url ?? '/', 'http://x').pathname },
    ).catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`, server };
}

/** Asserts that a response is a documented PQC refusal: JSON-RPC error, known reason, that reason's status. */
async function expectRefusal(response: Response): Promise<string> {
  const text = await response.text();
  const body = JSON.parse(text) as { error?: { data?: { pqc?: unknown } } };
  const reason = body.error?.data?.pqc;
  if (!isPQCReason(reason)) throw new Error(`not a PQC refusal (${response.status}): ${text.slice(0, 200)}`);
  expect(response.status).toBe(REASON_HTTP_STATUS[reason]);
  return reason;
}

describe('the server under hostile input (real socket)', () => {
  const seen: unknown[] = [];
  let handler: PQCHandler;
  let server: Server;
  let client: RawClient;

  beforeAll(async () => {
    handler = createPQCHandler({ identity: serverIdentity, maxBodyBytes: 64 * 1024 });
    const started = await listen(handler, seen);
    server = started.server;
    client = new RawClient(started.url, clientIdentity, serverIdentity.did);
    await client.handshake();
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  beforeEach(() => {
    seen.length = 0;
  });

  test('any change to a signed message that changes what was signed is refused with its reason, and the app never runs', async () => {
    const signed = await client.sign({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'echo', arguments: { text: 'hi' } } });
    const original = JSON.parse(signed.text) as Record<string, unknown>;
    const canonical = JSON.stringify(original);
    // A mutation: a path into the message (envelope members included) and what to do there.
    const member = fc.constantFrom('jsonrpc', 'id', 'method', 'params', '_pqc', 'extra');
    const envelopeMember = fc.constantFrom('v', 'signer_did', 'algorithm', 'timestamp', 'nonce', 'session_id', 'http', 'signature', 'public_key', 'in_reply_to', 'extra');
    const mutation = fc.oneof(
      fc.record({ at: member, envelope: fc.constant(undefined), value: fc.option(fc.jsonValue({ maxDepth: 3 }), { nil: undefined }) }),
      fc.record({ at: fc.constant('_pqc'), envelope: envelopeMember, value: fc.option(fc.jsonValue({ maxDepth: 3 }), { nil: undefined }) }),
      fc.record({ at: fc.constant('_pqc'), envelope: fc.constantFrom('signature', 'nonce', 'session_id'), flip: fc.nat(), value: fc.constant('flip') }),
    );
    await fc.assert(
      fc.asyncProperty(mutation, async (m) => {
        const message = structuredClone(original);
        const target = m.envelope === undefined ? message : (message._pqc as Record<string, unknown>);
        const key = m.envelope ?? m.at;
        if (m.value === 'flip' && 'flip' in m) {
          const hex = String(target[key]);
          const i = (m.flip as number) % hex.length;
          target[key] = hex.slice(0, i) + (hex[i] === '0' ? '1' : '0') + hex.slice(i + 1);
        } else if (m.value === undefined) delete target[key];
        else target[key] = m.value;
        fc.pre(JSON.stringify(message) !== canonical);
        const response = await client.post(JSON.stringify(message));
        await expectRefusal(response);
        expect(seen).toEqual([]);
      }),
      { numRuns: RUNS },
    );
    // No refused forgery consumed the nonce: the original is still accepted, once.
    const accepted = await client.post(signed.text);
    expect(accepted.status).toBe(200);
    expect(seen).toHaveLength(1);
    expect(await expectRefusal(await client.post(signed.text))).toBe('replay_detected');
  });

  test('any body under a live session that is not a signed message is refused, never a crash, never the app', async () => {
    const body = fc.oneof(
      fc.string({ maxLength: 300 }),
      fc.json({ maxDepth: 4 }),
      fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.from(bytes).toString('latin1')),
      fc.nat({ max: 5000 }).map((n) => '['.repeat(n) + ']'.repeat(n)),
      fc.nat({ max: 3000 }).map((n) => `[${'{},'.repeat(n)}{}]`),
      fc.nat({ max: 70 }).map((n) => JSON.stringify(Array.from({ length: n }, (_, id) => ({ jsonrpc: '2.0', id, method: 'ping' })))),
    );
    await fc.assert(
      fc.asyncProperty(body, async (text) => {
        await expectRefusal(await client.post(text));
        expect(seen).toEqual([]);
      }),
      { numRuns: RUNS },
    );
  });

  test('any PQC-Session or PQC-Envelope header on any method never reaches the app unverified', async () => {
    const header = fc.oneof(fc.string({ maxLength: 200 }), fc.stringMatching(/^[0-9a-f]{32}$/), fc.json({ maxDepth: 3 }), fc.constant(client.session.sessionId));
    const printable = header.map((v) => v.replace(/[^\x20-\x7e]/g, 'x'));
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('GET', 'DELETE', 'POST'), printable, printable, async (method, session, envelope) => {
        const response = await fetch(client.url, {
          method,
          headers: { ...MCP_HEADERS, [PQC_SESSION_HEADER]: session, [PQC_ENVELOPE_HEADER]: envelope },
          body: method === 'POST' ? '{"jsonrpc":"2.0","id":1,"method":"ping"}' : undefined,
        });
        await expectRefusal(response);
        expect(seen).toEqual([]);
      }),
      { numRuns: RUNS },
    );
  });
});

/** The ids of an event stream's messages if each is a client-made PQC error (code -32010), else throws. */
function localErrorsOnly(stream: string): string[] {
  return stream
    .split('\n')
    .filter((line) => line.startsWith('data:'))
    .map((line) => {
      const message = JSON.parse(line.slice(5)) as { id: unknown; error?: { code?: number; data?: { pqc?: unknown } } };
      if (message.error?.code !== -32010 || !isPQCReason(message.error.data?.pqc)) throw new Error(`handed on: ${line}`);
      return String(message.id);
    });
}

describe('the client under hostile answers (real socket)', () => {
  test('whatever a server answers that it did not sign, pqcFetch raises and hands nothing on', async () => {
    // A real server for the handshake; the endpoint answers whatever the property says.
    const handler = createPQCHandler({ identity: serverIdentity });
    let answer: { status: number; type: string | undefined; body: string } = { status: 200, type: undefined, body: '' };
    const server = createServer((req, res) => {
      if (req.url?.startsWith('/pqc/')) {
        void handleNodeRequest(handler, req, res, () => res.end(), { routedPath: req.url });
        return;
      }
      req.resume();
      req.on('end', () => {
        if (answer.type !== undefined) res.setHeader('content-type', answer.type);
        res.statusCode = answer.status;
        res.end(answer.body);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
    const fetchSigned = pqcFetch({ identity: clientIdentity, serverDid: serverIdentity.did });
    // Genuine server messages of another session, to be replayed as answers.
    const other = new RawClient(url, seededIdentity(42, 'ML-DSA-44', 'other-client'), serverIdentity.did);
    await other.handshake();
    const genuine = await handler.handle(
      new Request(url, { method: 'POST', headers: { ...MCP_HEADERS, [PQC_SESSION_HEADER]: other.session.sessionId }, body: (await other.sign({ jsonrpc: '2.0', id: 1, method: 'ping' })).text }),
      async () => Response.json({ jsonrpc: '2.0', id: 1, result: {} }),
    );
    const replayed = await genuine.text();
    try {
      const answers = fc.record({
        status: fc.constantFrom(200, 201, 202, 204, 301, 400, 401, 403, 500, 503),
        type: fc.option(fc.constantFrom('application/json', 'text/event-stream', 'text/plain', 'text/html', 'application/json; charset=utf-8', ''), { nil: undefined }),
        body: fc.oneof(
          fc.string({ maxLength: 200 }),
          fc.json({ maxDepth: 3 }),
          fc.constant('{"jsonrpc":"2.0","id":1,"result":{}}'),
          fc.constant('event: message\ndata: {"jsonrpc":"2.0","id":1,"result":{}}\n\n'),
          fc.constant('data: {"jsonrpc":"2.0","id":9,"method":"sampling/createMessage","params":{}}\n\n'),
          fc.constant('{"jsonrpc":"2.0","id":1,"error":{"code":-32010,"message":"PQC authentication failed: unknown_session","data":{"pqc":"unknown_session"}}}'),
          fc.constant(replayed),
          fc.constant(`data: ${replayed}\n\n`),
        ),
      });
      await fc.assert(
        fc.asyncProperty(answers, async (a) => {
          answer = a;
          let outcome: unknown;
          try {
            const response = await fetchSigned(url, { method: 'POST', headers: MCP_HEADERS, body: '{"jsonrpc":"2.0","id":1,"method":"ping"}' });
            outcome = await response.text(); // an SSE body is checked as it is read
          } catch (err) {
            outcome = err;
          }
          // Raised, or (on an event stream, which is handed on before it is read) the request answered by the
          // client itself with a PQC error: nothing of the server's reaches the caller.
          if (typeof outcome === 'string') expect(localErrorsOnly(outcome)).toEqual(['1']);
          else expect(outcome).toBeInstanceOf(PQCTransportError);
        }),
        { numRuns: RUNS },
      );
    } finally {
      await fetchSigned.endSession().catch(() => undefined);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
