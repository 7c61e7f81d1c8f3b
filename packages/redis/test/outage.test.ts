/**
 * Redis failing under a running server: a redis-server of the test's own, frozen (SIGSTOP: connected but silent)
 * and killed (SIGKILL: connection refused), then back. Requests fail closed with 503 `store_unavailable`, quickly,
 * the server keeps running, nothing is left unhandled, and traffic resumes by itself once Redis answers again.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { pqcFetch } from '@pqc-mcp/core';
import { RedisSessionStore } from '../src/index.js';
import { RedisProcess, freePort, report, seededIdentity } from '@pqc-mcp/test-kit';
import {
  RawClient,
  reasonOf,
  sleep,
  startServer,
  trackUnhandledRejections,
  type TestServer,
} from './helpers.js';

const SERVER = seededIdentity(41);
const CLIENT = seededIdentity(42);
const COMMAND_TIMEOUT_MS = 300;

let own: RedisProcess;
let store: RedisSessionStore;
let server: TestServer;
let unhandled: ReturnType<typeof trackUnhandledRejections>;
const storeErrors: unknown[] = [];

beforeAll(async () => {
  unhandled = trackUnhandledRejections();
  own = new RedisProcess(await freePort());
  await own.start();
  store = new RedisSessionStore({ url: own.url, commandTimeoutMs: COMMAND_TIMEOUT_MS, connectTimeoutMs: 1000, onError: (e) => storeErrors.push(e) });
  server = await startServer({ identity: SERVER, store });
});

afterAll(async () => {
  await server?.close();
  await store?.close();
  await own?.kill();
  unhandled?.stop();
});

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** POSTs a fresh signed tools/call; returns status, reason and how long the answer took. */
async function call(client: RawClient): Promise<{ status: number; reason: string | undefined; ms: number }> {
  const signed = await client.toolCall('echo', { text: 'ping' });
  const t = performance.now();
  const response = await client.post(server.url, signed.text);
  const ms = performance.now() - t;
  const reason = response.status === 200 ? (await response.arrayBuffer(), undefined) : await reasonOf(response);
  return { status: response.status, reason, ms };
}

async function serverAlive(): Promise<void> {
  const info = await fetch(new URL('pqc/handshake', server.url));
  expect(info.status).toBe(200);
  expect(await info.json()).toMatchObject({ did: SERVER.did });
}

test('Redis frozen (SIGSTOP): 503 store_unavailable within the command deadline; the same session works after SIGCONT', async () => {
  const client = new RawClient(CLIENT, SERVER.did);
  await client.handshake(server.url);
  expect((await call(client)).status).toBe(200);

  own.freeze();
  try {
    const answers = await Promise.all(Array.from({ length: 10 }, () => call(client)));
    for (const a of answers) expect([a.status, a.reason]).toEqual([503, 'store_unavailable']);
    const handshake = client.handshake(server.url);
    await expect(handshake).rejects.toThrow(/503.*store_unavailable/);
    await serverAlive();
    const ms = answers.map((a) => a.ms);
    report(
      `[outage] Redis frozen: ${answers.length} requests → 503 store_unavailable, ` +
        `answer time p50 ${percentile(ms, 50).toFixed(0)} ms, max ${Math.max(...ms).toFixed(0)} ms (command deadline ${COMMAND_TIMEOUT_MS} ms)`,
    );
    expect(Math.max(...ms)).toBeLessThan(COMMAND_TIMEOUT_MS + 1500);
  } finally {
    own.thaw();
  }
  // The replies of the timed-out commands drain in order; the session (still in Redis) serves again.
  const after = await call(client);
  expect(after.status).toBe(200);
  for (let i = 0; i < 5; i++) expect((await call(client)).status).toBe(200);
});

test('Redis killed: 503 store_unavailable at once, the server keeps running; restarted: traffic resumes', async () => {
  const fetch = pqcFetch({ identity: CLIENT, serverDid: SERVER.did });
  const mcp = new Client({ name: 'outage', version: '1.0.0' });
  await mcp.connect(new StreamableHTTPClientTransport(new URL(server.url), { fetch }));
  expect(await mcp.callTool({ name: 'add', arguments: { a: 1, b: 2 } })).toMatchObject({ content: [{ text: '3' }] });
  const raw = new RawClient(CLIENT, SERVER.did);
  await raw.handshake(server.url);

  await own.kill();
  const killedAt = performance.now();
  const answers = [];
  for (let i = 0; i < 20; i++) answers.push(await call(raw));
  answers.push(...(await Promise.all(Array.from({ length: 20 }, () => call(raw)))));
  for (const a of answers) expect([a.status, a.reason]).toEqual([503, 'store_unavailable']);
  await expect(raw.handshake(server.url)).rejects.toThrow(/503.*store_unavailable/);
  await expect(mcp.callTool({ name: 'add', arguments: { a: 1, b: 2 } })).rejects.toThrow(/store_unavailable/);
  await serverAlive();
  const ms = answers.map((a) => a.ms);
  expect(percentile(ms, 50)).toBeLessThan(200);

  await own.start();
  const restartedAt = performance.now();
  // The store reconnects by itself (backoff capped at 1 s). This Redis keeps no data, so the old sessions are gone:
  // the SDK client's pqcFetch gets unknown_session, performs a new handshake and sends the call again, once.
  let recovered = false;
  let attempts = 0;
  while (!recovered && performance.now() - restartedAt < 10_000) {
    attempts++;
    try {
      expect(await mcp.callTool({ name: 'add', arguments: { a: 2, b: 3 } })).toMatchObject({ content: [{ text: '5' }] });
      recovered = true;
    } catch {
      await sleep(100);
    }
  }
  const recoveryMs = performance.now() - restartedAt;
  expect(recovered).toBe(true);
  await raw.handshake(server.url);
  expect((await call(raw)).status).toBe(200);
  await mcp.close();
  report(
    `[outage] Redis killed: ${answers.length} requests → 503 store_unavailable, answer time p50 ${percentile(ms, 50).toFixed(1)} ms, ` +
      `max ${Math.max(...ms).toFixed(1)} ms; down ${(restartedAt - killedAt).toFixed(0)} ms; traffic back ${recoveryMs.toFixed(0)} ms ` +
      `after the restart (${attempts} tries); client errors reported to onError: ${storeErrors.length}; unhandled rejections: ${unhandled.count()}`,
  );
  expect(unhandled.count()).toBe(0);
});
