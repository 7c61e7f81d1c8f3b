/** The shape of bench/results/latest.json, and its rendering as bench/results/latest.md. */
import type { RunResult } from './load.js';
import type { ProfileSummary } from './profile.js';

/** One server of section 3: the medians of its runs, and for signed servers the bound it is held to. */
export interface E2eRow {
  framework: string;
  mode: string;
  backend: string | null;
  runs: number;
  /** Median req/s, and each run's. */
  rps: number;
  rpsRuns: number[];
  latencyP50Ms: number;
  latencyP99Ms: number;
  /** `GET pqc/handshake` while loaded: medians of each run's p50/p99, the largest max, all probes. */
  handshake: { probes: number; p50Ms: number; p99Ms: number; maxMs: number };
  failed: number;
  /** 1 / (1/R_u + c/cores): R_u this framework's unsigned median, c bare sign + verify (section 1). */
  boundRps: number | null;
  ofBound: number | null;
  /** 1/R_s - 1/bound, µs per request: what the signed run spent beyond the model. */
  residualUs: number | null;
}

interface OpStats {
  opsPerSec: number;
  meanMs: number;
  p50Ms: number;
  p99Ms: number;
  n: number;
}

interface CryptoRow {
  algorithm: string;
  backend: string;
  keygen: OpStats;
  sign: OpStats;
  verify: OpStats;
}

interface PerMessage {
  algorithm: string;
  backend: string;
  messageBytes: number;
  sign: { fullMeanMs: number; bareMeanMs: number; ratio: number; ownMeanUs: number; ownRatio: number; n: number };
  /** The server's path for one request (the handler) and `MessageSigner.verifyMessage`, against the bare verify. */
  verify: {
    fullMeanMs: number;
    bareMeanMs: number;
    ratio: number;
    ownMeanUs: number;
    ownRatio: number;
    messageMeanMs: number;
    messageRatio: number;
    messageOwnUs: number;
    n: number;
  };
  /** The handler for a request the application answers (verify + sign), against bare sign + verify. */
  round: { meanMs: number; bareMeanMs: number; ratio: number; ownMeanUs: number; n: number };
  json: { parseMeanUs: number; canonicalMeanUs: number };
}

interface WireRow {
  algorithm: string;
  signatureBytes: number;
  request: { unsigned: number; signed: number };
  response: { unsigned: number; signed: number };
  getHeader: { name: string; bytes: number };
  handshake: { request: number; response: number };
}

export interface RuntimeReport {
  label: string;
  node: string;
  micro: {
    availableBackends: string[];
    defaultBackend: string;
    crypto: unknown[];
    perMessage: unknown;
    wire?: unknown;
  };
  ceiling: { rps: number; signMs: number; verifyMs: number } | null;
  servers: { backend: string; pool: { name: string; size: number } };
  loadGenerator: { node: string; signer: string };
  /** Every run of section 3 (the table shows their medians, `e2e`). */
  runs: RunResult[];
  e2e: E2eRow[];
  /** The main thread of each framework's signed server (pool), under V8's CPU profiler (from READY to exit). */
  profiles?: { framework: string; rps: number; requests: number; file: string; summary: ProfileSummary }[];
}

export interface BenchReport {
  date: string;
  mode: 'quick' | 'full';
  seconds: number;
  machine: { cpu: string; cores: number; memoryGiB: number; os: string; loadAverageBefore: number[]; loadAverageAfter: number[] };
  settings: { durationSec: number; warmupSec: number; connections: number; reps: number };
  notes: string[];
  runtimes: RuntimeReport[];
  /** The issue's targets evaluated on this run (also the first table of latest.md). */
  targets?: { name: string; value: string; met: boolean | undefined }[];
}

const fmt = (x: number | null | undefined, digits = 1): string =>
  x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const pct = (x: number | null | undefined): string => (x === null || x === undefined ? '–' : `${Math.round(x * 100)}%`);
/** Our own cost per signed request on the server: the verify path and the sign path on a free backend (section 2). */
export function ownCost(pm: PerMessage): { us: number; bareUs: number; ofBare: number } {
  const us = pm.round.ownMeanUs;
  const bareUs = (pm.sign.bareMeanMs + pm.verify.bareMeanMs) * 1000;
  return { us, bareUs, ofBare: us / bareUs };
}
const mark = (ok: boolean | undefined): string => (ok === undefined ? '–' : ok ? 'met' : '**not met**');

/** The issue's four targets, evaluated on this report. */
export function targets(report: BenchReport): { name: string; value: string; met: boolean | undefined }[] {
  const out: { name: string; value: string; met: boolean | undefined }[] = [];
  const native = report.runtimes.find((r) => r.micro.defaultBackend === 'node');
  if (native) {
    const rows = native.micro.crypto as CryptoRow[];
    const ratios = ['ML-DSA-44', 'ML-DSA-65', 'ML-DSA-87'].map((a) => {
      const n = rows.find((r) => r.algorithm === a && r.backend === 'noble');
      const x = rows.find((r) => r.algorithm === a && r.backend === 'node');
      return n && x ? n.sign.meanMs / x.sign.meanMs : NaN;
    });
    out.push({
      name: `${native.label}: native selected automatically and signs >= 5x faster than noble`,
      value: `selected: ${native.micro.defaultBackend}; sign speed-up ${ratios.map((r) => `${fmt(r)}x`).join(' / ')} (ML-DSA-44 / 65 / 87)`,
      met: native.micro.defaultBackend === 'node' && ratios.every((r) => r >= 5),
    });
  } else {
    out.push({ name: 'Node 24: native signs >= 5x faster than noble', value: 'Node 24 not measured', met: undefined });
  }
  for (const r of report.runtimes) {
    const pm = r.micro.perMessage as PerMessage;
    const own = ownCost(pm);
    const native = pm.backend === 'node';
    out.push({
      name: `${r.label} (${pm.backend}): the message path's own cost per message${native ? ' <= 10% of bare sign + verify' : ''}`,
      value: `${fmt(own.us)} µs per request (the server's round: verify the request, sign the answer; verify path alone ${fmt(pm.verify.ownMeanUs)}, client sign path ${fmt(pm.sign.ownMeanUs)}) = ${pct(own.ofBare)} of bare sign + verify (${fmt(own.bareUs, 0)} µs)`,
      met: native ? own.ofBare <= 0.1 : undefined,
    });
  }
  for (const r of report.runtimes) {
    const pool = r.e2e.filter((e) => e.mode === 'pool');
    if (pool.length === 0 || !r.ceiling) continue;
    out.push({
      name: `${r.label}: signed throughput (default, worker pool) >= 85% of the bound 1 / (1/R_u + c/cores)`,
      value: pool.map((e) => `${e.framework} ${fmt(e.rps)} / ${fmt(e.boundRps)} = ${pct(e.ofBound)}`).join(', '),
      met: pool.every((e) => (e.ofBound ?? 0) >= 0.85),
    });
  }
  for (const r of report.runtimes) {
    const runs = r.e2e.filter((e) => e.mode === 'pool');
    if (runs.length === 0) continue;
    out.push({
      name: `${r.label} (default, worker pool): GET pqc/handshake p99 <= 50 ms while saturated`,
      value: runs.map((e) => `${e.framework} ${fmt(e.handshake.p99Ms)} ms`).join(', '),
      met: runs.every((e) => e.handshake.probes > 0 && e.handshake.p99Ms <= 50),
    });
  }
  return out;
}

export function renderMarkdown(report: BenchReport): string {
  const L: string[] = [];
  const m = report.machine;
  L.push(`# pqc-mcp benchmark (${report.mode})`, '');
  L.push(
    `${report.date.slice(0, 10)}, ${m.cpu}, ${m.cores} cores available, ${m.memoryGiB} GiB, ${m.os}; ` +
      `${report.runtimes.map((r) => `${r.label} (default backend \`${r.micro.defaultBackend}\`)`).join(' and ')}. ` +
      `Load average before/after: ${m.loadAverageBefore.join(' ')} / ${m.loadAverageAfter.join(' ')} (a shared machine: ` +
      `other work on it shows in every number). Everything below is from this one run (${report.seconds} s, \`pnpm bench${report.mode === 'quick' ? ' --quick' : ''}\`).`,
    '',
  );
  for (const note of report.notes) L.push(`> ${note}`, '');
  if (report.mode === 'quick') {
    L.push('> A quick run: short measurements and few samples (a signed run lasts under a second). Use it to check that everything runs; quote the full run (`pnpm bench`).', '');
  }

  L.push('## Targets', '', '| target | this run | |', '|---|---|---|');
  for (const t of targets(report)) L.push(`| ${t.name} | ${t.value} | ${mark(t.met)} |`);
  L.push('');

  L.push(
    '## 1. ML-DSA operations',
    '',
    'One thread, one operation at a time (the async API of each backend, as the protocol code calls it). ' +
      '`keygen` derives the key pair from a 32-byte seed and prepares it (for `node`: imports the PKCS#8 and exports the public key). ' +
      '`sign` signs a 32-byte digest with a context (hedged; its time varies with FIPS 204 rejection sampling, hence p99); `verify` checks it. ' +
      'ops/s = 1000 / mean ms.',
    '',
    '| runtime | algorithm | backend | keygen ops/s | sign ops/s | sign mean / p50 / p99 ms | verify ops/s | verify mean ms |',
    '|---|---|---|---:|---:|---:|---:|---:|',
  );
  for (const r of report.runtimes) {
    for (const row of r.micro.crypto as CryptoRow[]) {
      L.push(
        `| ${r.label} | ${row.algorithm} | ${row.backend} | ${fmt(row.keygen.opsPerSec, 0)} | ${fmt(row.sign.opsPerSec, 0)} | ` +
          `${fmt(row.sign.meanMs, 2)} / ${fmt(row.sign.p50Ms, 2)} / ${fmt(row.sign.p99Ms, 2)} | ${fmt(row.verify.opsPerSec, 0)} | ${fmt(row.verify.meanMs, 3)} |`,
      );
    }
  }
  L.push('');

  L.push(
    '## 2. Per-message cost against the bare operation',
    '',
    'A typical MCP `tools/call` request as the SDK v2 client sends it (2026-07-28 era; ML-DSA-65, profile v2; the signed text is shown in bytes) on the runtime\'s default backend. ' +
      '**sign**: `MessageSigner.signMessage` (canonical text, SHA3-256, sign, hex, wire text) against the backend\'s bare `sign` of a digest. ' +
      '**verify**: the server\'s path for one request, `createPQCHandler().handle` of its POST as a web `Request` in memory (session header, body read, lossless parse, ' +
      'envelope checks, pinned key, canonical text, SHA3-256, verify, nonce and liveness in the store, the request forwarded to an application that answers nothing to sign), ' +
      'against the bare `verify`; **verifyMessage**: `MessageSigner.verifyMessage` of the text (parse, envelope, key, verify; no store, no HTTP). ' +
      '**round**: the handler for a request the application answers (verify, then sign the answer) against bare sign + verify. ' +
      '**ratio** = path mean / bare mean, measured directly in interleaved blocks (noisy: signing time varies by itself, and JS run between native calls meets cold caches). ' +
      '**own** = the same path on a backend whose operations cost nothing, so what is left is our code alone; own ratio = (bare + own) / bare; ' +
      'the round\'s own µs (the server\'s whole message path per request: everything but the ML-DSA operations) is the target\'s "own cost". ' +
      '**parse / canonical**: `parseLossless` of the signed text and `canonicalJson` of the parsed message, alone.',
    '',
    '| runtime | backend | bytes | sign path / bare ms | sign ratio | own µs (ratio) | verify path / bare ms | verify ratio | own µs (ratio) | verifyMessage ratio (own µs) | round / bare ms (ratio) | parse / canonical µs |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const r of report.runtimes) {
    const p = r.micro.perMessage as PerMessage;
    L.push(
      `| ${r.label} | ${p.backend} | ${p.messageBytes} | ${fmt(p.sign.fullMeanMs, 3)} / ${fmt(p.sign.bareMeanMs, 3)} | ${fmt(p.sign.ratio, 3)} | ` +
        `${fmt(p.sign.ownMeanUs)} (${fmt(p.sign.ownRatio, 3)}) | ${fmt(p.verify.fullMeanMs, 3)} / ${fmt(p.verify.bareMeanMs, 3)} | ${fmt(p.verify.ratio, 3)} | ` +
        `${fmt(p.verify.ownMeanUs)} (${fmt(p.verify.ownRatio, 3)}) | ${fmt(p.verify.messageRatio, 3)} (${fmt(p.verify.messageOwnUs)}) | ` +
        `${fmt(p.round.meanMs, 3)} / ${fmt(p.round.bareMeanMs, 3)} (${fmt(p.round.ratio, 3)}); own ${fmt(p.round.ownMeanUs)} µs | ${fmt(p.json.parseMeanUs)} / ${fmt(p.json.canonicalMeanUs)} |`,
    );
  }
  L.push('');

  L.push(
    '## 3. End to end: signed tools/call round trips, against the bound',
    '',
    `The examples' Express, Fastify and Hono apps (examples/shared/*-app.ts) with the real MCP SDK v2 behind them (\`createMcpHandler\`), ` +
      `**stateless: the 2026-07-28 era**, every request a \`tools/call\` as the SDK v2 client sends it (its \`Mcp-Method\`/\`Mcp-Name\` headers, its ` +
      `\`_meta\`), JSON answers (\`responseMode: 'json'\`), Hono served by \`@hono/node-server\`. Each server is its own port of one server process per runtime. ` +
      `Load: autocannon over loopback, ${report.settings.connections} connections, pipelining 1, from a separate process ` +
      `(${report.runtimes[0]?.loadGenerator.node ?? ''}) on the same ${m.cores} cores. Signed runs send requests signed up front in one PQC session, ` +
      `each with its own nonce and id (one real call is first verified end to end by \`pqcFetch\`); the server verifies each and signs each answer. ` +
      `Each run: ${report.settings.warmupSec} s of warm-up, then ${report.settings.durationSec} s measured; ${report.settings.reps} run(s) of every server, ` +
      `in rounds, **the table shows medians** (every run is in latest.json). **req/s** = 2xx answers / seconds from the first ` +
      `request to the last answer (each run's in brackets); **p50/p99** = autocannon's response times. **mode**: unsigned = no PQC layer (**R_u**); signed = crypto on the server's ` +
      `backend on the event loop's thread or libuv's (\`cryptoPool: false\`); pool = crypto in worker threads (\`createWorkerPoolBackend\`, ` +
      `${report.runtimes[0]?.servers.pool.size ?? ''} workers: the default of every adapter on Node, \`cryptoPool: 'auto'\`). ` +
      `**bound** = 1 / (1/R_u + c/cores), c = bare sign + verify of ML-DSA-65 on the runtime's backend (section 1): the same app, plus the crypto ` +
      `spread over the cores, and nothing else. **of bound** = signed req/s ÷ bound. **residual** = 1/req/s − 1/bound, µs per request: what the ` +
      `signed run spent beyond the model (our message path, contention). **handshake**: \`GET /pqc/handshake\`, one at a time every 20 ms from ` +
      `another thread, during the signed load (medians of each run's p50 / p99, the largest max, all probes). **failed**: non-2xx answers, socket errors and failed probes.`,
    '',
    '| runtime | framework | mode | backend | req/s (runs) | p50 ms | p99 ms | bound req/s | of bound | residual µs | handshake p50 / p99 / max ms (probes) | failed |',
    '|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const r of report.runtimes) {
    for (const e of r.e2e) {
      const hs = e.mode === 'unsigned' ? '–' : `${fmt(e.handshake.p50Ms)} / ${fmt(e.handshake.p99Ms)} / ${fmt(e.handshake.maxMs)} (${e.handshake.probes})`;
      const runs = e.rpsRuns.length > 1 ? ` (${e.rpsRuns.map((x) => fmt(x, 0)).join(', ')})` : '';
      L.push(
        `| ${r.label} | ${e.framework} | ${e.mode} | ${e.backend ?? '–'} | ${fmt(e.rps)}${runs} | ${e.latencyP50Ms} | ${e.latencyP99Ms} | ` +
          `${fmt(e.boundRps)} | ${pct(e.ofBound)} | ${fmt(e.residualUs, 0)} | ${hs} | ${e.failed} |`,
      );
    }
    if (r.ceiling) {
      L.push(
        `| ${r.label} | c = sign + verify | | ${r.micro.defaultBackend} | cores ÷ c = ${fmt(r.ceiling.rps)} | | | | | | ` +
          `sign ${fmt(r.ceiling.signMs, 3)} + verify ${fmt(r.ceiling.verifyMs, 3)} ms | |`,
      );
    }
  }
  L.push('');

  const wireRuntime = report.runtimes.find((r) => r.micro.wire);
  if (wireRuntime) {
    L.push(
      '## 4. Bytes on the wire per message',
      '',
      'UTF-8 bytes of the JSON body (HTTP headers not counted): the tools/call request and its answer, unsigned and signed (profile v2; ' +
        'the answer carries `in_reply_to`); the `PQC-Envelope` header of a signed GET/DELETE; the handshake, once per session.',
      '',
      '| algorithm | signature | request unsigned → signed | answer unsigned → signed | GET envelope header | handshake request / response |',
      '|---|---:|---:|---:|---:|---:|',
    );
    for (const w of wireRuntime.micro.wire as WireRow[]) {
      L.push(
        `| ${w.algorithm} | ${w.signatureBytes} | ${w.request.unsigned} → ${w.request.signed} (+${w.request.signed - w.request.unsigned}) | ` +
          `${w.response.unsigned} → ${w.response.signed} (+${w.response.signed - w.response.unsigned}) | ${w.getHeader.bytes} | ${w.handshake.request} / ${w.handshake.response} |`,
      );
    }
    L.push('');
  }

  L.push(
    '## 5. Handshake while saturated',
    '',
    'The `handshake` columns of section 3: without the pool, noble signs on the event loop and a GET waits behind every signature in the queue; ' +
      'with the pool (or native node:crypto, whose async calls run in libuv\'s thread pool) the loop stays free.',
    '',
    'Regenerate: `npx -y pnpm@10 bench` (full) or `npx -y pnpm@10 bench --quick`.',
    '',
  );
  return L.join('\n');
}

/** bench/results/profile.md: the top self-time items of each signed server's main thread. */
export function renderProfile(report: BenchReport): string {
  const L: string[] = [];
  L.push(
    `# Where the signed server's main thread spends its time (${report.mode} run, ${report.date.slice(0, 10)})`,
    '',
    'Each framework\'s signed server with the worker pool (the default), alone in a process under V8\'s CPU profiler (from start-up done to exit: warm-up and load), loaded as in ' +
      'section 3 of latest.md. Only the main thread: ML-DSA runs in the pool\'s workers, so what is here is the HTTP server, the framework, the ' +
      'MCP SDK and our message path. **self** = time in the function itself (not its callees); share = of the busy time (idle excluded). ' +
      '**groups**: pqc-mcp = packages/*, dependency = node_modules (framework, SDK, noble\'s SHA3), node = Node\'s own JS, v8 = ' +
      'native, GC and program time.',
    '',
  );
  for (const r of report.runtimes) {
    for (const p of r.profiles ?? []) {
      const g = p.summary.groups;
      const perReq = (ms: number) => (p.requests > 0 ? fmt((ms * 1000) / p.requests, 0) : '–');
      L.push(
        `## ${r.label}, ${p.framework}: ${fmt(p.rps)} req/s, ${p.requests} requests`,
        '',
        `Busy ${fmt(p.summary.busyMs, 0)} of ${fmt(p.summary.totalMs, 0)} ms (${perReq(p.summary.busyMs)} µs per measured request: an upper bound, the warm-up's requests are profiled too): ` +
          `pqc-mcp ${fmt(g['pqc-mcp'], 0)} ms (${perReq(g['pqc-mcp'])} µs/request), dependencies ${fmt(g.dependency, 0)} ms, node ${fmt(g.node, 0)} ms, ` +
          `v8/GC ${fmt(g.v8, 0)} ms, bench ${fmt(g.bench, 0)} ms.`,
        '',
        '| self ms | share | group | function (file:line) |',
        '|---:|---:|---|---|',
      );
      for (const t of p.summary.top) L.push(`| ${fmt(t.selfMs)} | ${pct(t.share)} | ${t.group} | \`${t.item.replace(/\|/g, '\\|')}\` |`);
      L.push('');
    }
  }
  return L.join('\n');
}
