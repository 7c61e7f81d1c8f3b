/**
 * An MCP server on Hono with post-quantum signed traffic: `pqc()` in front of the MCP SDK's web-standard transport,
 * served by @hono/node-server: on Node, and on Bun and Deno through their `node:http` (tested on all three).
 *
 *   tsx --conditions=@pqc-mcp/source examples/hono-server.ts
 *   bun --conditions=@pqc-mcp/source examples/hono-server.ts
 *   deno run --allow-net --allow-env --allow-read --sloppy-imports --conditions=@pqc-mcp/source examples/hono-server.ts
 *
 * Environment (examples/shared/env.ts): PORT (default 8080), PQC_IDENTITY (identity file; default a fresh identity),
 * PQC_PROFILES (`v2` or `v2,v1`), PQC_JSON=1 (JSON responses instead of SSE), PQC_AUTHORIZED_DIDS,
 * PQC_MAX_BODY_BYTES, PQC_SESSION_TTL_SEC.
 * Prints `READY http://127.0.0.1:<port>/mcp <server DID>` once listening (and `PQC backend: <name> (<runtime>)` on
 * stderr); exits 0 on SIGINT/SIGTERM.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { pqc, type PQCVariables } from '@pqc-mcp/hono';
import { Hono } from 'hono';
import { storeFromEnv } from '@pqc-mcp/redis';
import { onShutdown, printBackend, printReady, readExampleEnv } from './shared/env.js';
import { createWebMcpApp } from './shared/tools.js';

const env = await readExampleEnv('hono-server');
const store = storeFromEnv(); // PQC_REDIS_URL: sessions shared with other instances
const mcp = createWebMcpApp({ enableJsonResponse: env.enableJsonResponse });

const app = new Hono<{ Variables: PQCVariables }>();
// On '*' the middleware sees both /mcp and the handshake at /pqc/handshake (and lets every other path through).
app.use('*', pqc({ identity: env.identity, profiles: env.profiles, ...env.limits, store }));
app.all('/mcp', (c) => mcp(c.req.raw, c.get('pqcBody')));

const server = serve({ fetch: app.fetch, port: env.port, hostname: '127.0.0.1' }, (info: AddressInfo) => {
  printReady(info.port, env.identity.did);
  printBackend(env.identity.backend.name);
}) as Server;

onShutdown(async () => {
  await new Promise<void>((resolve, reject) => {
    server.close((err) => (err ? reject(err) : resolve()));
    server.closeAllConnections(); // open SSE streams would hold close() forever
  });
  await store?.close();
});
