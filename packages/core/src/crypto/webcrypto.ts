/**
 * The WebCrypto ML-DSA backend (`crypto.subtle`, the WICG "Modern Algorithms in WebCrypto" names `ML-DSA-44/65/87`,
 * key formats `raw-seed` and `raw-public`, and the `context` sign parameter).
 *
 * Where it is found (measured, November 2026): Bun 1.4 (whose `node:crypto` ML-DSA refuses contexts, so the `node`
 * backend is not available there) and Node >= 24.7 (where the `node` backend is preferred). Deno 2.9 has ML-DSA in
 * WebCrypto but rejects any non-empty context, and workerd has no ML-DSA: the probe reports no backend there, and
 * noble is used.
 *
 * WebCrypto is asynchronous, so this backend is detected asynchronously, once: `detectWebCrypto()` runs the probe
 * and `webcryptoBackend()` returns its result synchronously once it is known (`undefined` before). The public key of
 * a signing key is derived with noble's key generation (the `SigningKey` interface wants it synchronously; the probe
 * checks that WebCrypto derives the same key from the same seed); signing and verifying run in WebCrypto.
 */
import { ml_dsa44, ml_dsa65, ml_dsa87 } from '@noble/post-quantum/ml-dsa.js';

import { PUBLIC_KEY_BYTES, SIGNATURE_BYTES, type Algorithm } from './algorithms.js';
import { checkAlgorithm, checkPublicKey, checkSeed, checkSignInput, verifyInputOk } from './noble.js';
import type { CryptoBackend, SigningKey, VerifyingKey } from './types.js';

type Bytes = Uint8Array<ArrayBuffer>;

/** The part of `SubtleCrypto` used here, typed for the ML-DSA formats the DOM typings do not know yet. */
interface MlDsaSubtle {
  importKey(format: 'raw-seed' | 'raw-public', data: Bytes, algorithm: { name: string }, extractable: boolean, usages: string[]): Promise<CryptoKey>;
  exportKey(format: 'jwk', key: CryptoKey): Promise<{ pub?: string }>;
  sign(algorithm: { name: string; context: Bytes }, key: CryptoKey, data: Bytes): Promise<ArrayBuffer>;
  verify(algorithm: { name: string; context: Bytes }, key: CryptoKey, signature: Bytes, data: Bytes): Promise<boolean>;
}

const NOBLE = { 'ML-DSA-44': ml_dsa44, 'ML-DSA-65': ml_dsa65, 'ML-DSA-87': ml_dsa87 } as const;

/** A private copy on its own `ArrayBuffer` (WebCrypto wants `BufferSource`; a `Buffer` view of a pool is fine too). */
function own(bytes: Uint8Array): Bytes {
  return new Uint8Array(bytes) as Bytes;
}

function base64UrlToBytes(text: string): Uint8Array {
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/');
  const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** A promise whose rejection is handled here too (it is awaited later, or never if the key is never used). */
function quiet<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => {});
  return promise;
}

function makeBackend(subtle: MlDsaSubtle): CryptoBackend {
  function signingKey(algorithm: Algorithm, seed: Uint8Array): SigningKey {
    checkAlgorithm(algorithm);
    checkSeed(seed);
    const publicKey = NOBLE[algorithm].keygen(new Uint8Array(seed)).publicKey;
    const key = quiet(subtle.importKey('raw-seed', own(seed), { name: algorithm }, false, ['sign']));
    return Object.freeze({
      algorithm,
      publicKey,
      async sign(message: Uint8Array, context: Uint8Array): Promise<Uint8Array> {
        checkSignInput(message, context);
        const signature = await subtle.sign({ name: algorithm, context: own(context) }, await key, own(message));
        return new Uint8Array(signature);
      },
    });
  }

  function verifyingKey(algorithm: Algorithm, publicKey: Uint8Array): VerifyingKey {
    checkAlgorithm(algorithm);
    checkPublicKey(algorithm, publicKey);
    const pk = new Uint8Array(publicKey);
    const key = quiet(subtle.importKey('raw-public', own(pk), { name: algorithm }, false, ['verify']));
    return Object.freeze({
      algorithm,
      publicKey: pk,
      async verify(message: Uint8Array, signature: Uint8Array, context: Uint8Array): Promise<boolean> {
        if (!verifyInputOk(algorithm, message, signature, context)) return false;
        try {
          return (await subtle.verify({ name: algorithm, context: own(context) }, await key, own(signature), own(message))) === true;
        } catch {
          return false;
        }
      },
    });
  }

  return Object.freeze({ name: 'webcrypto', signingKey, verifyingKey });
}

/**
 * Checks that this runtime's WebCrypto does FIPS 204 ML-DSA with a context string: seed import of all three
 * parameter sets, the same public key as noble from the same seed, a context signature that verifies under the right
 * context and not under another, and that noble verifies it with that context (the context is applied as FIPS 204
 * says, so peers on other backends agree).
 */
async function probe(subtle: MlDsaSubtle): Promise<boolean> {
  try {
    const seed = new Uint8Array(32).fill(7) as Bytes;
    const message = new Uint8Array([1, 2, 3]) as Bytes;
    const context = new Uint8Array([0x70, 0x71, 0x63]) as Bytes;
    const other = new Uint8Array([0x70, 0x71, 0x64]) as Bytes;
    for (const algorithm of ['ML-DSA-87', 'ML-DSA-65'] as const) {
      await subtle.importKey('raw-seed', seed, { name: algorithm }, false, ['sign']);
    }
    const algorithm = 'ML-DSA-44';
    const privateKey = await subtle.importKey('raw-seed', seed, { name: algorithm }, true, ['sign']);
    const { pub } = await subtle.exportKey('jwk', privateKey);
    const expected = ml_dsa44.keygen(new Uint8Array(seed)).publicKey;
    if (typeof pub !== 'string' || !equalBytes(base64UrlToBytes(pub), expected)) return false;
    if (expected.length !== PUBLIC_KEY_BYTES[algorithm]) return false;
    const publicKey = await subtle.importKey('raw-public', own(expected), { name: algorithm }, false, ['verify']);
    const signature = new Uint8Array(await subtle.sign({ name: algorithm, context }, privateKey, message)) as Bytes;
    if (signature.length !== SIGNATURE_BYTES[algorithm]) return false;
    if ((await subtle.verify({ name: algorithm, context }, publicKey, signature, message)) !== true) return false;
    if ((await subtle.verify({ name: algorithm, context: other }, publicKey, signature, message)) !== false) return false;
    return ml_dsa44.verify(signature, message, expected, { context }) === true;
  } catch {
    return false;
  }
}

let detection: Promise<CryptoBackend | undefined> | undefined;
let detected: CryptoBackend | null | undefined;

/**
 * Runs the WebCrypto probe once (later calls share it) and resolves the `webcrypto` backend, or `undefined` where
 * WebCrypto has no usable ML-DSA with contexts (Node 20, Deno, workerd, most browsers today).
 */
export function detectWebCrypto(): Promise<CryptoBackend | undefined> {
  return (detection ??= (async () => {
    const subtle = (globalThis as { crypto?: { subtle?: unknown } }).crypto?.subtle as MlDsaSubtle | undefined;
    const backend = subtle && typeof subtle.importKey === 'function' && (await probe(subtle)) ? makeBackend(subtle) : undefined;
    detected = backend ?? null;
    return backend;
  })());
}

/** The `webcrypto` backend once `detectWebCrypto()` has found it; `undefined` before detection or where absent. */
export function webcryptoBackend(): CryptoBackend | undefined {
  return detected ?? undefined;
}

/** True once `detectWebCrypto()` has settled (whatever it found). */
export function webcryptoDetected(): boolean {
  return detected !== undefined;
}
