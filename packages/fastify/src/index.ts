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
import {
  DEFAULT_MAX_BODY_BYTES,
  createPQCHandler,
  type PQCHandler,
  type PQCRequestContext,
} from '@pqc-mcp/core';
import { handleNodeRequest, nodeRequestUrl, resolveCryptoPool, type NodeServerOptions } from '@pqc-mcp/core/node';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import fp from 'fastify-plugin';

export {
  AgentIdentity,
  AuditLog,
  MemorySessionStore,
  PQCTransportError,
  type Algorithm,
  type AuditEntry,
  type AuditSink,
  type Authorizer,
  type PQCHandler,
  type PQCRequestContext,
  type PQCServerOptions,
  type PeerIdentity,
  type Profile,
  type SessionStore,
} from '@pqc-mcp/core';

/** Options of the plugin: core's server options plus `cryptoPool` (sign and verify in worker threads). */
export type PQCFastifyOptions = NodeServerOptions;

export { createWorkerPoolBackend, type CryptoPoolOption, type WorkerPoolBackend } from '@pqc-mcp/core/node';

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

/** What the core is for this request, and the URL to give it (decided on the URL the core itself sees). */
function classify(handler: PQCHandler, request: FastifyRequest): { kind: 'handshake' | 'endpoint'; url?: string } | undefined {
  const url = nodeRequestUrl(request.raw);
  const kind = handler.route(url.pathname);
  if (kind !== undefined) return { kind };
  // Fastify may route yet another spelling of the path to an endpoint's route: protect the route all the same. The
  // core then sees the route's path (a GET or DELETE envelope signed for another path fails closed).
  const routeUrl = request.routeOptions.url;
  const routeKind = routeUrl === undefined ? undefined : handler.route(routeUrl);
  return routeKind === undefined ? undefined : { kind: routeKind, url: routeUrl + url.search };
}

const plugin: FastifyPluginAsync<PQCFastifyOptions> = async (fastify, options) => {
  // Eager validation: a bad option fails `register` / `ready()` with a TypeError that names it.
  const handler = createPQCHandler(resolveCryptoPool(options));
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;

  fastify.decorate('pqc', handler);
  fastify.decorateRequest('pqc', undefined);

  // The cleaned body of a protected request is at most maxBodyBytes: let Fastify's parser accept that much.
  fastify.addHook('onRoute', (route: RouteOptions) => {
    if (route.bodyLimit === undefined && handler.route(route.url) === 'endpoint') {
      route.bodyLimit = Math.max(fastify.initialConfig.bodyLimit ?? 0, maxBodyBytes);
    }
  });

  // Routes for the handshake, so Fastify dispatches it here (the onRequest hook answers it; the handler never runs).
  const handshakePaths = new Set([handler.handshakePath]);
  for (const endpoint of handler.endpoints) {
    const legacy = new URL('handshake', new URL(endpoint, 'http://localhost')).pathname;
    if (handler.route(legacy) === 'handshake') handshakePaths.add(legacy); // the v1 profile's /handshake
  }
  for (const path of handshakePaths) {
    // Registered inside a prefixed context, the plugin's routes get the prefix: the paths must lie under it.
    if (fastify.prefix && !path.startsWith(`${fastify.prefix}/`)) {
      throw new TypeError(`pqc: the handshake path ${path} is outside the prefix ${fastify.prefix} this plugin is registered under`);
    }
    const url = fastify.prefix ? path.slice(fastify.prefix.length) : path;
    if (fastify.hasRoute({ method: 'POST', url })) continue;
    fastify.route({
      method: ['GET', 'POST'],
      url,
      handler: async () => {
        throw new Error('pqc: the handshake is answered by the onRequest hook');
      },
    });
  }

  fastify.addHook('onRequest', (request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) => {
    const target = classify(handler, request);
    if (target === undefined) {
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
        if (parsedBody !== undefined) (request as PendingRequest)[cleanBody] = Buffer.from(JSON.stringify(parsedBody));
        done();
      },
      {
        url: target.url,
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
 * The PQC plugin: `fastify.register(pqcPlugin, { identity })`. Register it before the MCP routes (its hooks apply to
 * routes registered after it, in its context and below; at the root for the whole app).
 */
export const pqcPlugin = fp(plugin, { name: '@pqc-mcp/fastify', fastify: '5.x' });

export default pqcPlugin;
