/**
 * The pure-JavaScript ML-DSA backend (`@noble/post-quantum`): runs everywhere (Node 20, browsers, workerd),
 * synchronously on the calling thread.
 */
import { ml_dsa44, ml_dsa65, ml_dsa87 } from '@noble/post-quantum/ml-dsa.js';

import { isAlgorithm, PUBLIC_KEY_BYTES, SEED_BYTES, SIGNATURE_BYTES, type Algorithm } from './algorithms.js';
import type { CryptoBackend, SigningKey, VerifyingKey } from './types.js';

type NobleDsa = typeof ml_dsa65;

const DSA: Readonly<Record<Algorithm, NobleDsa>> = Object.freeze({
  'ML-DSA-44': ml_dsa44,
  'ML-DSA-65': ml_dsa65,
  'ML-DSA-87': ml_dsa87,
});

/** Largest FIPS 204 context string. */
export const MAX_CONTEXT_BYTES = 255;

/** True for a `Uint8Array` (or `Buffer`), also one made in another realm (jest, vm). */
export function isBytes(value: unknown): value is Uint8Array {
  return (
    value instanceof Uint8Array ||
    (ArrayBuffer.isView(value) && (value.constructor as { name?: string } | undefined)?.name === 'Uint8Array')
  );
}

/** Throws unless `algorithm` is supported; shared by the backends. */
export function checkAlgorithm(algorithm: unknown): asserts algorithm is Algorithm {
  if (!isAlgorithm(algorithm)) throw new TypeError(`unsupported algorithm: ${String(algorithm)}`);
}

/** Throws `TypeError` unless `seed` is 32 bytes. */
export function checkSeed(seed: unknown): asserts seed is Uint8Array {
  if (!isBytes(seed) || seed.length !== SEED_BYTES) {
    throw new TypeError(`ML-DSA seed must be a Uint8Array of ${SEED_BYTES} bytes`);
  }
}

/** Throws `TypeError` unless `publicKey` has the raw FIPS 204 length of `algorithm`. */
export function checkPublicKey(algorithm: Algorithm, publicKey: unknown): asserts publicKey is Uint8Array {
  const expected = PUBLIC_KEY_BYTES[algorithm];
  if (!isBytes(publicKey) || publicKey.length !== expected) {
    throw new TypeError(`${algorithm} public key must be a Uint8Array of ${expected} bytes`);
  }
}

/** Throws unless `message` is bytes and `context` is bytes of at most 255. */
export function checkSignInput(message: unknown, context: unknown): void {
  if (!isBytes(message)) throw new TypeError('message must be a Uint8Array');
  if (!isBytes(context)) throw new TypeError('context must be a Uint8Array');
  if (context.length > MAX_CONTEXT_BYTES) throw new RangeError(`context must be at most ${MAX_CONTEXT_BYTES} bytes`);
}

/** False when a verification can only fail: wrong types, wrong signature length, over-long context. */
export function verifyInputOk(algorithm: Algorithm, message: unknown, signature: unknown, context: unknown): boolean {
  return (
    isBytes(message) &&
    isBytes(signature) &&
    signature.length === SIGNATURE_BYTES[algorithm] &&
    isBytes(context) &&
    context.length <= MAX_CONTEXT_BYTES
  );
}

function signingKey(algorithm: Algorithm, seed: Uint8Array): SigningKey {
  checkAlgorithm(algorithm);
  checkSeed(seed);
  const dsa = DSA[algorithm];
  const keys = dsa.keygen(new Uint8Array(seed));
  const secretKey = keys.secretKey; // kept in this closure only, never on the object
  const publicKey = keys.publicKey;
  return Object.freeze({
    algorithm,
    publicKey,
    async sign(message: Uint8Array, context: Uint8Array): Promise<Uint8Array> {
      checkSignInput(message, context);
      return dsa.sign(message, secretKey, { context });
    },
  });
}

function verifyingKey(algorithm: Algorithm, publicKey: Uint8Array): VerifyingKey {
  checkAlgorithm(algorithm);
  checkPublicKey(algorithm, publicKey);
  const dsa = DSA[algorithm];
  const pk = new Uint8Array(publicKey); // a private copy: later changes to the caller's array do not matter
  return Object.freeze({
    algorithm,
    publicKey: pk,
    async verify(message: Uint8Array, signature: Uint8Array, context: Uint8Array): Promise<boolean> {
      if (!verifyInputOk(algorithm, message, signature, context)) return false;
      try {
        return dsa.verify(signature, message, pk, { context }) === true;
      } catch {
        return false;
      }
    },
  });
}

/** ML-DSA through `@noble/post-quantum` (pure JS, every runtime). */
export const nobleBackend: CryptoBackend = Object.freeze({
  name: 'noble',
  signingKey,
  verifyingKey,
});

/**
 * ML-DSA.Verify on the calling thread, synchronously (for checks made while options are resolved, e.g. a server's
 * rotation records at start-up). False for any bad input; never throws.
 */
export function verifyNobleSync(algorithm: Algorithm, publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array, context: Uint8Array): boolean {
  if (!isAlgorithm(algorithm) || !isBytes(publicKey) || publicKey.length !== PUBLIC_KEY_BYTES[algorithm]) return false;
  if (!verifyInputOk(algorithm, message, signature, context)) return false;
  try {
    return DSA[algorithm].verify(signature, message, publicKey, { context }) === true;
  } catch {
    return false;
  }
}
