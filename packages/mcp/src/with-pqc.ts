/**
 * `withPqc(options)`: the PQC client as a middleware of the MCP SDK v2 client, the idiomatic hook of that SDK:
 * `new StreamableHTTPClientTransport(url, { fetch: applyMiddlewares(withPqc(options))(fetch) })`. It is `pqcFetch`
 * over the fetch the chain hands it: handshake, signing, verification and stripping.
 */
import type { Middleware } from '@modelcontextprotocol/client';
import { pqcFetch, type FetchLike, type PQCFetchOptions } from '@pqc-mcp/core';

/** The PQC layer as an SDK client middleware: one PQC client (one session) per fetch it wraps. Options are validated now. */
export function withPqc(options: Omit<PQCFetchOptions, 'fetch'>): Middleware {
  pqcFetch({ ...options }); // a bad option fails here, where the middleware is made, as every factory of this library does
  return (next) => pqcFetch({ ...options, fetch: next as FetchLike });
}
