import type { AuditLog } from './audit.js';
import { fromHex, isLowerHex, randomBytes, toHex, utf8 } from './bytes.js';
import { ALGORITHMS, PUBLIC_KEY_BYTES, SIGNATURE_BYTES, isAlgorithm, type Algorithm } from './crypto/algorithms.js';
import { sha3_256, sha3_256Hex } from './crypto/hash.js';
import { HandshakeError, PQCTransportError, type PQCReason } from './errors.js';
import { AgentIdentity, PeerIdentity, isDid } from './identity.js';
import { canonicalJson } from './json/canonical.js';
import { JsonNumber, parseLossless, type JsonObject, type JsonValue } from './json/lossless.js';
import {
  DEFAULT_CLOCK_SKEW_SEC,
  DEFAULT_MAX_SESSIONS,
  DEFAULT_MAX_SESSIONS_PER_CLIENT,
  DEFAULT_SESSION_TTL_SEC,
  EMPTY_CONTEXT,
  HANDSHAKE_REQUEST_CONTEXT,
  HANDSHAKE_RESPONSE_CONTEXT,
  MAX_HANDSHAKE_JSON_VALUES,
  nonceRetentionSec,
} from './protocol.js';
import { RotationError, chainFrom, verifyRotationChain, type RotationChain, type RotationRecord } from './rotation.js';
import { PQCSession, type PQCSessionOptions } from './session.js';
import type { Profile, SessionRecord, SessionStore } from './store/types.js';
import { formatTimestamp, nowMs, parseTimestamp, type Clock } from './time.js';

/** What the client keeps between `initiate` and `complete`. */
export interface PendingHandshake {
  readonly profile: Profile;
  readonly clientDid: string;
  /** The server the request is for (`server_did`, v2). */
  readonly serverDid: string | undefined;
  readonly nonce: string;
  readonly timestamp: string;
  /** Hex SHA3-256 of pqc-json(the whole request), which a v2 server echoes. */
  readonly requestDigest: string;
  /** The request text as sent. */
  readonly request: string;
}

/** Who may open a session: a list of DIDs, or a function of the authenticated peer. */
export type Authorizer = readonly string[] | ((peer: PeerIdentity) => boolean | Promise<boolean>);

/** Options of `PQCHandshake.respond` (the server side). */
export interface RespondOptions {
  /** Where the session is opened and handshake replays are remembered. */
  store: SessionStore;
  /** Accepted profiles (default `[2]`). */
  profiles?: readonly Profile[];
  /** Accepted client algorithms (default: all three). */
  algorithms?: readonly Algorithm[];
  /** Allowed clock skew, seconds (default 300). */
  clockSkewSec?: number;
  /** Session lifetime, seconds (default 3600). */
  sessionTtlSec?: number;
  /** Bound on live sessions (default 10 000): one more ends the least recently used. */
  maxSessions?: number;
  /** Bound on live sessions per client key (default 16): one more ends that client's oldest. */
  maxSessionsPerClient?: number;
  /** Called with the authenticated client before a session is opened. */
  authorize?: Authorizer;
  /** Where the handshake is recorded. */
  audit?: AuditLog;
  /**
   * The server's rotation records, oldest first, ending at its identity (§11; checked by `readRotationRecords`). A v2
   * request naming a DID the chain retired, within that key's overlap, is answered with the current key and the
   * records from that DID on (`rotations`).
   */
  rotations?: readonly RotationRecord[];
  /** The server's clock (default: now). */
  now?: Clock;
}

/** What `respond` returns: the response text to send, the session it opened and those it ended to make room. */
export interface HandshakeResponse {
  response: string;
  session: SessionRecord;
  client: PeerIdentity;
  /** Sessions ended by the limits of §9 to open this one. */
  ended: string[];
}

/** Options of `PQCHandshake.complete` (the client side). */
export interface CompleteOptions extends PQCSessionOptions {
  /** The server's expected DID. */
  serverDid?: string;
  /** The server's expected public key (hex or bytes). */
  serverPublicKey?: string | Uint8Array;
  /** Accepted server algorithms (default: all three). */
  algorithms?: readonly Algorithm[];
  /**
   * Follow a key rotation (§11): a response from another key than the pinned one is accepted when its `rotations`
   * chain leads there from the pinned key (`session.rotation` tells the chain). Absent: such a response is
   * `peer_mismatch`, as in revision 2.
   */
  rotation?: {
    /** DIDs the client retired before: a chain back to one of them is refused (`key_reused`). */
    retiredDids?: Iterable<string>;
    /** Allowed clock skew on the records' times, seconds (default 300). */
    clockSkewSec?: number;
  };
  /** The client's clock (default: now). */
  now?: Clock;
}

type Fields = Map<string, JsonValue>;

function reject(reason: PQCReason, detail: string): never {
  throw new HandshakeError(reason, `handshake rejected (${reason}): ${detail}`);
}

function parseObject(text: string | Uint8Array, what: string): JsonObject {
  let tree: JsonValue;
  try {
    tree = parseLossless(text, { maxValues: MAX_HANDSHAKE_JSON_VALUES });
  } catch (err) {
    if (err instanceof PQCTransportError && err.reason === 'body_too_large') reject('body_too_large', `${what}: ${err.message}`);
    reject('malformed_json', err instanceof Error ? err.message : 'malformed JSON');
  }
  if (!(tree instanceof Map)) reject('handshake_failed', `${what} is not a JSON object`);
  return tree;
}

function readVersion(fields: Fields, profiles: readonly Profile[]): Profile {
  const v = fields.get('v');
  if (v === undefined) {
    if (!profiles.includes(1)) reject('unsupported_version', 'unversioned (v1) handshakes are not accepted');
    return 1;
  }
  if (!(v instanceof JsonNumber)) reject('invalid_envelope', 'v is not a number');
  if (v.toNumber() !== 2 || !profiles.includes(2)) reject('unsupported_version', `version ${v.lexeme} is not accepted`);
  return 2;
}

function readHex(fields: Fields, key: string, bytes?: number): string {
  const value = fields.get(key);
  if (!isLowerHex(value, bytes) || value.length === 0) {
    reject('invalid_envelope', `${key} is not ${bytes ? `${bytes * 2} ` : ''}lowercase hex`);
  }
  return value;
}

function readAlgorithm(fields: Fields, allowed: readonly Algorithm[]): Algorithm {
  const algorithm = fields.get('algorithm');
  if (!isAlgorithm(algorithm) || !allowed.includes(algorithm)) {
    reject('unsupported_algorithm', `algorithm ${JSON.stringify(algorithm)} is not accepted`);
  }
  return algorithm;
}

function readKey(fields: Fields, key: string, algorithm: Algorithm): string {
  return readHex(fields, key, PUBLIC_KEY_BYTES[algorithm]);
}

function readDid(fields: Fields, key: string): string {
  const did = fields.get(key);
  if (!isDid(did)) reject('invalid_envelope', `${key} is not a did:pqaid DID`);
  return did;
}

function withoutSignature(fields: Fields): JsonObject {
  const out: JsonObject = new Map(fields);
  out.delete('signature');
  return out;
}

/**
 * What a client's handshake request signs (§5; v1: §7): the digest and the ML-DSA context. Its fields are read as
 * parsed; the caller has checked their shapes (the audit verifier reads a kept request through this too).
 */
export function handshakeRequestSigned(fields: JsonObject, profile: Profile): { digest: Uint8Array; context: Uint8Array } {
  if (profile === 2) return { digest: sha3_256(utf8(canonicalJson(withoutSignature(fields)))), context: HANDSHAKE_REQUEST_CONTEXT };
  const input = `${String(fields.get('client_did'))}:${String(fields.get('nonce'))}:${String(fields.get('timestamp'))}`;
  return { digest: sha3_256(utf8(input)), context: EMPTY_CONTEXT };
}

function newHex16(): string {
  return toHex(randomBytes(16));
}

/** Runs a store operation; a failure that is not a PQC decision means the store cannot be reached. */
async function storeCall<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (err) {
    if (err instanceof PQCTransportError) throw err;
    throw new PQCTransportError('store_unavailable', 'the session store cannot be reached', { cause: err });
  }
}

async function isAuthorized(authorize: Authorizer | undefined, peer: PeerIdentity): Promise<boolean> {
  if (authorize === undefined) return true;
  if (typeof authorize === 'function') return (await authorize(peer)) === true;
  return authorize.includes(peer.did);
}

/**
 * The records a server answers a handshake naming `did` with: those from the record that retired `did`, while that
 * key's overlap lasts (§11). Any other DID is `peer_mismatch`.
 */
function retiredChain(chain: readonly RotationRecord[] | undefined, did: string, now: number): readonly RotationRecord[] {
  const records = chain === undefined ? undefined : chainFrom(chain, did);
  if (records === undefined) reject('peer_mismatch', 'server_did names another server: this handshake was meant for it');
  if (parseTimestamp(records[0]!.old_valid_until) < now) {
    reject('peer_mismatch', `server_did names a key this server retired (its overlap ended at ${records[0]!.old_valid_until})`);
  }
  return records;
}

/** The mutual handshake of docs/PROTOCOL.md §5 (v2) and §7 (v1). */
export const PQCHandshake = {
  /** Client: builds a signed handshake request. Send `request`, keep `pending` for `complete`. */
  async initiate(
    identity: AgentIdentity,
    options: { profile?: Profile; serverDid?: string; now?: Clock } = {},
  ): Promise<{ request: string; pending: PendingHandshake }> {
    const profile = options.profile ?? 2;
    if (profile !== 1 && profile !== 2) throw new TypeError('profile must be 1 or 2');
    const serverDid = options.serverDid;
    if (profile === 2 && !isDid(serverDid)) {
      throw new TypeError('a v2 handshake names the server it is for: give serverDid (GET <base>/pqc/handshake tells it)');
    }
    const nonce = newHex16();
    const timestamp = formatTimestamp(nowMs(options.now));
    const body: Record<string, unknown> = { type: 'pqc_handshake_request' };
    if (profile === 2) body.v = 2;
    body.client_did = identity.did;
    body.client_public_key = identity.publicKeyHex;
    body.algorithm = identity.algorithm;
    if (profile === 2) body.server_did = serverDid;
    body.timestamp = timestamp;
    body.nonce = nonce;
    const signature =
      profile === 2
        ? await identity.sign(sha3_256(utf8(canonicalJson(body))), HANDSHAKE_REQUEST_CONTEXT)
        : await identity.sign(sha3_256(utf8(`${identity.did}:${nonce}:${timestamp}`)), EMPTY_CONTEXT);
    body.signature = toHex(signature);
    const request = JSON.stringify(body);
    return {
      request,
      pending: {
        profile,
        clientDid: identity.did,
        serverDid: profile === 2 ? serverDid : undefined,
        nonce,
        timestamp,
        requestDigest: sha3_256Hex(canonicalJson(body)),
        request,
      },
    };
  },

  /**
   * Server: checks a handshake request (shape, algorithm, DID, the server it names, freshness, signature, replay,
   * authorization, in that order), opens a session in `options.store` under the limits of §9 and returns the signed
   * response. The replay check follows the signature, so that forged requests cannot fill the replay cache.
   * Throws `HandshakeError` whose `reason` and `httpStatus` say why (docs/PROTOCOL.md §6).
   */
  async respond(
    requestText: string | Uint8Array,
    serverIdentity: AgentIdentity,
    options: RespondOptions,
  ): Promise<HandshakeResponse> {
    if (!options || typeof options.store !== 'object' || options.store === null) {
      throw new TypeError('PQCHandshake.respond needs options.store (a SessionStore, e.g. new MemorySessionStore())');
    }
    const now = nowMs(options.now);
    const audit = options.audit;
    let clientDid: string | null = null;
    try {
      const fields = parseObject(requestText, 'handshake request');
      if (fields.get('type') !== 'pqc_handshake_request') reject('handshake_failed', 'type is not pqc_handshake_request');
      const profile = readVersion(fields, options.profiles ?? [2]);
      clientDid = readDid(fields, 'client_did');
      const timestamp = fields.get('timestamp');
      if (typeof timestamp !== 'string') reject('invalid_envelope', 'timestamp is not a string');
      const nonce = readHex(fields, 'nonce', 16);
      const algorithm = readAlgorithm(fields, options.algorithms ?? ALGORITHMS);
      const clientKeyHex = readKey(fields, 'client_public_key', algorithm);
      const signatureHex = readHex(fields, 'signature', SIGNATURE_BYTES[algorithm]);

      const client = new PeerIdentity(algorithm, clientKeyHex, { backend: serverIdentity.backend });
      if (client.did !== clientDid) reject('did_mismatch', 'client_did is not the DID of client_public_key');
      let rotations: readonly RotationRecord[] | undefined;
      if (profile === 2) {
        const named = readDid(fields, 'server_did');
        if (named !== serverIdentity.did) rotations = retiredChain(options.rotations, named, now);
      }
      const timestampMs = parseTimestamp(timestamp);
      if (Number.isNaN(timestampMs)) reject('invalid_envelope', 'timestamp is not an RFC 3339 date-time with offset');
      const skewSec = options.clockSkewSec ?? DEFAULT_CLOCK_SKEW_SEC;
      if (Math.abs(now - timestampMs) > skewSec * 1000) reject('stale_timestamp', 'timestamp outside the allowed clock skew');

      const { digest: signedDigest, context } = handshakeRequestSigned(fields, profile);
      if (!(await client.verifyingKey.verify(signedDigest, fromHex(signatureHex), context))) {
        reject('invalid_signature', 'the request signature does not verify');
      }
      // Authorized before it is recorded: clients refused anyway never fill the replay window, whose bound would
      // otherwise let them lock authorized clients out.
      if (!(await isAuthorized(options.authorize, client))) reject('peer_not_authorized', 'the client is not authorized');
      // Recorded only once the signature holds, so forged requests cannot burn a client's nonces.
      if (!(await storeCall(() => options.store.recordHandshake(`${clientDid}:${nonce}`, timestampMs, nonceRetentionSec(skewSec))))) {
        reject('replay_detected', 'this handshake request was seen before');
      }

      const ttlSec = options.sessionTtlSec ?? DEFAULT_SESSION_TTL_SEC;
      const session: SessionRecord = {
        sessionId: newHex16(),
        profile,
        peerDid: clientDid,
        peerAlgorithm: algorithm,
        peerPublicKey: clientKeyHex,
        localDid: serverIdentity.did,
        createdAt: now,
        expiresAt: now + ttlSec * 1000,
      };
      const ended = await storeCall(() =>
        options.store.createSession(session, {
          maxSessions: options.maxSessions ?? DEFAULT_MAX_SESSIONS,
          maxSessionsPerClient: options.maxSessionsPerClient ?? DEFAULT_MAX_SESSIONS_PER_CLIENT,
          retentionSec: nonceRetentionSec(skewSec),
        }),
      );

      const serverNonce = newHex16();
      const body: Record<string, unknown> = { type: 'pqc_handshake_response' };
      if (profile === 2) body.v = 2;
      body.server_did = serverIdentity.did;
      body.server_public_key = serverIdentity.publicKeyHex;
      body.algorithm = serverIdentity.algorithm;
      body.client_nonce = nonce;
      body.server_nonce = serverNonce;
      body.session_id = session.sessionId;
      let signature: Uint8Array;
      if (profile === 2) {
        body.expires_at = formatTimestamp(session.expiresAt);
        body.request_digest = sha3_256Hex(canonicalJson(fields));
        if (rotations !== undefined) body.rotations = rotations;
        signature = await serverIdentity.sign(sha3_256(utf8(canonicalJson(body))), HANDSHAKE_RESPONSE_CONTEXT);
      } else {
        const input = `${serverIdentity.did}:${nonce}:${serverNonce}:${session.sessionId}`;
        signature = await serverIdentity.sign(sha3_256(utf8(input)), EMPTY_CONTEXT);
      }
      body.signature = toHex(signature);
      if (audit) audit.record({
        operation: 'handshake',
        session_id: session.sessionId,
        signer_did: clientDid,
        peer_did: clientDid,
        algorithm,
        signature_truncated: signatureHex,
        digest: toHex(signedDigest),
        verified: true,
        details: {
          profile,
          expires_at: formatTimestamp(session.expiresAt),
          ...(ended.length > 0 ? { ended } : {}),
          ...(rotations !== undefined ? { rotated_from: rotations[0]!.old_did } : {}),
        },
        message: audit.keepMessages ? (typeof requestText === 'string' ? requestText : new TextDecoder().decode(requestText)) : undefined,
      });
      return { response: JSON.stringify(body), session, client, ended };
    } catch (err) {
      const reason = err instanceof PQCTransportError ? err.reason : 'handshake_failed';
      audit?.record({ operation: 'rejected', method: 'pqc/handshake', signer_did: clientDid, verified: false, reason });
      if (err instanceof HandshakeError) throw err;
      if (err instanceof PQCTransportError) throw new HandshakeError(err.reason, err.message, { cause: err });
      throw err;
    }
  },

  /**
   * Client: checks the server's response (shape, DID, the pinned server when given, the echoed nonce and request
   * digest, the signature) and returns the session. Throws `HandshakeError` with the reason.
   */
  async complete(
    responseText: string | Uint8Array,
    clientIdentity: AgentIdentity,
    pending: PendingHandshake,
    options: CompleteOptions = {},
  ): Promise<PQCSession> {
    const fields = parseObject(responseText, 'handshake response');
    if (fields.get('type') !== 'pqc_handshake_response') reject('handshake_failed', 'type is not pqc_handshake_response');
    const profile = readVersion(fields, [pending.profile]);
    const serverDid = readDid(fields, 'server_did');
    const algorithm = readAlgorithm(fields, options.algorithms ?? ALGORITHMS);
    const serverKeyHex = readKey(fields, 'server_public_key', algorithm);
    const clientNonce = readHex(fields, 'client_nonce', 16);
    const serverNonce = readHex(fields, 'server_nonce', 16);
    const sessionId = readHex(fields, 'session_id', 16);
    const signatureHex = readHex(fields, 'signature', SIGNATURE_BYTES[algorithm]);
    const now = nowMs(options.now);
    let expiresAt = now + DEFAULT_SESSION_TTL_SEC * 1000;
    let requestDigest: string | undefined;
    if (profile === 2) {
      expiresAt = parseTimestamp(fields.get('expires_at'));
      if (Number.isNaN(expiresAt)) reject('invalid_envelope', 'expires_at is not an RFC 3339 date-time with offset');
      requestDigest = readHex(fields, 'request_digest', 32);
    }

    const server = new PeerIdentity(algorithm, serverKeyHex, { backend: clientIdentity.backend });
    if (server.did !== serverDid) reject('did_mismatch', 'server_did is not the DID of server_public_key');
    const pinnedKey = options.serverPublicKey === undefined ? undefined : typeof options.serverPublicKey === 'string' ? options.serverPublicKey : toHex(options.serverPublicKey);
    let rotation: RotationChain | undefined;
    const moved =
      (pending.serverDid !== undefined && pending.serverDid !== serverDid) ||
      (options.serverDid !== undefined && options.serverDid !== serverDid) ||
      (pinnedKey !== undefined && pinnedKey !== serverKeyHex);
    if (moved && profile === 2 && options.rotation !== undefined && fields.has('rotations')) {
      // Another key answered: accepted only through a chain of records from the pinned key to it (§11).
      const fromDid = options.serverDid ?? pending.serverDid;
      if (fromDid === undefined || (pending.serverDid !== undefined && pending.serverDid !== fromDid)) {
        reject('peer_mismatch', 'the request named another server than the pinned one');
      }
      const records = fields.get('rotations');
      if (!Array.isArray(records)) throw new RotationError('malformed', 'rotations is not a list of records');
      rotation = await verifyRotationChain(records, {
        fromDid,
        fromPublicKey: pinnedKey,
        to: { did: serverDid, publicKey: serverKeyHex },
        retiredDids: options.rotation.retiredDids,
        now,
        clockSkewSec: options.rotation.clockSkewSec,
        backend: clientIdentity.backend,
      });
    } else {
      if (pending.serverDid !== undefined && pending.serverDid !== serverDid) {
        reject('peer_mismatch', 'the server is not the one the request named (server_did differs)');
      }
      if (options.serverDid !== undefined && options.serverDid !== serverDid) {
        reject('peer_mismatch', 'the server is not the pinned one (DID differs)');
      }
      if (pinnedKey !== undefined && pinnedKey !== serverKeyHex) reject('peer_mismatch', 'the server is not the pinned one (public key differs)');
    }
    if (clientNonce !== pending.nonce) reject('handshake_failed', 'client_nonce does not echo the request nonce');
    if (profile === 2 && requestDigest !== pending.requestDigest) {
      reject('handshake_failed', 'request_digest does not match the request sent');
    }
    if (expiresAt <= now) reject('handshake_failed', 'the session expires before it starts');

    const digest =
      profile === 2
        ? sha3_256(utf8(canonicalJson(withoutSignature(fields))))
        : sha3_256(utf8(`${serverDid}:${clientNonce}:${serverNonce}:${sessionId}`));
    const context = profile === 2 ? HANDSHAKE_RESPONSE_CONTEXT : EMPTY_CONTEXT;
    if (!(await server.verifyingKey.verify(digest, fromHex(signatureHex), context))) {
      reject('invalid_signature', 'the response signature does not verify');
    }
    const session = new PQCSession(
      {
        sessionId,
        profile,
        peerDid: serverDid,
        peerAlgorithm: algorithm,
        peerPublicKey: serverKeyHex,
        localDid: clientIdentity.did,
        createdAt: now,
        expiresAt,
      },
      options,
    );
    session.rotation = rotation;
    session.logOperation({
      operation: 'handshake',
      signer_did: serverDid,
      algorithm,
      signature_truncated: signatureHex,
      digest: toHex(digest),
      verified: true,
      details: { profile, ...(rotation !== undefined ? { rotated_from: rotation.fromDid } : {}) },
    });
    return session;
  },
};
