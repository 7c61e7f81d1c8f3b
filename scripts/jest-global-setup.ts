/**
 * Starts the real Redis the Redis and CLI suites use: the `redis-server` on PATH, on a loopback port free at start
 * (two runs on one machine never share or stop each other's), its URL handed to every test file in
 * `PQC_TEST_REDIS_URL`. `PQC_TEST_REDIS_URL` set by the caller means "use mine". Tests install nothing: without
 * redis-server the Redis suites are left out (jest.config.ts) and the run says so loudly; in CI that is a failure.
 */
import { REDIS_MISSING_HINT, RedisProcess } from '../packages/test-kit/src/redis-process.ts';
import { banner, runState } from './jest-run-state.ts';

export default async function globalSetup(): Promise<void> {
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
