/**
 * The `webcrypto` backend and its asynchronous detection. On this runtime's own WebCrypto (Node 24: present; Node
 * 20: absent), and on two stand-in `crypto.subtle` objects built on noble, so every path runs on every Node: one that
 * honours contexts (as Bun's does), one that rejects a non-empty context (as Deno's does).
 */
import { ml_dsa44, ml_dsa65, ml_dsa87 } from '@noble/post-quantum/ml-dsa.js';
import { fromHex, toBase64Url } from '../src/bytes.js';
import type { CryptoBackend } from '../src/crypto/index.js';
import { nobleBackend } from '../src/crypto/index.js';
import { readVector, type ProtocolVectors } from '@pqc-mcp/test-kit';

type Crypto = typeof import('../src/crypto/index.js');

const NOBLE = { 'ML-DSA-44': ml_dsa44, 'ML-DSA-65': ml_dsa65, 'ML-DSA-87': ml_dsa87 } as const;
type Name = keyof typeof NOBLE;

interface FakeKey {
  type: 'private' | 'public';
  name: Name;
  publicKey: Uint8Array;
  secretKey?: Uint8Array;
}

/** A `crypto.subtle` with ML-DSA done by noble; `contexts: false` rejects a non-empty context like Deno 2.9. */
function fakeSubtle(contexts: boolean): unknown {
  const algorithm = (a: { name: string }): Name => {
    if (!(a.name in NOBLE)) throw new DOMException('Unrecognized algorithm name', 'NotSupportedError');
    return a.name as Name;
  };
  const context = (a: { context?: Uint8Array }): Uint8Array => {
    const ctx = a.context ?? new Uint8Array(0);
    if (!contexts && ctx.length > 0) throw new DOMException('Non-empty context is not supported', 'NotSupportedError');
    return new Uint8Array(ctx);
  };
  return {
    async importKey(format: string, data: Uint8Array, a: { name: string }): Promise<FakeKey> {
      const name = algorithm(a);
      if (format === 'raw-seed') {
        const { publicKey, secretKey } = NOBLE[name].keygen(new Uint8Array(data));
        return { type: 'private', name, publicKey, secretKey };
      }
      if (format === 'raw-public') {
        if (data.length !== NOBLE[name].lengths.publicKey) throw new DOMException('Invalid keyData', 'DataError');
        return { type: 'public', name, publicKey: new Uint8Array(data) };
      }
      throw new DOMException(`format ${format}`, 'NotSupportedError');
    },
    async exportKey(format: string, key: FakeKey) {
      if (format !== 'jwk') throw new DOMException(`format ${format}`, 'NotSupportedError');
      return { kty: 'AKP', alg: key.name, pub: toBase64Url(key.publicKey) };
    },
    async sign(a: { name: string; context?: Uint8Array }, key: FakeKey, data: Uint8Array): Promise<ArrayBuffer> {
      const signature = NOBLE[algorithm(a)].sign(new Uint8Array(data), key.secretKey!, { context: context(a) });
      return signature.slice().buffer;
    },
    async verify(a: { name: string; context?: Uint8Array }, key: FakeKey, signature: Uint8Array, data: Uint8Array): Promise<boolean> {
      return NOBLE[algorithm(a)].verify(new Uint8Array(signature), new Uint8Array(data), key.publicKey, { context: context(a) });
    },
  };
}

/** The crypto module freshly loaded (detection state reset) with `globalThis.crypto.subtle` replaced by `subtle`. */
async function withSubtle<T>(subtle: unknown, run: (crypto: Crypto) => Promise<T>): Promise<T> {
  const saved = Object.getOwnPropertyDescriptor(globalThis, 'crypto');
  Object.defineProperty(globalThis, 'crypto', { value: { subtle, getRandomValues: globalThis.crypto.getRandomValues.bind(globalThis.crypto) }, configurable: true, writable: true });
  try {
    let fresh: Crypto | undefined;
    jest.isolateModules(() => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      fresh = require('../src/crypto/index.js') as Crypto;
    });
    return await run(fresh!);
  } finally {
    if (saved) Object.defineProperty(globalThis, 'crypto', saved);
  }
}

const vectors = readVector<ProtocolVectors>('protocol.json');
const CONTEXT = new TextEncoder().encode('pqc-mcp/v2/message');

/** Signs with `a`, verifies with `b` (and the other way round) on every vector identity; checks the vector keys. */
async function crossCheck(a: CryptoBackend, b: CryptoBackend): Promise<void> {
  for (const id of vectors.identities) {
    const seed = fromHex(id.seed);
    const key = a.signingKey(id.algorithm, seed);
    expect(Buffer.from(key.publicKey).toString('hex')).toBe(id.public_key);
    const message = crypto.getRandomValues(new Uint8Array(32));
    const signature = await key.sign(message, CONTEXT);
    const verifier = b.verifyingKey(id.algorithm, fromHex(id.public_key));
    expect(await verifier.verify(message, signature, CONTEXT)).toBe(true);
    expect(await verifier.verify(message, signature, new Uint8Array(0))).toBe(false);
    const back = await b.signingKey(id.algorithm, seed).sign(message, CONTEXT);
    const mine = a.verifyingKey(id.algorithm, fromHex(id.public_key));
    expect(await mine.verify(message, back, CONTEXT)).toBe(true);
    expect(await mine.verify(message, back, new TextEncoder().encode('pqc-mcp/v2/handshake-request'))).toBe(false);
    const tampered = back.slice();
    tampered[7]! ^= 1;
    expect(await mine.verify(message, tampered, CONTEXT)).toBe(false);
    expect(await mine.verify(message, back.subarray(1), CONTEXT)).toBe(false);
  }
}

describe('the webcrypto backend on a WebCrypto that honours contexts (as Bun)', () => {
  test('is detected, becomes the auto choice where there is no node backend, and interoperates with noble', async () => {
    await withSubtle(fakeSubtle(true), async (c) => {
      expect(c.webcryptoBackend()).toBeUndefined();
      expect(() => c.selectBackend('webcrypto')).toThrow(/await detectBackends/);
      const before = c.defaultBackend();
      const names = await c.detectBackends();
      if (c.nodeBackend()) {
        // Node 24: the node backend is preferred and WebCrypto is not probed by detectBackends.
        expect(names).toEqual(['node', 'noble']);
        expect(before.name).toBe('node');
        await c.detectWebCrypto();
      } else {
        expect(names).toEqual(['webcrypto', 'noble']);
        expect(before.name).toBe('noble');
        expect(c.defaultBackend().name).toBe('webcrypto'); // the auto default is chosen again
        expect(c.selectBackend('auto').name).toBe('webcrypto');
      }
      const web = c.selectBackend('webcrypto');
      expect(web.name).toBe('webcrypto');
      await crossCheck(web, nobleBackend);
      expect(() => web.signingKey('ML-DSA-65', new Uint8Array(31))).toThrow(TypeError);
      expect(() => web.verifyingKey('ML-DSA-65', new Uint8Array(10))).toThrow(TypeError);
      await expect(web.signingKey('ML-DSA-44', new Uint8Array(32)).sign(new Uint8Array(1), new Uint8Array(256))).rejects.toThrow(RangeError);
    });
  });

  test('an explicit default is kept by detectBackends', async () => {
    await withSubtle(fakeSubtle(true), async (c) => {
      c.setDefaultBackend('noble');
      await c.detectBackends();
      expect(c.defaultBackend().name).toBe('noble');
    });
  });
});

describe('a WebCrypto that rejects contexts (as Deno) or has no ML-DSA (as workerd)', () => {
  test.each([
    ['rejects contexts', fakeSubtle(false)],
    ['no ML-DSA', { ...(globalThis.crypto.subtle as object), importKey: () => Promise.reject(new DOMException('Unrecognized algorithm name', 'NotSupportedError')) }],
    ['no subtle at all', undefined],
  ])('%s: no webcrypto backend, noble is chosen', async (_name, subtle) => {
    await withSubtle(subtle, async (c) => {
      expect(await c.detectWebCrypto()).toBeUndefined();
      const names = await c.detectBackends();
      expect(names).not.toContain('webcrypto');
      expect(() => c.selectBackend('webcrypto')).toThrow(/not available on this runtime/);
      expect(c.selectBackend('auto').name).toBe(c.nodeBackend() ? 'node' : 'noble');
    });
  });
});

describe("this runtime's own WebCrypto", () => {
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  const [sslMajor = 0, sslMinor = 0] = (process.versions.openssl ?? '0.0').split('.').map(Number);
  const hasMlDsa = (major > 24 || (major === 24 && minor >= 7)) && (sslMajor > 3 || (sslMajor === 3 && sslMinor >= 5));

  test(`webcrypto is found exactly when WebCrypto has ML-DSA with contexts (Node ${process.versions.node})`, async () => {
    let fresh: Crypto | undefined;
    jest.isolateModules(() => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      fresh = require('../src/crypto/index.js') as Crypto;
    });
    const web = await fresh!.detectWebCrypto();
    expect(web !== undefined).toBe(hasMlDsa);
    if (web) await crossCheck(web, nobleBackend);
  });
});
