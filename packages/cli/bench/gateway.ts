/**
 * Gateway throughput against the same core adapter in-process.
 *
 *   node --import tsx --conditions=@pqc-mcp/source packages/cli/bench/gateway.ts [--seconds 10] [--clients 16] [--loaders 4] [--out FILE]
 *
 * Needs the built binary (`pnpm --filter pqc-mcp build`). Two set-ups serve the examples' MCP app (JSON responses):
 *   in-process  `createPQCHandler` + node:http + the MCP SDK app in one process (what the adapters do);
 *   gateway     the examples' app on plain node:http (no PQC), `pqc-mcp gateway` in front of it.
 * For each, `--loaders` load processes run `--clients` PQC clients in all (SDK Client + pqcFetch, one identity each),
 * calling `echo` in a loop for `--seconds`; the server side runs in its own processes, so client-side signing does not
 * compete with it. Prints calls/s and latency percentiles per set-up, the gateway/in-process ratio, and writes them
 * as JSON with --out. The bar: gateway throughput >= 90 % of in-process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { AgentIdentity, createPQCHandler, pqcFetch } from '@pqc-mcp/core';
import { sendWebResponse, toWebRequest } from '@pqc-mcp/core/node';
import { createWebMcpApp1x } from '@pqc-mcp/test-kit';

const SELF = fileURLToPath(import.meta.url);
const BIN = join(dirname(SELF), '..', 'dist', 'index.js');
const SERVER = AgentIdentity.fromSeed(new Uint8Array(32).fill(91), { name: 'bench-server' });

/** Serves the examples' app: behind the core (`pqc`) or plain (for the gateway). Prints `READY <url>`. */
async function serve(pqc: boolean): Promise<void> {
  const app = createWebMcpApp1x({ enableJsonResponse: true });
  const handler = pqc ? createPQCHandler({ identity: SERVER, audit: () => {} }) : undefined;
  const server = createServer((req, res) => {
    void (async () => {
      if (handler) {
        await sendWebResponse(res, await handler.handle(toWebRequest(req), (request, body) => app(request, body)));
        return;
      }
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const body = Buffer.concat(chunks);
      let parsed: unknown;
      try {
        parsed = req.method === 'POST' ? JSON.parse(body.toString('utf8')) : undefined;
      } catch {
        parsed = undefined;
      }
      const request = toWebRequest(req, req.method === 'GET' || req.method === 'HEAD' ? undefined : new Uint8Array(body));
      await sendWebResponse(res, await app(request, parsed));
    })().catch((err: unknown) => {
      res.statusCode = 500;
      res.end(String(err));
    });
  });
  server.listen(0, '127.0.0.1', () => console.log(`READY http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`));
}

/** One load process: `clients` clients calling echo until the deadline; prints one JSON line of results. */
async function load(url: string, serverDid: string, clients: number, seconds: number): Promise<void> {
  const latencies: number[] = [];
  let errors = 0;
  const sessions = await Promise.all(
    Array.from({ length: clients }, async () => {
      const client = new Client({ name: 'bench', version: '1.0.0' });
      await client.connect(new StreamableHTTPClientTransport(new URL(url), { fetch: pqcFetch({ identity: AgentIdentity.create(), serverDid }) }));
      return client;
    }),
  );
  const deadline = performance.now() + seconds * 1000;
  await Promise.all(
    sessions.map(async (client) => {
      while (performance.now() < deadline) {
        const start = performance.now();
        try {
          await client.callTool({ name: 'echo', arguments: { text: 'benchmark payload' } });
          latencies.push(performance.now() - start);
        } catch {
          errors++;
        }
      }
      await client.close().catch(() => {});
    }),
  );
  console.log(JSON.stringify({ calls: latencies.length, errors, latencies }));
}

function start(args: string[], stderr: 'inherit' | 'ignore' = 'inherit'): { child: ChildProcess; ready: Promise<string[]> } {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', stderr] });
  const ready = new Promise<string[]>((resolve, reject) => {
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const match = /^READY (.+)$/m.exec(out);
      if (match) resolve(match[1]!.trim().split(' '));
    });
    child.on('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}`)));
  });
  return { child, ready };
}

function self(...args: string[]): string[] {
  return [...process.execArgv, SELF, ...args];
}

interface Result {
  setup: string;
  calls_per_s: number;
  calls: number;
  errors: number;
  p50_ms: number;
  p99_ms: number;
}

async function measure(setup: string, url: string, clients: number, loaders: number, seconds: number): Promise<Result> {
  const per = Math.ceil(clients / loaders);
  const runs = Array.from({ length: loaders }, () => {
    const child = spawn(process.execPath, self('load', url, SERVER.did, String(per), String(seconds)), { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    return new Promise<{ calls: number; errors: number; latencies: number[] }>((resolve, reject) =>
      child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop()!)) : reject(new Error(`load exited ${code}`)))),
    );
  });
  const results = await Promise.all(runs);
  const latencies = results.flatMap((r) => r.latencies).sort((a, b) => a - b);
  const calls = latencies.length;
  const pct = (p: number) => Math.round((latencies[Math.min(calls - 1, Math.floor((calls * p) / 100))] ?? NaN) * 10) / 10;
  return {
    setup,
    calls_per_s: Math.round((calls / seconds) * 10) / 10,
    calls,
    errors: results.reduce((n, r) => n + r.errors, 0),
    p50_ms: pct(50),
    p99_ms: pct(99),
  };
}

async function main(): Promise<void> {
  const [role, ...rest] = process.argv.slice(2);
  if (role === 'serve-pqc') return serve(true);
  if (role === 'serve-plain') return serve(false);
  if (role === 'load') return load(rest[0]!, rest[1]!, Number(rest[2]), Number(rest[3]));

  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: { seconds: { type: 'string', default: '10' }, clients: { type: 'string', default: '16' }, loaders: { type: 'string', default: '4' }, out: { type: 'string' } },
  });
  const seconds = Number(values.seconds);
  const clients = Number(values.clients);
  const loaders = Number(values.loaders);
  const children: ChildProcess[] = [];
  const tmp = mkdtempSync(join(tmpdir(), 'pqc-bench-'));
  try {
    const inproc = start(self('serve-pqc'));
    children.push(inproc.child);
    const [inprocUrl] = await inproc.ready;
    const a = await measure('in-process', inprocUrl!, clients, loaders, seconds);
    inproc.child.kill();

    const upstream = start(self('serve-plain'));
    children.push(upstream.child);
    const [upstreamUrl] = await upstream.ready;
    const identityFile = join(tmp, 'server.json');
    await SERVER.save(identityFile);
    const gateway = start([BIN, 'gateway', '--upstream', upstreamUrl!, '--listen', '127.0.0.1:0', '--identity', identityFile], 'ignore'); // one log line per request: not what is measured here
    children.push(gateway.child);
    const [gatewayUrl] = await gateway.ready;
    const b = await measure('gateway', gatewayUrl!, clients, loaders, seconds);

    const ratio = Math.round((b.calls_per_s / a.calls_per_s) * 1000) / 1000;
    const report = { node: process.version, seconds, clients, loaders, results: [a, b], gateway_to_inprocess: ratio, within_10_percent: ratio >= 0.9 };
    console.log('| set-up | calls/s | p50 ms | p99 ms | errors |');
    console.log('|---|---|---|---|---|');
    for (const r of [a, b]) console.log(`| ${r.setup} | ${r.calls_per_s} | ${r.p50_ms} | ${r.p99_ms} | ${r.errors} |`);
    console.log(`\ngateway / in-process throughput: ${ratio} (${report.within_10_percent ? 'within' : 'NOT within'} 10 %)`);
    if (values.out) writeFileSync(values.out, JSON.stringify(report, null, 2) + '\n');
  } finally {
    for (const child of children) child.kill();
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
