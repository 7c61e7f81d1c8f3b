/**
 * `@pqc-mcp/core/node`: the glue between Node's `http` objects and the web-standard core, shared by the Express and
 * Fastify adapters. Node-only, so it lives outside the core's main entry (which must bundle for workerd).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { nobleBackend } from '../crypto/noble.js';
import { nodeBackend } from '../crypto/node.js';
import type { PQCHandler, PQCRequestContext, PQCServerOptions } from '../server.js';
import { sharedWorkerPool, type WorkerPoolBackend } from './pool.js';

export {
  CryptoPoolError,
  createWorkerPoolBackend,
  defaultPoolSize,
  sharedWorkerPool,
  type PoolEngine,
  type WorkerPoolBackend,
  type WorkerPoolOptions,
  type WorkerPoolStats,
} from './pool.js';

/**
 * Whether a Node server signs and verifies in worker threads (`createWorkerPoolBackend`):
 *   - `'auto'` (default): yes when the identity's backend is one a pool can run, noble or node:crypto, on a
 *     process-wide pool of that engine sized to the cores. Measured (bench/results/latest.md, 2 cores): with noble the
 *     pool gives 1.5-2.5x the signed throughput and keeps `GET pqc/handshake` p99 near 10-20 ms instead of 0.5-2.5 s;
 *     with native node:crypto (whose async calls already run in libuv's 4-thread pool) the throughput is the same
 *     within noise and the handshake p99 stays under 50 ms (libuv's threads crowd the event loop without it). Other
 *     backends (WebCrypto on Bun, a custom one) are left as they are;
 *   - `true`: always, on a process-wide pool sized to the cores (`{ size }` to choose the size);
 *   - `false`: never (crypto on the backend of the identity or of the `backend` option);
 *   - a `WorkerPoolBackend`: that pool.
 */
export type CryptoPoolOption = boolean | 'auto' | { size?: number } | WorkerPoolBackend;

/** The server options of the Node adapters (Express, Fastify): core's, plus `cryptoPool`. */
export interface NodeServerOptions extends PQCServerOptions {
  /** Sign and verify in worker threads (default `'auto'`: for the built-in noble and node backends). See `CryptoPoolOption`. */
  cryptoPool?: CryptoPoolOption;
}

function isPool(value: unknown): value is WorkerPoolBackend {
  const v = value as Partial<WorkerPoolBackend> | null;
  return typeof v === 'object' && v !== null && typeof v.signingKey === 'function' && typeof v.close === 'function';
}

/**
 * Core's server options for a Node adapter's options: `cryptoPool` resolved into the `backend` option. An explicit
 * `backend` is kept as given (`cryptoPool: true` with it is a contradiction, refused).
 */
export function resolveCryptoPool(options: NodeServerOptions): PQCServerOptions {
  if (typeof options !== 'object' || options === null) return options;
  const { cryptoPool = 'auto', ...rest } = options;
  if (cryptoPool === false) return rest;
  if (rest.backend !== undefined) {
    if (cryptoPool === 'auto') return rest;
    throw new TypeError('pqc: give either "backend" or "cryptoPool", not both');
  }
  if (cryptoPool === 'auto') {
    // On the identity given (a bad one is for createPQCHandler to refuse): the built-in backends move to a pool of
    // the same engine; any other backend stays.
    const backend = (rest.identity as { backend?: unknown } | undefined)?.backend;
    if (backend === nobleBackend) return { ...rest, backend: sharedWorkerPool({ engine: 'noble' }) };
    if (backend !== undefined && backend === nodeBackend()) return { ...rest, backend: sharedWorkerPool({ engine: 'node' }) };
    return rest;
  }
  if (isPool(cryptoPool)) return { ...rest, backend: cryptoPool };
  if (cryptoPool === true) return { ...rest, backend: sharedWorkerPool() };
  if (typeof cryptoPool === 'object' && cryptoPool !== null) return { ...rest, backend: sharedWorkerPool({ size: cryptoPool.size }) };
  throw new TypeError(`pqc: option "cryptoPool" must be true, false, 'auto', { size } or a worker pool, got ${String(cryptoPool)}`);
}

/** Runs the rest of the framework's chain; whatever it writes to the Node response is captured and signed. */
export type NodeRunApp = (parsedBody: unknown, context: PQCRequestContext | undefined) => void;

/** Options of `handleNodeRequest`. */
export interface NodeRequestOptions {
  /** The request body when the framework already read it (bytes); else it is streamed from `req`. */
  body?: Uint8Array;
  /** The URL path and query as sent (default `req.originalUrl ?? req.url`). */
  url?: string;
  /** Called before the core writes its own response (a rejection or the handshake), e.g. Fastify's `reply.hijack()`. */
  beforeDirectResponse?: () => void;
}

const NO_BODY_STATUS = new Set([101, 204, 205, 304]);

/** Host header values that cannot change how the URL parses (`a/b`, `a#`, `a?` or `a\\b` would move the path). */
const SAFE_HOST = /^(?:[A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

/**
 * The URL the core sees for a Node request; adapters decide what a request is (`handler.route(url.pathname)`) on
 * this same URL. The path is the one frameworks route on: an absolute-form target (`POST http://x/mcp HTTP/1.1`,
 * which Node leaves whole in `req.url`) counts by its path, and a Host header that is not a plain host[:port] is
 * ignored, so neither can make the core see another path than the router does.
 */
export function nodeRequestUrl(req: IncomingMessage, options: NodeRequestOptions = {}): URL {
  const host = req.headers.host !== undefined && SAFE_HOST.test(req.headers.host) ? req.headers.host : 'localhost';
  let path = options.url ?? (req as IncomingMessage & { originalUrl?: string }).originalUrl ?? req.url ?? '/';
  if (!path.startsWith('/')) {
    const absolute = URL.canParse(path) ? new URL(path) : undefined;
    path = absolute?.pathname.startsWith('/') ? absolute.pathname + absolute.search : '/';
  }
  return new URL(`http://${host}${path}`);
}

/** A web `Request` for a Node request. */
export function toWebRequest(req: IncomingMessage, options: NodeRequestOptions = {}): Request {
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) headers.append(name, v);
    else headers.set(name, value);
  }
  const method = req.method ?? 'GET';
  let body: BodyInit | null = null;
  if (method !== 'GET' && method !== 'HEAD') {
    body = options.body !== undefined ? (options.body as Uint8Array<ArrayBuffer>) : (Readable.toWeb(req) as unknown as ReadableStream<Uint8Array>);
  }
  return new Request(nodeRequestUrl(req, options), { method, headers, body, duplex: 'half' } as RequestInit);
}

function chunkBytes(chunk: unknown, encoding?: BufferEncoding): Uint8Array {
  if (typeof chunk === 'string') return Buffer.from(chunk, encoding ?? 'utf8');
  if (chunk instanceof Uint8Array) return chunk;
  throw new TypeError('response chunk must be a string or bytes');
}

type WriteCallback = (error?: Error | null) => void;

const PATCHED = ['writeHead', 'write', 'end', 'flushHeaders'] as const;
type ResponseWriters = Pick<ServerResponse, (typeof PATCHED)[number]>;

/**
 * The writers a response had before `captureNodeResponse` patched it, while the capture lasts: `sendWebResponse`
 * writes through them, so the signed output goes to the client and not back into the capture (the app may still be
 * writing an SSE stream when the signed response starts).
 */
const uncaptured = new WeakMap<ServerResponse, ResponseWriters>();

/**
 * Runs `run`, which writes a response to `res` the Node way, and captures it as a web `Response` as soon as the
 * head is written, streaming the body as it is written (an SSE stream is never buffered whole).
 */
export function captureNodeResponse(res: ServerResponse, run: () => void): Promise<Response> {
  return new Promise<Response>((resolve, reject) => {
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        controller = c;
      },
    });
    let resolved = false;
    let closed = false;
    const own = res as unknown as Record<string, unknown>;
    // Keep what was there (another layer, e.g. compression, may have patched the instance too) and restore it.
    const saved = PATCHED.map((name) => [name, Object.getOwnPropertyDescriptor(res, name)] as const);
    uncaptured.set(res, { writeHead: res.writeHead, write: res.write, end: res.end, flushHeaders: res.flushHeaders });
    let restored = false;
    const restore = () => {
      if (restored) return;
      restored = true;
      for (const [name, descriptor] of saved) {
        if (descriptor) Object.defineProperty(res, name, descriptor);
        else delete own[name];
      }
      uncaptured.delete(res);
    };
    const head = () => {
      if (resolved) return;
      resolved = true;
      const headers = new Headers();
      for (const [name, value] of Object.entries(res.getHeaders())) {
        if (value === undefined) continue;
        if (Array.isArray(value)) for (const v of value) headers.append(name, String(v));
        else headers.set(name, String(value));
      }
      const status = res.statusCode;
      resolve(new Response(NO_BODY_STATUS.has(status) ? null : stream, { status, statusText: res.statusMessage || undefined, headers }));
    };
    own.writeHead = (status: number, reason?: unknown, headers?: unknown) => {
      if (resolved) return res; // the head is captured already (and may be on the wire): a second one changes nothing
      res.statusCode = status;
      if (typeof reason === 'string') res.statusMessage = reason;
      else headers = reason;
      if (Array.isArray(headers)) {
        for (let i = 0; i + 1 < headers.length; i += 2) res.setHeader(String(headers[i]), headers[i + 1] as string);
      } else if (headers && typeof headers === 'object') {
        for (const [name, value] of Object.entries(headers)) if (value !== undefined) res.setHeader(name, value as string);
      }
      head();
      return res;
    };
    own.flushHeaders = () => head();
    own.write = (chunk: unknown, encoding?: unknown, cb?: unknown) => {
      head();
      const callback = (typeof encoding === 'function' ? encoding : cb) as WriteCallback | undefined;
      if (!closed) controller.enqueue(chunkBytes(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : undefined));
      callback?.();
      return true;
    };
    own.end = (chunk?: unknown, encoding?: unknown, cb?: unknown) => {
      const callback = [chunk, encoding, cb].find((a) => typeof a === 'function') as WriteCallback | undefined;
      head();
      if (!closed) {
        if (chunk !== undefined && chunk !== null && typeof chunk !== 'function') {
          controller.enqueue(chunkBytes(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : undefined));
        }
        closed = true;
        controller.close();
      }
      // Stay patched until the response is over: what the app writes after its end (e.g. a second reply) is dropped
      // here, never sent unsigned ahead of the signed response.
      callback?.();
      return res;
    };
    res.once('close', () => {
      // The response is over, or the client went away: end the captured stream so the app's resources are released.
      if (!closed) {
        closed = true;
        try {
          controller.close();
        } catch {
          /* already closed */
        }
      }
      restore();
      if (!resolved) reject(new Error('the client closed the connection before a response'));
    });
    try {
      run();
    } catch (err) {
      restore();
      reject(err);
    }
  });
}

function mediaTypeOf(headers: Headers): string {
  const value = headers.get('content-type');
  return value ? value.split(';', 1)[0]!.trim().toLowerCase() : '';
}

/** Writes a web `Response` to a Node response, streaming its body with backpressure (a JSON body in one write). */
export async function sendWebResponse(res: ServerResponse, response: Response): Promise<void> {
  // Bypass an active capture of `res` (see `uncaptured`).
  const writers = uncaptured.get(res);
  const out = {
    writeHead: (writers?.writeHead ?? res.writeHead).bind(res) as ServerResponse['writeHead'],
    write: (writers?.write ?? res.write).bind(res) as (chunk: Uint8Array) => boolean,
    end: (writers?.end ?? res.end).bind(res) as () => ServerResponse,
    flushHeaders: (writers?.flushHeaders ?? res.flushHeaders).bind(res),
  };
  for (const name of res.getHeaderNames()) res.removeHeader(name);
  // @hono/node-server (under the MCP SDK's Node transport) records a body's length on the response object itself
  // (`_contentLength`, not a header) when it writes a JSON answer: left there, it would cut the signed body short.
  const internal = res as unknown as { _contentLength?: number | null };
  if (typeof internal._contentLength === 'number') internal._contentLength = null;
  const headers: Record<string, string | string[]> = {};
  response.headers.forEach((value, name) => {
    if (name !== 'set-cookie') headers[name] = value;
  });
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) headers['set-cookie'] = cookies;
  if (response.body && mediaTypeOf(response.headers) === 'application/json') {
    // A JSON body (a signed answer, a rejection) is whole in memory already: head and body in one write, with its
    // length (no chunked encoding, no separate write of the head).
    let body: Uint8Array;
    try {
      body = new Uint8Array(await response.arrayBuffer());
    } catch {
      body = new Uint8Array(0); // the source failed: answer what there is
    }
    delete headers['transfer-encoding'];
    headers['content-length'] = String(body.byteLength);
    out.writeHead(response.status, response.statusText || undefined, headers);
    (out.end as (chunk: Uint8Array) => ServerResponse)(body);
    return;
  }
  out.writeHead(response.status, response.statusText || undefined, headers);
  if (!response.body) {
    out.end();
    return;
  }
  out.flushHeaders();
  const reader = response.body.getReader();
  const onClose = () => {
    reader.cancel().catch(() => {});
  };
  res.once('close', onClose);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (!out.write(value)) {
        await new Promise<void>((resolve) => {
          const go = () => {
            res.off('drain', go);
            res.off('close', go);
            resolve();
          };
          res.on('drain', go);
          res.on('close', go);
        });
      }
      if (res.destroyed) break;
    }
  } catch {
    // The source stream failed (e.g. the app crashed mid-stream): end what was sent.
  } finally {
    res.off('close', onClose);
    if (!res.writableEnded) out.end();
  }
}

/**
 * One Node request through the core: builds the web `Request`, lets the core verify it, runs the app through
 * `runApp` (capturing what it writes), and writes the core's (signed) `Response` back to `res`.
 */
export async function handleNodeRequest(
  handler: PQCHandler,
  req: IncomingMessage,
  res: ServerResponse,
  runApp: NodeRunApp,
  options: NodeRequestOptions = {},
): Promise<void> {
  let ranApp = false;
  const response = await handler.handle(toWebRequest(req, options), (_request, parsedBody, context) => {
    ranApp = true;
    return captureNodeResponse(res, () => runApp(parsedBody, context));
  });
  if (!ranApp) options.beforeDirectResponse?.();
  await sendWebResponse(res, response);
}
