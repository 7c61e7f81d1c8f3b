/** @jest-config-loader ts-node
 * @jest-config-loader-options {"transpileOnly": true, "compilerOptions": {"moduleResolution": "Bundler"}} */
import type { Config } from 'jest';
import { spawnSync } from 'node:child_process';

/** The test files that need a real Redis. */
const REDIS_SUITES = ['/packages/redis/test/', '/packages/cli/test/gateway-redis.test.ts'];
// Without one (none given in PQC_TEST_REDIS_URL, no redis-server to start) they are left out of a local run, and the
// global setup and teardown say so loudly; in CI the global setup fails instead.
const noRedis = !process.env.PQC_TEST_REDIS_URL && spawnSync('redis-server', ['--version']).status !== 0;
if (noRedis) process.env.PQC_TEST_REDIS_LEFT_OUT = REDIS_SUITES.join(', ');
const ignored = noRedis && !process.env.CI ? REDIS_SUITES : [];

/** The packages folder, seen from a project's folder. */
const packages = (dir: string) => (dir.startsWith('packages/') ? '..' : '../packages');

// CommonJS mode with @swc/jest: it transforms our TypeScript and the ESM-only dependencies (see docs/DEVELOPMENT.md).
const project = (name: string, dir = `packages/${name}`): Config => ({
  displayName: name,
  rootDir: `<rootDir>/${dir}`,
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  testPathIgnorePatterns: ['/node_modules/', ...ignored],
  transform: { '^.+\\.(t|j|mj)sx?$': ['@swc/jest', { jsc: { target: 'es2022' } }] },
  transformIgnorePatterns: ['/node_modules/(?!(\\.pnpm/)?(@noble[+/]|cookie[@/]))'],
  moduleNameMapper: {
    '^@pqc-mcp/([^/]+)$': `<rootDir>/${packages(dir)}/$1/src/index.ts`,
    '^@pqc-mcp/([^/]+)/(.+)$': `<rootDir>/${packages(dir)}/$1/src/$2`,
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
  testEnvironment: 'node',
});

const config: Config = {
  projects: [
    ...['core', 'hono', 'fastify', 'express', 'mcp', 'redis', 'durable-object', 'edge-tests'].map((name) => project(name)),
    { ...project('cli'), globalSetup: '<rootDir>/test/global-setup.ts' },
    project('examples', 'examples'),
  ],
  testTimeout: 30_000,
  // A real redis-server on a free loopback port for @pqc-mcp/redis and the CLI gateway.
  globalSetup: '<rootDir>/scripts/jest-global-setup.ts',
  globalTeardown: '<rootDir>/scripts/jest-global-teardown.ts',
};

export default config;
