/**
 * The Redis the tests run against. The jest global setup (scripts/jest-global-setup.ts) starts one `redis-server` on a
 * port free at that moment and hands its URL to every test file in `PQC_TEST_REDIS_URL`; a test that must stop,
 * freeze or restart Redis starts its own (`RedisProcess`). Tests never install anything: without `redis-server` the
 * suites that need it are left out of the run, which says so loudly (in CI it fails instead).
 */
import { REDIS_MISSING_HINT } from './redis-process.js';

/** The test Redis's URL (`PQC_TEST_REDIS_URL`, set by the global setup). */
export function testRedisUrl(): string {
  const url = process.env.PQC_TEST_REDIS_URL;
  if (!url) throw new Error(`PQC_TEST_REDIS_URL is not set: run the tests through jest (its global setup starts Redis). ${REDIS_MISSING_HINT}`);
  return url;
}
