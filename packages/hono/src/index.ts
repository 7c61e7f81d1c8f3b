/**
 * @pqc-mcp/hono: post-quantum (ML-DSA) signed MCP traffic as a Hono middleware.
 *
 * A thin translation of Hono's context into `@pqc-mcp/core`'s web-standard server layer: the handshake route, the
 * verification and stripping of every request and the signing of every response all happen in core. Only web
 * standards are used here, so the middleware runs wherever Hono runs (Node, Bun, Deno, Cloudflare Workers).
 */
import { createPQCHandler, type PQCRequestContext, type PQCServerOptions } from '@pqc-mcp/core';
import type { MiddlewareHandler } from 'hono';

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
 * The PQC middleware. Options are core's `PQCServerOptions`, validated now (a `TypeError` names a bad option).
 *
 * Mount it where Hono sees both the MCP endpoint and the handshake path, for example `app.use('*', pqc(options))`,
 * or one instance on both: `const mw = pqc(options); app.use('/mcp', mw); app.use('/pqc/*', mw)`.
 * Mount it before anything that reads the request body.
 */
export function pqc(options: PQCServerOptions): MiddlewareHandler<{ Variables: PQCVariables }> {
  const handler = createPQCHandler(options);
  // A context already handled by this instance (the same middleware mounted on overlapping patterns) passes on.
  const handled = new WeakSet<object>();

  return async function pqcMiddleware(c, next) {
    if (handled.has(c)) return next();
    // Core matches paths the loose way (decoded, any case, trailing slash): whatever Hono routes to a protected
    // route is protected.
    if (handler.route(new URL(c.req.url).pathname) === undefined) return next();
    handled.add(c);
    const response = await handler.handle(c.req.raw, async (request, parsedBody, context) => {
      if (request !== c.req.raw) {
        c.req.raw = request; // the verified request: same URL and headers, body without `_pqc`
        c.req.bodyCache = {};
      }
      c.set('pqc', context);
      c.set('pqcBody', parsedBody);
      await next();
      return c.res;
    });
    // Assigning c.res over an existing response copies its headers onto the new one, a stale content-length
    // included; clearing it first makes core's response go out exactly as core built it.
    c.res = undefined;
    c.res = response;
  };
}

export {
  AgentIdentity,
  AuditLog,
  MemorySessionStore,
  PQCTransportError,
  type Algorithm,
  type AuditEntry,
  type AuditSink,
  type Authorizer,
  type PQCRequestContext,
  type PQCServerOptions,
  type PeerIdentity,
  type Profile,
  type SessionStore,
} from '@pqc-mcp/core';
