/**
 * The Fastify app of `examples/fastify-server.ts`, importable so tests build the same app without a process:
 * `pqcPlugin` registered first, then a stateful MCP endpoint on the SDK's Node `StreamableHTTPServerTransport`
 * (one transport per Mcp-Session-Id), driven from hijacked routes. The plugin signs what the transport writes to
 * `reply.raw`.
 */
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import { pqcPlugin, type PQCFastifyOptions } from '@pqc-mcp/fastify';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import { openMcpSession } from './tools.js';

/** Options of `createFastifyApp`. */
export interface FastifyAppOptions {
  /** The PQC layer's options (identity, profiles, cryptoPool, ...); `false`: no PQC layer (the benchmarks' unsigned baseline). */
  pqc: PQCFastifyOptions | false;
  /** Answer POSTs with JSON instead of an SSE stream (default false: SSE). */
  enableJsonResponse?: boolean;
  /** Fastify's own options (default: `{ logger: false }`). */
  fastify?: FastifyServerOptions;
  /** Sees every body the MCP app receives (tests check that no `_pqc` reaches it). */
  onBody?: (body: unknown, request: FastifyRequest) => void;
}

/** The app and a `closeSessions()` that closes every open MCP session (for shutdown). */
export interface FastifyMcpApp {
  app: FastifyInstance;
  closeSessions(): Promise<void>;
}

function badRequest(reply: FastifyReply, message: string): FastifyReply {
  return reply.code(400).send({ jsonrpc: '2.0', id: null, error: { code: -32000, message } });
}

function sessionIdOf(request: FastifyRequest): string | undefined {
  const value = request.headers['mcp-session-id'];
  return typeof value === 'string' ? value : undefined;
}

export function createFastifyApp(options: FastifyAppOptions): FastifyMcpApp {
  const transports = new Map<string, StreamableHTTPServerTransport>();
  const app = Fastify(options.fastify ?? { logger: false });
  if (options.pqc !== false) app.register(pqcPlugin, options.pqc);
  // The routes in a plugin registered after pqcPlugin: by the time they are declared the PQC plugin is loaded, so it
  // sizes their bodyLimit for maxBodyBytes (routes declared before it loads keep Fastify's default of 1 MiB).
  app.register(async (mcp) => mcpRoutes(mcp, options, transports));

  return {
    app,
    async closeSessions() {
      await Promise.all([...transports.values()].map((t) => t.close()));
      transports.clear();
    },
  };
}

function mcpRoutes(app: FastifyInstance, options: FastifyAppOptions, transports: Map<string, StreamableHTTPServerTransport>): void {
  app.post('/mcp', async (request, reply) => {
    options.onBody?.(request.body, request);
    const sessionId = sessionIdOf(request);
    let transport = sessionId ? transports.get(sessionId) : undefined;
    if (!transport) {
      if (sessionId || !isInitializeRequest(request.body)) return badRequest(reply, 'Bad Request: no valid session');
      transport = await openMcpSession(transports, options.enableJsonResponse ?? false, (o) => new StreamableHTTPServerTransport(o));
    }
    // The transport writes to the Node response itself: Fastify must not answer too.
    reply.hijack();
    await transport.handleRequest(request.raw, reply.raw, request.body);
  });

  // GET (the server-to-client SSE stream) and DELETE (end of session) need an existing session.
  const bodyless = async (request: FastifyRequest, reply: FastifyReply) => {
    const transport = transports.get(sessionIdOf(request) ?? '');
    if (!transport) return badRequest(reply, 'Bad Request: no valid session');
    reply.hijack();
    await transport.handleRequest(request.raw, reply.raw);
  };
  app.get('/mcp', bodyless);
  app.delete('/mcp', bodyless);
}
