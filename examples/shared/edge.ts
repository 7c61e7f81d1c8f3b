/**
 * Building and running the edge worker (examples/edge-worker.ts) locally: an esbuild bundle for workerd (ESM,
 * platform neutral, no Node built-in), and the Miniflare options that run it with its two Durable Object classes.
 * Used by `pnpm example:edge` (examples/edge-serve.ts) and by the runtime tests (packages/edge-tests).
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type BuildOptions, type Metafile } from 'esbuild';
import type { MiniflareOptions } from 'miniflare';

/** The worker's entry module. */
export const EDGE_WORKER_ENTRY = fileURLToPath(new URL('../edge-worker.ts', import.meta.url));

/** The compatibility date the worker is run with (at most the date of the workerd that miniflare brings). */
export const EDGE_COMPATIBILITY_DATE = '2026-04-01';

/**
 * esbuild options for a bundle that runs on workerd and browsers: ESM, platform neutral (so a Node built-in import
 * fails the build instead of being left for the runtime), the workspace sources through the `@pqc-mcp/source`
 * condition, `cloudflare:*` left to the runtime.
 */
export function edgeBuildOptions(entryPoints: string[], outfile: string): BuildOptions {
  return {
    entryPoints,
    outfile,
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    target: 'es2022',
    mainFields: ['module', 'main'],
    conditions: ['@pqc-mcp/source', 'workerd', 'worker', 'browser', 'import'],
    external: ['cloudflare:*'],
    metafile: true,
    logLevel: 'silent',
    legalComments: 'none',
  };
}

/** Bundles the edge worker into `outfile`; resolves esbuild's metafile (imports left external included). */
export async function buildEdgeWorker(outfile: string): Promise<Metafile> {
  const result = await build(edgeBuildOptions([EDGE_WORKER_ENTRY], outfile));
  return result.metafile!;
}

/** What the worker is run with. */
export interface EdgeWorkerRun {
  /** The bundle made by `buildEdgeWorker`. */
  scriptPath: string;
  /** String bindings: `PQC_IDENTITY` (JWK text) and the optional `PQC_*` vars. */
  vars: Record<string, string>;
  /** Port on 127.0.0.1 (0: any free one). */
  port?: number;
  /** A folder to keep Durable Object storage in (default: in memory, gone with the Miniflare instance). */
  persistDir?: string;
}

/** Miniflare options for the worker: module syntax, the Durable Object class of the session store, SQLite-backed. */
export function edgeWorkerOptions(run: EdgeWorkerRun): MiniflareOptions {
  return {
    modules: true,
    scriptPath: run.scriptPath,
    modulesRoot: path.dirname(run.scriptPath),
    compatibilityDate: EDGE_COMPATIBILITY_DATE,
    host: '127.0.0.1',
    port: run.port ?? 0,
    bindings: run.vars,
    durableObjects: {
      PQC_SESSIONS: { className: 'PQCSessionStoreObject', useSQLite: true },
    },
    durableObjectsPersist: run.persistDir ?? false,
  };
}
