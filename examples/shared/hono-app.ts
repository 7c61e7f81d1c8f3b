/**
 * The Hono app of `examples/hono-server.ts` and the edge worker, importable so tests build the same app without a
 * process: the SDK's localhost Host and Origin guards (`@modelcontextprotocol/hono`), `pqc()` on every path (it sees
 * the endpoint and the handshake path), and the MCP endpoint: the SDK v2 handler given the verified body and who
 * called. Not `createMcpHonoApp()`: its JSON parser would read and parse every body before `pqc()` could refuse an
 * unauthenticated one. Web standards only: it runs on Node, Bun, Deno and Cloudflare Workers.
 */
import { localhostHostValidation, localhostOriginValidation } from '@modelcontextprotocol/hono';
import { pqcAuthInfo, type PQCRequestContext } from '@pqc-mcp/core';
import { pqc, type PQCVariables } from '@pqc-mcp/hono';
import type { PQCHonoNodeOptions } from '@pqc-mcp/hono/node';
import { Hono } from 'hono';
import { createMcpApp, type McpAppOptions } from './tools.js';

/** A web-standard MCP app: `(request, parsedBody, authInfo) => Response` (default: the SDK v2 handler of the example tools). */
export type WebMcpApp = (request: Request, parsedBody: unknown, authInfo: ReturnType<typeof pqcAuthInfo>) => Promise<Response>;

/** Options of `createHonoApp`. */
export interface HonoAppOptions extends McpAppOptions {
  /**
   * The PQC layer's options (identity, profiles, ...; on Node also `cryptoPool`, default `'auto'`); `false`: no PQC
   * layer (the benchmarks' unsigned baseline).
   */
  pqc: PQCHonoNodeOptions | false;
  /** The MCP app (default: the SDK v2 handler of the example tools). */
  mcp?: WebMcpApp;
  /** Sees every body the MCP app receives, and who sent it (tests check that no `_pqc` reaches it). */
  onBody?: (body: unknown, context: PQCRequestContext | undefined) => void;
}

export function createHonoApp(options: HonoAppOptions): { app: Hono<{ Variables: PQCVariables }>; close(): Promise<void> } {
  const handler = options.mcp ? undefined : createMcpApp(options);
  const mcp: WebMcpApp = options.mcp ?? ((request, parsedBody, authInfo) => handler!.fetch(request, { parsedBody, authInfo }));
  const app = new Hono<{ Variables: PQCVariables }>();
  app.use('*', localhostHostValidation(), localhostOriginValidation());
  if (options.pqc === false) {
    app.all('/mcp', async (c) => {
      const body: unknown = c.req.method === 'POST' ? await c.req.json() : undefined;
      options.onBody?.(body, undefined);
      return mcp(c.req.raw, body, undefined);
    });
  } else {
    app.use('*', pqc(options.pqc));
    app.all('/mcp', (c) => {
      options.onBody?.(c.get('pqcBody'), c.get('pqc'));
      return mcp(c.req.raw, c.get('pqcBody'), pqcAuthInfo(c.get('pqc')));
    });
  }
  return { app, close: async () => void (await handler?.close()) };
}
