/**
 * The client side of docs/PROTOCOL.md as a fetch wrapper: `pqcFetch(options)` returns a `fetch` that performs the
 * handshake on first use (pinning the server), signs every request, verifies every message that comes back (JSON
 * bodies and each SSE event, as they arrive) and strips `_pqc` before the caller sees it. Give it to the MCP SDK's
 * `StreamableHTTPClientTransport(url, { fetch })`.
 */
import type { AuditLog } from '../audit.js';
import { MessageSigner, idKey } from '../envelope.js';
import { HandshakeError, errorForReason } from '../errors.js';
import { PQCHandshake } from '../handshake.js';
import { mediaType, readBodyLimited } from '../http.js';
import { isDid } from '../identity.js';
import { parseLossless, type JsonObject, type JsonValue } from '../json/lossless.js';
import { LAST_EVENT_ID_HEADER, MCP_SESSION_HEADER, PQC_ENVELOPE_HEADER, PQC_SESSION_HEADER, handshakePathFor } from '../protocol.js';
import type { RotationChain } from '../rotation.js';
import type { PQCSession } from '../session.js';
import { resolveFetchOptions, type FetchLike, type PQCFetchOptions, type ResolvedFetchOptions } from './options.js';
import { outcomeUnknown, plainId, readAnswer, signedSessionRejection, unsignedRejectionReason, type Expectation, type ServerRequests } from './verify.js';

export type { FetchLike, PQCFetchOptions } from './options.js';

/** A fetch that speaks docs/PROTOCOL.md, with its session and audit trail. */
export interface PQCFetch extends FetchLike {
  /** The current session, once the handshake is done. */
  readonly session: PQCSession | undefined;
  /** The client's audit trail. */
  readonly audit: AuditLog;
  /** The server's DID once pinned (after a key rotation was followed, the new one). */
  readonly serverDid: string | undefined;
  /** The server DIDs this client retired by following key rotations (and those given in `retiredDids`). */
  readonly retiredDids: readonly string[];
  /** Performs a handshake now (for the endpoint `url`), replacing any session. */
  handshake(url: string | URL): Promise<PQCSession>;
  /** Ends the session at the server (a signed DELETE on the handshake path, §9) and forgets it. */
  endSession(): Promise<void>;
  /** Forgets the session without telling the server (the next request performs a new handshake). */
  reset(): void;
}

/** A request as pqcFetch holds it: its URL, init without body, and the body text. */
interface Outgoing {
  url: URL;
  init: RequestInit;
  body: string | undefined;
}

async function toOutgoing(input: string | URL | Request, init: RequestInit | undefined): Promise<Outgoing> {
  if (input instanceof Request) {
    const merged: RequestInit = { method: input.method, headers: input.headers, signal: input.signal, ...init };
    const body = init?.body !== undefined ? await bodyText(init.body) : input.body ? await input.text() : undefined;
    return { url: new URL(input.url), init: { ...merged, body: undefined }, body };
  }
  return { url: new URL(String(input)), init: { ...init, body: undefined }, body: await bodyText(init?.body) };
}

async function bodyText(body: BodyInit | null | undefined): Promise<string | undefined> {
  if (body === undefined || body === null) return undefined;
  if (typeof body === 'string') return body;
  return new Response(body).text();
}

/** The handshake URL of an endpoint (§5; `<base>/handshake` for v1 peers, §7). */
function handshakeUrlFor(o: ResolvedFetchOptions, endpoint: URL): URL {
  if (o.handshakeUrl) return o.handshakeUrl;
  return new URL(o.profile === 2 ? handshakePathFor(endpoint.pathname) : 'handshake', endpoint);
}

/** The DID a server tells at `GET` of its handshake URL (to name it in a v2 handshake when trusting on first use). */
async function askServerDid(o: ResolvedFetchOptions, url: URL): Promise<string> {
  const response = await o.fetch(url, { method: 'GET', headers: { accept: 'application/json' }, redirect: 'manual' });
  const text = new TextDecoder().decode(await readBodyLimited(response.body, 64 * 1024).catch(() => new Uint8Array(0)));
  let did: unknown;
  try {
    did = (JSON.parse(text) as { did?: unknown }).did;
  } catch {
    did = undefined;
  }
  if (!response.ok || !isDid(did)) throw new HandshakeError('handshake_failed', `GET ${url.href} did not name the server (HTTP ${response.status})`);
  return did;
}

/** Posts a handshake request; resolves the answer's text, or throws the server's (unsigned) refusal. */
async function postHandshake(o: ResolvedFetchOptions, url: URL, request: string): Promise<string> {
  const response = await o.fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: request,
    redirect: 'manual',
  });
  let text: string;
  try {
    text = new TextDecoder().decode(await readBodyLimited(response.body, o.maxResponseBytes, response.headers.get('content-length')));
  } catch (err) {
    throw new HandshakeError('handshake_failed', `the handshake answer is too large: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!response.ok) {
    const reason = unsignedRejectionReason(text);
    throw new HandshakeError(reason ?? 'handshake_failed', `handshake refused by the server: HTTP ${response.status}${reason ? ` (${reason})` : ''}`);
  }
  return text;
}

/**
 * Signs a request for `s`: what to send and what its answers must carry. An answer to a server request takes that
 * request's nonce out of `serverRequests`.
 */
async function signOutgoing(
  signer: MessageSigner,
  o: ResolvedFetchOptions,
  out: Outgoing,
  s: PQCSession,
  serverRequests: ServerRequests,
): Promise<{ init: RequestInit; expect: Expectation }> {
  const method = (out.init.method ?? 'GET').toUpperCase();
  const headers = new Headers(out.init.headers);
  headers.delete(LAST_EVENT_ID_HEADER); // stream resumption is not part of the protocol (§4)
  headers.delete('content-length');
  const path = out.url.pathname + out.url.search;
  const mcpSessionId = headers.get(MCP_SESSION_HEADER);
  const byId = new Map<string, string>();
  const nonces: string[] = [];
  const waiting = new Map<string, string | number>();
  const sentAt = o.now();
  const init: RequestInit = { ...out.init, method, headers, redirect: 'manual' };
  if (out.body === undefined || method === 'GET' || method === 'HEAD' || method === 'DELETE') {
    const signed = await signer.signMessage({ http: { method, path, mcp_session_id: mcpSessionId } }, { sessionId: s.sessionId, profile: s.profile, now: o.now });
    headers.set(PQC_ENVELOPE_HEADER, JSON.stringify(signed.envelope));
    nonces.push(signed.nonce);
    return { init, expect: { method, byId, first: undefined, hadRequest: false, nonces, pending: waiting, sentAt } };
  }
  const tree = parseLossless(out.body);
  const elements = Array.isArray(tree) ? tree : [tree];
  const texts: string[] = [];
  let first: string | undefined;
  for (const element of elements) {
    if (!(element instanceof Map)) throw new TypeError('pqcFetch: a JSON-RPC message must be an object');
    const key = idKey(element.get('id'));
    const isRequest = element.has('method') && key !== undefined;
    // An answer to a server request carries that request's nonce (§3).
    const answers = !element.has('method') && key !== undefined ? serverRequests.get(key) : undefined;
    if (answers !== undefined) serverRequests.delete(key!);
    const signed = await signer.signMessage(element as JsonObject, {
      sessionId: s.sessionId,
      profile: s.profile,
      inReplyTo: answers,
      http: s.profile === 2 ? { method, path, mcpSessionId } : undefined,
      now: o.now,
    });
    texts.push(signed.text);
    nonces.push(signed.nonce);
    if (isRequest) {
      byId.set(key, signed.nonce);
      waiting.set(key, plainId(element.get('id') as JsonValue));
      first ??= signed.nonce;
    }
  }
  if (s.profile === 2) headers.set(PQC_SESSION_HEADER, s.sessionId);
  const body = Array.isArray(tree) ? `[${texts.join(',')}]` : texts[0]!;
  return {
    init: { ...init, body },
    expect: { method, byId, first: first ?? nonces[0], hadRequest: byId.size > 0, nonces, pending: waiting, sentAt },
  };
}

/** Creates the PQC fetch wrapper. Validates options at once (a `TypeError` names a bad one). */
export function pqcFetch(options: PQCFetchOptions): PQCFetch {
  const o = resolveFetchOptions(options);
  const signer = new MessageSigner(o.identity);
  let pinnedDid = o.serverDid;
  let pinnedKey = o.serverPublicKey;
  const retired = new Set(o.retiredDids);
  let session: PQCSession | undefined;
  let serverRequests: ServerRequests = new Map();
  let handshakeUrl: URL | undefined;
  let pending: Promise<PQCSession> | undefined;

  async function handshake(endpoint: string | URL): Promise<PQCSession> {
    const url = handshakeUrlFor(o, new URL(String(endpoint)));
    const serverDid = pinnedDid !== undefined || o.profile === 1 ? pinnedDid : await askServerDid(o, url);
    const { request, pending: state } = await PQCHandshake.initiate(o.identity, { profile: o.profile, serverDid, now: o.now });
    const text = await postHandshake(o, url, request);
    const next = await PQCHandshake.complete(text, o.identity, state, {
      serverDid: pinnedDid,
      serverPublicKey: pinnedKey,
      algorithms: o.algorithms,
      audit: o.audit,
      rotation: o.followRotations ? { retiredDids: retired, clockSkewSec: o.clockSkewSec } : undefined,
      now: o.now,
    });
    pinnedDid ??= next.peerDid; // trust on first use: later handshakes must reach the same server
    if (next.rotation !== undefined) repin(next.rotation);
    session = next;
    serverRequests = new Map();
    handshakeUrl = url;
    return next;
  }

  /** A rotation was followed and the new key signed the handshake: pin it, retire the old ones, tell the application. */
  function repin(chain: RotationChain): void {
    pinnedDid = chain.did;
    if (pinnedKey !== undefined) pinnedKey = chain.publicKey;
    for (const did of chain.retiredDids) retired.add(did);
    try {
      o.onRotation?.(chain);
    } catch {
      // the application's callback cannot undo a verified rotation
    }
  }

  function ensureSession(endpoint: URL): Promise<PQCSession> {
    if (session && session.isValid(o.now)) return Promise.resolve(session);
    pending ??= handshake(endpoint).finally(() => {
      pending = undefined;
    });
    return pending;
  }

  function forget(s: PQCSession): void {
    if (session === s) session = undefined;
  }

  async function send(out: Outgoing, resent: boolean): Promise<Response> {
    const s = await ensureSession(out.url);
    const signed = await signOutgoing(signer, o, out, s, serverRequests);
    const response = await o.fetch(out.url, signed.init);
    if (response.status >= 400 && mediaType(response.headers) === 'application/json') {
      // A session rejection: signed, it lets the request be sent once more after a new handshake (§6); unsigned, it
      // is reported and the session dropped, the request never sent again.
      let text: string;
      try {
        text = new TextDecoder().decode(await readBodyLimited(response.body, o.maxResponseBytes, response.headers.get('content-length')));
      } catch {
        throw outcomeUnknown(`an oversized error answer (HTTP ${response.status})`);
      }
      const signedReason = await signedSessionRejection(text, s, o, signed.expect);
      if (signedReason !== undefined) {
        forget(s);
        if (!resent) return send(out, true);
        throw errorForReason(signedReason, `the server refused the session again after a new handshake (${signedReason})`);
      }
      const reason = unsignedRejectionReason(text);
      if (reason !== undefined) {
        s.logOperation({ operation: 'rejected', verified: false, reason, details: { detail: 'refused by the server (unsigned)', status: response.status } });
        if (reason === 'unknown_session' || reason === 'session_expired') forget(s);
        throw errorForReason(reason, `the server refused the request (${reason}, unsigned: the request may or may not have run; it is not sent again)`);
      }
      return readAnswer(new Response(text, response), s, o, signed.expect, serverRequests);
    }
    return readAnswer(response, s, o, signed.expect, serverRequests);
  }

  const fetchFn = (async (input: string | URL | Request, init?: RequestInit): Promise<Response> => send(await toOutgoing(input, init), false)) as PQCFetch;

  async function endSession(): Promise<void> {
    const s = session;
    const url = handshakeUrl;
    session = undefined;
    if (!s || !url || s.profile !== 2) return;
    const signed = await signer.signMessage({ http: { method: 'DELETE', path: url.pathname + url.search, mcp_session_id: null } }, { sessionId: s.sessionId, now: o.now });
    const response = await o.fetch(url, { method: 'DELETE', headers: { [PQC_ENVELOPE_HEADER]: JSON.stringify(signed.envelope) }, redirect: 'manual' });
    const text = await response.text().catch(() => '');
    if (response.status !== 204) {
      const reason = unsignedRejectionReason(text);
      throw errorForReason(reason ?? 'handshake_failed', `ending the session: HTTP ${response.status}${reason ? ` (${reason})` : ''}`);
    }
  }

  Object.defineProperties(fetchFn, {
    session: { get: () => session, enumerable: true },
    audit: { value: o.audit, enumerable: true },
    serverDid: { get: () => pinnedDid, enumerable: true },
    retiredDids: { get: () => [...retired], enumerable: true },
    handshake: { value: (url: string | URL) => handshake(url) },
    endSession: { value: endSession },
    reset: {
      value: () => {
        session = undefined;
      },
    },
  });
  return fetchFn;
}
