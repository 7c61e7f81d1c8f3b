/**
 * The verified caller as the MCP SDK's `AuthInfo` (docs/PROTOCOL.md §9: the application learns who called), so that
 * tools read it where the SDK puts authentication: `ctx.http.authInfo` in SDK v2, `extra.authInfo` in 1.x. No SDK
 * import: the object has the SDK's shape.
 */
import type { PQCRequestContext } from './context.js';

/** The SDK's `AuthInfo` for a verified PQC caller: `clientId` is its DID, `extra.pqc` its whole context. */
export interface PQCAuthInfo {
  /** Not a bearer token: empty (the caller proved its key with every message). */
  token: string;
  /** The client's DID. */
  clientId: string;
  scopes: string[];
  extra: { pqc: PQCRequestContext };
}

/** The SDK `AuthInfo` of a verified request (for `createMcpHandler(...).fetch(request, { authInfo })`, `req.auth`). */
export function pqcAuthInfo(context: PQCRequestContext): PQCAuthInfo;
export function pqcAuthInfo(context: PQCRequestContext | undefined): PQCAuthInfo | undefined;
export function pqcAuthInfo(context: PQCRequestContext | undefined): PQCAuthInfo | undefined {
  return context ? { token: '', clientId: context.peerDid, scopes: [], extra: { pqc: { ...context } } } : undefined;
}

/** The verified PQC caller of an SDK `AuthInfo` made by `pqcAuthInfo`, or undefined. */
export function pqcContextOf(authInfo: unknown): PQCRequestContext | undefined {
  const pqc = (authInfo as { extra?: { pqc?: Partial<PQCRequestContext> } } | undefined)?.extra?.pqc;
  return pqc && typeof pqc.peerDid === 'string' && typeof pqc.sessionId === 'string' && (pqc.profile === 1 || pqc.profile === 2)
    ? { peerDid: pqc.peerDid, sessionId: pqc.sessionId, profile: pqc.profile }
    : undefined;
}
