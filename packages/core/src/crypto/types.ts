import type { Algorithm } from './algorithms.js';

/** A private key ready to sign; backends cache whatever native handle they need inside it. */
export interface SigningKey {
  readonly algorithm: Algorithm;
  /** Raw FIPS 204 public key. */
  readonly publicKey: Uint8Array;
  /** ML-DSA.Sign (pure, hedged) of `message` with `context` (at most 255 bytes). */
  sign(message: Uint8Array, context: Uint8Array): Promise<Uint8Array>;
}

/** A public key ready to verify; backends cache the imported key inside it. */
export interface VerifyingKey {
  readonly algorithm: Algorithm;
  readonly publicKey: Uint8Array;
  /** ML-DSA.Verify; resolves false (never throws) for any bad signature, length or context. */
  verify(message: Uint8Array, signature: Uint8Array, context: Uint8Array): Promise<boolean>;
}

/** The ML-DSA implementation behind every signature. Chosen once by `selectBackend`. */
export interface CryptoBackend {
  /** `noble` (pure JS, everywhere), `node` (node:crypto, Node >= 24.6), `webcrypto` (where it supports contexts). */
  readonly name: string;
  /** Derives the key pair of ML-DSA.KeyGen_internal(seed) and prepares it for signing. Throws on a bad seed. */
  signingKey(algorithm: Algorithm, seed: Uint8Array): SigningKey;
  /** Prepares a raw public key for verification. Throws `TypeError` on a wrong-length key. */
  verifyingKey(algorithm: Algorithm, publicKey: Uint8Array): VerifyingKey;
}
