/**
 * The gateway binary attacked from each side, over real sockets: a client trickling its request (slow headers, slow
 * body) while long SSE answers are never cut; log forging with newlines in unverified and verified fields; a hostile
 * HTTP upstream (oversized answers and events, non-JSON-RPC answers, headers it should not set); a hostile stdio
 * child (garbage and oversized lines, answers to nothing, a fake envelope, a stderr flood, an exit mid-request);
 * an unauthenticated flood that must start no process; other clients and the process limits.
 */
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { Client as ClientV2, StreamableHTTPClientTransport as TransportV2 } from '@modelcontextprotocol/client';
import { MessageSigner, pqcFetch } from '@pqc-mcp/core';
import { RawClient, initializeMessage } from '@pqc-mcp/test-kit';
import { createTestMcpApp, seededIdentity, startGatewayProcess, startPlainUpstream, tempDir, writeIdentity, type GatewayProcess } from './helpers.js';

const GATEWAY = seededIdentity(91, 'ML-DSA-65', 'gateway');
const CLIENT = seededIdentity(92, 'ML-DSA-65', 'client');
const OTHER = seededIdentity(93, 'ML-DSA-65', 'other');
const THIRD = seededIdentity(94, 'ML-DSA-65', 'third');
const FOURTH = seededIdentity(95, 'ML-DSA-65', 'fourth');
const HOSTILE_CHILD = `${JSON.stringify(process.execPath)} ${JSON.stringify(join(__dirname, 'fixtures', 'hostile-mcp-server.mjs'))}`;

const tmp = tempDir();
let gatewayFile: string;
beforeAll(async () => {
  gatewayFile = await writeIdentity(GATEWAY, tmp.path('gateway.json'));
});
afterAll(() => tmp.cleanup());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A raw TCP connection to the gateway: what it received, and when it closed. */
function rawConnection(url: string): Promise<{ socket: Socket; data: () => string; closed: Promise<number> }> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    let data = '';
    const started = Date.now();
    const socket = connect(Number(port), '127.0.0.1', () => resolve({ socket, data: () => data, closed }));
    const closed = new Promise<number>((done) => socket.on('close', () => done(Date.now() - started)));
    socket.on('data', (chunk) => (data += chunk.toString('latin1')));
    socket.on('error', (err) => (data ? undefined : reject(err)));
  });
}

function requestHead(method: string, path: string, headers: Record<string, string>): string {
  return `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}\r\n`;
}

/** Lines of the gateway's stderr that are not request log lines nor its own `pqc-mcp gateway:` lines. */
function strayLines(stderr: string): string[] {
  return stderr
    .split('\n')
    .filter((l) => l !== '')
    .filter((l) => !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (GET|POST|DELETE|OPTIONS|HEAD|PUT) \S+ \S+ \S+ \S+ \d{1,3} [\d.]+ms( signed=\d+)?( aborted)?$/.test(l))
    .filter((l) => !l.startsWith('pqc-mcp gateway: '));
}

describe('slow clients: request timeouts over raw sockets; answers are never cut', () => {
  let gateway: GatewayProcess;
  let upstream: Awaited<ReturnType<typeof startPlainUpstream>>;
  beforeAll(async () => {
    upstream = await startPlainUpstream(createTestMcpApp({ json: false, slowTool: true }));
    gateway = await startGatewayProcess(['--upstream', upstream.url, '--listen', '127.0.0.1:0', '--identity', gatewayFile, '--request-timeout', '2']);
  });
  afterAll(async () => {
    await gateway.stop('SIGKILL');
    await upstream.close();
  });

  test('a body trickled one byte every 300 ms is cut at the request timeout, and never reaches the upstream', async () => {
    const client = new RawClient(gateway.url, CLIENT, GATEWAY.did);
    await client.handshake();
    const seen = upstream.seen.length;
    const { socket, data, closed } = await rawConnection(gateway.url);
    socket.write(requestHead('POST', '/mcp', { 'content-type': 'application/json', 'PQC-Session': client.session.sessionId, 'content-length': '100000' }));
    let sent = 0;
    const trickle = setInterval(() => {
      if (socket.destroyed) return;
      socket.write('{');
      sent++;
    }, 300);
    const ms = await closed;
    clearInterval(trickle);
    expect(ms).toBeLessThan(5000);
    expect(sent).toBeLessThan(20);
    expect(data()).toMatch(/^(HTTP\/1\.1 408|$)/);
    expect(upstream.seen.length).toBe(seen);
  });

  test('headers trickled one line every 300 ms are cut too', async () => {
    const { socket, closed } = await rawConnection(gateway.url);
    socket.write('POST /mcp HTTP/1.1\r\n');
    let i = 0;
    const trickle = setInterval(() => {
      if (!socket.destroyed) socket.write(`x-slow-${i++}: 1\r\n`);
    }, 300);
    const ms = await closed;
    clearInterval(trickle);
    expect(ms).toBeLessThan(5000);
  });

  test('a signed call whose SSE answer lasts longer than the request timeout is answered whole', async () => {
    const client = new RawClient(gateway.url, CLIENT, GATEWAY.did);
    await client.handshake();
    await client.initialize();
    const signed = await client.sign({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'slow', arguments: { steps: 12 }, _meta: { progressToken: 1 } } });
    const { socket, data, closed } = await rawConnection(gateway.url);
    socket.write(
      requestHead('POST', '/mcp', {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'PQC-Session': client.session.sessionId,
        'mcp-session-id': client.mcpSessionId!,
        'mcp-protocol-version': '2025-06-18',
        'content-length': String(Buffer.byteLength(signed.text)),
        connection: 'close',
      }) + signed.text,
    );
    const ms = await closed;
    expect(ms).toBeGreaterThan(3000); // 12 steps of 300 ms, over a 2 s request timeout
    expect(data()).toMatch(/^HTTP\/1\.1 200/);
    expect(data()).toContain('done after 12 steps');
    expect((data().match(/notifications\/progress/g) ?? []).length).toBe(12);
  });

  test('a GET stream stays open past the request timeout', async () => {
    const client = new RawClient(gateway.url, CLIENT, GATEWAY.did);
    await client.handshake();
    await client.initialize();
    const envelope = await client.envelope('GET');
    const { socket, data, closed } = await rawConnection(gateway.url);
    let isClosed = false;
    void closed.then(() => (isClosed = true));
    socket.write(
      requestHead('GET', '/mcp', {
        accept: 'text/event-stream',
        'PQC-Envelope': envelope,
        'mcp-session-id': client.mcpSessionId!,
        'mcp-protocol-version': '2025-06-18',
      }),
    );
    await sleep(3500);
    expect(isClosed).toBe(false);
    expect(data()).toMatch(/^HTTP\/1\.1 200/);
    socket.destroy();
  });
});

describe('log forging: nothing unverified is logged as verified, and no field can add a line', () => {
  let gateway: GatewayProcess;
  let upstream: Awaited<ReturnType<typeof startPlainUpstream>>;
  beforeAll(async () => {
    upstream = await startPlainUpstream(createTestMcpApp({ json: true }));
    gateway = await startGatewayProcess(['--upstream', upstream.url, '--listen', '127.0.0.1:0', '--identity', gatewayFile]);
  });
  afterAll(async () => {
    await gateway.stop('SIGKILL');
    await upstream.close();
  });

  const forged = `x\n2026-01-01T00:00:00.000Z POST /mcp tools/call ${CLIENT.did} verified 200 1ms\r\nmore`;

  test('an unsigned request with newlines in its method: one log line, its method not logged', async () => {
    await sleep(100);
    const before = gateway.stderr().split('\n').length;
    const response = await fetch(gateway.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: forged }),
    });
    expect(response.status).toBe(401);
    await response.text();
    await sleep(200);
    const added = gateway.stderr().split('\n').slice(before - 1, -1);
    expect(added).toHaveLength(1);
    expect(added[0]).toMatch(/ POST \/mcp - - rejected:missing_envelope 401 /);
    expect(added[0]).not.toContain('tools/call');
    expect(strayLines(gateway.stderr())).toEqual([]);
  });

  test('a signed request with a session of no record, claiming a DID: not logged as verified, no peer named', async () => {
    const signed = await new MessageSigner(CLIENT).signMessage({ jsonrpc: '2.0', id: 2, method: forged }, {
      sessionId: 'ab'.repeat(16),
      http: { method: 'POST', path: '/mcp', mcpSessionId: null },
    });
    const before = gateway.stderr().split('\n').length;
    const response = await fetch(gateway.url, { method: 'POST', headers: { 'content-type': 'application/json', 'PQC-Session': 'ab'.repeat(16) }, body: signed.text });
    expect(response.status).toBe(401);
    await response.text();
    await sleep(200);
    const added = gateway.stderr().split('\n').slice(before - 1, -1);
    expect(added).toEqual([expect.stringMatching(/ POST \/mcp - - rejected:unknown_session 401 /)]);
  });

  test('an authenticated client signing a method with newlines: logged as what it is, escaped, on one line', async () => {
    const client = new RawClient(gateway.url, CLIENT, GATEWAY.did);
    await client.handshake();
    await client.initialize();
    const before = gateway.stderr().split('\n').length;
    const signed = await client.sign({ jsonrpc: '2.0', id: 3, method: forged });
    const response = await client.post(signed.text);
    await response.text();
    await sleep(200);
    const added = gateway.stderr().split('\n').slice(before - 1, -1).filter((l) => l.includes(' POST /mcp x'));
    expect(added).toHaveLength(1);
    expect(added[0]).toContain(' POST /mcp x\\u000a2026-01-01T00:00:00.000Z\\u0020POST');
    expect(added[0]).toContain(`${CLIENT.did} verified`);
    expect(strayLines(gateway.stderr())).toEqual([]);
  });

  test('--json-log: every line is one JSON object, with no raw control character', async () => {
    const json = await startGatewayProcess(['--upstream', upstream.url, '--listen', '127.0.0.1:0', '--identity', gatewayFile, '--json-log']);
    try {
      const response = await fetch(json.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: forged }) });
      await response.text();
      await sleep(200);
      for (const line of json.stderr().trim().split('\n')) {
        expect([...line].filter((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) > 0x7e)).toEqual([]);
        expect(() => JSON.parse(line)).not.toThrow();
      }
    } finally {
      await json.stop('SIGKILL');
    }
  });
});

describe('a hostile HTTP upstream', () => {
  let upstream: Server;
  let gateway: GatewayProcess;
  let client: RawClient;
  beforeAll(async () => {
    // Answers a tools/call by the text it asks for: each answer something a gateway must not pass on as it is.
    upstream = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        const message = JSON.parse(body || '{}') as { id?: number; params?: { arguments?: { text?: string } } };
        const text = message.params?.arguments?.text;
        const ok = JSON.stringify({ jsonrpc: '2.0', id: message.id, result: { content: [{ type: 'text', text: 'fine' }] } });
        if (text === 'huge-json') {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(`{"jsonrpc":"2.0","id":${message.id},"result":{"pad":"${'z'.repeat(2 * 1024 * 1024)}"}}`);
        } else if (text === 'huge-event') {
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          res.write(`event: message\ndata: {"jsonrpc":"2.0","method":"notifications/message","params":{"data":"`);
          for (let i = 0; i < 64; i++) res.write('e'.repeat(64 * 1024));
          res.end('"}}\n\n');
        } else if (text === 'fakepqc') {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ jsonrpc: '2.0', id: message.id, result: { content: [{ type: 'text', text: 'fine' }] }, _pqc: { v: 2, signer_did: `did:pqaid:${'0'.repeat(64)}`, signature: 'ff' } }));
        } else if (text === 'html') {
          res.writeHead(200, { 'content-type': 'text/html' });
          res.end('<html><script>alert(1)</script></html>');
        } else if (text === 'headers') {
          res.writeHead(200, {
            'content-type': 'application/json',
            'set-cookie': 'stolen=1',
            location: 'http://evil.example/',
            'access-control-allow-origin': '*',
            'www-authenticate': 'Basic realm="x"',
            'x-upstream-secret': 'leak',
          });
          res.end(ok);
        } else {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(ok);
        }
      });
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/mcp`;
    gateway = await startGatewayProcess(['--upstream', url, '--listen', '127.0.0.1:0', '--identity', gatewayFile, '--max-body', String(1024 * 1024)]);
    client = new RawClient(gateway.url, CLIENT, GATEWAY.did);
    await client.handshake();
  });
  afterAll(async () => {
    await gateway.stop('SIGKILL');
    upstream.closeAllConnections();
    await new Promise<void>((resolve) => upstream.close(() => resolve()));
  });

  async function callWith(text: string): Promise<Response> {
    const signed = await client.sign({ jsonrpc: '2.0', id: client.id(), method: 'tools/call', params: { name: 'x', arguments: { text } } });
    return client.post(signed.text);
  }

  test('an answer larger than the bound: a signed 502, never buffered whole', async () => {
    const response = await callWith('huge-json');
    expect(response.status).toBe(502);
    const text = await response.text();
    expect(text).toContain('"_pqc"');
    expect(text).toContain('exceeds');
  });

  test('an event larger than the bound: the stream is cut, the event never signed', async () => {
    const response = await callWith('huge-event');
    const text = await response.text().catch(() => '');
    expect(text).not.toContain('eeee');
    await sleep(200);
    expect(gateway.stderr()).toMatch(/upstream_error:event_too_large/);
  });

  test('an envelope the upstream writes itself is replaced by the gateway signature', async () => {
    const signed = await client.sign({ jsonrpc: '2.0', id: client.id(), method: 'tools/call', params: { name: 'x', arguments: { text: 'fakepqc' } } });
    const response = await client.post(signed.text);
    expect(response.status).toBe(200);
    const [message] = await client.verified(response, signed.nonce);
    expect(message).toMatchObject({ result: { content: [{ text: 'fine' }] } });
  });

  test('an answer that is not JSON-RPC: a signed 502, not the upstream bytes', async () => {
    const response = await callWith('html');
    expect(response.status).toBe(502);
    const text = await response.text();
    expect(text).not.toContain('<script>');
    expect(text).toContain('not JSON-RPC');
  });

  test('headers the upstream sets for the client (cookies, redirects, CORS, auth challenges) do not reach it', async () => {
    const response = await callWith('headers');
    expect(response.status).toBe(200);
    for (const name of ['set-cookie', 'location', 'access-control-allow-origin', 'www-authenticate', 'x-upstream-secret']) expect(response.headers.get(name)).toBeNull();
    const body = await response.text();
    expect(body).toContain('"fine"');
    expect(body).toContain('"_pqc"');
  });
});

describe('a hostile stdio child', () => {
  let gateway: GatewayProcess;
  beforeAll(async () => {
    gateway = await startGatewayProcess([
      '--upstream-command', HOSTILE_CHILD, '--listen', '127.0.0.1:0', '--identity', gatewayFile, '--max-body', String(1024 * 1024),
      '--max-children', '3', '--max-children-per-client', '2',
    ]);
  });
  afterAll(() => gateway.stop('SIGKILL'));

  async function connect(identity = CLIENT) {
    const fetch = pqcFetch({ identity, serverDid: GATEWAY.did });
    const client = new ClientV2({ name: 'hostile-test', version: '1.0.0' });
    const transport = new TransportV2(new URL(gateway.url), { fetch });
    await client.connect(transport);
    return { client, transport, fetch };
  }
  const text = (result: unknown) => (result as { content: { text: string }[] }).content[0]!.text;

  test('garbage lines, answers to nothing, progress for nothing: dropped; the real answer arrives, verified', async () => {
    const { client } = await connect();
    expect(text(await client.callTool({ name: 'garbage', arguments: {} }))).toBe('after garbage');
    expect(text(await client.callTool({ name: 'wrongid', arguments: {} }))).toBe('right id');
    await client.close();
    await sleep(200);
    expect(gateway.stderr()).toContain('dropped an answer to no open request (id 987654)');
  });

  test('an answer carrying an envelope of its own is not JSON-RPC to the SDK: dropped and logged, never delivered', async () => {
    const { client, fetch } = await connect();
    await expect(client.callTool({ name: 'fakepqc', arguments: {} }, { timeout: 3000 })).rejects.toThrow(/timed out|timeout/i);
    expect(text(await client.callTool({ name: 'ok', arguments: {} }))).toBe('ok');
    expect(fetch.audit.entries().filter((e) => !e.verified)).toEqual([]);
    await client.close();
    expect(gateway.stderr()).toMatch(/wrote what is not a JSON-RPC message: .*Unrecognized key: \\\\"_pqc\\\\"/);
  });

  test('a stderr flood with control characters and forged log lines: rate-limited, escaped, prefixed', async () => {
    const { client } = await connect();
    expect(text(await client.callTool({ name: 'flood', arguments: {} }))).toBe('flooded');
    await client.close();
    await sleep(300);
    const stderr = gateway.stderr();
    expect(stderr).not.toContain('\u001b');
    expect(stderr).toContain('stderr: \\u001b[31mstarting\\u001b[0m \\u202eevil');
    expect(strayLines(stderr)).toEqual([]);
    // The forged request lines come out prefixed, so they are not request lines, and at most 50 per 10 s.
    expect(stderr.split('\n').filter((l) => l.includes('did:pqaid:forged')).every((l) => l.startsWith('pqc-mcp gateway: mcp server pid'))).toBe(true);
    expect(stderr.split('\n').filter((l) => l.includes('stderr: flood line')).length).toBeLessThanOrEqual(50);
  });

  test('a line over the bound ends that session only; an exit mid-request gets the client an error, then 404', async () => {
    const { client } = await connect();
    await expect(client.callTool({ name: 'huge', arguments: {} })).rejects.toThrow(/exited|session/i);
    const second = await connect();
    await expect(second.client.callTool({ name: 'exit', arguments: {} })).rejects.toThrow(/the MCP server process exited before answering/);
    await expect(second.client.callTool({ name: 'ok', arguments: {} })).rejects.toThrow(/404|Session not found/i);
    const third = await connect();
    expect(text(await third.client.callTool({ name: 'ok', arguments: {} }))).toBe('ok');
    await third.client.close();
    await client.close().catch(() => {});
    await second.client.close().catch(() => {});
  });

  test('process limits: a client past its share (starting ones included) loses its oldest session; past the total, the least recently used idle one; 503 when no client holds two', async () => {
    const a1 = await connect(CLIENT);
    const a2 = await connect(CLIENT);
    const a3 = await connect(CLIENT); // ends a1's process (2 per client)
    await expect(a1.client.callTool({ name: 'ok', arguments: {} })).rejects.toThrow();
    expect(text(await a3.client.callTool({ name: 'ok', arguments: {} }))).toBe('ok');
    const b1 = await connect(OTHER); // 3 in all
    // Full: a third client's session ends the least recently used idle one (a2), never one in use.
    const c1 = await connect(THIRD);
    expect(text(await c1.client.callTool({ name: 'ok', arguments: {} }))).toBe('ok');
    await expect(a2.client.callTool({ name: 'ok', arguments: {} })).rejects.toThrow();
    // Every process busy: a new session is refused, and the calls in flight finish.
    const busy = [a3, b1, c1].map((c) => c.client.callTool({ name: 'slow', arguments: {} }));
    await sleep(300);
    await expect(connect(FOURTH)).rejects.toThrow(/503|MCP sessions are open/);
    for (const result of await Promise.all(busy)) expect(text(result)).toBe('slow done');
    // One key opening sessions all at once is held to its share, those still starting included: it takes two
    // processes (each ending one other idle session), the third initialize is refused, and one other client keeps its.
    const burst = await Promise.allSettled([connect(FOURTH), connect(FOURTH), connect(FOURTH)]);
    expect(burst.filter((r) => r.status === 'fulfilled').length).toBe(2);
    const survivors = await Promise.allSettled([a3, b1, c1].map((c) => c.client.callTool({ name: 'ok', arguments: {} })));
    expect(survivors.filter((r) => r.status === 'fulfilled').length).toBe(1);
    for (const r of burst) if (r.status === 'fulfilled') await r.value.client.close().catch(() => {});
    for (const c of [a2, a3, b1, c1]) await c.client.close().catch(() => {});
  });

  test('an unauthenticated flood starts no process', async () => {
    await sleep(200);
    const started = () => (gateway.stderr().match(/: started for /g) ?? []).length;
    const before = started();
    await Promise.all(
      Array.from({ length: 30 }, async (_, i) => {
        const response = await fetch(gateway.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
          body: JSON.stringify(initializeMessage(i)),
        });
        expect(response.status).toBe(401);
        await response.text();
      }),
    );
    await sleep(200);
    expect(started()).toBe(before);
  });
});
