/**
 * A post-quantum signed MCP server on Express 5:
 *
 *   tsx --conditions=@pqc-mcp/source examples/express-server.ts
 *
 * `pqcMiddleware` first, then `express.json()` (it skips verified requests), then the MCP endpoint `/mcp` on the
 * SDK's Node `StreamableHTTPServerTransport` (see shared/express-app.ts). Environment: see shared/env.ts
 * (PORT, PQC_IDENTITY, PQC_PROFILES, PQC_JSON, PQC_REDIS_URL). Prints `READY http://127.0.0.1:<port>/mcp <server DID>`.
 */
import type { AddressInfo } from 'node:net';
import { resolveCryptoPool } from '@pqc-mcp/core/node';
import { storeFromEnv } from '@pqc-mcp/redis';
import { onShutdown, printBackend, printReady, readExampleEnv } from './shared/env.js';
import { createExpressApp } from './shared/express-app.js';

const env = await readExampleEnv('express-server');
const store = storeFromEnv(); // PQC_REDIS_URL: sessions shared with other instances
// cryptoPool 'auto' (the default), resolved here so the startup line names the backend that really signs.
const pqc = resolveCryptoPool({ identity: env.identity, profiles: env.profiles, ...env.limits, store });
const { app, closeSessions } = createExpressApp({
  pqc,
  enableJsonResponse: env.enableJsonResponse,
});

const server = app.listen(env.port, '127.0.0.1', (err?: Error) => {
  if (err) throw err;
  printReady((server.address() as AddressInfo).port, env.identity.did);
  printBackend(typeof pqc.backend === 'object' ? pqc.backend.name : env.identity.backend.name);
});

onShutdown(async () => {
  await closeSessions();
  server.closeAllConnections();
  await new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
  await store?.close();
});
