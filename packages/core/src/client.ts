/**
 * The client side of docs/PROTOCOL.md as a fetch wrapper: `pqcFetch(options)` returns a `fetch` that performs the
 * handshake on first use, signs every request, verifies every JSON-RPC message that comes back (JSON bodies and each
 * SSE event, as they arrive) against the pinned server key, and strips `_pqc` before the caller sees it. Give it to
 * the MCP SDK's `StreamableHTTPClientTransport(url, { fetch })`.
 */
import { AuditLog, type AuditSink } from './audit.js';
import type { Algorithm } from './crypto/algorithms.js';
import type { PQCReason } from './errors.js';
import { MessageSigner, idKey, messageMethod, type Profile } from './envelope.js';
import { HandshakeError, PQCTransportError, SessionExpiredError, SignatureVerificationError, errorForReason } from './errors.js';
import { PQCHandshake } from './handshake.js';
import { PQC_ENVELOPE_HEADER, headersForNewBody, mediaType, pqcErrorBody, pqcReasonOf } from './http.js';
import { AgentIdentity } from './identity.js';
import { serializeJson } from './json/canonical.js';
import { JsonNumber, parseLossless, type JsonObject, type JsonValue } from './json/lossless.js';
import type { PQCSession } from './session.js';
import { transformEventStream } from './sse.js';
import { verifyWithSession } from './verify.js';

/** The `fetch` signature the MCP SDK accepts. */
export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/** Options of `pqcFetch`. */
export interface PQCFetchOptions {
  /** The client's identity (required). */
  identity: AgentIdentity;
  /** The server's expected DID: the handshake fails with `peer_mismatch` for any other server. */
  serverDid?: string;
  /** The server's expected public key (hex or bytes), an alternative to `serverDid`. */
  serverPublicKey?: string | Uint8Array;
  /** Accept whichever server answers the first handshake, and pin it for later ones (default false). */
  trustOnFirstUse?: boolean;
  /** Handshake URL (default: `pqc/handshake` beside the request URL, docs/PROTOCOL.md §5). */
  handshakeUrl?: string | URL;
  /** 2 (default) or 1 (the seed's format). */
  profile?: Profile;
  /** Accepted server algorithms (default: all three). */
  algorithms?: readonly Algorithm[];
  /** Allowed clock skew, seconds (default 300). */
  clockSkewSec?: number;
  /** The fetch underneath (default `globalThis.fetch`). */
  fetch?: FetchLike;
  /** The client's audit trail: an `AuditLog`, or a sink function. */
  audit?: AuditLog | AuditSink;
}

/** A fetch that speaks docs/PROTOCOL.md, with its session and audit trail. */
export interface PQCFetch extends FetchLike {
  /** The current session, once the handshake is done. */
  readonly session: PQCSession | undefined;
  /** The client's audit trail. */
  readonly audit: AuditLog;
  /** The server's DID once pinned. */
  readonly serverDid: string | undefined;
  /** Performs a handshake now (for the endpoint `url`), replacing any session. */
  handshake(url: string | URL): Promise<PQCSession>;
  /** Forgets the session (the next request performs a new handshake). */
  reset(): void;
}

const RETRY_REASONS = new Set(['unknown_session', 'session_expired']);

/** A JSON-RPC id as the caller wrote it (a lossless number back to a number). */
function plainId(id: JsonValue | undefined): string | number {
  return id instanceof JsonNumber ? id.toNumber() : (id as string);
}

/** What responses to one request must carry in `in_reply_to`. */
interface Expectation {
  /** For messages whose id matches no request (or every message of a single-request POST). */
  fallback: string | null | undefined;
  byId: Map<string, string>;
  /** Requests still waiting for their answer, by id key (their ids as sent). */
  pending: Map<string, string | number>;
}

function toRequestParts(input: string | URL | Request, init: RequestInit | undefined): { url: URL; init: RequestInit } {
  if (input instanceof Request) {
    return {
      url: new URL(input.url),
      init: { method: input.method, headers: input.headers, body: input.body, signal: input.signal, ...init, duplex: 'half' } as RequestInit,
    };
  }
  return { url: new URL(String(input)), init: { ...init } };
}

async function bodyText(body: BodyInit | null | undefined): Promise<string | undefined> {
  if (body === undefined || body === null) return undefined;
  if (typeof body === 'string') return body;
  return new Response(body).text();
}

/** Creates the PQC fetch wrapper. Validates options at once. */
export function pqcFetch(options: PQCFetchOptions): PQCFetch {
  if (typeof options !== 'object' || options === null || !(options.identity instanceof AgentIdentity)) {
    throw new TypeError('pqcFetch: option "identity" must be an AgentIdentity');
  }
  if (options.serverDid === undefined && options.serverPublicKey === undefined && options.trustOnFirstUse !== true) {
    throw new TypeError(
      'pqcFetch: pin the server with "serverDid" or "serverPublicKey" (GET <base>/pqc/handshake tells them), ' +
        'or accept the first server that answers with "trustOnFirstUse: true"',
    );
  }
  const profile = options.profile ?? 2;
  if (profile !== 1 && profile !== 2) throw new TypeError('pqcFetch: option "profile" must be 1 or 2');
  const inner: FetchLike = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  const audit =
    options.audit instanceof AuditLog ? options.audit : new AuditLog(typeof options.audit === 'function' ? { sink: options.audit } : {});
  const identity = options.identity;
  const signer = new MessageSigner(identity);
  let pinnedDid = options.serverDid;
  let session: PQCSession | undefined;
  let pending: Promise<PQCSession> | undefined;

  async function handshake(endpoint: string | URL): Promise<PQCSession> {
    const url = options.handshakeUrl ? new URL(String(options.handshakeUrl)) : new URL('pqc/handshake', endpoint);
    const { request, pending: state } = await PQCHandshake.initiate(identity, { profile });
    const response = await inner(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: request,
    });
    const text = await response.text();
    if (!response.ok) {
      let reason;
      try {
        reason = pqcReasonOf(JSON.parse(text));
      } catch {
        reason = undefined;
      }
      throw new HandshakeError(reason ?? 'handshake_failed', `handshake refused by the server: HTTP ${response.status}${reason ? ` (${reason})` : ''}`);
    }
    const next = await PQCHandshake.complete(text, identity, state, {
      serverDid: pinnedDid,
      serverPublicKey: options.serverPublicKey,
      algorithms: options.algorithms,
      audit,
    });
    pinnedDid ??= next.peerDid; // trust on first use: later handshakes must reach the same server
    session = next;
    return next;
  }

  function ensureSession(endpoint: URL): Promise<PQCSession> {
    if (session && session.isValid()) return Promise.resolve(session);
    pending ??= handshake(endpoint).finally(() => {
      pending = undefined;
    });
    return pending;
  }

  function rejectMessage(reason: PQCReason, detail: string, s: PQCSession, method: string | null): never {
    s.logOperation({ operation: 'rejected', verified: false, reason, method, details: { detail } });
    throw reason === 'replay_detected' || reason === 'peer_mismatch' || reason === 'unknown_session'
      ? errorForReason(reason, `server message refused (${reason}): ${detail}`)
      : new SignatureVerificationError(reason, `server message refused (${reason}): ${detail}`);
  }

  /** Verifies one incoming JSON-RPC message and returns it without `_pqc`. */
  async function acceptMessage(message: JsonValue, s: PQCSession, expect: Expectation): Promise<JsonValue> {
    const key = message instanceof Map && !message.has('method') ? idKey(message.get('id')) : undefined;
    const inReplyTo = (key !== undefined ? expect.byId.get(key) : undefined) ?? expect.fallback;
    const verdict = await verifyWithSession(message, s, {
      algorithms: options.algorithms,
      clockSkewSec: options.clockSkewSec,
      inReplyTo: s.profile === 2 ? inReplyTo : undefined,
    });
    const method = messageMethod(message);
    if (!verdict.ok) rejectMessage(verdict.reason, verdict.detail, s, method);
    s.logOperation({
      operation: method === null ? 'response' : message instanceof Map && message.has('id') ? 'request' : 'notification',
      verified: true,
      method,
      signer_did: verdict.parsed.signerDid,
      algorithm: verdict.parsed.algorithm,
      signature_truncated: verdict.parsed.signatureHex,
      digest: verdict.digest,
    });
    if (key !== undefined) expect.pending.delete(key);
    const out: JsonObject = new Map(message as JsonObject);
    out.delete('_pqc');
    return out;
  }

  async function verifyResponse(response: Response, s: PQCSession, expect: Expectation): Promise<Response> {
    if (!response.body || response.status === 202 || response.status === 204) return response;
    const type = mediaType(response.headers);
    const init = { status: response.status, statusText: response.statusText, headers: headersForNewBody(response.headers) };
    if (type === 'text/event-stream') {
      let failure: PQCTransportError | undefined;
      const stream = response.body.pipeThrough(
        transformEventStream(async (data) => {
          if (failure) throw failure; // nothing more is taken from a stream that carried a forgery
          try {
            let tree: JsonValue;
            try {
              tree = parseLossless(data);
            } catch {
              rejectMessage('malformed_json', 'an event is not JSON', s, null);
            }
            return serializeJson(await acceptMessage(tree, s, expect));
          } catch (err) {
            if (!(err instanceof PQCTransportError) || expect.pending.size === 0) throw err;
            // An error inside an SSE body leaves an SDK request waiting for its timeout: answer each request still
            // pending with a local (never server-made) JSON-RPC error carrying the reason, then end the stream.
            failure = err;
            const answers = [...expect.pending.values()].map((id) => pqcErrorBody(err.reason, id));
            expect.pending.clear();
            return answers;
          }
        }),
      );
      return new Response(stream, init);
    }
    if (type !== 'application/json') return response;
    const text = await response.text();
    if (text.trim() === '') return new Response(null, init);
    let tree: JsonValue;
    try {
      tree = parseLossless(text);
    } catch {
      rejectMessage('malformed_json', 'the response is not JSON', s, null);
    }
    const out = Array.isArray(tree)
      ? await Promise.all(tree.map((m) => acceptMessage(m, s, expect)))
      : await acceptMessage(tree, s, expect);
    return new Response(serializeJson(out), init);
  }

  /** Signs the request for `s`; returns the init to send and what the answers must carry in `in_reply_to`. */
  async function signRequest(url: URL, init: RequestInit, body: string | undefined, s: PQCSession): Promise<{ init: RequestInit; expect: Expectation }> {
    const method = (init.method ?? 'GET').toUpperCase();
    const headers = new Headers(init.headers);
    const expect: Expectation = { fallback: null, byId: new Map(), pending: new Map() };
    if (body === undefined || method === 'GET' || method === 'DELETE' || method === 'HEAD') {
      const httpMessage = {
        http: { method, path: url.pathname + url.search, mcp_session_id: headers.get('mcp-session-id') },
      };
      const signed = await signer.signMessage(httpMessage, { sessionId: s.sessionId, profile: s.profile });
      headers.set(PQC_ENVELOPE_HEADER, JSON.stringify(signed.envelope));
      return { init: { ...init, method, headers }, expect };
    }
    const tree = parseLossless(body);
    const elements = Array.isArray(tree) ? tree : [tree];
    const signedTexts: string[] = [];
    let requests = 0;
    let lastNonce: string | undefined;
    for (const element of elements) {
      if (!(element instanceof Map)) throw new TypeError('pqcFetch: a JSON-RPC message must be an object');
      const signed = await signer.signMessage(element, { sessionId: s.sessionId, profile: s.profile });
      signedTexts.push(signed.text);
      const key = idKey(element.get('id'));
      if (element.has('method') && key !== undefined) {
        expect.byId.set(key, signed.nonce);
        expect.pending.set(key, plainId(element.get('id')));
        requests++;
      }
      lastNonce = signed.nonce;
    }
    expect.fallback = elements.length === 1 ? lastNonce : requests === 1 ? [...expect.byId.values()][0] : undefined;
    headers.delete('content-length');
    const signedBody = Array.isArray(tree) ? `[${signedTexts.join(',')}]` : signedTexts[0]!;
    return { init: { ...init, method, headers, body: signedBody }, expect };
  }

  async function send(url: URL, init: RequestInit, body: string | undefined, retried: boolean): Promise<Response> {
    const s = await ensureSession(url);
    const signed = await signRequest(url, init, body, s);
    const response = await inner(url, signed.init);
    if (!response.ok && mediaType(response.headers) === 'application/json') {
      const text = await response.clone().text();
      let reason;
      try {
        reason = pqcReasonOf(JSON.parse(text));
      } catch {
        reason = undefined;
      }
      if (reason !== undefined && !text.includes('"_pqc"')) {
        s.logOperation({ operation: 'rejected', verified: false, reason, details: { detail: 'refused by the server', status: response.status } });
        if (RETRY_REASONS.has(reason)) {
          if (session === s) session = undefined;
          if (!retried) return send(url, init, body, true);
          throw new SessionExpiredError(reason as 'session_expired' | 'unknown_session', `the server refused the session again after a new handshake (${reason})`);
        }
        throw errorForReason(reason, `the server refused the request (${reason})`);
      }
    }
    return verifyResponse(response, s, signed.expect);
  }

  const fetchFn = (async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const parts = toRequestParts(input, init);
    const body = await bodyText(parts.init.body);
    return send(parts.url, { ...parts.init, body: undefined }, body, false);
  }) as PQCFetch;

  Object.defineProperties(fetchFn, {
    session: { get: () => session, enumerable: true },
    audit: { value: audit, enumerable: true },
    serverDid: { get: () => pinnedDid, enumerable: true },
    handshake: { value: (url: string | URL) => handshake(url) },
    reset: {
      value: () => {
        session = undefined;
      },
    },
  });
  return fetchFn;
}
