/**
 * A trust document: the client keys a server trusts, as a JWK Set of RFC 9964 AKP keys (each with its `did` and
 * `name`, the public form of `AgentIdentity.toJwk()`), and the DIDs it has revoked. Parsed whole or refused whole:
 * one bad entry refuses the document, so a half-written or tampered file never trusts a key by accident.
 *
 * ```json
 * { "keys": [{ "kty": "AKP", "alg": "ML-DSA-65", "pub": "…", "did": "did:pqaid:…", "name": "billing-agent" }],
 *   "revoked": ["did:pqaid:…"] }
 * ```
 */
import type { Algorithm } from '../crypto/algorithms.js';
import { PeerIdentity, isDid, type IdentityJwk } from '../identity.js';

/** The JSON form of a trust document. */
export interface TrustDocument {
  /** The trusted client keys: public JWKs (`PeerIdentity.toJwk()`, or `AgentIdentity.toJwk()` without `priv`). */
  keys: IdentityJwk[];
  /** DIDs refused even if listed in `keys` (revoked keys): their sessions end at once. */
  revoked?: string[];
}

/** One trusted client key. */
export interface TrustedKey {
  readonly did: string;
  readonly algorithm: Algorithm;
  /** The raw public key, lowercase hex. */
  readonly publicKeyHex: string;
  /** The key's `name`, informational (logs). */
  readonly name: string | undefined;
}

/** What a trust document says, parsed. */
export interface TrustSet {
  readonly keys: ReadonlyMap<string, TrustedKey>;
  readonly revoked: ReadonlySet<string>;
}

/** Default bound on the keys plus revoked DIDs of one document. */
export const DEFAULT_MAX_TRUST_ENTRIES = 10_000;

/** An empty trust set: nobody is trusted. */
export const EMPTY_TRUST_SET: TrustSet = Object.freeze({ keys: new Map<string, TrustedKey>(), revoked: new Set<string>() });

/**
 * Parses a trust document (its JSON text or the value). Throws a `TypeError` naming the first bad entry: not a JSON
 * object with a `keys` array, a key that is not a public AKP JWK (a `priv` member is refused: a trust document holds
 * no secrets), a `did` that does not match its key, a revoked entry that is not a DID, or more than `maxEntries`.
 */
export function parseTrustDocument(input: string | TrustDocument, maxEntries = DEFAULT_MAX_TRUST_ENTRIES): TrustSet {
  let doc: unknown = input;
  if (typeof input === 'string') {
    try {
      doc = JSON.parse(input);
    } catch {
      throw new TypeError('trust document: not JSON');
    }
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new TypeError('trust document: must be an object { keys, revoked? }');
  const { keys, revoked = [] } = doc as { keys?: unknown; revoked?: unknown };
  if (!Array.isArray(keys)) throw new TypeError('trust document: "keys" must be an array of public JWKs');
  if (!Array.isArray(revoked)) throw new TypeError('trust document: "revoked" must be an array of DIDs');
  if (keys.length + revoked.length > maxEntries) {
    throw new TypeError(`trust document: ${keys.length + revoked.length} entries exceed the bound of ${maxEntries}`);
  }
  const set = new Map<string, TrustedKey>();
  keys.forEach((jwk: unknown, i) => {
    if (typeof jwk === 'object' && jwk !== null && 'priv' in jwk) throw new TypeError(`trust document: keys[${i}] holds a private key ("priv")`);
    let peer: PeerIdentity;
    try {
      peer = PeerIdentity.fromJwk(jwk as IdentityJwk);
    } catch (err) {
      throw new TypeError(`trust document: keys[${i}]: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    set.set(peer.did, Object.freeze({ did: peer.did, algorithm: peer.algorithm, publicKeyHex: peer.publicKeyHex, name: peer.name }));
  });
  const revokedSet = new Set<string>();
  revoked.forEach((did: unknown, i) => {
    if (!isDid(did)) throw new TypeError(`trust document: revoked[${i}] is not a did:pqaid DID`);
    revokedSet.add(did);
  });
  return Object.freeze({ keys: set, revoked: revokedSet });
}
