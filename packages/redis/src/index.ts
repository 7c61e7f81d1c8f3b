/**
 * @pqc-mcp/redis: a `SessionStore` on Redis for pqc-mcp servers, so several instances share sessions, nonces and the
 * handshake replay cache.
 */
export { RedisSessionStore, redisKeys } from './store.js';
export type { RedisClientLike, RedisClusterLike, RedisKeys, RedisSessionStoreOptions } from './store.js';
export type { ClusterIndexKeys } from './cluster.js';
export { storeFromEnv } from './env.js';
