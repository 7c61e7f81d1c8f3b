/**
 * Floods against the real handler (`createPQCHandler`) behind node:http, on a RedisSessionStore (and, where the
 * property is the same for one process, a MemorySessionStore), each printing its numbers with PQC_TEST_VERBOSE=1:
 * handshakes from fresh identities past maxSessions, one key opening sessions without end, unauthenticated handshakes
 * and requests, nonces past the per-session cap, bodies past the size limit sent slowly, and large bodies that must
 * not stay in memory. What they prove: nobody is locked out, a client in use keeps its session, an idle one recovers,
 * nobody unauthenticated can end or add anything, and what Redis (or the heap) holds stays bounded whatever the
 * flood's size.
 */
import { createHash } from 'node:crypto';
import { connect } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import {
  AgentIdentity,
  MemorySessionStore,
  PQCHandshake,
  canonicalJson,
  type Algorithm,
  type CryptoBackend,
  type SessionLimits,
  type SessionStore,
} from '@pqc-mcp/core';
import { RawClient, report } from '@pqc-mcp/test-kit';
import { RedisSessionStore, type RedisSessionStoreOptions } from '../src/index.js';
import {
  REDIS_URL,
  connectTestRedis,
  deletePrefix,
  keysUnder,
  rejectionOf,
  startServer,
  testRecord,
  uniquePrefix,
  type RawRedis,
  type TestServer,
  type WebApp,
} from './helpers.js';

let redis: RawRedis;
const prefixes: string[] = [];

beforeAll(async () => {
  redis = await connectTestRedis();
});

afterAll(async () => {
  for (const prefix of prefixes) await deletePrefix(redis, prefix);
  await redis.close();
});

/**
 * A store on a prefix of its own. The floods load this process (client and server share it), so a command may wait for
 * the event loop longer than the default 1 s deadline: these tests are about bounds, not latency (outage.test.ts
 * checks the deadline), and a generous one keeps a busy machine from turning into store_unavailable.
 */
function redisStore(options: Partial<RedisSessionStoreOptions> = {}): RedisSessionStore {
  const keyPrefix = uniquePrefix('flood');
  prefixes.push(keyPrefix);
  return new RedisSessionStore({ url: REDIS_URL, keyPrefix, commandTimeoutMs: 10_000, ...options });
}

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
const delta = (bytes: number) => `${bytes >= 0 ? '+' : ''}${mb(bytes)}`;

// A real garbage collection before each heap reading, so the numbers are what is retained, not what is not yet freed.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
function retainedHeap(): number {
  gc();
  gc();
  const { heapUsed, external } = process.memoryUsage();
  return heapUsed + external; // large strings decoded from bytes may live outside the V8 heap
}

/** Runs `task(i)` for i < n with at most `width` in flight. */
async function pool(n: number, width: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < n) await task(next++);
    }),
  );
}

/** The raw sizes of ML-DSA keys and signatures (FIPS 204; docs/PROTOCOL.md §1). */
const SIZES: Record<Algorithm, { publicKey: number; signature: number }> = {
  'ML-DSA-44': { publicKey: 1312, signature: 2420 },
  'ML-DSA-65': { publicKey: 1952, signature: 3309 },
  'ML-DSA-87': { publicKey: 2592, signature: 4627 },
};

/**
 * A stand-in for the ML-DSA arithmetic only: keys and signatures of the real lengths, a "signature" is SHA3-256 of
 * key, context and message, stretched to length. Everything else the server does on a handshake is the real code
 * (parse, shape and lengths, DID = SHA3 of the key, clock, signature check through the backend interface, replay cache,
 * authorization, the session limits in the store, the signed response). It makes 10 000 fresh identities affordable:
 * noble's ML-DSA signs in 7–17 ms here.
 */
function stretch(parts: Uint8Array[], length: number): Uint8Array {
  const h = createHash('sha3-256');
  for (const p of parts) h.update(p);
  const digest = h.digest();
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i += 32) out.set(digest.subarray(0, Math.min(32, length - i)), i);
  return out;
}

const hashSigBackend: CryptoBackend = {
  name: 'test-hash-signature',
  signingKey(algorithm: Algorithm, seed: Uint8Array) {
    const publicKey = stretch([seed, new TextEncoder().encode(algorithm)], SIZES[algorithm].publicKey);
    return {
      algorithm,
      publicKey,
      sign: async (message: Uint8Array, context: Uint8Array) => stretch([publicKey, context, message], SIZES[algorithm].signature),
    };
  },
  verifyingKey(algorithm: Algorithm, publicKey: Uint8Array) {
    if (publicKey.length !== SIZES[algorithm].publicKey) throw new TypeError('wrong key length');
    return {
      algorithm,
      publicKey,
      verify: async (message: Uint8Array, signature: Uint8Array, context: Uint8Array) => {
        const expected = stretch([publicKey, context, message], SIZES[algorithm].signature);
        return signature.length === expected.length && signature.every((b, i) => b === expected[i]);
      },
    };
  },
};

function seedOf(i: number, salt: number): Uint8Array {
  const seed = new Uint8Array(32);
  new DataView(seed.buffer).setUint32(0, i);
  seed[31] = salt;
  return seed;
}

/** An identity on the hash-signature backend (cheap to make and to sign with). */
const fast = (i: number, salt: number) => AgentIdentity.fromSeed(seedOf(i, salt), { algorithm: 'ML-DSA-44', backend: hashSigBackend });

/** An app that answers every request `{ result: {} }` (the floods measure the PQC layer, not an MCP server). */
const echoApp: WebApp = async (_request, body) => Response.json({ jsonrpc: '2.0', id: (body as { id?: unknown }).id ?? null, result: {} });

interface FloodResult {
  ok: number;
  refused: Record<string, number>;
  ms: number;
}

/** Sends the handshakes `requests(i)` for i < n to `url`, `width` at a time, and counts the answers. */
async function handshakeFlood(url: string, requests: (i: number) => Promise<string>, n: number, width: number, result?: FloodResult): Promise<FloodResult> {
  result ??= { ok: 0, refused: {}, ms: 0 };
  const handshakeUrl = new URL('pqc/handshake', url);
  const t = performance.now();
  await pool(n, width, async (i) => {
    const response = await fetch(handshakeUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: await requests(i) });
    if (response.status === 200) {
      result.ok++;
      await response.arrayBuffer();
    } else {
      const { status, reason } = await rejectionOf(response);
      const key = `${status} ${reason}`;
      result.refused[key] = (result.refused[key] ?? 0) + 1;
    }
  });
  result.ms += performance.now() - t;
  return result;
}

/** The handshake request of `identity` to a server, as a client makes it. */
const handshakeOf = (identity: AgentIdentity, serverDid: string) => async () => (await PQCHandshake.initiate(identity, { serverDid })).request;

/** What a RedisSessionStore holds under its prefix: keys by kind, each with its TTL, and the bytes Redis counts. */
async function redisHoldings(store: RedisSessionStore) {
  const keys = await keysUnder(redis, store.keyPrefix);
  const kinds = { sessions: 0, nonces: 0, clients: 0, handshakes: 0, other: 0 };
  const session = new RegExp(`^${store.keyPrefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\{[0-9a-f]{32}\\}:(.+)$`);
  for (const key of keys) {
    const part = session.exec(key)?.[1];
    if (part === 's') kinds.sessions++;
    else if (part === 'n' || part === 't') kinds.nonces++;
    else if (key.startsWith(store.keys.client(''))) kinds.clients++;
    else if (key.startsWith(store.keys.handshake(''))) kinds.handshakes++;
    else kinds.other++;
  }
  const ttls = await Promise.all(keys.map((key) => redis.pTTL(key)));
  const bytes = await Promise.all(keys.map((key) => redis.memoryUsage(key)));
  return {
    keys: keys.length,
    ...kinds,
    withoutTtl: keys.filter((_k, i) => !(ttls[i]! > 0)),
    bytes: bytes.reduce<number>((sum, b) => sum + (b ?? 0), 0),
    live: await redis.zCard(store.keys.live),
  };
}

describe('a handshake flood from fresh identities past maxSessions', () => {
  // Ten times maxSessions: past every bound by far (sized so CI's two cores run it in seconds, not minutes).
  const N = 1500;
  const MAX_SESSIONS = 150;
  const MAX_ENDED = 300;
  /** Handshakes between two calls of the client in use: fewer than maxSessions, so its session stays among the recent. */
  const CHUNK = 75;
  /**
   * Where in the flood a second idle client opens its session: late enough that, once ended (about MAX_SESSIONS
   * handshakes later), fewer than MAX_ENDED sessions end after it, so its record is still kept when it comes back.
   */
  const RECENT = N - MAX_SESSIONS - MAX_ENDED / 2;

  test.each([
    ['RedisSessionStore', () => redisStore({ maxEndedSessions: MAX_ENDED })],
    ['MemorySessionStore', () => new MemorySessionStore({ maxEndedSessions: MAX_ENDED })],
  ] as const)(
    `%s: ${N} handshakes, maxSessions ${MAX_SESSIONS} → every one answered, ${MAX_SESSIONS} live, a client in use keeps its session, idle ones recover, memory bounded`,
    async (name, makeStore) => {
      const store: SessionStore = makeStore();
      const serverIdentity = fast(0, 200);
      const server = await startServer({ identity: serverIdentity, store, maxSessions: MAX_SESSIONS }, { app: echoApp });
      const heapBefore = retainedHeap();
      try {
        const idleFirst = new RawClient(server.url, fast(1, 199), serverIdentity.did);
        const idleRecent = new RawClient(server.url, fast(2, 199), serverIdentity.did);
        const active = new RawClient(server.url, fast(3, 199), serverIdentity.did);
        await idleFirst.handshake();
        await active.handshake();
        const result: FloodResult = { ok: 0, refused: {}, ms: 0 };
        let activeCalls = 0;
        for (let start = 0; start < N; start += CHUNK) {
          if (start === RECENT) await idleRecent.handshake();
          await handshakeFlood(server.url, (i) => handshakeOf(fast(start + i + 1, 201), serverIdentity.did)(), CHUNK, 32, result);
          // The client in use is never the least recently used: its session survives the whole flood.
          expect(await active.call('echo', { text: 'in use' })).toMatchObject({ result: {} });
          activeCalls++;
        }
        // Nobody is locked out: a full table ends the least recently used session instead of refusing (§9).
        expect(result.refused).toEqual({});
        expect(result.ok).toBe(N);
        const seen = server.seen.length;
        const late = async (client: RawClient) => {
          const signed = await client.sign({ jsonrpc: '2.0', id: client.id(), method: 'tools/call', params: { name: 'echo', arguments: {} } });
          return { signed, response: await client.post(signed.text) };
        };
        // The idle client ended late in the flood still has its record: it is told so, signed and bound to its
        // request (§6), which its client verifies before it handshakes again and resends.
        const recent = await late(idleRecent);
        expect(recent.response.status).toBe(401);
        expect(await idleRecent.verified(recent.response, recent.signed.nonce)).toMatchObject([{ error: { data: { pqc: 'unknown_session' } } }]);
        // The one ended first was also the first forgotten past maxEndedSessions: an unsigned unknown_session, which
        // its client reports without resending (§6); its next request handshakes anew.
        expect(await rejectionOf((await late(idleFirst)).response)).toEqual({ status: 401, reason: 'unknown_session', signed: false });
        expect(server.seen.length).toBe(seen);
        for (const client of [idleRecent, idleFirst]) {
          await client.handshake();
          expect(await client.call('echo', { text: 'back' })).toMatchObject({ result: {} });
        }

        const heapAfter = retainedHeap();
        // Bounded: the live sessions and the ended records kept for their clients' recovery, of a few KB each.
        expect(heapAfter - heapBefore).toBeLessThan(64 * 1024 * 1024);
        let held: string;
        if (store instanceof RedisSessionStore) {
          const h = await redisHoldings(store);
          expect(h.withoutTtl).toEqual([]);
          expect(h.live).toBe(MAX_SESSIONS);
          // Session records: the live ones and at most MAX_ENDED ended ones (the first to be forgotten go first).
          expect(h.sessions).toBeLessThanOrEqual(MAX_SESSIONS + MAX_ENDED);
          // A client's set holds its live sessions: not one set per identity the flood ever used.
          expect(h.clients).toBeLessThanOrEqual(MAX_SESSIONS);
          // The handshake replay cache: one key per verified request, each gone after 2 × skew + 60 s (§5).
          expect(h.handshakes).toBe(N + 5);
          held =
            `Redis holds ${h.live} live, ${h.sessions} session records, ${h.clients} client sets, ${h.handshakes} handshake keys ` +
            `(${h.keys} keys, ${mb(h.bytes)} by MEMORY USAGE, every key with a TTL)`;
        } else {
          expect((store as MemorySessionStore).size).toBe(MAX_SESSIONS);
          held = `the store holds ${(store as MemorySessionStore).size} live sessions`;
        }
        report(
          `[flood] ${name}: ${N} handshakes (fresh identities, hash-signature backend) in ${(result.ms / 1000).toFixed(1)} s ` +
            `(${Math.round((N / result.ms) * 1000)}/s): ${result.ok} × 200, refused ${JSON.stringify(result.refused)}; ` +
            `${activeCalls} calls of a client in use all answered; ${held}; retained heap + external (after GC) ${mb(heapBefore)} → ${mb(heapAfter)}`,
        );
      } finally {
        await server.close();
        await store.close?.();
      }
    },
    240_000,
  );

  test('real ML-DSA: 300 handshakes from 300 fresh ML-DSA-44 keys, maxSessions 100, on Redis', async () => {
    const store = redisStore();
    const serverIdentity = AgentIdentity.fromSeed(seedOf(0, 210), { algorithm: 'ML-DSA-44' });
    const server = await startServer({ identity: serverIdentity, store, maxSessions: 100 }, { app: echoApp });
    try {
      const t = performance.now();
      const identities = Array.from({ length: 300 }, (_, i) => AgentIdentity.fromSeed(seedOf(i + 1, 211), { algorithm: 'ML-DSA-44' }));
      const keygenMs = performance.now() - t;
      const result = await handshakeFlood(server.url, (i) => handshakeOf(identities[i]!, serverIdentity.did)(), 300, 8);
      expect(result.ok).toBe(300);
      expect(result.refused).toEqual({});
      expect(await redis.zCard(store.keys.live)).toBe(100);
      report(
        `[flood] real ML-DSA-44: 300 fresh keys (keygen ${keygenMs.toFixed(0)} ms), 300 handshakes signed and verified in ` +
          `${(result.ms / 1000).toFixed(1)} s: ${result.ok} × 200, 100 live in Redis`,
      );
    } finally {
      await server.close();
      await store.close();
    }
  }, 120_000);
});

describe('one key opening sessions without end', () => {
  const N = 500;
  const MAX_ENDED = 50;

  test(`${N} handshakes of one key on Redis: only its own sessions end, others keep theirs, what Redis holds stays bounded`, async () => {
    const store = redisStore({ maxEndedSessions: MAX_ENDED });
    const serverIdentity = fast(0, 240);
    const server = await startServer({ identity: serverIdentity, store, maxSessionsPerClient: 16 }, { app: echoApp });
    try {
      const others = Array.from({ length: 5 }, (_, i) => new RawClient(server.url, fast(i + 1, 241), serverIdentity.did));
      for (const other of others) await other.handshake();
      const flooder = fast(100, 241);
      const result = await handshakeFlood(server.url, () => handshakeOf(flooder, serverIdentity.did)(), N, 16);
      expect(result).toMatchObject({ ok: N, refused: {} });
      // Nobody else's session was ended: each still answers.
      for (const other of others) expect(await other.call('echo', { text: 'still here' })).toMatchObject({ result: {} });
      const h = await redisHoldings(store);
      expect(h.live).toBe(others.length + 16);
      expect(h.withoutTtl).toEqual([]);
      expect(h.sessions).toBeLessThanOrEqual(others.length + 16 + MAX_ENDED);
      expect(h.clients).toBeLessThanOrEqual(others.length + 1);
      report(
        `[flood] one key, ${N} handshakes in ${(result.ms / 1000).toFixed(1)} s: ${h.live} live (16 its own), ${h.sessions} session records, ` +
          `${h.clients} client sets, ${h.handshakes} handshake keys; ${mb(h.bytes)} by MEMORY USAGE`,
      );
    } finally {
      await server.close();
      await store.close();
    }
  }, 120_000);
});

describe('an unauthenticated flood writes nothing to Redis and ends nobody\'s session', () => {
  const N = 600;
  let store: RedisSessionStore;
  let server: TestServer;
  let victims: RawClient[];
  const serverIdentity = fast(0, 250);
  const outsider = (i: number) => fast(i, 252);
  beforeAll(async () => {
    store = redisStore();
    // A server with a list of who may open sessions; the flood's identities are not on it.
    const allowed = Array.from({ length: 3 }, (_, i) => fast(i + 1, 251));
    server = await startServer({ identity: serverIdentity, store, maxSessions: 3, authorize: allowed.map((id) => id.did) }, { app: echoApp });
    victims = allowed.map((id) => new RawClient(server.url, id, serverIdentity.did));
    for (const victim of victims) await victim.handshake();
  });

  afterAll(async () => {
    await server.close();
    await store.close();
  });

  /** Every key the store holds now. */
  const keysNow = async () => (await keysUnder(redis, store.keyPrefix)).sort();

  /** The victims, every one of them, still served in the session it had. */
  async function victimsServed(): Promise<void> {
    for (const victim of victims) expect(await victim.call('echo', { text: 'mine' })).toMatchObject({ result: {} });
  }

  test(`${N} forged handshakes (fresh keys, signatures that do not verify): 401, no key written, the full table untouched`, async () => {
    const forged = async (i: number) => {
      const request = JSON.parse(await handshakeOf(outsider(i), serverIdentity.did)()) as Record<string, string>;
      request.signature = request.signature!.replace(/^../, (b) => (b === '00' ? '01' : '00'));
      return JSON.stringify(request);
    };
    const before = await keysNow();
    const result = await handshakeFlood(server.url, forged, N, 32);
    expect(result).toMatchObject({ ok: 0, refused: { '401 invalid_signature': N } });
    expect(await keysNow()).toEqual(before);
    await victimsServed();
  });

  test(`${N} requests naming sessions never issued (POST, GET, DELETE): 401 unknown_session, no key written`, async () => {
    const reasons: Record<string, number> = {};
    const count = (r: { status: number; reason: string | undefined; signed: boolean }) => {
      const key = `${r.status} ${r.reason}${r.signed ? ' signed' : ''}`;
      reasons[key] = (reasons[key] ?? 0) + 1;
    };
    const before = await keysNow();
    const seen = server.seen.length;
    const attacker = new RawClient(server.url, outsider(1), serverIdentity.did);
    attacker.session = victims[0]!.session; // its shape only: every request names another session
    await pool(N, 32, async (i) => {
      const sessionId = createHash('sha256').update(`never issued ${i}`).digest('hex').slice(0, 32);
      if (i % 2 === 0) {
        const signed = await attacker.sign({ jsonrpc: '2.0', id: i, method: 'tools/call', params: {} }, { sessionId });
        count(await rejectionOf(await attacker.post(signed.text, { 'PQC-Session': sessionId })));
      } else {
        const method = i % 4 === 1 ? 'GET' : 'DELETE';
        count(await rejectionOf(await attacker.bodyless(method, await attacker.envelope(method, { sessionId }))));
      }
    });
    expect(reasons).toEqual({ '401 unknown_session': N });
    expect(await keysNow()).toEqual(before);
    expect(server.seen.length).toBe(seen);
    await victimsServed();
  });

  test(`${N} signed handshakes of keys the server does not authorize: 403, no session opened, the full table untouched`, async () => {
    const result = await handshakeFlood(server.url, (i) => handshakeOf(outsider(i + 10), serverIdentity.did)(), N, 32);
    expect(result).toMatchObject({ ok: 0, refused: { '403 peer_not_authorized': N } });
    const h = await redisHoldings(store);
    // Nothing of theirs: no session, nobody ended, and not even a handshake replay key (refused clients are never
    // recorded, so they cannot fill the replay window of authorized ones).
    expect(h.live).toBe(victims.length);
    expect(h.sessions).toBe(victims.length);
    expect(h.handshakes).toBe(victims.length);
    expect(h.withoutTtl).toEqual([]);
    await victimsServed();
  });
});

describe('nonce flood in one session', () => {
  const N = 50_000;
  const CAP = 5_000;
  const LIMITS: SessionLimits = { maxSessions: 10, maxSessionsPerClient: 16, retentionSec: 660 };

  const sessionRecord = () => testRecord({ sessionId: '5e'.repeat(16), expiresAt: Date.now() + 3_600_000 });

  test.each([
    ['MemorySessionStore', () => new MemorySessionStore({ maxNoncesPerSession: CAP })],
    ['RedisSessionStore', () => redisStore({ maxNoncesPerSession: CAP })],
  ] as const)(
    `%s: ${N} fresh nonces in one session stay within the per-session cap of ${CAP}`,
    async (name, makeStore) => {
      const store = makeStore();
      const session = sessionRecord();
      await store.createSession(session, LIMITS);
      const count = async (): Promise<number> =>
        store instanceof RedisSessionStore ? redis.zCard(store.keys.nonces(session.sessionId)) : store.nonceCount(session.sessionId);
      const heapBefore = retainedHeap();
      // A client signing 100 000 messages within the acceptance window: timestamps 1 ms apart, all fresh.
      const t0 = Date.now() - 60_000;
      const nonce = (i: number) => createHash('sha256').update(String(i)).digest('hex').slice(0, 32);
      let accepted = 0;
      let maxSeen = 0;
      const t = performance.now();
      const BATCH = 1000;
      for (let start = 0; start < N; start += BATCH) {
        const results = await Promise.all(
          Array.from({ length: BATCH }, (_, j) => store.recordNonce(session.sessionId, nonce(start + j), t0 + start + j, 600)),
        );
        accepted += results.filter((r) => r === 'accepted').length;
        if (start % 10_000 === 0) maxSeen = Math.max(maxSeen, await count());
      }
      const ms = performance.now() - t;
      const held = await count();
      maxSeen = Math.max(maxSeen, held);
      expect(held).toBeLessThanOrEqual(CAP);
      expect(maxSeen).toBeLessThanOrEqual(CAP);
      // Nothing accepted can be replayed: the last CAP as replays, everything older by the floor.
      const probes = [0, 1, N / 2, N - CAP - 1, N - CAP, N - 2, N - 1];
      for (const i of probes) expect(await store.recordNonce(session.sessionId, nonce(i), t0 + i, 600)).toBe('replay');
      expect(await store.recordNonce(session.sessionId, 'f'.repeat(32), t0 + N + 1, 600)).toBe('accepted');
      const memory =
        store instanceof RedisSessionStore
          ? `the session's nonce keys hold ${mb(((await redis.memoryUsage(store.keys.nonces(session.sessionId))) ?? 0) + ((await redis.memoryUsage(store.keys.nonceTimes(session.sessionId))) ?? 0))} by MEMORY USAGE`
          : `retained heap + external (after GC) ${mb(heapBefore)} → ${mb(retainedHeap())}`;
      report(
        `[flood] ${name}: ${N} nonces in one session in ${(ms / 1000).toFixed(1)} s (${Math.round((N / ms) * 1000)}/s): ` +
          `${accepted} accepted, ${held} held at the end (max seen ${maxSeen}, cap ${CAP}); replays of ${probes.length} ` +
          `old and recent ones refused; ${memory}`,
      );
      expect(accepted).toBe(N);
      await store.close?.();
    },
    180_000,
  );
});

describe('a body past the limit, chunked, without content-length, sent slowly', () => {
  const LIMIT = 64 * 1024;
  const CHUNK = 8 * 1024;
  const MAX_SEND = 16 * 1024 * 1024;
  let store: RedisSessionStore;
  let server: TestServer;
  let client: RawClient;
  const serverIdentity = fast(0, 220);

  beforeAll(async () => {
    store = redisStore();
    server = await startServer({ identity: serverIdentity, store, maxBodyBytes: LIMIT }, { app: echoApp });
    client = new RawClient(server.url, fast(1, 220), serverIdentity.did);
    await client.handshake();
  });

  afterAll(async () => {
    await server.close();
    await store.close();
  });

  /** Sends a chunked POST slowly until the server answers or closes; returns what happened. */
  function slowPost(port: number, path: string, headers: string): Promise<{ status: number; sent: number; ms: number; body: string }> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1');
      let sent = 0;
      let response = '';
      let timer: ReturnType<typeof setInterval> | undefined;
      const t = performance.now();
      const finish = () => {
        clearInterval(timer);
        const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(response)?.[1] ?? 0);
        resolve({ status, sent, ms: performance.now() - t, body: response.split('\r\n\r\n').slice(1).join('\r\n\r\n') });
        socket.destroy();
      };
      socket.on('data', (data) => {
        response += data.toString('latin1');
        if (/\r\n\r\n/.test(response) && /content-length: \d+/i.test(response)) {
          const length = Number(/content-length: (\d+)/i.exec(response)![1]);
          if (response.split('\r\n\r\n').slice(1).join('\r\n\r\n').length >= length) finish();
        }
      });
      socket.on('close', finish);
      socket.on('error', () => finish());
      socket.on('connect', () => {
        socket.write(
          `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\n` +
            `Accept: application/json, text/event-stream\r\n${headers}Transfer-Encoding: chunked\r\n\r\n`,
        );
        const chunk = Buffer.from(`${CHUNK.toString(16)}\r\n${'x'.repeat(CHUNK)}\r\n`);
        socket.write(`1\r\n[\r\n`);
        timer = setInterval(() => {
          if (sent >= MAX_SEND || socket.destroyed) {
            clearInterval(timer);
            if (!socket.destroyed) reject(new Error(`the server read ${MAX_SEND} bytes without answering`));
            return;
          }
          socket.write(chunk);
          sent += CHUNK;
        }, 5);
      });
    });
  }

  test.each([
    ['the MCP endpoint, in a live session', '/mcp', true],
    ['the handshake', '/pqc/handshake', false],
  ])('%s: 413 body_too_large, the server stops reading near the limit', async (name, path, inSession) => {
    const seen = server.seen.length;
    const readBefore = server.bytesRead();
    const result = await slowPost(server.port, path, inSession ? `PQC-Session: ${client.session.sessionId}\r\n` : '');
    const read = server.bytesRead() - readBefore;
    report(
      `[flood] slow chunked body to ${name}: limit ${LIMIT} B, client had sent ${result.sent} B when the server answered ` +
        `${result.status} after ${result.ms.toFixed(0)} ms; the server read ${read} B in all (${(read / LIMIT).toFixed(2)} × the limit)`,
    );
    expect(result.status).toBe(413);
    expect(result.body).toContain('"data":{"pqc":"body_too_large"}'); // (the body is chunked: framing around the JSON)
    expect(read).toBeLessThan(LIMIT + 256 * 1024);
    expect(server.seen.length).toBe(seen);
  });

  test.each([
    ['no PQC-Session header', '', 'missing_envelope'],
    ['a session never issued', `PQC-Session: ${'cd'.repeat(16)}\r\n`, 'unknown_session'],
  ])('to the MCP endpoint with %s: 401 on the headers, before the body is read', async (_name, header, reason) => {
    const readBefore = server.bytesRead();
    const result = await slowPost(server.port, '/mcp', header);
    const read = server.bytesRead() - readBefore;
    report(`[flood] slow chunked body, ${reason}: answered ${result.status} after ${result.ms.toFixed(0)} ms, the server read ${read} B`);
    expect(result.status).toBe(401);
    expect(result.body).toContain(`"data":{"pqc":"${reason}"}`);
    expect(read).toBeLessThan(64 * 1024);
  });

  test('a declared content-length past the limit, in a live session: 413 before the body is read', async () => {
    const readBefore = server.bytesRead();
    const socket = connect(server.port, '127.0.0.1');
    const answer = await new Promise<string>((resolve) => {
      let text = '';
      socket.on('connect', () => {
        socket.write(
          `POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nPQC-Session: ${client.session.sessionId}\r\n` +
            `Content-Length: ${100 * 1024 * 1024}\r\n\r\n{`,
        );
      });
      socket.on('data', (d) => {
        text += d.toString('latin1');
        if (text.includes('body_too_large')) resolve(text);
      });
      socket.on('close', () => resolve(text));
    });
    socket.destroy();
    expect(answer).toMatch(/^HTTP\/1\.1 413/);
    expect(server.bytesRead() - readBefore).toBeLessThan(1024);
  });
});

describe('large bodies are not kept in memory', () => {
  // Strings parsed out of a request (a nonce, a DID, a key) are kept for minutes in the replay caches, the sessions and
  // the audit trail. They must not keep the whole request body alive with them: 200 × 1 MiB would be 200 MB retained.
  const N = 200;
  const PAD = 'x'.repeat(1024 * 1024);
  const BOUND = 32 * 1024 * 1024;

  test(`${N} rejected 1 MiB messages forged in someone's session (audited with their envelope): retained heap stays flat`, async () => {
    const store = redisStore();
    const serverIdentity = fast(1, 230);
    const server = await startServer({ identity: serverIdentity, store, maxBodyBytes: 2 * 1024 * 1024 }, { app: echoApp });
    try {
      const victim = new RawClient(server.url, fast(2, 230), serverIdentity.did);
      await victim.handshake();
      // Signed by another key in the victim's session: read, parsed, refused at the signature, and audited.
      const forger = new RawClient(server.url, fast(3, 230), serverIdentity.did);
      forger.session = victim.session;
      const forged = await forger.sign({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: { pad: PAD } });
      const text = forged.text.replace(`"signer_did":"${forger.identity.did}"`, `"signer_did":"${victim.identity.did}"`);
      const before = retainedHeap();
      for (let i = 0; i < N; i++) {
        expect(await rejectionOf(await victim.post(text))).toEqual({ status: 401, reason: 'invalid_signature', signed: false });
      }
      const grown = retainedHeap() - before;
      const audited = server.handler.audit.entries().filter((e) => e.reason === 'invalid_signature');
      expect(audited).toHaveLength(N);
      report(`[flood] ${N} rejected 1 MiB messages: ${audited.length} audit entries with their envelope, retained heap + external ${delta(grown)}`);
      expect(grown).toBeLessThan(BOUND);
    } finally {
      await server.close();
      await store.close();
    }
  }, 120_000);

  test(`${N} accepted 1 MiB messages in one session (nonces kept): retained heap stays flat`, async () => {
    // Real ML-DSA here: message signatures are verified with the default backend.
    const store = redisStore();
    const serverIdentity = AgentIdentity.fromSeed(seedOf(3, 230), { algorithm: 'ML-DSA-44' });
    const server = await startServer({ identity: serverIdentity, store, maxBodyBytes: 2 * 1024 * 1024 }, { app: echoApp });
    try {
      const client = new RawClient(server.url, AgentIdentity.fromSeed(seedOf(4, 230), { algorithm: 'ML-DSA-44' }), serverIdentity.did);
      await client.handshake();
      const before = retainedHeap();
      for (let i = 0; i < N; i++) {
        const signed = await client.sign({ jsonrpc: '2.0', id: i, method: 'tools/call', params: { name: 'echo', arguments: { text: PAD } } });
        const response = await client.post(signed.text);
        expect(response.status).toBe(200);
        await response.arrayBuffer();
      }
      server.seen.length = 0;
      const grown = retainedHeap() - before;
      report(`[flood] ${N} accepted 1 MiB messages in one session: retained heap + external ${delta(grown)}`);
      expect(grown).toBeLessThan(BOUND);
    } finally {
      await server.close();
      await store.close();
    }
  }, 120_000);

  test(`${N} handshakes carrying a 48 KiB unknown member into a MemorySessionStore: retained heap stays flat; 1 MiB is refused unread`, async () => {
    // In-process on purpose: a MemorySessionStore keeps what it is given (keys, DIDs, nonces) in this heap.
    const serverIdentity = fast(5, 230);
    const server = await startServer({ identity: serverIdentity, maxBodyBytes: 2 * 1024 * 1024, store: new MemorySessionStore() }, { app: echoApp });
    const context = new TextEncoder().encode('pqc-mcp/v2/handshake-request'); // §5
    // Unknown members are allowed and signed (§5): the request is re-signed with the pad in it.
    const padded = async (client: AgentIdentity, pad: string) => {
      const body = JSON.parse(await handshakeOf(client, serverIdentity.did)()) as Record<string, unknown>;
      delete body.signature;
      body.pad = pad;
      const digest = createHash('sha3-256').update(canonicalJson(body)).digest();
      body.signature = Buffer.from(await client.sign(digest, context)).toString('hex');
      return JSON.stringify(body);
    };
    try {
      // A handshake is read up to 64 KiB whatever maxBodyBytes says: past it, 413 before any signature.
      const huge = await fetch(new URL('pqc/handshake', server.url), { method: 'POST', body: await padded(fast(9, 230), PAD) });
      expect(await rejectionOf(huge)).toEqual({ status: 413, reason: 'body_too_large', signed: false });
      const pad = 'x'.repeat(48 * 1024);
      const before = retainedHeap();
      for (let i = 0; i < N; i++) {
        const response = await fetch(new URL('pqc/handshake', server.url), { method: 'POST', body: await padded(fast(10 + (i % 200), 230), pad) });
        expect(response.status).toBe(200);
        await response.arrayBuffer();
      }
      const grown = retainedHeap() - before;
      report(`[flood] ${N} handshakes with a 48 KiB unknown member: retained heap + external ${delta(grown)}`);
      expect(grown).toBeLessThan(BOUND);
    } finally {
      await server.close();
    }
  }, 120_000);
});
