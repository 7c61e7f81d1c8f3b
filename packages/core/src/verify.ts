import { PUBLIC_KEY_BYTES } from './crypto/algorithms.js';
import type { BackendPreference } from './crypto/select.js';
import {
  DEFAULT_CLOCK_SKEW_SEC,
  checkEnvelope,
  checkPeer,
  messageId,
  verifyEnvelopeSignature,
  type EnvelopePolicy,
  type ParsedEnvelope,
} from './envelope.js';
import { PQCTransportError, type PQCReason } from './errors.js';
import { PeerIdentity } from './identity.js';
import type { JsonValue } from './json/lossless.js';
import type { PQCSession, SessionRecord, SessionStore } from './session.js';
import { nowMs } from './time.js';

/** A message that passed every check of docs/PROTOCOL.md §3. */
export interface AcceptedMessage {
  ok: true;
  parsed: ParsedEnvelope;
  session: SessionRecord;
  /** Hex SHA3-256 of the signed input. */
  digest: string;
}

/** A message refused, with the reason of §6 and the JSON-RPC id to answer with. */
export interface RejectedMessage {
  ok: false;
  reason: PQCReason;
  detail: string;
  id: string | number | null;
  parsed?: ParsedEnvelope;
  session?: SessionRecord;
}

/** Outcome of verifying one message in a session. */
export type MessageVerdict = AcceptedMessage | RejectedMessage;

function rejected(
  message: JsonValue,
  reason: PQCReason,
  detail: string,
  parsed?: ParsedEnvelope,
  session?: SessionRecord,
): RejectedMessage {
  return { ok: false, reason, detail, id: messageId(message), parsed, session };
}

/** Steps 5–7 of §3 once the session is known: the pinned signer, the signature, then the nonce. */
async function verifyInSession(
  message: JsonValue,
  parsed: ParsedEnvelope,
  session: SessionRecord,
  peer: PeerIdentity,
  now: number,
  recordNonce: (key: string, ttlSec: number) => Promise<boolean>,
  skewSec: number,
): Promise<MessageVerdict> {
  if (session.expiresAt <= now) return rejected(message, 'session_expired', 'the session has expired', parsed, session);
  if (parsed.profile !== session.profile) {
    return rejected(message, 'unsupported_version', `a v${parsed.profile} message in a v${session.profile} session`, parsed, session);
  }
  if (!checkPeer(parsed, peer)) return rejected(message, 'peer_mismatch', 'the signer is not the session peer', parsed, session);
  const digest = await verifyEnvelopeSignature(parsed, peer.verifyingKey);
  if (digest === undefined) return rejected(message, 'invalid_signature', 'the signature does not verify', parsed, session);
  // v1 signs nothing of the envelope, so its nonce could be swapped: replay is keyed on the signed digest there.
  const replayKey = parsed.profile === 2 ? parsed.nonce : `d:${digest}`;
  if (!(await recordNonce(replayKey, 2 * skewSec))) {
    return rejected(message, 'replay_detected', 'this message was seen before', parsed, session);
  }
  return { ok: true, parsed, session, digest };
}

/**
 * A bounded cache of prepared peer keys (imports cost 50–100 µs natively), keyed by the pinned peer: every session of
 * the same client shares one imported key. Keys are prepared on `backend` (default: the process default), so a server
 * verifies on the same backend it signs with (a worker pool, say).
 */
export class PeerKeyCache {
  readonly #peers = new Map<string, PeerIdentity>();
  readonly #max: number;
  readonly #backend: BackendPreference | undefined;

  constructor(max = 4096, backend?: BackendPreference) {
    this.#max = max;
    this.#backend = backend;
  }

  /** The prepared peer of a session record. */
  get(session: SessionRecord): PeerIdentity {
    const cacheKey = `${session.peerAlgorithm}:${session.peerDid}`;
    const cached = this.#peers.get(cacheKey);
    if (cached && cached.publicKeyHex === session.peerPublicKey) return cached;
    if (session.peerPublicKey.length !== PUBLIC_KEY_BYTES[session.peerAlgorithm] * 2) {
      throw new PQCTransportError('store_unavailable', 'the stored session is corrupt');
    }
    const peer = new PeerIdentity(session.peerAlgorithm, session.peerPublicKey, { did: session.peerDid, backend: this.#backend });
    if (cached) this.#peers.delete(cacheKey);
    else if (this.#peers.size >= this.#max) this.#peers.delete(this.#peers.keys().next().value as string);
    this.#peers.set(cacheKey, peer);
    return peer;
  }

  /** Kept for compatibility: keys are cached per peer, not per session, so ending a session changes nothing here. */
  delete(_sessionId: string): void {}
}

/** Options of `verifyWithStore`. */
export interface StoreVerifyOptions extends EnvelopePolicy {
  store: SessionStore;
  /** Prepared peer keys (default: none cached). */
  peers?: PeerKeyCache;
  /** The backend peer keys are prepared on when `peers` is not given (default: the process default). */
  backend?: BackendPreference;
}

/**
 * The server side of docs/PROTOCOL.md §3: every step, in order, against the sessions in `store`. Never throws: a store
 * failure is answered `store_unavailable`.
 */
export async function verifyWithStore(message: JsonValue, options: StoreVerifyOptions): Promise<MessageVerdict> {
  const checked = checkEnvelope(message, options);
  if (!checked.ok) return rejected(message, checked.reason, checked.detail);
  const parsed = checked.value;
  const sessionId = parsed.sessionId;
  if (sessionId === undefined) return rejected(message, 'unknown_session', 'the message names no session', parsed);
  const skewSec = options.clockSkewSec ?? DEFAULT_CLOCK_SKEW_SEC;
  try {
    const session = await options.store.getSession(sessionId);
    if (!session) return rejected(message, 'unknown_session', 'no such session', parsed);
    const peer = options.peers
      ? options.peers.get(session)
      : new PeerIdentity(session.peerAlgorithm, session.peerPublicKey, { did: session.peerDid, backend: options.backend });
    return await verifyInSession(message, parsed, session, peer, nowMs(options.now), (key, ttl) =>
      options.store.recordNonce(sessionId, key, parsed.timestampMs, ttl), skewSec);
  } catch (err) {
    const reason = err instanceof PQCTransportError ? err.reason : 'store_unavailable';
    const detail =
      err instanceof PQCTransportError
        ? err.message
        : `the session store or the crypto backend failed${err instanceof Error ? `: ${err.message}` : ''}`;
    return rejected(message, reason, detail, parsed);
  }
}

/** Options of `verifyWithSession`. */
export interface SessionVerifyOptions extends EnvelopePolicy {
  /** The nonce of the request this message must answer (step 8 of §3: a client's check of `in_reply_to`). */
  inReplyTo?: string | null;
}

/**
 * The client side of docs/PROTOCOL.md §3 against its own session: every step, plus `in_reply_to` when given
 * (`null` means the message must carry none, as on a GET stream).
 */
export async function verifyWithSession(
  message: JsonValue,
  session: PQCSession,
  options: SessionVerifyOptions = {},
): Promise<MessageVerdict> {
  const checked = checkEnvelope(message, { ...options, profiles: [session.profile] });
  if (!checked.ok) return rejected(message, checked.reason, checked.detail);
  const parsed = checked.value;
  if (parsed.sessionId !== undefined && parsed.sessionId !== session.sessionId) {
    return rejected(message, 'unknown_session', 'the message names another session', parsed);
  }
  const skewSec = options.clockSkewSec ?? DEFAULT_CLOCK_SKEW_SEC;
  const now = nowMs(options.now);
  const verdict = await verifyInSession(message, parsed, session, session.peer, now, async (key, ttlSec) =>
    session.checkNonce(key, parsed.timestampMs, now, ttlSec), skewSec);
  if (verdict.ok && options.inReplyTo !== undefined && (parsed.inReplyTo ?? null) !== options.inReplyTo) {
    return rejected(message, 'peer_mismatch', 'in_reply_to does not match the request sent', parsed, session);
  }
  return verdict;
}
