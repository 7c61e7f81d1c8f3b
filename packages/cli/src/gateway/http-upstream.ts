/**
 * An HTTP upstream: an unmodified MCP server on Streamable HTTP. A verified request goes on with the verified body,
 * the target the client signed mapped onto the upstream URL, and the allow-listed headers (`headers.ts`). What comes
 * back is bounded (a JSON answer whole, an event stream event by event) and must be JSON-RPC (JSON or an event
 * stream) or empty: anything else becomes a gateway error, so only what core signs reaches the client.
 */
import { mediaType, NO_BODY_STATUS } from '@pqc-mcp/core/internal';
import type { PQCRequestContext } from '@pqc-mcp/core';
import { describeError } from '../util.js';
import { clientResponseHeaders, upstreamRequestHeaders, upstreamUrl } from './headers.js';
import {
  INTERNAL_ERROR,
  UpstreamTooLargeError,
  boundEvents,
  isEmptyBody,
  jsonRpcErrorResponse,
  readBounded,
  requestIdOf,
  type ForwardInfo,
  type Upstream,
} from './upstream.js';

export interface HttpUpstreamOptions {
  url: URL;
  /** Bound on a JSON answer, and on each event of a stream, bytes. */
  maxAnswerBytes: number;
  /** How long the start-up check waits for an answer (default 5 s). */
  checkTimeoutMs?: number;
  /** The fetch used to reach the upstream (default `globalThis.fetch`). */
  fetch?: typeof fetch;
}

/** The short reason of a failed fetch: the socket error's code (ECONNREFUSED, ENOTFOUND, ...) when there is one. */
function fetchFailure(err: unknown): string {
  const cause = (err as { cause?: { code?: unknown } } | null)?.cause;
  if (typeof cause?.code === 'string') return cause.code;
  return describeError(err);
}

export function createHttpUpstream(options: HttpUpstreamOptions): Upstream {
  const base = new URL(options.url.href);
  const upstreamFetch = options.fetch ?? globalThis.fetch;
  const max = options.maxAnswerBytes;

  function badGateway(parsedBody: unknown, info: ForwardInfo, reason: string, message: string): Response {
    info.report('upstream_error', reason);
    return jsonRpcErrorResponse(502, requestIdOf(parsedBody), INTERNAL_ERROR, `Bad gateway: ${message}`);
  }

  /** The upstream's answer as core may sign it. */
  async function answer(response: Response, parsedBody: unknown, info: ForwardInfo): Promise<Response> {
    const headers = clientResponseHeaders(response.headers);
    const init = { status: response.status, headers };
    if (!response.body || NO_BODY_STATUS.has(response.status)) {
      await response.body?.cancel().catch(() => {});
      return new Response(null, init);
    }
    const type = mediaType(response.headers);
    if (type === 'text/event-stream') {
      const bounded = response.body.pipeThrough(boundEvents(max, () => info.report('upstream_error', 'event_too_large')));
      return new Response(bounded, init);
    }
    if (type === 'application/json') {
      try {
        return new Response(await readBounded(response.body, max), init);
      } catch (err) {
        if (err instanceof UpstreamTooLargeError) return badGateway(parsedBody, info, 'answer_too_large', err.message);
        return badGateway(parsedBody, info, fetchFailure(err), `the upstream's answer broke off (${fetchFailure(err)})`);
      }
    }
    if (await isEmptyBody(response.body)) return new Response(null, init);
    return badGateway(parsedBody, info, 'not_json_rpc', `the upstream answered HTTP ${response.status} with ${type || 'no media type'}, not JSON-RPC`);
  }

  return {
    description: base.href,

    async check() {
      // Any HTTP answer means the server is up (an MCP endpoint answers a bare GET with 400 or 405, or a stream).
      const signal = AbortSignal.timeout(options.checkTimeoutMs ?? 5000);
      let response: Response;
      try {
        response = await upstreamFetch(base, { method: 'GET', headers: { accept: 'text/event-stream' }, redirect: 'manual', signal });
      } catch (err) {
        const why = (err as { name?: string } | null)?.name === 'TimeoutError' ? 'no answer within the check timeout' : fetchFailure(err);
        throw new Error(`the upstream MCP server ${base.href} cannot be reached (${why})`, { cause: err });
      }
      await response.body?.cancel().catch(() => {});
    },

    async serve(request: Request, parsedBody: unknown, context: PQCRequestContext, info: ForwardInfo): Promise<Response> {
      const method = request.method;
      let body: Uint8Array | undefined;
      if (method !== 'GET' && method !== 'HEAD') {
        const bytes = new Uint8Array(await request.arrayBuffer());
        body = bytes.byteLength > 0 ? bytes : undefined;
      }
      let response: Response;
      try {
        response = await upstreamFetch(upstreamUrl(base, info.target), {
          method,
          headers: upstreamRequestHeaders(request.headers, context, info),
          body: body as Uint8Array<ArrayBuffer> | undefined,
          redirect: 'manual',
          signal: info.signal,
        });
      } catch (err) {
        const reason = fetchFailure(err);
        return badGateway(parsedBody, info, reason, `the upstream MCP server cannot be reached (${reason})`);
      }
      return answer(response, parsedBody, info);
    },

    async close() {},
  };
}
