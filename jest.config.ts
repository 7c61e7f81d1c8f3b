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
  projects: ['core'].map(project),
  testTimeout: 30_000,
};

export default config;
