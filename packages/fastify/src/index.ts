/**
 * `@pqc-mcp/fastify`: the PQC server layer of `@pqc-mcp/core` as a Fastify plugin.
 *
 * A thin translation: every request to the handshake path or to a protected endpoint goes through the core from an
 * `onRequest` hook, before Fastify reads the body. The core reads the raw bytes itself (so its own size limit and
 * its own §6 error bodies apply), answers the handshake and every rejection directly (the reply is hijacked and the
 * route never runs), and for a verified request lets Fastify continue: the body without `_pqc` is fed to Fastify's
 * own content-type parser through a `preParsing` hook, `request.pqc` tells who is calling, and whatever the route
 * answers (`reply.send()` or bytes written to `reply.raw`, e.g. by the MCP SDK's Node transport) is captured, signed
 * by the core and written out.
 */
import { Readable } from 'node:stream';
import { isPQCHandler } from '@pqc-mcp/core/internal';
import { createPQCHandler, pqcAuthInfo, type PQCHandler, type PQCRequestContext } from '@pqc-mcp/core';
import { handleNodeRequest, nodeRequestUrl, resolveCryptoPool, type NodeServerOptions } from '@pqc-mcp/core/node';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import fp from 'fastify-plugin';

// The same re-exports in every adapter: the identity a server needs, and the types of its options and context.
export { AgentIdentity, pqcAuthInfo, type PQCAuthInfo, type PQCHandler, type PQCRequestContext, type PQCServerOptions } from '@pqc-mcp/core';
export type { CryptoPoolOption } from '@pqc-mcp/core/node';

/** Options of the plugin: core's server options plus `cryptoPool` (sign and verify in worker threads). */
export type PQCFastifyOptions = NodeServerOptions;

declare module 'fastify' {
  interface FastifyRequest {
    /** Who is calling: set on every verified request to a protected endpoint, `undefined` elsewhere. */
    pqc: PQCRequestContext | undefined;
  }
  interface FastifyInstance {
    /** The plugin's core handler: its `identity`, `audit` log, session `store` and `info()`. */
    pqc: PQCHandler;
  }
}

/** The verified body without `_pqc`, waiting for the `preParsing` hook. */
const cleanBody = Symbol('pqc.cleanBody');
type PendingRequest = FastifyRequest & { [cleanBody]?: Uint8Array };

/**
 * Whether a route's pattern may match a path the core protects: a wildcard (`/*`, `/mcp*`), or a last segment that
 * is a parameter (`/:name`, `/api/:tool`), may match a path ending in the endpoint's, whatever it spells.
 */
function mayMatchEndpoint(pattern: string): boolean {
  if (pattern.includes('*')) return true;
  // A parameter's regular expression, `(...)`, may hold slashes: leave it out when finding the last segment.
  let depth = 0;
  let outside = '';
  for (const ch of pattern) {
    if (ch === '(') depth++;
    if (depth === 0) outside += ch;
    if (ch === ')' && depth > 0) depth--;
  }
  const last = outside.slice(outside.lastIndexOf('/') + 1);
  return last.includes(':');
}

/**
 * The path the core decides protection on. A route whose pattern is an endpoint's, or may match one (see
 * `mayMatchEndpoint`), is protected on every path it serves (fail closed: its handler may be the MCP server); any
 * other route, and a request that matched none, by the path received.
 */
function routedPath(request: FastifyRequest, handler: PQCHandler): string {
  const pattern = request.routeOptions.url;
  if (pattern !== undefined && handler.route(pattern) !== undefined) return pattern;
  if (pattern !== undefined && mayMatchEndpoint(pattern)) return handler.options.endpoints[0]!;
  return nodeRequestUrl(request.raw).pathname;
}

const plugin: FastifyPluginAsync<PQCFastifyOptions | { handler: PQCHandler }> = async (fastify, options) => {
  // Eager validation: a bad option fails `register` / `ready()` with a TypeError that names it.
  const given = (options as { handler?: unknown }).handler;
  const handler = isPQCHandler(given) ? given : createPQCHandler(resolveCryptoPool(options as PQCFastifyOptions));
  const { maxBodyBytes, handshakePath, legacyHandshakePath } = handler.options;

  fastify.decorate('pqc', handler);
  fastify.decorateRequest('pqc', undefined);

  // The cleaned body of a protected request is at most maxBodyBytes: let Fastify's parser accept that much.
  fastify.addHook('onRoute', (route: RouteOptions) => {
    if (route.bodyLimit === undefined && handler.route(route.url) === 'endpoint') {
      route.bodyLimit = Math.max(fastify.initialConfig.bodyLimit ?? 0, maxBodyBytes);
    }
  });

  // Routes for the handshake paths (and the v1 profile's, answered `unsupported_version` while v1 is off), so that
  // Fastify dispatches them here: the onRequest hook answers them, the handler never runs. Inside a prefixed context
  // they get the prefix, beside the endpoints registered there.
  for (const path of new Set([handshakePath, legacyHandshakePath])) {
    const url = fastify.prefix && path.startsWith(`${fastify.prefix}/`) ? path.slice(fastify.prefix.length) : path;
    if (fastify.hasRoute({ method: 'POST', url })) continue;
    fastify.route({
      method: ['GET', 'POST', 'DELETE'],
      url,
      handler: async () => {
        throw new Error('pqc: the handshake is answered by the onRequest hook');
      },
    });
  }

  fastify.addHook('onRequest', (request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) => {
    const path = routedPath(request, handler);
    if (handler.route(path) === undefined) {
      done();
      return;
    }
    let continued = false;
    let direct = false;
    handleNodeRequest(
      handler,
      request.raw,
      reply.raw,
      (parsedBody, context) => {
        continued = true;
        request.pqc = context;
        // Where the MCP SDK's Node handlers (v2 `toNodeHandler(request.raw, ...)`, 1.x transports) read the caller.
        if ((request.raw as { auth?: unknown }).auth === undefined && context) Object.assign(request.raw, { auth: pqcAuthInfo(context) });
        if (parsedBody !== undefined) (request as PendingRequest)[cleanBody] = Buffer.from(JSON.stringify(parsedBody));
        done();
      },
      {
        routedPath: path,
        beforeDirectResponse: () => {
          direct = true;
          reply.hijack();
        },
      },
    ).catch((err: unknown) => {
      if (!continued && !direct) {
        // Nothing was written yet (e.g. the session store failed): Fastify's error handler answers.
        done(err instanceof Error ? err : new Error(String(err)));
        return;
      }
      // Typically the client went away mid-response.
      request.log.debug({ err }, 'pqc: response not completed');
      if (!reply.raw.writableEnded) reply.raw.destroy();
    });
  });

  // A verified POST: Fastify parses the cleaned body (without `_pqc`) with the app's own content-type parsers.
  fastify.addHook('preParsing', (request: FastifyRequest, _reply: FastifyReply, payload, done) => {
    const body = (request as PendingRequest)[cleanBody];
    if (body === undefined) {
      done(null, payload);
      return;
    }
    delete (request as PendingRequest)[cleanBody];
    const limit = request.routeOptions.bodyLimit;
    if (limit !== undefined && body.byteLength > limit) {
      request.log.warn(
        `pqc: the verified body (${body.byteLength} bytes) exceeds this route's bodyLimit (${limit}): declare the route after ` +
          `\`await fastify.register(pqcPlugin)\` (or in a plugin registered after it), or give it bodyLimit >= maxBodyBytes`,
      );
    }
    const declared = request.headers['content-length'];
    // Fastify checks content-length against what the stream reports as received (the original, verified bytes).
    const replacement = Object.assign(Readable.from([body]), {
      receivedEncodedLength: declared === undefined ? body.byteLength : Number(declared),
    });
    done(null, replacement);
  });
};

/**
 * The PQC plugin: `fastify.register(pqcPlugin, { identity })` (or `{ handler }`, an existing `PQCHandler`). Register it
 * before the MCP routes (its hooks apply to routes registered after it, in its context and below; at the root for the
 * whole app).
 */
export const pqcPlugin = fp(plugin, { name: '@pqc-mcp/fastify', fastify: '5.x' });

export default pqcPlugin;
