/**
 * @pqc-mcp/core: post-quantum signed Model Context Protocol messages (docs/PROTOCOL.md), in web-standard TypeScript.
 * Named exports only: widening this list is a decision (test/exports.test.ts pins it).
 */
export {
  REASON_HTTP_STATUS,
  isPQCReason,
  errorForReason,
  PQCTransportError,
  SignatureVerificationError,
  HandshakeError,
  SessionExpiredError,
  ReplayAttackError,
  PeerNotAuthenticatedError,
  type PQCReason,
} from './errors.js';
export {
  PQC_ERROR_CODE,
  PQC_SESSION_HEADER,
  PQC_ENVELOPE_HEADER,
  DEFAULT_CLOCK_SKEW_SEC,
  DEFAULT_SESSION_TTL_SEC,
  DEFAULT_MAX_SESSIONS,
  DEFAULT_MAX_SESSIONS_PER_CLIENT,
  DEFAULT_MAX_BATCH,
  DEFAULT_MAX_BODY_BYTES,
  DEFAULT_MAX_JSON_VALUES,
  DEFAULT_ROTATION_OVERLAP_SEC,
  AUDIT_CHECKPOINT_CONTEXT,
} from './protocol.js';
export {
  ALGORITHMS,
  DEFAULT_ALGORITHM,
  availableBackends,
  detectBackends,
  selectBackend,
  setDefaultBackend,
  type Algorithm,
  type BackendPreference,
  type CryptoBackend,
  type SigningKey,
  type VerifyingKey,
} from './crypto/index.js';
export { JsonNumber, parseLossless, canonicalJson, type JsonObject, type JsonValue, type ParseLimits } from './json/index.js';
export { AgentIdentity, PeerIdentity, didFromPublicKey, isDid, type IdentityJwk, type IdentityOptions } from './identity.js';
export {
  MessageSigner,
  type HttpBinding,
  type PqcEnvelope,
  type SignOptions,
  type SignedMessage,
  type VerificationResult,
  type VerifyOptions,
} from './envelope.js';
export {
  PQCHandshake,
  type Authorizer,
  type CompleteOptions,
  type HandshakeResponse,
  type PendingHandshake,
  type RespondOptions,
} from './handshake.js';
export { PQCSession, type PQCSessionOptions } from './session.js';
export {
  RotationError,
  createRotationRecord,
  verifyRotationChain,
  type CreateRotationOptions,
  type RotationChain,
  type RotationReason,
  type RotationRecord,
  type VerifyRotationOptions,
} from './rotation.js';
export type { NonceOutcome, Profile, SessionLimits, SessionRecord, SessionStore } from './store/types.js';
export { MemorySessionStore, type MemorySessionStoreOptions } from './store/memory.js';
export { AuditLog, type AuditEntry, type AuditInput, type AuditLogOptions, type AuditOperation, type AuditSink } from './audit.js';
export {
  AuditChain,
  type AuditChainOptions,
  type AuditCheckpointLine,
  type AuditEntryLine,
  type AuditStartLine,
} from './audit-chain.js';
export {
  verifyAuditFile,
  type AuditFailure,
  type AuditFailureReason,
  type AuditVerification,
  type VerifyAuditOptions,
} from './audit-verify.js';
export {
  createPQCHandler,
  type HandleInit,
  type PQCHandler,
  type PQCNext,
  type PQCRequestContext,
  type PQCRequestResult,
  type PQCServerOptions,
  type ResolvedServerOptions,
  type ServerInfo,
  pqcAuthInfo,
  pqcContextOf,
  type PQCAuthInfo,
} from './server/index.js';
export { TrustStore, type TrustStoreOptions, type TrustWithdrawnListener } from './trust/store.js';
export { UrlTrustStore, type UrlTrustStoreOptions } from './trust/url.js';
export { parseTrustDocument, type TrustDocument, type TrustSet, type TrustedKey } from './trust/document.js';
export {
  TELEMETRY_ATTRIBUTES,
  TELEMETRY_NAMES,
  type PQCTelemetry,
  type TelemetryAttributeValue,
  type TelemetryAttributes,
  type TelemetryMeter,
  type TelemetrySpan,
  type TelemetryTracer,
} from './telemetry.js';
export { pqcFetch, type FetchLike, type PQCFetch, type PQCFetchOptions } from './client/index.js';
export {
  MemoryToolPinStore,
  PINNED_TOOL_FIELDS,
  ToolPinError,
  toolDefinition,
  toolDigest,
  type ToolDefinition,
  type ToolPin,
  type ToolPinReason,
  type ToolPinStore,
} from './tools/pins.js';
