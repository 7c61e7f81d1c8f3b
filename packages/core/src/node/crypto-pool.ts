/** `cryptoPool`: the Node adapters' option to sign and verify in worker threads, resolved into core's `backend`. */
import { nobleBackend } from '../crypto/noble.js';
import { nodeBackend } from '../crypto/node.js';
import type { PQCServerOptions } from '../server/options.js';
import { sharedWorkerPool, type WorkerPoolBackend } from './pool.js';

/**
 * Whether a Node server signs and verifies in worker threads (`createWorkerPoolBackend`):
 *   - `'auto'` (default): yes when the identity's backend is one a pool can run, noble or node:crypto, on a
 *     process-wide pool of that engine sized to the cores. Measured (bench/results/latest.md, 2 cores): with noble the
 *     pool gives 1.5-2.5x the signed throughput and keeps `GET pqc/handshake` p99 near 10-20 ms instead of 0.5-2.5 s;
 *     with native node:crypto (whose async calls already run in libuv's 4-thread pool) the throughput is the same
 *     within noise and the handshake p99 stays under 50 ms (libuv's threads crowd the event loop without it). Other
 *     backends (WebCrypto on Bun, a custom one) are left as they are;
 *   - `true`: always, on a process-wide pool sized to the cores (`{ size }` to choose the size);
 *   - `false`: never (crypto on the backend of the identity or of the `backend` option);
 *   - a `WorkerPoolBackend`: that pool.
 */
export type CryptoPoolOption = boolean | 'auto' | { size?: number } | WorkerPoolBackend;

/** The server options of the Node adapters (Express, Fastify): core's, plus `cryptoPool`. */
export interface NodeServerOptions extends PQCServerOptions {
  /** Sign and verify in worker threads (default `'auto'`: for the built-in noble and node backends). See `CryptoPoolOption`. */
  cryptoPool?: CryptoPoolOption;
}

function isPool(value: unknown): value is WorkerPoolBackend {
  const v = value as Partial<WorkerPoolBackend> | null;
  return typeof v === 'object' && v !== null && typeof v.signingKey === 'function' && typeof v.close === 'function';
}

/**
 * Core's server options for a Node adapter's options: `cryptoPool` resolved into the `backend` option. An explicit
 * `backend` is kept as given (`cryptoPool: true` with it is a contradiction, refused).
 */
export function resolveCryptoPool(options: NodeServerOptions): PQCServerOptions {
  if (typeof options !== 'object' || options === null) return options;
  const { cryptoPool = 'auto', ...rest } = options;
  if (cryptoPool === false) return rest;
  if (rest.backend !== undefined) {
    if (cryptoPool === 'auto') return rest;
    throw new TypeError('pqc: give either "backend" or "cryptoPool", not both');
  }
  if (cryptoPool === 'auto') {
    // On the identity given (a bad one is for createPQCHandler to refuse): the built-in backends move to a pool of
    // the same engine; any other backend stays.
    const backend = (rest.identity as { backend?: unknown } | undefined)?.backend;
    if (backend === nobleBackend) return { ...rest, backend: sharedWorkerPool({ engine: 'noble' }) };
    if (backend !== undefined && backend === nodeBackend()) return { ...rest, backend: sharedWorkerPool({ engine: 'node' }) };
    return rest;
  }
  if (isPool(cryptoPool)) return { ...rest, backend: cryptoPool };
  if (cryptoPool === true) return { ...rest, backend: sharedWorkerPool() };
  if (typeof cryptoPool === 'object' && cryptoPool !== null) return { ...rest, backend: sharedWorkerPool({ size: cryptoPool.size }) };
  throw new TypeError(`pqc: option "cryptoPool" must be true, false, 'auto', { size } or a worker pool, got ${String(cryptoPool)}`);
}

