/**
 * The Python predecessor's simple server as a `PQCMCPServer`: tools `greet`, `add` and `echo`, served over HTTP (node:http,
 * both MCP eras, v1 peers too with PQC_PROFILES=v2,v1) with every message signed and verified.
 *
 *   tsx --conditions=@pqc-mcp/source examples/simple-server.ts
 *
 * Environment (examples/shared/env.ts): PORT (default 8080; 0 picks a free one), PQC_IDENTITY (identity file;
 * default a fresh identity), PQC_PROFILES (`v2` or `v2,v1`), PQC_JSON=1 (2026-07-28 answers as JSON, never SSE).
 * Prints `READY http://127.0.0.1:<port>/mcp <server DID>` once listening; exits 0 on SIGINT/SIGTERM.
 * Then run examples/simple-client.ts with PQC_SERVER_URL and PQC_SERVER_DID from that line.
 */
import { onShutdown, printReady, readExampleEnv } from './shared/env.js';
import { createSimpleServer } from './shared/simple.js';

const env = await readExampleEnv('simple-server');
const server = createSimpleServer({ identity: env.identity, profiles: env.profiles, responseMode: env.responseMode });
const { port } = await server.run({ host: '127.0.0.1', port: env.port });
printReady(port, server.did);
onShutdown(() => server.close());
