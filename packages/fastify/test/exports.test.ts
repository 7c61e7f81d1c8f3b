/** The public face of @pqc-mcp/fastify, pinned: widening (or breaking) what users import is a decision made here. */
import { fileURLToPath } from 'node:url';
import { exportedNames } from '@pqc-mcp/test-kit';

const entry = (file: string) => fileURLToPath(new URL(`../src/${file}`, import.meta.url));

test('@pqc-mcp/fastify', () => {
  expect(exportedNames(entry('index.ts'))).toEqual([
    'AgentIdentity',
    'CryptoPoolOption',
    'PQCAuthInfo',
    'PQCFastifyOptions',
    'PQCHandler',
    'PQCRequestContext',
    'PQCServerOptions',
    'default',
    'pqcAuthInfo',
    'pqcPlugin',
  ]);
});
