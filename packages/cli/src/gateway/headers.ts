/**
 * What the gateway passes between a client and an HTTP upstream besides the body: allow-lists, never deny-lists.
 * The upstream gets the MCP headers it needs, the verified client DID and forwarding headers the gateway computes
 * itself; a client's `Authorization`, `Cookie`, `X-Forwarded-*`, `Forwarded` or anything else never reach it. The
 * client gets the upstream's media type, caching and MCP session headers; nothing else (hop-by-hop, cookies, CORS,
 * redirects) comes back.
 */
import { MCP_SESSION_HEADER } from '@pqc-mcp/core/internal';
import type { PQCRequestContext } from '@pqc-mcp/core';

/** The header that tells the upstream which client the gateway verified (set by the gateway alone). */
export const PEER_DID_HEADER = 'PQC-Peer-DID';

/** Request headers an MCP server needs, passed as received (the session's owner was checked by core, §9). */
const REQUEST_ALLOW = ['content-type', 'accept', 'mcp-protocol-version', MCP_SESSION_HEADER, 'mcp-method', 'mcp-name'].map((h) => h.toLowerCase());

/** Response headers passed back to the client. */
const RESPONSE_ALLOW = ['content-type', 'cache-control', MCP_SESSION_HEADER, 'retry-after', 'x-accel-buffering'].map((h) => h.toLowerCase());

/** A Host header value that is a plain host[:port] (anything else is not passed on as X-Forwarded-Host). */
const PLAIN_HOST = /^(?:[A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

/** What the gateway knows of the connection a request came on. */
export interface ConnectionFacts {
  /** The peer's IP address as the socket sees it. */
  remoteAddress: string | undefined;
  /** The Host header received. */
  host: string | undefined;
}

/** The headers of a request to the upstream: the allow-list, the verified DID, fresh forwarding headers. */
export function upstreamRequestHeaders(incoming: Headers, context: PQCRequestContext, connection: ConnectionFacts): Headers {
  const out = new Headers();
  for (const name of REQUEST_ALLOW) {
    const value = incoming.get(name);
    if (value !== null) out.set(name, value);
  }
  out.set(PEER_DID_HEADER, context.peerDid);
  if (connection.remoteAddress) out.set('x-forwarded-for', connection.remoteAddress);
  if (connection.host && PLAIN_HOST.test(connection.host)) out.set('x-forwarded-host', connection.host);
  out.set('x-forwarded-proto', 'http');
  return out;
}

/** The upstream's response headers for the client: the allow-list only. */
export function clientResponseHeaders(upstream: Headers): Headers {
  const out = new Headers();
  for (const name of RESPONSE_ALLOW) {
    const value = upstream.get(name);
    if (value !== null) out.set(name, value);
  }
  return out;
}

/**
 * The root of a query parameter's name as query parsers read it, lowercased: its first run of `[A-Za-z0-9_-]` after
 * any leading space or control character. `tenant` for `tenant`, `Tenant[]`, `tenant[0]`, `tenant.x`, ` tenant`,
 * `tenant%00x` (qs and PHP read those as the same parameter, PHP trims leading spaces and cuts at NUL).
 */
function rootName(name: string): string {
  let decoded = name.replace(/\+/g, ' ');
  try {
    decoded = decodeURIComponent(decoded);
  } catch {
    // kept as received
  }
  let start = 0; // past leading spaces and control characters
  while (start < decoded.length && decoded.charCodeAt(start) <= 0x20) start++;
  return /^[A-Za-z0-9_-]*/.exec(decoded.slice(start))![0].toLowerCase();
}

/** The roots of the names one `&`-separated part of a query carries (`;` separates parameters to some parsers). */
function partRoots(part: string): string[] {
  return part.split(';').map((p) => rootName(p.split('=', 1)[0]!));
}

/**
 * The upstream URL for a request target the client signed (core checked `http.path` equals it): always the
 * upstream's path, with the upstream URL's own query first and then the client's query parts, byte for byte, less
 * any part that names a parameter of the upstream URL's own query as any parser may read it (`tenant[]`, `Tenant`,
 * `tenant.x`, `x=1;tenant=y`): an API key or tenant the operator configured is never overridden or doubled by a
 * client.
 */
export function upstreamUrl(base: URL, target: string): URL {
  const url = new URL(base.href);
  url.hash = '';
  const q = target.indexOf('?');
  if (q === -1) return url;
  const query = target.slice(q + 1).split('#', 1)[0]!;
  const own = new Set([...base.searchParams.keys()].map(rootName).filter((root) => root !== ''));
  const kept = query.split('&').filter((part) => part !== '' && !partRoots(part).some((root) => own.has(root)));
  if (kept.length === 0) return url;
  const ownQuery = base.search.replace(/^\?/, '');
  url.search = `?${[ownQuery, ...kept].filter(Boolean).join('&')}`;
  return url;
}
