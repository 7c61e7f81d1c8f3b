/**
 * `pqc-mcp gateway` (the real binary) in front of an unmodified MCP SDK server on HTTP (no PQC), with the official
 * MCP SDK clients (v2 and 1.x) on `pqcFetch`: SSE and JSON answers, what reaches the upstream (the verified body,
 * the signed target, the header allow-list), logs, audit, --allow, an upstream down at start or later, shutdown.
 */
import { readFileSync } from 'node:fs';
import { Client as ClientV2, StreamableHTTPClientTransport as TransportV2 } from '@modelcontextprotocol/client';
import { Client as ClientV1 } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as TransportV1 } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { pqcFetch, type AuditEntry } from '@pqc-mcp/core';
import {
  closedPort,
  createTestMcpApp,
  expectCleanError,
  runCli,
  seededIdentity,
  startGatewayProcess,
  startPlainUpstream,
  tempDir,
  writeIdentity,
  type GatewayProcess,
  type PlainUpstream,
} from './helpers.js';

const GATEWAY = seededIdentity(61, 'ML-DSA-65', 'gateway');
const CLIENT = seededIdentity(62, 'ML-DSA-65', 'client');
const OTHER = seededIdentity(63, 'ML-DSA-65', 'other');

const tmp = tempDir();
let gatewayFile: string;
let clientFile: string;
beforeAll(async () => {
  gatewayFile = await writeIdentity(GATEWAY, tmp.path('gateway.json'));
  clientFile = await writeIdentity(CLIENT, tmp.path('client.json'));
});
afterAll(() => tmp.cleanup());

function textOf(result: object): string | undefined {
  return ((result as { content?: unknown }).content as { type: string; text?: string }[] | undefined)?.find((c) => c.type === 'text')?.text;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The v2 SDK client through pqcFetch, with extra request headers (what a client might try to smuggle). */
async function connectV2(url: string, headers: Record<string, string> = {}) {
  const fetch = pqcFetch({ identity: CLIENT, serverDid: GATEWAY.did });
  const client = new ClientV2({ name: 'v2-client', version: '1.0.0' });
  const transport = new TransportV2(new URL(url), { fetch, requestInit: { headers } });
  await client.connect(transport);
  return { client, transport, fetch };
}

describe.each([
  ['SSE', false],
  ['JSON', true],
])('gateway in front of a plain MCP SDK server (%s answers)', (mode, json) => {
  let upstream: PlainUpstream;
  let gateway: GatewayProcess;
  let auditFile: string;

  beforeAll(async () => {
    upstream = await startPlainUpstream(createTestMcpApp({ json, slowTool: true }));
    auditFile = tmp.path(`audit-${mode}.jsonl`);
    gateway = await startGatewayProcess(['--upstream', upstream.url, '--listen', '127.0.0.1:0', '--identity', gatewayFile, '--audit', auditFile]);
  });
  afterAll(async () => {
    await gateway.stop('SIGKILL');
    await upstream.close();
  });

  test('READY names the MCP endpoint and the gateway DID', () => {
    expect(gateway.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/mcp$/);
    expect(gateway.did).toBe(GATEWAY.did);
    expect(gateway.stdout()).toBe(`READY ${gateway.url} ${GATEWAY.did}\n`);
  });

  test('the MCP SDK v2 client on pqcFetch: tools through the gateway, every answer verified', async () => {
    const { client, transport, fetch } = await connectV2(gateway.url);
    expect((await client.listTools()).tools.map((t) => t.name).sort()).toEqual(['add', 'echo', 'slow', 'whoami']);
    expect(textOf(await client.callTool({ name: 'echo', arguments: { text: 'post-quantum ✓ 😀' } }))).toBe('post-quantum ✓ 😀');
    expect(textOf(await client.callTool({ name: 'add', arguments: { a: 2, b: 3.5 } }))).toBe('5.5');
    await transport.terminateSession();
    await client.close();
    await fetch.endSession();
    expect(fetch.audit.entries().filter((e) => !e.verified)).toEqual([]);
    expect(fetch.audit.entries().filter((e) => e.operation === 'response').length).toBeGreaterThanOrEqual(3);
    expect(JSON.stringify(upstream.seen)).not.toContain('_pqc');
  });

  test('the MCP SDK 1.x client on pqcFetch, the same', async () => {
    const fetch = pqcFetch({ identity: CLIENT, serverDid: GATEWAY.did });
    const client = new ClientV1({ name: 'v1-sdk-client', version: '1.0.0' });
    const transport = new TransportV1(new URL(gateway.url), { fetch });
    await client.connect(transport);
    expect(textOf(await client.callTool({ name: 'echo', arguments: { text: 'sdk 1.x' } }))).toBe('sdk 1.x');
    await transport.terminateSession();
    await client.close();
  });

  test('the upstream gets the verified body, the allow-listed headers and the verified DID; nothing the client smuggles', async () => {
    const before = upstream.requests.length;
    const { client, transport } = await connectV2(gateway.url, {
      authorization: 'Bearer stolen-token',
      cookie: 'session=victim',
      forwarded: 'for=10.9.9.9;host=evil',
      'x-forwarded-for': '10.9.9.9',
      'x-forwarded-host': 'evil.example',
      'x-forwarded-proto': 'https',
      'pqc-peer-did': OTHER.did,
      'x-custom': 'nope',
    });
    await client.callTool({ name: 'echo', arguments: { text: 'headers' } });
    await transport.terminateSession();
    await client.close();
    const seen = upstream.requests.slice(before);
    expect(seen.map((r) => r.method)).toEqual(expect.arrayContaining(['POST', 'DELETE']));
    for (const { headers } of seen) {
      for (const name of ['authorization', 'cookie', 'forwarded', 'x-custom', 'pqc-envelope', 'pqc-session', 'last-event-id']) expect(headers[name]).toBeUndefined();
      expect(headers['pqc-peer-did']).toBe(CLIENT.did);
      expect(headers['x-forwarded-for']).toBe('127.0.0.1');
      expect(headers['x-forwarded-host']).toBe(new URL(gateway.url).host);
      expect(headers['x-forwarded-proto']).toBe('http');
    }
    const mcpSession = seen[1]!.headers['mcp-session-id'];
    expect(mcpSession).toMatch(/^[0-9a-f-]{36}$/);
    for (const { headers } of seen.slice(1)) expect(headers['mcp-session-id']).toBe(mcpSession);
  });

  test('a request without PQC is refused and never reaches the upstream; other paths are 404', async () => {
    const seenBefore = upstream.seen.length;
    const response = await fetch(gateway.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } } }),
    });
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe(`PQC handshake="${new URL('pqc/handshake', gateway.url).href}"`);
    expect(await response.json()).toMatchObject({ error: { data: { pqc: 'missing_envelope' } } });
    expect(upstream.seen.length).toBe(seenBefore);
    const info = await fetch(new URL('pqc/handshake', gateway.url));
    expect(await info.json()).toMatchObject({ did: GATEWAY.did, public_key: GATEWAY.publicKeyHex, versions: [2] });
    const elsewhere = await fetch(new URL('/admin', gateway.url));
    expect(elsewhere.status).toBe(404);
    await elsewhere.text();
    const preflight = await fetch(gateway.url, { method: 'OPTIONS' });
    expect(preflight.status).toBe(204);
    expect(upstream.requests.some((r) => r.method === 'OPTIONS')).toBe(false);
  });

  test('one log line per request on stderr, from what core verified; the audit trail as JSON lines', async () => {
    await sleep(200); // the last log lines are written when each response ends
    const lines = gateway.stderr().trim().split('\n');
    expect(lines[0]).toMatch(/^pqc-mcp gateway: http:\/\/127\.0\.0\.1:\d+\/mcp -> http:\/\/127\.0\.0\.1:\d+\/mcp as did:pqaid:/);
    const requestLines = lines.filter((l) => /^\d{4}-\d\d-\d\dT/.test(l));
    expect(requestLines.find((l) => l.includes(' POST /pqc/handshake pqc/handshake ') && l.includes(CLIENT.did) && / handshake 200 [\d.]+ms/.test(l))).toBeDefined();
    expect(requestLines.find((l) => l.includes(' POST /mcp tools/call ') && l.includes(CLIENT.did) && / verified 200 [\d.]+ms signed=\d+/.test(l))).toBeDefined();
    // An unsigned request: its JSON-RPC method is not logged (nothing unverified is), its verdict is.
    expect(requestLines.find((l) => l.includes(' POST /mcp - - rejected:missing_envelope 401 '))).toBeDefined();
    expect(requestLines.find((l) => l.includes(' DELETE /mcp - ') && l.includes(' verified 200 '))).toBeDefined();
    expect(requestLines.find((l) => l.includes(' DELETE /pqc/handshake - ') && l.includes(' end-session 204 '))).toBeDefined();
    expect(requestLines.find((l) => l.includes(' GET /admin - - not_found 404 '))).toBeDefined();
    expect(requestLines.find((l) => l.includes(' OPTIONS /mcp - - info 204 '))).toBeDefined();

    const audit = readFileSync(auditFile, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as AuditEntry);
    expect(new Set(audit.map((e) => e.operation))).toEqual(new Set(['handshake', 'request', 'notification', 'response', 'rejected']));
    expect(audit.find((e) => e.operation === 'request' && e.method === 'tools/call')).toMatchObject({ peer_did: CLIENT.did, verified: true });
    expect(audit.find((e) => e.operation === 'rejected')).toMatchObject({ reason: 'missing_envelope', verified: false, method: null });
    // A verified GET or DELETE is a 'request' with method null and its HTTP method and path in details; the answers the
    // gateway signed are its 'response' entries.
    const bodyless = audit.filter((e) => e.operation === 'request' && e.method === null);
    expect(bodyless.map((e) => (e.details as { http_method?: string } | null)?.http_method)).toContain('DELETE');
    expect(bodyless.every((e) => e.peer_did === CLIENT.did && e.verified)).toBe(true);
    expect(audit.filter((e) => e.operation === 'response' && e.signer_did === GATEWAY.did).length).toBeGreaterThanOrEqual(3);
  });

  if (!json) {
    test('SSE is streamed through as it comes, not buffered: progress reaches the client while the tool works', async () => {
      const { client } = await connectV2(gateway.url);
      const start = Date.now();
      const progress: number[] = [];
      const result = await client.callTool({ name: 'slow', arguments: { steps: 3 } }, { onprogress: () => void progress.push(Date.now() - start) });
      const done = Date.now() - start;
      await client.close();
      expect(textOf(result)).toBe('done after 3 steps');
      expect(progress.length).toBe(3);
      expect(done - progress[0]!).toBeGreaterThanOrEqual(500);
    });
  }
});

describe('gateway options and failures', () => {
  test('--allow: only the listed client may open a session (--json-log lines)', async () => {
    const upstream = await startPlainUpstream(createTestMcpApp({ json: true }));
    const gateway = await startGatewayProcess(['--upstream', upstream.url, '--listen', '127.0.0.1:0', '--identity', gatewayFile, '--allow', CLIENT.did, '--json-log']);
    try {
      const outsider = pqcFetch({ identity: OTHER, serverDid: GATEWAY.did });
      await expect(outsider.handshake(gateway.url)).rejects.toMatchObject({ reason: 'peer_not_authorized' });
      expect(upstream.seen).toEqual([]);
      const { client } = await connectV2(gateway.url);
      expect(textOf(await client.callTool({ name: 'echo', arguments: { text: 'allowed' } }))).toBe('allowed');
      await client.close();
      await sleep(200);
      const logs = gateway
        .stderr()
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(logs[0]).toMatchObject({ event: 'listening', did: GATEWAY.did, allow: [CLIENT.did] });
      expect(logs).toContainEqual(expect.objectContaining({ path: '/pqc/handshake', verdict: 'rejected', reason: 'peer_not_authorized', status: 403 }));
      expect(logs).toContainEqual(
        expect.objectContaining({ http_method: 'POST', rpc_method: 'tools/call', peer_did: CLIENT.did, verdict: 'verified', status: 200, latency_ms: expect.any(Number) }),
      );
    } finally {
      await gateway.stop('SIGKILL');
      await upstream.close();
    }
  });

  test('the client signed a query: the upstream gets it after its own, and never a parameter of its own overridden', async () => {
    const upstream = await startPlainUpstream(createTestMcpApp({ json: true }));
    const gateway = await startGatewayProcess(['--upstream', `${upstream.url}?key=K`, '--listen', '127.0.0.1:0', '--identity', gatewayFile]);
    try {
      // The gateway's start-up check reached the upstream URL as configured.
      expect(upstream.requests.map((r) => `${r.method} ${r.url}`)).toEqual(['GET /mcp?key=K']);
      const { client } = await connectV2(`${gateway.url}?key=evil&tenant=t1`);
      await client.callTool({ name: 'echo', arguments: { text: 'q' } });
      await client.close();
      const requests = upstream.requests.slice(1);
      expect(requests.filter((r) => r.method === 'POST').map((r) => r.url)).toEqual(expect.arrayContaining(['/mcp?key=K&tenant=t1']));
      expect(requests.map((r) => `${r.method} ${r.url}`).filter((r) => !r.endsWith(' /mcp?key=K&tenant=t1'))).toEqual([]);
    } finally {
      await gateway.stop('SIGKILL');
      await upstream.close();
    }
  });

  test('an HTTP upstream that is down at start: a clear error, exit 3, no READY', async () => {
    const port = await closedPort();
    const result = await runCli(['gateway', '--upstream', `http://127.0.0.1:${port}/mcp`, '--listen', '127.0.0.1:0', '--identity', gatewayFile]);
    expectCleanError(result, 3, /the upstream MCP server http:\/\/127\.0\.0\.1:\d+\/mcp cannot be reached \(ECONNREFUSED\)/);
    expect(result.stdout).not.toContain('READY');
  });

  test('an upstream that goes down later: the gateway answers 502 (signed), logs upstream_error, `call` exits 3', async () => {
    const upstream = await startPlainUpstream(createTestMcpApp({ json: true }));
    const gateway = await startGatewayProcess(['--upstream', upstream.url, '--listen', '127.0.0.1:0', '--identity', gatewayFile]);
    try {
      await upstream.close();
      const result = await runCli(['call', gateway.url, 'echo', '{"text":"x"}', '--identity', clientFile, '--server-did', gateway.did]);
      expectCleanError(result, 3, /answered HTTP 502: Bad gateway: the upstream MCP server cannot be reached \(ECONNREFUSED\)/);
      await sleep(200);
      expect(gateway.stderr()).toMatch(/ POST \/mcp initialize did:pqaid:[0-9a-f]{64} upstream_error:ECONNREFUSED 502 /);
    } finally {
      await gateway.stop('SIGKILL');
    }
  });

  test('a port in use: exit 3 with a clear error', async () => {
    const upstream = await startPlainUpstream(createTestMcpApp({ json: true }));
    const port = new URL(upstream.url).port;
    try {
      const result = await runCli(['gateway', '--upstream', upstream.url, '--listen', `127.0.0.1:${port}`, '--identity', gatewayFile]);
      expectCleanError(result, 3, /cannot listen on 127\.0\.0\.1:\d+: address in use/);
    } finally {
      await upstream.close();
    }
  });

  test('usage errors: both upstreams, neither, stdio flags with an HTTP upstream', async () => {
    const both = await runCli(['gateway', '--upstream', 'http://127.0.0.1:1/mcp', '--upstream-command', 'node x.js', '--listen', '0', '--identity', gatewayFile]);
    expectCleanError(both, 2, /give one of --upstream URL or --upstream-command/);
    const neither = await runCli(['gateway', '--listen', '0', '--identity', gatewayFile]);
    expectCleanError(neither, 2, /give one of --upstream URL or --upstream-command/);
    const stray = await runCli(['gateway', '--upstream', 'http://127.0.0.1:1/mcp', '--max-children', '3', '--listen', '0', '--identity', gatewayFile]);
    expectCleanError(stray, 2, /--max-children applies to --upstream-command only/);
  });

  test('SIGTERM stops gracefully while a client holds an SSE stream open (exit 0)', async () => {
    const upstream = await startPlainUpstream(createTestMcpApp({ json: false }));
    const gateway = await startGatewayProcess(['--upstream', upstream.url, '--listen', '127.0.0.1:0', '--identity', gatewayFile]);
    const { client } = await connectV2(gateway.url);
    try {
      expect(textOf(await client.callTool({ name: 'echo', arguments: { text: 'before stop' } }))).toBe('before stop');
      for (let i = 0; i < 50 && !upstream.requests.some((r) => r.method === 'GET'); i++) await sleep(50);
      expect(upstream.requests.some((r) => r.method === 'GET')).toBe(true);
      const started = Date.now();
      const code = await gateway.stop('SIGTERM');
      expect(code).toBe(0);
      expect(Date.now() - started).toBeLessThan(4000);
      expect(gateway.stderr()).toMatch(/SIGTERM, stopping[\s\S]*stopped/);
    } finally {
      await client.close().catch(() => {});
      await gateway.stop('SIGKILL');
      await upstream.close();
    }
  });
});
