/**
 * What the steps of the server layer share: the handler's resolved options and prepared pieces (`ServerContext`), and
 * one request's facts and outcome (`RequestFacts`). Rejections are built here, so that each is audited and reported
 * the same way wherever it is decided.
 */
import { AuditLog } from '../audit.js';
import { MessageSigner, type ParsedEnvelope } from '../envelope.js';
import { REASON_HTTP_STATUS, type PQCReason } from '../errors.js';
import { pqcErrorMessage, pqcErrorResponse, rejectionHeaders, type JsonRpcId } from '../http.js';
import type { SessionRecord } from '../store/types.js';
import type { PQCRequestResult, ResolvedServerOptions } from './options.js';
import { PeerKeyCache } from './peers.js';
import type { RouteKind } from './route.js';
import type { TelemetryOperation } from '../telemetry.js';

/** The handler's resolved options and the pieces every request uses. */
export interface ServerContext {
  readonly o: ResolvedServerOptions;
  readonly signer: MessageSigner;
  readonly peers: PeerKeyCache;
  readonly route: (routedPath: string) => RouteKind;
}

/** One request as the server layer sees it. */
export interface RequestFacts {
  readonly request: Request;
  /** The origin-form target received (path and query). */
  readonly target: string;
  /** The `http.path` the client must have signed: the target, or the configured public path and the query (§3 step 8). */
  readonly expectedPath: string;
  /** The `Mcp-Session-Id` header received, or null. */
  readonly mcpSessionId: string | null;
  /** Where a client performs the handshake (the `WWW-Authenticate` of a 401). */
  readonly handshakeUrl: string;
  /** What became of the request, reported through `onResult`. */
  readonly result: PQCRequestResult;
  /** The handshake or verification being measured (only with telemetry on). */
  telemetry?: TelemetryOperation;
}

/** Ends the measured verification or handshake of a request with what its result says (telemetry on only). */
export function endTelemetry(ctx: ServerContext, facts: RequestFacts): void {
  const op = facts.telemetry;
  if (!op || !ctx.o.telemetry) return;
  const r = facts.result;
  ctx.o.telemetry.end(op, {
    accepted: r.kind !== 'rejected' && r.reason === null && r.status < 500,
    reason: r.reason,
    method: r.methods[0],
    sessionId: r.sessionId,
    peerDid: r.peerDid,
    mcpSessionId: facts.mcpSessionId,
  });
}

/**
 * Drops the unread body of a request answered without it. Never throws: a runtime may build the body only when asked,
 * and fail then (@hono/node-server, for a URL with credentials); a refusal must still be answered.
 */
export async function discardBody(request: Request): Promise<void> {
  try {
    await request.body?.cancel();
  } catch {
    // nothing more to drop
  }
}

/** Who is calling, handed to the application with every verified request (§9). */
export interface PQCRequestContext {
  sessionId: string;
  /** The client's DID, pinned by the handshake. */
  peerDid: string;
  profile: 1 | 2;
}

/** The request context of a verified session. */
export function requestContext(session: SessionRecord): PQCRequestContext {
  return { sessionId: session.sessionId, peerDid: session.peerDid, profile: session.profile };
}

/** What a rejection's audit entry records: only what was verified is named as such. */
export interface RejectInfo {
  detail: string;
  parsed?: ParsedEnvelope;
  session?: SessionRecord;
  /** The JSON-RPC method, only once the message's signature verified (§8). */
  method?: string | null;
}

function recordRejection(ctx: ServerContext, facts: RequestFacts, reason: PQCReason, info: RejectInfo, signed: boolean): void {
  const audit: AuditLog = ctx.o.audit;
  audit.record({
    operation: 'rejected',
    verified: false,
    reason,
    session_id: info.parsed?.sessionId ?? info.session?.sessionId ?? null,
    method: info.method ?? null,
    signer_did: info.parsed?.signerDid ?? null,
    peer_did: info.session?.peerDid ?? null,
    algorithm: info.parsed?.algorithm ?? null,
    signature_truncated: info.parsed?.signatureHex ?? null,
    details: { http_method: facts.request.method, detail: info.detail, ...(signed ? { signed: true } : {}) },
  });
  Object.assign(facts.result, {
    kind: 'rejected',
    status: REASON_HTTP_STATUS[reason],
    reason,
    detail: info.detail,
  } satisfies Partial<PQCRequestResult>);
}

/** An unsigned rejection (§6): audited, reported, with the status and headers of the reason. */
export function reject(ctx: ServerContext, facts: RequestFacts, reason: PQCReason, id: JsonRpcId, info: RejectInfo): Response {
  recordRejection(ctx, facts, reason, info, false);
  return pqcErrorResponse(reason, id, facts.handshakeUrl);
}

/**
 * A signed `unknown_session` or `session_expired` (§6): only at step 7, for a session the server still records, after
 * the request's signature verified and its nonce was recorded as new. It binds the request (`in_reply_to`) and proves
 * that the server ran nothing, so the client may perform a new handshake and send the request again.
 */
export async function signedRejection(
  ctx: ServerContext,
  facts: RequestFacts,
  reason: 'unknown_session' | 'session_expired',
  id: JsonRpcId,
  parsed: ParsedEnvelope,
  session: SessionRecord,
): Promise<Response> {
  const detail = reason === 'session_expired' ? 'the session has expired' : 'the session has ended';
  if (session.profile !== 2) return reject(ctx, facts, reason, id, { detail, parsed, session });
  const signed = await ctx.signer.signMessage(pqcErrorMessage(reason, id), {
    sessionId: session.sessionId,
    inReplyTo: parsed.nonce,
    includePublicKey: ctx.o.includePublicKey,
    now: ctx.o.now,
  });
  recordRejection(ctx, facts, reason, { detail, parsed, session }, true);
  facts.result.signed++;
  const status = REASON_HTTP_STATUS[reason];
  return new Response(signed.text, { status, headers: rejectionHeaders(status, facts.handshakeUrl) });
}
