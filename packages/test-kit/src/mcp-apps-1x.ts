/**
 * MCP apps on the 1.x SDK (`@modelcontextprotocol/sdk`, the maintenance line), so that every adapter and the gateway
 * are tested against 1.x servers too: the example tools `echo(text)`, `add(a, b)` and `whoami`, a stateful web-standard app (one
 * SDK transport per Mcp-Session-Id) and a stateful Node handler. The examples themselves run the v2 SDK.
 */
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { pqcContextOf } from '@pqc-mcp/core';

/** An MCP server with the example tools. */
export function createToolServer1x(): McpServer {
  const server = new McpServer({ name: 'pqc-mcp-example', version: '0.1.0' });
  server.registerTool(
    'echo',
    { description: 'Echoes the text back', inputSchema: { text: z.string() } },
    async ({ text }) => ({ content: [{ type: 'text', text }] }),
  );
  server.registerTool(
    'add',
    { description: 'Adds two numbers', inputSchema: { a: z.number(), b: z.number() } },
    async ({ a, b }) => ({ content: [{ type: 'text', text: String(a + b) }] }),
  );
  server.registerTool('whoami', { description: 'The verified caller (its DID), or anonymous' }, async (extra) => ({
    content: [{ type: 'text', text: pqcContextOf(extra.authInfo)?.peerDid ?? 'anonymous' }],
  }));
  return server;
}

/** The options every stateful SDK transport of the examples is made with (Node's and the web-standard one take the same). */
export interface SessionTransportOptions {
  sessionIdGenerator: () => string;
  enableJsonResponse: boolean;
  onsessioninitialized: (sessionId: string) => void;
  onsessionclosed: (sessionId: string) => void;
}

/**
 * Opens a stateful MCP session: a new SDK transport made by `create`, connected to a new tool server, and kept in
 * `transports` under its Mcp-Session-Id for as long as the session lives.
 */
export async function openMcpSession<T extends Transport>(
  transports: Map<string, T>,
  enableJsonResponse: boolean,
  create: (options: SessionTransportOptions) => T,
): Promise<T> {
  const created: T = create({
    sessionIdGenerator: () => crypto.randomUUID(),
    enableJsonResponse,
    onsessioninitialized: (id) => {
      transports.set(id, created);
    },
    onsessionclosed: (id) => {
      transports.delete(id);
    },
  });
  created.onclose = () => {
    if (created.sessionId) transports.delete(created.sessionId);
  };
  await createToolServer1x().connect(created);
  return created;
}

/** Options of the web-standard MCP app. */
export interface McpAppOptions {
  /** Answer POSTs with JSON instead of an SSE stream (default false: SSE). */
  enableJsonResponse?: boolean;
}

/** A stateful MCP endpoint over web standards: `(request, parsedBody) => Response`. */
export function createWebMcpApp1x(options: McpAppOptions = {}): (request: Request, parsedBody?: unknown, authInfo?: AuthInfo) => Promise<Response> {
  const transports = new Map<string, WebStandardStreamableHTTPServerTransport>();
  return async (request, parsedBody, authInfo) => {
    const sessionId = request.headers.get('mcp-session-id');
    let transport = sessionId ? transports.get(sessionId) : undefined;
    if (!transport) {
      if (request.method !== 'POST' || sessionId || !isInitializeRequest(parsedBody)) {
        return Response.json(
          { jsonrpc: '2.0', id: null, error: { code: -32000, message: 'Bad Request: no valid session' } },
          { status: 400 },
        );
      }
      transport = await openMcpSession(transports, options.enableJsonResponse ?? false, (o) => new WebStandardStreamableHTTPServerTransport(o));
    }
    return transport.handleRequest(request, { parsedBody, authInfo });
  };
}

/** A stateful MCP endpoint on the 1.x SDK's Node transport: `(req, res, parsedBody)`, and `closeSessions()`. */
export function createNodeMcpApp1x(options: McpAppOptions = {}): {
  handle(req: IncomingMessage, res: ServerResponse, parsedBody?: unknown): Promise<void>;
  closeSessions(): Promise<void>;
} {
  const transports = new Map<string, StreamableHTTPServerTransport>();
  return {
    async handle(req, res, parsedBody) {
      const header = req.headers['mcp-session-id'];
      const sessionId = typeof header === 'string' ? header : undefined;
      let transport = sessionId ? transports.get(sessionId) : undefined;
      if (!transport) {
        if (req.method !== 'POST' || sessionId || !isInitializeRequest(parsedBody)) {
          res.writeHead(400, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32000, message: 'Bad Request: no valid session' } }));
          return;
        }
        transport = await openMcpSession(transports, options.enableJsonResponse ?? false, (o) => new StreamableHTTPServerTransport(o));
      }
      await transport.handleRequest(req, res, parsedBody);
    },
    async closeSessions() {
      await Promise.all([...transports.values()].map((t) => t.close()));
      transports.clear();
    },
  };
}
