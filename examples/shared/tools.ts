/**
 * The MCP server every example serves, on the MCP SDK v2: tools `echo(text)`, `add(a, b)` and `whoami`, served by the SDK's
 * `createMcpHandler` in both protocol eras (2025-11-25 with `initialize`, and the stateless 2026-07-28). Web
 * standards only (no `node:` import), so the edge worker bundles it too.
 */
import { McpServer, createMcpHandler, type CreateMcpHandlerOptions, type McpHttpHandler } from '@modelcontextprotocol/server';
import * as z from 'zod/v4';
import { pqcContextOf } from '@pqc-mcp/core';

/** An MCP server with the example tools (the SDK's handler makes one per request). */
export function createToolServer(): McpServer {
  const server = new McpServer({ name: 'pqc-mcp-example', version: '0.1.0' });
  server.registerTool('echo', { description: 'Echoes the text back', inputSchema: z.object({ text: z.string() }) }, async ({ text }) => ({
    content: [{ type: 'text', text }],
  }));
  server.registerTool('add', { description: 'Adds two numbers', inputSchema: z.object({ a: z.number(), b: z.number() }) }, async ({ a, b }) => ({
    content: [{ type: 'text', text: String(a + b) }],
  }));
  // Who called: the client DID verified by the PQC layer, handed to every tool as the SDK's authInfo (PROTOCOL.md §9).
  server.registerTool('whoami', { description: 'The verified caller (its DID), or anonymous' }, async (ctx) => ({
    content: [{ type: 'text', text: pqcContextOf(ctx.http?.authInfo)?.peerDid ?? 'anonymous' }],
  }));
  return server;
}

/** Options of the example MCP handler. */
export interface McpAppOptions {
  /** How the 2026-07-28 era answers: JSON, SSE, or JSON until a tool streams (default `'auto'`). */
  responseMode?: CreateMcpHandlerOptions['responseMode'];
}

/** The SDK's handler for the example tools: `handler.fetch(request, { parsedBody, authInfo })`. */
export function createMcpApp(options: McpAppOptions = {}): McpHttpHandler {
  return createMcpHandler(createToolServer, { responseMode: options.responseMode });
}
