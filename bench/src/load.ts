/**
 * The load generator of the end-to-end benchmark (section 3 and 5). For each server that e2e-server.ts started:
 * checks one real tools/call end to end in the 2026-07-28 era (for signed servers through `pqcFetch`, which opens the
 * PQC session and verifies the answer), signs N distinct tools/call requests up front in that session (each with its
 * own nonce, bound to its POST as §3 says), then drives them over loopback with autocannon while a separate thread
 * probes `GET pqc/handshake`. Prints `RESULT <json>`.
 *
 *   tsx --conditions=@pqc-mcp/source bench/src/load.ts <plan.json>
 */
import { readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { AgentIdentity, MessageSigner, PQC_SESSION_HEADER, pqcFetch, type FetchLike } from '@pqc-mcp/core';
import autocannon from 'autocannon';
import { TOOLS_CALL_HEADERS, printResult, round, summary, toolsCall } from './common.js';
import type { ServerInfo } from './e2e-server.js';

export interface LoadPlan {
  servers: ServerInfo[];
  /** Seconds of measurement (unsigned: exactly; signed: the requests signed for this long at the expected rate). */
  durationSec: number;
  /** Seconds of requests sent before measuring, per server. */
  warmupSec: number;
  connections: number;
  /** Expected signed round trips per second per server URL (its crypto ceiling): sizes the requests to sign. */
  expectedRps: Record<string, number>;
  /** Most requests one PQC session may carry (the server remembers 10 000 nonces per session). */
  maxSigned: number;
  /** Runs of each server, in rounds over every server (the orchestrator takes the medians). Default 1. */
  reps?: number;
}

export interface RunResult {
  /** Which round of `reps` this run was (0-based). */
  rep: number;
  framework: string;
  mode: string;
  backend: string | null;
  requests: number;
  ok: number;
  non2xx: number;
  errors: number;
  seconds: number;
  rps: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  latencyMaxMs: number;
  handshakeProbe: { n: number; failed: number; p50Ms: number; p99Ms: number; maxMs: number };
  presignSeconds: number;
}

const plan = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as LoadPlan;
const client = AgentIdentity.create('bench-load-client');
const signer = new MessageSigner(client);

/** Probes `GET url` one request at a time every `intervalMs`, in a thread of its own (autocannon busies this one). */
const PROBE_SOURCE = String.raw`
const { parentPort, workerData } = require('node:worker_threads');
const http = require('node:http');
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
let stop = false;
const latencies = [];
let failed = 0;
parentPort.on('message', () => { stop = true; });
function once() {
  return new Promise((resolve) => {
    const t = performance.now();
    const req = http.get(workerData.url, { agent }, (res) => {
      res.resume();
      res.on('end', () => {
        if (res.statusCode === 200) latencies.push(performance.now() - t);
        else failed++;
        resolve();
      });
    });
    req.on('error', () => { failed++; resolve(); });
  });
}
(async () => {
  while (!stop) {
    await once();
    await new Promise((r) => setTimeout(r, workerData.intervalMs));
  }
  parentPort.postMessage({ latencies, failed });
  agent.destroy();
})();
`;

function startProbe(url: string): () => Promise<{ latencies: number[]; failed: number }> {
  const worker = new Worker(PROBE_SOURCE, { eval: true, workerData: { url, intervalMs: 20 }, execArgv: [] });
  const done = new Promise<{ latencies: number[]; failed: number }>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  return async () => {
    worker.postMessage('stop');
    const result = await done;
    await worker.terminate();
    return result;
  };
}

interface McpSession {
  headers: Record<string, string>;
  /** Signs (or writes) the body of request number `id`. */
  body(id: number): Promise<string>;
}

/**
 * One real tools/call on `server` through `fetchFn`, its answer checked (for signed servers: verified by `pqcFetch`).
 * The 2026-07-28 era needs no `initialize`: every request stands alone.
 */
async function checkCall(server: ServerInfo, fetchFn: FetchLike): Promise<void> {
  const call = await fetchFn(server.url, { method: 'POST', headers: { ...TOOLS_CALL_HEADERS }, body: JSON.stringify(toolsCall(1)) });
  const text = await call.text();
  const answer = JSON.parse(text) as { result?: { content?: { text?: string }[] } };
  if (!call.ok || typeof answer.result?.content?.[0]?.text !== 'string') {
    throw new Error(`${server.framework}/${server.mode}: tools/call failed (HTTP ${call.status}): ${text.slice(0, 200)}`);
  }
}

async function openSession(server: ServerInfo): Promise<McpSession> {
  if (server.did === null) {
    await checkCall(server, (input, init) => fetch(input, init));
    return { headers: { ...TOOLS_CALL_HEADERS }, body: async (id) => JSON.stringify(toolsCall(id)) };
  }
  const f = pqcFetch({ identity: client, serverDid: server.did });
  await checkCall(server, f);
  const sessionId = f.session!.sessionId;
  // As pqcFetch sends them: the session named in PQC-Session, each message bound to its POST (§3).
  const http = { method: 'POST', path: new URL(server.url).pathname, mcpSessionId: null };
  return {
    headers: { ...TOOLS_CALL_HEADERS, [PQC_SESSION_HEADER]: sessionId },
    body: async (id) => (await signer.signMessage(toolsCall(id), { sessionId, http })).text,
  };
}

/** Bodies `from`..`from + count - 1`, made concurrently (native signing runs in libuv's pool). */
async function makeBodies(session: McpSession, from: number, count: number): Promise<string[]> {
  const out: string[] = new Array(count);
  const chunk = 64;
  for (let i = 0; i < count; i += chunk) {
    const ids = Array.from({ length: Math.min(chunk, count - i) }, (_, k) => from + i + k);
    const texts = await Promise.all(ids.map((id) => session.body(id)));
    for (let k = 0; k < texts.length; k++) out[i + k] = texts[k]!;
  }
  return out;
}

interface Outcome {
  ok: number;
  non2xx: number;
  errors: number;
  seconds: number;
  latencies: number[];
}

/**
 * One autocannon run. Stops itself after `amount` answers (or `duration` seconds) and times the run from its start
 * to its last answer (autocannon's own result only comes at its next whole-second tick).
 */
function cannon(
  server: ServerInfo,
  headers: Record<string, string>,
  next: () => string | undefined,
  opts: { amount?: number; duration?: number; maxSeconds?: number },
): Promise<Outcome> {
  return new Promise<Outcome>((resolve, reject) => {
    const latencies: number[] = [];
    let ok = 0;
    let non2xx = 0;
    let errors = 0;
    const start = performance.now();
    let last = start;
    let settled = false;
    const timer = opts.maxSeconds === undefined ? undefined : setTimeout(() => finish(), opts.maxSeconds * 1000);
    const finish = () => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      instance.stop();
      resolve({ ok, non2xx, errors, seconds: (last - start) / 1000, latencies });
    };
    const instance = autocannon(
      {
        url: server.url,
        method: 'POST',
        headers,
        connections: plan.connections,
        pipelining: 1,
        timeout: 30,
        ...(opts.amount !== undefined ? { amount: opts.amount } : { duration: opts.duration }),
        requests: [
          {
            setupRequest: (request: autocannon.Request) => {
              const body = next();
              return (body === undefined ? undefined : { ...request, body }) as autocannon.Request;
            },
          },
        ],
      },
      (err) => {
        if (err && !settled) {
          settled = true;
          reject(err);
        } else {
          finish();
        }
      },
    );
    instance.on('response', (_client: unknown, statusCode: number, _bytes: number, responseTime: number) => {
      if (settled) return;
      last = performance.now();
      latencies.push(responseTime);
      if (statusCode >= 200 && statusCode < 300) ok++;
      else non2xx++;
      if (opts.amount !== undefined && ok + non2xx >= opts.amount) finish();
    });
    instance.on('reqError', () => {
      errors++;
    });
  });
}

async function run(server: ServerInfo, rep: number): Promise<RunResult> {
  const session = await openSession(server);
  const signed = server.did !== null;
  let nextId = 10;
  let presignSeconds = 0;

  const expected = plan.expectedRps[server.url] ?? 100;
  let budget = plan.maxSigned;
  // Warm-up (not measured).
  if (signed) {
    const warmCount = Math.max(plan.connections, Math.ceil(expected * plan.warmupSec));
    const warm = await makeBodies(session, nextId, warmCount + plan.connections);
    nextId += warm.length;
    budget -= warm.length;
    let k = 0;
    await cannon(server, session.headers, () => warm[k++], { amount: warmCount, maxSeconds: plan.warmupSec });
  } else {
    await cannon(server, session.headers, () => JSON.stringify(toolsCall(nextId++)), { duration: plan.warmupSec, maxSeconds: plan.warmupSec });
  }

  let result: Outcome;
  let probe: { latencies: number[]; failed: number } = { latencies: [], failed: 0 };
  if (signed) {
    // Enough for `durationSec` at the expected rate; the run stops after `durationSec` in any case.
    const count = Math.max(100, Math.min(budget - 2 * plan.connections, Math.ceil(expected * plan.durationSec)));
    const t = performance.now();
    const bodies = await makeBodies(session, nextId, count + plan.connections);
    presignSeconds = (performance.now() - t) / 1000;
    let k = 0;
    const stop = startProbe(server.handshakeUrl);
    result = await cannon(server, session.headers, () => bodies[k++], { amount: count, maxSeconds: plan.durationSec });
    probe = await stop();
  } else {
    // (An unsigned server has no handshake route to probe.)
    result = await cannon(server, session.headers, () => JSON.stringify(toolsCall(nextId++)), {
      duration: plan.durationSec,
      maxSeconds: plan.durationSec,
    });
  }
  const p = summary(probe.latencies);
  const l = summary(result.latencies);
  return {
    rep,
    framework: server.framework,
    mode: server.mode,
    backend: server.backend,
    requests: result.ok + result.non2xx,
    ok: result.ok,
    non2xx: result.non2xx,
    errors: result.errors,
    seconds: round(result.seconds, 3),
    rps: result.ok > 0 && result.seconds > 0 ? round(result.ok / result.seconds, 1) : 0,
    latencyP50Ms: round(l.p50, 1),
    latencyP99Ms: round(l.p99, 1),
    latencyMaxMs: round(l.max, 1),
    handshakeProbe: { n: p.n, failed: probe.failed, p50Ms: round(p.p50, 2), p99Ms: round(p.p99, 2), maxMs: round(p.max, 2) },
    presignSeconds: round(presignSeconds, 2),
  };
}

const results: RunResult[] = [];
for (let rep = 0; rep < (plan.reps ?? 1); rep++) {
  for (const server of plan.servers) {
    const r = await run(server, rep);
    const failed = r.non2xx + r.errors ? `  FAILED ${r.non2xx} non-2xx, ${r.errors} errors` : '';
    process.stderr.write(
      `  ${r.framework.padEnd(8)} ${r.mode.padEnd(9)} ${String(r.rps).padStart(8)} req/s  p50 ${r.latencyP50Ms} ms  p99 ${r.latencyP99Ms} ms  handshake p99 ${r.handshakeProbe.p99Ms} ms${failed}\n`,
    );
    results.push(r);
  }
}
printResult({ node: process.version, client: client.backend.name, results });
