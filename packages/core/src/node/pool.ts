/**
 * A crypto backend that signs and verifies in `worker_threads`, so a Node server's event loop stays free while
 * ML-DSA runs: handshakes, cheap requests and I/O are answered while signatures are being made.
 *
 * The workers run noble (pure JS: the case that needs it, as noble signs for 2-10 ms on the calling thread) or
 * `node:crypto` (Node >= 24.8; there the native backend's own async calls already run in libuv's pool, so the
 * worker pool is rarely worth it: see bench/results/latest.md). Keys stay in the workers: a signing key's seed
 * (noble) or PKCS#8 (native) and a verifying key's raw key (noble) or SPKI (native) are sent once per key and
 * worker, then only a key id travels with each job (the 32-byte digest, the context and, to verify, the signature).
 *
 * A worker that crashes fails the jobs it was running with a `CryptoPoolError` (never a wrong answer), and a new
 * one takes its place. Idle workers are unref'd, so a process exits when nothing else keeps it alive; `close()`
 * terminates them at once.
 */
import { createRequire } from 'node:module';
import { availableParallelism, cpus } from 'node:os';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

import type { Algorithm } from '../crypto/algorithms.js';
import { checkAlgorithm, checkPublicKey, checkSeed, checkSignInput, nobleBackend, verifyInputOk } from '../crypto/noble.js';
import { nodeBackend, pkcs8FromSeed, spkiFromRaw } from '../crypto/node.js';
import type { CryptoBackend, SigningKey, VerifyingKey } from '../crypto/types.js';

/** What the workers compute with: `noble` (pure JS) or `node` (`node:crypto`, Node >= 24.8). */
export type PoolEngine = 'noble' | 'node';

/** Options of `createWorkerPoolBackend`. */
export interface WorkerPoolOptions {
  /** Number of worker threads (default: `os.availableParallelism()`, the cores this process may use). */
  size?: number;
  /** What the workers run (default `'auto'`: `node` where `nodeBackend()` exists, else `noble`). */
  engine?: 'auto' | PoolEngine;
  /** Prepared keys each worker keeps, least recently used dropped first (default 4096). */
  maxKeysPerWorker?: number;
  /** Jobs sent to one worker before it answers (default 2: the next job is already there when one ends). */
  jobsPerWorker?: number;
}

/** Counters of a pool, for monitoring and tests. */
export interface WorkerPoolStats {
  /** Workers running now. */
  workers: number;
  /** Jobs sent to a worker and not answered yet. */
  running: number;
  /** Jobs waiting for a worker. */
  queued: number;
  /** Jobs answered. */
  completed: number;
  /** Jobs failed because their worker stopped, or the pool closed. */
  failed: number;
  /** Workers that stopped unexpectedly (and were replaced). */
  crashes: number;
}

/** A `CryptoBackend` whose keys sign and verify in worker threads. */
export interface WorkerPoolBackend extends CryptoBackend {
  /** The most workers this pool runs. */
  readonly size: number;
  readonly engine: PoolEngine;
  /** Starts every worker now and resolves once they are ready (else they start on first use). */
  warmup(): Promise<void>;
  stats(): WorkerPoolStats;
  /** Terminates the workers; pending and later jobs fail with a `CryptoPoolError`. */
  close(): Promise<void>;
}

/** A job the pool could not run: its worker stopped, the pool is closed, or no worker can start. */
export class CryptoPoolError extends Error {
  override readonly name = 'CryptoPoolError';
}

/**
 * The worker's code (plain CommonJS, run with `eval: true`: no file to find next to this module, whether it runs
 * from `src` under tsx or jest or from `dist`). Messages: `{ job, op, alg, key, msg, ctx, sig?, material? }` in,
 * `{ job, result }`, `{ job, missing: true }` (send the key material) or `{ job, error }` out.
 */
const WORKER_SOURCE = String.raw`
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const nodeCrypto = require('node:crypto');
const { engine, nobleUrl, maxKeys } = workerData;
const keys = new Map();

function prepare(dsa, m) {
  if (engine === 'node') {
    const der = Buffer.from(m.material.buffer, m.material.byteOffset, m.material.byteLength);
    return m.op === 'sign'
      ? { key: nodeCrypto.createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }) }
      : { key: nodeCrypto.createPublicKey({ key: der, format: 'der', type: 'spki' }) };
  }
  const d = dsa[m.alg];
  if (!d) throw new Error('unsupported algorithm ' + m.alg);
  return m.op === 'sign' ? { d, sk: d.keygen(m.material).secretKey } : { d, pk: m.material };
}

function run(entry, m) {
  if (engine === 'node') {
    if (m.op === 'sign') return nodeCrypto.sign(null, m.msg, { key: entry.key, context: m.ctx });
    try {
      return nodeCrypto.verify(null, m.msg, { key: entry.key, context: m.ctx }, m.sig) === true;
    } catch {
      return false;
    }
  }
  if (m.op === 'sign') return entry.d.sign(m.msg, entry.sk, { context: m.ctx });
  try {
    return entry.d.verify(m.sig, m.msg, entry.pk, { context: m.ctx }) === true;
  } catch {
    return false;
  }
}

function handle(dsa, m) {
  if (m.op === 'crash') {
    setImmediate(() => {
      throw new Error('crash requested');
    });
    return;
  }
  try {
    let entry = keys.get(m.key);
    if (entry === undefined) {
      if (m.material === undefined) {
        parentPort.postMessage({ job: m.job, missing: true });
        return;
      }
      entry = prepare(dsa, m);
      if (keys.size >= maxKeys) keys.delete(keys.keys().next().value);
    } else {
      keys.delete(m.key);
    }
    keys.set(m.key, entry);
    const result = run(entry, m);
    if (m.op === 'sign') {
      const out = new Uint8Array(result);
      parentPort.postMessage({ job: m.job, result: out }, [out.buffer]);
    } else {
      parentPort.postMessage({ job: m.job, result });
    }
  } catch (err) {
    parentPort.postMessage({ job: m.job, error: String((err && err.message) || err) });
  }
}

(async () => {
  let dsa;
  if (engine === 'noble') {
    const m = await import(nobleUrl);
    dsa = { 'ML-DSA-44': m.ml_dsa44, 'ML-DSA-65': m.ml_dsa65, 'ML-DSA-87': m.ml_dsa87 };
  }
  parentPort.on('message', (m) => handle(dsa, m));
  parentPort.postMessage({ ready: true });
})();
`;

interface PoolKey {
  readonly id: number;
  readonly algorithm: Algorithm;
  /** What the worker prepares the key from (seed / PKCS#8 to sign, raw key / SPKI to verify). */
  readonly material: Uint8Array;
}

interface Job {
  readonly id: number;
  /** The same computation on this thread: used once the pool cannot start workers at all. */
  readonly local: (() => Promise<unknown>) | undefined;
  readonly op: 'sign' | 'verify' | 'crash';
  readonly key: PoolKey | undefined;
  readonly msg: Uint8Array | undefined;
  readonly ctx: Uint8Array | undefined;
  readonly sig: Uint8Array | undefined;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: Error) => void;
}

interface Slot {
  readonly worker: Worker;
  readonly jobs: Map<number, Job>;
  ready: Promise<void>;
  /** Jobs this worker answered: a worker that dies before its first answer counts towards giving up. */
  answered: number;
  error: Error | undefined;
  exited: boolean;
}

/** A FIFO of jobs (O(1) shift). */
class Queue {
  #items: (Job | undefined)[] = [];
  #head = 0;
  get length(): number {
    return this.#items.length - this.#head;
  }
  push(job: Job): void {
    this.#items.push(job);
  }
  shift(): Job | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const job = this.#items[this.#head];
    this.#items[this.#head++] = undefined;
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return job;
  }
  drain(): Job[] {
    const jobs = this.#items.slice(this.#head) as Job[];
    this.#items = [];
    this.#head = 0;
    return jobs;
  }
}

/** A copy when `bytes` is a view on a larger buffer (posting a view clones its whole `ArrayBuffer`). */
function compact(bytes: Uint8Array): Uint8Array {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice();
}

let nobleModuleUrl: string | undefined;

/** The file URL of noble's ML-DSA module, resolved from this package (pnpm keeps it out of the app's reach). */
function nobleUrl(): string {
  return (nobleModuleUrl ??= pathToFileURL(createRequire(import.meta.url).resolve('@noble/post-quantum/ml-dsa.js')).href);
}

/** The number of cores this process may use (`os.availableParallelism()`, else the CPU count). */
export function defaultPoolSize(): number {
  return typeof availableParallelism === 'function' ? availableParallelism() : Math.max(1, cpus().length);
}

/** Most consecutive workers that may die before answering anything before the pool gives up starting more. */
const MAX_FAILED_STARTS = 3;

/**
 * A backend whose keys sign and verify in a pool of worker threads. Pass it as `backend` to an identity
 * (`AgentIdentity.load(file, { backend: pool })`) or to a server (`pqcMiddleware({ identity, backend: pool })`); the
 * Express and Fastify adapters build a shared one with `cryptoPool: true`. Workers start on first use.
 */
export function createWorkerPoolBackend(options: WorkerPoolOptions = {}): WorkerPoolBackend {
  const size = options.size ?? defaultPoolSize();
  if (!Number.isInteger(size) || size < 1) throw new TypeError(`worker pool: size must be a positive integer, got ${String(size)}`);
  const maxKeys = options.maxKeysPerWorker ?? 4096;
  if (!Number.isInteger(maxKeys) || maxKeys < 1) throw new TypeError('worker pool: maxKeysPerWorker must be a positive integer');
  const depth = options.jobsPerWorker ?? 2;
  if (!Number.isInteger(depth) || depth < 1) throw new TypeError('worker pool: jobsPerWorker must be a positive integer');
  const requested = options.engine ?? 'auto';
  if (requested !== 'auto' && requested !== 'noble' && requested !== 'node') {
    throw new TypeError(`worker pool: engine must be 'auto', 'noble' or 'node', got ${String(requested)}`);
  }
  const native = nodeBackend();
  if (requested === 'node' && !native) throw new Error("worker pool: the 'node' engine needs node:crypto with ML-DSA (Node >= 24.8)");
  const engine: PoolEngine = requested === 'auto' ? (native ? 'node' : 'noble') : requested;
  /** Derives public keys on this thread (once per identity). */
  const local = engine === 'node' ? native! : nobleBackend;

  const slots: Slot[] = [];
  const queue = new Queue();
  let nextJob = 1;
  let nextKey = 1;
  let closed = false;
  let failedStarts = 0;
  let broken: Error | undefined;
  const counters = { completed: 0, failed: 0, crashes: 0 };

  function fail(job: Job, error: Error): void {
    counters.failed++;
    job.reject(error);
  }

  function spawn(): Slot {
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { engine, nobleUrl: engine === 'noble' ? nobleUrl() : undefined, maxKeys },
      // Not the parent's flags: a tsx or jest loader would only slow the worker's start.
      execArgv: [],
      stdout: false,
      stderr: false,
    });
    worker.unref();
    let markReady!: () => void;
    const slot: Slot = {
      worker,
      jobs: new Map(),
      ready: new Promise<void>((resolve) => (markReady = resolve)),
      answered: 0,
      error: undefined,
      exited: false,
    };
    worker.on('message', (m: { ready?: true; job?: number; missing?: true; result?: unknown; error?: string }) => {
      if (m.ready) {
        markReady();
        return;
      }
      const job = slot.jobs.get(m.job!);
      if (!job) return;
      if (m.missing) {
        post(slot, job, true); // the worker lacks the key (new, or dropped): send it once more with its material
        return;
      }
      slot.jobs.delete(job.id);
      if (slot.jobs.size === 0) worker.unref();
      slot.answered++;
      failedStarts = 0;
      if (m.error !== undefined) {
        fail(job, new CryptoPoolError(`worker pool: ${job.op} failed in the worker: ${m.error}`));
      } else {
        counters.completed++;
        job.resolve(m.result);
      }
      pump();
    });
    worker.on('error', (err: Error) => {
      slot.error = err;
    });
    worker.on('exit', (code: number) => {
      slot.exited = true;
      markReady();
      const at = slots.indexOf(slot);
      if (at >= 0) slots.splice(at, 1);
      const why = closed
        ? 'the worker pool was closed'
        : `a crypto worker stopped (exit code ${code}${slot.error ? `: ${slot.error.message}` : ''})`;
      for (const job of slot.jobs.values()) fail(job, new CryptoPoolError(`worker pool: ${why} while running a ${job.op} job`));
      slot.jobs.clear();
      if (closed) return;
      counters.crashes++;
      if (slot.answered === 0 && ++failedStarts >= MAX_FAILED_STARTS && slots.length === 0) {
        // Workers cannot run here: compute on this thread from now on (slower, but the server keeps answering).
        broken = new CryptoPoolError(`worker pool: crypto workers fail to start (${why})`);
        for (const job of queue.drain()) runLocally(job);
        return;
      }
      pump();
    });
    slots.push(slot);
    return slot;
  }

  function post(slot: Slot, job: Job, withMaterial: boolean): void {
    if (job.op === 'crash') {
      slot.worker.postMessage({ job: job.id, op: 'crash' });
      return;
    }
    const key = job.key!;
    slot.worker.postMessage({
      job: job.id,
      op: job.op,
      alg: key.algorithm,
      key: key.id,
      msg: job.msg,
      ctx: job.ctx,
      sig: job.sig,
      material: withMaterial ? key.material : undefined,
    });
  }

  /** Hands queued jobs to the least busy workers, starting workers (up to `size`) while all are busy. */
  function pump(): void {
    while (queue.length > 0) {
      let best: Slot | undefined;
      for (const slot of slots) if (!best || slot.jobs.size < best.jobs.size) best = slot;
      if ((!best || best.jobs.size > 0) && slots.length < size) best = spawn();
      if (!best || best.jobs.size >= depth) return;
      const job = queue.shift()!;
      if (best.jobs.size === 0) best.worker.ref(); // a running job keeps the process alive until it is answered
      best.jobs.set(job.id, job);
      post(best, job, false);
    }
  }

  function runLocally(job: Job): void {
    if (!job.local) return fail(job, broken!);
    job.local().then((value) => {
      counters.completed++;
      job.resolve(value);
    }, (err: unknown) => fail(job, err instanceof Error ? err : new Error(String(err))));
  }

  function submit<T>(
    op: Job['op'],
    key: PoolKey | undefined,
    local: (() => Promise<T>) | undefined,
    msg?: Uint8Array,
    ctx?: Uint8Array,
    sig?: Uint8Array,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const job: Job = { id: nextJob++, op, key, local, msg, ctx, sig, resolve: resolve as (v: unknown) => void, reject };
      if (closed) return fail(job, new CryptoPoolError('worker pool: the pool is closed'));
      if (broken) return runLocally(job);
      queue.push(job);
      pump();
    });
  }

  function signingKey(algorithm: Algorithm, seed: Uint8Array): SigningKey {
    checkAlgorithm(algorithm);
    checkSeed(seed);
    const own = new Uint8Array(seed);
    let onThisThread: SigningKey | undefined = local.signingKey(algorithm, own);
    const publicKey = onThisThread.publicKey;
    if (engine === 'noble') onThisThread = undefined; // noble's expanded key is 4 KB: derive it again if ever needed
    const key: PoolKey = { id: nextKey++, algorithm, material: engine === 'node' ? pkcs8FromSeed(algorithm, own) : own };
    return Object.freeze({
      algorithm,
      publicKey,
      async sign(message: Uint8Array, context: Uint8Array): Promise<Uint8Array> {
        checkSignInput(message, context);
        const inThread = () => (onThisThread ??= local.signingKey(algorithm, own)).sign(message, context);
        return submit<Uint8Array>('sign', key, inThread, compact(message), compact(context));
      },
    });
  }

  function verifyingKey(algorithm: Algorithm, publicKey: Uint8Array): VerifyingKey {
    checkAlgorithm(algorithm);
    checkPublicKey(algorithm, publicKey);
    const pk = new Uint8Array(publicKey);
    const key: PoolKey = { id: nextKey++, algorithm, material: engine === 'node' ? spkiFromRaw(algorithm, pk) : pk };
    let onThisThread: VerifyingKey | undefined;
    return Object.freeze({
      algorithm,
      publicKey: pk,
      async verify(message: Uint8Array, signature: Uint8Array, context: Uint8Array): Promise<boolean> {
        if (!verifyInputOk(algorithm, message, signature, context)) return false;
        const inThread = () => (onThisThread ??= local.verifyingKey(algorithm, pk)).verify(message, signature, context);
        return submit<boolean>('verify', key, inThread, compact(message), compact(context), compact(signature));
      },
    });
  }

  const pool: WorkerPoolBackend & { [CRASH_ONE]: () => Promise<void> } = {
    name: `${engine}+workers`,
    size,
    engine,
    signingKey,
    verifyingKey,
    async warmup() {
      if (closed) throw new CryptoPoolError('worker pool: the pool is closed');
      while (slots.length < size) spawn();
      await Promise.all(slots.map((s) => s.ready));
    },
    stats() {
      let running = 0;
      for (const slot of slots) running += slot.jobs.size;
      return { workers: slots.length, running, queued: queue.length, ...counters };
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const job of queue.drain()) fail(job, new CryptoPoolError('worker pool: the pool was closed'));
      await Promise.all([...slots].map((s) => s.worker.terminate()));
    },
    [CRASH_ONE]: () => submit<void>('crash', undefined, undefined),
  };
  return Object.freeze(pool);
}

/** Test hook: makes one worker throw an uncaught error (the pool must fail its jobs and replace it). */
export const CRASH_ONE: unique symbol = Symbol('pqc-mcp worker pool: crash a worker');

const shared = new Map<string, WorkerPoolBackend>();

/**
 * A process-wide pool (one per size and engine), created on first use: what `cryptoPool: true` of the Express and
 * Fastify adapters shares between every server of the process. Never closed by them (its idle workers are unref'd).
 */
export function sharedWorkerPool(options: Pick<WorkerPoolOptions, 'size' | 'engine'> = {}): WorkerPoolBackend {
  const size = options.size ?? defaultPoolSize();
  const engine = options.engine === undefined || options.engine === 'auto' ? (nodeBackend() ? 'node' : 'noble') : options.engine;
  const key = `${engine}:${size}`;
  let pool = shared.get(key);
  if (!pool) {
    pool = createWorkerPoolBackend({ size, engine });
    shared.set(key, pool);
  }
  return pool;
}
