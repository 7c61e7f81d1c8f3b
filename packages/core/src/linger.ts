/**
 * The lingering close of a Node request answered before its body was read (a rejection, a 413). Written against the
 * shape of Node's `IncomingMessage` and its socket only, with no `node:` import, so the Hono adapter can use it on
 * `@hono/node-server` (it finds the `IncomingMessage` in `c.env.incoming`) and still bundle for workerd.
 */

/** The parts of a Node socket a lingering close uses. */
export interface LingeringSocket {
  readonly destroyed: boolean;
  readonly writable: boolean;
  end(): unknown;
  destroy(): unknown;
  destroySoon?: () => void;
}

/** The parts of a Node `IncomingMessage` a lingering close uses. */
export interface LingeringRequest {
  readonly complete: boolean;
  readonly destroyed: boolean;
  readonly socket: LingeringSocket | null;
  on(event: 'data', listener: (chunk: { length: number }) => void): unknown;
  off(event: 'data', listener: (chunk: { length: number }) => void): unknown;
  once(event: 'end', listener: () => void): unknown;
  removeAllListeners(event: 'data'): unknown;
  resume(): unknown;
}

/** Whether `value` looks like a Node `IncomingMessage` (what `@hono/node-server` puts in `c.env.incoming`). */
export function isLingeringRequest(value: unknown): value is LingeringRequest {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  const socket = v.socket as Record<string, unknown> | null | undefined;
  return (
    typeof v.complete === 'boolean' &&
    typeof v.resume === 'function' &&
    typeof v.on === 'function' &&
    typeof v.off === 'function' &&
    typeof v.once === 'function' &&
    typeof v.removeAllListeners === 'function' &&
    typeof socket === 'object' &&
    socket !== null &&
    typeof socket.end === 'function' &&
    typeof socket.destroy === 'function'
  );
}

const lingering = new WeakSet<object>();

/** Bytes of a request body that keep arriving after the answer was sent are read and dropped up to this bound. */
export const LINGER_BYTES = 16 * 1024 * 1024;
/** ... and for at most this long. */
export const LINGER_MS = 10_000;

/**
 * After an early answer (a rejection, a 413) the client may still be sending its body. Closing the socket then
 * resets the connection, and the reset makes the client's system drop the answer it has not read yet. So the rest of
 * the body is read and dropped, within a bound (`LINGER_BYTES`, `LINGER_MS`), after which the connection is cut.
 *
 * When the answer closes the connection (`Connection: close`, as a 413 does, or a client that asked for it), Node
 * would close the socket as soon as the answer is written (`socket.destroySoon()`): while the body is still arriving,
 * that close is the reset. Until the body is in, that close becomes a half close (RFC 9112 §9.6): the answer and a FIN
 * go out, the body keeps being read; once the body is in, the socket closes as Node meant to (nothing is left
 * unread, so nothing resets).
 */
export function lingerOnUnreadBody(req: LingeringRequest): void {
  const socket = req.socket;
  if (req.complete || req.destroyed || !socket || socket.destroyed || lingering.has(req)) return;
  lingering.add(req);
  let received = 0;
  let closeAsked = false;
  const hadOwnDestroySoon = Object.prototype.hasOwnProperty.call(socket, 'destroySoon');
  const ownDestroySoon = socket.destroySoon;
  // Node calls it when the answer that closes the connection is written: half close instead, while the body arrives.
  socket.destroySoon = () => {
    closeAsked = true;
    if (socket.writable) socket.end();
  };
  const restore = () => {
    if (hadOwnDestroySoon) socket.destroySoon = ownDestroySoon;
    else delete socket.destroySoon;
  };
  const stop = () => {
    clearTimeout(timer);
    req.off('data', count);
    restore();
    socket.destroy();
  };
  const count = (chunk: { length: number }) => {
    received += chunk.length;
    if (received > LINGER_BYTES) stop();
  };
  const timer = setTimeout(stop, LINGER_MS);
  (timer as { unref?: () => void }).unref?.();
  // Whoever was reading the body gave up on it (e.g. a web stream over it that was cancelled, or never read): a
  // reader left behind would pause the request again as its queue fills, and the rest would never be read.
  req.removeAllListeners('data');
  req.on('data', count);
  req.once('end', () => {
    clearTimeout(timer);
    req.off('data', count);
    restore();
    // The body is in: the close Node asked for can happen now, without a reset.
    if (closeAsked && !socket.destroyed) socket.destroySoon?.();
  });
  req.resume();
}
