/**
 * A post-quantum signed MCP server on Fastify, the MCP SDK v2 behind it:
 *
 *   tsx --conditions=@pqc-mcp/source examples/fastify-server.ts
 *
 * See shared/fastify-app.ts for the app. Environment (shared/env.ts): PORT, PQC_IDENTITY, PQC_PROFILES, PQC_JSON,
 * PQC_AUTHORIZED_DIDS, PQC_MAX_BODY_BYTES, PQC_MAX_BATCH, PQC_SESSION_TTL_SEC, PQC_REDIS_URL; LOG_LEVEL (Fastify's,
 * default `warn`, on stderr). Prints `READY http://127.0.0.1:<port>/mcp <server DID>`; exits 0 on SIGINT/SIGTERM.
 */
import { storeFromEnv } from '@pqc-mcp/redis';
import { onShutdown, printBackend, printReady, readExampleEnv } from './shared/env.js';
import { createFastifyApp } from './shared/fastify-app.js';

const env = await readExampleEnv('fastify-server');
const store = storeFromEnv(); // PQC_REDIS_URL: sessions shared with other instances
const { app, close } = createFastifyApp({
  pqc: { identity: env.identity, profiles: env.profiles, ...env.limits, store },
  responseMode: env.responseMode,
  // Logs go to stderr: stdout carries just the READY line.
  fastify: { logger: { level: process.env.LOG_LEVEL ?? 'warn', stream: process.stderr } },
});

await app.listen({ host: '127.0.0.1', port: env.port });
const address = app.server.address();
printReady(typeof address === 'object' && address !== null ? address.port : env.port, env.identity.did);
printBackend(app.pqc.identity.backend.name); // the backend that really signs (a worker pool by default: cryptoPool 'auto')

onShutdown(async () => {
  await close();
  await store?.close();
});
