/**
 * `pqc-mcp gateway --redis URL`: two gateway processes share PQC sessions through a real Redis (redis-server from
 * the distribution): a session opened by a handshake on one gateway is accepted by the other, and a nonce used on
 * one is a replay on the other.
 */
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { MessageSigner, PQCHandshake, pqcFetch } from '@pqc-mcp/core';
import { RedisProcess } from '@pqc-mcp/test-kit';
import {
  ROOT,
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


const GATEWAY = seededIdentity(101, 'gateway');
const CLIENT = seededIdentity(102, 'client');

describe('gateway --redis: sessions shared by two gateway processes', () => {
  const tmp = tempDir();
  const redis = new RedisProcess();
  let upstream: PlainUpstream;
  let a: GatewayProcess;
  let b: GatewayProcess;

  beforeAll(async () => {
    // The binary imports @pqc-mcp/redis from its dist when --redis is given.
    const tsc = createRequire(join(ROOT, 'package.json')).resolve('typescript/bin/tsc');
    execFileSync(process.execPath, [tsc, '-p', join(ROOT, 'packages', 'redis', 'tsconfig.build.json')], { stdio: 'inherit' });
    await redis.start();
    const identityFile = await writeIdentity(GATEWAY, tmp.path('gateway.json'));
    upstream = await startPlainUpstream(createTestMcpApp({ json: true }));
    const args = ['--upstream', upstream.url, '--listen', '127.0.0.1:0', '--identity', identityFile, '--redis', redis.url];
    [a, b] = await Promise.all([startGatewayProcess(args), startGatewayProcess(args)]);
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await upstream?.close();
    await redis.kill();
    tmp.cleanup();
  });

  test('a handshake on one gateway, MCP through the other', async () => {
    expect(a.stderr()).toContain('sessions in redis');
    const fetch = pqcFetch({ identity: CLIENT, serverDid: GATEWAY.did, handshakeUrl: new URL('pqc/handshake', a.url) });
    const client = new Client({ name: 'redis-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(b.url), { fetch }));
    expect(await client.callTool({ name: 'echo', arguments: { text: 'shared' } })).toMatchObject({ content: [{ type: 'text', text: 'shared' }] });
    await client.close();
    await new Promise((r) => setTimeout(r, 200));
    expect(a.stderr()).toMatch(/POST \/pqc\/handshake pqc\/handshake \S+ handshake 200/);
    expect(b.stderr()).not.toContain('/pqc/handshake');
    expect(b.stderr()).toMatch(/POST \/mcp tools\/call \S+ verified 200/);
  });

  test('a nonce used on one gateway is a replay on the other', async () => {
    const { request, pending } = await PQCHandshake.initiate(CLIENT);
    const response = await fetch(new URL('pqc/handshake', a.url), { method: 'POST', body: request });
    const session = await PQCHandshake.complete(await response.text(), CLIENT, pending, { serverDid: GATEWAY.did });
    const signed = await new MessageSigner(CLIENT).signMessage(
      { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } } },
      { sessionId: session.sessionId },
    );
    const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
    const first = await fetch(a.url, { method: 'POST', headers, body: signed.text });
    expect(first.status).toBe(200);
    await first.text();
    const replay = await fetch(b.url, { method: 'POST', headers, body: signed.text });
    expect(replay.status).toBe(401);
    expect(await replay.json()).toMatchObject({ error: { data: { pqc: 'replay_detected' } } });
  });

  test('an unreachable Redis at start: exit 3 with a clear error', async () => {
    const port = await closedPort();
    const result = await runCli([
      'gateway', '--upstream', upstream.url, '--listen', '127.0.0.1:0', '--identity', tmp.path('gateway.json'), '--redis', `redis://127.0.0.1:${port}`,
    ]);
    expectCleanError(result, 3, /cannot reach Redis at 127\.0\.0\.1:\d+/);
  });
});
