import { RedisSessionStore } from './store.js';

/**
 * The store an example server (or any app) configures from its environment:
 *
 *   PQC_REDIS_URL     Redis URL, e.g. redis://127.0.0.1:6379: sessions are shared through it
 *   PQC_REDIS_PREFIX  key prefix (default `pqc:`)
 *
 * A `RedisSessionStore` when `PQC_REDIS_URL` is set, `undefined` otherwise (the server then keeps its default
 * in-memory store). Connects lazily, on the first request; call `store.connect()` to check Redis at start-up.
 */
export function storeFromEnv(env: Record<string, string | undefined> = process.env): RedisSessionStore | undefined {
  const url = env.PQC_REDIS_URL?.trim();
  if (!url) return undefined;
  const prefix = env.PQC_REDIS_PREFIX;
  return new RedisSessionStore({ url, keyPrefix: prefix === undefined || prefix === '' ? undefined : prefix });
}
