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

/** Headers that describe the bytes of the Node request's own body stream, which the framework still reads. */
const BODY_FRAMING = new Set(['content-length', 'content-encoding', 'transfer-encoding']);

/**
 * Makes the Node request the app reads carry the headers core decided for the request it hands on (`forwarded`
 * against `received`): the PQC headers removed, and for a v1 peer the `Accept` an MCP server serves (docs/PROTOCOL.md
 * §7). Both `headers` and `rawHeaders` change, since frameworks and the MCP SDK's Node transports read either.
 */
function adoptHeaders(req: IncomingMessage, received: Headers, forwarded: Headers): void {
  const changed = new Map<string, string | null>();
  received.forEach((_value, name) => {
    if (!BODY_FRAMING.has(name) && !forwarded.has(name)) changed.set(name, null);
  });
  forwarded.forEach((value, name) => {
    if (!BODY_FRAMING.has(name) && received.get(name) !== value) changed.set(name, value);
  });
  if (changed.size === 0) return;
  const headers = req.headers;
  const raw: string[] = [];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    if (!changed.has(req.rawHeaders[i]!.toLowerCase())) raw.push(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
  }
  for (const [name, value] of changed) {
    delete headers[name];
    if (value === null) continue;
    headers[name] = value;
    raw.push(name, value);
  }
  req.rawHeaders.splice(0, req.rawHeaders.length, ...raw);
}

/**
 * Builds the web `Request`, lets the core verify it, runs the app through `runApp` on the request core hands on (its
 * headers; the body comes as `parsedBody`), capturing what it writes, and writes the core's (signed) `Response` back
 * to `res`.
 */
export async function handleNodeRequest(
  handler: PQCHandler,
  req: IncomingMessage,
  res: ServerResponse,
  runApp: NodeRunApp,
  options: NodeRequestOptions,
): Promise<void> {
  let ranApp = false;
  const received = toWebRequest(req);
  const response = await handler.handle(
    received,
    (forwarded, parsedBody, context) => {
      ranApp = true;
      if (forwarded !== received) adoptHeaders(req, received.headers, forwarded.headers); // core never changes received's headers
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
