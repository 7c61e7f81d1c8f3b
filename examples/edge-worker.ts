/**
 * An MCP server on Cloudflare Workers with post-quantum signed traffic: `@pqc-mcp/hono` in front of the MCP SDK's
 * `WebStandardStreamableHTTPServerTransport`, tools `echo` and `add`. Module syntax, web standards only.
 *
 *   pnpm example:edge        bundles this file with esbuild and serves it under workerd (miniflare): see edge-serve.ts
 *
 * Bindings (wrangler.toml in packages/hono/EDGE.md):
 *   PQC_IDENTITY   secret: the server identity, the JWK text of an identity file (`"priv"` included)
 *   PQC_SESSIONS   Durable Object namespace of `PQCSessionStoreObject` (SQLite-backed): PQC sessions and nonces
 *   MCP_SESSIONS   Durable Object namespace of `McpSessionObject`: one object per MCP session
 *   PQC_JSON, PQC_PROFILES, PQC_AUTHORIZED_DIDS, PQC_MAX_BODY_BYTES, PQC_SESSION_TTL_SEC: optional vars, as for the
 *   other example servers (examples/shared/env.ts)
 *
 * Where state lives, and why:
 *   - PQC sessions and the nonces seen are in one `PQCSessionStoreObject`: every isolate, in every location, checks
 *     a replay against the same strongly consistent store (an isolate's memory is neither shared nor lasting, and
 *     Workers KV is eventually consistent: see @pqc-mcp/durable-object).
 *   - The MCP session is stateful, in a Durable Object per Mcp-Session-Id. The SDK's stateful transport keeps the
 *     session in memory (its GET stream, the requests in flight), and Worker isolates are not sticky: two requests
 *     of one session may reach two isolates. A Durable Object gives each MCP session a single home, so GET streams,
 *     DELETE and server-to-client messages work as on a Node server. (The stateless alternative, a new transport per
 *     request, needs no object but refuses GET and DELETE with 405: fine for tools-only servers.) An object that
 *     was evicted forgets its session; the client then gets 404 and initializes again, as MCP specifies.
 *   - The PQC layer runs in the Worker itself, in front of both: the body is verified and stripped of `_pqc` before
 *     it is forwarded, and every message of the object's answer (JSON or SSE) is signed on its way out.
 */
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import { AgentIdentity, detectBackends } from '@pqc-mcp/core';
import { pqc, type PQCVariables } from '@pqc-mcp/hono';
import { DurableObjectSessionStore, PQCSessionStoreObject, type DurableObjectNamespaceLike } from '@pqc-mcp/durable-object';
import { Hono } from 'hono';
import { readLimits, readProfiles } from './shared/env.js';
import { createToolServer } from './shared/tools.js';

export { PQCSessionStoreObject };

/** The Worker's bindings. */
export interface Env {
  PQC_IDENTITY?: string;
  PQC_SESSIONS: DurableObjectNamespaceLike;
  MCP_SESSIONS: DurableObjectNamespaceLike;
  PQC_JSON?: string;
  PQC_PROFILES?: string;
  PQC_AUTHORIZED_DIDS?: string;
  PQC_MAX_BODY_BYTES?: string;
  PQC_SESSION_TTL_SEC?: string;
}

/** Set by the Worker on the request that opens an MCP session, with the session id (any incoming one is dropped). */
const NEW_SESSION_HEADER = 'x-pqc-example-new-mcp-session';

function jsonRpcError(status: number, code: number, message: string): Response {
  return Response.json({ jsonrpc: '2.0', id: null, error: { code, message } }, { status });
}

/** One MCP session: the SDK's stateful transport and an `McpServer` with the example tools, in memory. */
export class McpSessionObject {
  readonly #env: Env;
  #transport: WebStandardStreamableHTTPServerTransport | undefined;

  constructor(_state: unknown, env: Env) {
    this.#env = env;
  }

  async fetch(request: Request): Promise<Response> {
    const create = request.headers.get(NEW_SESSION_HEADER);
    if (!this.#transport) {
      if (!create) return jsonRpcError(404, -32001, 'Session not found');
      const transport: WebStandardStreamableHTTPServerTransport = new WebStandardStreamableHTTPServerTransport({
        sessionIdGenerator: () => create,
        enableJsonResponse: this.#env.PQC_JSON === '1',
        onsessionclosed: () => {
          if (this.#transport === transport) this.#transport = undefined;
        },
      });
      transport.onclose = () => {
        if (this.#transport === transport) this.#transport = undefined;
      };
      await createToolServer().connect(transport);
      this.#transport = transport;
    } else if (create) {
      return jsonRpcError(409, -32000, 'Bad Request: session already initialized');
    }
    return this.#transport.handleRequest(request);
  }
}

/** Sends a verified MCP request to its session's object (a new one for `initialize`). */
async function forwardToSession(request: Request, parsedBody: unknown, env: Env): Promise<Response> {
  const headers = new Headers(request.headers);
  headers.delete(NEW_SESSION_HEADER);
  let name = request.headers.get('mcp-session-id');
  if (!name) {
    if (request.method !== 'POST' || !isInitializeRequest(parsedBody)) {
      return jsonRpcError(400, -32000, 'Bad Request: no valid session');
    }
    name = crypto.randomUUID();
    headers.set(NEW_SESSION_HEADER, name);
  }
  const stub = env.MCP_SESSIONS.get(env.MCP_SESSIONS.idFromName(name) as never);
  const body = request.method === 'GET' || request.method === 'HEAD' ? undefined : await request.arrayBuffer();
  return stub.fetch(request.url, { method: request.method, headers, body });
}

/** The app of this isolate, made on the first request (bindings are only known then). */
async function createApp(env: Env): Promise<Hono<{ Variables: PQCVariables }>> {
  if (!env.PQC_IDENTITY) throw new Error('the PQC_IDENTITY secret is not set (the JWK text of the server identity file)');
  // Finish backend detection before the identity is made: noble on workerd, which has no ML-DSA in WebCrypto.
  await detectBackends();
  const identity = AgentIdentity.fromJwk(env.PQC_IDENTITY);
  const app = new Hono<{ Variables: PQCVariables }>();
  app.use(
    '*',
    pqc({
      identity,
      profiles: readProfiles(env.PQC_PROFILES),
      ...readLimits({
        PQC_AUTHORIZED_DIDS: env.PQC_AUTHORIZED_DIDS,
        PQC_MAX_BODY_BYTES: env.PQC_MAX_BODY_BYTES,
        PQC_SESSION_TTL_SEC: env.PQC_SESSION_TTL_SEC,
      }),
      store: new DurableObjectSessionStore(env.PQC_SESSIONS),
    }),
  );
  app.all('/mcp', (c) => forwardToSession(c.req.raw, c.get('pqcBody'), c.env as Env));
  return app;
}

let app: Promise<Hono<{ Variables: PQCVariables }>> | undefined;

export default {
  async fetch(request: Request, env: Env, ctx: unknown): Promise<Response> {
    const current = (app ??= createApp(env));
    let ready: Hono<{ Variables: PQCVariables }>;
    try {
      ready = await current;
    } catch (err) {
      if (app === current) app = undefined; // try again on the next request (e.g. once the secret is set)
      return Response.json({ error: err instanceof Error ? err.message : String(err) }, { status: 500 });
    }
    return ready.fetch(request, env, ctx as never);
  },
};
