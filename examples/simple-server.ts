/**
 * The seed's simple server as a `PQCMCPServer`: tools `greet`, `add` and `echo`, served over HTTP (the Hono adapter
 * on @hono/node-server) with every message signed and verified.
 *
 *   tsx --conditions=@pqc-mcp/source examples/simple-server.ts
 *
 * Environment (examples/shared/env.ts): PORT (default 8080; 0 picks a free one), PQC_IDENTITY (identity file;
 * default a fresh identity), PQC_PROFILES (`v2` or `v2,v1`), PQC_JSON=1 (JSON responses instead of SSE).
 * Prints `READY http://127.0.0.1:<port>/mcp <server DID>` once listening; exits 0 on SIGINT/SIGTERM.
 * Then run examples/simple-client.ts with PQC_SERVER_URL and PQC_SERVER_DID from that line.
 */
import { onShutdown, printReady, readExampleEnv } from './shared/env.js';
import { createSeedServer } from './shared/seed.js';

const env = await readExampleEnv('simple-server');
const server = createSeedServer({ identity: env.identity, profiles: env.profiles, enableJsonResponse: env.enableJsonResponse });
const { port } = await server.run({ host: '127.0.0.1', port: env.port });
printReady(port, server.did);
onShutdown(() => server.close());
