/**
 * The gateway's request log. Every value in it may come from a client or an upstream (a path, a JSON-RPC method a
 * client signed, an error text), so each is made one safe token before it is written: printable ASCII only, nothing
 * that could end a line, split a field or fool a terminal (control characters, spaces, bidi overrides and any other
 * non-ASCII are escaped as `\uXXXX`, a backslash as `\\`), and bounded in length. Only what core verified is logged
 * as verified: the JSON-RPC methods and the peer DID come from core's `onResult`, never from the raw request.
 */

/** Longest logged value, in characters before escaping. */
const MAX_VALUE_CHARS = 200;

/** A string as one log token (see above); `-` for an empty one. */
export function logSafe(value: string, max = MAX_VALUE_CHARS): string {
  return escape(value, max, 0x21);
}

/** A free text (a message, a line of a child's stderr) for a log line: as `logSafe`, but spaces stay. */
export function logText(value: string, max = MAX_VALUE_CHARS): string {
  return escape(value, max, 0x20);
}

function escape(value: string, max: number, lowest: number): string {
  const cut = value.length > max ? value.slice(0, max) : value;
  let out = '';
  for (let i = 0; i < cut.length; i++) {
    const code = cut.charCodeAt(i);
    if (code === 0x5c) out += '\\\\';
    else if (code >= lowest && code < 0x7f) out += cut[i];
    else out += `\\u${code.toString(16).padStart(4, '0')}`;
  }
  if (cut.length < value.length) out += `...(+${value.length - cut.length})`;
  return out === '' ? '-' : out;
}

/** One request's outcome, as logged when its response has ended. */
export interface RequestLog {
  time: string;
  http_method: string;
  /** The request target's path as received (not verified: it is what was asked, not what was signed). */
  path: string;
  /** The JSON-RPC method(s) core verified, comma-separated for a batch; null when none verified. */
  rpc_method: string | null;
  /** The client DID once its signature verified; null otherwise. */
  peer_did: string | null;
  /**
   * `verified` (a verified POST, GET or DELETE of the endpoint), `handshake`, `end-session`, `info` (GET of the
   * handshake path, or a CORS preflight core answered), `rejected`, `refused` (a method the endpoint does not take),
   * and the gateway's own: `not_found`, `upstream_error`, `error`.
   */
  verdict: string;
  /** The PQC reason of a rejection, or what went wrong upstream. */
  reason: string | null;
  status: number;
  latency_ms: number;
  /** Messages the gateway signed in the answer. */
  signed: number;
  /** True when the client went away before the response ended. */
  aborted: boolean;
}

/** The record with every string value made a safe token (`logSafe`). */
export function sanitizeLog(log: RequestLog): RequestLog {
  const safe = (v: string | null) => (v === null ? null : logSafe(v));
  return {
    ...log,
    http_method: logSafe(log.http_method, 16),
    path: logSafe(log.path),
    rpc_method: safe(log.rpc_method),
    peer_did: safe(log.peer_did),
    verdict: logSafe(log.verdict, 32),
    reason: safe(log.reason),
  };
}

/** One human-readable log line (values sanitized). */
export function formatLogLine(record: RequestLog): string {
  const log = sanitizeLog(record);
  const verdict = log.reason ? `${log.verdict}:${log.reason}` : log.verdict;
  return (
    `${log.time} ${log.http_method} ${log.path} ${log.rpc_method ?? '-'} ${log.peer_did ?? '-'} ${verdict} ${log.status} ${log.latency_ms}ms` +
    `${log.signed ? ` signed=${log.signed}` : ''}${log.aborted ? ' aborted' : ''}`
  );
}

/** One JSON log line (values sanitized, so no raw control or non-ASCII character either). */
export function formatJsonLogLine(record: RequestLog): string {
  return JSON.stringify(sanitizeLog(record));
}
