/**
 * `pnpm example:edge`: bundles examples/edge-worker.ts with esbuild and serves it under workerd, the Cloudflare
 * Workers runtime, through miniflare, with the Durable Objects it needs (SQLite-backed PQC session store, one object
 * per MCP session).
 *
 *   tsx --conditions=@pqc-mcp/source examples/edge-serve.ts
 *
 * Environment as for the other example servers (examples/shared/env.ts): PORT (default 8080), PQC_IDENTITY (identity
 * file, handed to the worker as its `PQC_IDENTITY` secret; default a fresh identity), PQC_PROFILES, PQC_JSON=1,
 * PQC_AUTHORIZED_DIDS, PQC_MAX_BODY_BYTES, PQC_SESSION_TTL_SEC (handed over as vars).
 * Prints `READY http://127.0.0.1:<port>/mcp <server DID>` once the worker answers (the DID is the one the worker
 * itself reports at GET /pqc/handshake), and `PQC backend: <name> (workerd)` on stderr; exits 0 on SIGINT/SIGTERM.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Miniflare } from 'miniflare';
import { buildEdgeWorker, edgeWorkerOptions } from './shared/edge.js';
import { onShutdown, printBackend, printReady, readExampleEnv } from './shared/env.js';

const env = await readExampleEnv('edge-worker');
const dir = await mkdtemp(path.join(tmpdir(), 'pqc-edge-worker-'));
const scriptPath = path.join(dir, 'worker.js');
await buildEdgeWorker(scriptPath);

const vars: Record<string, string> = { PQC_IDENTITY: JSON.stringify(env.identity.toJwk({ includePrivate: true })) };
for (const name of ['PQC_PROFILES', 'PQC_JSON', 'PQC_AUTHORIZED_DIDS', 'PQC_MAX_BODY_BYTES', 'PQC_SESSION_TTL_SEC']) {
  const value = process.env[name];
  if (value !== undefined && value !== '') vars[name] = value;
}

const mf = new Miniflare(edgeWorkerOptions({ scriptPath, vars, port: env.port }));
const url = await mf.ready;
const info = (await (await fetch(new URL('/pqc/handshake', url))).json()) as { did: string; backend: string };
if (info.did !== env.identity.did) throw new Error(`the worker reports ${info.did}, expected ${env.identity.did}`);
printReady(Number(url.port), info.did);
printBackend(info.backend, 'workerd');

onShutdown(async () => {
  await mf.dispose();
  await rm(dir, { recursive: true, force: true });
});
