/** The public face of @pqc-mcp/redis, pinned: widening (or breaking) what users import is a decision made here. */
import { fileURLToPath } from 'node:url';
import { exportedNames } from '@pqc-mcp/test-kit';

const entry = (file: string) => fileURLToPath(new URL(`../src/${file}`, import.meta.url));

test('@pqc-mcp/redis', () => {
  expect(exportedNames(entry('index.ts'))).toEqual([
    'ClusterIndexKeys',
    'RedisClientLike',
    'RedisClusterLike',
    'RedisKeys',
    'RedisSessionStore',
    'RedisSessionStoreOptions',
    'redisKeys',
    'storeFromEnv',
  ]);
});
