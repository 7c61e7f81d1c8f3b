/**
 * How long a Node HTTP server keeps an idle connection open, set so that the client side always closes it first.
 *
 * A kept-alive connection is closed by whichever side's idle timer fires first. When it is the server's, a client
 * that sends its next request on that connection at that very moment (it left the connection idle just as long) has
 * the request reset: `ECONNRESET`, `socket hang up`, a proxy's 502. The request may or may not have been processed,
 * so a signed call (non-idempotent, single-use nonce) cannot be sent again blindly: the failure has to be prevented.
 *
 * Node's server closes an idle connection after `keepAliveTimeout` (5 s) plus `keepAliveTimeoutBuffer` (1 s) and
 * announces `Keep-Alive: timeout=5`. Node's `fetch` (3 s) and its global agent (4 s) read the announcement and close
 * first; but an `http.Agent({ keepAlive: true })` made without a `timeout` ignores it and keeps idle connections
 * until the server closes them, and so do many other clients and the common proxies and load balancers in front of a
 * server (nginx's upstream `keepalive_timeout` 60 s, AWS ALB 60 s, Go's `http.Transport` 90 s). Under steady load
 * the collisions are rare but steady.
 *
 * `applyKeepAliveTimeout` makes the server wait longer than those clients (65 s by default: more than the 60 s of
 * nginx and ALB; Fastify's own default, 72 s, is longer still). Behind a proxy with a longer idle timeout, pass more.
 */
import type { Server } from 'node:http';

/** The idle time `applyKeepAliveTimeout` gives a server by default (ms): longer than nginx's and AWS ALB's 60 s. */
export const KEEP_ALIVE_TIMEOUT_MS = 65_000;

/** Options of `applyKeepAliveTimeout`. */
export interface KeepAliveTimeoutOptions {
  /**
   * How long an idle kept-alive connection stays open (ms), announced as `Keep-Alive: timeout=…`. Must be longer
   * than the idle timeout of every client and proxy that reuses connections to this server (default 65 000).
   */
  timeoutMs?: number;
}

/**
 * Sets a Node HTTP server's keep-alive timeout (see the top of this file); returns the server. For the server of
 * `app.listen(...)` (Express), `serve(...)` (`@hono/node-server`) or `http.createServer(...)`.
 */
export function applyKeepAliveTimeout<S extends Server>(server: S, options: KeepAliveTimeoutOptions = {}): S {
  const timeoutMs = options.timeoutMs ?? KEEP_ALIVE_TIMEOUT_MS;
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1000) {
    throw new TypeError(`applyKeepAliveTimeout: option "timeoutMs" must be a whole number of milliseconds >= 1000, got ${String(timeoutMs)}`);
  }
  server.keepAliveTimeout = timeoutMs;
  return server;
}
