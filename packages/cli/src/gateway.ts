/**
 * The gateway: a reverse proxy that terminates PQC in front of an unmodified MCP server. All protocol work is the
 * core's `createPQCHandler`; the gateway's `next` forwards the verified, stripped request to the upstream with
 * `fetch` and hands back the upstream's `Response` as it streams, which the core signs message by message.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import {
  AuditLog,
  createPQCHandler,
  type AgentIdentity,
  type AuditEntry,
  type PQCHandler,
  type PQCRequestContext,
  type Profile,
  type SessionStore,
} from '@pqc-mcp/core';
import { sendWebResponse, toWebRequest } from '@pqc-mcp/core/node';

/** The header that tells the upstream which client the gateway verified (any value a client sends is dropped). */
export const PEER_DID_HEADER = 'pqc-peer-did';

/** Hop-by-hop headers (RFC 9110 §7.6.1), never forwarded in either direction. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Request headers the gateway recomputes or consumes itself. */
const REQUEST_DROP = new Set(['host', 'content-length', 'expect', 'pqc-envelope', PEER_DID_HEADER]);
/** Response headers that describe bytes `fetch` has already decoded. */
const RESPONSE_DROP = new Set(['content-length', 'content-encoding']);

/** One request's outcome, for the log line. */
export interface RequestLog {
  time: string;
  http_method: string;
  path: string;
  /** JSON-RPC method(s) of the request, comma-separated for a batch; null for a bodyless request or a response. */
  rpc_method: string | null;
  peer_did: string | null;
  /** `verified`, `handshake`, `rejected`, `upstream_error`, `not_found`, `info` (GET pqc/handshake), `passed` (OPTIONS), `refused` (405). */
  verdict: string;
  /** The PQC reason of a rejection, or the upstream error. */
  reason: string | null;
  status: number;
  latency_ms: number;
  /** Messages the gateway signed on the way back. */
  signed: number;
  /** True when the client went away before the response ended. */
  aborted: boolean;
}

export interface GatewayOptions {
  /** The upstream MCP endpoint. */
  upstream: URL;
  identity: AgentIdentity;
  host: string;
  port: number;
  /** The gateway's MCP endpoint path (default: the upstream's path). */
  path?: string;
  /** Client DIDs allowed to open a session (default: anyone with a valid handshake). */
  allow?: readonly string[];
  profiles?: readonly Profile[];
  store?: SessionStore;
  /** Session lifetime, seconds (core default 3600). */
  sessionTtlSec?: number;
  /** Bound on a request body, bytes (core default 4 MiB). */
  maxBodyBytes?: number;
  /** Allowed clock skew, seconds (core default 300). */
  clockSkewSec?: number;
  /** Receives every audit entry. */
  auditSink?: (entry: AuditEntry) => void;
  /** Receives one record per request when its response has ended. */
  onRequest?: (log: RequestLog) => void;
  /** The fetch used to reach the upstream (default `globalThis.fetch`). */
  fetch?: typeof fetch;
}

export interface RunningGateway {
  /** The gateway's MCP endpoint URL. */
  readonly url: string;
  readonly did: string;
  readonly server: Server;
  readonly handler: PQCHandler;
  /** Stops accepting, ends open streams, waits up to `graceMs` for requests in flight, then closes. */
  close(graceMs?: number): Promise<void>;
}

interface InFlight {
  abort: AbortController;
  /** A bodyless GET: the server-to-client stream, ended at once on shutdown. */
  stream: boolean;
  done: Promise<void>;
}

interface RequestState {
  log: RequestLog;
  methods: string[];
}

function jsonRpcError(id: unknown, code: number, message: string): string {
  const plainId = typeof id === 'string' || typeof id === 'number' ? id : null;
  return JSON.stringify({ jsonrpc: '2.0', id: plainId, error: { code, message } });
}

/** The names a `Connection` header lists: hop-by-hop for this message only. */
function connectionTokens(headers: Headers): Set<string> {
  const value = headers.get('connection');
  return new Set(value ? value.split(',').map((t) => t.trim().toLowerCase()).filter(Boolean) : []);
}

/** The request headers for the upstream. */
export function upstreamRequestHeaders(incoming: Headers, context: PQCRequestContext | undefined, forwardedFor: string | undefined): Headers {
  const listed = connectionTokens(incoming);
  const out = new Headers();
  incoming.forEach((value, name) => {
    if (HOP_BY_HOP.has(name) || REQUEST_DROP.has(name) || listed.has(name)) return;
    out.append(name, value);
  });
  if (context) out.set(PEER_DID_HEADER, context.peerDid);
  const host = incoming.get('host');
  if (forwardedFor) {
    const previous = incoming.get('x-forwarded-for');
    out.set('x-forwarded-for', previous ? `${previous}, ${forwardedFor}` : forwardedFor);
  }
  if (host && !out.has('x-forwarded-host')) out.set('x-forwarded-host', host);
  if (!out.has('x-forwarded-proto')) out.set('x-forwarded-proto', 'http');
  return out;
}

/** The upstream's response headers for the client. */
export function clientResponseHeaders(upstream: Headers): Headers {
  const listed = connectionTokens(upstream);
  const out = new Headers();
  upstream.forEach((value, name) => {
    if (HOP_BY_HOP.has(name) || RESPONSE_DROP.has(name) || listed.has(name) || name === 'set-cookie') return;
    out.append(name, value);
  });
  for (const cookie of upstream.getSetCookie()) out.append('set-cookie', cookie);
  return out;
}

const NO_BODY_STATUS = new Set([101, 204, 205, 304]);

/** Starts the gateway; resolves once it listens. */
export async function startGateway(options: GatewayOptions): Promise<RunningGateway> {
  const upstream = new URL(options.upstream.href);
  const endpoint = options.path ?? (upstream.pathname || '/');
  const upstreamFetch = options.fetch ?? globalThis.fetch;
  const als = new AsyncLocalStorage<RequestState>();
  const did = options.identity.did;

  const audit = new AuditLog({
    maxEntries: 0,
    sink: (entry) => {
      const state = als.getStore();
      if (state) {
        const { log } = state;
        if (entry.operation === 'rejected') {
          log.verdict = 'rejected';
          log.reason = entry.reason;
          // A claimed signer is not logged as the peer unless its signature held (an unauthorized handshake).
          log.peer_did ??= entry.peer_did ?? (entry.reason === 'peer_not_authorized' ? entry.signer_did : null);
          if (entry.method) state.methods.push(entry.method);
        } else if (entry.operation === 'handshake') {
          log.verdict = 'handshake';
          log.peer_did = entry.peer_did;
          state.methods.push('pqc/handshake');
        } else if (entry.signer_did === did) {
          log.signed++;
        } else {
          log.verdict = 'verified';
          log.peer_did = entry.peer_did;
          if (entry.method && !/^[A-Z]+$/.test(entry.method)) state.methods.push(entry.method);
        }
      }
      options.auditSink?.(entry);
    },
  });

  const handler = createPQCHandler({
    identity: options.identity,
    endpoint,
    profiles: options.profiles,
    authorize: options.allow && options.allow.length > 0 ? options.allow : undefined,
    store: options.store,
    sessionTtlSec: options.sessionTtlSec,
    maxBodyBytes: options.maxBodyBytes,
    clockSkewSec: options.clockSkewSec,
    audit,
  });

  const inFlight = new Set<InFlight>();

  async function forward(request: Request, parsedBody: unknown, context: PQCRequestContext | undefined, flight: InFlight, req: IncomingMessage): Promise<Response> {
    // The upstream URL's own query (an API key, a tenant) is kept; the client's query is appended to it.
    const target = new URL(upstream.href);
    const query = new URL(request.url).search.slice(1);
    if (query) target.search = target.search ? `${target.search}&${query}` : `?${query}`;
    const method = request.method;
    let body: ArrayBuffer | undefined;
    if (method !== 'GET' && method !== 'HEAD') {
      const bytes = await request.arrayBuffer();
      body = bytes.byteLength > 0 ? bytes : undefined;
    }
    const headers = upstreamRequestHeaders(request.headers, context, req.socket.remoteAddress);
    let response: Response;
    try {
      response = await upstreamFetch(target, { method, headers, body, redirect: 'manual', signal: flight.abort.signal });
    } catch (err) {
      const state = als.getStore();
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const reason = cause?.code ?? cause?.message ?? (err instanceof Error ? err.message : String(err));
      if (state) {
        state.log.verdict = 'upstream_error';
        state.log.reason = reason;
      }
      const id = parsedBody && typeof parsedBody === 'object' && !Array.isArray(parsedBody) ? (parsedBody as { id?: unknown }).id : null;
      return new Response(jsonRpcError(id, -32603, `Bad gateway: the upstream MCP server cannot be reached (${reason})`), {
        status: 502,
        headers: { 'content-type': 'application/json' },
      });
    }
    return new Response(NO_BODY_STATUS.has(response.status) ? null : response.body, {
      status: response.status,
      statusText: response.statusText,
      headers: clientResponseHeaders(response.headers),
    });
  }

  async function serve(req: IncomingMessage, res: ServerResponse, state: RequestState, flight: InFlight): Promise<void> {
    const request = toWebRequest(req);
    const kind = handler.route(new URL(request.url).pathname);
    if (kind === undefined) {
      state.log.verdict = 'not_found';
      await request.body?.cancel().catch(() => {});
      await sendWebResponse(
        res,
        new Response(JSON.stringify({ error: `not found: this gateway serves ${endpoint} and ${handler.handshakePath}` }), {
          status: 404,
          headers: { 'content-type': 'application/json' },
        }),
      );
      return;
    }
    if (kind === 'handshake' && req.method !== 'POST') state.log.verdict = 'info';
    if (kind === 'endpoint' && req.method === 'OPTIONS') state.log.verdict = 'passed';
    let response: Response;
    try {
      response = await handler.handle(request, (forwarded, parsedBody, context) => forward(forwarded, parsedBody, context, flight, req));
    } catch (err) {
      state.log.verdict = 'error';
      state.log.reason = err instanceof Error ? err.message : String(err);
      response = new Response(jsonRpcError(null, -32603, 'Internal error in the gateway'), { status: 500, headers: { 'content-type': 'application/json' } });
    }
    if (response.status === 405 && state.log.verdict === 'pending') state.log.verdict = 'refused';
    await sendWebResponse(res, response);
  }

  const server = createServer((req, res) => {
    const started = performance.now();
    const url = req.url ?? '/';
    const state: RequestState = {
      methods: [],
      log: {
        time: new Date().toISOString(),
        http_method: req.method ?? 'GET',
        path: url.split('?', 1)[0]!,
        rpc_method: null,
        peer_did: null,
        verdict: 'pending',
        reason: null,
        status: 0,
        latency_ms: 0,
        signed: 0,
        aborted: false,
      },
    };
    let finish!: () => void;
    const flight: InFlight = {
      abort: new AbortController(),
      stream: req.method === 'GET',
      done: new Promise<void>((resolve) => (finish = resolve)),
    };
    inFlight.add(flight);
    res.once('close', () => {
      // The client went away (or the response ended): stop reading from the upstream.
      state.log.aborted = !res.writableFinished;
      flight.abort.abort();
      inFlight.delete(flight);
      const { log } = state;
      log.status = res.statusCode;
      log.latency_ms = Math.round((performance.now() - started) * 10) / 10;
      log.rpc_method = state.methods.length > 0 ? [...new Set(state.methods)].join(',') : null;
      if (log.verdict === 'pending') log.verdict = res.statusCode < 400 ? 'passed' : 'error';
      options.onRequest?.(log);
      finish();
    });
    als.run(state, () => {
      serve(req, res, state, flight).catch((err: unknown) => {
        state.log.verdict = 'error';
        state.log.reason = err instanceof Error ? err.message : String(err);
        if (!res.headersSent) {
          res.writeHead(500, { 'content-type': 'application/json' });
          res.end(jsonRpcError(null, -32603, 'Internal error in the gateway'));
        } else {
          res.destroy();
        }
      });
    });
  });
  // Long-lived SSE streams must not be cut by Node's default request timeout.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const shownHost =
    address.address === '0.0.0.0' ? '127.0.0.1' : address.address === '::' ? '[::1]' : address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${shownHost}:${address.port}${endpoint}`;

  let closing: Promise<void> | undefined;
  return {
    url,
    did,
    server,
    handler,
    close(graceMs = 5000) {
      closing ??= (async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        for (const flight of inFlight) if (flight.stream) flight.abort.abort();
        const pending = [...inFlight].map((f) => f.done);
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([Promise.all(pending), new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))]);
        clearTimeout(timer);
        for (const flight of inFlight) flight.abort.abort();
        server.closeAllConnections();
        await closed;
        await options.store?.close?.();
      })();
      return closing;
    },
  };
}

/** One human-readable log line. */
export function formatLogLine(log: RequestLog): string {
  const peer = log.peer_did ?? '-';
  const verdict = log.reason ? `${log.verdict}:${log.reason}` : log.verdict;
  return `${log.time} ${log.http_method} ${log.path} ${log.rpc_method ?? '-'} ${peer} ${verdict} ${log.status} ${log.latency_ms}ms${log.signed ? ` signed=${log.signed}` : ''}${log.aborted ? ' aborted' : ''}`;
}
