/**
 * Test helpers: run the real binary (`packages/cli/dist/index.js`, built by global-setup.ts), an unmodified MCP SDK
 * server on node:http (no PQC) for the gateway, and a PQC server (the core on node:http) for the bridge and `call`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { AgentIdentity, createPQCHandler, type PQCServerOptions } from '@pqc-mcp/core';
import { nodeRequestTarget, sendWebResponse, toWebRequest } from '@pqc-mcp/core/node';
import { conformancePeers, createWebMcpApp1x, slowTool, type SuiteTools } from '@pqc-mcp/test-kit';
export { seededIdentity } from '@pqc-mcp/test-kit';

export const ROOT = join(__dirname, '..', '..', '..');
export const BIN = join(ROOT, 'packages', 'cli', 'dist', 'index.js');

/**
 * The MCP project's reference server, `@modelcontextprotocol/server-everything` from npm (a devDependency), run
 * with node from node_modules: no network. As an `--upstream-command` value.
 */
export const EVERYTHING = join(dirname(createRequire(__filename).resolve('@modelcontextprotocol/server-everything/package.json')), 'dist', 'index.js');
export const EVERYTHING_COMMAND = `${JSON.stringify(process.execPath)} ${JSON.stringify(EVERYTHING)} stdio`;

/** server-everything's tools, as the test kit's suites call them. */
export const EVERYTHING_TOOLS: SuiteTools = {
  listed: ['echo', 'get-sum', 'trigger-long-running-operation'],
  exact: false,
  echo: { name: 'echo', arg: 'message', result: (text) => `Echo: ${text}` },
  add: { name: 'get-sum', a: 'a', b: 'b', result: (a, b) => `The sum of ${a} and ${b} is ${a + b}.` },
};



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
export function startGatewayProcess(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<GatewayProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'gateway', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let stdout = '';
    let stderr = '';
    let ready = false;
    const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`gateway not ready after 20 s\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, 20_000);
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

/** The 1.x app of the test kit (stateful, `echo`, `add`, `whoami`), with `slow(steps)` when asked. */
export function createTestMcpApp(options: { json: boolean; slowTool?: boolean }): WebMcpApp {
  return createWebMcpApp1x({ enableJsonResponse: options.json, extraTools: options.slowTool ? slowTool : undefined });
}

/** What a plain upstream saw: every request's method and headers, every parsed POST body. */
export interface PlainUpstream {
  url: string;
  seen: unknown[];
  requests: { method: string; url: string; headers: IncomingHttpHeaders }[];
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
      requests.push({ method: req.method ?? 'GET', url: req.url ?? '/', headers: { ...req.headers } });
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
      const request = toWebRequest(req, req.method === 'GET' || req.method === 'HEAD' ? undefined : new Uint8Array(body));
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
      .handle(
        toWebRequest(req),
        (request, body) => {
          if (body !== undefined) seen.push(body);
          return app(request, body);
        },
        { target: nodeRequestTarget(req) },
      )
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

/** The test kit's server options as gateway flags; an option the gateway has no flag for fails loudly. */
export function gatewayFlags(pqc: PQCServerOptions): string[] {
  const flags: string[] = [];
  for (const [key, value] of Object.entries(pqc)) {
    if (value === undefined) continue;
    switch (key) {
      case 'identity':
        break;
      case 'maxBodyBytes':
        flags.push('--max-body', String(value));
        break;
      case 'maxBatch':
        flags.push('--max-batch', String(value));
        break;
      case 'sessionTtlSec':
        flags.push('--session-ttl', String(value));
        break;
      case 'clockSkewSec':
        flags.push('--clock-skew', String(value));
        break;
      case 'maxSessionsPerClient':
        if (value !== 16) throw new Error('the gateway takes core\'s default maxSessionsPerClient (16) only');
        break;
      case 'profiles':
        flags.push('--profiles', (value as number[]).map((p) => `v${p}`).join(','));
        break;
      case 'authorize': {
        // The gateway takes a list of DIDs: the same decision, made for every client the suites connect with.
        const authorize = value as (peer: unknown) => boolean;
        for (const peer of conformancePeers()) if (authorize(peer.toPeer())) flags.push('--allow', peer.did);
        break;
      }
      default:
        throw new Error(`the gateway has no flag for the suite's option ${key}`);
    }
  }
  return flags;
}

/**
 * A v1 (`pqc-mcp-transport`) peer's application: plain JSON-RPC without initialize, one JSON answer; `tools/list`
 * names one tool, `shout(text)`, whose result is `{"content": <the text in capitals>}`, as that peer answers.
 */
export function createV1PeerApp(): WebMcpApp {
  return async (_request, body) => {
    const { id, method, params } = body as { id: number; method: string; params?: { name?: string; arguments?: { text?: string } } };
    if (method === 'tools/list') return Response.json({ jsonrpc: '2.0', id, result: { tools: [{ name: 'shout', inputSchema: { type: 'object' } }] } });
    if (method === 'tools/call' && params?.name === 'shout') return Response.json({ jsonrpc: '2.0', id, result: { content: String(params.arguments?.text).toUpperCase() } });
    return Response.json({ jsonrpc: '2.0', id, error: { code: -32601, message: `no such method ${method}` } });
  };
}
