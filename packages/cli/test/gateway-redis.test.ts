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
import { pqcFetch } from '@pqc-mcp/core';
import { RawClient, RedisProcess, initializeMessage } from '@pqc-mcp/test-kit';
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


const GATEWAY = seededIdentity(101, 'ML-DSA-65', 'gateway');
const CLIENT = seededIdentity(102, 'ML-DSA-65', 'client');

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
    // The handshake on A; the same signed initialize (same session, same nonce) to A, then to B.
    const client = new RawClient(a.url, CLIENT, GATEWAY.did);
    await client.handshake();
    const signed = await client.sign(initializeMessage(1));
    const first = await client.post(signed.text);
    expect(first.status).toBe(200);
    await first.text();
    // B's endpoint has the same path as A's: the signed http.path holds on both.
    const replay = await client.post(signed.text, {}, b.url);
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
