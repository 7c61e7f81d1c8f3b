/**
 * Redis failing under a running server: a redis-server of the test's own, frozen (SIGSTOP: connected but silent)
 * and killed (SIGKILL: connection refused), then back. Requests fail closed with 503 `store_unavailable`, quickly,
 * none reaches the application, the server keeps running, nothing is left unhandled, and traffic resumes by itself
 * once Redis answers again.
 */
import { pqcFetch } from '@pqc-mcp/core';
import { RawClient, RedisProcess, connectSdkClient, freePort, report, seededIdentity } from '@pqc-mcp/test-kit';
import { RedisSessionStore } from '../src/index.js';
import { rejectionOf, sleep, startServer, trackUnhandledRejections, type TestServer } from './helpers.js';

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

interface Answer {
  status: number;
  reason: string | undefined;
  signed: boolean;
  retryAfter: string | null;
  ms: number;
}

/** POSTs a fresh signed tools/call; what came back and how long it took. */
async function call(client: RawClient): Promise<Answer> {
  const signed = await client.sign({ jsonrpc: '2.0', id: client.id(), method: 'tools/call', params: { name: 'echo', arguments: { text: 'ping' } } });
  const t = performance.now();
  const response = await client.post(signed.text);
  const ms = performance.now() - t;
  const retryAfter = response.headers.get('retry-after');
  if (response.status === 200) {
    expect(await client.verified(response, signed.nonce)).toMatchObject([{ result: { content: [{ text: 'ping' }] } }]);
    return { status: 200, reason: undefined, signed: true, retryAfter, ms };
  }
  return { ...(await rejectionOf(response)), retryAfter, ms };
}

/** What every request gets while Redis cannot answer: 503 store_unavailable, unsigned, retry after 1 s. */
const UNAVAILABLE = { status: 503, reason: 'store_unavailable', signed: false, retryAfter: '1' };

const strip = ({ status, reason, signed, retryAfter }: Answer) => ({ status, reason, signed, retryAfter });

async function serverAlive(): Promise<void> {
  const info = await fetch(new URL('pqc/handshake', server.url));
  expect(info.status).toBe(200);
  expect(await info.json()).toMatchObject({ did: SERVER.did });
}

test('Redis frozen (SIGSTOP): 503 store_unavailable within the command deadline; the same session works after SIGCONT', async () => {
  const client = new RawClient(server.url, CLIENT, SERVER.did);
  await client.handshake();
  expect((await call(client)).status).toBe(200);

  const seen = server.seen.length;
  own.freeze();
  try {
    const answers = await Promise.all(Array.from({ length: 10 }, () => call(client)));
    for (const a of answers) expect(strip(a)).toEqual(UNAVAILABLE);
    await expect(client.handshake()).rejects.toThrow(/^handshake answered 503: .*"pqc":"store_unavailable"/);
    await serverAlive();
    const ms = answers.map((a) => a.ms);
    report(
      `[outage] Redis frozen: ${answers.length} requests → 503 store_unavailable, ` +
        `answer time p50 ${percentile(ms, 50).toFixed(0)} ms, max ${Math.max(...ms).toFixed(0)} ms (command deadline ${COMMAND_TIMEOUT_MS} ms)`,
    );
    expect(Math.max(...ms)).toBeLessThan(COMMAND_TIMEOUT_MS + 1500);
    expect(server.seen.length).toBe(seen); // fails closed: nothing reached the application
  } finally {
    own.thaw();
  }
  // The replies of the timed-out commands drain in order; the session (still in Redis) serves again.
  expect((await call(client)).status).toBe(200);
  for (let i = 0; i < 5; i++) expect((await call(client)).status).toBe(200);
});

test('Redis killed: 503 store_unavailable at once, the server keeps running; restarted: traffic resumes', async () => {
  const fetch = pqcFetch({ identity: CLIENT, serverDid: SERVER.did });
  const mcp = await connectSdkClient('1.x client', server.url, fetch);
  expect(await mcp.callTool('add', { a: 1, b: 2 })).toMatchObject({ content: [{ text: '3' }] });
  const raw = new RawClient(server.url, CLIENT, SERVER.did);
  await raw.handshake();
  const errorsBefore = storeErrors.length;
  const seen = server.seen.length;

  await own.kill();
  const killedAt = performance.now();
  const answers: Answer[] = [];
  for (let i = 0; i < 20; i++) answers.push(await call(raw));
  answers.push(...(await Promise.all(Array.from({ length: 20 }, () => call(raw)))));
  for (const a of answers) expect(strip(a)).toEqual(UNAVAILABLE);
  await expect(raw.handshake()).rejects.toThrow(/^handshake answered 503: .*"pqc":"store_unavailable"/);
  // Bodyless requests (§4) and ending the session (§9) read the store too: refused the same way.
  for (const method of ['GET', 'DELETE'] as const) {
    const response = await raw.bodyless(method);
    expect({ method, ...(await rejectionOf(response)) }).toEqual({ method, status: 503, reason: 'store_unavailable', signed: false });
  }
  expect(await rejectionOf(await raw.endSession())).toEqual({ status: 503, reason: 'store_unavailable', signed: false });
  // The SDK client is told why (an error naming the reason), never handed an unverified answer.
  await expect(mcp.callTool('add', { a: 1, b: 2 })).rejects.toThrow(/store_unavailable/);
  await serverAlive();
  expect(server.seen.length).toBe(seen);
  // The operator is told too: the lost connection reached onError, and the store keeps the last error.
  expect(storeErrors.length).toBeGreaterThan(errorsBefore);
  expect((store.lastError as { message?: unknown } | undefined)?.message).toEqual(expect.stringMatching(/./));
  expect(store.isReady).toBe(false);
  const rejected = server.handler.audit.entries().filter((e) => e.operation === 'rejected' && e.reason === 'store_unavailable');
  expect(rejected.length).toBeGreaterThanOrEqual(answers.length);
  const ms = answers.map((a) => a.ms);
  const sequential = ms.slice(0, 20);
  expect(percentile(ms, 50)).toBeLessThan(200);

  await own.start();
  const restartedAt = performance.now();
  // The store reconnects by itself (backoff capped at 1 s). This Redis keeps no data, so the old sessions are gone:
  // the SDK client's pqcFetch gets an unsigned unknown_session, reports it (it never resends on an unsigned
  // rejection, §6) and drops the session; its next call performs a new handshake.
  let recovered = false;
  let attempts = 0;
  const failures: string[] = [];
  while (!recovered && performance.now() - restartedAt < 10_000) {
    attempts++;
    try {
      expect(await mcp.callTool('add', { a: 2, b: 3 })).toMatchObject({ content: [{ text: '5' }] });
      recovered = true;
    } catch (err) {
      failures.push(err instanceof Error ? err.message : String(err));
      await sleep(100);
    }
  }
  const recoveryMs = performance.now() - restartedAt;
  expect(recovered).toBe(true);
  // While it came back, every failed call named why: the store (503) or the session Redis lost (401).
  for (const failure of failures) expect(failure).toMatch(/store_unavailable|unknown_session/);
  await raw.handshake();
  expect((await call(raw)).status).toBe(200);
  expect(store.isReady).toBe(true);
  await mcp.close();
  report(
    `[outage] Redis killed: ${answers.length} requests → 503 store_unavailable, answer time p50 ${percentile(sequential, 50).toFixed(1)} ms ` +
      `one at a time, p50 ${percentile(ms.slice(20), 50).toFixed(1)} ms 20 at once, max ${Math.max(...ms).toFixed(1)} ms; down ${(restartedAt - killedAt).toFixed(0)} ms; traffic back ${recoveryMs.toFixed(0)} ms ` +
      `after the restart (${attempts} tries: ${failures.join(' | ')}); client errors reported to onError: ${storeErrors.length}; ` +
      `unhandled rejections: ${unhandled.count()}`,
  );
  expect(unhandled.count()).toBe(0);
});
