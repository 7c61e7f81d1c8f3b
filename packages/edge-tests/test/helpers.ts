/**
 * Starting servers in other processes for the conformance suite: the Hono example under Node, Bun and Deno, the
 * edge worker under workerd (miniflare). The suite's options are handed over the way a deployment would set them:
 * the identity as a JWK (file or secret), the limits as `PQC_*` variables, and `authorize` as the list of DIDs it
 * admits among the suite's clients.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { StartOptions } from '@pqc-mcp/test-kit';
import { CONFORMANCE_SERVER_IDENTITY, conformancePeers } from '@pqc-mcp/test-kit';
import { ROOT, bin } from './bins.js';

export { ROOT, bin };

/**
 * The `PQC_*` variables (and `PQC_JSON`) for what the suite asks of a server; throws for what a remote server cannot
 * be given: an option it has no variable for, another identity, or an MCP SDK other than v2 (the example servers
 * serve the SDK v2 handler only).
 */
export async function serverVars({ json, pqc, sdk }: StartOptions): Promise<Record<string, string>> {
  if (sdk !== undefined && sdk !== 'v2') throw new Error(`a remote server serves the MCP SDK v2 only, not ${sdk}`);
  return { ...(json ? { PQC_JSON: '1' } : {}), ...(await pqcVars(pqc)) };
}

/** The `PQC_*` variables for the suite's PQC options; throws for an option a remote server cannot be given. */
async function pqcVars(pqc: StartOptions['pqc']): Promise<Record<string, string>> {
  const { identity, maxBodyBytes, maxBatch, sessionTtlSec, authorize, ...rest } = pqc;
  const unknown = Object.keys(rest).filter((k) => (rest as Record<string, unknown>)[k] !== undefined);
  if (unknown.length > 0) throw new Error(`a remote server cannot be given ${unknown.join(', ')}`);
  if (identity.did !== CONFORMANCE_SERVER_IDENTITY.did) throw new Error('a remote server is started with the suite identity only');
  const vars: Record<string, string> = {};
  if (maxBodyBytes !== undefined) vars.PQC_MAX_BODY_BYTES = String(maxBodyBytes);
  if (maxBatch !== undefined) vars.PQC_MAX_BATCH = String(maxBatch);
  if (sessionTtlSec !== undefined) vars.PQC_SESSION_TTL_SEC = String(sessionTtlSec);
  if (authorize !== undefined) {
    const allowed: string[] = [];
    for (const peer of conformancePeers()) {
      const ok =
        typeof authorize === 'function' ? await authorize(peer.toPeer()) : 'authorize' in authorize ? await authorize.authorize(peer.toPeer()) : authorize.includes(peer.did);
      if (ok === true) allowed.push(peer.did);
    }
    vars.PQC_AUTHORIZED_DIDS = allowed.join(',');
  }
  return vars;
}

/** The JWK text of the suite's server identity (the worker's secret, the file of the example servers). */
export function serverJwkText(): string {
  return JSON.stringify(CONFORMANCE_SERVER_IDENTITY.toJwk({ includePrivate: true }));
}

/** A server process that printed its READY line. */
export interface SpawnedServer {
  url: string;
  did: string;
  /** What it wrote on stderr so far (the `PQC backend:` line among it). */
  stderr(): string;
  close(): Promise<void>;
}

/**
 * Runs `command args` with `env`, waits for `READY <url> <did>` on stdout (rejects if the process exits first or
 * after `timeoutMs`), and stops it with SIGTERM on close (SIGKILL if it lingers).
 */
export function spawnServer(command: string, args: string[], env: Record<string, string>, timeoutMs = 30_000): Promise<SpawnedServer> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(command, args, {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: '1', DENO_NO_UPDATE_CHECK: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group: npm-style `.bin` shims run the runtime as a child of `sh`, and the group takes both.
      detached: true,
    });
    let stdout = '';
    let stderr = '';
    let done = false;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    const signal = (name: NodeJS.Signals) => {
      try {
        process.kill(-child.pid!, name);
      } catch {
        // the group is gone already
      }
    };
    const close = async () => {
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
        signal('SIGTERM');
        const timer = setTimeout(() => signal('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
      signal('SIGKILL'); // anything of the group still there (a shim's child that ignored SIGTERM)
      // The pipes can outlive the process (a runtime's helper may hold them): let go of them.
      child.stdout?.destroy();
      child.stderr?.destroy();
    };
    const fail = (message: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      void close();
      reject(new Error(`${message}\n$ ${command} ${args.join(' ')}\nstdout: ${stdout}\nstderr: ${stderr}`));
    };
    const timer = setTimeout(() => fail(`no READY line within ${timeoutMs} ms`), timeoutMs);
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
    });
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
      const match = /^READY (\S+) (did:pqaid:[0-9a-f]{64})$/m.exec(stdout);
      if (match && !done) {
        done = true;
        clearTimeout(timer);
        resolve({ url: match[1]!, did: match[2]!, stderr: () => stderr, close });
      }
    });
    child.once('error', (err) => fail(`could not start: ${err.message}`));
    child.once('exit', (code, signal) => fail(`exited with ${code ?? signal} before READY`));
  });
}

/** A temporary folder, removed by the returned function. */
export async function tempDir(prefix: string): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** Writes the suite's server identity file into `dir`; resolves its path. */
export async function writeServerIdentity(dir: string): Promise<string> {
  const file = path.join(dir, 'server.json');
  await writeFile(file, serverJwkText(), { mode: 0o600 });
  return file;
}
