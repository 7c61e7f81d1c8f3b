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
 * The workers run `pool-worker.ts`, a module of its own. A worker that crashes fails the jobs it was running with a
 * `CryptoPoolError` (never a wrong answer), and a new one takes its place. Idle workers are unref'd, so a process exits when nothing else keeps it alive; `close()`
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
import type { PoolJobMessage, PoolWorkerData, PoolWorkerReply } from './pool-worker.js';

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
  /**
   * The worker module (default: `pool-worker.js` beside this module). Set it when a bundler moves this module away
   * from its worker: point it at a copy of `@pqc-mcp/core/dist/node/pool-worker.js`.
   */
  workerUrl?: URL | string;
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

interface PoolKey {
  readonly id: number;
  readonly algorithm: Algorithm;
  /** What the worker prepares the key from (seed / PKCS#8 to sign, raw key / SPKI to verify). */
  readonly material: Uint8Array;
}

interface Job {
  readonly id: number;
  /** The same computation on this thread: used once the pool cannot start workers at all. */
  readonly local: () => Promise<unknown>;
  readonly op: 'sign' | 'verify';
  readonly key: PoolKey;
  readonly msg: Uint8Array;
  readonly ctx: Uint8Array;
  readonly sig: Uint8Array | undefined;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: Error) => void;
}

interface Slot {
  readonly worker: Worker;
  readonly jobs: Map<number, Job>;
  ready: Promise<void>;
  /** Whether the worker said it is ready: jobs of a worker that died before are run elsewhere (they never ran). */
  started: boolean;
  /** Jobs this worker answered: a worker that dies before its first answer counts towards giving up. */
  answered: number;
  error: Error | undefined;
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

/** The worker module beside this one: compiled in `dist`, TypeScript in the sources (Node strips its types). */
function defaultWorkerUrl(): URL {
  return new URL(import.meta.url.endsWith('.ts') ? './pool-worker.ts' : './pool-worker.js', import.meta.url);
}

/** The number of cores this process may use (`os.availableParallelism()`, else the CPU count). */
export function defaultPoolSize(): number {
  return typeof availableParallelism === 'function' ? availableParallelism() : Math.max(1, cpus().length);
}

/** Most consecutive workers that may die before answering anything before the pool gives up starting more. */
const MAX_FAILED_STARTS = 3;

/** The pool's settings, checked. */
interface PoolSettings {
  readonly size: number;
  readonly depth: number;
  readonly engine: PoolEngine;
  readonly workerUrl: URL | string;
  readonly workerData: PoolWorkerData;
}

function positiveInteger(value: number | undefined, fallback: number, name: string): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < 1) throw new TypeError(`worker pool: ${name} must be a positive integer, got ${String(v)}`);
  return v;
}

function resolvePoolSettings(options: WorkerPoolOptions): PoolSettings {
  const size = positiveInteger(options.size, defaultPoolSize(), 'size');
  const maxKeys = positiveInteger(options.maxKeysPerWorker, 4096, 'maxKeysPerWorker');
  const depth = positiveInteger(options.jobsPerWorker, 2, 'jobsPerWorker');
  const requested = options.engine ?? 'auto';
  if (requested !== 'auto' && requested !== 'noble' && requested !== 'node') {
    throw new TypeError(`worker pool: engine must be 'auto', 'noble' or 'node', got ${String(requested)}`);
  }
  const native = nodeBackend() !== undefined;
  if (requested === 'node' && !native) throw new Error("worker pool: the 'node' engine needs node:crypto with ML-DSA (Node >= 24.8)");
  const engine: PoolEngine = requested === 'auto' ? (native ? 'node' : 'noble') : requested;
  const workerUrl = options.workerUrl ?? defaultWorkerUrl();
  return { size, depth, engine, workerUrl, workerData: { engine, nobleUrl: engine === 'noble' ? nobleUrl() : undefined, maxKeys } };
}

/**
 * The workers and their jobs: starts workers as jobs come (up to `size`), hands each job to the least busy one,
 * fails the jobs of a worker that stops, and computes on this thread once workers cannot start at all.
 */
class WorkerPool {
  readonly #slots: Slot[] = [];
  readonly #queue = new Queue();
  #nextJob = 1;
  #closed = false;
  #failedStarts = 0;
  #broken: Error | undefined;
  readonly counters = { completed: 0, failed: 0, crashes: 0 };

  constructor(readonly settings: PoolSettings) {}

  submit<T>(op: Job['op'], key: PoolKey, local: () => Promise<T>, msg: Uint8Array, ctx: Uint8Array, sig?: Uint8Array): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const job: Job = { id: this.#nextJob++, op, key, local, msg, ctx, sig, resolve: resolve as (v: unknown) => void, reject };
      if (this.#closed) return this.#fail(job, new CryptoPoolError('worker pool: the pool is closed'));
      if (this.#broken) return this.#runLocally(job);
      this.#queue.push(job);
      this.#pump();
    });
  }

  async warmup(): Promise<void> {
    if (this.#closed) throw new CryptoPoolError('worker pool: the pool is closed');
    while (this.#slots.length < this.settings.size) this.#spawn();
    await Promise.all(this.#slots.map((s) => s.ready));
  }

  stats(): WorkerPoolStats {
    let running = 0;
    for (const slot of this.#slots) running += slot.jobs.size;
    return { workers: this.#slots.length, running, queued: this.#queue.length, ...this.counters };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const job of this.#queue.drain()) this.#fail(job, new CryptoPoolError('worker pool: the pool was closed'));
    await Promise.all([...this.#slots].map((s) => s.worker.terminate()));
  }

  #fail(job: Job, error: Error): void {
    this.counters.failed++;
    job.reject(error);
  }

  #spawn(): Slot {
    const worker = new Worker(this.settings.workerUrl, {
      workerData: this.settings.workerData,
      // Not the parent's flags: a tsx or jest loader would only slow the worker's start.
      execArgv: [],
      stdout: false,
      stderr: false,
    });
    worker.unref();
    let markReady!: () => void;
    const slot: Slot = { worker, jobs: new Map(), ready: new Promise<void>((resolve) => (markReady = resolve)), started: false, answered: 0, error: undefined };
    worker.on('message', (reply: PoolWorkerReply) => {
      if ('ready' in reply) {
        slot.started = true;
        markReady();
      }
      else this.#answer(slot, reply);
    });
    worker.on('error', (err: Error) => {
      slot.error = err;
    });
    worker.on('exit', (code: number) => {
      markReady();
      this.#stopped(slot, code);
    });
    this.#slots.push(slot);
    return slot;
  }

  #answer(slot: Slot, reply: Exclude<PoolWorkerReply, { ready: true }>): void {
    const job = slot.jobs.get(reply.job);
    if (!job) return;
    if ('missing' in reply) {
      this.#post(slot, job, true); // the worker lacks the key (new, or dropped): send it once more with its material
      return;
    }
    slot.jobs.delete(job.id);
    if (slot.jobs.size === 0) slot.worker.unref();
    slot.answered++;
    this.#failedStarts = 0;
    if ('error' in reply) {
      this.#fail(job, new CryptoPoolError(`worker pool: ${job.op} failed in the worker: ${reply.error}`));
    } else {
      this.counters.completed++;
      job.resolve(reply.result);
    }
    this.#pump();
  }

  /**
   * A worker exited: the jobs it was running fail (never a wrong answer; one job must not crash worker after worker),
   * those it never started go back to the queue; it is replaced, unless workers cannot start here.
   */
  #stopped(slot: Slot, code: number): void {
    const at = this.#slots.indexOf(slot);
    if (at >= 0) this.#slots.splice(at, 1);
    const why = this.#closed
      ? 'the worker pool was closed'
      : `a crypto worker stopped (exit code ${code}${slot.error ? `: ${slot.error.message}` : ''})`;
    for (const job of slot.jobs.values()) {
      if (!slot.started && !this.#closed) this.#queue.push(job);
      else this.#fail(job, new CryptoPoolError(`worker pool: ${why} while running a ${job.op} job`));
    }
    slot.jobs.clear();
    if (this.#closed) return;
    this.counters.crashes++;
    if (slot.answered === 0 && ++this.#failedStarts >= MAX_FAILED_STARTS && this.#slots.length === 0) {
      // Workers cannot run here: compute on this thread from now on (slower, but the server keeps answering).
      this.#broken = new CryptoPoolError(`worker pool: crypto workers fail to start (${why})`);
      for (const job of this.#queue.drain()) this.#runLocally(job);
      return;
    }
    this.#pump();
  }

  #post(slot: Slot, job: Job, withMaterial: boolean): void {
    const message: PoolJobMessage = {
      job: job.id,
      op: job.op,
      alg: job.key.algorithm,
      key: job.key.id,
      msg: job.msg,
      ctx: job.ctx,
      sig: job.sig,
      material: withMaterial ? job.key.material : undefined,
    };
    slot.worker.postMessage(message);
  }

  /** Hands queued jobs to the least busy workers, starting workers (up to `size`) while all are busy. */
  #pump(): void {
    const { size, depth } = this.settings;
    while (this.#queue.length > 0) {
      let best: Slot | undefined;
      for (const slot of this.#slots) if (!best || slot.jobs.size < best.jobs.size) best = slot;
      if ((!best || best.jobs.size > 0) && this.#slots.length < size) best = this.#spawn();
      if (!best || best.jobs.size >= depth) return;
      const job = this.#queue.shift()!;
      if (best.jobs.size === 0) best.worker.ref(); // a running job keeps the process alive until it is answered
      best.jobs.set(job.id, job);
      this.#post(best, job, false);
    }
  }

  #runLocally(job: Job): void {
    job.local().then(
      (value) => {
        this.counters.completed++;
        job.resolve(value);
      },
      (err: unknown) => this.#fail(job, err instanceof Error ? err : new Error(String(err))),
    );
  }
}

/**
 * A backend whose keys sign and verify in a pool of worker threads. Pass it as `backend` to an identity
 * (`AgentIdentity.load(file, { backend: pool })`) or to a server (`pqcMiddleware({ identity, backend: pool })`); the
 * Express and Fastify adapters build a shared one with `cryptoPool: true`. Workers start on first use.
 */
export function createWorkerPoolBackend(options: WorkerPoolOptions = {}): WorkerPoolBackend {
  const settings = resolvePoolSettings(options);
  const pool = new WorkerPool(settings);
  const { engine } = settings;
  /** Derives public keys on this thread (once per identity), and computes there if workers cannot start. */
  const local = engine === 'node' ? nodeBackend()! : nobleBackend;
  let nextKey = 1;

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
        return pool.submit<Uint8Array>('sign', key, inThread, compact(message), compact(context));
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
        return pool.submit<boolean>('verify', key, inThread, compact(message), compact(context), compact(signature));
      },
    });
  }

  return Object.freeze({
    name: `${engine}+workers`,
    size: settings.size,
    engine,
    signingKey,
    verifyingKey,
    warmup: () => pool.warmup(),
    stats: () => pool.stats(),
    close: () => pool.close(),
  });
}

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
