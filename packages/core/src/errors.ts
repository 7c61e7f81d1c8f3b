/**
 * The error vocabulary of docs/PROTOCOL.md §6: every rejection has a machine-readable `reason` and the HTTP status a
 * server answers it with.
 */

/** Every reason a PQC check can fail with (docs/PROTOCOL.md §3, §5, §6). */
export type PQCReason =
  | 'malformed_json'
  | 'invalid_envelope'
  | 'unsupported_version'
  | 'unsupported_algorithm'
  | 'missing_envelope'
  | 'did_mismatch'
  | 'stale_timestamp'
  | 'unknown_session'
  | 'session_expired'
  | 'peer_mismatch'
  | 'invalid_signature'
  | 'replay_detected'
  | 'handshake_failed'
  | 'target_mismatch'
  | 'peer_not_authorized'
  | 'body_too_large'
  | 'too_many_sessions'
  | 'store_unavailable'
  | 'rate_limited';

/** The HTTP status each reason is answered with (docs/PROTOCOL.md §6). */
export const REASON_HTTP_STATUS: Readonly<Record<PQCReason, number>> = Object.freeze({
  malformed_json: 400,
  invalid_envelope: 400,
  unsupported_version: 400,
  unsupported_algorithm: 400,
  missing_envelope: 401,
  did_mismatch: 401,
  stale_timestamp: 401,
  unknown_session: 401,
  session_expired: 401,
  peer_mismatch: 401,
  invalid_signature: 401,
  replay_detected: 401,
  handshake_failed: 401,
  target_mismatch: 401,
  peer_not_authorized: 403,
  body_too_large: 413,
  too_many_sessions: 503,
  store_unavailable: 503,
  rate_limited: 503,
});

/** True when `value` is one of the reasons of docs/PROTOCOL.md §6. */
export function isPQCReason(value: unknown): value is PQCReason {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(REASON_HTTP_STATUS, value);
}

/** Base class of every error this library throws on purpose. */
export class PQCTransportError extends Error {
  /** Machine-readable cause, one of docs/PROTOCOL.md §6. */
  readonly reason: PQCReason;
  /** The HTTP status a server answers this failure with. */
  readonly httpStatus: number;

  constructor(reason: PQCReason, message?: string, options?: { cause?: unknown }) {
    super(message ?? `PQC authentication failed: ${reason}`, options);
    this.name = new.target.name;
    this.reason = reason;
    this.httpStatus = REASON_HTTP_STATUS[reason];
  }
}

/** A signature (or the envelope around it) did not verify. */
export class SignatureVerificationError extends PQCTransportError {
  constructor(reason: PQCReason = 'invalid_signature', message?: string, options?: { cause?: unknown }) {
    super(reason, message, options);
  }
}

/** The handshake failed (bad shape, signature, echo or digest). */
export class HandshakeError extends PQCTransportError {
  constructor(reason: PQCReason = 'handshake_failed', message?: string, options?: { cause?: unknown }) {
    super(reason, message, options);
  }
}

/** The session is unknown or past its expiry. */
export class SessionExpiredError extends PQCTransportError {
  constructor(reason: 'session_expired' | 'unknown_session' = 'session_expired', message?: string) {
    super(reason, message);
  }
}

/** A nonce or handshake was seen before. */
export class ReplayAttackError extends PQCTransportError {
  constructor(message?: string) {
    super('replay_detected', message);
  }
}

/** The peer is not the one pinned, or not authorized. */
export class PeerNotAuthenticatedError extends PQCTransportError {
  constructor(reason: 'peer_mismatch' | 'peer_not_authorized' | 'did_mismatch' = 'peer_mismatch', message?: string) {
    super(reason, message);
  }
}

/**
 * The most specific error class for a reason: the one mapping of reasons to classes, used by every part that raises
 * a reason it received or decided (docs/PROTOCOL.md §6's client rules name these classes).
 */
export function errorForReason(reason: PQCReason, message?: string): PQCTransportError {
  switch (reason) {
    case 'session_expired':
    case 'unknown_session':
      return new SessionExpiredError(reason, message);
    case 'replay_detected':
      return new ReplayAttackError(message);
    case 'peer_mismatch':
    case 'peer_not_authorized':
    case 'did_mismatch':
      return new PeerNotAuthenticatedError(reason, message);
    case 'handshake_failed':
      return new HandshakeError(reason, message);
    case 'invalid_signature':
    case 'missing_envelope':
    case 'invalid_envelope':
    case 'stale_timestamp':
    case 'malformed_json':
    case 'unsupported_version':
    case 'unsupported_algorithm':
    case 'target_mismatch':
      return new SignatureVerificationError(reason, message);
    default:
      return new PQCTransportError(reason, message);
  }
}
