/** @jest-config-loader ts-node
 * @jest-config-loader-options {"transpileOnly": true, "compilerOptions": {"moduleResolution": "Bundler"}} */
import type { Config } from 'jest';

// CommonJS mode with @swc/jest: it transforms our TypeScript and the ESM-only dependencies (see TOOLCHAIN.md).
const project = (name: string): Config => ({
  displayName: name,
  rootDir: `<rootDir>/packages/${name}`,
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  transform: { '^.+\\.(t|j|mj)sx?$': ['@swc/jest', { jsc: { target: 'es2022' } }] },
  transformIgnorePatterns: ['/node_modules/(?!(\\.pnpm/)?(@noble[+/]|cookie[@/]))'],
  moduleNameMapper: {
    '^@pqc-mcp/([^/]+)$': '<rootDir>/../$1/src/index.ts',
    '^@pqc-mcp/([^/]+)/(.+)$': '<rootDir>/../$1/src/$2/index.ts',
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
  testEnvironment: 'node',
});

const config: Config = {
  projects: [...['core', 'hono', 'fastify', 'express', 'mcp', 'redis', 'edge-tests'].map(project), { ...project('cli'), globalSetup: '<rootDir>/test/global-setup.ts' }],
  testTimeout: 30_000,
  // A real redis-server for @pqc-mcp/redis and the CLI gateway (Debian package, loopback only).
  globalSetup: '<rootDir>/scripts/jest-global-setup.ts',
  globalTeardown: '<rootDir>/scripts/jest-global-teardown.ts',
};

export default config;
