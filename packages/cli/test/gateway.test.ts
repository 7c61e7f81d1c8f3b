/**
 * `pqc-mcp gateway` (the real binary) in front of an unmodified MCP SDK server with no PQC, and `PQCMCPClient`
 * calling through it: SSE and JSON responses, header forwarding, streaming, logs, audit, --allow, a dead upstream,
 * graceful shutdown.
 */
import { readFileSync } from 'node:fs';
import type { AuditEntry } from '@pqc-mcp/core';
import { PQCMCPClient } from '@pqc-mcp/mcp';
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

const GATEWAY = seededIdentity(61, 'gateway');
const CLIENT = seededIdentity(62, 'client');
const OTHER = seededIdentity(63, 'other');

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

describe.each([
  ['SSE', false],
  ['JSON', true],
])('gateway in front of a plain MCP SDK server (%s responses)', (mode, json) => {
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

  test('PQCMCPClient: initialize, tools/list, tools/call through the gateway; the upstream sees plain MCP', async () => {
    const client = new PQCMCPClient({ identity: CLIENT, serverUrl: gateway.url, serverDid: gateway.did });
    const session = await client.connect();
    expect(session.peerDid).toBe(GATEWAY.did);
    expect((await client.listTools()).map((t) => t.name).sort()).toEqual(['add', 'echo', 'slow']);
    expect(textOf(await client.callTool('echo', { text: 'post-quantum ✓ 😀' }))).toBe('post-quantum ✓ 😀');
    expect(textOf(await client.callTool('add', { a: 2, b: 3.5 }))).toBe('5.5');
    await client.close();

    // Every server message was signed by the gateway and verified by the client; nothing was refused.
    const audit = client.getAuditLog();
    expect(audit.filter((e) => !e.verified)).toEqual([]);
    expect(audit.filter((e) => e.operation === 'response').length).toBeGreaterThanOrEqual(3);

    // The upstream got plain MCP: no envelope, no PQC header, the verified client DID, the MCP headers.
    expect(upstream.seen.length).toBeGreaterThanOrEqual(4);
    expect(JSON.stringify(upstream.seen)).not.toContain('_pqc');
    const requests = upstream.requests;
    expect(requests.map((r) => r.method)).toEqual(expect.arrayContaining(['POST', 'DELETE']));
    for (const request of requests) {
      expect(request.headers['pqc-envelope']).toBeUndefined();
      expect(request.headers['pqc-peer-did']).toBe(CLIENT.did);
      expect(request.headers.connection).not.toMatch(/upgrade/i);
    }
    const afterInit = requests.slice(1);
    const mcpSession = afterInit[0]!.headers['mcp-session-id'];
    expect(mcpSession).toMatch(/^[0-9a-f-]{36}$/);
    for (const request of afterInit) {
      expect(request.headers['mcp-session-id']).toBe(mcpSession);
      expect(request.headers['mcp-protocol-version']).toEqual(expect.any(String));
    }
  });

  test('a request without PQC is refused and never reaches the upstream', async () => {
    const seenBefore = upstream.seen.length;
    const response = await fetch(gateway.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } } }),
    });
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe(`PQC handshake="${new URL('pqc/handshake', gateway.url).href}"`);
    expect(await response.json()).toMatchObject({ id: 1, error: { data: { pqc: 'missing_envelope' } } });
    expect(upstream.seen.length).toBe(seenBefore);

    const info = await fetch(new URL('pqc/handshake', gateway.url));
    expect(await info.json()).toMatchObject({ did: GATEWAY.did, public_key: GATEWAY.publicKeyHex, versions: [2] });
    const elsewhere = await fetch(new URL('/admin', gateway.url));
    expect(elsewhere.status).toBe(404);
    await elsewhere.text();
  });

  test('one log line per request on stderr; the audit trail as JSON lines', async () => {
    await new Promise((r) => setTimeout(r, 200)); // the last log lines are written when each response ends
    const lines = gateway.stderr().trim().split('\n');
    expect(lines[0]).toMatch(/^pqc-mcp gateway: http:\/\/127\.0\.0\.1:\d+\/mcp -> http:\/\/127\.0\.0\.1:\d+\/mcp as did:pqaid:/);
    const requestLines = lines.filter((l) => /^\d{4}-\d\d-\d\dT/.test(l));
    expect(requestLines.find((l) => l.includes(' POST /pqc/handshake pqc/handshake ') && l.includes(CLIENT.did) && / handshake 200 [\d.]+ms/.test(l))).toBeDefined();
    expect(requestLines.find((l) => l.includes(' POST /mcp tools/call ') && l.includes(CLIENT.did) && / verified 200 [\d.]+ms signed=\d+/.test(l))).toBeDefined();
    expect(requestLines.find((l) => l.includes(' POST /mcp initialize - rejected:missing_envelope 401 '))).toBeDefined();
    expect(requestLines.find((l) => l.includes(' DELETE /mcp - ') && l.includes(' verified 200 '))).toBeDefined();
    expect(requestLines.find((l) => l.includes(' GET /admin - - not_found 404 '))).toBeDefined();

    const audit = readFileSync(auditFile, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as AuditEntry);
    const ops = new Set(audit.map((e) => e.operation));
    expect(ops).toEqual(new Set(['handshake', 'request', 'notification', 'response', 'rejected']));
    expect(audit.find((e) => e.operation === 'request' && e.method === 'tools/call')).toMatchObject({ peer_did: CLIENT.did, verified: true });
    expect(audit.find((e) => e.operation === 'rejected')).toMatchObject({ reason: 'missing_envelope', verified: false });
    expect(audit.filter((e) => e.operation === 'response').every((e) => e.signer_did === GATEWAY.did)).toBe(true);
  });

  if (!json) {
    test('SSE is streamed through as it comes, not buffered', async () => {
      const client = new PQCMCPClient({ identity: CLIENT, serverUrl: gateway.url, serverDid: gateway.did });
      await client.connect();
      const start = Date.now();
      const progress: number[] = [];
      const result = await client.callTool('slow', { steps: 3 }, { onprogress: () => void progress.push(Date.now() - start) });
      const done = Date.now() - start;
      await client.close();
      expect(textOf(result)).toBe('done after 3 steps');
      expect(progress.length).toBe(3);
      // The first progress notification arrives while the tool is still working (~900 ms in all).
      expect(done - progress[0]!).toBeGreaterThanOrEqual(500);
    });
  }
});

describe('gateway options and failures', () => {
  test('--allow: only the listed client may open a session (--json-log lines)', async () => {
    const upstream = await startPlainUpstream(createTestMcpApp({ json: true }));
    const gateway = await startGatewayProcess([
      '--upstream', upstream.url, '--listen', '127.0.0.1:0', '--identity', gatewayFile, '--allow', CLIENT.did, '--json-log',
    ]);
    try {
      const outsider = new PQCMCPClient({ identity: OTHER, serverUrl: gateway.url, serverDid: gateway.did });
      await expect(outsider.connect()).rejects.toMatchObject({ reason: 'peer_not_authorized' });
      expect(upstream.seen).toEqual([]);
      const insider = new PQCMCPClient({ identity: CLIENT, serverUrl: gateway.url, serverDid: gateway.did });
      await insider.connect();
      expect(textOf(await insider.callTool('echo', { text: 'allowed' }))).toBe('allowed');
      await insider.close();
      await new Promise((r) => setTimeout(r, 200));
      const logs = gateway
        .stderr()
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(logs[0]).toMatchObject({ event: 'listening', did: GATEWAY.did, allow: [CLIENT.did] });
      expect(logs).toContainEqual(expect.objectContaining({ path: '/pqc/handshake', verdict: 'rejected', reason: 'peer_not_authorized', peer_did: OTHER.did, status: 403 }));
      expect(logs).toContainEqual(
        expect.objectContaining({ http_method: 'POST', rpc_method: 'tools/call', peer_did: CLIENT.did, verdict: 'verified', status: 200, latency_ms: expect.any(Number) }),
      );
    } finally {
      await gateway.stop('SIGKILL');
      await upstream.close();
    }
  });

  test('a dead upstream: the gateway answers 502 (signed), logs upstream_error, `call` exits 3', async () => {
    const port = await closedPort();
    const gateway = await startGatewayProcess(['--upstream', `http://127.0.0.1:${port}/mcp`, '--listen', '127.0.0.1:0', '--identity', gatewayFile]);
    try {
      const result = await runCli(['call', gateway.url, 'echo', '{"text":"x"}', '--identity', clientFile, '--server-did', gateway.did]);
      expectCleanError(result, 3, /answered HTTP 502: Bad gateway: the upstream MCP server cannot be reached \(ECONNREFUSED\)/);
      await new Promise((r) => setTimeout(r, 200));
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

  test('SIGTERM stops gracefully while a client holds an SSE stream open (exit 0)', async () => {
    const upstream = await startPlainUpstream(createTestMcpApp({ json: false }));
    const gateway = await startGatewayProcess(['--upstream', upstream.url, '--listen', '127.0.0.1:0', '--identity', gatewayFile]);
    const client = new PQCMCPClient({ identity: CLIENT, serverUrl: gateway.url, serverDid: gateway.did });
    try {
      await client.connect();
      expect(textOf(await client.callTool('echo', { text: 'before stop' }))).toBe('before stop');
      // Wait for the client's GET stream (opened after notifications/initialized) to reach the upstream.
      for (let i = 0; i < 50 && !upstream.requests.some((r) => r.method === 'GET'); i++) await new Promise((r) => setTimeout(r, 50));
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
