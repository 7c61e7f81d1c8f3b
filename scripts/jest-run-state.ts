/** What the jest global setup hands to its teardown (both run in jest's main process). */
import type { RedisClusterProcess, RedisProcess } from '../packages/test-kit/src/redis-process.ts';

export const runState: { redis?: RedisProcess; cluster?: RedisClusterProcess } = {};

/** A block of text that stands out in the test output. */
export function banner(text: string): string {
  const rule = '!'.repeat(100);
  return `\n${rule}\n${text}\n${rule}\n\n`;
}
