/**
 * The server side of docs/PROTOCOL.md as one web-standard function: `handler.handle(request, next)` answers the
 * handshake, verifies and strips every request to the protected endpoint, runs the application through `next`,
 * and signs every JSON-RPC message the application sends back (JSON bodies and each SSE event, as they come).
 * Framework adapters (Express, Fastify, Hono) only translate to and from `Request` and `Response`.
 */
import { AuditLog, type AuditSink } from './audit.js';
import { ALGORITHMS, isAlgorithm, type Algorithm } from './crypto/algorithms.js';
import type { BackendPreference } from './crypto/select.js';
import { DEFAULT_CLOCK_SKEW_SEC, MessageSigner, idKey, messageId, messageMethod, type ParsedEnvelope, type Profile } from './envelope.js';
import { HandshakeError, PQCTransportError, type PQCReason } from './errors.js';
import { PQCHandshake, type Authorizer } from './handshake.js';
import {
  DEFAULT_MAX_BODY_BYTES,
  PQC_ENVELOPE_HEADER,
  handshakePathFor,
  headersForNewBody,
  mediaType,
  pqcErrorResponse,
  readBodyLimited,
} from './http.js';
import { AgentIdentity } from './identity.js';
import { parseLossless, toPlain, type JsonObject, type JsonValue } from './json/lossless.js';
import { DEFAULT_MAX_SESSIONS, DEFAULT_SESSION_TTL_SEC, MemorySessionStore, type SessionRecord, type SessionStore } from './session.js';
import { transformEventStream } from './sse.js';
import { PeerKeyCache, verifyWithStore, type AcceptedMessage, type RejectedMessage } from './verify.js';

/** Options of the PQC server layer; every adapter takes the same ones. */
export interface PQCServerOptions {
  /** The server's identity (required). */
  identity: AgentIdentity;
  /** Path(s) of the protected MCP endpoint (default `/mcp`). Other paths pass through untouched. */
  endpoint?: string | readonly string[];
  /** Path of the handshake (default: `pqc/handshake` beside the first endpoint, e.g. `/pqc/handshake`). */
  handshakePath?: string;
  /** Accepted profiles (default `[2]`; `[2, 1]` also accepts seed-format peers, docs/PROTOCOL.md §7). */
  profiles?: readonly Profile[];
  /** Accepted client algorithms (default: ML-DSA-44, -65 and -87). */
  algorithms?: readonly Algorithm[];
  /** Allowed clock skew in seconds (default 300). */
  clockSkewSec?: number;
  /** Session lifetime in seconds (default 3600). */
  sessionTtlSec?: number;
  /** Bound on live sessions (default 10 000); past it handshakes get `too_many_sessions`. */
  maxSessions?: number;
  /** Bound on a request body in bytes (default 4 MiB); past it requests get 413. */
  maxBodyBytes?: number;
  /** Who may open a session: a list of client DIDs or a function of the authenticated peer (default: anyone). */
  authorize?: Authorizer;
  /** Where sessions and nonces live (default: a `MemorySessionStore`, for one instance). */
  store?: SessionStore;
  /** The audit trail: an `AuditLog`, or a sink function that receives every entry. */
  audit?: AuditLog | AuditSink;
  /** Put the server's public key in every signed message (default false: the client pinned it). */
  includePublicKey?: boolean;
  /**
   * The ML-DSA backend the server signs and verifies with (default: the identity's own). Give a worker pool
   * (`createWorkerPoolBackend()` of `@pqc-mcp/core/node`) to keep the crypto off the event loop; the identity is
   * used through it (`identity.withBackend(backend)`), and client keys are prepared on it too.
   */
  backend?: BackendPreference;
}

/** Who is calling, handed to the application with every verified request. */
export interface PQCRequestContext {
  sessionId: string;
  /** The client's DID, pinned by the handshake. */
  peerDid: string;
  profile: Profile;
}

/** Runs the application with the verified request and its parsed body (without `_pqc`). */
export type PQCNext = (request: Request, parsedBody: unknown, context: PQCRequestContext | undefined) => Promise<Response>;

/** What `GET pqc/handshake` answers: the server's public identity. */
export interface ServerInfo {
  did: string;
  algorithm: Algorithm;
  public_key: string;
  versions: Profile[];
  backend: string;
}

/** The server layer, created once per server by `createPQCHandler`. */
export interface PQCHandler {
  readonly identity: AgentIdentity;
  readonly store: SessionStore;
  readonly audit: AuditLog;
  readonly endpoints: readonly string[];
  readonly handshakePath: string;
  /** What a path is to this layer: the handshake, a protected endpoint, or nothing (`undefined`). */
  route(pathname: string): 'handshake' | 'endpoint' | undefined;
  /** Handles one request: the handshake, a protected call (through `next`), or `next` untouched for other paths. */
  handle(request: Request, next: PQCNext): Promise<Response>;
  /** The server's public identity. */
  info(): ServerInfo;
}

function optionError(name: string, rule: string): TypeError {
  return new TypeError(`pqc: option "${name}" ${rule}`);
}

function positiveNumber(options: PQCServerOptions, name: keyof PQCServerOptions, fallback: number, integer: boolean): number {
  const value = options[name] ?? fallback;
  if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value) || (integer && !Number.isInteger(value))) {
    throw optionError(name, `must be a positive ${integer ? 'integer' : 'number'}, got ${String(value)}`);
  }
  return value;
}

function checkPath(path: unknown, name: string): string {
  if (typeof path !== 'string' || !path.startsWith('/')) throw optionError(name, 'must be a path starting with "/"');
  return path;
}

interface Resolved {
  identity: AgentIdentity;
  endpoints: string[];
  handshakePath: string;
  legacyHandshakePath: string | undefined;
  profiles: Profile[];
  algorithms: Algorithm[];
  clockSkewSec: number;
  sessionTtlSec: number;
  maxSessions: number;
  maxBodyBytes: number;
  authorize: Authorizer | undefined;
  store: SessionStore;
  audit: AuditLog;
  includePublicKey: boolean;
}

/**
 * The form of a path used to decide what is protected. Frameworks route on decoded, often case-insensitive paths
 * that ignore a trailing slash (`/m%63p`, `/MCP/` reach the `/mcp` route), so the decision is made on the loosest
 * form: a path that any framework could route to the endpoint is protected (it fails closed).
 */
export function routeKey(pathname: string): string {
  let path = pathname;
  try {
    path = decodeURIComponent(pathname);
  } catch {
    // Undecodable escapes stay as they are: no framework routes them to the endpoint either.
  }
  path = path.toLowerCase().replace(/\/{2,}/g, '/');
  while (path.length > 1 && path.endsWith('/')) path = path.slice(0, -1);
  return path;
}

/** Validates options eagerly, so a misconfiguration fails at start-up with a message that names the option. */
export function resolveServerOptions(options: PQCServerOptions): Resolved {
  if (typeof options !== 'object' || options === null) throw new TypeError('pqc: options are required ({ identity })');
  if (!(options.identity instanceof AgentIdentity)) {
    throw optionError('identity', 'must be an AgentIdentity (AgentIdentity.create(), .fromSeed() or .load(file))');
  }
  const endpoints = (typeof options.endpoint === 'string' ? [options.endpoint] : options.endpoint ?? ['/mcp']).map((p) =>
    checkPath(p, 'endpoint'),
  );
  if (endpoints.length === 0) throw optionError('endpoint', 'must name at least one path');
  const profiles = [...(options.profiles ?? [2])];
  if (profiles.length === 0 || profiles.some((p) => p !== 1 && p !== 2)) throw optionError('profiles', 'must be a non-empty list of 1 and 2');
  const algorithms = [...(options.algorithms ?? ALGORITHMS)];
  if (algorithms.length === 0 || !algorithms.every(isAlgorithm)) {
    throw optionError('algorithms', `must be a non-empty list of ${ALGORITHMS.join(', ')}`);
  }
  const authorize = options.authorize;
  if (authorize !== undefined && typeof authorize !== 'function' && !(Array.isArray(authorize) && authorize.every((d) => typeof d === 'string'))) {
    throw optionError('authorize', 'must be a list of DIDs or a function (peer) => boolean');
  }
  const store = options.store ?? new MemorySessionStore();
  for (const method of ['createSession', 'getSession', 'deleteSession', 'recordNonce', 'recordHandshake'] as const) {
    if (typeof (store as unknown as Record<string, unknown>)[method] !== 'function') {
      throw optionError('store', `must implement SessionStore (missing ${method})`);
    }
  }
  let audit: AuditLog;
  if (options.audit === undefined) audit = new AuditLog();
  else if (options.audit instanceof AuditLog) audit = options.audit;
  else if (typeof options.audit === 'function') audit = new AuditLog({ sink: options.audit });
  else throw optionError('audit', 'must be an AuditLog or a function (entry) => void');
  const handshakePath = checkPath(options.handshakePath ?? handshakePathFor(endpoints[0]!), 'handshakePath');
  let identity = options.identity;
  if (options.backend !== undefined) {
    try {
      identity = identity.withBackend(options.backend);
    } catch (err) {
      throw optionError('backend', `must be 'auto', 'noble', 'node', 'webcrypto' or a CryptoBackend available here (${err instanceof Error ? err.message : String(err)})`);
    }
  }
  return {
    identity,
    endpoints,
    handshakePath,
    legacyHandshakePath: profiles.includes(1) ? new URL('handshake', new URL(endpoints[0]!, 'http://localhost')).pathname : undefined,
    profiles,
    algorithms,
    clockSkewSec: positiveNumber(options, 'clockSkewSec', DEFAULT_CLOCK_SKEW_SEC, false),
    sessionTtlSec: positiveNumber(options, 'sessionTtlSec', DEFAULT_SESSION_TTL_SEC, false),
    maxSessions: positiveNumber(options, 'maxSessions', DEFAULT_MAX_SESSIONS, true),
    maxBodyBytes: positiveNumber(options, 'maxBodyBytes', DEFAULT_MAX_BODY_BYTES, true),
    authorize,
    store,
    audit,
    includePublicKey: options.includePublicKey === true,
  };
}

// ignoreBOM: true keeps a leading byte-order mark in the text, so the strict parse refuses it (docs/PROTOCOL.md §2)
// instead of the decoder dropping it unseen.
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The plain JS value of a verified message without `_pqc` (what `JSON.parse` of its text gives, minus the envelope). */
function plainWithoutEnvelope(message: JsonObject): unknown {
  const out: JsonObject = new Map();
  for (const [key, value] of message) if (key !== '_pqc') out.set(key, value);
  return toPlain(out);
}

/** What a rejection's audit entry records. */
interface RejectInfo {
  parsed?: ParsedEnvelope;
  session?: SessionRecord;
  detail?: string;
  method?: string | null;
}

/** How outgoing messages of one response are bound to the request (in_reply_to, docs/PROTOCOL.md §3). */
interface ReplyBinding {
  sessionId: string;
  /** The client the answer goes to (for the audit trail). */
  peerDid: string;
  profile: Profile;
  /** in_reply_to for messages with no matching id (a POST holding a single request). */
  fallback: string | undefined;
  /** in_reply_to per request id (batches). */
  byId: Map<string, string>;
}

/** Creates the server layer. Validates options at once (throws `TypeError` naming the option). */
export function createPQCHandler(options: PQCServerOptions): PQCHandler {
  const o = resolveServerOptions(options);
  const signer = new MessageSigner(o.identity);
  // Client keys are prepared on the backend the server signs with (a worker pool verifies off the event loop too).
  const peers = new PeerKeyCache(undefined, o.identity.backend);
  const policy = { profiles: o.profiles, algorithms: o.algorithms, clockSkewSec: o.clockSkewSec, store: o.store, peers };

  const info = (): ServerInfo => ({
    did: o.identity.did,
    algorithm: o.identity.algorithm,
    public_key: o.identity.publicKeyHex,
    versions: [...o.profiles].sort((a, b) => b - a),
    backend: o.identity.backend.name,
  });

  const handshakeUrl = (request: Request): string => new URL(o.handshakePath, request.url).href;

  function reject(request: Request, reason: PQCReason, id: string | number | null, audit: RejectInfo = {}): Response {
    o.audit.record({
      operation: 'rejected',
      verified: false,
      reason,
      session_id: audit.parsed?.sessionId ?? null,
      method: audit.method ?? null,
      signer_did: audit.parsed?.signerDid ?? null,
      peer_did: audit.session?.peerDid ?? null,
      algorithm: audit.parsed?.algorithm ?? null,
      signature_truncated: audit.parsed?.signatureHex ?? null,
      details: { http_method: request.method, detail: audit.detail ?? null },
    });
    return pqcErrorResponse(reason, id, handshakeUrl(request));
  }

  function rejectVerdict(request: Request, verdict: RejectedMessage, method: string | null): Response {
    return reject(request, verdict.reason, verdict.id, { ...verdict, method });
  }

  function accepted(verdict: AcceptedMessage, method: string | null, operation: 'request' | 'notification' | 'response'): void {
    o.audit.record({
      operation,
      verified: true,
      session_id: verdict.session.sessionId,
      method,
      signer_did: verdict.parsed.signerDid,
      peer_did: verdict.session.peerDid,
      algorithm: verdict.parsed.algorithm,
      signature_truncated: verdict.parsed.signatureHex,
      digest: verdict.digest,
    });
  }

  async function handshake(request: Request): Promise<Response> {
    if (request.method === 'GET' || request.method === 'HEAD') {
      return Response.json(info(), { headers: { 'cache-control': 'no-store' } });
    }
    if (request.method !== 'POST') {
      return new Response(null, { status: 405, headers: { allow: 'GET, POST' } });
    }
    try {
      const body = await readBodyLimited(request, o.maxBodyBytes);
      const { response } = await PQCHandshake.respond(body, o.identity, {
        store: o.store,
        profiles: o.profiles,
        algorithms: o.algorithms,
        clockSkewSec: o.clockSkewSec,
        sessionTtlSec: o.sessionTtlSec,
        maxSessions: o.maxSessions,
        authorize: o.authorize,
        audit: o.audit,
      });
      return new Response(response, { status: 200, headers: { 'content-type': 'application/json', 'cache-control': 'no-store' } });
    } catch (err) {
      if (err instanceof HandshakeError) return pqcErrorResponse(err.reason, null, handshakeUrl(request));
      if (err instanceof PQCTransportError) return reject(request, err.reason, null, { detail: err.message, method: 'pqc/handshake' });
      throw err;
    }
  }

  async function signMessageTree(tree: JsonValue, binding: ReplyBinding): Promise<string> {
    if (!(tree instanceof Map)) throw new PQCTransportError('malformed_json', 'the application sent a non-object JSON-RPC message');
    const key = idKey(tree.get('id'));
    const inReplyTo = (key !== undefined && !tree.has('method') ? binding.byId.get(key) : undefined) ?? binding.fallback;
    const signed = await signer.signMessage(tree, {
      sessionId: binding.sessionId,
      inReplyTo: binding.profile === 2 ? inReplyTo : undefined,
      includePublicKey: o.includePublicKey,
      profile: binding.profile,
    });
    o.audit.record({
      operation: 'response',
      verified: true,
      session_id: binding.sessionId,
      peer_did: binding.peerDid,
      method: messageMethod(tree),
      signer_did: o.identity.did,
      algorithm: o.identity.algorithm,
      signature_truncated: signed.envelope.signature,
      digest: signed.digest,
      details: inReplyTo ? { in_reply_to: inReplyTo } : null,
    });
    return signed.text;
  }

  /** Signs what the application answered: each JSON-RPC message of a JSON body or of an event stream. */
  async function signResponse(response: Response, binding: ReplyBinding): Promise<Response> {
    if (!response.body || response.status === 202 || response.status === 204) return response;
    const type = mediaType(response.headers);
    const init = { status: response.status, statusText: response.statusText, headers: headersForNewBody(response.headers) };
    if (type === 'text/event-stream') {
      const stream = response.body.pipeThrough(transformEventStream((data) => signMessageTree(parseLossless(data), binding)));
      return new Response(stream, init);
    }
    if (type !== 'application/json') return response;
    const text = await response.text();
    if (text.trim() === '') return new Response(null, init);
    try {
      const tree = parseLossless(text);
      const out = Array.isArray(tree)
        ? `[${(await Promise.all(tree.map((m) => signMessageTree(m, binding)))).join(',')}]`
        : await signMessageTree(tree, binding);
      return new Response(out, init);
    } catch (err) {
      o.audit.record({ operation: 'rejected', verified: false, session_id: binding.sessionId, details: { detail: 'unsignable application response', error: String(err) } });
      // Never pass unsigned application output: answer an internal error instead.
      return Response.json({ jsonrpc: '2.0', id: null, error: { code: -32603, message: 'Internal error: the response could not be signed' } }, { status: 500 });
    }
  }

  async function protectedPost(request: Request, next: PQCNext): Promise<Response> {
    let text: string;
    let tree: JsonValue;
    try {
      const bytes = await readBodyLimited(request, o.maxBodyBytes);
      text = utf8Decoder.decode(bytes);
      tree = parseLossless(text);
    } catch (err) {
      const reason = err instanceof PQCTransportError ? err.reason : 'malformed_json';
      return reject(request, reason, null, { detail: err instanceof Error ? err.message : String(err) });
    }
    const elements = Array.isArray(tree) ? tree : [tree];
    if (elements.length === 0) return reject(request, 'missing_envelope', null, { detail: 'empty batch' });
    const verdicts = await Promise.all(elements.map((element) => verifyWithStore(element, policy)));
    const binding: ReplyBinding = { sessionId: '', peerDid: '', profile: 2, fallback: undefined, byId: new Map() };
    let requests = 0;
    for (let i = 0; i < verdicts.length; i++) {
      const verdict = verdicts[i]!;
      const element = elements[i] as JsonObject;
      const method = messageMethod(element);
      if (!verdict.ok) return rejectVerdict(request, verdict, method);
      if (i === 0) {
        binding.sessionId = verdict.session.sessionId;
        binding.peerDid = verdict.session.peerDid;
        binding.profile = verdict.session.profile;
      } else if (verdict.session.sessionId !== binding.sessionId) {
        return reject(request, 'peer_mismatch', messageId(element), {
          parsed: verdict.parsed,
          session: verdict.session,
          detail: 'a batch mixes sessions',
          method,
        });
      }
      const key = idKey(element.get('id'));
      if (method !== null && key !== undefined) {
        binding.byId.set(key, verdict.parsed.nonce);
        requests++;
      }
    }
    if (elements.length === 1 || requests === 1) {
      binding.fallback = requests === 1 ? [...binding.byId.values()][0] : (verdicts[0] as AcceptedMessage).parsed.nonce;
    }
    for (let i = 0; i < verdicts.length; i++) {
      const element = elements[i] as JsonObject;
      const method = messageMethod(element);
      accepted(verdicts[i] as AcceptedMessage, method, method === null ? 'response' : element.has('id') ? 'request' : 'notification');
    }

    // The application gets the body once more as plain JSON, without the envelope (the MCP SDK rejects unknown members).
    // Built from the lossless tree already parsed (the same values JSON.parse gives), not by parsing the text again.
    const plain = Array.isArray(tree) ? elements.map((e) => plainWithoutEnvelope(e as JsonObject)) : plainWithoutEnvelope(tree as JsonObject);
    const session = (verdicts[0] as AcceptedMessage).session;
    const forward = new Request(request.url, {
      method: 'POST',
      headers: headersForNewBody(request.headers),
      body: JSON.stringify(plain),
      signal: request.signal,
    });
    const response = await next(forward, plain, { sessionId: session.sessionId, peerDid: session.peerDid, profile: session.profile });
    return signResponse(response, binding);
  }

  async function protectedBodyless(request: Request, next: PQCNext): Promise<Response> {
    const header = request.headers.get(PQC_ENVELOPE_HEADER);
    if (header === null) return reject(request, 'missing_envelope', null, { detail: `no ${PQC_ENVELOPE_HEADER} header` });
    let envelope: JsonValue;
    try {
      envelope = parseLossless(header);
    } catch (err) {
      return reject(request, 'malformed_json', null, { detail: err instanceof Error ? err.message : String(err) });
    }
    const url = new URL(request.url);
    const message: JsonObject = new Map<string, JsonValue>([
      [
        'http',
        new Map<string, JsonValue>([
          ['method', request.method],
          ['path', url.pathname + url.search],
          ['mcp_session_id', request.headers.get('mcp-session-id')],
        ]),
      ],
      ['_pqc', envelope],
    ]);
    const verdict = await verifyWithStore(message, policy);
    if (!verdict.ok) return rejectVerdict(request, verdict, request.method);
    accepted(verdict, request.method, 'request');
    const { session } = verdict;
    const response = await next(request, undefined, { sessionId: session.sessionId, peerDid: session.peerDid, profile: session.profile });
    return signResponse(response, { sessionId: session.sessionId, peerDid: session.peerDid, profile: session.profile, fallback: undefined, byId: new Map() });
  }

  const protectedPaths = new Set(o.endpoints.map(routeKey));
  const handshakePaths = new Set([o.handshakePath, o.legacyHandshakePath].filter((p): p is string => p !== undefined).map(routeKey));
  const route = (pathname: string): 'handshake' | 'endpoint' | undefined => {
    const key = routeKey(pathname);
    if (handshakePaths.has(key)) return 'handshake';
    return protectedPaths.has(key) ? 'endpoint' : undefined;
  };

  return {
    identity: o.identity,
    store: o.store,
    audit: o.audit,
    endpoints: o.endpoints,
    handshakePath: o.handshakePath,
    route,
    info,
    async handle(request, next) {
      const kind = route(new URL(request.url).pathname);
      if (kind === 'handshake') return handshake(request);
      if (kind === undefined) return next(request, undefined, undefined);
      if (request.method === 'POST') return protectedPost(request, next);
      if (request.method === 'GET' || request.method === 'HEAD' || request.method === 'DELETE') return protectedBodyless(request, next);
      // A CORS preflight carries no credentials and no body; every other method is refused, not passed unverified.
      if (request.method === 'OPTIONS') return next(request, undefined, undefined);
      return new Response(null, { status: 405, headers: { allow: 'GET, HEAD, POST, DELETE, OPTIONS' } });
    },
  };
}
