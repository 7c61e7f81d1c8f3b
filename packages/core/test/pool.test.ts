/**
 * The worker-pool crypto backend of `@pqc-mcp/core/node`: correct signatures both ways with the in-thread backends,
 * keys prepared once per worker (and again after being dropped), a crashed worker failing only its own jobs and being
 * replaced, close(), idle workers not keeping a process alive, and the server and adapters using it.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { utf8 } from '../src/bytes.js';
import { sha3_256 } from '../src/crypto/hash.js';
import { nobleBackend } from '../src/crypto/noble.js';
import { nodeBackend } from '../src/crypto/node.js';
import { MESSAGE_CONTEXT } from '../src/protocol.js';
import {
  AgentIdentity,
  MemorySessionStore,
  createPQCHandler,
  pqcFetch,
  type FetchLike,
} from '@pqc-mcp/core';
import { CryptoPoolError, createWorkerPoolBackend, resolveCryptoPool, type WorkerPoolBackend } from '@pqc-mcp/core/node';

const digest = sha3_256(utf8('a message'));
const seed = new Uint8Array(32).fill(5);

describe('createWorkerPoolBackend', () => {
  let pool: WorkerPoolBackend;
  beforeAll(async () => {
    pool = createWorkerPoolBackend({ size: 2, engine: 'noble', maxKeysPerWorker: 2 });
    await pool.warmup();
  });
  afterAll(() => pool.close());

  it('derives the same keys as noble and signs what noble verifies, and the reverse', async () => {
    const pooled = AgentIdentity.fromSeed(seed, { backend: pool });
    const plain = AgentIdentity.fromSeed(seed, { backend: nobleBackend });
    expect(pooled.publicKeyHex).toBe(plain.publicKeyHex);
    expect(pooled.backend.name).toBe('noble+workers');
    const signature = await pooled.sign(digest, MESSAGE_CONTEXT);
    expect(await plain.toPeer().verifyingKey.verify(digest, signature, MESSAGE_CONTEXT)).toBe(true);
    const other = await plain.sign(digest, MESSAGE_CONTEXT);
    const key = pooled.toPeer().verifyingKey;
    expect(await key.verify(digest, other, MESSAGE_CONTEXT)).toBe(true);
    expect(await key.verify(digest, other, utf8('another context'))).toBe(false);
    expect(await key.verify(sha3_256(utf8('another message')), other, MESSAGE_CONTEXT)).toBe(false);
    expect(await key.verify(digest, other.slice(1), MESSAGE_CONTEXT)).toBe(false);
  });

  it('checks inputs on the calling thread, as the other backends do', async () => {
    expect(() => pool.signingKey('ML-DSA-65', new Uint8Array(31))).toThrow(TypeError);
    expect(() => pool.verifyingKey('ML-DSA-65', new Uint8Array(10))).toThrow(TypeError);
    const key = pool.signingKey('ML-DSA-44', seed);
    await expect(key.sign(digest, new Uint8Array(256))).rejects.toThrow(RangeError);
  });

  it('runs many jobs on every worker and keeps more keys than a worker holds (dropped keys are sent again)', async () => {
    const identities = ['ML-DSA-44', 'ML-DSA-65', 'ML-DSA-87', 'ML-DSA-44'].map((algorithm, i) =>
      AgentIdentity.fromSeed(new Uint8Array(32).fill(i + 1), { algorithm: algorithm as 'ML-DSA-44', backend: pool }),
    );
    const before = pool.stats().completed;
    const results = await Promise.all(
      Array.from({ length: 16 }, async (_, i) => {
        const id = identities[i % identities.length]!;
        const signature = await id.sign(digest, MESSAGE_CONTEXT);
        return id.toPeer().verifyingKey.verify(digest, signature, MESSAGE_CONTEXT);
      }),
    );
    expect(results.every(Boolean)).toBe(true);
    const stats = pool.stats();
    expect(stats.completed - before).toBe(32);
    expect(stats.workers).toBe(2);
    expect(stats.running + stats.queued).toBe(0);
  });

  it('fails the jobs of a crashed worker with CryptoPoolError, replaces it, and goes on', async () => {
    // The real worker, started from a module that dies on one job (the pool's own worker has no test hook).
    const crashing = createWorkerPoolBackend({ size: 2, engine: 'noble', workerUrl: new URL('./fixtures/crashing-pool-worker.ts', import.meta.url) });
    try {
      await crashing.warmup();
      const id = AgentIdentity.fromSeed(seed, { backend: crashing });
      const crash = id.sign(digest, utf8('crash this worker'));
      await expect(crash).rejects.toBeInstanceOf(CryptoPoolError);
      await expect(crash).rejects.toThrow(/stopped/);
      expect(crashing.stats().crashes).toBe(1);
      const signatures = await Promise.all(Array.from({ length: 4 }, () => id.sign(digest, MESSAGE_CONTEXT)));
      for (const s of signatures) expect(await nobleBackend.verifyingKey('ML-DSA-65', id.publicKey).verify(digest, s, MESSAGE_CONTEXT)).toBe(true);
      expect(crashing.stats().workers).toBe(2);
    } finally {
      await crashing.close();
    }
  });

  it('a worker module that cannot start: the pool computes on this thread, still correct', async () => {
    const broken = createWorkerPoolBackend({ size: 1, engine: 'noble', workerUrl: new URL('./fixtures/no-such-worker.js', import.meta.url) });
    try {
      const id = AgentIdentity.fromSeed(seed, { backend: broken });
      const signature = await id.sign(digest, MESSAGE_CONTEXT);
      expect(await nobleBackend.verifyingKey('ML-DSA-65', id.publicKey).verify(digest, signature, MESSAGE_CONTEXT)).toBe(true);
      expect(broken.stats().crashes).toBeGreaterThanOrEqual(3);
    } finally {
      await broken.close();
    }
  });
});

// Runs on every Node: where node:crypto has ML-DSA (Node >= 24.8, CI's second run) the workers use it; elsewhere
// 'auto' falls back to noble and asking for 'node' is refused with the reason.
it('runs node:crypto in the workers where the runtime has it, noble elsewhere (engine auto)', async () => {
  if (!nodeBackend()) {
    expect(() => createWorkerPoolBackend({ size: 1, engine: 'node' })).toThrow(/needs node:crypto with ML-DSA/);
    const fallback = createWorkerPoolBackend({ size: 1 });
    try {
      expect(fallback.engine).toBe('noble');
    } finally {
      await fallback.close();
    }
    return;
  }
  const pool = createWorkerPoolBackend({ size: 2 });
  try {
    expect(pool.engine).toBe('node');
    const id = AgentIdentity.fromSeed(seed, { backend: pool });
    expect(id.publicKeyHex).toBe(AgentIdentity.fromSeed(seed, { backend: nobleBackend }).publicKeyHex);
    const signature = await id.sign(digest, MESSAGE_CONTEXT);
    expect(await nobleBackend.verifyingKey('ML-DSA-65', id.publicKey).verify(digest, signature, MESSAGE_CONTEXT)).toBe(true);
    const other = await AgentIdentity.fromSeed(seed, { backend: nobleBackend }).sign(digest, MESSAGE_CONTEXT);
    expect(await id.toPeer().verifyingKey.verify(digest, other, MESSAGE_CONTEXT)).toBe(true);
    expect(await id.toPeer().verifyingKey.verify(digest, other, utf8('x'))).toBe(false);
  } finally {
    await pool.close();
  }
});

describe('close()', () => {
  it('fails pending and later jobs with CryptoPoolError', async () => {
    const pool = createWorkerPoolBackend({ size: 1, engine: 'noble' });
    const key = pool.signingKey('ML-DSA-65', seed);
    const pending = Array.from({ length: 3 }, () => key.sign(digest, MESSAGE_CONTEXT).then(() => 'signed', (err: unknown) => err));
    await pool.close();
    for (const outcome of await Promise.all(pending)) expect(outcome).toBeInstanceOf(CryptoPoolError);
    await expect(key.sign(digest, MESSAGE_CONTEXT)).rejects.toBeInstanceOf(CryptoPoolError);
  });

  it('is not needed for a process to exit: idle workers are unref\'d', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pqc-pool-'));
    const script = join(dir, 'exit.mts');
    const poolModule = join(__dirname, '..', 'src', 'node', 'pool.ts');
    writeFileSync(
      script,
      `import { createWorkerPoolBackend } from ${JSON.stringify(poolModule)};
const pool = createWorkerPoolBackend({ size: 2, engine: 'noble' });
const key = pool.signingKey('ML-DSA-44', new Uint8Array(32).fill(1));
const signature = await key.sign(new Uint8Array(32), new Uint8Array(0));
console.log('signed', signature.length);
`,
    );
    const started = Date.now();
    const run = spawnSync(process.execPath, ['--import', 'tsx', script], { cwd: join(__dirname, '..'), encoding: 'utf8', timeout: 25_000 });
    expect(run.stderr).toBe('');
    expect(run.stdout.trim()).toBe('signed 2420');
    expect(run.status).toBe(0);
    expect(Date.now() - started).toBeLessThan(20_000);
  });
});

describe('servers on a pool', () => {
  it('signs and verifies through the `backend` option, client keys included', async () => {
    const pool = createWorkerPoolBackend({ size: 2, engine: 'noble' });
    try {
      const identity = AgentIdentity.create('server', { backend: 'noble' });
      const handler = createPQCHandler({ identity, backend: pool, store: new MemorySessionStore() });
      expect(handler.identity.backend).toBe(pool);
      expect(handler.identity.did).toBe(identity.did);
      expect(handler.identity.backend.name).toBe('noble+workers');
      const serverFetch: FetchLike = (input, init) =>
        handler.handle(new Request(input, init), async (_request, body) => Response.json({ jsonrpc: '2.0', id: (body as { id: number }).id, result: {} }));
      const client = pqcFetch({ identity: AgentIdentity.create('client', { backend: 'noble' }), serverDid: identity.did, fetch: serverFetch });
      const before = pool.stats().completed;
      const response = await client('http://localhost/mcp', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/list' }),
      });
      expect(await response.json()).toEqual({ jsonrpc: '2.0', id: 3, result: {} });
      // The handshake (verify the client, sign the answer) and the call (verify, sign) all ran in the pool.
      expect(pool.stats().completed - before).toBeGreaterThanOrEqual(4);
    } finally {
      await pool.close();
    }
  });

  it('resolveCryptoPool: auto puts the built-in backends on a shared pool, leaves other backends and explicit choices alone', () => {
    const noble = AgentIdentity.create('s', { backend: 'noble' });
    const auto = resolveCryptoPool({ identity: noble });
    expect((auto.backend as WorkerPoolBackend).name).toBe('noble+workers');
    expect(resolveCryptoPool({ identity: noble, cryptoPool: 'auto' }).backend).toBe(auto.backend);
    expect(resolveCryptoPool({ identity: noble, cryptoPool: false }).backend).toBeUndefined();
    expect(resolveCryptoPool({ identity: noble, backend: 'noble' }).backend).toBe('noble');
    expect(() => resolveCryptoPool({ identity: noble, backend: 'noble', cryptoPool: true })).toThrow(/either/);
    expect(() => resolveCryptoPool({ identity: noble, cryptoPool: 'yes' as never })).toThrow(/cryptoPool/);
    expect('cryptoPool' in resolveCryptoPool({ identity: noble, cryptoPool: false })).toBe(false);
    const fake = { name: 'custom', signingKey: nobleBackend.signingKey, verifyingKey: nobleBackend.verifyingKey };
    const custom = AgentIdentity.create('s', { backend: fake });
    expect(resolveCryptoPool({ identity: custom }).backend).toBeUndefined();
    const native = nodeBackend();
    if (native) {
      const onNative = resolveCryptoPool({ identity: AgentIdentity.create('s', { backend: native }) }).backend as WorkerPoolBackend;
      expect(onNative.name).toBe('node+workers');
    }
  });
});
