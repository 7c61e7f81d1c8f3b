/**
 * `@pqc-mcp/express`: post-quantum signed MCP for Express 5. A thin translation of Express's request into the
 * web-standard core (`@pqc-mcp/core`): all protocol logic (handshake, verify + strip, signing) lives there.
 */
import { createPQCHandler, type PQCRequestContext } from '@pqc-mcp/core';
import { handleNodeRequest, nodeRequestUrl, resolveCryptoPool, type NodeServerOptions } from '@pqc-mcp/core/node';
import type { NextFunction, Request, RequestHandler, Response } from 'express';

export type { AuditLog, AuditSink, Authorizer, PQCHandler, PQCRequestContext, PQCServerOptions, Profile, SessionStore } from '@pqc-mcp/core';
export { AgentIdentity, MemorySessionStore } from '@pqc-mcp/core';
export { createWorkerPoolBackend, type CryptoPoolOption, type WorkerPoolBackend } from '@pqc-mcp/core/node';

/** Options of `pqcMiddleware`: core's server options plus `cryptoPool` (sign and verify in worker threads). */
export type PQCExpressOptions = NodeServerOptions;

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** Who called: set by `pqcMiddleware` on every verified request to the protected endpoint. */
      pqc?: PQCRequestContext;
    }
  }
}

/** The message of the 500 answered when a body parser ran before `pqcMiddleware`. */
export const BODY_PARSER_FIRST =
  'pqcMiddleware must be registered before express.json() / any body parser: app.use(pqcMiddleware(...)) first';

/**
 * Express middleware for `app.use`: answers the handshake, verifies and strips every request to the protected
 * endpoint (then sets `req.body` and `req.pqc` and runs the rest of the chain), and signs what the app answers.
 * Options are validated now: a misconfiguration throws a `TypeError` naming the option.
 */
export function pqcMiddleware(options: PQCExpressOptions): RequestHandler {
  const handler = createPQCHandler(resolveCryptoPool(options));
  return (req: Request, res: Response, next: NextFunction): void => {
    // Decided on the URL the core sees (the full path as sent), not on the mount-relative `req.path`.
    if (handler.route(nodeRequestUrl(req).pathname) === undefined) return next();
    const raw = req as Request & { _body?: boolean };
    if (req.method === 'POST' && (req.body !== undefined || raw._body === true || req.readableEnded)) {
      res.status(500).json({ jsonrpc: '2.0', id: null, error: { code: -32603, message: BODY_PARSER_FIRST } });
      return;
    }
    let ranApp = false;
    handleNodeRequest(handler, req, res, (parsedBody, context) => {
      ranApp = true;
      req.body = parsedBody;
      raw._body = true; // later body parsers (express.json()) skip this request
      req.pqc = context;
      next();
    }).catch((err: unknown) => {
      // Once the rest of the chain ran, its own error handling owns the request: never call `next` twice.
      if (!ranApp) next(err);
      else if (!res.writableEnded) res.destroy(err instanceof Error ? err : undefined);
    });
  };
}

