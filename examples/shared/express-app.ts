/**
 * The Express app of `examples/express-server.ts`, importable so tests build the same app without a process:
 * `pqcMiddleware` first, `express.json()` after it (it does nothing for verified requests), and a stateful MCP
 * endpoint on the SDK's Node `StreamableHTTPServerTransport` (one transport per Mcp-Session-Id).
 */
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import { pqcMiddleware, type PQCExpressOptions } from '@pqc-mcp/express';
import express, { type Express, type Request, type Response } from 'express';
import { openMcpSession } from './tools.js';

/** Options of `createExpressApp`. */
export interface ExpressAppOptions {
  /** The PQC layer's options (identity, profiles, cryptoPool, ...); `false`: no PQC layer (the benchmarks' unsigned baseline). */
  pqc: PQCExpressOptions | false;
  /** Answer POSTs with JSON instead of an SSE stream (default false: SSE). */
  enableJsonResponse?: boolean;
  /** Sees every body the MCP app receives (tests check that no `_pqc` reaches it). */
  onBody?: (body: unknown, req: Request) => void;
}

/** The app and a `closeSessions()` that closes every open MCP session (for shutdown). */
export interface ExpressMcpApp {
  app: Express;
  closeSessions(): Promise<void>;
}

function badRequest(res: Response, message: string): void {
  res.status(400).json({ jsonrpc: '2.0', id: null, error: { code: -32000, message } });
}

export function createExpressApp(options: ExpressAppOptions): ExpressMcpApp {
  const transports = new Map<string, StreamableHTTPServerTransport>();
  const app = express();
  if (options.pqc !== false) app.use(pqcMiddleware(options.pqc));
  // After pqcMiddleware on purpose: verified requests already have req.body, so this parser skips them.
  app.use(express.json({ limit: '4mb' }));

  app.post('/mcp', async (req, res) => {
    options.onBody?.(req.body, req);
    const sessionId = req.header('mcp-session-id');
    let transport = sessionId ? transports.get(sessionId) : undefined;
    if (!transport) {
      if (sessionId || !isInitializeRequest(req.body)) return badRequest(res, 'Bad Request: no valid session');
      transport = await openMcpSession(transports, options.enableJsonResponse ?? false, (o) => new StreamableHTTPServerTransport(o));
    }
    await transport.handleRequest(req, res, req.body);
  });

  // GET (the server-to-client SSE stream) and DELETE (end of session) need an existing session.
  const bodyless = async (req: Request, res: Response) => {
    const transport = transports.get(req.header('mcp-session-id') ?? '');
    if (!transport) return badRequest(res, 'Bad Request: no valid session');
    await transport.handleRequest(req, res);
  };
  app.get('/mcp', bodyless);
  app.delete('/mcp', bodyless);

  return {
    app,
    async closeSessions() {
      await Promise.all([...transports.values()].map((t) => t.close()));
      transports.clear();
    },
  };
}
