/**
 * Floods, each printing its numbers: handshakes past maxSessions, nonces past the per-session cap, a body past the
 * size limit sent slowly without a length.
 */
import { createHash } from 'node:crypto';
import { connect } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import {
  AgentIdentity,
  HANDSHAKE_REQUEST_CONTEXT,
  MemorySessionStore,
  MessageSigner,
  PQCHandshake,
  PUBLIC_KEY_BYTES,
  SIGNATURE_BYTES,
  type Algorithm,
  type CryptoBackend,
  type SessionRecord,
  type SessionStore,
  canonicalJson,
  formatTimestamp,
  sha3_256,
  toHex,
  utf8,
} from '@pqc-mcp/core';
import { report } from '@pqc-mcp/test-kit';
import { RedisSessionStore } from '../src/index.js';
import {
  REDIS_URL,
  RawClient,
  connectTestRedis,
  deletePrefix,
  keysUnder,
  reasonOf,
  redisUsedMemory,
  startServer,
  uniquePrefix,
  type RawRedis,
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

function redisStore(options: { maxNoncesPerSession?: number } = {}): RedisSessionStore {
  const keyPrefix = uniquePrefix('flood');
  prefixes.push(keyPrefix);
  return new RedisSessionStore({ url: REDIS_URL, keyPrefix, ...options });
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

/**
 * A stand-in for the ML-DSA arithmetic only: keys and signatures of the real lengths, a "signature" is SHA3-256 of
 * key, context and message, stretched to length. Everything else the server does on a handshake is the real code
 * (parse, shape and lengths, DID = SHA3 of the key, clock, signature check through the backend interface, replay cache,
 * authorization, the session limit in the store, the signed response). It makes 10 000 fresh identities affordable:
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
    const publicKey = stretch([seed, new TextEncoder().encode(algorithm)], PUBLIC_KEY_BYTES[algorithm]);
    return {
      algorithm,
      publicKey,
      sign: async (message: Uint8Array, context: Uint8Array) => stretch([publicKey, context, message], SIGNATURE_BYTES[algorithm]),
    };
  },
  verifyingKey(algorithm: Algorithm, publicKey: Uint8Array) {
    if (publicKey.length !== PUBLIC_KEY_BYTES[algorithm]) throw new TypeError('wrong key length');
    return {
      algorithm,
      publicKey,
      verify: async (message: Uint8Array, signature: Uint8Array, context: Uint8Array) => {
        const expected = stretch([publicKey, context, message], SIGNATURE_BYTES[algorithm]);
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

interface FloodResult {
  ok: number;
  refused: Record<string, number>;
  ms: number;
}

/** Sends `n` handshakes of fresh identities to `url`, `width` at a time. */
async function handshakeFlood(url: string, identities: (i: number) => AgentIdentity, n: number, width: number): Promise<FloodResult> {
  const result: FloodResult = { ok: 0, refused: {}, ms: 0 };
  const handshakeUrl = new URL('pqc/handshake', url);
  const t = performance.now();
  await pool(n, width, async (i) => {
    const { request } = await PQCHandshake.initiate(identities(i));
    const response = await fetch(handshakeUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: request });
    if (response.status === 200) {
      result.ok++;
      await response.arrayBuffer();
    } else {
      const key = `${response.status} ${await reasonOf(response)}`;
      result.refused[key] = (result.refused[key] ?? 0) + 1;
    }
  });
  result.ms = performance.now() - t;
  return result;
}

describe('handshake flood against maxSessions', () => {
  const N = 10_000;
  const MAX_SESSIONS = 1000;

  test.each([
    ['RedisSessionStore', () => redisStore()],
    ['MemorySessionStore', () => new MemorySessionStore()],
  ] as const)(
    `%s: ${N} handshakes from ${N} fresh identities, maxSessions ${MAX_SESSIONS} → ${MAX_SESSIONS} sessions, the rest 503 too_many_sessions`,
    async (name, makeStore) => {
      const store: SessionStore = makeStore();
      const serverIdentity = AgentIdentity.fromSeed(seedOf(0, 200), { algorithm: 'ML-DSA-44', backend: hashSigBackend });
      const server = await startServer({ identity: serverIdentity, store, maxSessions: MAX_SESSIONS });
      const redisBefore = await redisUsedMemory(redis);
      const heapBefore = retainedHeap();
      try {
        const result = await handshakeFlood(
          server.url,
          (i) => AgentIdentity.fromSeed(seedOf(i + 1, 201), { algorithm: 'ML-DSA-44', backend: hashSigBackend }),
          N,
          32,
        );
        expect(result.ok).toBe(MAX_SESSIONS);
        expect(result.refused).toEqual({ '503 too_many_sessions': N - MAX_SESSIONS });
        const heapAfter = retainedHeap();
        // Bounded: 1000 sessions of a few KB each (and, in memory, 10 000 handshake keys), whatever the flood's size.
        expect(heapAfter - heapBefore).toBeLessThan(64 * 1024 * 1024);
        let held: string;
        if (store instanceof RedisSessionStore) {
          const keys = await keysUnder(redis, store.keyPrefix);
          const sessions = keys.filter((k) => k.startsWith(store.keys.session(''))).length;
          const handshakes = keys.filter((k) => k.startsWith(store.keys.handshake(''))).length;
          expect(await redis.zCard(store.keys.live)).toBe(MAX_SESSIONS);
          expect(sessions).toBe(MAX_SESSIONS);
          expect(handshakes).toBe(N); // the replay cache: one key per verified request, each gone after 2 × skew
          held = `Redis holds ${sessions} sessions + ${handshakes} handshake keys (TTL 600 s), used_memory ${delta((await redisUsedMemory(redis)) - redisBefore)}`;
        } else {
          expect((store as MemorySessionStore).size).toBe(MAX_SESSIONS);
          held = `the store holds ${(store as MemorySessionStore).size} sessions`;
        }
        report(
          `[flood] ${name}: ${N} handshakes (fresh identities, hash-signature backend) in ${(result.ms / 1000).toFixed(1)} s ` +
            `(${Math.round((N / result.ms) * 1000)}/s): ${result.ok} × 200, ${JSON.stringify(result.refused)}; ${held}; ` +
            `retained heap + external (after GC) ${mb(heapBefore)} → ${mb(heapAfter)}`,
        );
      } finally {
        await server.close();
        await store.close?.();
      }
    },
    180_000,
  );

  test('real ML-DSA: 300 handshakes from 300 fresh ML-DSA-44 keys, maxSessions 100, on Redis', async () => {
    const store = redisStore();
    const serverIdentity = AgentIdentity.fromSeed(seedOf(0, 210), { algorithm: 'ML-DSA-44' });
    const server = await startServer({ identity: serverIdentity, store, maxSessions: 100 });
    try {
      const t = performance.now();
      const identities = Array.from({ length: 300 }, (_, i) => AgentIdentity.fromSeed(seedOf(i + 1, 211), { algorithm: 'ML-DSA-44' }));
      const keygenMs = performance.now() - t;
      const result = await handshakeFlood(server.url, (i) => identities[i]!, 300, 8);
      expect(result.ok).toBe(100);
      expect(result.refused).toEqual({ '503 too_many_sessions': 200 });
      expect(await redis.zCard(store.keys.live)).toBe(100);
      report(
        `[flood] real ML-DSA-44: 300 fresh keys (keygen ${keygenMs.toFixed(0)} ms), 300 handshakes signed and verified in ` +
          `${(result.ms / 1000).toFixed(1)} s: ${result.ok} × 200, ${JSON.stringify(result.refused)}`,
      );
    } finally {
      await server.close();
      await store.close();
    }
  }, 120_000);
});

describe('nonce flood in one session', () => {
  const N = 100_000;
  const CAP = 10_000;

  function sessionRecord(): SessionRecord {
    const now = Date.now();
    return {
      sessionId: '5e'.repeat(16),
      profile: 2,
      peerDid: `did:pqaid:${'1'.repeat(64)}`,
      peerAlgorithm: 'ML-DSA-65',
      peerPublicKey: 'ab'.repeat(1952),
      localDid: `did:pqaid:${'2'.repeat(64)}`,
      createdAt: now,
      expiresAt: now + 3_600_000,
    };
  }

  test.each([
    ['MemorySessionStore', () => new MemorySessionStore({ maxNoncesPerSession: CAP })],
    ['RedisSessionStore', () => redisStore({ maxNoncesPerSession: CAP })],
  ] as const)(
    `%s: ${N} fresh nonces in one session stay within the per-session cap of ${CAP}`,
    async (name, makeStore) => {
      const store = makeStore();
      const session = sessionRecord();
      await store.createSession(session, { maxSessions: 10 });
      const count = async (): Promise<number> =>
        store instanceof RedisSessionStore ? redis.zCard(store.keys.nonces(session.sessionId)) : store.nonceCount(session.sessionId);
      const redisBefore = await redisUsedMemory(redis);
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
        accepted += results.filter(Boolean).length;
        if (start % 10_000 === 0) maxSeen = Math.max(maxSeen, await count());
      }
      const ms = performance.now() - t;
      const held = await count();
      maxSeen = Math.max(maxSeen, held);
      expect(held).toBeLessThanOrEqual(CAP);
      expect(maxSeen).toBeLessThanOrEqual(CAP);
      // Nothing accepted can be replayed: the last CAP as replays, everything older by the floor.
      const probes = [0, 1, N / 2, N - CAP - 1, N - CAP, N - 2, N - 1];
      for (const i of probes) expect(await store.recordNonce(session.sessionId, nonce(i), t0 + i, 600)).toBe(false);
      expect(await store.recordNonce(session.sessionId, 'f'.repeat(32), t0 + N + 1, 600)).toBe(true);
      const memory =
        store instanceof RedisSessionStore
          ? `Redis used_memory ${delta((await redisUsedMemory(redis)) - redisBefore)}`
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

  /** Sends a chunked POST slowly until the server answers or closes; returns what happened. */
  function slowPost(port: number, path: string): Promise<{ status: number; sent: number; ms: number; body: string }> {
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
            'Accept: application/json, text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n',
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
    ['the MCP endpoint', '/mcp'],
    ['the handshake', '/pqc/handshake'],
  ])('%s: 413 body_too_large, the server stops reading near the limit', async (name, path) => {
    const store = new MemorySessionStore();
    const server = await startServer({ identity: AgentIdentity.fromSeed(seedOf(0, 220), { algorithm: 'ML-DSA-44' }), store, maxBodyBytes: LIMIT });
    try {
      const result = await slowPost(server.port, path);
      const read = server.bytesRead();
      report(
        `[flood] slow chunked body to ${name}: limit ${LIMIT} B, client had sent ${result.sent} B when the server answered ` +
          `${result.status} after ${result.ms.toFixed(0)} ms; the server read ${read} B in all (${(read / LIMIT).toFixed(2)} × the limit)`,
      );
      expect(result.status).toBe(413);
      expect(result.body).toContain('"data":{"pqc":"body_too_large"}'); // (the body is chunked: framing around the JSON)
      expect(read).toBeLessThan(LIMIT + 256 * 1024);
      expect(server.seen).toEqual([]);
    } finally {
      await server.close();
    }
  });

  test('a declared content-length past the limit: 413 before the body is read', async () => {
    const server = await startServer({ identity: AgentIdentity.fromSeed(seedOf(0, 221), { algorithm: 'ML-DSA-44' }), maxBodyBytes: LIMIT });
    try {
      const socket = connect(server.port, '127.0.0.1');
      const answer = await new Promise<string>((resolve) => {
        let text = '';
        socket.on('connect', () => {
          socket.write(`POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${100 * 1024 * 1024}\r\n\r\n{`);
        });
        socket.on('data', (d) => {
          text += d.toString('latin1');
          if (text.includes('body_too_large')) resolve(text);
        });
        socket.on('close', () => resolve(text));
      });
      socket.destroy();
      expect(answer).toMatch(/^HTTP\/1\.1 413/);
      expect(server.bytesRead()).toBeLessThan(1024);
    } finally {
      await server.close();
    }
  });
});

describe('large bodies are not kept in memory', () => {
  // Strings parsed out of a request (a nonce, a DID, a key) are kept for minutes in the replay caches, the sessions and
  // the audit trail. They must not keep the whole request body alive with them: 200 × 1 MiB would be 200 MB retained.
  const N = 200;
  const PAD = 'x'.repeat(1024 * 1024);
  const BOUND = 32 * 1024 * 1024;
  const fast = (byte: number) => AgentIdentity.fromSeed(seedOf(byte, 230), { algorithm: 'ML-DSA-44', backend: hashSigBackend });

  test(`${N} rejected 1 MiB messages from nobody (audited with their envelope): retained heap stays flat`, async () => {
    const server = await startServer({ identity: fast(1), maxBodyBytes: 2 * 1024 * 1024 });
    try {
      const signed = await new MessageSigner(fast(2)).signMessage({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: { pad: PAD } }, { sessionId: 'ab'.repeat(16) });
      const before = retainedHeap();
      for (let i = 0; i < N; i++) {
        const response = await fetch(server.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: signed.text });
        expect(await reasonOf(response)).toBe('unknown_session');
      }
      const grown = retainedHeap() - before;
      report(`[flood] ${N} rejected 1 MiB messages: ${server.handler.audit.entries().length} audit entries, retained heap + external ${delta(grown)}`);
      expect(grown).toBeLessThan(BOUND);
    } finally {
      await server.close();
    }
  }, 120_000);

  test(`${N} accepted 1 MiB messages in one session (nonces kept): retained heap stays flat`, async () => {
    // Real ML-DSA here: message signatures are verified with the default backend.
    const serverIdentity = AgentIdentity.fromSeed(seedOf(3, 230), { algorithm: 'ML-DSA-44' });
    const server = await startServer({ identity: serverIdentity, maxBodyBytes: 2 * 1024 * 1024 }, async () => Response.json({ jsonrpc: '2.0', id: 1, result: {} }));
    try {
      const client = new RawClient(AgentIdentity.fromSeed(seedOf(4, 230), { algorithm: 'ML-DSA-44' }), serverIdentity.did);
      await client.handshake(server.url);
      const before = retainedHeap();
      for (let i = 0; i < N; i++) {
        const signed = await client.sign({ jsonrpc: '2.0', id: i, method: 'tools/call', params: { name: 'echo', arguments: { text: PAD } } });
        const response = await client.post(server.url, signed.text);
        expect(response.status).toBe(200);
        await response.arrayBuffer();
      }
      server.seen.length = 0;
      const grown = retainedHeap() - before;
      report(`[flood] ${N} accepted 1 MiB messages in one session: retained heap + external ${delta(grown)}`);
      expect(grown).toBeLessThan(BOUND);
    } finally {
      await server.close();
    }
  }, 120_000);

  test(`${N} handshakes carrying a 1 MiB unknown member into a MemorySessionStore: retained heap stays flat`, async () => {
    const serverIdentity = fast(5);
    const server = await startServer({ identity: serverIdentity, maxBodyBytes: 2 * 1024 * 1024, store: new MemorySessionStore() });
    try {
      const before = retainedHeap();
      for (let i = 0; i < N; i++) {
        const client = fast(10 + (i % 200));
        const body: Record<string, unknown> = {
          type: 'pqc_handshake_request',
          v: 2,
          client_did: client.did,
          client_public_key: client.publicKeyHex,
          algorithm: client.algorithm,
          timestamp: formatTimestamp(Date.now()),
          nonce: toHex(seedOf(i, 231).subarray(0, 16)),
          pad: PAD,
        };
        body.signature = toHex(await client.sign(sha3_256(utf8(canonicalJson(body))), HANDSHAKE_REQUEST_CONTEXT));
        const response = await fetch(new URL('pqc/handshake', server.url), { method: 'POST', body: JSON.stringify(body) });
        expect(response.status).toBe(200);
        await response.arrayBuffer();
      }
      const grown = retainedHeap() - before;
      report(`[flood] ${N} handshakes with a 1 MiB unknown member: retained heap + external ${delta(grown)}`);
      expect(grown).toBeLessThan(BOUND);
    } finally {
      await server.close();
    }
  }, 120_000);
});
