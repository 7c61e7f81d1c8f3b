/**
 * Test helpers: run the real binary (`packages/cli/dist/index.js`, built by global-setup.ts), an unmodified MCP SDK
 * server on node:http (no PQC) for the gateway, and a PQC server (the core on node:http) for the bridge and `call`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import { AgentIdentity, createPQCHandler, type PQCServerOptions } from '@pqc-mcp/core';
import { sendWebResponse, toWebRequest } from '@pqc-mcp/core/node';
import { z } from 'zod';
import { createToolServer } from '../../../examples/shared/tools.js';

export const ROOT = join(__dirname, '..', '..', '..');
export const BIN = join(ROOT, 'packages', 'cli', 'dist', 'index.js');

/** Fixed-seed identities: failures must reproduce. */
export function seededIdentity(byte: number, name = `agent-${byte}`): AgentIdentity {
  return AgentIdentity.fromSeed(new Uint8Array(32).fill(byte), { name });
}

/** A fresh temporary directory, removed by `cleanup()`. */
export function tempDir(): { dir: string; path(name: string): string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'pqc-mcp-cli-'));
  return { dir, path: (name) => join(dir, name), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Writes an identity file (with the seed, mode 0600) and returns its path. */
export async function writeIdentity(identity: AgentIdentity, path: string): Promise<string> {
  await identity.save(path);
  return path;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `pqc-mcp ARGS` to completion. */
export function runCli(args: string[], options: { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 20_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    if (options.input !== undefined) child.stdin.end(options.input);
    else child.stdin.end();
  });
}

/** A clean CLI error: one `pqc-mcp: error:` line, no stack trace. */
export function expectCleanError(result: RunResult, code: number, message?: RegExp): void {
  expect({ code: result.code, stderr: result.stderr }).toEqual({ code, stderr: expect.stringMatching(/^pqc-mcp: error: /m) });
  expect(result.stderr).not.toMatch(/\n\s+at .+\(?.*:\d+:\d+\)?/);
  expect(result.stderr).not.toMatch(/TypeError|ReferenceError|node:internal/);
  if (message) expect(result.stderr).toMatch(message);
}

/** A long-running `pqc-mcp gateway` process. */
export interface GatewayProcess {
  child: ChildProcess;
  /** The MCP endpoint from the READY line. */
  url: string;
  /** The gateway's DID from the READY line. */
  did: string;
  stdout(): string;
  stderr(): string;
  /** Sends `signal` and resolves the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts `pqc-mcp gateway ARGS` and waits for its READY line. */
export function startGatewayProcess(args: string[]): Promise<GatewayProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'gateway', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let ready = false;
    const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`gateway not ready after 15 s\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, 15_000);
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      const match = /^READY (\S+) (\S+)$/m.exec(stdout);
      if (match && !ready) {
        ready = true;
        clearTimeout(timer);
        resolve({
          child,
          url: match[1]!,
          did: match[2]!,
          stdout: () => stdout,
          stderr: () => stderr,
          stop: (signal = 'SIGTERM') => {
            if (child.exitCode === null && child.signalCode === null) child.kill(signal);
            return exited;
          },
        });
      }
    });
    child.on('exit', (code) => {
      if (!ready) {
        clearTimeout(timer);
        reject(new Error(`gateway exited with ${code} before READY\nstderr: ${stderr}`));
      }
    });
  });
}

/** A web-standard MCP app: `(request, parsedBody) => Response`. */
export type WebMcpApp = (request: Request, parsedBody?: unknown) => Promise<Response>;

/**
 * The examples' tool server (echo, add) plus `slow(steps)`, which reports progress every 300 ms before answering
 * (to see that SSE is streamed, not buffered), served statefully over the SDK's web-standard transport.
 */
export function createTestMcpApp(options: { json: boolean; slowTool?: boolean }): WebMcpApp {
  const transports = new Map<string, WebStandardStreamableHTTPServerTransport>();
  return async (request, parsedBody) => {
    const sessionId = request.headers.get('mcp-session-id');
    let transport = sessionId ? transports.get(sessionId) : undefined;
    if (!transport) {
      if (request.method !== 'POST' || sessionId || !isInitializeRequest(parsedBody)) {
        return Response.json({ jsonrpc: '2.0', id: null, error: { code: -32000, message: 'Bad Request: no valid session' } }, { status: 400 });
      }
      const created = new WebStandardStreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        enableJsonResponse: options.json,
        onsessioninitialized: (id) => void transports.set(id, created),
        onsessionclosed: (id) => void transports.delete(id),
      });
      const server = createToolServer();
      if (options.slowTool) {
        server.registerTool('slow', { description: 'Reports progress, then answers', inputSchema: { steps: z.number() } }, async ({ steps }, extra) => {
          const token = extra._meta?.progressToken;
          for (let i = 1; i <= steps; i++) {
            if (token !== undefined) {
              await extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress: i, total: steps } });
            }
            await new Promise((r) => setTimeout(r, 300));
          }
          return { content: [{ type: 'text', text: `done after ${steps} steps` }] };
        });
      }
      await server.connect(created);
      transport = created;
    }
    return transport.handleRequest(request, { parsedBody });
  };
}

/** What a plain upstream saw: every request's method and headers, every parsed POST body. */
export interface PlainUpstream {
  url: string;
  seen: unknown[];
  requests: { method: string; headers: IncomingHttpHeaders }[];
  close(): Promise<void>;
}

function listen(server: Server): Promise<string> {
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`));
  });
}

function closer(server: Server): () => Promise<void> {
  return () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
}

/** An unmodified MCP SDK server on node:http: no PQC anywhere. */
export async function startPlainUpstream(app: WebMcpApp, path = '/mcp'): Promise<PlainUpstream> {
  const seen: unknown[] = [];
  const requests: PlainUpstream['requests'] = [];
  const server = createServer((req, res) => {
    void (async () => {
      requests.push({ method: req.method ?? 'GET', headers: { ...req.headers } });
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const body = Buffer.concat(chunks);
      let parsed: unknown;
      if (req.method === 'POST') {
        try {
          parsed = JSON.parse(body.toString('utf8'));
          seen.push(parsed);
        } catch {
          parsed = undefined;
        }
      }
      const request = toWebRequest(req, { body: req.method === 'GET' || req.method === 'HEAD' ? undefined : new Uint8Array(body) });
      await sendWebResponse(res, await app(request, parsed));
    })().catch((err: unknown) => {
      res.statusCode = 500;
      res.end(String(err));
    });
  });
  const origin = await listen(server);
  return { url: origin + path, seen, requests, close: closer(server) };
}

/** A PQC-secured MCP server in this process: the core on node:http, like packages/core/test/node-http.test.ts. */
export async function startPqcServer(
  app: WebMcpApp,
  pqc: PQCServerOptions,
  /** Rewrites the signed response bytes on the way out (a man in the middle, for tests of what clients refuse). */
  tamper?: (text: string) => string,
): Promise<{ url: string; seen: unknown[]; close(): Promise<void> }> {
  const handler = createPQCHandler(pqc);
  const seen: unknown[] = [];
  const server = createServer((req, res) => {
    handler
      .handle(toWebRequest(req), (request, body) => {
        if (body !== undefined) seen.push(body);
        return app(request, body);
      })
      .then((response) => {
        if (!tamper || !response.body) return response;
        const decoder = new TextDecoder();
        const encoder = new TextEncoder();
        const body = response.body.pipeThrough(
          new TransformStream<Uint8Array, Uint8Array>({
            transform: (chunk, controller) => controller.enqueue(encoder.encode(tamper(decoder.decode(chunk, { stream: true })))),
          }),
        );
        return new Response(body, { status: response.status, headers: response.headers });
      })
      .then((response) => sendWebResponse(res, response))
      .catch((err: unknown) => {
        res.statusCode = 500;
        res.end(String(err));
      });
  });
  const origin = await listen(server);
  return { url: `${origin}/mcp`, seen, close: closer(server) };
}

/** A port nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  const origin = await listen(server);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return Number(new URL(origin).port);
}
