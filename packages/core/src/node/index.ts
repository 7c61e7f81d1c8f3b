/**
 * `@pqc-mcp/core/node`: the glue between Node's `http` objects and the web-standard core, shared by the Express and
 * Fastify adapters. Node-only, so it lives outside the core's main entry (which must bundle for workerd).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import type { PQCHandler, PQCRequestContext } from '../server.js';

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

/** A web `Request` for a Node request. */
export function toWebRequest(req: IncomingMessage, options: NodeRequestOptions = {}): Request {
  const host = req.headers.host ?? 'localhost';
  const path = options.url ?? (req as IncomingMessage & { originalUrl?: string }).originalUrl ?? req.url ?? '/';
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
  return new Request(`http://${host}${path}`, { method, headers, body, duplex: 'half' } as RequestInit);
}

function chunkBytes(chunk: unknown, encoding?: BufferEncoding): Uint8Array {
  if (typeof chunk === 'string') return Buffer.from(chunk, encoding ?? 'utf8');
  if (chunk instanceof Uint8Array) return chunk;
  throw new TypeError('response chunk must be a string or bytes');
}

type WriteCallback = (error?: Error | null) => void;

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
    const patched = ['writeHead', 'write', 'end', 'flushHeaders'] as const;
    const restore = () => {
      for (const name of patched) delete own[name];
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
      restore();
      callback?.();
      return res;
    };
    res.once('close', () => {
      // The client went away: end the captured stream so the app's resources are released.
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

/** Writes a web `Response` to a Node response, streaming its body with backpressure. */
export async function sendWebResponse(res: ServerResponse, response: Response): Promise<void> {
  for (const name of res.getHeaderNames()) res.removeHeader(name);
  const headers: Record<string, string | string[]> = {};
  response.headers.forEach((value, name) => {
    if (name !== 'set-cookie') headers[name] = value;
  });
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) headers['set-cookie'] = cookies;
  res.writeHead(response.status, response.statusText || undefined, headers);
  if (!response.body) {
    res.end();
    return;
  }
  res.flushHeaders();
  const reader = response.body.getReader();
  const onClose = () => {
    reader.cancel().catch(() => {});
  };
  res.once('close', onClose);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (!res.write(value)) {
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
    if (!res.writableEnded) res.end();
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
