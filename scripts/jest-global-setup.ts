/**
 * Starts the real Redis the Redis and CLI suites use: the `redis-server` on PATH, on a loopback port free at start
 * (two runs on one machine never share or stop each other's), its URL handed to every test file in
 * `PQC_TEST_REDIS_URL`. `PQC_TEST_REDIS_URL` set by the caller means "use mine". Likewise a 3-master Redis Cluster on
 * free loopback ports (`PQC_TEST_REDIS_CLUSTER_URL`, its nodes' URLs comma-separated) for the cluster suite. Tests install nothing: without
 * redis-server the Redis suites are left out (jest.config.ts) and the run says so loudly; in CI that is a failure.
 */
import { REDIS_CLUSTER_MISSING_HINT, REDIS_MISSING_HINT, RedisClusterProcess, RedisProcess } from '../packages/test-kit/src/redis-process.ts';
import { banner, runState } from './jest-run-state.ts';

export default async function globalSetup(): Promise<void> {
  await startRedis();
  await startRedisCluster();
}

async function startRedis(): Promise<void> {
  if (process.env.PQC_TEST_REDIS_URL) return;
  const leftOut = process.env.PQC_TEST_REDIS_LEFT_OUT;
  if (leftOut) {
    if (process.env.CI) throw new Error(`CI needs redis-server. ${REDIS_MISSING_HINT}`);
    process.stderr.write(banner(`${REDIS_MISSING_HINT}\nLeft out of this run: ${leftOut}`));
    return;
  }
  const redis = new RedisProcess();
  await redis.start();
  runState.redis = redis;
  process.env.PQC_TEST_REDIS_URL = redis.url;
  // An interrupted run still stops its Redis.
  process.once('exit', () => void redis.kill());
}

/** The cluster: started when redis-server is (a failure to start it fails the run, locally and in CI). */
async function startRedisCluster(): Promise<void> {
  if (process.env.PQC_TEST_REDIS_CLUSTER_URL || process.env.PQC_TEST_REDIS_LEFT_OUT) return;
  const cluster = new RedisClusterProcess();
  try {
    await cluster.start();
  } catch (err) {
    throw new Error(`${REDIS_CLUSTER_MISSING_HINT} (${err instanceof Error ? err.message : String(err)})`, { cause: err });
  }
  runState.cluster = cluster;
  process.env.PQC_TEST_REDIS_CLUSTER_URL = cluster.urls.join(',');
  process.once('exit', () => void cluster.kill());
}
