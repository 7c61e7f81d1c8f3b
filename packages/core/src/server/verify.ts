/**
 * Steps 2 to 8 of docs/PROTOCOL.md §3 on the messages of one request, in one session. The cheap steps (shape,
 * freshness, the pinned signer, nonces unique within the request) run on every message before any signature is
 * checked; then each message, in order, is verified (6), its nonce recorded with the session's liveness (7) and
 * its binding checked (8), stopping at the first failure: no input makes the server verify signatures of messages it
 * could refuse cheaply, and a batch costs at most one signature past its first failure.
 */
import { checkEnvelope, checkPeer, idKey, messageId, messageMethod, verifyEnvelopeSignature, type ParsedEnvelope } from '../envelope.js';
import { PQCTransportError } from '../errors.js';
import type { JsonValue } from '../json/lossless.js';
import type { NonceOutcome, SessionRecord } from '../store/types.js';
import { reject, signedRejection, type RequestFacts, type ServerContext } from './context.js';

/** A message that passed every step. */
export interface AcceptedMessage {
  readonly parsed: ParsedEnvelope;
  /** Hex SHA3-256 of the signed input. */
  readonly digest: string;
  /** The JSON-RPC method (verified), or null for a response. */
  readonly method: string | null;
  readonly operation: 'request' | 'notification' | 'response';
}

/** How the messages of a request are expected to be bound (§3, §4). */
export interface MessageRules {
  /** `'required'` for messages in a POST body; `'forbidden'` for the envelope of a GET or DELETE (§4). */
  http: 'required' | 'forbidden';
  /** The session of the `PQC-Session` header every message must name (POST). */
  sessionId?: string;
}

/** Runs a store call; a failure that is not a PQC decision means the store cannot be reached. */
export async function storeCall<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (err) {
    if (err instanceof PQCTransportError) throw err;
    throw new PQCTransportError('store_unavailable', `the session store failed${err instanceof Error ? `: ${err.message}` : ''}`, { cause: err });
  }
}

/** Step 4: the session's record, if this server identity opened it (§5: another identity's session is unknown). */
export async function lookupSession(ctx: ServerContext, sessionId: string): Promise<SessionRecord | undefined> {
  const session = await storeCall(() => ctx.o.store.getSession(sessionId));
  return session !== undefined && session.localDid === ctx.o.identity.did ? session : undefined;
}

/** A store failure (or a rate limit) as the rejection it is, or undefined for any other error. */
export function storeRejection(ctx: ServerContext, facts: RequestFacts, err: unknown, id: JsonValue | number | null = null): Response | undefined {
  if (!(err instanceof PQCTransportError) || (err.reason !== 'store_unavailable' && err.reason !== 'rate_limited')) return undefined;
  return reject(ctx, facts, err.reason, typeof id === 'string' || typeof id === 'number' ? id : null, { detail: err.message });
}

function operationOf(message: JsonValue, method: string | null): AcceptedMessage['operation'] {
  if (method === null) return 'response';
  return message instanceof Map && message.has('id') ? 'request' : 'notification';
}

const NONCE_REJECTIONS: Record<Exclude<NonceOutcome, 'accepted'>, { reason: 'replay_detected' | 'unknown_session' | 'session_expired'; signed: boolean; detail: string }> = {
  replay: { reason: 'replay_detected', signed: false, detail: 'this message was seen before in this session' },
  unknown: { reason: 'unknown_session', signed: false, detail: 'the session is no longer recorded' },
  ended: { reason: 'unknown_session', signed: true, detail: 'the session has ended' },
  expired: { reason: 'session_expired', signed: true, detail: 'the session has expired' },
};

/**
 * Verifies the messages of one request in `session`. Resolves the accepted messages, or the rejection to answer (the
 * first failure decides it; signed for an ended or expired session, §6).
 */
export async function verifyMessages(
  ctx: ServerContext,
  facts: RequestFacts,
  session: SessionRecord,
  messages: readonly JsonValue[],
  rules: MessageRules,
): Promise<AcceptedMessage[] | Response> {
  const o = ctx.o;
  // A client whose trust was withdrawn (revoked, or no longer listed) is refused at once: the check is in memory
  // (a DID not listed here is looked up in the source first, in case another instance read a newer document).
  if (o.trust !== undefined && !o.trust.allows(session.peerDid) && !(await o.trust.allowsSession(session.peerDid, session.createdAt))) {
    return reject(ctx, facts, 'peer_not_authorized', messages.length > 0 ? messageId(messages[0]!) : null, {
      detail: 'the client is no longer trusted (revoked, or not in the trust store)',
      session,
    });
  }
  let peer;
  try {
    peer = ctx.peers.get(session);
  } catch (err) {
    return storeRejection(ctx, facts, err) ?? Promise.reject(err);
  }
  // Steps 2, 3 and 5 on every message, and nonces unique within the request.
  const parsedList: ParsedEnvelope[] = [];
  const nonces = new Set<string>();
  for (const message of messages) {
    const checked = checkEnvelope(message, {
      profiles: [session.profile],
      algorithms: o.algorithms,
      clockSkewSec: o.clockSkewSec,
      now: o.now,
      http: session.profile === 2 ? rules.http : 'optional',
      mcpSessionId: false,
      sessionId: rules.sessionId,
    });
    if (!checked.ok) return reject(ctx, facts, checked.reason, messageId(message), { detail: checked.detail });
    const parsed = checked.value;
    if (parsed.sessionId !== session.sessionId) {
      return reject(ctx, facts, 'invalid_envelope', messageId(message), { detail: 'the messages of one request name one session', parsed });
    }
    if (parsed.algorithm !== session.peerAlgorithm || !checkPeer(parsed, peer)) {
      return reject(ctx, facts, 'peer_mismatch', messageId(message), { detail: 'the signer is not the session peer', parsed, session });
    }
    if (nonces.has(parsed.nonce)) {
      return reject(ctx, facts, 'replay_detected', messageId(message), { detail: 'a nonce repeats within the request', parsed, session });
    }
    nonces.add(parsed.nonce);
    parsedList.push(parsed);
  }

  const accepted: AcceptedMessage[] = [];
  for (let i = 0; i < parsedList.length; i++) {
    const parsed = parsedList[i]!;
    const message = messages[i]!;
    const id = messageId(message);
    let digest: string | undefined;
    try {
      digest = await verifyEnvelopeSignature(parsed, peer.verifyingKey);
    } catch (err) {
      return reject(ctx, facts, 'store_unavailable', id, { detail: `the crypto backend failed: ${err instanceof Error ? err.message : String(err)}`, parsed, session });
    }
    if (digest === undefined) return reject(ctx, facts, 'invalid_signature', id, { detail: 'the signature does not verify', parsed, session });
    const method = messageMethod(message);

    let outcome: NonceOutcome;
    try {
      outcome = session.profile === 2 ? await storeCall(() => o.store.recordNonce(session.sessionId, parsed.nonce, parsed.timestampMs, o.retentionSec)) : await v1Outcome(ctx, session, message, digest);
    } catch (err) {
      return storeRejection(ctx, facts, err, id) ?? Promise.reject(err);
    }
    if (outcome !== 'accepted') {
      const { reason, signed, detail } = NONCE_REJECTIONS[outcome];
      if (signed && reason !== 'replay_detected') return signedRejection(ctx, facts, reason, id, parsed, session);
      return reject(ctx, facts, reason, id, { detail, parsed, session, method });
    }

    if (session.profile === 2 && parsed.http !== undefined) {
      const http = parsed.http;
      if (http.method !== facts.request.method || http.path !== facts.expectedPath || http.mcpSessionId !== facts.mcpSessionId) {
        return reject(ctx, facts, 'target_mismatch', id, { detail: 'http does not match the request received', parsed, session, method });
      }
    }
    // A client's answer to a server request carries that request's nonce (§3 step 8).
    const key = method === null ? idKey(message instanceof Map ? message.get('id') : undefined) : undefined;
    if (session.profile === 2 && key !== undefined) {
      let expected: string | undefined;
      try {
        expected = await storeCall(() => o.store.takeServerRequest(session.sessionId, key));
      } catch (err) {
        return storeRejection(ctx, facts, err, id) ?? Promise.reject(err);
      }
      if (expected === undefined || parsed.inReplyTo !== expected) {
        return reject(ctx, facts, 'peer_mismatch', id, { detail: 'an answer that binds no request this server sent', parsed, session, method });
      }
    }
    // A GET or DELETE (its envelope rebuilt as `{"http": ...}`) is a request, whatever its rebuilt form looks like.
    accepted.push({ parsed, digest, method, operation: rules.http === 'forbidden' ? 'request' : operationOf(message, method) });
  }
  return accepted;
}

/**
 * Step 7 for a v1 session (§7): nothing of a v1 envelope is signed, so a replay is recognised by the signed digest:
 * requests per client key for the session lifetime (a captured request could be sent into the client's next
 * session), notifications per session. Liveness is read from the record.
 */
async function v1Outcome(ctx: ServerContext, session: SessionRecord, message: JsonValue, digest: string): Promise<NonceOutcome> {
  const isRequest = message instanceof Map && message.has('id') && message.has('method');
  const key = isRequest ? `v1:${session.peerDid}:${digest}` : `v1n:${session.sessionId}:${digest}`;
  if (!(await ctx.o.store.recordOnce(key, ctx.o.sessionTtlSec))) return 'replay';
  if (session.endedAt !== undefined) return 'ended';
  return session.expiresAt <= ctx.o.now() ? 'expired' : 'accepted';
}

/** Step 8 for the `Mcp-Session-Id` sent: it must belong to this PQC peer (§9). */
export async function checkMcpSessionOwner(
  ctx: ServerContext,
  facts: RequestFacts,
  session: SessionRecord,
  first: AcceptedMessage | undefined,
  id: string | number | null,
): Promise<Response | undefined> {
  if (facts.mcpSessionId === null) return undefined;
  let owner: string | undefined;
  try {
    owner = await storeCall(() => ctx.o.store.mcpSessionOwner(facts.mcpSessionId!, ctx.o.sessionTtlSec));
  } catch (err) {
    return storeRejection(ctx, facts, err, id) ?? Promise.reject(err);
  }
  if (owner === session.peerDid) return undefined;
  return reject(ctx, facts, 'peer_mismatch', id, {
    detail: owner === undefined ? 'the Mcp-Session-Id has no owner on record' : 'the Mcp-Session-Id belongs to another client',
    parsed: first?.parsed,
    session,
    method: first?.method ?? null,
  });
}
