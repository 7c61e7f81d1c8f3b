/** Stops the Redis that scripts/jest-global-setup.ts started (and only that one). */
import { execFileSync } from 'node:child_process';
import path from 'node:path';

export default function globalTeardown(): void {
  if (process.env.PQC_MCP_STARTED_REDIS !== '1') return;
  execFileSync('bash', [path.resolve(__dirname, 'redis-test-server.sh'), 'stop'], { stdio: 'ignore' });
}
