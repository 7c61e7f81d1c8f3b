/**
 * A post-quantum signed MCP server on Hono, the MCP SDK v2 behind it, served by @hono/node-server: on Node, and on
 * Bun and Deno through their `node:http` (tested on all three).
 *
 *   tsx --conditions=@pqc-mcp/source examples/hono-server.ts
 *   bun --conditions=@pqc-mcp/source examples/hono-server.ts
 *   deno run --allow-net --allow-env --allow-read --sloppy-imports --conditions=@pqc-mcp/source examples/hono-server.ts
 *
 * See shared/hono-app.ts for the app. Environment (shared/env.ts): PORT, PQC_IDENTITY, PQC_PROFILES, PQC_JSON,
 * PQC_AUTHORIZED_DIDS, PQC_MAX_BODY_BYTES, PQC_MAX_BATCH, PQC_SESSION_TTL_SEC, PQC_REDIS_URL. Prints
 * `READY http://127.0.0.1:<port>/mcp <server DID>` (and `PQC backend: <name> (<runtime>)` on stderr); exits 0 on
 * SIGINT/SIGTERM.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { applyKeepAliveTimeout } from '@pqc-mcp/core/node';
import { storeFromEnv } from '@pqc-mcp/redis';
import { onShutdown, printBackend, printReady, readExampleEnv } from './shared/env.js';
import { createHonoApp } from './shared/hono-app.js';

const env = await readExampleEnv('hono-server');
const store = storeFromEnv(); // PQC_REDIS_URL: sessions shared with other instances
const { app, close } = createHonoApp({ pqc: { identity: env.identity, profiles: env.profiles, ...env.limits, store }, responseMode: env.responseMode });

const server = serve({ fetch: app.fetch, port: env.port, hostname: '127.0.0.1' }, (info: AddressInfo) => {
  printReady(info.port, env.identity.did);
  printBackend(env.identity.backend.name);
}) as Server;
// Idle connections stay open longer than clients and proxies keep them (Node's 5 s would reset the odd request).
applyKeepAliveTimeout(server);

onShutdown(async () => {
  await new Promise<void>((resolve, reject) => {
    server.close((err) => (err ? reject(err) : resolve()));
    server.closeAllConnections();
  });
  await close();
  await store?.close();
});
