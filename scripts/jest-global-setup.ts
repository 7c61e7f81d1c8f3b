/**
 * Starts the real Redis the Redis, CLI and reliability tests use (scripts/redis-test-server.sh: the Debian
 * redis-server on 127.0.0.1:6390, installed where missing), unless one already answers; the teardown stops it
 * only if this run started it.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';

const script = path.resolve(__dirname, 'redis-test-server.sh');

export default function globalSetup(): void {
  if (process.env.PQC_TEST_REDIS_URL) return; // the caller runs its own Redis
  const out = execFileSync('bash', [script, 'start'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  process.stderr.write(`\n${out}`);
  if (!out.includes('already answering')) process.env.PQC_MCP_STARTED_REDIS = '1';
}
