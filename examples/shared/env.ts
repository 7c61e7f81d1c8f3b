/**
 * What every example server reads from its environment, and how it says it is ready:
 *
 *   PORT            port on 127.0.0.1 (default 8080; 0 picks a free one)
 *   PQC_IDENTITY    identity file (JWK, `AgentIdentity.load`); default: a fresh identity
 *   PQC_PROFILES    accepted profiles: `v2` (default) or `v2,v1`
 *   PQC_JSON        `1`: answer 2026-07-28 requests with JSON, never SSE (the 2025-11-25 era always streams)
 *   PQC_AUTHORIZED_DIDS  comma-separated client DIDs allowed to open a session (default: anyone)
 *   PQC_MAX_BODY_BYTES   bound on a request body (default 4 MiB)
 *   PQC_MAX_BATCH        bound on the messages of a JSON-RPC batch (default 50)
 *   PQC_SESSION_TTL_SEC  session lifetime in seconds (default 3600)
 *   PQC_REDIS_URL   share sessions and nonces with other instances through Redis (`storeFromEnv` of @pqc-mcp/redis;
 *                   PQC_REDIS_PREFIX sets the key prefix); Node servers only
 *
 * A server prints exactly one line on stdout once listening, `READY http://127.0.0.1:<port>/mcp <server DID>`,
 * and exits 0 on SIGINT or SIGTERM after closing.
 */
import { AgentIdentity, detectBackends, type Profile } from '@pqc-mcp/core';

/** The PQC options an example server takes from its environment besides the identity (see the top of this file). */
export interface ExampleLimits {
  authorize?: string[];
  maxBodyBytes?: number;
  maxBatch?: number;
  sessionTtlSec?: number;
}

/** The example server's settings. */
export interface ExampleEnv {
  identity: AgentIdentity;
  profiles: Profile[];
  port: number;
  /** How the 2026-07-28 era answers (PQC_JSON=1: `'json'`; else `'auto'`). */
  responseMode: 'json' | 'auto';
  /** Spread into the PQC options: `pqc({ identity, profiles, ...limits })`. */
  limits: ExampleLimits;
}

function parseProfiles(value: string | undefined): Profile[] {
  if (value === undefined || value.trim() === '') return [2];
  const profiles = value.split(',').map((p) => {
    const name = p.trim().toLowerCase();
    if (name === 'v2' || name === '2') return 2 as const;
    if (name === 'v1' || name === '1') return 1 as const;
    throw new Error(`PQC_PROFILES: unknown profile "${p}" (use v2 or v2,v1)`);
  });
  return [...new Set(profiles)];
}

function parsePort(value: string | undefined): number {
  if (value === undefined || value === '') return 8080;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`PORT: not a port number: ${value}`);
  return port;
}

function positiveEnvNumber(vars: Record<string, string | undefined>, name: string): number | undefined {
  const value = vars[name];
  if (value === undefined || value.trim() === '') return undefined;
  const n = Number(value);
  if (!(n > 0) || !Number.isFinite(n)) throw new Error(`${name}: not a positive number: ${value}`);
  return n;
}

/**
 * The PQC limits of the environment (`PQC_AUTHORIZED_DIDS`, `PQC_MAX_BODY_BYTES`, `PQC_MAX_BATCH`,
 * `PQC_SESSION_TTL_SEC`); plain strings in, so a Worker reads its bindings with it too. Unset ones are left out (the
 * core defaults apply).
 */
export function readLimits(vars: Record<string, string | undefined>): ExampleLimits {
  const limits: ExampleLimits = {};
  const dids = vars.PQC_AUTHORIZED_DIDS;
  if (dids !== undefined && dids.trim() !== '') limits.authorize = dids.split(',').map((d) => d.trim()).filter((d) => d !== '');
  const maxBodyBytes = positiveEnvNumber(vars, 'PQC_MAX_BODY_BYTES');
  if (maxBodyBytes !== undefined) limits.maxBodyBytes = maxBodyBytes;
  const maxBatch = positiveEnvNumber(vars, 'PQC_MAX_BATCH');
  if (maxBatch !== undefined) limits.maxBatch = maxBatch;
  const sessionTtlSec = positiveEnvNumber(vars, 'PQC_SESSION_TTL_SEC');
  if (sessionTtlSec !== undefined) limits.sessionTtlSec = sessionTtlSec;
  return limits;
}

/** The accepted profiles of a `PQC_PROFILES` value (`v2` when unset). */
export function readProfiles(value: string | undefined): Profile[] {
  return parseProfiles(value);
}

/**
 * Reads the environment (see the top of this file). `name` names a fresh identity. Backend detection is finished
 * first, so the identity signs with the fastest ML-DSA of the runtime (WebCrypto on Bun).
 */
export async function readExampleEnv(name: string, env: NodeJS.ProcessEnv = process.env): Promise<ExampleEnv> {
  await detectBackends();
  const identity = env.PQC_IDENTITY ? await AgentIdentity.load(env.PQC_IDENTITY) : AgentIdentity.create(name);
  return {
    identity,
    profiles: parseProfiles(env.PQC_PROFILES),
    port: parsePort(env.PORT),
    responseMode: env.PQC_JSON === '1' ? 'json' : 'auto',
    limits: readLimits(env),
  };
}

/** The one line a server prints on stdout once it listens. */
export function printReady(port: number, did: string, path = '/mcp'): void {
  process.stdout.write(`READY http://127.0.0.1:${port}${path} ${did}\n`);
}

/** The JavaScript runtime running this process, e.g. `node 20.20.2`, `bun 1.4.5`, `deno 2.9.6`. */
export function runtimeName(): string {
  const versions = (globalThis as { process?: { versions?: Record<string, string | undefined> } }).process?.versions ?? {};
  for (const name of ['bun', 'deno', 'node'] as const) {
    if (versions[name]) return `${name} ${versions[name]}`;
  }
  return 'unknown runtime';
}

/** Says on stderr which ML-DSA backend signs (stdout keeps its one READY line). */
export function printBackend(backend: string, runtime = runtimeName()): void {
  process.stderr.write(`PQC backend: ${backend} (${runtime})\n`);
}

/** Runs `close` on SIGINT or SIGTERM, then exits 0 (1 if closing failed). */
export function onShutdown(close: () => Promise<void> | void): void {
  let closing = false;
  const stop = () => {
    if (closing) return;
    closing = true;
    Promise.resolve()
      .then(close)
      .then(
        () => process.exit(0),
        (err: unknown) => {
          console.error(err);
          process.exit(1);
        },
      );
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
