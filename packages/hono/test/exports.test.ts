/** The public face of @pqc-mcp/hono, pinned: widening (or breaking) what users import is a decision made here. */
import { fileURLToPath } from 'node:url';
import { exportedNames } from '@pqc-mcp/test-kit';

const entry = (file: string) => fileURLToPath(new URL(`../src/${file}`, import.meta.url));

test('@pqc-mcp/hono', () => {
  expect(exportedNames(entry('index.ts'))).toEqual([
    'AgentIdentity',
    'PQCAuthInfo',
    'PQCHandler',
    'PQCHonoOptions',
    'PQCRequestContext',
    'PQCServerOptions',
    'PQCVariables',
    'pqc',
    'pqcAuthInfo',
  ]);
});

test('@pqc-mcp/hono/node (what @pqc-mcp/hono resolves to under Node)', () => {
  expect(exportedNames(entry('node.ts'))).toEqual([
    'AgentIdentity',
    'CryptoPoolOption',
    'PQCAuthInfo',
    'PQCHandler',
    'PQCHonoNodeOptions',
    'PQCHonoOptions',
    'PQCRequestContext',
    'PQCServerOptions',
    'PQCVariables',
    'pqc',
    'pqcAuthInfo',
  ]);
});
