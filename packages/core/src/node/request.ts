/** A Node `IncomingMessage` as the web `Request` the core reads, and the request target and routed path it needs. */
import type { IncomingMessage } from 'node:http';
import { lingerOnUnreadBody } from '../linger.js';
import { originForm } from '../server/route.js';

export { lingerOnUnreadBody };

/** Host header values that cannot change how the URL parses (`a/b`, `a#`, `a?` or `a\\b` would move the path). */
const SAFE_HOST = /^(?:[A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

/** The request target exactly as received (`originalUrl` of Express: the whole target, whatever router it went through). */
export function nodeRequestTarget(req: IncomingMessage): string {
  return (req as IncomingMessage & { originalUrl?: string }).originalUrl ?? req.url ?? '/';
}

/**
 * The URL of the web `Request` for a Node request. Its path is the origin form of the target; a target that has none
 * every parser agrees on (`http:///mcp`) gets `/`, and the core, told the raw target, refuses it wherever the
 * framework routes it. A Host header that is not a plain host[:port] is ignored.
 */
export function nodeRequestUrl(req: IncomingMessage): URL {
  const host = req.headers.host !== undefined && SAFE_HOST.test(req.headers.host) ? req.headers.host : 'localhost';
  return new URL(`http://${host}${originForm(nodeRequestTarget(req)) ?? '/'}`);
}

/**
 * The body of a Node request as a web stream, with backpressure. Cancelling it (the core refused the request without
 * reading it all) does not destroy the request: the rest is read and dropped within a bound (`lingerOnUnreadBody`), so
 * the answer reaches the client and a kept-alive connection stays usable.
 */
function bodyStream(req: IncomingMessage): ReadableStream<Uint8Array> {
  let onData: ((chunk: Buffer) => void) | undefined;
  let settled = false;
  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        onData = (chunk) => {
          if (settled) return;
          controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
          if ((controller.desiredSize ?? 0) <= 0) req.pause();
        };
        req.on('data', onData);
        req.once('end', () => {
          if (!settled) controller.close();
          settled = true;
        });
        req.once('error', (err) => {
          if (!settled) controller.error(err);
          settled = true;
        });
        req.pause();
      },
      pull() {
        req.resume();
      },
      cancel() {
        settled = true;
        if (onData) req.off('data', onData);
        lingerOnUnreadBody(req);
      },
    },
    { highWaterMark: 1 },
  );
}

/** A web `Request` for a Node request; `body` when the framework already read it, else streamed from `req`. */
export function toWebRequest(req: IncomingMessage, body?: Uint8Array): Request {
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) headers.append(name, v);
    else headers.set(name, value);
  }
  const method = req.method ?? 'GET';
  let init: BodyInit | null = null;
  if (method !== 'GET' && method !== 'HEAD') {
    init = body !== undefined ? (body as Uint8Array<ArrayBuffer>) : bodyStream(req);
  }
  return new Request(nodeRequestUrl(req), { method, headers, body: init, duplex: 'half' } as RequestInit);
}
