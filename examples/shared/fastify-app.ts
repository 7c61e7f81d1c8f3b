/**
 * The Fastify app of `examples/fastify-server.ts`, importable so tests build the same app without a process: the
 * SDK's localhost Host-header guard (`@modelcontextprotocol/fastify`), `pqcPlugin` registered first, and the MCP endpoint
 * (the SDK v2 handler through `toNodeHandler`, told who called) in a plugin registered after it. The route hijacks
 * the reply and the handler writes to `reply.raw`; the PQC plugin signs what it writes.
 */
import { localhostHostValidation } from '@modelcontextprotocol/fastify';
import { toNodeHandler } from '@modelcontextprotocol/node';
import { pqcPlugin, type PQCFastifyOptions } from '@pqc-mcp/fastify';
import Fastify, { type FastifyInstance, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import type { NodeMcpApp } from './express-app.js';
import { createMcpApp, type McpAppOptions } from './tools.js';

/** Options of `createFastifyApp`. */
export interface FastifyAppOptions extends McpAppOptions {
  /** The PQC layer's options (identity, profiles, cryptoPool, ...); `false`: no PQC layer (the benchmarks' unsigned baseline). */
  pqc: PQCFastifyOptions | false;
  /** The MCP app (default: the SDK v2 handler of the example tools). */
  mcp?: NodeMcpApp;
  /** Fastify's own options (default `{ logger: false }`). */
  fastify?: FastifyServerOptions;
  /** Sees every body the MCP app receives (tests check that no `_pqc` reaches it). */
  onBody?: (body: unknown, request: FastifyRequest) => void;
}

export function createFastifyApp(options: FastifyAppOptions): { app: FastifyInstance; close(): Promise<void> } {
  const handler = options.mcp ? undefined : createMcpApp(options);
  const mcp: NodeMcpApp = options.mcp ?? (toNodeHandler(handler!) as NodeMcpApp);
  const app = Fastify(options.fastify ?? { logger: false });
  app.addHook('onRequest', localhostHostValidation());
  if (options.pqc !== false) app.register(pqcPlugin, options.pqc);
  // Routes in a plugin registered after pqcPlugin: the plugin, loaded by then, sizes their bodyLimit for maxBodyBytes.
  app.register(async (routes) => {
    routes.all('/mcp', async (request, reply) => {
      options.onBody?.(request.body, request);
      reply.hijack(); // the handler writes to the Node response itself: Fastify must not answer too
      await mcp(request.raw, reply.raw, request.body); // request.raw.auth: the verified caller, set by pqcPlugin
    });
  });
  return {
    app,
    async close() {
      await app.close();
      await handler?.close();
    },
  };
}
