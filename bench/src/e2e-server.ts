/**
 * The servers of the end-to-end benchmark, all in this one process (run under the Node version being measured):
 * Express, Fastify and Hono, each unsigned, signed, and signed with the worker pool, on 127.0.0.1 and ephemeral
 * ports. The apps are the examples' own factories (examples/shared/*-app.ts, `pqc: false` for the unsigned
 * baseline), the MCP SDK v2 handler behind them, stateless, answering the 2026-07-28 era with JSON
 * (`responseMode: 'json'`). Prints `READY <json>` once listening; exits when stdin closes.
 *
 *   tsx --conditions=@pqc-mcp/source bench/src/e2e-server.ts [--frameworks=express,fastify,hono] [--modes=unsigned,signed,pool] [--profile=<file>]
 */
import { writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { Session } from 'node:inspector/promises';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { serve } from '@hono/node-server';
import { AgentIdentity } from '@pqc-mcp/core';
import { sharedWorkerPool, type WorkerPoolBackend } from '@pqc-mcp/core/node';
import { createExpressApp } from '../../examples/shared/express-app.js';
import { createFastifyApp } from '../../examples/shared/fastify-app.js';
import { createHonoApp } from '../../examples/shared/hono-app.js';

export type Framework = 'express' | 'fastify' | 'hono';
export type Mode = 'unsigned' | 'signed' | 'pool';

export interface ServerInfo {
  framework: Framework;
  mode: Mode;
  url: string;
  handshakeUrl: string;
  did: string | null;
  backend: string | null;
}

async function start(framework: Framework, mode: Mode, pool: WorkerPoolBackend): Promise<ServerInfo> {
  const identity = mode === 'unsigned' ? undefined : AgentIdentity.create(`bench-${framework}-${mode}`);
  const backend = mode === 'pool' ? pool : undefined;
  let port: number;
  if (framework === 'express') {
    const { app } = createExpressApp({ pqc: identity ? { identity, cryptoPool: backend ?? false } : false, responseMode: 'json' });
    const server = await new Promise<Server>((resolve, reject) => {
      const s = app.listen(0, '127.0.0.1', (err?: Error) => (err ? reject(err) : resolve(s)));
    });
    port = (server.address() as AddressInfo).port;
  } else if (framework === 'fastify') {
    const { app } = createFastifyApp({ pqc: identity ? { identity, cryptoPool: backend ?? false } : false, responseMode: 'json' });
    await app.listen({ host: '127.0.0.1', port: 0 });
    port = (app.server.address() as AddressInfo).port;
  } else {
    // @pqc-mcp/hono on Node: the same `cryptoPool` option (default 'auto') as Express and Fastify.
    const { app } = createHonoApp({ pqc: identity ? { identity, cryptoPool: backend ?? false } : false, responseMode: 'json' });
    port = await new Promise<number>((resolve) => {
      serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info: AddressInfo) => resolve(info.port));
    });
  }
  const base = `http://127.0.0.1:${port}`;
  return {
    framework,
    mode,
    url: `${base}/mcp`,
    handshakeUrl: `${base}/pqc/handshake`,
    did: identity?.did ?? null,
    backend: identity ? (backend?.name ?? identity.backend.name) : null,
  };
}

/** `--frameworks=express,hono` and `--modes=pool` choose the servers started (default: every one). */
function listArg<T extends string>(name: string, all: readonly T[]): readonly T[] {
  const arg = process.argv.find((a) => a.startsWith(`--${name}=`));
  if (!arg) return all;
  const picked = arg.slice(name.length + 3).split(',');
  for (const p of picked) if (!all.includes(p as T)) throw new Error(`e2e-server: unknown ${name} entry ${p}`);
  return picked as T[];
}

const pool = sharedWorkerPool();
await pool.warmup();
const servers: ServerInfo[] = [];
for (const framework of listArg('frameworks', ['express', 'fastify', 'hono'] as const)) {
  for (const mode of listArg('modes', ['unsigned', 'signed', 'pool'] as const)) servers.push(await start(framework, mode, pool));
}
process.stdout.write(
  `READY ${JSON.stringify({ node: process.version, backend: AgentIdentity.create('bench-default').backend.name, pool: { name: pool.name, size: pool.size }, servers })}\n`,
);
// `--profile=<file>`: the main thread is profiled from now (start-up and compilation left out) until stdin closes,
// and the V8 CPU profile written to <file>.
const profileArg = process.argv.find((a) => a.startsWith('--profile='));
let stopProfile = async (): Promise<void> => {};
if (profileArg) {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  stopProfile = async () => {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(profileArg.slice('--profile='.length), JSON.stringify(profile));
  };
}
// The orchestrator closes stdin to stop this process.
let exiting = false;
const exit = () => {
  if (exiting) return;
  exiting = true;
  void stopProfile().finally(() => process.exit(0));
};
process.stdin.resume();
process.stdin.on('end', exit);
process.stdin.on('close', exit);
// BENCH_ELU=1: the event loop utilisation, CPU seconds and pool counters of this process, every second, on stderr.
if (process.env.BENCH_ELU) {
  let last = performance.eventLoopUtilization();
  let cpu = process.cpuUsage();
  setInterval(() => {
    const now = performance.eventLoopUtilization();
    const c = process.cpuUsage();
    process.stderr.write(`ELU ${performance.eventLoopUtilization(now, last).utilization.toFixed(2)} cpu ${((c.user + c.system - cpu.user - cpu.system) / 1e6).toFixed(2)} ${JSON.stringify(pool.stats())}\n`);
    last = now;
    cpu = c;
  }, 1000).unref();
}
