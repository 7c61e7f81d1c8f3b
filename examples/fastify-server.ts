/**
 * An MCP server on Fastify with post-quantum signed traffic: `pqcPlugin` in front of the official MCP SDK's
 * Streamable HTTP transport (stateful, SSE by default).
 *
 *   tsx --conditions=@pqc-mcp/source examples/fastify-server.ts
 *
 * Environment (examples/shared/env.ts): PORT (default 8080), PQC_IDENTITY (identity file; default a fresh identity),
 * PQC_PROFILES (`v2` or `v2,v1`), PQC_JSON=1 (JSON responses instead of SSE), PQC_AUTHORIZED_DIDS,
 * PQC_MAX_BODY_BYTES, PQC_SESSION_TTL_SEC; LOG_LEVEL (Fastify's log level, default `warn`, on stderr).
 * Prints `READY http://127.0.0.1:<port>/mcp <server DID>` once listening (and `PQC backend: <name> (<runtime>)` on
 * stderr); exits 0 on SIGINT/SIGTERM.
 */
import { createFastifyApp } from './shared/fastify-app.js';
import { storeFromEnv } from '@pqc-mcp/redis';
import { onShutdown, printBackend, printReady, readExampleEnv } from './shared/env.js';

const env = await readExampleEnv('fastify-server');
const store = storeFromEnv(); // PQC_REDIS_URL: sessions shared with other instances
const { app, closeSessions } = createFastifyApp({
  pqc: { identity: env.identity, profiles: env.profiles, ...env.limits, store },
  enableJsonResponse: env.enableJsonResponse,
  // Logs go to stderr: stdout carries just the READY line.
  fastify: { logger: { level: process.env.LOG_LEVEL ?? 'warn', stream: process.stderr } },
});

await app.listen({ host: '127.0.0.1', port: env.port });
const address = app.server.address();
const port = typeof address === 'object' && address !== null ? address.port : env.port;
printReady(port, env.identity.did);
printBackend(app.pqc.info().backend); // the backend that really signs (a worker pool by default: cryptoPool 'auto')

onShutdown(async () => {
  await closeSessions();
  await app.close();
  await store?.close();
});
