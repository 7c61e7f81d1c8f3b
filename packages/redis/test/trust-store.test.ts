/**
 * A trust store of client keys shared by two server instances on one Redis: each instance reads the same trust file
 * (`FileTrustStore`), and a revocation written to it is in force on both at the client's next request, even on an
 * instance that has not reloaded the file yet, because the instance that did ends the client's sessions in Redis.
 * Real parts throughout: two `createPQCHandler` behind node:http, each with its own `RedisSessionStore` on one Redis,
 * the MCP SDK v2 server behind, and the real MCP SDK clients through `pqcFetch`.
 */
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pqcFetch, type AgentIdentity, type FetchLike, type TrustDocument } from '@pqc-mcp/core';
import { FileTrustStore } from '@pqc-mcp/core/node';
import { RawClient, connectSdkClient, seededIdentity, type SdkClientKind } from '@pqc-mcp/test-kit';
import { RedisSessionStore } from '../src/index.js';
import { REDIS_URL, connectTestRedis, deletePrefix, rejectionOf, startServer, uniquePrefix, type RawRedis, type TestServer } from './helpers.js';

const SERVER = seededIdentity(41);
const CLIENT = seededIdentity(42);
const OTHER = seededIdentity(43);
const LATECOMER = seededIdentity(44);
const STRANGER = seededIdentity(45);

function documentOf(trusted: AgentIdentity[], revoked: AgentIdentity[] = []): TrustDocument {
  return {
    keys: trusted.map((id, i) => ({ ...id.toJwk(), did: id.did, name: `agent-${i}` })),
    revoked: revoked.map((id) => id.did),
  };
}

let redis: RawRedis;
let dir: string;
let file: string;
let a: TestServer;
let b: TestServer;
let trustA: FileTrustStore;
let trustB: FileTrustStore;
const errors: { a: Error[]; b: Error[] } = { a: [], b: [] };
let stores: RedisSessionStore[];
let prefix: string;

async function writeTrust(doc: TrustDocument | string): Promise<void> {
  // Written beside and renamed into place, as a deploy does: a reader never sees half a file.
  const temp = `${file}.${Math.random().toString(16).slice(2)}`;
  await writeFile(temp, typeof doc === 'string' ? doc : JSON.stringify(doc));
  await rename(temp, file);
}

beforeAll(async () => {
  redis = await connectTestRedis();
  dir = await mkdtemp(join(tmpdir(), 'pqc-trust-'));
  file = join(dir, 'trusted-clients.json');
  await writeTrust(documentOf([CLIENT, OTHER]));
});

beforeEach(async () => {
  await writeTrust(documentOf([CLIENT, OTHER]));
  prefix = uniquePrefix('trust');
  stores = [new RedisSessionStore({ url: REDIS_URL, keyPrefix: prefix }), new RedisSessionStore({ url: REDIS_URL, keyPrefix: prefix })];
  errors.a = [];
  errors.b = [];
  // No watcher and no checks started by messages within the test: B sees the file only when a handshake checks it,
  // so what B refuses before that, it refuses because of what A wrote to Redis.
  trustA = await FileTrustStore.load(file, { watch: false, checkIntervalMs: 3_600_000, onError: (e) => errors.a.push(e) });
  trustB = await FileTrustStore.load(file, { watch: false, checkIntervalMs: 3_600_000, onError: (e) => errors.b.push(e) });
  a = await startServer({ identity: SERVER, authorize: trustA, store: stores[0] });
  b = await startServer({ identity: SERVER, authorize: trustB, store: stores[1] });
});

afterEach(async () => {
  await Promise.all([a.close(), b.close()]);
  await Promise.all(stores.map((s) => s.close()));
  trustA.close();
  trustB.close();
  await deletePrefix(redis, prefix);
});

afterAll(async () => {
  await redis.close();
  await rm(dir, { recursive: true, force: true });
});

/** A fetch that alternates between A and B. */
function roundRobin(): FetchLike & { hits: { a: number; b: number } } {
  const hits = { a: 0, b: 0 };
  let turn = 0;
  const fn = (input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const target = turn++ % 2 === 0 ? a : b;
    hits[target === a ? 'a' : 'b']++;
    url.port = String(target.port);
    return fetch(url, init);
  };
  return Object.assign(fn, { hits });
}

/** A signed tools/call on `server`: its response. */
async function callOn(client: RawClient, server: TestServer, text: string): Promise<Response> {
  const signed = await client.sign({ jsonrpc: '2.0', id: client.id(), method: 'tools/call', params: { name: 'echo', arguments: { text } } });
  return client.post(signed.text, {}, server.url);
}

async function expectServed(client: RawClient, server: TestServer, text: string): Promise<void> {
  const response = await callOn(client, server, text);
  expect(response.status).toBe(200);
  await response.arrayBuffer();
}

describe('a trust file shared by two instances on one Redis', () => {
  test.each<SdkClientKind>(['1.x client', 'v2 client, auto'])('the MCP SDK %s of a trusted key is served on both; a key not in the file is refused', async (kind) => {
    const routed = roundRobin();
    const client = await connectSdkClient(kind, a.url, pqcFetch({ identity: CLIENT, serverDid: SERVER.did, fetch: routed }));
    for (let i = 0; i < 3; i++) expect(await client.callTool('echo', { text: `call ${i}` })).toMatchObject({ content: [{ text: `call ${i}` }] });
    await client.close();
    expect(routed.hits.a).toBeGreaterThanOrEqual(2);
    expect(routed.hits.b).toBeGreaterThanOrEqual(2);

    const stranger = pqcFetch({ identity: STRANGER, serverDid: SERVER.did, fetch: roundRobin() });
    const seen = a.seen.length + b.seen.length;
    await expect(connectSdkClient(kind, a.url, stranger)).rejects.toThrow(/peer_not_authorized/);
    expect(a.seen.length + b.seen.length).toBe(seen);
  });

  test('a key added to the file is trusted at its first handshake on either instance, without a restart', async () => {
    const late = new RawClient(b.url, LATECOMER, SERVER.did);
    await expect(late.handshake()).rejects.toThrow(/403/);
    await writeTrust(documentOf([CLIENT, OTHER, LATECOMER]));
    await late.handshake(); // on B: the handshake checked the file
    await expectServed(late, a, 'late on A');
    await expectServed(late, b, 'late on B');
  });

  test('a DID revoked in the file: its next request on each instance is refused, before B has reloaded', async () => {
    const client = new RawClient(a.url, CLIENT, SERVER.did);
    const other = new RawClient(b.url, OTHER, SERVER.did);
    await client.handshake();
    await other.handshake();
    for (const server of [a, b]) {
      await expectServed(client, server, 'before');
      await expectServed(other, server, 'before');
    }
    const seen = a.seen.length + b.seen.length;

    await writeTrust(documentOf([CLIENT, OTHER], [CLIENT]));
    expect(await trustA.reload()).toBe(true); // A notices (a watcher or a check would); B does not yet
    expect(trustA.isRevoked(CLIENT.did)).toBe(true);
    expect(trustB.isRevoked(CLIENT.did)).toBe(false);
    // A ended the client's sessions in Redis (in the background of the reload): wait for the store to say so.
    for (let i = 0; i < 100 && (await stores[1]!.getSession(client.session.sessionId))?.endedAt === undefined; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect((await stores[1]!.getSession(client.session.sessionId))?.endedAt).toBeDefined();

    // A refuses at once, from memory: 403 peer_not_authorized, unsigned.
    expect(await rejectionOf(await callOn(client, a, 'after on A'))).toEqual({ status: 403, reason: 'peer_not_authorized', signed: false });
    // B has not reloaded, yet refuses: the session is ended in Redis (a signed unknown_session, so the client may
    // try a new handshake) ...
    expect(trustB.isRevoked(CLIENT.did)).toBe(false);
    expect(await rejectionOf(await callOn(client, b, 'after on B'))).toEqual({ status: 401, reason: 'unknown_session', signed: true });
    // ... and the new handshake, on B, checks the file: refused.
    await expect(client.handshake()).rejects.toThrow(/403/);
    const onB = new RawClient(b.url, CLIENT, SERVER.did);
    await expect(onB.handshake()).rejects.toThrow(/403/);
    expect(trustB.isRevoked(CLIENT.did)).toBe(true);
    expect(a.seen.length + b.seen.length).toBe(seen); // nothing of the revoked client reached the application

    // Another client is not touched, on either instance.
    await expectServed(other, a, 'still');
    await expectServed(other, b, 'still');
    expect(errors).toEqual({ a: [], b: [] });
  });

  test('a key removed from the file (not revoked) is withdrawn too: its sessions end on both instances', async () => {
    const other = new RawClient(a.url, OTHER, SERVER.did);
    await other.handshake();
    await expectServed(other, b, 'before');
    await writeTrust(documentOf([CLIENT]));
    await trustB.reload(); // this time B notices first
    for (let i = 0; i < 100 && (await stores[0]!.getSession(other.session.sessionId))?.endedAt === undefined; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(await rejectionOf(await callOn(other, b, 'after'))).toEqual({ status: 403, reason: 'peer_not_authorized', signed: false });
    expect(await rejectionOf(await callOn(other, a, 'after'))).toEqual({ status: 401, reason: 'unknown_session', signed: true });
    await expect(other.handshake()).rejects.toThrow(/403/);
  });

  test('the MCP SDK client of a revoked DID: its next call fails on each instance, and nothing reaches the app', async () => {
    const toA = pqcFetch({ identity: CLIENT, serverDid: SERVER.did });
    const toB = pqcFetch({ identity: CLIENT, serverDid: SERVER.did });
    const onA = await connectSdkClient('v2 client, auto', a.url, toA);
    const onB = await connectSdkClient('v2 client, auto', b.url, toB);
    expect(await onA.callTool('echo', { text: 'a' })).toMatchObject({ content: [{ text: 'a' }] });
    expect(await onB.callTool('echo', { text: 'b' })).toMatchObject({ content: [{ text: 'b' }] });
    const seen = a.seen.length + b.seen.length;

    await writeTrust(documentOf([CLIENT, OTHER], [CLIENT]));
    await trustA.reload();
    await new Promise((resolve) => setTimeout(resolve, 50)); // the sessions end in Redis in the reload's background

    await expect(onA.callTool('echo', { text: 'a again' })).rejects.toThrow(/peer_not_authorized/);
    // On B: the store says ended (signed), pqcFetch performs a new handshake on B, which is refused.
    await expect(onB.callTool('echo', { text: 'b again' })).rejects.toThrow(/peer_not_authorized/);
    expect(a.seen.length + b.seen.length).toBe(seen);
    await Promise.allSettled([onA.close(), onB.close()]);
  });

  test('a bad file after a reload: reported once, the last good set stays, keys only the bad file names stay untrusted', async () => {
    const client = new RawClient(a.url, CLIENT, SERVER.did);
    await client.handshake();
    const good = JSON.stringify(documentOf([CLIENT, OTHER, LATECOMER]));
    await writeTrust(good.slice(0, good.length - 20)); // truncated: not JSON
    const late = new RawClient(a.url, LATECOMER, SERVER.did);
    await expect(late.handshake()).rejects.toThrow(/403/);
    await expect(late.handshake()).rejects.toThrow(/403/);
    expect(errors.a).toHaveLength(1);
    expect(errors.a[0]!.message).toMatch(/not reloaded .*the last good set stays/);
    await expectServed(client, a, 'still trusted');
    await expectServed(client, b, 'still trusted');
    // A key with a private part is refused too (a trust file holds no secrets), and so is a mismatched DID.
    await writeTrust({ keys: [LATECOMER.toJwk({ includePrivate: true })] });
    await expect(late.handshake()).rejects.toThrow(/403/);
    await writeTrust({ keys: [{ ...LATECOMER.toJwk(), did: CLIENT.did }] });
    await expect(late.handshake()).rejects.toThrow(/403/);
    expect(errors.a.map((e) => e.message)).toEqual([
      expect.stringMatching(/not JSON/),
      expect.stringMatching(/private key/),
      expect.stringMatching(/"did" does not match/),
    ]);
    await expectServed(client, a, 'still trusted');
    // Repaired: the new key is trusted at its next handshake.
    await writeTrust(good);
    await late.handshake();
    await expectServed(late, b, 'repaired');
  });
});
