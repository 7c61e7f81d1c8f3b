import { decodeLowerHex, fromHex, isLowerHex, randomBytes, toHex, utf8 } from './bytes.js';
import { ALGORITHMS, PUBLIC_KEY_BYTES, SIGNATURE_BYTES, isAlgorithm, type Algorithm } from './crypto/algorithms.js';
import { sha3_256 } from './crypto/hash.js';
import type { VerifyingKey } from './crypto/types.js';
import type { PQCReason } from './errors.js';
import { AgentIdentity, PeerIdentity, didFromPublicKey, isDid } from './identity.js';
import { canonicalJson, serializeJson } from './json/canonical.js';
import { JsonNumber, parseLossless, toPlain, type JsonObject, type JsonValue } from './json/lossless.js';
import { DEFAULT_CLOCK_SKEW_SEC, EMPTY_CONTEXT, ENVELOPE_KEY, MESSAGE_CONTEXT } from './protocol.js';
import type { Profile } from './store/types.js';
import { formatTimestamp, nowMs, parseTimestamp, type Clock } from './time.js';

/**
 * The HTTP request a client message was sent in (`http` in the envelope, docs/PROTOCOL.md §3): method, the
 * origin-form target exactly as sent, and the `Mcp-Session-Id` header sent (or null).
 */
export interface HttpBinding {
  method: string;
  path: string;
  mcpSessionId: string | null;
}

/** The `_pqc` envelope of docs/PROTOCOL.md §3 (v2) and §7 (v1). Unknown members are allowed and signed. */
export interface PqcEnvelope {
  v?: 2;
  signer_did: string;
  algorithm: Algorithm;
  timestamp: string;
  nonce: string;
  session_id?: string;
  in_reply_to?: string;
  http?: { method: string; path: string; mcp_session_id: string | null };
  mcp_session_id?: string;
  public_key?: string;
  signature: string;
  [member: string]: unknown;
}

/** Options of `MessageSigner.signMessage`. */
export interface SignOptions {
  /** The session the message belongs to; required by v2. */
  sessionId?: string;
  /** The nonce of the request this message answers (§3). */
  inReplyTo?: string;
  /** The HTTP request a client message is sent in (required on client messages in a POST body, §3). */
  http?: HttpBinding;
  /** The `Mcp-Session-Id` of the response a server message is sent in (§3). */
  mcpSessionId?: string;
  /** Put the signer's public key in the envelope (v2 default false; v1 always includes it). */
  includePublicKey?: boolean;
  /** 2 (default) or 1 (the seed's format). */
  profile?: Profile;
  /** The signing time (default: now). */
  now?: Clock;
}

/** A message after signing. */
export interface SignedMessage {
  /** The exact text to put on the wire (the signature is computed from it). */
  readonly text: string;
  /** The envelope, signature included. */
  readonly envelope: PqcEnvelope;
  readonly nonce: string;
  /** Hex SHA3-256 of the signed input. */
  readonly digest: string;
  /** The signed message as an object (parsed from `text` on first access). */
  readonly message: Record<string, unknown>;
}

/** What a message yields after its envelope was checked for shape and freshness (steps 1–3 of §3). */
export interface ParsedEnvelope {
  readonly profile: Profile;
  readonly signerDid: string;
  readonly algorithm: Algorithm;
  readonly timestamp: string;
  readonly timestampMs: number;
  readonly nonce: string;
  readonly sessionId: string | undefined;
  readonly inReplyTo: string | undefined;
  /** The HTTP request a client message says it was sent in. */
  readonly http: HttpBinding | undefined;
  /** The `Mcp-Session-Id` a server message says its response carries. */
  readonly mcpSessionId: string | undefined;
  readonly publicKeyHex: string | undefined;
  readonly signatureHex: string;
  /** The signature bytes, decoded once from `signatureHex`. */
  readonly signature: Uint8Array;
  /** The whole message, envelope included, as parsed losslessly. */
  readonly message: JsonObject;
  /** The envelope members as parsed. */
  readonly envelope: JsonObject;
}

/** Outcome of a single check: the value, or the reason it failed. */
export type Checked<T> = { ok: true; value: T } | { ok: false; reason: PQCReason; detail: string };

/** What the receiver accepts (docs/PROTOCOL.md §3, steps 2–3). */
export interface EnvelopePolicy {
  /** Accepted profiles (default `[2]`). */
  profiles?: readonly Profile[];
  /** Accepted algorithms (default: all three). */
  algorithms?: readonly Algorithm[];
  /** Allowed clock skew in seconds, both ways (default 300). */
  clockSkewSec?: number;
  /** The receiver's clock (default: now). */
  now?: Clock;
  /**
   * The `http` member of a v2 envelope (§3): `'required'` on client messages in a POST body, `'forbidden'` on server
   * messages and on the envelope of a GET or DELETE; `'optional'` (default) only checks its shape.
   */
  http?: 'required' | 'forbidden' | 'optional';
  /** Whether a v2 envelope may carry `mcp_session_id` (server messages only, §3; default true). */
  mcpSessionId?: boolean;
  /** The session every message must name (the `PQC-Session` header of a POST, §3). */
  sessionId?: string;
}

const fail = (reason: PQCReason, detail: string): { ok: false; reason: PQCReason; detail: string } => ({
  ok: false,
  reason,
  detail,
});

function isObject(value: JsonValue | undefined): value is JsonObject {
  return value instanceof Map;
}

/** Longest `http.path` and `mcp_session_id` accepted. */
const MAX_BINDING_LENGTH = 8192;
const HTTP_METHOD = /^[A-Z]{1,16}$/;
/** MCP session ids are visible ASCII (MCP Streamable HTTP). */
const MCP_SESSION_ID = /^[\x21-\x7e]{1,1024}$/;

/** The `http` member, exactly `method`, `path` and `mcp_session_id` (null when absent; undefined when malformed). */
function readHttp(value: JsonValue): HttpBinding | undefined {
  if (!isObject(value) || value.size !== 3) return undefined;
  const method = value.get('method');
  const path = value.get('path');
  const mcpSessionId = value.get('mcp_session_id');
  if (typeof method !== 'string' || !HTTP_METHOD.test(method)) return undefined;
  if (typeof path !== 'string' || !path.startsWith('/') || path.length > MAX_BINDING_LENGTH) return undefined;
  if (mcpSessionId !== null && !(typeof mcpSessionId === 'string' && MCP_SESSION_ID.test(mcpSessionId))) return undefined;
  return { method, path, mcpSessionId };
}

function optionalHex(env: JsonObject, key: string, bytes?: number): string | undefined | null {
  const value = env.get(key);
  if (value === undefined) return undefined;
  return isLowerHex(value, bytes) && (value as string).length > 0 ? (value as string) : null;
}

/**
 * Steps 2 and 3 of docs/PROTOCOL.md §3 on one parsed message: the envelope is present, well-typed, of an accepted
 * profile and algorithm, and fresh. No signature is checked here.
 */
export function checkEnvelope(message: JsonValue, policy: EnvelopePolicy = {}): Checked<ParsedEnvelope> {
  if (!isObject(message)) return fail('missing_envelope', 'message is not a JSON object');
  const env = message.get(ENVELOPE_KEY);
  if (env === undefined) return fail('missing_envelope', 'no _pqc envelope');
  if (!isObject(env)) return fail('invalid_envelope', '_pqc is not an object');

  const v = env.get('v');
  if (v !== undefined && !(v instanceof JsonNumber)) return fail('invalid_envelope', 'v is not a number');
  const signerDid = env.get('signer_did');
  if (!isDid(signerDid)) return fail('invalid_envelope', 'signer_did is not a did:pqaid DID');
  const algorithm = env.get('algorithm');
  if (typeof algorithm !== 'string') return fail('invalid_envelope', 'algorithm is not a string');
  const timestamp = env.get('timestamp');
  if (typeof timestamp !== 'string') return fail('invalid_envelope', 'timestamp is not a string');
  const nonce = env.get('nonce');
  if (!isLowerHex(nonce, 16)) return fail('invalid_envelope', 'nonce is not 32 lowercase hex characters');
  const signatureHex = env.get('signature');
  // Checked and decoded in one pass, once: verification uses these bytes.
  const signature = decodeLowerHex(signatureHex);
  if (typeof signatureHex !== 'string' || signature === undefined) return fail('invalid_envelope', 'signature is not lowercase hex');
  const sessionId = optionalHex(env, 'session_id', 16);
  if (sessionId === null) return fail('invalid_envelope', 'session_id is not 32 lowercase hex characters');
  const inReplyTo = optionalHex(env, 'in_reply_to', 16);
  if (inReplyTo === null) return fail('invalid_envelope', 'in_reply_to is not 32 lowercase hex characters');
  const publicKeyHex = optionalHex(env, 'public_key');
  if (publicKeyHex === null) return fail('invalid_envelope', 'public_key is not lowercase hex');
  const httpValue = env.get('http');
  const http = httpValue === undefined ? undefined : readHttp(httpValue);
  if (httpValue !== undefined && http === undefined) {
    return fail('invalid_envelope', 'http is not {"method","path","mcp_session_id"} of the request');
  }
  const mcpValue = env.get('mcp_session_id');
  if (mcpValue !== undefined && !(typeof mcpValue === 'string' && MCP_SESSION_ID.test(mcpValue))) {
    return fail('invalid_envelope', 'mcp_session_id is not an MCP session id');
  }
  const mcpSessionId = mcpValue as string | undefined;

  const profiles = policy.profiles ?? [2];
  let profile: Profile;
  if (v === undefined) {
    if (!profiles.includes(1)) return fail('unsupported_version', 'unversioned (v1) envelopes are not accepted');
    profile = 1;
    if (publicKeyHex === undefined) return fail('invalid_envelope', 'a v1 envelope must carry public_key');
  } else {
    if (v.toNumber() !== 2 || !profiles.includes(2)) return fail('unsupported_version', `version ${v.lexeme} is not accepted`);
    profile = 2;
    if (sessionId === undefined) return fail('invalid_envelope', 'a v2 envelope must carry session_id');
    const httpRule = policy.http ?? 'optional';
    if (httpRule === 'required' && http === undefined) return fail('invalid_envelope', 'a client message must carry http');
    if (httpRule === 'forbidden' && http !== undefined) return fail('invalid_envelope', 'this envelope must not carry http');
    if (policy.mcpSessionId === false && mcpSessionId !== undefined) {
      return fail('invalid_envelope', 'a client message carries its Mcp-Session-Id in http, not in mcp_session_id');
    }
  }

  if (!isAlgorithm(algorithm) || !(policy.algorithms ?? ALGORITHMS).includes(algorithm)) {
    return fail('unsupported_algorithm', `algorithm ${JSON.stringify(algorithm)} is not accepted`);
  }
  if (signatureHex.length !== SIGNATURE_BYTES[algorithm] * 2) {
    return fail('invalid_envelope', `signature is not ${SIGNATURE_BYTES[algorithm]} bytes`);
  }
  if (publicKeyHex !== undefined && publicKeyHex.length !== PUBLIC_KEY_BYTES[algorithm] * 2) {
    return fail('invalid_envelope', `public_key is not ${PUBLIC_KEY_BYTES[algorithm]} bytes`);
  }
  if (policy.sessionId !== undefined && sessionId !== policy.sessionId) {
    return fail('invalid_envelope', 'session_id is not the session of the PQC-Session header');
  }

  const timestampMs = parseTimestamp(timestamp);
  if (Number.isNaN(timestampMs)) return fail('invalid_envelope', 'timestamp is not an RFC 3339 date-time with offset');
  const skewMs = (policy.clockSkewSec ?? DEFAULT_CLOCK_SKEW_SEC) * 1000;
  if (Math.abs(nowMs(policy.now) - timestampMs) > skewMs) return fail('stale_timestamp', 'timestamp outside the allowed clock skew');

  return {
    ok: true,
    value: {
      profile,
      signerDid,
      algorithm,
      timestamp,
      timestampMs,
      nonce,
      sessionId,
      inReplyTo,
      http,
      mcpSessionId,
      publicKeyHex,
      signatureHex,
      signature,
      message,
      envelope: env,
    },
  };
}

/** The message with `_pqc` replaced (or removed when `envelope` is undefined), keys in their original order. */
function withEnvelope(message: JsonObject, envelope: JsonValue | undefined): JsonObject {
  const out: JsonObject = new Map();
  for (const [key, value] of message) if (key !== ENVELOPE_KEY) out.set(key, value);
  if (envelope !== undefined) out.set(ENVELOPE_KEY, envelope);
  return out;
}

/** The exact text whose SHA3-256 is signed (v2: the message with `_pqc` minus `signature`; v1: without `_pqc`). */
export function signingInput(parsed: ParsedEnvelope): string {
  if (parsed.profile === 1) return canonicalJson(withEnvelope(parsed.message, undefined));
  const unsigned: JsonObject = new Map();
  for (const [key, value] of parsed.envelope) if (key !== 'signature') unsigned.set(key, value);
  return canonicalJson(withEnvelope(parsed.message, unsigned));
}

/** Step 5 of §3: the signer is the expected peer, and a `public_key` in the envelope is its key. */
export function checkPeer(parsed: ParsedEnvelope, peer: { did: string; publicKeyHex: string }): boolean {
  if (parsed.signerDid !== peer.did) return false;
  return parsed.publicKeyHex === undefined || parsed.publicKeyHex === peer.publicKeyHex;
}

/** Step 6 of §3: the signature verifies under `key`. Resolves the digest (hex) on success, `undefined` on failure. */
export async function verifyEnvelopeSignature(parsed: ParsedEnvelope, key: VerifyingKey): Promise<string | undefined> {
  if (key.algorithm !== parsed.algorithm) return undefined;
  const digest = sha3_256(utf8(signingInput(parsed)));
  const context = parsed.profile === 2 ? MESSAGE_CONTEXT : EMPTY_CONTEXT;
  const ok = await key.verify(digest, parsed.signature, context);
  return ok ? toHex(digest) : undefined;
}

/** The JSON-RPC `id` of a message, when it has a readable one (for error replies). */
export function messageId(message: JsonValue): string | number | null {
  if (!isObject(message)) return null;
  const id = message.get('id');
  if (typeof id === 'string') return id;
  if (id instanceof JsonNumber) {
    const n = id.toNumber();
    return Number.isSafeInteger(n) || (Number.isFinite(n) && !id.isInteger) ? n : null;
  }
  return null;
}

/** A key for a JSON-RPC id that is the same for `7`, `7.0` and the number 7 (to pair answers with requests). */
export function idKey(id: JsonValue | undefined): string | undefined {
  if (typeof id === 'string') return `s:${id}`;
  if (id instanceof JsonNumber) return `n:${id.toNumber()}`;
  return undefined;
}

/** The JSON-RPC `method` of a message, or null for responses. */
export function messageMethod(message: JsonValue): string | null {
  if (!isObject(message)) return null;
  const method = message.get('method');
  return typeof method === 'string' ? method : null;
}

/** Options of `MessageSigner.verifyMessage`. */
export interface VerifyOptions extends EnvelopePolicy {
  /**
   * The expected signer. Without it, the envelope's own `public_key` is used and the DID is checked against it:
   * that proves integrity, not who signed, so servers and clients always verify against a pinned peer.
   */
  peer?: PeerIdentity | AgentIdentity;
}

/** Outcome of `MessageSigner.verifyMessage`. */
export interface VerificationResult {
  valid: boolean;
  /** Why verification failed; null when valid. */
  reason: PQCReason | null;
  /** A human-readable explanation of `reason`. */
  detail: string | null;
  profile: Profile | null;
  signerDid: string | null;
  algorithm: Algorithm | null;
  timestamp: string | null;
  nonce: string | null;
  sessionId: string | null;
  inReplyTo: string | null;
  /** Hex SHA3-256 of the signed input (set when valid). */
  digest: string | null;
  /** The message without `_pqc` (set when valid). */
  message: Record<string, unknown> | null;
}

function emptyResult(reason: PQCReason, detail: string, parsed?: ParsedEnvelope): VerificationResult {
  return {
    valid: false,
    reason,
    detail,
    profile: parsed?.profile ?? null,
    signerDid: parsed?.signerDid ?? null,
    algorithm: parsed?.algorithm ?? null,
    timestamp: parsed?.timestamp ?? null,
    nonce: parsed?.nonce ?? null,
    sessionId: parsed?.sessionId ?? null,
    inReplyTo: parsed?.inReplyTo ?? null,
    digest: null,
    message: null,
  };
}

/** The lossless form of a message given as text, bytes or a plain object. */
function toTree(message: string | Uint8Array | object): JsonValue {
  if (typeof message === 'string' || message instanceof Uint8Array) return parseLossless(message);
  // An object has no lexemes left to keep: read it back from the text a sender would write.
  return parseLossless(serializeJson(message));
}

function newNonce(): string {
  return toHex(randomBytes(16));
}

/** Signs and verifies single JSON-RPC messages (docs/PROTOCOL.md §3 and §7). */
export class MessageSigner {
  readonly identity: AgentIdentity;

  /** A signer for `identity`. */
  constructor(identity: AgentIdentity) {
    if (!(identity instanceof AgentIdentity)) throw new TypeError('MessageSigner needs an AgentIdentity');
    this.identity = identity;
  }

  /** pqc-json canonical text of a message without its top-level `_pqc` (the v1 signing input). */
  static canonicalize(message: string | Uint8Array | object): string {
    const tree = toTree(message);
    return canonicalJson(isObject(tree) ? withEnvelope(tree, undefined) : tree);
  }

  /**
   * Signs `message` (text, bytes or an object) and returns the wire text with the `_pqc` envelope.
   * An existing `_pqc` is replaced. Text keeps its number lexemes, so `7.0` stays `7.0`.
   */
  async signMessage(message: string | Uint8Array | object, options: SignOptions = {}): Promise<SignedMessage> {
    const profile = options.profile ?? 2;
    if (profile !== 1 && profile !== 2) throw new TypeError('profile must be 1 or 2');
    const { sessionId, inReplyTo } = options;
    if (profile === 2 && !isLowerHex(sessionId, 16)) {
      throw new TypeError('a v2 message needs sessionId (32 lowercase hex characters)');
    }
    if (sessionId !== undefined && !isLowerHex(sessionId, 16)) throw new TypeError('sessionId must be 32 lowercase hex');
    if (inReplyTo !== undefined && !isLowerHex(inReplyTo, 16)) throw new TypeError('inReplyTo must be 32 lowercase hex');
    const { http, mcpSessionId } = options;
    if (http !== undefined && (typeof http !== 'object' || http === null || !HTTP_METHOD.test(http.method) || !http.path.startsWith('/'))) {
      throw new TypeError('http must be { method, path, mcpSessionId } of the request');
    }
    const tree = typeof message === 'string' || message instanceof Uint8Array ? parseLossless(message) : message;
    if (tree instanceof Map) {
      // fine: lossless object
    } else if (typeof tree !== 'object' || tree === null || Array.isArray(tree) || tree instanceof JsonNumber) {
      throw new TypeError('signMessage needs a JSON-RPC message object');
    }
    const id = this.identity;
    const nonce = newNonce();
    const envelope: Record<string, unknown> = {};
    if (profile === 2) envelope.v = 2;
    envelope.signer_did = id.did;
    envelope.algorithm = id.algorithm;
    envelope.timestamp = formatTimestamp(nowMs(options.now));
    envelope.nonce = nonce;
    if (profile === 2) {
      envelope.session_id = sessionId;
      if (inReplyTo !== undefined) envelope.in_reply_to = inReplyTo;
      if (http !== undefined) envelope.http = { method: http.method, path: http.path, mcp_session_id: http.mcpSessionId };
      if (mcpSessionId !== undefined) envelope.mcp_session_id = mcpSessionId;
      if (options.includePublicKey) envelope.public_key = id.publicKeyHex;
    } else {
      envelope.public_key = id.publicKeyHex;
    }

    const body = tree instanceof Map ? withEnvelope(tree, undefined) : withoutKey(tree as Record<string, unknown>);
    const signed = profile === 2 ? setKey(body, ENVELOPE_KEY, envelope) : body;
    const digest = sha3_256(utf8(canonicalJson(signed)));
    // v2: the wire text is the message with the envelope last and `signature` last in it. Written before the
    // signature exists, it only needs the signature spliced in at its end (no second walk over a 3-9 KB hex string).
    const unsignedText = profile === 2 && typeof (body as { toJSON?: unknown }).toJSON !== 'function' ? serializeJson(signed) : undefined;
    const signature = toHex(await id.sign(digest, profile === 2 ? MESSAGE_CONTEXT : EMPTY_CONTEXT));
    envelope.signature = signature;
    // v1 adds session_id after signing (docs/PROTOCOL.md §7): it is not covered by the signature.
    if (profile === 1 && sessionId !== undefined) envelope.session_id = sessionId;
    const text =
      unsignedText !== undefined && unsignedText.endsWith('}}')
        ? `${unsignedText.slice(0, -2)},"signature":"${signature}"}}`
        : serializeJson(setKey(body, ENVELOPE_KEY, envelope));
    let parsed: Record<string, unknown> | undefined;
    return {
      text,
      envelope: envelope as PqcEnvelope,
      nonce,
      digest: toHex(digest),
      get message() {
        return (parsed ??= JSON.parse(text) as Record<string, unknown>);
      },
    };
  }

  /**
   * Verifies one signed message (steps 1–3, 5 and 6 of docs/PROTOCOL.md §3). Give the received text: a number written
   * `7.0` by a Python peer only verifies from its text. Never throws for bad input: the result says why.
   * Session liveness and replay are the session's job (`PQCSession`, the server and the client).
   */
  static async verifyMessage(message: string | Uint8Array | object, options: VerifyOptions = {}): Promise<VerificationResult> {
    let tree: JsonValue;
    try {
      tree = toTree(message);
    } catch (err) {
      return emptyResult('malformed_json', err instanceof Error ? err.message : 'malformed JSON');
    }
    const checked = checkEnvelope(tree, options);
    if (!checked.ok) return emptyResult(checked.reason, checked.detail);
    const parsed = checked.value;

    let key: VerifyingKey;
    const peer = options.peer instanceof AgentIdentity ? options.peer.toPeer() : options.peer;
    if (peer) {
      if (!checkPeer(parsed, peer)) return emptyResult('peer_mismatch', 'signer is not the expected peer', parsed);
      key = peer.verifyingKey;
    } else {
      if (parsed.publicKeyHex === undefined) {
        return emptyResult('invalid_envelope', 'no peer given and no public_key in the envelope', parsed);
      }
      const publicKey = fromHex(parsed.publicKeyHex);
      if (didFromPublicKey(publicKey) !== parsed.signerDid) {
        return emptyResult('did_mismatch', 'signer_did is not the DID of public_key', parsed);
      }
      key = new PeerIdentity(parsed.algorithm, publicKey, { did: parsed.signerDid }).verifyingKey;
    }
    const digest = await verifyEnvelopeSignature(parsed, key);
    if (digest === undefined) return emptyResult('invalid_signature', 'signature does not verify', parsed);
    const result = emptyResult('invalid_signature', '', parsed);
    result.valid = true;
    result.reason = null;
    result.detail = null;
    result.digest = digest;
    result.message = toPlain(withEnvelope(parsed.message, undefined)) as Record<string, unknown>;
    return result;
  }

  /** The message without its top-level `_pqc`: an object gives a shallow copy, text gives text, a batch each. */
  static stripPqc(message: string): string;
  static stripPqc<T extends object>(message: T): T;
  static stripPqc(message: string | object): string | object {
    if (typeof message === 'string') {
      const tree = parseLossless(message);
      return serializeJson(stripTree(tree));
    }
    if (Array.isArray(message)) return message.map((m: unknown) => (typeof m === 'object' && m !== null ? MessageSigner.stripPqc(m) : m));
    return withoutKey(message as Record<string, unknown>);
  }
}

function stripTree(tree: JsonValue): JsonValue {
  if (Array.isArray(tree)) return tree.map(stripTree);
  return isObject(tree) ? withEnvelope(tree, undefined) : tree;
}

function withoutKey(message: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(message)) {
    if (key === ENVELOPE_KEY) continue;
    // defineProperty keeps a "__proto__" member an own data property.
    Object.defineProperty(out, key, { value: message[key], enumerable: true, writable: true, configurable: true });
  }
  return out;
}

function setKey<T extends JsonObject | Record<string, unknown>>(message: T, key: string, value: unknown): T {
  if (message instanceof Map) {
    const out: JsonObject = new Map(message);
    out.set(key, value as JsonValue);
    return out as T;
  }
  const out = withoutKey(message as Record<string, unknown>);
  out[key] = value;
  return out as T;
}

