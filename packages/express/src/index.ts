/**
 * `@pqc-mcp/express`: post-quantum signed MCP for Express 4 and 5. A thin translation of Express's request into the
 * web-standard core (`@pqc-mcp/core`): the handshake, the verification of every request, the signing of every answer
 * and every protocol fact live there.
 */
import { isPQCHandler } from '@pqc-mcp/core/internal';
import { createPQCHandler, pqcAuthInfo, type PQCHandler, type PQCRequestContext } from '@pqc-mcp/core';
import { handleNodeRequest, resolveCryptoPool, type NodeServerOptions } from '@pqc-mcp/core/node';
import type { NextFunction, Request, RequestHandler, Response } from 'express';

// The same re-exports in every adapter: the identity a server needs, and the types of its options and context.
export { AgentIdentity, pqcAuthInfo, type PQCAuthInfo, type PQCHandler, type PQCRequestContext, type PQCServerOptions } from '@pqc-mcp/core';
export type { CryptoPoolOption } from '@pqc-mcp/core/node';

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
const BODY_PARSER_FIRST =
  'pqcMiddleware must be registered before express.json() / any body parser: app.use(pqcMiddleware(...)) first';

/**
 * Express middleware for `app.use`: answers the handshake path, verifies every request to the protected endpoint
 * (then sets `req.body` and `req.pqc` and runs the rest of the chain), and signs what the app answers. Takes the
 * options (validated now: a misconfiguration throws a `TypeError` naming the option) or an existing `PQCHandler`.
 * What is protected is decided on the path Express itself routes on (its mount path and its parse of the URL), so
 * the middleware protects the endpoint under any router or mount prefix.
 */
export function pqcMiddleware(options: PQCExpressOptions | PQCHandler): RequestHandler {
  const handler = isPQCHandler(options) ? options : createPQCHandler(resolveCryptoPool(options));
  return (req: Request, res: Response, next: NextFunction): void => {
    const routedPath = req.baseUrl + req.path;
    if (handler.route(routedPath) === undefined) return next();
    const raw = req as Request & { _body?: boolean };
    if (req.method === 'POST' && (req.body !== undefined || raw._body === true || req.readableEnded)) {
      res.status(500).json({ jsonrpc: '2.0', id: null, error: { code: -32603, message: BODY_PARSER_FIRST } });
      return;
    }
    let ranApp = false;
    handleNodeRequest(
      handler,
      req,
      res,
      (parsedBody, context) => {
        ranApp = true;
        req.body = parsedBody;
        raw._body = true; // later body parsers (express.json()) skip this request
        req.pqc = context;
        // Where the MCP SDK's Node handlers (v2 `toNodeHandler`, 1.x transports) read the caller: unless an earlier
        // middleware authenticated the request its own way, tools get the verified DID as `authInfo`.
        if ((req as { auth?: unknown }).auth === undefined && context) Object.assign(req, { auth: pqcAuthInfo(context) });
        next();
      },
      { routedPath },
    ).catch((err: unknown) => {
      // Once the rest of the chain ran, its own error handling owns the request: never call `next` twice.
      if (!ranApp) next(err);
      else if (!res.writableEnded) res.destroy(err instanceof Error ? err : undefined);
    });
  };
}
