/**
 * A POST to a protected endpoint (docs/PROTOCOL.md §3): the `PQC-Session` header is checked before the body is read
 * (an unauthenticated flood costs no parsing), then the body is read within its bounds, every message verified in
 * that one session, the verified messages handed to the application without `_pqc`, and its answer signed. With the
 * v1 profile enabled, a POST without the header is read as a v1 message (§7).
 */
import { idKey, messageId } from '../envelope.js';
import { PQCTransportError } from '../errors.js';
import { readBodyLimited } from '../http.js';
import { parseLossless, toPlain, type JsonObject, type JsonValue } from '../json/lossless.js';
import { ENVELOPE_KEY, PQC_ENVELOPE_HEADER, PQC_SESSION_HEADER } from '../protocol.js';
import { isLowerHex } from '../bytes.js';
import { serializeJson } from '../json/canonical.js';
import type { SessionRecord } from '../store/types.js';
import { discardBody, endTelemetry, reject, requestContext, type PQCRequestContext, type RequestFacts, type ServerContext } from './context.js';
import { signAnswer, type ReplyBinding } from './respond.js';
import { checkMcpSessionOwner, lookupSession, storeRejection, verifyMessages, type AcceptedMessage } from './verify.js';

/** Runs the application with the verified request and its parsed body (without `_pqc`). */
export type PQCNext = (request: Request, parsedBody: unknown, context: PQCRequestContext | undefined) => Promise<Response>;

// ignoreBOM keeps a leading byte-order mark in the text, so that the strict parse refuses it (§2) instead of the
// decoder dropping it unseen.
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The plain JS value of a verified message without `_pqc` (what `JSON.parse` of its text gives, minus the envelope). */
function plainWithoutEnvelope(message: JsonObject): unknown {
  const out: JsonObject = new Map();
  for (const [key, value] of message) if (key !== ENVELOPE_KEY) out.set(key, value);
  return toPlain(out);
}

/**
 * The request the application gets: the same URL and headers (without the PQC ones), the verified body. A v1 peer
 * (`pqc-mcp-transport`) sends `Accept: *\/*`, which MCP servers refuse: it is told to accept what they answer, and
 * gets one JSON body back (`ReplyBinding.json`).
 */
function forwardedRequest(request: Request, body: string | null, profile: 1 | 2): Request {
  const headers = new Headers(request.headers);
  for (const name of ['content-length', 'content-encoding', PQC_SESSION_HEADER, PQC_ENVELOPE_HEADER]) headers.delete(name);
  if (profile === 1) headers.set('accept', 'application/json, text/event-stream');
  return new Request(request.url, { method: request.method, headers, body, signal: request.signal });
}

/** Reads and parses the body within the handler's bounds; a rejection when it is too large or not JSON. */
async function readMessages(ctx: ServerContext, facts: RequestFacts): Promise<{ messages: JsonValue[]; batch: boolean } | Response> {
  const { request } = facts;
  let tree: JsonValue;
  try {
    const bytes = await readBodyLimited(request.body, ctx.o.maxBodyBytes, request.headers.get('content-length'));
    tree = parseLossless(utf8Decoder.decode(bytes), { maxValues: ctx.o.maxJsonValues, maxBatch: ctx.o.maxBatch });
  } catch (err) {
    const reason = err instanceof PQCTransportError ? err.reason : 'malformed_json';
    return reject(ctx, facts, reason, null, { detail: err instanceof Error ? err.message : String(err) });
  }
  const messages = Array.isArray(tree) ? tree : [tree];
  if (messages.length === 0) return reject(ctx, facts, 'invalid_envelope', null, { detail: 'an empty batch' });
  return { messages, batch: Array.isArray(tree) };
}

export { forwardedRequest };

/** How the answer to these verified messages is bound: responses by id, everything else to the first request. */
function replyBinding(session: SessionRecord, messages: readonly JsonValue[], accepted: readonly AcceptedMessage[]): ReplyBinding {
  const byId = new Map<string, string>();
  let first: string | undefined;
  accepted.forEach((message, i) => {
    if (message.operation !== 'request') return;
    first ??= message.parsed.nonce;
    const key = idKey((messages[i] as JsonObject).get('id'));
    if (key !== undefined && !byId.has(key)) byId.set(key, message.parsed.nonce);
  });
  // A POST without a request is answered with an empty 202; should the application answer more, it is bound to the
  // POST's first message (docs/PROTOCOL.md §3).
  return { session, byId, first: first ?? accepted[0]?.parsed.nonce };
}

/** Records the verified messages in the audit trail and the request's result. */
export function recordAccepted(ctx: ServerContext, facts: RequestFacts, session: SessionRecord, accepted: readonly AcceptedMessage[]): void {
  for (const message of accepted) {
    ctx.o.audit.record({
      operation: message.operation,
      verified: true,
      session_id: session.sessionId,
      method: message.method,
      signer_did: message.parsed.signerDid,
      peer_did: session.peerDid,
      algorithm: message.parsed.algorithm,
      signature_truncated: message.parsed.signatureHex,
      digest: message.digest,
      details: message.operation === 'request' && message.method === null ? { http_method: facts.request.method, path: facts.target } : null,
      // The verified tree as its sender wrote it (number lexemes kept): its signature verifies offline (docs/AUDIT.md).
      message: ctx.o.audit.keepMessages ? serializeJson(message.parsed.message) : undefined,
    });
    if (message.method !== null) facts.result.methods.push(message.method);
  }
  facts.result.peerDid = session.peerDid;
  facts.result.sessionId = session.sessionId;
}

/** The session a v1 message names (v1 envelopes carry it unsigned, §7). */
function v1SessionId(messages: readonly JsonValue[]): string | undefined {
  const first = messages[0];
  const envelope = first instanceof Map ? first.get(ENVELOPE_KEY) : undefined;
  const id = envelope instanceof Map ? envelope.get('session_id') : undefined;
  return isLowerHex(id, 16) ? id : undefined;
}

/** A POST to a protected endpoint. */
export async function handlePost(ctx: ServerContext, facts: RequestFacts, next: PQCNext): Promise<Response> {
  const { request } = facts;
  const header = request.headers.get(PQC_SESSION_HEADER);
  let session: SessionRecord | undefined;
  let read: { messages: JsonValue[]; batch: boolean } | Response;
  if (header === null) {
    if (!ctx.o.profiles.includes(1)) {
      await discardBody(request);
      return reject(ctx, facts, 'missing_envelope', null, { detail: `no ${PQC_SESSION_HEADER} header` });
    }
    // With v1 on, a POST without the header may be a v1 message: its session is named inside, unsigned.
    read = await readMessages(ctx, facts);
    if (read instanceof Response) return read;
    const sessionId = v1SessionId(read.messages);
    if (sessionId === undefined) return reject(ctx, facts, 'missing_envelope', messageId(read.messages[0]!), { detail: 'no session named' });
    try {
      session = await lookupSession(ctx, sessionId);
    } catch (err) {
      return storeRejection(ctx, facts, err) ?? Promise.reject(err);
    }
    if (session === undefined || session.profile !== 1) return reject(ctx, facts, 'unknown_session', messageId(read.messages[0]!), { detail: 'no such v1 session' });
  } else {
    if (!isLowerHex(header, 16)) {
      await discardBody(request);
      return reject(ctx, facts, 'invalid_envelope', null, { detail: `${PQC_SESSION_HEADER} is not 32 lowercase hex characters` });
    }
    try {
      session = await lookupSession(ctx, header);
    } catch (err) {
      await discardBody(request);
      return storeRejection(ctx, facts, err) ?? Promise.reject(err);
    }
    // An unknown session is refused before a byte of the body is read.
    if (session === undefined) {
      await discardBody(request);
      return reject(ctx, facts, 'unknown_session', null, { detail: 'no such session' });
    }
    if (session.profile !== 2) {
      await discardBody(request);
      return reject(ctx, facts, 'unsupported_version', null, { detail: 'a v2 request in a v1 session', session });
    }
    read = await readMessages(ctx, facts);
    if (read instanceof Response) return read;
  }
  const { messages, batch } = read;

  const accepted = await verifyMessages(ctx, facts, session, messages, {
    http: 'required',
    sessionId: session.profile === 2 ? session.sessionId : undefined,
  });
  if (accepted instanceof Response) return accepted;
  const owner = await checkMcpSessionOwner(ctx, facts, session, accepted[0], messageId(messages[0]!));
  if (owner) return owner;
  recordAccepted(ctx, facts, session, accepted);
  facts.result.kind = 'message';

  // The application gets the body once more as plain JSON without the envelope (the MCP SDKs reject unknown
  // members), built from the verified tree: never bytes that were not verified.
  const body = batch ? messages.map((m) => plainWithoutEnvelope(m as JsonObject)) : plainWithoutEnvelope(messages[0] as JsonObject);
  // The verdict is in: what follows is the application's time, not the verification's.
  if (facts.telemetry) endTelemetry(ctx, facts);
  const answer = await next(forwardedRequest(request, JSON.stringify(body), session.profile), body, requestContext(session));
  return signAnswer(ctx, facts, answer, { ...replyBinding(session, messages, accepted), json: session.profile === 1 });
}
