/**
 * The server side of docs/PROTOCOL.md as one web-standard function: `handler.handle(request, next)` answers the
 * handshake path, verifies every request to a protected endpoint before the application sees it, runs the
 * application through `next`, and signs every JSON-RPC message it answers. Framework adapters (Express, Fastify,
 * Hono) only translate to and from `Request` and `Response`, and tell core the path their framework routes on.
 */
import { MessageSigner } from '../envelope.js';
import { MCP_SESSION_HEADER, handshakePathFor } from '../protocol.js';
import type { AgentIdentity } from '../identity.js';
import type { AuditLog } from '../audit.js';
import type { SessionStore } from '../store/types.js';
import { discardBody, endTelemetry, reject, type RequestFacts, type ServerContext } from './context.js';
import { verifyBodyless } from './bodyless.js';
import { handleHandshakePath, serverInfo, type ServerInfo } from './handshake-route.js';
import { resolveServerOptions, type PQCRequestResult, type PQCServerOptions, type ResolvedServerOptions } from './options.js';
import { PeerKeyCache } from './peers.js';
import { forwardedRequest, handlePost, type PQCNext } from './post.js';
import { signAnswer } from './respond.js';
import { createRouter, originForm, type RouteKind } from './route.js';

/** What an adapter knows of a request beyond the web `Request`. */
export interface HandleInit {
  /**
   * The request target exactly as received (`req.url` of Node): what a client's `http.path` is checked against.
   * Default: the path and query of `request.url`.
   */
  target?: string;
  /** The path the framework routes this request on (Express: `req.baseUrl + req.path`). Default: `request.url`'s. */
  routedPath?: string;
}

/** The server layer, created once per server by `createPQCHandler`. */
export interface PQCHandler {
  /** The options as resolved (every default applied): adapters read paths and limits here, never recompute them. */
  readonly options: ResolvedServerOptions;
  readonly identity: AgentIdentity;
  readonly store: SessionStore;
  readonly audit: AuditLog;
  /** What a routed path is to this layer: the handshake path, a protected endpoint, or neither (`undefined`). */
  route(routedPath: string): RouteKind;
  /** Handles one request: the handshake path, a protected endpoint (the application through `next`), or `next` as is. */
  handle(request: Request, next: PQCNext, init?: HandleInit): Promise<Response>;
  /** The server's public identity, as `GET pqc/handshake` answers it. */
  info(): ServerInfo;
}

function newResult(): PQCRequestResult {
  return { kind: 'passed', status: 0, reason: null, detail: null, peerDid: null, sessionId: null, methods: [], signed: 0 };
}

/** The methods a protected endpoint answers (`Allow`). */
const ENDPOINT_METHODS = 'GET, HEAD, POST, DELETE, OPTIONS';
/** The endpoint's methods whose verification telemetry measures. */
const ENDPOINT_MEASURED = new Set(['POST', 'GET', 'HEAD', 'DELETE']);

/** Creates the server layer. Validates options at once (throws a `TypeError` naming a bad option). */
export function createPQCHandler(options: PQCServerOptions): PQCHandler {
  const o = resolveServerOptions(options);
  const ctx: ServerContext = {
    o,
    signer: new MessageSigner(o.identity),
    // Client keys are prepared on the backend the server signs with (a worker pool verifies off the event loop too).
    peers: new PeerKeyCache(undefined, o.identity.backend),
    route: createRouter(o),
  };

  async function endpoint(facts: RequestFacts, next: PQCNext): Promise<Response> {
    const method = facts.request.method;
    if (method === 'POST') return handlePost(ctx, facts, next);
    if (method === 'GET' || method === 'HEAD' || method === 'DELETE') {
      const verified = await verifyBodyless(ctx, facts);
      if (verified instanceof Response) return verified;
      facts.result.kind = method === 'DELETE' ? 'end-mcp-session' : 'stream';
      const { session } = verified;
      if (facts.telemetry) endTelemetry(ctx, facts);
      const forwarded = forwardedRequest(facts.request, null, 2);
      const answer = await next(forwarded, undefined, { sessionId: session.sessionId, peerDid: session.peerDid, profile: session.profile });
      return signAnswer(ctx, facts, answer, { session, byId: new Map(), first: undefined });
    }
    // Nothing else reaches the application unverified, not even OPTIONS: CORS middleware goes before this layer and
    // answers preflights itself; one that arrives here is answered with what the endpoint allows.
    await discardBody(facts.request);
    if (method === 'OPTIONS') {
      Object.assign(facts.result, { kind: 'info', status: 204 });
      return new Response(null, { status: 204, headers: { allow: ENDPOINT_METHODS } });
    }
    Object.assign(facts.result, { kind: 'refused', status: 405 });
    return new Response(null, { status: 405, headers: { allow: ENDPOINT_METHODS } });
  }

  // Beside the path requested, as a client derives it (§5): right under a mount prefix too. A handshake path set in the
  // options is where it is configured.
  const defaultHandshakePath = o.handshakePath === handshakePathFor(o.endpoints[0]!);
  function handshakeUrlFor(url: URL, kind: RouteKind): string {
    if (kind === 'handshake') return new URL(url.pathname, url).href;
    if (!defaultHandshakePath) return new URL(o.handshakePath, url).href;
    return new URL('pqc/handshake', new URL(url.pathname.replace(/\/+$/, '') || '/', url)).href;
  }

  async function handle(request: Request, next: PQCNext, init: HandleInit = {}): Promise<Response> {
    const url = new URL(request.url);
    // A target that routers may read differently (`http:///mcp`), or a URL with credentials (from an absolute-form
    // target, `http://user@h/mcp`, that a web runtime passed on: a `Request` cannot even be built from it to read its
    // body), is refused whatever the route: the application behind could route it anywhere (fail closed).
    const credentials = url.username !== '' || url.password !== '';
    const target = credentials ? undefined : originForm(init.target ?? url.pathname + url.search);
    const kind = target === undefined ? 'endpoint' : ctx.route(init.routedPath ?? url.pathname);
    if (kind === undefined) return next(request, undefined, undefined);
    const result = newResult();
    const query = target === undefined ? '' : new URL(target, url).search;
    const publicPath = o.publicPath === undefined ? undefined : kind === 'handshake' ? handshakePathFor(o.publicPath) : o.publicPath;
    const facts: RequestFacts = {
      request,
      target: target ?? '',
      expectedPath: publicPath !== undefined ? publicPath + query : (target ?? ''),
      mcpSessionId: request.headers.get(MCP_SESSION_HEADER),
      handshakeUrl: handshakeUrlFor(url, kind),
      result,
    };
    const telemetry = ctx.o.telemetry;
    if (telemetry && target !== undefined) {
      // Only what the PQC layer decides is measured: a handshake, and a request to the endpoint until its verdict.
      if (kind === 'handshake' ? request.method === 'POST' : ENDPOINT_MEASURED.has(request.method)) {
        facts.telemetry = telemetry.begin(kind === 'handshake' ? 'handshake' : 'verify', request.method);
      }
    }
    let response: Response;
    if (target === undefined) {
      await discardBody(request);
      response = reject(ctx, facts, 'invalid_envelope', null, { detail: 'the request target is not in a form every router reads alike' });
    } else if (request.headers.has('last-event-id')) {
      await discardBody(request);
      response = reject(ctx, facts, 'invalid_envelope', null, { detail: 'stream resumption (Last-Event-ID) is not part of this protocol' });
    } else if (facts.telemetry) {
      try {
        response = kind === 'handshake' ? await handleHandshakePath(ctx, facts) : await endpoint(facts, next);
      } catch (err) {
        // A failure before the verdict (a store, the application before it answered) ends the measure as one.
        if (result.status === 0) result.status = 500;
        endTelemetry(ctx, facts);
        throw err;
      }
    } else {
      response = kind === 'handshake' ? await handleHandshakePath(ctx, facts) : await endpoint(facts, next);
    }
    if (result.status === 0) result.status = response.status;
    if (facts.telemetry) endTelemetry(ctx, facts);
    if (o.onResult) {
      try {
        o.onResult(result, request);
      } catch {
        // a failing observer must not change the answer
      }
    }
    return response;
  }

  if (o.trust) endSessionsOnWithdrawal(o);

  const handler: PQCHandler = {
    options: o,
    identity: o.identity,
    store: o.store,
    audit: o.audit,
    route: ctx.route,
    handle,
    info: () => serverInfo(ctx),
  };
  handlers.add(handler);
  return handler;
}

/** The session stores already ending sessions for a trust store (one subscription per pair). */
const withdrawalSubscriptions = new WeakMap<object, WeakSet<SessionStore>>();

/**
 * When the trust store withdraws a client (revoked, or no longer listed), its live sessions end in the session store
 * at once, so every instance sharing the store refuses its next message (`ended`), whether or not it has reloaded the
 * trust store yet. A failure is reported to the trust store's `onError`; this instance refuses the client anyway.
 */
function endSessionsOnWithdrawal(o: ResolvedServerOptions): void {
  const trust = o.trust!;
  const stores = withdrawalSubscriptions.get(trust) ?? new WeakSet<SessionStore>();
  withdrawalSubscriptions.set(trust, stores);
  if (stores.has(o.store)) return;
  stores.add(o.store);
  const store = o.store;
  trust.onWithdraw((dids) => {
    void (async () => {
      for (const did of dids) {
        try {
          await store.endPeerSessions!(did, o.retentionSec);
        } catch (err) {
          trust.reportError(new Error(`the sessions of ${did} could not be ended in the session store: ${err instanceof Error ? err.message : String(err)}`, { cause: err }));
        }
      }
    })();
  });
}

/** Every handler `createPQCHandler` made: what an adapter given "options or a handler" tells apart. */
const handlers = new WeakSet<object>();

/** True for a handler made by `createPQCHandler` (adapters take one in place of options). */
export function isPQCHandler(value: unknown): value is PQCHandler {
  return typeof value === 'object' && value !== null && handlers.has(value);
}

export type { PQCNext } from './post.js';
export type { PQCRequestContext } from './context.js';
export type { PQCRequestResult, PQCServerOptions, ResolvedServerOptions } from './options.js';
export type { ServerInfo } from './handshake-route.js';
export type { RouteKind } from './route.js';
export { routeKey, originForm } from './route.js';
export { resolveServerOptions } from './options.js';
export { pqcAuthInfo, pqcContextOf, type PQCAuthInfo } from './auth-info.js';
