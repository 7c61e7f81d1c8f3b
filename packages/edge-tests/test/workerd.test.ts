/**
 * The edge worker (examples/edge-worker.ts) bundled with esbuild and run under workerd through miniflare (npm),
 * driven from Node: the conformance suite (the SDK client through `pqcFetch` with SSE and JSON responses, every
 * rejection of docs/PROTOCOL.md §6, tampered and replayed requests among them), the PQC session state in the Durable Object
 * store (a second request of a session served by a new workerd process, a replay across them refused), and every
 * `SessionStore` method of `DurableObjectSessionStore` against the real object, atomic under concurrent calls.
 */
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { Miniflare, type MiniflareOptions } from 'miniflare';
import { MessageSigner, PQCHandshake, PQCTransportError, type SessionRecord } from '@pqc-mcp/core';
import { DurableObjectSessionStore, type DurableObjectNamespaceLike } from '@pqc-mcp/durable-object';
import { buildEdgeWorker, edgeWorkerOptions } from '../../../examples/shared/edge.js';
import { CONFORMANCE_SERVER_IDENTITY, runConformanceSuite, type StartServer } from '@pqc-mcp/test-kit';
import { seededIdentity } from '@pqc-mcp/test-kit';
import { pqcVars, serverJwkText, tempDir } from './helpers.js';

/**
 * workerd's own output, less the noise of a client that goes away mid-stream (the suite aborts a GET stream:
 * workerd logs the broken pipe with a native stack).
 */
const quietRuntime: Pick<MiniflareOptions, 'handleRuntimeStdio'> = {
  handleRuntimeStdio(stdout: Readable, stderr: Readable) {
    for (const stream of [stdout, stderr]) {
      createInterface(stream).on('line', (line) => {
        if (!/Broken pipe|^stack: |^\s*$/.test(line)) console.error(line);
      });
    }
  },
};

let bundle: Promise<string> | undefined;
let bundleDir: { dir: string; remove(): Promise<void> } | undefined;

/** The worker bundle, built once for this file. */
function workerBundle(): Promise<string> {
  return (bundle ??= (async () => {
    bundleDir = await tempDir('pqc-edge-bundle-');
    const scriptPath = `${bundleDir.dir}/worker.js`;
    await buildEdgeWorker(scriptPath);
    return scriptPath;
  })());
}

afterAll(async () => {
  await bundleDir?.remove();
});

async function startWorker(vars: Record<string, string>, persistDir?: string): Promise<{ mf: Miniflare; url: string }> {
  const mf = new Miniflare({
    ...edgeWorkerOptions({ scriptPath: await workerBundle(), vars: { PQC_IDENTITY: serverJwkText(), ...vars }, persistDir }),
    ...quietRuntime,
  });
  const base = await mf.ready;
  return { mf, url: new URL('/mcp', base).href };
}

const start: StartServer = async ({ json, pqc }) => {
  const { mf, url } = await startWorker({ ...(json ? { PQC_JSON: '1' } : {}), ...(await pqcVars(pqc)) });
  return { url, close: () => mf.dispose() };
};

describe('the edge worker under workerd', () => {
  test('GET pqc/handshake: the server identity, signing with noble (workerd has no ML-DSA in WebCrypto)', async () => {
    const { mf, url } = await startWorker({});
    try {
      const info = await (await fetch(new URL('pqc/handshake', url))).json();
      expect(info).toMatchObject({ did: CONFORMANCE_SERVER_IDENTITY.did, backend: 'noble', versions: [2] });
    } finally {
      await mf.dispose();
    }
  });

  test('without the PQC_IDENTITY secret it answers 500 and says so', async () => {
    const mf = new Miniflare({ ...edgeWorkerOptions({ scriptPath: await workerBundle(), vars: {} }), ...quietRuntime });
    try {
      const response = await fetch(new URL('/pqc/handshake', await mf.ready));
      expect(response.status).toBe(500);
      expect(await response.text()).toContain('PQC_IDENTITY');
    } finally {
      await mf.dispose();
    }
  });
});

runConformanceSuite('edge-worker.ts on workerd (miniflare)', start);

describe('PQC sessions in the Durable Object store', () => {
  const CLIENT = seededIdentity(21);
  const HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

  function initialize(id: number): Record<string, unknown> {
    return {
      jsonrpc: '2.0',
      id,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'do-test', version: '1.0.0' } },
    };
  }

  test('two requests of one session served by two workerd processes; a replay across them is refused', async () => {
    const storage = await tempDir('pqc-edge-do-');
    const first = await startWorker({ PQC_JSON: '1' }, storage.dir);
    let second: { mf: Miniflare; url: string } | undefined;
    try {
      const { request, pending } = await PQCHandshake.initiate(CLIENT);
      const handshake = await fetch(new URL('pqc/handshake', first.url), { method: 'POST', body: request });
      expect(handshake.status).toBe(200);
      const session = await PQCHandshake.complete(await handshake.text(), CLIENT, pending, { serverDid: CONFORMANCE_SERVER_IDENTITY.did });
      const signer = new MessageSigner(CLIENT);

      const one = await signer.signMessage(initialize(1), { sessionId: session.sessionId });
      const answer = await fetch(first.url, { method: 'POST', headers: HEADERS, body: one.text });
      expect(answer.status).toBe(200);
      expect(await answer.json()).toMatchObject({ id: 1, result: { serverInfo: expect.any(Object) } });

      // A new workerd process: nothing of the first isolate's memory survives, only the Durable Object storage.
      await first.mf.dispose();
      second = await startWorker({ PQC_JSON: '1' }, storage.dir);

      const two = await signer.signMessage(initialize(2), { sessionId: session.sessionId });
      const answer2 = await fetch(second.url, { method: 'POST', headers: HEADERS, body: two.text });
      expect(answer2.status).toBe(200);
      expect(await answer2.json()).toMatchObject({ id: 2, result: { serverInfo: expect.any(Object) } });

      const replay = await fetch(second.url, { method: 'POST', headers: HEADERS, body: one.text });
      expect(replay.status).toBe(401);
      expect(await replay.json()).toMatchObject({ id: 1, error: { data: { pqc: 'replay_detected' } } });

      // The object itself holds the session and both nonces.
      const store = new DurableObjectSessionStore((await second.mf.getDurableObjectNamespace('PQC_SESSIONS')) as unknown as DurableObjectNamespaceLike);
      expect(await store.getSession(session.sessionId)).toMatchObject({ sessionId: session.sessionId, peerDid: CLIENT.did });
      expect(await store.recordNonce(session.sessionId, one.nonce, Date.now(), 600)).toBe(false);
      expect(await store.recordNonce(session.sessionId, two.nonce, Date.now(), 600)).toBe(false);
    } finally {
      await (second ?? first).mf.dispose().catch(() => {});
      await storage.remove();
    }
  });
});

describe('DurableObjectSessionStore against the real object', () => {
  let mf: Miniflare;
  let namespace: DurableObjectNamespaceLike;
  let next = 0;

  beforeAll(async () => {
    mf = new Miniflare({ ...edgeWorkerOptions({ scriptPath: await workerBundle(), vars: { PQC_IDENTITY: serverJwkText() } }), ...quietRuntime });
    await mf.ready;
    namespace = (await mf.getDurableObjectNamespace('PQC_SESSIONS')) as unknown as DurableObjectNamespaceLike;
  });
  afterAll(() => mf.dispose());

  /** A store on an object of its own, so counts do not mix between tests. */
  function store(options: ConstructorParameters<typeof DurableObjectSessionStore>[1] = {}): DurableObjectSessionStore {
    return new DurableObjectSessionStore(namespace, { name: `test-${++next}`, ...options });
  }

  function record(sessionId: string, ttlMs = 60_000): SessionRecord {
    const now = Date.now();
    return {
      sessionId,
      profile: 2,
      peerDid: `did:pqaid:${'c'.repeat(64)}`,
      peerAlgorithm: 'ML-DSA-65',
      peerPublicKey: 'ab'.repeat(1952),
      localDid: `did:pqaid:${'d'.repeat(64)}`,
      createdAt: now,
      expiresAt: now + ttlMs,
    };
  }

  const id = (n: number) => n.toString(16).padStart(32, '0');

  test('createSession, getSession, deleteSession', async () => {
    const s = store();
    expect(await s.getSession(id(1))).toBeUndefined();
    const created = record(id(1));
    await s.createSession(created, { maxSessions: 10 });
    expect(await s.getSession(id(1))).toEqual(created);
    await s.deleteSession(id(1));
    expect(await s.getSession(id(1))).toBeUndefined();
    expect(await s.recordNonce(id(1), 'n1', Date.now(), 60)).toBe(false); // no session, no nonce
  });

  test('too_many_sessions at the limit; expired sessions make room', async () => {
    const s = store();
    await s.createSession(record(id(1), 300), { maxSessions: 2 });
    await s.createSession(record(id(2)), { maxSessions: 2 });
    const err = await s.createSession(record(id(3)), { maxSessions: 2 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PQCTransportError);
    expect((err as PQCTransportError).reason).toBe('too_many_sessions');
    await new Promise((resolve) => setTimeout(resolve, 400));
    await s.createSession(record(id(3)), { maxSessions: 2 });
    expect(await s.getSession(id(3))).toBeDefined();
  });

  test('an expired session is still told apart during the grace period, then forgotten', async () => {
    const s = store({ expiredGraceSec: 0.3 });
    await s.createSession(record(id(1), 100), { maxSessions: 10 });
    await new Promise((resolve) => setTimeout(resolve, 200));
    const expired = await s.getSession(id(1));
    expect(expired).toBeDefined();
    expect(expired!.expiresAt).toBeLessThan(Date.now());
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await s.getSession(id(1))).toBeUndefined();
  });

  test('recordNonce: a nonce once per session; per-session windows', async () => {
    const s = store();
    await s.createSession(record(id(1)), { maxSessions: 10 });
    await s.createSession(record(id(2)), { maxSessions: 10 });
    const t = Date.now();
    expect(await s.recordNonce(id(1), 'aa', t, 600)).toBe(true);
    expect(await s.recordNonce(id(1), 'aa', t, 600)).toBe(false);
    expect(await s.recordNonce(id(2), 'aa', t, 600)).toBe(true);
    expect(await s.recordNonce(id(1), 'bb', t, 600)).toBe(true);
  });

  test('a nonce is forgotten after its TTL', async () => {
    const s = store();
    await s.createSession(record(id(1)), { maxSessions: 10 });
    const t = Date.now();
    expect(await s.recordNonce(id(1), 'aa', t, 0.1)).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await s.recordNonce(id(1), 'aa', t + 1, 0.1)).toBe(true);
  });

  test('past maxNonces the oldest go and their time becomes a floor: no replay reopens', async () => {
    const s = store({ maxNoncesPerSession: 3 });
    await s.createSession(record(id(1)), { maxSessions: 10 });
    const t = Date.now();
    for (const [i, n] of ['n1', 'n2', 'n3'].entries()) expect(await s.recordNonce(id(1), n, t + i, 600)).toBe(true);
    expect(await s.recordNonce(id(1), 'n4', t + 3, 600)).toBe(true); // n1 (t) dropped: floor t
    expect(await s.recordNonce(id(1), 'n1', t, 600)).toBe(false); // the replay of n1 cannot be proven fresh
    expect(await s.recordNonce(id(1), 'n5', t - 5, 600)).toBe(false); // older than the floor
    expect(await s.recordNonce(id(1), 'n3', t + 2, 600)).toBe(false); // still held
    expect(await s.recordNonce(id(1), 'n6', t + 10, 600)).toBe(true);
  });

  test('recordHandshake: a key once within its TTL; bounded', async () => {
    const s = store({ maxHandshakes: 2 });
    expect(await s.recordHandshake('k1', 60)).toBe(true);
    expect(await s.recordHandshake('k1', 60)).toBe(false);
    expect(await s.recordHandshake('k2', 0.1)).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await s.recordHandshake('k2', 60)).toBe(true);
    expect(await s.recordHandshake('k3', 60)).toBe(true); // over the bound: the oldest key goes
    expect(await s.recordHandshake('k3', 60)).toBe(false);
  });

  test('atomic: of 25 concurrent calls with one nonce (or one handshake key) exactly one wins', async () => {
    const s = store();
    await s.createSession(record(id(1)), { maxSessions: 10 });
    const t = Date.now();
    const nonces = await Promise.all(Array.from({ length: 25 }, () => s.recordNonce(id(1), 'same', t, 600)));
    expect(nonces.filter(Boolean)).toHaveLength(1);
    const keys = await Promise.all(Array.from({ length: 25 }, () => s.recordHandshake('same-key', 60)));
    expect(keys.filter(Boolean)).toHaveLength(1);
  });

  test('bad calls are refused by the object, and the store says so', async () => {
    const stub = namespace.get(namespace.idFromName('test-bad') as never);
    const response = await stub.fetch('https://pqc-session-store.internal/', { method: 'POST', body: JSON.stringify({ op: 'recordNonce', sessionId: 1 }) });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ ok: false });
    expect(() => new DurableObjectSessionStore({} as DurableObjectNamespaceLike)).toThrow(TypeError);
  });
});
