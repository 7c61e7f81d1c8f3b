/**
 * The Express app of `examples/express-server.ts`, importable so tests build the same app without a process. In
 * order: the SDK's localhost Host-header guard, `pqcMiddleware` (before any body parser: it verifies the raw bytes),
 * `express.json()` (it skips verified requests), and the MCP endpoint: the SDK v2 handler through
 * `@modelcontextprotocol/node`'s `toNodeHandler`, told who called (`req.auth`, which `pqcMiddleware` sets). Not
 * `createMcpExpressApp()`: it puts `express.json()` first, which must come after `pqcMiddleware`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { localhostHostValidation } from '@modelcontextprotocol/express';
import { toNodeHandler } from '@modelcontextprotocol/node';
import { pqcMiddleware, type PQCExpressOptions } from '@pqc-mcp/express';
import express, { type Express, type Request } from 'express';
import { createMcpApp, type McpAppOptions } from './tools.js';

/** What serves MCP at the endpoint, the Node way (default: the SDK v2 handler of the example tools). */
export type NodeMcpApp = (req: IncomingMessage & { auth?: unknown }, res: ServerResponse, parsedBody: unknown) => Promise<void> | void;

/** Options of `createExpressApp`. */
export interface ExpressAppOptions extends McpAppOptions {
  /** The PQC layer's options (identity, profiles, cryptoPool, ...); `false`: no PQC layer (the benchmarks' unsigned baseline). */
  pqc: PQCExpressOptions | false;
  /** The MCP app (default: the SDK v2 handler of the example tools). */
  mcp?: NodeMcpApp;
  /** Sees every body the MCP app receives (tests check that no `_pqc` reaches it). */
  onBody?: (body: unknown, req: Request) => void;
}

export function createExpressApp(options: ExpressAppOptions): { app: Express; close(): Promise<void> } {
  const handler = options.mcp ? undefined : createMcpApp(options);
  const mcp: NodeMcpApp = options.mcp ?? (toNodeHandler(handler!) as NodeMcpApp);
  const app = express();
  app.use(localhostHostValidation());
  if (options.pqc !== false) app.use(pqcMiddleware(options.pqc));
  app.use(express.json({ limit: '4mb' })); // after pqcMiddleware: verified requests already have req.body
  app.all('/mcp', (req, res) => {
    options.onBody?.(req.body, req);
    void mcp(req, res, req.body);
  });
  return { app, close: async () => void (await handler?.close()) };
}
