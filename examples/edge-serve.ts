/**
 * `pnpm example:edge`: bundles examples/edge-worker.ts with esbuild and serves it under workerd, the Cloudflare
 * Workers runtime, through miniflare, with the Durable Object it needs (the SQLite-backed PQC session store).
 *
 *   tsx --conditions=@pqc-mcp/source examples/edge-serve.ts
 *
 * Environment as for the other example servers (examples/shared/env.ts): PORT (default 8080), PQC_IDENTITY (identity
 * file, handed to the worker as its `PQC_IDENTITY` secret; default a fresh identity), PQC_PROFILES, PQC_JSON=1,
 * PQC_AUTHORIZED_DIDS, PQC_MAX_BODY_BYTES, PQC_MAX_BATCH, PQC_SESSION_TTL_SEC (handed over as vars).
 * Prints `READY http://127.0.0.1:<port>/mcp <server DID>` once the worker answers (the DID is the one the worker
 * itself reports at GET /pqc/handshake), and `PQC backend: <name> (workerd)` on stderr, the backend as the worker
 * logs it; the worker's other output goes to stderr too. Exits 0 on SIGINT/SIGTERM, workerd stopped and the bundle
 * removed.
 */
import { rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { Miniflare } from 'miniflare';
import { buildEdgeWorker, edgeWorkerOptions } from './shared/edge.js';
import { printBackend, printReady, readExampleEnv } from './shared/env.js';

const env = await readExampleEnv('edge-worker');
const dir = await mkdtemp(path.join(tmpdir(), 'pqc-edge-worker-'));
// Removed on any exit (synchronously: nothing asynchronous runs then).
process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
// Miniflare answers SIGINT and SIGTERM itself: its exit hook stops workerd and exits with 130 or 143 at once, before
// an asynchronous shutdown could run. These handlers run before it (prepended) and exit 0; the exit still runs
// miniflare's hook (workerd stopped, its temp folder removed) and removes the bundle.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.prependOnceListener(signal, () => process.exit(0));
const scriptPath = path.join(dir, 'worker.js');
await buildEdgeWorker(scriptPath);

const vars: Record<string, string> = { PQC_IDENTITY: JSON.stringify(env.identity.toJwk({ includePrivate: true })) };
for (const name of ['PQC_PROFILES', 'PQC_JSON', 'PQC_AUTHORIZED_DIDS', 'PQC_MAX_BODY_BYTES', 'PQC_MAX_BATCH', 'PQC_SESSION_TTL_SEC']) {
  const value = process.env[name];
  if (value !== undefined && value !== '') vars[name] = value;
}

// workerd's output (the worker's console among it) goes to stderr: stdout carries only the READY line. The worker logs
// its backend once, when its first request makes the app.
let reportBackend: (name: string) => void = () => {};
const backend = new Promise<string>((resolve) => (reportBackend = resolve));
function relay(stream: Readable): void {
  createInterface(stream).on('line', (line) => {
    const match = /^PQC backend: (\S+)$/.exec(line);
    if (match) reportBackend(match[1]!);
    else process.stderr.write(`${line}\n`);
  });
}

const mf = new Miniflare({
  ...edgeWorkerOptions({ scriptPath, vars, port: env.port }),
  handleRuntimeStdio: (stdout: Readable, stderr: Readable) => [stdout, stderr].forEach(relay),
});
const url = await mf.ready;
const answer = await fetch(new URL('/pqc/handshake', url));
const info = (await answer.json()) as { did?: string; error?: string };
if (info.did !== env.identity.did) throw new Error(`the worker answered ${answer.status} ${JSON.stringify(info)}, expected the DID ${env.identity.did}`);
const timeout = new Promise<string>((resolve) => setTimeout(() => resolve('unknown (the worker did not log it)'), 5000).unref());
printReady(Number(url.port), info.did);
printBackend(await Promise.race([backend, timeout]), 'workerd');
