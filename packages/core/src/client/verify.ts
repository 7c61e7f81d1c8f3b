/**
 * The client's reading of a server's answer (docs/PROTOCOL.md §3, §6): every JSON-RPC message is verified against the
 * pinned server key in the client's own session, bound to the request it answers (`in_reply_to`), and stripped of
 * `_pqc` before the caller sees it. Only verified messages are passed on: any other answer, whatever its status,
 * `Content-Type` and body, is an error the client raises itself ("outcome unknown"), and never a reason to resend.
 */
import { checkEnvelope, checkPeer, idKey, messageMethod, verifyEnvelopeSignature, type ParsedEnvelope } from '../envelope.js';
import { PQCTransportError, SignatureVerificationError, errorForReason, type PQCReason } from '../errors.js';
import { headersForNewBody, mediaType, pqcReasonOf, readBodyLimited } from '../http.js';
import { serializeJson } from '../json/canonical.js';
import { JsonNumber, parseLossless, type JsonObject, type JsonValue } from '../json/lossless.js';
import { ENVELOPE_KEY, MCP_SESSION_HEADER, PQC_ERROR_CODE, nonceRetentionSec } from '../protocol.js';
import type { PQCSession } from '../session.js';
import { transformEventStream } from '../sse.js';
import type { ResolvedFetchOptions } from './options.js';

/** What the answers to one request must carry, and what is still awaited. */
export interface Expectation {
  /** The HTTP method of the request. */
  readonly method: string;
  /** `in_reply_to` of a response, by the id of the request it answers. */
  readonly byId: ReadonlyMap<string, string>;
  /** `in_reply_to` of every other message of a POST's answer (its first request, else its first message). */
  readonly first: string | undefined;
  /** Whether the POST held a request (else an empty 202 is its answer). */
  readonly hadRequest: boolean;
  /** Every nonce the request carried (a signed rejection binds one of them). */
  readonly nonces: readonly string[];
  /** Requests still waiting for their answer, by id key (their ids as sent). */
  readonly pending: Map<string, string | number>;
  /** When the request was sent, epoch ms. */
  readonly sentAt: number;
}

/** Requests the server sent the client, by id key: the nonce the client's answer must carry (§3). */
export type ServerRequests = Map<string, string>;

/** A server message refused: the error to raise (never a reason to resend). */
export function refused(reason: PQCReason, detail: string): PQCTransportError {
  return errorForReason(reason, `server message refused (${reason}): ${detail}`);
}

/** An answer that is not a verified message: the outcome of the request is unknown. */
export function outcomeUnknown(detail: string): PQCTransportError {
  return new SignatureVerificationError('missing_envelope', `outcome unknown: ${detail}; the request is not sent again`);
}

/** Steps 2-6 of §3 and the client's own steps on one server message; resolves the parsed envelope. */
export async function verifyServerMessage(
  message: JsonValue,
  s: PQCSession,
  o: ResolvedFetchOptions,
  inReplyTo: string | null,
): Promise<{ parsed: ParsedEnvelope; digest: string }> {
  const checked = checkEnvelope(message, { profiles: [s.profile], algorithms: o.algorithms, clockSkewSec: o.clockSkewSec, now: o.now, http: 'forbidden' });
  if (!checked.ok) throw refused(checked.reason, checked.detail);
  const parsed = checked.value;
  if (s.profile === 2 && parsed.sessionId !== s.sessionId) throw refused('unknown_session', 'the message names another session');
  if (!s.isValid(o.now)) throw refused('session_expired', 'the session has expired');
  if (parsed.algorithm !== s.peerAlgorithm || !checkPeer(parsed, s.peer)) throw refused('peer_mismatch', 'the signer is not the pinned server');
  const digest = await verifyEnvelopeSignature(parsed, s.peer.verifyingKey);
  if (digest === undefined) throw refused('invalid_signature', 'the signature does not verify');
  // v1 signs nothing of the envelope: its replays are recognised by the signed digest.
  const replayKey = s.profile === 2 ? parsed.nonce : `d:${digest}`;
  if (!s.checkNonce(replayKey, parsed.timestampMs, o.now, nonceRetentionSec(o.clockSkewSec))) throw refused('replay_detected', 'this message was seen before');
  if (s.profile === 2 && (parsed.inReplyTo ?? null) !== inReplyTo) throw refused('peer_mismatch', 'in_reply_to does not bind the request sent');
  return { parsed, digest };
}

/** The JSON-RPC id as the caller wrote it. */
function plainId(id: JsonValue | undefined): string | number {
  return id instanceof JsonNumber ? id.toNumber() : (id as string);
}

/** Verifies one message of an answer; resolves it without `_pqc`, and what its envelope said of the MCP session. */
async function acceptMessage(
  message: JsonValue,
  s: PQCSession,
  o: ResolvedFetchOptions,
  expect: Expectation | undefined,
  serverRequests: ServerRequests,
): Promise<{ message: JsonObject; mcpSessionId: string | undefined }> {
  const method = messageMethod(message);
  const key = message instanceof Map ? idKey(message.get('id')) : undefined;
  const inReplyTo = expect === undefined ? null : ((method === null && key !== undefined ? expect.byId.get(key) : undefined) ?? expect.first ?? null);
  let verified;
  try {
    verified = await verifyServerMessage(message, s, o, inReplyTo);
  } catch (err) {
    if (err instanceof PQCTransportError) {
      s.logOperation({ operation: 'rejected', verified: false, reason: err.reason, details: { detail: err.message } });
    }
    throw err;
  }
  const { parsed, digest } = verified;
  s.logOperation({
    operation: method === null ? 'response' : key !== undefined ? 'request' : 'notification',
    verified: true,
    method,
    signer_did: parsed.signerDid,
    algorithm: parsed.algorithm,
    signature_truncated: parsed.signatureHex,
    digest,
  });
  if (method !== null && key !== undefined) serverRequests.set(key, parsed.nonce);
  if (method === null && key !== undefined) expect?.pending.delete(key);
  const out: JsonObject = new Map(message as JsonObject);
  out.delete(ENVELOPE_KEY);
  return { message: out, mcpSessionId: parsed.mcpSessionId };
}

/**
 * The `Mcp-Session-Id` of an answer is adopted only when verified messages carry it (§3): the header handed on is the
 * one every verified message names, or none.
 */
function mcpHeaderFor(headers: Headers, named: (string | undefined)[]): Headers {
  const out = headersForNewBody(headers);
  const header = headers.get(MCP_SESSION_HEADER);
  if (header === null) return out;
  if (named.length === 0 || named.some((id) => id !== header)) out.delete(MCP_SESSION_HEADER);
  return out;
}

function parseAnswer(text: string, o: ResolvedFetchOptions): JsonValue {
  try {
    return parseLossless(text, { maxValues: o.maxJsonValues });
  } catch (err) {
    throw refused(err instanceof PQCTransportError ? err.reason : 'malformed_json', err instanceof Error ? err.message : String(err));
  }
}

/** A local JSON-RPC error for a request whose answer failed verification (never made by the server). */
function localError(reason: PQCReason, id: string | number, detail: string): string {
  return JSON.stringify({ jsonrpc: '2.0', id, error: { code: PQC_ERROR_CODE, message: `PQC authentication failed: ${reason}: ${detail}`, data: { pqc: reason } } });
}

/** Local errors for every request still waiting for its answer (so that no caller waits for a timeout). */
function answerPending(expect: Expectation, error: PQCTransportError): string[] {
  const answers = [...expect.pending.values()].map((id) => localError(error.reason, id, error.message));
  expect.pending.clear();
  return answers;
}

/** A verified JSON answer: every message verified, stripped, in the original shape. */
async function readJsonAnswer(response: Response, s: PQCSession, o: ResolvedFetchOptions, expect: Expectation, serverRequests: ServerRequests): Promise<Response> {
  let bytes: Uint8Array;
  try {
    bytes = await readBodyLimited(response.body, o.maxResponseBytes, response.headers.get('content-length'));
  } catch (err) {
    throw refused('body_too_large', err instanceof Error ? err.message : String(err));
  }
  const text = new TextDecoder().decode(bytes);
  if (text.trim() === '') throw outcomeUnknown(`an empty JSON answer (HTTP ${response.status})`);
  const tree = parseAnswer(text, o);
  const messages = Array.isArray(tree) ? tree : [tree];
  if (messages.length === 0) throw refused('invalid_envelope', 'an empty batch');
  const accepted = [];
  for (const message of messages) accepted.push(await acceptMessage(message, s, o, expect, serverRequests));
  const body = Array.isArray(tree) ? accepted.map((a) => a.message) : accepted[0]!.message;
  const headers = mcpHeaderFor(response.headers, accepted.map((a) => a.mcpSessionId));
  return new Response(serializeJson(body), { status: response.status, statusText: response.statusText, headers });
}

/**
 * A verified event stream: each event verified as it arrives. A stream that carries one forgery ends with that
 * error, after answering each request still pending with a local JSON-RPC error (so that no caller waits for a
 * timeout); a stream that ends before answering a request answers it so too ("outcome unknown": there is no
 * resumption, §4). An answer that names an MCP session is handed on once its first message verified (the header is adopted
 * only from a verified message).
 */
async function readEventStream(response: Response, s: PQCSession, o: ResolvedFetchOptions, expect: Expectation | undefined, serverRequests: ServerRequests): Promise<Response> {
  let failure: PQCTransportError | undefined;
  const named: (string | undefined)[] = [];
  const transform = transformEventStream(async (data) => {
    if (failure) throw failure; // nothing more is taken from a stream that carried a forgery
    try {
      const accepted = await acceptMessage(parseAnswer(data, o), s, o, expect, serverRequests);
      named.push(accepted.mcpSessionId);
      return serializeJson(accepted.message);
    } catch (err) {
      const error = err instanceof PQCTransportError ? err : refused('malformed_json', String(err));
      if (!expect || expect.pending.size === 0) throw error;
      failure = error;
      return answerPending(expect, error);
    }
  }, o.maxResponseBytes, () => (expect && expect.pending.size > 0 ? answerPending(expect, outcomeUnknown('the stream ended before the answer')) : []));
  const stream = response.body!.pipeThrough(transform);
  const init = { status: response.status, statusText: response.statusText };
  // A GET stream never gives the client its MCP session: the header, if any, is not handed on.
  if (expect === undefined || !response.headers.has(MCP_SESSION_HEADER)) return new Response(stream, { ...init, headers: mcpHeaderFor(response.headers, []) });
  // Read ahead to the first message (each chunk read has been through the transform), so that the Mcp-Session-Id
  // header is handed on only when a verified message names it.
  const reader = stream.getReader();
  const ahead: Uint8Array[] = [];
  let done = false;
  while (!done && named.length === 0 && failure === undefined) {
    const next = await reader.read();
    if (next.done) done = true;
    else ahead.push(next.value);
  }
  const rest = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const chunk of ahead) controller.enqueue(chunk);
      if (done) controller.close();
    },
    async pull(controller) {
      try {
        const next = await reader.read();
        if (next.done) controller.close();
        else controller.enqueue(next.value);
      } catch (err) {
        controller.error(err);
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
  return new Response(rest, { ...init, headers: mcpHeaderFor(response.headers, failure ? [] : named) });
}

/**
 * The caller's view of an answer: verified and stripped, or an error. `expect` is undefined for a GET stream (whose
 * messages bind no request).
 */
export async function readAnswer(answer: Response, s: PQCSession, o: ResolvedFetchOptions, expect: Expectation, serverRequests: ServerRequests): Promise<Response> {
  let response = answer;
  const status = response.status;
  const type = mediaType(response.headers);
  // The only unsigned answers accepted: an empty 202 to a POST that held no request, an empty 2xx to a DELETE.
  if ((status === 202 && expect.method === 'POST' && !expect.hadRequest) || (expect.method === 'DELETE' && status >= 200 && status < 300)) {
    const bytes = await readBodyLimited(response.body, o.maxResponseBytes, response.headers.get('content-length')).catch(() => undefined);
    // Nothing of an unsigned answer is passed on that a client acts on: no Mcp-Session-Id (the 1.x SDK adopts it).
    if (bytes?.byteLength === 0) return new Response(null, { status, statusText: response.statusText, headers: mcpHeaderFor(response.headers, []) });
    if (bytes === undefined) throw outcomeUnknown(`an oversized answer (HTTP ${status})`);
    response = new Response(bytes as Uint8Array<ArrayBuffer>, response);
  }
  if (type === 'text/event-stream' && response.body && status >= 200 && status < 300) {
    return readEventStream(response, s, o, expect.method === 'GET' ? undefined : expect, serverRequests);
  }
  if (type === 'application/json' && response.body) return readJsonAnswer(response, s, o, expect, serverRequests);
  await response.body?.cancel().catch(() => {});
  throw outcomeUnknown(`the server's answer is not signed (HTTP ${status}${type ? `, ${type}` : ''})`);
}

/**
 * A signed session rejection (§6): `unknown_session` or `session_expired`, verified against the pinned key in the
 * request's session, binding one of the request's nonces, signed within the clock skew of when it was sent. Only such
 * a rejection lets a client perform a new handshake and send the request again. Resolves its reason, or undefined
 * when the answer is not one (it is then read as any other answer).
 */
export async function signedSessionRejection(text: string, s: PQCSession, o: ResolvedFetchOptions, expect: Expectation): Promise<'unknown_session' | 'session_expired' | undefined> {
  let tree: JsonValue;
  try {
    tree = parseLossless(text, { maxValues: 64 });
  } catch {
    return undefined;
  }
  if (!(tree instanceof Map) || !tree.has(ENVELOPE_KEY) || s.profile !== 2) return undefined;
  const reason = pqcReasonOf(JSON.parse(text));
  if (reason !== 'unknown_session' && reason !== 'session_expired') return undefined;
  const checked = checkEnvelope(tree, { profiles: [2], algorithms: o.algorithms, clockSkewSec: o.clockSkewSec, now: o.now, http: 'forbidden' });
  if (!checked.ok) return undefined;
  const parsed = checked.value;
  if (parsed.sessionId !== s.sessionId || parsed.inReplyTo === undefined || !expect.nonces.includes(parsed.inReplyTo)) return undefined;
  if (Math.abs(parsed.timestampMs - expect.sentAt) >= o.clockSkewSec * 1000) return undefined;
  if (parsed.algorithm !== s.peerAlgorithm || !checkPeer(parsed, s.peer)) return undefined;
  if ((await verifyEnvelopeSignature(parsed, s.peer.verifyingKey)) === undefined) return undefined;
  if (!s.checkNonce(parsed.nonce, parsed.timestampMs, o.now, nonceRetentionSec(o.clockSkewSec))) return undefined;
  s.logOperation({ operation: 'rejected', verified: true, reason, signer_did: parsed.signerDid, details: { detail: 'signed session rejection' } });
  return reason;
}

/** The reason of an unsigned PQC rejection, if the answer is one (reported, never trusted to resend). */
export function unsignedRejectionReason(text: string): PQCReason | undefined {
  try {
    const body = JSON.parse(text) as Record<string, unknown>;
    return body && typeof body === 'object' && !(ENVELOPE_KEY in body) ? pqcReasonOf(body) : undefined;
  } catch {
    return undefined;
  }
}

export { plainId };
