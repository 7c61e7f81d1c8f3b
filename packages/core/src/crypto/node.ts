/**
 * The native ML-DSA backend: `node:crypto` on Node >= 24.8 built with OpenSSL >= 3.5 (and runtimes that copy its
 * API, e.g. Bun). Reached only through `nodeBuiltin`, never a static `node:` import, so bundles of the core still
 * load on workerd and in browsers, where `nodeBackend()` simply returns `undefined`.
 *
 * Node 24.6 and 24.7 have ML-DSA keys but silently IGNORE the `context` option of `crypto.sign`/`crypto.verify`
 * (they sign with an empty context, which no peer would accept): the probe below detects that and reports no backend.
 *
 * Signing and verification use the callback forms of `crypto.sign` / `crypto.verify`, which run in libuv's thread
 * pool. Measured on Node 24.21 (2 vCPUs): +0.05-0.3 ms latency per call over the synchronous forms, but the event
 * loop stays free and concurrent load gets 1.3-2.5x the throughput.
 */
import type { KeyObject } from 'node:crypto';

import { fromBase64Url } from '../bytes.js';
import { nodeBuiltin } from '../runtime.js';
import { PUBLIC_KEY_BYTES, SIGNATURE_BYTES, type Algorithm } from './algorithms.js';
import { checkAlgorithm, checkPublicKey, checkSeed, checkSignInput, verifyInputOk } from './noble.js';
import type { CryptoBackend, SigningKey, VerifyingKey } from './types.js';

type NodeCrypto = typeof import('node:crypto');

/** Last byte of the NIST OIDs 2.16.840.1.101.3.4.3.{17,18,19} (id-ml-dsa-44/65/87). */
const OID_LAST: Readonly<Record<Algorithm, number>> = { 'ML-DSA-44': 0x11, 'ML-DSA-65': 0x12, 'ML-DSA-87': 0x13 };

/** DER `AlgorithmIdentifier` of an ML-DSA parameter set (no parameters). */
function algorithmIdentifier(algorithm: Algorithm): number[] {
  return [0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, OID_LAST[algorithm]];
}

/** PKCS#8 `PrivateKeyInfo` of the seed-only form (RFC 9881: `[0] IMPLICIT OCTET STRING (SIZE (32))`). */
export function pkcs8FromSeed(algorithm: Algorithm, seed: Uint8Array): Uint8Array {
  const head = [0x30, 0x34, 0x02, 0x01, 0x00, ...algorithmIdentifier(algorithm), 0x04, 0x22, 0x80, 0x20];
  const der = new Uint8Array(head.length + 32);
  der.set(head);
  der.set(seed, head.length);
  return der;
}

/** `SubjectPublicKeyInfo` of a raw public key (its length already checked: always a 2-byte DER length). */
export function spkiFromRaw(algorithm: Algorithm, publicKey: Uint8Array): Uint8Array {
  const bits = publicKey.length + 1;
  const total = 13 + 4 + bits;
  const head = [0x30, 0x82, total >> 8, total & 0xff, ...algorithmIdentifier(algorithm), 0x03, 0x82, bits >> 8, bits & 0xff, 0x00];
  const der = new Uint8Array(head.length + publicKey.length);
  der.set(head);
  der.set(publicKey, head.length);
  return der;
}

/** A zero-copy plain `Uint8Array` view of a `Buffer` (so results compare equal to other backends' output). */
function plain(buf: Uint8Array): Uint8Array {
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** node:crypto accepts any ArrayBufferView as a DER key; its typings say `Buffer` (a type-only cast). */
function der(bytes: Uint8Array): Buffer {
  return bytes as Buffer;
}

function importPrivate(crypto: NodeCrypto, algorithm: Algorithm, seed: Uint8Array): KeyObject {
  const key = crypto.createPrivateKey({ key: der(pkcs8FromSeed(algorithm, seed)), format: 'der', type: 'pkcs8' });
  if (key.asymmetricKeyType !== algorithm.toLowerCase()) throw new TypeError(`node:crypto imported a ${key.asymmetricKeyType} key`);
  return key;
}

function importPublic(crypto: NodeCrypto, algorithm: Algorithm, publicKey: Uint8Array): KeyObject {
  const key = crypto.createPublicKey({ key: der(spkiFromRaw(algorithm, publicKey)), format: 'der', type: 'spki' });
  if (key.asymmetricKeyType !== algorithm.toLowerCase()) throw new TypeError(`node:crypto imported a ${key.asymmetricKeyType} key`);
  return key;
}

/** Raw public key of a private KeyObject, through its JWK export (`pub`; works on every ML-DSA-capable Node). */
function rawPublicKey(crypto: NodeCrypto, privateKey: KeyObject): Uint8Array {
  const jwk = crypto.createPublicKey(privateKey).export({ format: 'jwk' }) as { pub?: unknown };
  if (typeof jwk.pub !== 'string') throw new TypeError('node:crypto did not export an AKP public key');
  return fromBase64Url(jwk.pub);
}

function makeBackend(crypto: NodeCrypto): CryptoBackend {
  const { sign, verify } = crypto;

  function signingKey(algorithm: Algorithm, seed: Uint8Array): SigningKey {
    checkAlgorithm(algorithm);
    checkSeed(seed);
    const privateKey = importPrivate(crypto, algorithm, seed);
    const publicKey = rawPublicKey(crypto, privateKey);
    if (publicKey.length !== PUBLIC_KEY_BYTES[algorithm]) throw new TypeError('node:crypto derived a bad public key');
    return Object.freeze({
      algorithm,
      publicKey,
      sign(message: Uint8Array, context: Uint8Array): Promise<Uint8Array> {
        return new Promise<Uint8Array>((resolve, reject) => {
          checkSignInput(message, context);
          sign(null, message, { key: privateKey, context }, (err, signature) => {
            if (err) reject(err);
            else resolve(plain(signature));
          });
        });
      },
    });
  }

  function verifyingKey(algorithm: Algorithm, publicKey: Uint8Array): VerifyingKey {
    checkAlgorithm(algorithm);
    checkPublicKey(algorithm, publicKey);
    const pk = new Uint8Array(publicKey);
    const keyObject = importPublic(crypto, algorithm, pk);
    return Object.freeze({
      algorithm,
      publicKey: pk,
      verify(message: Uint8Array, signature: Uint8Array, context: Uint8Array): Promise<boolean> {
        if (!verifyInputOk(algorithm, message, signature, context)) return Promise.resolve(false);
        return new Promise<boolean>((resolve) => {
          try {
            verify(null, message, { key: keyObject, context }, signature, (err, ok) => resolve(!err && ok === true));
          } catch {
            resolve(false);
          }
        });
      },
    });
  }

  return Object.freeze({ name: 'node', signingKey, verifyingKey });
}

/**
 * Checks once that this runtime's `node:crypto` really does ML-DSA as FIPS 204 pure signing with a context string:
 * imports seed-only PKCS#8 keys of all three parameter sets, signs with a context and verifies that the right
 * context passes and a different one fails (a runtime that ignored `context` would break every peer).
 */
function probe(crypto: NodeCrypto | undefined): boolean {
  if (
    !crypto ||
    typeof crypto.sign !== 'function' ||
    typeof crypto.verify !== 'function' ||
    typeof crypto.createPrivateKey !== 'function' ||
    typeof crypto.createPublicKey !== 'function'
  ) {
    return false;
  }
  try {
    const seed = new Uint8Array(32).fill(7);
    const message = new Uint8Array([1, 2, 3]);
    const context = new Uint8Array([0x70, 0x71, 0x63]);
    const other = new Uint8Array([0x70, 0x71, 0x64]);
    for (const algorithm of ['ML-DSA-87', 'ML-DSA-65', 'ML-DSA-44'] as const) {
      const privateKey = importPrivate(crypto, algorithm, seed);
      if (rawPublicKey(crypto, privateKey).length !== PUBLIC_KEY_BYTES[algorithm]) return false;
      if (algorithm !== 'ML-DSA-44') continue;
      const publicKey = importPublic(crypto, algorithm, rawPublicKey(crypto, privateKey));
      const signature = crypto.sign(null, message, { key: privateKey, context });
      if (signature.length !== SIGNATURE_BYTES[algorithm]) return false;
      if (!crypto.verify(null, message, { key: publicKey, context }, signature)) return false;
      if (crypto.verify(null, message, { key: publicKey, context: other }, signature)) return false;
    }
    return true;
  } catch {
    return false;
  }
}

let cached: CryptoBackend | null | undefined;

/**
 * The `node:crypto` ML-DSA backend (name `'node'`), or `undefined` when this runtime has no usable native ML-DSA
 * (Node < 24.x, OpenSSL < 3.5, workerd, browsers). Detected once, on first call; the same object is returned after.
 */
export function nodeBackend(): CryptoBackend | undefined {
  if (cached === undefined) {
    const crypto = nodeBuiltin<NodeCrypto>('node:crypto');
    cached = crypto && probe(crypto) ? makeBackend(crypto) : null;
  }
  return cached ?? undefined;
}
