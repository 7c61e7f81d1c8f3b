/**
 * A post-quantum signed MCP server on Express (4 or 5), the MCP SDK v2 behind it:
 *
 *   tsx --conditions=@pqc-mcp/source examples/express-server.ts
 *
 * See shared/express-app.ts for the app. Environment: see shared/env.ts (PORT, PQC_IDENTITY, PQC_PROFILES,
 * PQC_JSON, PQC_REDIS_URL). Prints `READY http://127.0.0.1:<port>/mcp <server DID>`.
 */
import type { AddressInfo } from 'node:net';
import { applyKeepAliveTimeout, resolveCryptoPool } from '@pqc-mcp/core/node';
import { storeFromEnv } from '@pqc-mcp/redis';
import { onShutdown, printBackend, printReady, readExampleEnv } from './shared/env.js';
import { createExpressApp } from './shared/express-app.js';

const env = await readExampleEnv('express-server');
const store = storeFromEnv(); // PQC_REDIS_URL: sessions shared with other instances
const handlerOptions = resolveCryptoPool({ identity: env.identity, profiles: env.profiles, ...env.limits, store });
const { app, close } = createExpressApp({ pqc: handlerOptions, responseMode: env.responseMode });

const server = app.listen(env.port, '127.0.0.1', (err?: Error) => {
  if (err) throw err;
  printReady((server.address() as AddressInfo).port, env.identity.did);
  printBackend(typeof handlerOptions.backend === 'object' ? handlerOptions.backend.name : env.identity.backend.name);
});
// Idle connections stay open longer than clients and proxies keep them (Node's 5 s would reset the odd request).
applyKeepAliveTimeout(server);

onShutdown(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
  await close();
  await store?.close();
});
