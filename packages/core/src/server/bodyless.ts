/**
 * A GET (the server-to-client stream) or DELETE (the end of an MCP session, or of the PQC session on the handshake
 * path) on a protected path (docs/PROTOCOL.md §4, §9): its envelope comes in the `PQC-Envelope` header and signs the
 * request itself, rebuilt here as `{"http": {method, path, mcp_session_id}}`. Such a request carries no body (one
 * would reach the application unsigned), and no `Last-Event-ID` (stream resumption is not part of the protocol).
 */
import { JsonNumber, parseLossless, type JsonObject, type JsonValue } from '../json/lossless.js';
import { isLowerHex } from '../bytes.js';
import { ENVELOPE_KEY, PQC_ENVELOPE_HEADER } from '../protocol.js';
import type { SessionRecord } from '../store/types.js';
import { discardBody, reject, type RequestFacts, type ServerContext } from './context.js';
import { recordAccepted } from './post.js';
import { checkMcpSessionOwner, lookupSession, storeRejection, verifyMessages } from './verify.js';

/** Bound on the JSON values of a `PQC-Envelope` header (an envelope has a dozen). */
const MAX_ENVELOPE_VALUES = 64;

/** A verified bodyless request: its session. */
export interface VerifiedBodyless {
  session: SessionRecord;
}

/** True when the request carries a body (a declared length above 0, or a chunked one). */
function hasBody(request: Request): boolean {
  const length = request.headers.get('content-length');
  if (length !== null) return Number(length) !== 0;
  return request.headers.has('transfer-encoding');
}

/** Verifies a GET or DELETE: its session, or the rejection to answer. */
export async function verifyBodyless(ctx: ServerContext, facts: RequestFacts): Promise<VerifiedBodyless | Response> {
  const { request } = facts;
  if (hasBody(request)) {
    await discardBody(request);
    return reject(ctx, facts, 'invalid_envelope', null, { detail: `a ${request.method} carries no body` });
  }
  const header = request.headers.get(PQC_ENVELOPE_HEADER);
  if (header === null) return reject(ctx, facts, 'missing_envelope', null, { detail: `no ${PQC_ENVELOPE_HEADER} header` });
  let envelope: JsonValue;
  try {
    envelope = parseLossless(header, { maxValues: MAX_ENVELOPE_VALUES });
  } catch (err) {
    return reject(ctx, facts, 'malformed_json', null, { detail: err instanceof Error ? err.message : String(err) });
  }
  const sessionId = envelope instanceof Map ? envelope.get('session_id') : undefined;
  const v = envelope instanceof Map ? envelope.get('v') : undefined;
  if (!isLowerHex(sessionId, 16) || !(v instanceof JsonNumber) || v.toNumber() !== 2) {
    return reject(ctx, facts, 'invalid_envelope', null, { detail: `${PQC_ENVELOPE_HEADER} is not a v2 envelope naming a session` });
  }
  let session: SessionRecord | undefined;
  try {
    session = await lookupSession(ctx, sessionId);
  } catch (err) {
    return storeRejection(ctx, facts, err) ?? Promise.reject(err);
  }
  if (session === undefined) return reject(ctx, facts, 'unknown_session', null, { detail: 'no such session' });
  const message: JsonObject = new Map<string, JsonValue>([
    [
      'http',
      new Map<string, JsonValue>([
        ['method', request.method],
        ['path', facts.expectedPath],
        ['mcp_session_id', facts.mcpSessionId],
      ]),
    ],
    [ENVELOPE_KEY, envelope],
  ]);
  const accepted = await verifyMessages(ctx, facts, session, [message], { http: 'forbidden' });
  if (accepted instanceof Response) return accepted;
  const owner = await checkMcpSessionOwner(ctx, facts, session, accepted[0], null);
  if (owner) return owner;
  recordAccepted(ctx, facts, session, accepted);
  return { session };
}
