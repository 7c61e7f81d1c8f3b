/** Stops the Redis and the Redis Cluster the global setup started; repeats, at the end of the run, which suites did not run and why. */
import { REDIS_MISSING_HINT } from '../packages/test-kit/src/redis-process.ts';
import { banner, runState } from './jest-run-state.ts';

export default async function globalTeardown(): Promise<void> {
  await runState.redis?.kill();
  runState.redis = undefined;
  await runState.cluster?.kill();
  runState.cluster = undefined;
  const leftOut = process.env.PQC_TEST_REDIS_LEFT_OUT;
  if (leftOut) process.stderr.write(banner(`${REDIS_MISSING_HINT}\nThese suites did not run: ${leftOut}`));
}
