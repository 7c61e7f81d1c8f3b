/**
 * `DurableObjectSessionStore` against the real `PQCSessionStoreObject`: the object bundled with esbuild (platform
 * neutral, as a Worker bundles it) and run in workerd through miniflare, called from Node through miniflare's
 * Durable Object namespace. The session-store contract, then what only this store has to show: bounded storage,
 * sweeping, small rows, the counters recounted after a restart, the schema of 0.1 replaced, failures thrown.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { build } from 'esbuild';
import { Miniflare, type MiniflareOptions } from 'miniflare';
import { PQCTransportError, type SessionLimits, type SessionRecord, type SessionStore } from '@pqc-mcp/core';
import { runSessionStoreContract } from '@pqc-mcp/test-kit';
import { DurableObjectSessionStore, type DurableObjectNamespaceLike, type DurableObjectSessionStoreOptions } from '../src/index.js';

/** The test Worker: the object as applications export it, and two subclasses for the tests. */
const WORKER_ENTRY = `
import { PQCSessionStoreObject } from './src/index.ts';
export { PQCSessionStoreObject };
/** Sweeps on every call, a few rows at a time. */
export class EagerSweepObject extends PQCSessionStoreObject {
  constructor(state, env) { super(state, env, { sweepIntervalMs: 0, sweepBatch: 2 }); }
}
/** Starts on the tables of @pqc-mcp/durable-object 0.1, holding a session. */
export class LegacyObject extends PQCSessionStoreObject {
  constructor(state, env) {
    const sql = state.storage.sql;
    if (sql.exec("SELECT name FROM sqlite_master WHERE name = 'pqc_meta'").toArray().length === 0) {
      sql.exec('CREATE TABLE IF NOT EXISTS pqc_sessions (id TEXT PRIMARY KEY, record TEXT NOT NULL, expires_at INTEGER NOT NULL, purge_at INTEGER NOT NULL, floor_ms REAL)');
      sql.exec('CREATE TABLE IF NOT EXISTS pqc_nonces (seq INTEGER PRIMARY KEY, session_id TEXT NOT NULL, nonce TEXT NOT NULL, expires_at INTEGER NOT NULL, ts REAL NOT NULL, UNIQUE (session_id, nonce))');
      sql.exec('CREATE TABLE IF NOT EXISTS pqc_handshakes (key TEXT PRIMARY KEY, expires_at INTEGER NOT NULL)');
      sql.exec("INSERT INTO pqc_sessions VALUES ('${'0'.repeat(32)}', '{}', 1e15, 1e15, NULL)");
    }
    super(state, env);
  }
}
export default { fetch: () => new Response('a PQCSessionStoreObject test worker', { status: 404 }) };
`;

const PACKAGE_DIR = path.resolve(__dirname, '..');

async function bundleWorker(): Promise<string> {
  const result = await build({
    stdin: { contents: WORKER_ENTRY, resolveDir: PACKAGE_DIR, sourcefile: 'worker.js', loader: 'js' },
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'neutral',
    target: 'es2022',
    mainFields: ['module', 'main'],
    conditions: ['@pqc-mcp/source', 'workerd', 'worker', 'browser', 'import'],
    logLevel: 'silent',
  });
  return result.outputFiles[0]!.text;
}

let script: string;
let mf: Miniflare;

function workerOptions(persistDir?: string): MiniflareOptions {
  return {
    modules: true,
    script,
    compatibilityDate: '2026-04-01',
    durableObjects: {
      PQC_SESSIONS: { className: 'PQCSessionStoreObject', useSQLite: true },
      EAGER: { className: 'EagerSweepObject', useSQLite: true },
      LEGACY: { className: 'LegacyObject', useSQLite: true },
    },
    durableObjectsPersist: persistDir ?? false,
  };
}

async function namespaceOf(m: Miniflare, binding: string): Promise<DurableObjectNamespaceLike> {
  return (await m.getDurableObjectNamespace(binding)) as unknown as DurableObjectNamespaceLike;
}

beforeAll(async () => {
  script = await bundleWorker();
  mf = new Miniflare(workerOptions());
  await mf.ready;
}, 60_000);

afterAll(async () => {
  await mf?.dispose();
});

let objects = 0;
/** A store on an object of its own (a fresh name: no data shared with another test). */
async function freshStore(options: DurableObjectSessionStoreOptions = {}, binding = 'PQC_SESSIONS'): Promise<DurableObjectSessionStore> {
  return new DurableObjectSessionStore(await namespaceOf(mf, binding), { name: `test-${++objects}`, ...options });
}

runSessionStoreContract('DurableObjectSessionStore (workerd)', async ({ maxNoncesPerSession }) => {
  const namespace = await namespaceOf(mf, 'PQC_SESSIONS');
  const name = `contract-${++objects}`;
  const make = () => new DurableObjectSessionStore(namespace, { name, maxNoncesPerSession });
  return { store: make(), sibling: async () => make(), close: async () => {} };
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const LIMITS: SessionLimits = { maxSessions: 1000, maxSessionsPerClient: 16, retentionSec: 660 };
const id = (i: number) => i.toString(16).padStart(32, '0');
const nonce = (i: number) => `${i.toString(16).padStart(8, '0')}${'ab'.repeat(12)}`;

function record(i: number, overrides: Partial<SessionRecord> = {}): SessionRecord {
  const now = Date.now();
  return {
    sessionId: id(i),
    profile: 2,
    peerDid: `did:pqaid:${(i % 7).toString(16).padStart(64, '0')}`,
    peerAlgorithm: 'ML-DSA-65',
    peerPublicKey: 'c3'.repeat(1952),
    localDid: `did:pqaid:${'5'.repeat(64)}`,
    createdAt: now,
    expiresAt: now + 3_600_000,
    ...overrides,
  };
}

describe('DurableObjectSessionStore: what the object keeps is bounded', () => {
  test('ended records are forgotten past maxEndedSessions (their sessions become unknown, never live again)', async () => {
    const store = await freshStore({ maxEndedSessions: 5 });
    const limits = { ...LIMITS, maxSessions: 10 };
    for (let i = 1; i <= 30; i++) await store.createSession(record(i), limits);
    expect(await store.stats()).toMatchObject({ liveSessions: 10, retainedSessions: 5 });
    expect(await store.recordNonce(id(1), nonce(1), Date.now(), 660)).toBe('unknown');
    expect(await store.recordNonce(id(20), nonce(1), Date.now(), 660)).toBe('ended');
    expect(await store.recordNonce(id(30), nonce(1), Date.now(), 660)).toBe('accepted');
  });

  test('v1 keys are never dropped early: a full store refuses new ones (rate_limited)', async () => {
    const store = await freshStore({ maxOnceKeys: 3 });
    for (let i = 0; i < 3; i++) expect(await store.recordOnce(`k${i}`, 3600)).toBe(true);
    await expect(store.recordOnce('k3', 3600)).rejects.toMatchObject({ name: 'PQCTransportError', reason: 'rate_limited' });
    expect(await store.recordOnce('k0', 3600)).toBe(false);
    // Expired keys make room again.
    const short = await freshStore({ maxOnceKeys: 2 });
    expect(await short.recordOnce('a', 0.1)).toBe(true);
    expect(await short.recordOnce('b', 0.1)).toBe(true);
    await sleep(200);
    expect(await short.recordOnce('c', 3600)).toBe(true);
    expect((await short.stats()).onceKeys).toBe(1);
  });

  test('handshake keys past the bound raise a floor instead of reopening a replay', async () => {
    const store = await freshStore({ maxHandshakes: 2 });
    const t = Date.now();
    expect(await store.recordHandshake('a', t, 660)).toBe(true);
    expect(await store.recordHandshake('b', t + 1, 660)).toBe(true);
    expect(await store.recordHandshake('c', t + 2, 660)).toBe(true); // drops a: nothing at or before t is new any more
    expect(await store.recordHandshake('a', t, 660)).toBe(false);
    expect(await store.recordHandshake('d', t + 3, 660)).toBe(true);
    expect((await store.stats()).handshakeKeys).toBe(2);
  });

  test('expired handshake keys make room without raising the floor', async () => {
    const store = await freshStore({ maxHandshakes: 2 });
    const t = Date.now();
    expect(await store.recordHandshake('a', t, 0.1)).toBe(true);
    expect(await store.recordHandshake('b', t + 1, 0.1)).toBe(true);
    await sleep(200);
    expect(await store.recordHandshake('c', t, 660)).toBe(true); // a and b expired: no floor, t is still new
    expect(await store.recordHandshake('c', t, 660)).toBe(false);
    expect((await store.stats()).handshakeKeys).toBe(1);
  });

  test("a session's expired nonces are deleted as it records new ones", async () => {
    const store = await freshStore();
    await store.createSession(record(1), LIMITS);
    const t = Date.now();
    for (let i = 0; i < 5; i++) expect(await store.recordNonce(id(1), nonce(i), t + i, 1.5)).toBe('accepted');
    expect((await store.stats()).nonces).toBe(5);
    await sleep(1700); // every one of them expired
    expect(await store.recordNonce(id(1), nonce(9), t + 9, 660)).toBe('accepted');
    expect((await store.stats()).nonces).toBe(1);
    expect(await store.recordNonce(id(1), nonce(0), t + 10, 660)).toBe('accepted'); // expired: new again
  });

  test('MCP session owners and server requests are bounded: the soonest to expire go first', async () => {
    const store = await freshStore({ maxMcpSessions: 2 });
    const [alice, bob] = [record(1).peerDid, record(2).peerDid];
    expect(await store.claimMcpSession('m1', alice, 60)).toBe(true);
    expect(await store.claimMcpSession('m2', alice, 3600)).toBe(true);
    expect(await store.claimMcpSession('m3', bob, 3600)).toBe(true);
    expect(await store.mcpSessionOwner('m1', 60)).toBeUndefined();
    expect(await store.mcpSessionOwner('m2', 60)).toBe(alice);
    await store.recordServerRequest(id(1), 'n:1', nonce(1), 60);
    await store.recordServerRequest(id(1), 'n:2', nonce(2), 3600);
    await store.recordServerRequest(id(1), 'n:3', nonce(3), 3600);
    expect(await store.takeServerRequest(id(1), 'n:1')).toBeUndefined();
    expect(await store.stats()).toMatchObject({ mcpSessionOwners: 2, serverRequests: 2 });
  });

  test('ownership slides with use, and lapses after its TTL', async () => {
    const store = await freshStore();
    const alice = record(1).peerDid;
    expect(await store.claimMcpSession('m', alice, 1)).toBe(true);
    await sleep(600);
    expect(await store.mcpSessionOwner('m', 1)).toBe(alice); // extended by 1 s from now
    await sleep(600);
    expect(await store.mcpSessionOwner('m', 1)).toBe(alice);
    await sleep(1200);
    expect(await store.mcpSessionOwner('m', 1)).toBeUndefined();
    expect(await store.claimMcpSession('m', record(2).peerDid, 60)).toBe(true);
  });

  test('the sweep deletes records past their retention with their nonces, and every expired key', async () => {
    const store = await freshStore({}, 'EAGER');
    for (let i = 1; i <= 5; i++) {
      await store.createSession(record(i, { expiresAt: Date.now() + 3000 }), { ...LIMITS, retentionSec: 0.2 });
      expect(await store.recordNonce(id(i), nonce(i), Date.now(), 660)).toBe('accepted');
      expect(await store.recordHandshake(`h${i}`, Date.now(), 3)).toBe(true);
      expect(await store.recordOnce(`o${i}`, 3)).toBe(true);
      expect(await store.claimMcpSession(`m${i}`, record(i).peerDid, 3)).toBe(true);
      await store.recordServerRequest(id(i), 'n:0', nonce(i), 3);
    }
    await store.endSession(id(1), 0.2);
    expect(await store.stats()).toEqual(
      expect.objectContaining({ liveSessions: 4, retainedSessions: 1, nonces: 5, handshakeKeys: 5, onceKeys: 5, mcpSessionOwners: 5, serverRequests: 5 }),
    );
    await sleep(3500); // every session past its expiry and retention, every key past its TTL
    // This object sweeps on every call, two rows per table at most: three calls sweep everything.
    for (let i = 0; i < 3; i++) await store.getSession(id(99));
    expect(await store.stats()).toMatchObject({
      liveSessions: 0,
      retainedSessions: 0,
      nonces: 0,
      handshakeKeys: 0,
      onceKeys: 0,
      mcpSessionOwners: 0,
      serverRequests: 0,
    });
  });

  test('a session takes little room: its key is kept as bytes, its nonces compactly', async () => {
    const store = await freshStore();
    const before = (await store.stats()).databaseBytes;
    const sessions = 64;
    for (let i = 1; i <= sessions; i++) {
      await store.createSession(record(i), LIMITS);
      for (let j = 0; j < 4; j++) await store.recordNonce(id(i), nonce(j), Date.now(), 660);
    }
    const perSession = ((await store.stats()).databaseBytes - before) / sessions;
    // An ML-DSA-65 key is 1952 bytes (3904 as hex): a row holding it takes a whole 4 KiB page, JSON text two.
    expect(perSession).toBeLessThan(3000);
    expect(await store.getSession(id(7))).toEqual(expect.objectContaining({ peerPublicKey: 'c3'.repeat(1952) }));
  }, 60_000);
});

describe('DurableObjectSessionStore: the object', () => {
  test('a restarted object counts its rows again: the limits hold across restarts', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'pqc-do-store-'));
    try {
      const first = new Miniflare(workerOptions(dir));
      const limits = { ...LIMITS, maxSessions: 3 };
      try {
        const store = new DurableObjectSessionStore(await namespaceOf(first, 'PQC_SESSIONS'));
        for (let i = 1; i <= 3; i++) expect(await store.createSession(record(i), limits)).toEqual([]);
        await sleep(5);
        expect(await store.recordNonce(id(1), nonce(1), Date.now(), 660)).toBe('accepted');
        expect(await store.recordHandshake('h', Date.now(), 660)).toBe(true);
      } finally {
        await first.dispose();
      }
      const second = new Miniflare(workerOptions(dir));
      try {
        const store = new DurableObjectSessionStore(await namespaceOf(second, 'PQC_SESSIONS'));
        expect(await store.createSession(record(4), limits)).toEqual([id(2)]);
        expect(await store.recordHandshake('h', Date.now(), 660)).toBe(false);
        expect(await store.recordNonce(id(1), nonce(1), Date.now(), 660)).toBe('replay');
      } finally {
        await second.dispose();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);

  test('the tables of 0.1 are replaced by the current schema (their sessions forgotten)', async () => {
    const store = await freshStore({}, 'LEGACY');
    expect(await store.getSession(id(0))).toBeUndefined();
    await store.createSession(record(1), LIMITS);
    expect(await store.getSession(id(1))).toEqual(record(1, { createdAt: expect.any(Number), expiresAt: expect.any(Number) }));
    expect(await store.recordNonce(id(1), nonce(1), Date.now(), 660)).toBe('accepted');
  });

  test('a session id that exists already is refused with store_unavailable', async () => {
    const store = await freshStore();
    await store.createSession(record(1), LIMITS);
    const err = await store.createSession(record(1), LIMITS).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PQCTransportError);
    expect((err as PQCTransportError).reason).toBe('store_unavailable');
  });

  test('bad calls are refused by the object (400, 405), and the store throws', async () => {
    const namespace = await namespaceOf(mf, 'PQC_SESSIONS');
    const stub = namespace.get(namespace.idFromName(`bad-${++objects}`) as never);
    const post = (body: unknown) => stub.fetch('https://pqc-session-store.internal/', { method: 'POST', body: JSON.stringify(body) });
    for (const body of [
      { op: 'recordNonce', sessionId: 1 },
      { op: 'createSession', record: '{"sessionId":"x"}', maxSessions: 1, maxSessionsPerClient: 1, retentionMs: 0, maxEndedSessions: 1 },
      { op: 'recordOnce', key: 'k', ttlMs: -1, maxOnceKeys: 1 },
      { op: 'nope' },
    ]) {
      const response = await post(body);
      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({ ok: false, message: expect.any(String) });
    }
    expect((await stub.fetch('https://pqc-session-store.internal/')).status).toBe(405);
    const store = new DurableObjectSessionStore(namespace, { name: `bad-${objects}` });
    await expect(store.recordNonce(id(1), '', Date.now(), 660)).rejects.toThrow(/nonce/);
  });

  test('options and the namespace are checked', () => {
    expect(() => new DurableObjectSessionStore({} as DurableObjectNamespaceLike)).toThrow(TypeError);
    const namespace = { idFromName: () => 'x', get: () => ({ fetch: async () => new Response('{}') }) } as DurableObjectNamespaceLike;
    expect(() => new DurableObjectSessionStore(namespace, { maxNoncesPerSession: 0 })).toThrow(/maxNoncesPerSession/);
    expect(() => new DurableObjectSessionStore(namespace, { maxHandshakes: 1.5 })).toThrow(/maxHandshakes/);
    expect(() => new DurableObjectSessionStore(namespace, { name: '' })).toThrow(/name/);
  });
});

describe('DurableObjectSessionStore: an object that cannot answer', () => {
  const calls: [string, (store: SessionStore) => Promise<unknown>][] = [
    ['createSession', (s) => s.createSession(record(1), LIMITS)],
    ['getSession', (s) => s.getSession(id(1))],
    ['endSession', (s) => s.endSession(id(1), 660)],
    ['recordNonce', (s) => s.recordNonce(id(1), nonce(1), Date.now(), 660)],
    ['recordHandshake', (s) => s.recordHandshake('k', Date.now(), 660)],
    ['recordOnce', (s) => s.recordOnce('k', 660)],
    ['claimMcpSession', (s) => s.claimMcpSession('m', 'did', 60)],
    ['mcpSessionOwner', (s) => s.mcpSessionOwner('m', 60)],
    ['recordServerRequest', (s) => s.recordServerRequest(id(1), 'n:0', nonce(1), 60)],
    ['takeServerRequest', (s) => s.takeServerRequest(id(1), 'n:0')],
  ];

  function storeAnswering(fetch: () => Promise<Response>): DurableObjectSessionStore {
    return new DurableObjectSessionStore({ idFromName: () => 'id', get: () => ({ fetch }) });
  }

  test.each(calls)('%s throws when the object is unreachable', async (_name, call) => {
    const store = storeAnswering(() => Promise.reject(new Error('Durable Object reset because its code was updated')));
    await expect(call(store)).rejects.toThrow(/reset/);
  });

  test.each(calls)('%s throws when the object answers no store answer', async (_name, call) => {
    const store = storeAnswering(async () => new Response('internal error', { status: 500 }));
    await expect(call(store)).rejects.toThrow(/HTTP 500/);
  });

  // (endSession and recordServerRequest answer nothing: there is no shape to check.)
  const answering = calls.filter(([name]) => name !== 'endSession' && name !== 'recordServerRequest');
  test.each(answering)('%s throws on an answer of the wrong shape', async (_name, call) => {
    const store = storeAnswering(async () => Response.json({ ok: true, value: { surprise: 1 } }));
    await expect(call(store)).rejects.toThrow(/malformed answer/);
  });
});
