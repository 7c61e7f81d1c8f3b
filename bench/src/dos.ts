/**
 * The DoS scenario (issue 13): does a legitimate signed client keep its latency while others abuse the server?
 *
 * For each framework (Express, Fastify, Hono on Node; the signed server as the examples build it, default options:
 * worker pool, 4 MiB bodies, batches of 50), in a server process of its own (e2e-server.ts):
 *   1. quiet: a legitimate client (its own PQC session, requests signed up front, one connection) sends a tools/call
 *      every 10 ms for a while: p50/p99 of its round trips;
 *   2. under attack, the same client again while, from another process,
 *      - 2 connections send max-size (4 MiB) garbage bodies back to back, one without a `PQC-Session` header and one
 *        naming a session that does not exist;
 *      - 2 connections trickle a body slowloris-style (headers announcing 4 MiB, then a byte every 50 ms);
 *      - an authenticated client (a session of its own) sends max-size batches back to back: 50 signed tools/calls
 *        whose arguments fill the body to just under 4 MiB.
 * Target: the legitimate p99 under attack <= 3x the quiet p99. Writes bench/results/dos.json and dos.md.
 *
 *   tsx --conditions=@pqc-mcp/source bench/src/dos.ts [--quick] [--frameworks=express,fastify,hono]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import net from 'node:net';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AgentIdentity, MessageSigner, PQC_SESSION_HEADER, pqcFetch } from '@pqc-mcp/core';
import { TOOLS_CALL_HEADERS, cores, round, summary, toolsCall } from './common.js';
import type { ServerInfo } from './e2e-server.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const tsxCli = createRequire(import.meta.url).resolve('tsx/cli');
const quick = process.argv.includes('--quick');
const PHASE_SEC = quick ? 2 : 8;
const INTERVAL_MS = 10;
const MAX_BODY = 4 * 1024 * 1024;
const MAX_BATCH = 50;

interface Attack {
  url: string;
  did: string;
  seconds: number;
}

/** A session of `identity` with the server (opened through `pqcFetch`, one real call verified end to end). */
async function session(url: string, did: string, identity: AgentIdentity) {
  const f = pqcFetch({ identity, serverDid: did });
  const res = await f(url, { method: 'POST', headers: { ...TOOLS_CALL_HEADERS }, body: JSON.stringify(toolsCall(1)) });
  if (!res.ok) throw new Error(`dos: the first call failed: HTTP ${res.status} ${await res.text()}`);
  await res.text();
  const sessionId = f.session!.sessionId;
  const signer = new MessageSigner(identity);
  const binding = { method: 'POST', path: new URL(url).pathname, mcpSessionId: null };
  return { sessionId, sign: async (message: Record<string, unknown>) => (await signer.signMessage(message, { sessionId, http: binding })).text };
}

/** POSTs `body` on `agent`; resolves the status and milliseconds to the last byte of the answer. */
function post(url: string, agent: http.Agent, headers: Record<string, string>, body: string | Buffer): Promise<{ status: number; ms: number }> {
  return new Promise((resolve) => {
    const t = performance.now();
    const req = http.request(url, { method: 'POST', agent, headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - t }));
      res.on('error', () => resolve({ status: 0, ms: performance.now() - t }));
    });
    req.on('error', () => resolve({ status: 0, ms: performance.now() - t }));
    req.end(body);
  });
}

/** The legitimate client: a signed tools/call every INTERVAL_MS for `seconds`, one at a time, on one connection. */
async function legit(url: string, sessionId: string, bodies: string[], seconds: number) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const headers = { ...TOOLS_CALL_HEADERS, [PQC_SESSION_HEADER]: sessionId };
  const latencies: number[] = [];
  let failed = 0;
  const end = performance.now() + seconds * 1000;
  let k = 0;
  while (performance.now() < end && k < bodies.length) {
    const started = performance.now();
    const r = await post(url, agent, headers, bodies[k++]!);
    if (r.status === 200) latencies.push(r.ms);
    else failed++;
    const wait = INTERVAL_MS - (performance.now() - started);
    if (wait > 0) await new Promise((w) => setTimeout(w, wait));
  }
  agent.destroy();
  const s = summary(latencies);
  return { requests: latencies.length + failed, failed, p50Ms: round(s.p50, 2), p99Ms: round(s.p99, 2), maxMs: round(s.max, 2), meanMs: round(s.mean, 2) };
}

/** The attacker process (`dos.ts --attack <json>`): prepares, prints READY, attacks on a line on stdin, prints RESULT. */
async function attacker(plan: Attack): Promise<void> {
  const { url } = plan;
  const target = new URL(url);
  // The authenticated abuser: batches of MAX_BATCH signed tools/calls, each padded to fill the body.
  const abuser = await session(url, plan.did, AgentIdentity.create('dos-batch-client'));
  const probe = await abuser.sign(toolsCall(2));
  const pad = 'x'.repeat(Math.floor((MAX_BODY - 4096) / MAX_BATCH - probe.length - 64));
  const batchCount = quick ? 6 : 24;
  const batches: string[] = [];
  let id = 10;
  for (let b = 0; b < batchCount; b++) {
    const messages = await Promise.all(
      Array.from({ length: MAX_BATCH }, () => {
        const m = toolsCall(id++);
        (m.params as { arguments: { text: string } }).arguments.text = pad;
        return abuser.sign(m);
      }),
    );
    batches.push(`[${messages.join(',')}]`);
  }
  const garbage = Buffer.alloc(MAX_BODY, 0x7b); // '{{{{…': not JSON, as large as the server takes
  process.stdout.write('READY\n');
  await new Promise<void>((go) => process.stdin.once('data', () => go()));

  const stopAt = performance.now() + plan.seconds * 1000;
  const counts = { garbage: 0, garbageStatus: {} as Record<string, number>, batches: 0, batchStatus: {} as Record<string, number>, trickleBytes: 0, batchMs: [] as number[] };
  const count = (into: Record<string, number>, status: number) => (into[status] = (into[status] ?? 0) + 1);
  const flood = async (headers: Record<string, string>) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    while (performance.now() < stopAt) {
      const r = await post(url, agent, headers, garbage);
      counts.garbage++;
      count(counts.garbageStatus, r.status);
    }
    agent.destroy();
  };
  const trickle = () =>
    new Promise<void>((done) => {
      const socket = net.connect(Number(target.port), target.hostname, () => {
        socket.write(`POST ${target.pathname} HTTP/1.1\r\nHost: ${target.host}\r\nContent-Type: application/json\r\nContent-Length: ${MAX_BODY}\r\n\r\n`);
        const timer = setInterval(() => {
          if (performance.now() >= stopAt || socket.destroyed) {
            clearInterval(timer);
            socket.destroy();
            done();
            return;
          }
          socket.write('{');
          counts.trickleBytes++;
        }, 50);
      });
      socket.on('error', () => done());
    });
  const batch = async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const headers = { ...TOOLS_CALL_HEADERS, [PQC_SESSION_HEADER]: abuser.sessionId };
    let k = 0;
    while (performance.now() < stopAt && k < batches.length) {
      const r = await post(url, agent, headers, batches[k++]!);
      counts.batches++;
      counts.batchMs.push(r.ms);
      count(counts.batchStatus, r.status);
    }
    agent.destroy();
  };
  const junkHeaders = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
  await Promise.all([
    flood(junkHeaders),
    flood({ ...junkHeaders, [PQC_SESSION_HEADER]: '0123456789abcdef0123456789abcdef' }),
    trickle(),
    trickle(),
    batch(),
  ]);
  const b = summary(counts.batchMs);
  process.stdout.write(
    `RESULT ${JSON.stringify({ ...counts, batchMs: undefined, batchP50Ms: round(b.p50, 1), batchMaxMs: round(b.max, 1), batchesPrepared: batchCount, batchBytes: Buffer.byteLength(batches[0]!) })}\n`,
  );
}

/** Starts a child (tsx) and resolves once it printed `READY…`; `lines` gets every later stdout line. */
function child(args: string[]): Promise<{ proc: ChildProcess; ready: string; next: () => Promise<string> }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [tsxCli, '--conditions=@pqc-mcp/source', ...args], { cwd: root, stdio: ['pipe', 'pipe', 'inherit'] });
    let buffer = '';
    const waiting: ((line: string) => void)[] = [];
    const lines: string[] = [];
    let readyLine: string | undefined;
    proc.stdout!.setEncoding('utf8');
    proc.stdout!.on('data', (chunk: string) => {
      buffer += chunk;
      let i;
      while ((i = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, i);
        buffer = buffer.slice(i + 1);
        if (readyLine === undefined && line.startsWith('READY')) {
          readyLine = line;
          resolve({ proc, ready: line, next: () => new Promise((r) => (lines.length ? r(lines.shift()!) : waiting.push(r))) });
        } else if (readyLine !== undefined) {
          const w = waiting.shift();
          if (w) w(line);
          else lines.push(line);
        }
      }
    });
    proc.on('error', reject);
    proc.on('exit', (code) => {
      if (readyLine === undefined) reject(new Error(`${args[0]} exited with code ${code} before it was ready`));
    });
  });
}

async function scenario(framework: string) {
  const server = await child([join(here, 'e2e-server.ts'), `--frameworks=${framework}`, '--modes=pool']);
  const info = JSON.parse(server.ready.slice(6)) as { servers: ServerInfo[] };
  const target = info.servers[0]!;
  try {
    const attack = await child([join(here, 'dos.ts'), '--attack', JSON.stringify({ url: target.url, did: target.did!, seconds: PHASE_SEC } satisfies Attack), ...(quick ? ['--quick'] : [])]);
    const client = await session(target.url, target.did!, AgentIdentity.create('dos-legit-client'));
    const n = Math.ceil((PHASE_SEC * 1000) / INTERVAL_MS) + 10;
    const quietBodies = await Promise.all(Array.from({ length: n }, (_, i) => client.sign(toolsCall(100 + i))));
    const loudBodies = await Promise.all(Array.from({ length: n }, (_, i) => client.sign(toolsCall(100 + n + i))));
    process.stderr.write(`== dos ${framework}: quiet\n`);
    const quiet = await legit(target.url, client.sessionId, quietBodies, PHASE_SEC);
    process.stderr.write(`== dos ${framework}: under attack\n`);
    attack.proc.stdin!.write('go\n');
    await new Promise((w) => setTimeout(w, 200)); // the attack under way first
    const loud = await legit(target.url, client.sessionId, loudBodies, PHASE_SEC - 0.2);
    const attackResult = JSON.parse((await attack.next()).slice('RESULT '.length)) as Record<string, unknown>;
    attack.proc.stdin!.end();
    const ratio = round(loud.p99Ms / quiet.p99Ms, 2);
    process.stderr.write(`   quiet p50/p99 ${quiet.p50Ms}/${quiet.p99Ms} ms, attack ${loud.p50Ms}/${loud.p99Ms} ms: ${ratio}x\n`);
    return { framework, backend: target.backend, quiet, underAttack: loud, p99Ratio: ratio, met: ratio <= 3 && loud.failed === 0, attack: attackResult };
  } finally {
    server.proc.stdin!.end();
  }
}

if (process.argv.includes('--attack')) {
  await attacker(JSON.parse(process.argv[process.argv.indexOf('--attack') + 1]!) as Attack);
  process.exit(0);
}

const started = Date.now();
const load0 = loadavg();
const arg = process.argv.find((a) => a.startsWith('--frameworks='));
const frameworks = arg ? arg.slice('--frameworks='.length).split(',') : ['express', 'fastify', 'hono'];
const results = [];
for (const f of frameworks) results.push(await scenario(f));
const report = {
  date: new Date(started).toISOString(),
  mode: quick ? 'quick' : 'full',
  node: process.version,
  machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cores(), loadAverageBefore: load0.map((x) => round(x, 2)), loadAverageAfter: loadavg().map((x) => round(x, 2)) },
  phaseSec: PHASE_SEC,
  intervalMs: INTERVAL_MS,
  results,
};
const L = [
  `# DoS scenario (${report.mode}, ${report.date.slice(0, 10)}, ${report.node}, ${report.machine.cores} cores, load average ${report.machine.loadAverageBefore.join(' ')} / ${report.machine.loadAverageAfter.join(' ')})`,
  '',
  'bench/src/dos.ts: a legitimate signed client (a tools/call every 10 ms, one connection, its own session) for ' +
    `${PHASE_SEC} s quiet, then ${PHASE_SEC} s while another process sends max-size (4 MiB) garbage on 2 connections (one without ` +
    '`PQC-Session`, one naming an unknown session), trickles a body a byte every 50 ms on 2 more (slowloris), and an authenticated ' +
    'client of its own session sends max-size batches back to back (50 signed tools/calls filling ~4 MiB). Server: the example app, ' +
    'default options (worker pool, `maxBodyBytes` 4 MiB, `maxBatch` 50). Target: legit p99 under attack <= 3x quiet.',
  '',
  '| framework | quiet p50 / p99 ms | under attack p50 / p99 / max ms | p99 ratio | legit failed | garbage bodies (statuses) | batches (statuses, p50 ms) | trickled bytes | |',
  '|---|---:|---:|---:|---:|---|---|---:|---|',
  ...results.map((r) => {
    const a = r.attack as { garbage: number; garbageStatus: object; batches: number; batchStatus: object; batchP50Ms: number; trickleBytes: number };
    return (
      `| ${r.framework} | ${r.quiet.p50Ms} / ${r.quiet.p99Ms} | ${r.underAttack.p50Ms} / ${r.underAttack.p99Ms} / ${r.underAttack.maxMs} | ${r.p99Ratio}x | ` +
      `${r.quiet.failed + r.underAttack.failed} | ${a.garbage} ${JSON.stringify(a.garbageStatus)} | ${a.batches} ${JSON.stringify(a.batchStatus)}, ${a.batchP50Ms} | ${a.trickleBytes} | ${r.met ? 'met' : '**not met**'} |`
    );
  }),
  '',
];
const dir = join(here, '..', 'results');
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, 'dos.json'), JSON.stringify(report, null, 2) + '\n');
writeFileSync(join(dir, 'dos.md'), L.join('\n'));
process.stdout.write(L.join('\n'));
process.exit(0);
