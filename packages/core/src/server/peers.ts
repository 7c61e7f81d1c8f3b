/**
 * Prepared client keys (an import costs 50-100 µs natively), cached per pinned peer: every session of one client
 * shares one imported key. Keys are prepared on the backend the server signs with (a worker pool verifies off the
 * event loop too).
 */
import { PUBLIC_KEY_BYTES } from '../crypto/algorithms.js';
import type { BackendPreference } from '../crypto/select.js';
import { PQCTransportError } from '../errors.js';
import { PeerIdentity } from '../identity.js';
import type { SessionRecord } from '../store/types.js';

export class PeerKeyCache {
  readonly #peers = new Map<string, PeerIdentity>();
  readonly #max: number;
  readonly #backend: BackendPreference | undefined;

  constructor(max = 4096, backend?: BackendPreference) {
    this.#max = max;
    this.#backend = backend;
  }

  /** The prepared peer of a session record. */
  get(session: SessionRecord): PeerIdentity {
    const cacheKey = `${session.peerAlgorithm}:${session.peerDid}`;
    const cached = this.#peers.get(cacheKey);
    if (cached && cached.publicKeyHex === session.peerPublicKey) return cached;
    if (session.peerPublicKey.length !== PUBLIC_KEY_BYTES[session.peerAlgorithm] * 2) {
      throw new PQCTransportError('store_unavailable', 'the stored session is corrupt');
    }
    const peer = new PeerIdentity(session.peerAlgorithm, session.peerPublicKey, { did: session.peerDid, backend: this.#backend });
    if (cached) this.#peers.delete(cacheKey);
    else if (this.#peers.size >= this.#max) this.#peers.delete(this.#peers.keys().next().value as string);
    this.#peers.set(cacheKey, peer);
    return peer;
  }
}
