/** Node `ServerResponse`s and web `Response`s: capturing what an app writes the Node way, writing core's answer back. */
import type { ServerResponse } from 'node:http';
import { NO_BODY_STATUS, mediaType } from '../http.js';

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
  if (response.body && mediaType(response.headers) === 'application/json') {
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

