/** One Node request through the core: the glue the Express and Fastify adapters (and the CLI gateway) share. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { PQCRequestContext } from '../server/context.js';
import type { PQCHandler } from '../server/index.js';
import { lingerOnUnreadBody, nodeRequestTarget, toWebRequest } from './request.js';
import { captureNodeResponse, sendWebResponse } from './response.js';

/** Runs the rest of the framework's chain; whatever it writes to the Node response is captured and signed. */
export type NodeRunApp = (parsedBody: unknown, context: PQCRequestContext | undefined) => void;

/** Options of `handleNodeRequest`. */
export interface NodeRequestOptions {
  /** The path the framework routes this request on (Express: `req.baseUrl + req.path`; Fastify: the route's URL). */
  routedPath: string;
  /** Called before the core writes its own answer (a rejection or the handshake), e.g. Fastify's `reply.hijack()`. */
  beforeDirectResponse?: () => void;
}

/**
 * Builds the web `Request`, lets the core verify it, runs the app through `runApp` (capturing what it writes), and
 * writes the core's (signed) `Response` back to `res`.
 */
export async function handleNodeRequest(
  handler: PQCHandler,
  req: IncomingMessage,
  res: ServerResponse,
  runApp: NodeRunApp,
  options: NodeRequestOptions,
): Promise<void> {
  let ranApp = false;
  const response = await handler.handle(
    toWebRequest(req),
    (_request, parsedBody, context) => {
      ranApp = true;
      return captureNodeResponse(res, () => runApp(parsedBody, context));
    },
    { target: nodeRequestTarget(req), routedPath: options.routedPath },
  );
  if (!ranApp) {
    options.beforeDirectResponse?.();
    // The core answered without reading the whole body: read and drop the rest, and turn the close that may follow
    // the answer into a half close while it arrives. Before the answer is written, so Node's close finds it in place.
    lingerOnUnreadBody(req);
  }
  await sendWebResponse(res, response);
}
