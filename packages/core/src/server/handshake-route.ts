/**
 * The handshake path (docs/PROTOCOL.md §5, §9): `GET` answers the server's public identity, `POST` performs the
 * handshake, `DELETE` (signed like any bodyless request) ends the client's session. The v1 profile's `<base>/handshake`
 * is answered too, with `unsupported_version` while v1 is off (§6), never with a bare 404.
 */
import type { Algorithm } from '../crypto/algorithms.js';
import { HandshakeError, PQCTransportError } from '../errors.js';
import { PQCHandshake } from '../handshake.js';
import { pqcErrorResponse, readBodyLimited } from '../http.js';
import { MAX_HANDSHAKE_BODY_BYTES } from '../protocol.js';
import type { RotationRecord } from '../rotation.js';
import type { Profile } from '../store/types.js';
import { reject, type RequestFacts, type ServerContext } from './context.js';
import { verifyBodyless } from './bodyless.js';
import { storeCall } from './verify.js';

/** What `GET pqc/handshake` answers: the server's public identity (§5). */
export interface ServerInfo {
  did: string;
  algorithm: Algorithm;
  public_key: string;
  versions: Profile[];
  /** The server's key rotation records, oldest first (§11), when it has rotated its key. */
  rotations?: RotationRecord[];
}

/** The server's public identity. */
export function serverInfo(ctx: ServerContext): ServerInfo {
  return {
    did: ctx.o.identity.did,
    algorithm: ctx.o.identity.algorithm,
    public_key: ctx.o.identity.publicKeyHex,
    versions: [...ctx.o.profiles].sort((a, b) => b - a),
    ...(ctx.o.rotations !== undefined ? { rotations: [...ctx.o.rotations] } : {}),
  };
}

const V1_DISABLED =
  'unversioned (v1, pqc-mcp-transport) handshakes are disabled on this server; its operator can enable them with profiles: [2, 1]';

async function performHandshake(ctx: ServerContext, facts: RequestFacts): Promise<Response> {
  const o = ctx.o;
  try {
    // A handshake is small: never buffer more of an unauthenticated body than one can hold.
    const body = await readBodyLimited(facts.request.body, Math.min(o.maxBodyBytes, MAX_HANDSHAKE_BODY_BYTES), facts.request.headers.get('content-length'));
    const { response, session } = await PQCHandshake.respond(body, o.identity, {
      store: o.store,
      profiles: o.profiles,
      algorithms: o.algorithms,
      clockSkewSec: o.clockSkewSec,
      sessionTtlSec: o.sessionTtlSec,
      maxSessions: o.maxSessions,
      maxSessionsPerClient: o.maxSessionsPerClient,
      authorize: o.authorize,
      rotations: o.rotations,
      audit: o.audit,
      now: o.now,
    });
    Object.assign(facts.result, { kind: 'handshake', status: 200, peerDid: session.peerDid, sessionId: session.sessionId });
    facts.result.methods.push('pqc/handshake');
    return new Response(response, { status: 200, headers: { 'content-type': 'application/json', 'cache-control': 'no-store' } });
  } catch (err) {
    if (!(err instanceof PQCTransportError)) throw err;
    // respond() has audited the refusal already; only the result is recorded here.
    const detail = err.reason === 'unsupported_version' && !o.profiles.includes(1) && /unversioned/.test(err.message) ? V1_DISABLED : err.message;
    Object.assign(facts.result, { kind: 'rejected', status: err.httpStatus, reason: err.reason, detail });
    return pqcErrorResponse(err.reason, null, facts.handshakeUrl, err instanceof HandshakeError && detail === V1_DISABLED ? detail : undefined);
  }
}

async function endSession(ctx: ServerContext, facts: RequestFacts): Promise<Response> {
  const verified = await verifyBodyless(ctx, facts);
  if (verified instanceof Response) return verified;
  try {
    await storeCall(() => ctx.o.store.endSession(verified.session.sessionId, ctx.o.retentionSec));
  } catch (err) {
    return reject(ctx, facts, 'store_unavailable', null, { detail: err instanceof Error ? err.message : String(err), session: verified.session });
  }
  facts.result.kind = 'end-session';
  facts.result.status = 204;
  return new Response(null, { status: 204, headers: { 'cache-control': 'no-store' } });
}

/** A request to the handshake path. */
export async function handleHandshakePath(ctx: ServerContext, facts: RequestFacts): Promise<Response> {
  switch (facts.request.method) {
    case 'GET':
    case 'HEAD':
      Object.assign(facts.result, { kind: 'info', status: 200 });
      return Response.json(serverInfo(ctx), { headers: { 'cache-control': 'no-store' } });
    case 'POST':
      return performHandshake(ctx, facts);
    case 'DELETE':
      return endSession(ctx, facts);
    default:
      Object.assign(facts.result, { kind: 'refused', status: 405 });
      return new Response(null, { status: 405, headers: { allow: 'GET, HEAD, POST, DELETE' } });
  }
}
