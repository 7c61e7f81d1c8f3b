/**
 * An MCP server on Cloudflare Workers with post-quantum signed traffic: `@pqc-mcp/hono` in front of the MCP SDK v2's
 * `createMcpHandler`, tools `echo` and `add`. Module syntax, web standards only.
 *
 *   pnpm example:edge        bundles this file with esbuild and serves it under workerd (miniflare): see edge-serve.ts
 *
 * Bindings (wrangler.toml in packages/durable-object/README.md):
 *   PQC_IDENTITY   secret: the server identity, the JWK text of an identity file (`"priv"` included)
 *   PQC_SESSIONS   Durable Object namespace of `PQCSessionStoreObject` (SQLite-backed): PQC sessions and nonces
 *   PQC_JSON, PQC_PROFILES, PQC_AUTHORIZED_DIDS, PQC_MAX_BODY_BYTES, PQC_MAX_BATCH, PQC_SESSION_TTL_SEC: optional
 *   vars, as for the other example servers (examples/shared/env.ts)
 *
 * Where state lives, and why: PQC sessions and the nonces seen are in one `PQCSessionStoreObject`, so every isolate,
 * in every location, checks a replay against the same strongly consistent store (an isolate's memory is neither
 * shared nor lasting, and Workers KV is eventually consistent). MCP itself needs no state: the SDK v2 handler serves
 * both protocol eras statelessly, so any isolate answers any request.
 */
import { AgentIdentity, detectBackends } from '@pqc-mcp/core';
import { DurableObjectSessionStore, PQCSessionStoreObject, type DurableObjectNamespaceLike } from '@pqc-mcp/durable-object';
import { readLimits, readProfiles } from './shared/env.js';
import { createHonoApp } from './shared/hono-app.js';

export { PQCSessionStoreObject };

/** The Worker's bindings. */
export interface Env {
  PQC_IDENTITY?: string;
  PQC_SESSIONS: DurableObjectNamespaceLike;
  PQC_JSON?: string;
  PQC_PROFILES?: string;
  PQC_AUTHORIZED_DIDS?: string;
  PQC_MAX_BODY_BYTES?: string;
  PQC_MAX_BATCH?: string;
  PQC_SESSION_TTL_SEC?: string;
}

type App = ReturnType<typeof createHonoApp>['app'];

/** The app of this isolate, made on the first request (bindings are only known then). */
async function createApp(env: Env): Promise<App> {
  if (!env.PQC_IDENTITY) throw new Error('the PQC_IDENTITY secret is not set (the JWK text of the server identity file)');
  // Finish backend detection before the identity is made: noble on workerd, which has no ML-DSA in WebCrypto.
  await detectBackends();
  const identity = AgentIdentity.fromJwk(env.PQC_IDENTITY);
  // Once per isolate, in the Worker's logs (`wrangler tail`), as the other example servers say it at start.
  console.log(`PQC backend: ${identity.backend.name}`);
  return createHonoApp({
    pqc: {
      identity,
      profiles: readProfiles(env.PQC_PROFILES),
      ...readLimits({
        PQC_AUTHORIZED_DIDS: env.PQC_AUTHORIZED_DIDS,
        PQC_MAX_BODY_BYTES: env.PQC_MAX_BODY_BYTES,
        PQC_MAX_BATCH: env.PQC_MAX_BATCH,
        PQC_SESSION_TTL_SEC: env.PQC_SESSION_TTL_SEC,
      }),
      store: new DurableObjectSessionStore(env.PQC_SESSIONS),
    },
    responseMode: env.PQC_JSON === '1' ? 'json' : 'auto',
  }).app;
}

let app: Promise<App> | undefined;

export default {
  async fetch(request: Request, env: Env, ctx: unknown): Promise<Response> {
    const current = (app ??= createApp(env));
    let ready: App;
    try {
      ready = await current;
    } catch (err) {
      if (app === current) app = undefined; // try again on the next request (e.g. once the secret is set)
      return Response.json({ error: err instanceof Error ? err.message : String(err) }, { status: 500 });
    }
    return ready.fetch(request, env, ctx as never);
  },
};
