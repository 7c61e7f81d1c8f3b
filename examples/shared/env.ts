/**
 * What every example server reads from its environment, and how it says it is ready:
 *
 *   PORT            port on 127.0.0.1 (default 8080; 0 picks a free one)
 *   PQC_IDENTITY    identity file (JWK, `AgentIdentity.load`); default: a fresh identity
 *   PQC_PROFILES    accepted profiles: `v2` (default) or `v2,v1`
 *   PQC_JSON        `1`: answer POSTs with JSON instead of an SSE stream
 *
 * A server prints exactly one line on stdout once listening, `READY http://127.0.0.1:<port>/mcp <server DID>`,
 * and exits 0 on SIGINT or SIGTERM after closing.
 */
import { AgentIdentity, type Profile } from '@pqc-mcp/core';

/** The example server's settings. */
export interface ExampleEnv {
  identity: AgentIdentity;
  profiles: Profile[];
  port: number;
  enableJsonResponse: boolean;
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

/** Reads the environment (see the top of this file). `name` names a fresh identity. */
export async function readExampleEnv(name: string, env: NodeJS.ProcessEnv = process.env): Promise<ExampleEnv> {
  const identity = env.PQC_IDENTITY ? await AgentIdentity.load(env.PQC_IDENTITY) : AgentIdentity.create(name);
  return {
    identity,
    profiles: parseProfiles(env.PQC_PROFILES),
    port: parsePort(env.PORT),
    enableJsonResponse: env.PQC_JSON === '1',
  };
}

/** The one line a server prints on stdout once it listens. */
export function printReady(port: number, did: string, path = '/mcp'): void {
  process.stdout.write(`READY http://127.0.0.1:${port}${path} ${did}\n`);
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
