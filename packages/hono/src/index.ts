/**
 * @pqc-mcp/hono: post-quantum (ML-DSA) signed MCP traffic as a Hono middleware.
 *
 * A thin translation of Hono's context into `@pqc-mcp/core`'s web-standard server layer: the handshake path, the
 * verification of every request and the signing of every answer all happen in core. Only web standards are used
 * here, so the middleware runs wherever Hono runs (Node, Bun, Deno, Cloudflare Workers).
 */
import { isPQCHandler } from '@pqc-mcp/core/internal';
import { createPQCHandler, type PQCHandler, type PQCRequestContext, type PQCServerOptions } from '@pqc-mcp/core';
import type { MiddlewareHandler } from 'hono';

// The same re-exports in every adapter: the identity a server needs, and the types of its options and context.
export { AgentIdentity, pqcAuthInfo, type PQCAuthInfo, type PQCHandler, type PQCRequestContext, type PQCServerOptions } from '@pqc-mcp/core';

/** Options of `pqc`: core's server options (Hono runs where worker threads may not exist: no `cryptoPool` here). */
export type PQCHonoOptions = PQCServerOptions;

/** What the middleware puts in the context: `c.get('pqc')` and `c.get('pqcBody')`. */
export type PQCVariables = {
  /** Who is calling (session, client DID, profile); `undefined` on requests the PQC layer lets through as they are. */
  pqc: PQCRequestContext | undefined;
  /** The verified JSON-RPC body without `_pqc`, parsed once (hand it to the MCP SDK as `parsedBody`). */
  pqcBody: unknown;
};

declare module 'hono' {
  interface ContextVariableMap {
    pqc: PQCRequestContext | undefined;
    pqcBody: unknown;
  }
}

/**
 * The PQC middleware. Takes core's options (validated now: a `TypeError` names a bad option) or an existing
 * `PQCHandler`. What is protected is decided on the path Hono routes on, so the endpoint is protected under
 * `basePath` or `route()` prefixes too. Mount it where Hono sees the MCP endpoint and the handshake path, e.g.
 * `app.use('*', pqc(options))`, before anything that reads the request body.
 */
export function pqc(options: PQCHonoOptions | PQCHandler): MiddlewareHandler<{ Variables: PQCVariables }> {
  const handler = isPQCHandler(options) ? options : createPQCHandler(options);
  // A context already handled by this instance (the same middleware mounted on overlapping patterns) passes on.
  const handled = new WeakSet<object>();

  return async function pqcMiddleware(c, next) {
    if (handled.has(c)) return next();
    if (handler.route(c.req.path) === undefined) return next();
    handled.add(c);
    const response = await handler.handle(
      c.req.raw,
      async (request, parsedBody, context) => {
        if (request !== c.req.raw) {
          c.req.raw = request; // the verified request: same URL and headers, body without `_pqc`
          c.req.bodyCache = {};
        }
        c.set('pqc', context);
        c.set('pqcBody', parsedBody);
        await next();
        return c.res;
      },
      { routedPath: c.req.path },
    );
    // Assigning c.res over an existing response copies its headers onto the new one, a stale content-length
    // included; clearing it first makes core's response go out exactly as core built it.
    c.res = undefined;
    c.res = response;
  };
}
