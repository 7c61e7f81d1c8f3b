/**
 * The gateway: a Node HTTP server in which every request goes through core's `createPQCHandler` (with the raw
 * request target, so core checks the `http.path` each client signed); a verified request is handed to the upstream
 * (`Upstream`: an HTTP MCP server or stdio MCP server processes), and core signs everything that comes back. Each
 * request's outcome comes from core's `onResult`, and is logged once its response has ended.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import {
  createPQCHandler,
  type AgentIdentity,
  type AuditSink,
  type PQCHandler,
  type PQCRequestContext,
  type PQCRequestResult,
  type PQCServerOptions,
  type Profile,
  type SessionStore,
} from '@pqc-mcp/core';
import { KEEP_ALIVE_TIMEOUT_MS, lingerOnUnreadBody, nodeRequestTarget, resolveCryptoPool, sendWebResponse, toWebRequest, type WorkerPoolBackend } from '@pqc-mcp/core/node';
import type { RequestLog } from '../log.js';
import { INTERNAL_ERROR, jsonRpcErrorResponse, type Upstream } from './upstream.js';

export { PEER_DID_HEADER } from './headers.js';
export type { Upstream } from './upstream.js';

/** How long a client may take to send a request, and to start the next one on a kept-alive connection. */
export interface GatewayTimeouts {
  /** The whole request, headers and body (Node's `requestTimeout`); never applies to a response being streamed. */
  requestMs: number;
  /** The request headers (Node's `headersTimeout`; at most `requestMs`). */
  headersMs: number;
  /** An idle kept-alive connection (Node's `keepAliveTimeout`). */
  keepAliveMs: number;
}

// Idle connections are kept longer than clients and proxies keep theirs (core's KEEP_ALIVE_TIMEOUT_MS, not Node's 5 s).
export const DEFAULT_TIMEOUTS: GatewayTimeouts = { requestMs: 30_000, headersMs: 20_000, keepAliveMs: KEEP_ALIVE_TIMEOUT_MS };

export interface GatewayOptions {
  upstream: Upstream;
  identity: AgentIdentity;
  host: string;
  port: number;
  /** The gateway's MCP endpoint path (default: core's). */
  path?: string;
  /** Client DIDs allowed to open a session (core's `authorize`; default: anyone with a valid handshake). */
  authorize?: readonly string[];
  /** The key rotation chain (core's `rotations`, §11): JSON text or records, ending at `identity`. */
  rotations?: PQCServerOptions['rotations'];
  profiles?: readonly Profile[];
  store?: SessionStore;
  sessionTtlSec?: number;
  maxBodyBytes?: number;
  /** Messages per batch (core's `maxBatch`). */
  maxBatch?: number;
  clockSkewSec?: number;
  /** Receives every audit entry (core's `audit`). */
  audit?: AuditSink;
  /** Receives one record per request when its response has ended. */
  onRequest?: (log: RequestLog) => void;
  timeouts?: GatewayTimeouts;
}

export interface RunningGateway {
  /** The gateway's MCP endpoint URL. */
  readonly url: string;
  readonly did: string;
  readonly server: Server;
  readonly handler: PQCHandler;
  /** Stops accepting, ends open streams, waits up to `graceMs` for requests in flight, then closes everything. */
  close(graceMs?: number): Promise<void>;
}

/** One request while it is served. */
interface InFlight {
  readonly abort: AbortController;
  /** A GET (a stream that may never end by itself): ended at once on shutdown. */
  readonly stream: boolean;
  readonly done: Promise<void>;
  /** Core's outcome, once it has one. */
  result?: PQCRequestResult;
  /** The gateway's own verdict, when it decided (not found, upstream error). */
  own?: { verdict: string; reason: string | null };
}

function verdictOf(flight: InFlight): { verdict: string; reason: string | null } {
  if (flight.own) return flight.own;
  const result = flight.result;
  if (!result) return { verdict: 'error', reason: null };
  const verified = result.kind === 'message' || result.kind === 'stream' || result.kind === 'end-mcp-session';
  return { verdict: verified ? 'verified' : result.kind, reason: result.reason };
}

/**
 * The response with a body that ends when `signal` aborts (the client went away, or the gateway stops), whatever the
 * upstream does: an open stream never outlives its client.
 */
function endOnAbort(response: Response, signal: AbortSignal): Response {
  const source = response.body;
  if (!source) return response;
  const reader = source.getReader();
  let onAbort: (() => void) | undefined;
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      onAbort = () => {
        reader.cancel().catch(() => {});
        try {
          controller.close();
        } catch {
          // already closed
        }
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    },
    async pull(controller) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch (err) {
        if (!signal.aborted) controller.error(err);
        return;
      }
      if (signal.aborted) return; // closed by onAbort already
      if (chunk.done) {
        signal.removeEventListener('abort', onAbort!);
        controller.close();
      } else {
        controller.enqueue(chunk.value);
      }
    },
    cancel(reason) {
      signal.removeEventListener('abort', onAbort!);
      return reader.cancel(reason);
    },
  });
  return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
}

function shownHost(address: AddressInfo): string {
  if (address.address === '0.0.0.0') return '127.0.0.1';
  if (address.address === '::') return '[::1]';
  return address.family === 'IPv6' ? `[${address.address}]` : address.address;
}

/** The log record of a request whose response has ended (or whose client went away). */
function requestLog(req: IncomingMessage, res: ServerResponse, flight: InFlight, time: string, started: number): RequestLog {
  const { verdict, reason } = verdictOf(flight);
  const result = flight.result;
  return {
    time,
    http_method: req.method ?? 'GET',
    path: (req.url ?? '/').split('?', 1)[0]!,
    rpc_method: result && result.methods.length > 0 ? [...new Set(result.methods)].join(',') : null,
    peer_did: result?.peerDid ?? null,
    verdict,
    reason,
    // 0: nothing was sent (the client went away, or took longer than the request timeout).
    status: res.headersSent ? res.statusCode : 0,
    latency_ms: Math.round((performance.now() - started) * 10) / 10,
    signed: result?.signed ?? 0,
    aborted: !res.writableFinished,
  };
}

/** Resolves once `server` listens on `port` and `host`; rejects with the listen error (a port in use). */
function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/**
 * Stops accepting, ends open streams at once, waits up to `graceMs` for the other requests in flight, then cuts what
 * is left.
 */
async function drain(server: Server, inFlight: ReadonlySet<InFlight>, graceMs: number): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  for (const flight of inFlight) if (flight.stream) flight.abort.abort();
  let timer: NodeJS.Timeout | undefined;
  const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
  await Promise.race([Promise.all([...inFlight].map((f) => f.done)), grace]);
  clearTimeout(timer);
  for (const flight of inFlight) flight.abort.abort();
  server.closeAllConnections();
  await closed;
}

/** Starts the gateway; resolves once it listens. */
export async function startGateway(options: GatewayOptions): Promise<RunningGateway> {
  const { upstream } = options;
  const flights = new WeakMap<Request, InFlight>();
  const inFlight = new Set<InFlight>();

  const pqcOptions = resolveCryptoPool({
      identity: options.identity,
      endpoint: options.path,
      profiles: options.profiles,
      authorize: options.authorize && options.authorize.length > 0 ? options.authorize : undefined,
      rotations: options.rotations,
      store: options.store,
      sessionTtlSec: options.sessionTtlSec,
      maxBodyBytes: options.maxBodyBytes,
      maxBatch: options.maxBatch,
      clockSkewSec: options.clockSkewSec,
      audit: options.audit,
      onResult: (result, request) => {
        const flight = flights.get(request);
        if (flight) flight.result = result;
      },
    });
  const handler = createPQCHandler(pqcOptions);
  // The crypto workers start now, not on the first client's request (which would wait for them).
  const backend = pqcOptions.backend as Partial<WorkerPoolBackend> | undefined;
  if (typeof backend?.warmup === 'function') await backend.warmup();
  const endpoint = handler.options.endpoints[0]!;

  /** The application behind core: the upstream for verified requests; nothing unverified goes there. */
  function next(req: IncomingMessage, flight: InFlight, request: Request, parsedBody: unknown, context: PQCRequestContext | undefined): Promise<Response> {
    if (!context) {
      flight.own = { verdict: 'not_found', reason: null };
      return Promise.resolve(
        Response.json({ error: `not found: this gateway serves ${endpoint} and ${handler.options.handshakePath}` }, { status: 404 }),
      );
    }
    const answer = upstream.serve(request, parsedBody, context, {
      target: nodeRequestTarget(req),
      remoteAddress: req.socket.remoteAddress,
      host: req.headers.host,
      signal: flight.abort.signal,
      report: (verdict, reason) => {
        flight.own = { verdict, reason };
      },
    });
    return answer.then((response) => endOnAbort(response, flight.abort.signal));
  }

  async function serve(req: IncomingMessage, res: ServerResponse, flight: InFlight): Promise<void> {
    const request = toWebRequest(req);
    flights.set(request, flight);
    let ranApp = false;
    let response: Response;
    try {
      response = await handler.handle(
        request,
        (forwarded, parsedBody, context) => {
          ranApp = true;
          return next(req, flight, forwarded, parsedBody, context);
        },
        { target: nodeRequestTarget(req), routedPath: new URL(request.url).pathname },
      );
    } catch {
      flight.own = { verdict: 'error', reason: 'internal' };
      response = jsonRpcErrorResponse(500, null, INTERNAL_ERROR, 'Internal error in the gateway');
    }
    // Answered without reading the whole body: drop the rest while it arrives, set up before the answer is written so
    // the close that follows is a half close and the client reads the answer (core's node glue does the same).
    if (!ranApp) lingerOnUnreadBody(req);
    await sendWebResponse(res, response);
  }

  const timeouts = options.timeouts ?? DEFAULT_TIMEOUTS;
  const server = createServer(
    {
      requestTimeout: timeouts.requestMs,
      headersTimeout: Math.min(timeouts.headersMs, timeouts.requestMs),
      keepAliveTimeout: timeouts.keepAliveMs,
      // How often Node looks for requests past their timeouts: a fraction of the shortest one.
      connectionsCheckingInterval: Math.max(250, Math.min(5_000, Math.floor(Math.min(timeouts.headersMs, timeouts.requestMs) / 4))),
    },
    (req, res) => {
      const started = performance.now();
      const time = new Date().toISOString();
      let finish!: () => void;
      const flight: InFlight = {
        abort: new AbortController(),
        stream: req.method === 'GET',
        done: new Promise<void>((resolve) => (finish = resolve)),
      };
      inFlight.add(flight);
      res.once('close', () => {
        // The response ended, or the client went away: stop reading from the upstream either way.
        flight.abort.abort();
        inFlight.delete(flight);
        options.onRequest?.(requestLog(req, res, flight, time, started));
        finish();
      });
      serve(req, res, flight).catch(() => {
        flight.own = { verdict: 'error', reason: 'internal' };
        if (!res.headersSent) {
          res.writeHead(500, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: INTERNAL_ERROR, message: 'Internal error in the gateway' } }));
        } else {
          res.destroy();
        }
      });
    },
  );

  await listen(server, options.port, options.host);
  const address = server.address() as AddressInfo;
  const url = `http://${shownHost(address)}:${address.port}${endpoint}`;

  let closing: Promise<void> | undefined;
  return {
    url,
    did: handler.identity.did,
    server,
    handler,
    close(graceMs = 5000) {
      closing ??= (async () => {
        await drain(server, inFlight, graceMs);
        await upstream.close();
        await options.store?.close?.();
      })();
      return closing;
    },
  };
}
