import { sha3_256 as nobleSha3 } from '@noble/hashes/sha3.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import {
  ALGORITHMS,
  PUBLIC_KEY_BYTES,
  SIGNATURE_BYTES,
  availableBackends,
  defaultBackend,
  nobleBackend,
  nodeBackend,
  selectBackend,
  setDefaultBackend,
  sha3Backend,
  sha3_256,
  sha3_256Hex,
  type Algorithm,
  type CryptoBackend,
} from '../src/crypto/index.js';
import { readVector, type ProtocolVectors } from '@pqc-mcp/test-kit';

const { identities, messages } = readVector<ProtocolVectors>('protocol.json');

const hex = (bytes: Uint8Array): string => bytesToHex(bytes);
const unhex = (text: string): Uint8Array => Uint8Array.from(Buffer.from(text, 'hex'));
const ascii = (text: string): Uint8Array => new TextEncoder().encode(text);
const random = (n: number): Uint8Array => Uint8Array.from({ length: n }, () => Math.floor(Math.random() * 256));

const CONTEXT = ascii('pqc-mcp/v2/message');

/** Node >= 24.8: 24.6 and 24.7 have ML-DSA in node:crypto but silently ignore `context` (so no backend there). */
function runtimeHasNativeMlDsa(): boolean {
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  const [sslMajor = 0, sslMinor = 0] = (process.versions.openssl ?? '0.0').split('.').map(Number);
  const nodeOk = major > 24 || (major === 24 && minor >= 8);
  const sslOk = sslMajor > 3 || (sslMajor === 3 && sslMinor >= 5);
  return nodeOk && sslOk;
}

const backends: CryptoBackend[] = availableBackends().map((name) => selectBackend(name as 'node' | 'noble'));
const backendCases = backends.map((b) => [b.name, b] as const);
const pairCases = backends.flatMap((signer) => backends.map((verifier) => [signer.name, verifier.name, signer, verifier] as const));

describe('backend availability (never silently skipped)', () => {
  const nodeMajor = Number(process.versions.node.split('.')[0]);

  it(`node backend exists exactly when the runtime has native ML-DSA with contexts (Node ${process.versions.node}, OpenSSL ${process.versions.openssl})`, () => {
    if (nodeMajor < 24) expect(nodeBackend()).toBeUndefined();
    expect(nodeBackend() !== undefined).toBe(runtimeHasNativeMlDsa());
  });

  it('availableBackends lists node (when present) before noble', () => {
    expect(availableBackends()).toEqual(runtimeHasNativeMlDsa() ? ['node', 'noble'] : ['noble']);
  });

  it("selectBackend('auto') is the fastest available backend", () => {
    expect(selectBackend('auto').name).toBe(runtimeHasNativeMlDsa() ? 'node' : 'noble');
    expect(selectBackend().name).toBe(selectBackend('auto').name);
  });

  it('nodeBackend() is detected once and cached', () => {
    expect(nodeBackend()).toBe(nodeBackend());
  });
});

describe.each(backendCases)('%s backend', (_name, backend) => {
  describe.each(identities.map((id) => [`${id.algorithm} ${id.role}`, id] as const))('identity %s', (_label, id) => {
    const seed = unhex(id.seed);
    const key = backend.signingKey(id.algorithm, seed);

    it('derives the vector public key and DID from the seed', () => {
      expect(key.algorithm).toBe(id.algorithm);
      expect(key.publicKey).toBeInstanceOf(Uint8Array);
      expect(hex(key.publicKey)).toBe(id.public_key);
      expect(`did:pqaid:${sha3_256Hex(key.publicKey)}`).toBe(id.did);
    });

    it('signs and verifies with a context; rejects everything else with false', async () => {
      const verifier = backend.verifyingKey(id.algorithm, unhex(id.public_key));
      expect(verifier.algorithm).toBe(id.algorithm);
      expect(hex(verifier.publicKey)).toBe(id.public_key);
      const message = random(32);
      const sig = await key.sign(message, CONTEXT);
      expect(sig).toBeInstanceOf(Uint8Array);
      expect(sig.length).toBe(SIGNATURE_BYTES[id.algorithm]);
      expect(await verifier.verify(message, sig, CONTEXT)).toBe(true);

      const tamperedMessage = message.slice();
      tamperedMessage[0]! ^= 1;
      const tamperedSig = sig.slice();
      tamperedSig[100]! ^= 0x40;
      expect(await verifier.verify(message, sig, ascii('pqc-mcp/v2/handshake-request'))).toBe(false);
      expect(await verifier.verify(message, sig, new Uint8Array(0))).toBe(false);
      expect(await verifier.verify(tamperedMessage, sig, CONTEXT)).toBe(false);
      expect(await verifier.verify(message, tamperedSig, CONTEXT)).toBe(false);
      expect(await verifier.verify(message, sig.subarray(0, sig.length - 1), CONTEXT)).toBe(false);
      expect(await verifier.verify(message, new Uint8Array([...sig, 0]), CONTEXT)).toBe(false);
      expect(await verifier.verify(message, new Uint8Array(0), CONTEXT)).toBe(false);
      expect(await verifier.verify(message, new Uint8Array(sig.length), CONTEXT)).toBe(false);
      expect(await verifier.verify(message, sig, new Uint8Array(256))).toBe(false);
      expect(await verifier.verify(message, 'not bytes' as unknown as Uint8Array, CONTEXT)).toBe(false);
      expect(await verifier.verify(null as unknown as Uint8Array, sig, CONTEXT)).toBe(false);
      // a signature under another key of the same algorithm
      const otherKey = backend.signingKey(id.algorithm, random(32));
      expect(await verifier.verify(message, await otherKey.sign(message, CONTEXT), CONTEXT)).toBe(false);
    });

    it('signs an empty context and an empty message; hedged (two signatures differ)', async () => {
      const verifier = backend.verifyingKey(id.algorithm, key.publicKey);
      const empty = new Uint8Array(0);
      const s1 = await key.sign(empty, empty);
      const s2 = await key.sign(empty, empty);
      expect(hex(s1)).not.toBe(hex(s2));
      expect(await verifier.verify(empty, s1, empty)).toBe(true);
      expect(await verifier.verify(empty, s2, empty)).toBe(true);
      expect(await verifier.verify(empty, s1, CONTEXT)).toBe(false);
      const max = random(255);
      expect(await verifier.verify(CONTEXT, await key.sign(CONTEXT, max), max)).toBe(true);
    });
  });

  it.each(ALGORITHMS.map((a) => [a]))('%s: wrong-length public key → verifyingKey throws TypeError', (algorithm) => {
    const n = PUBLIC_KEY_BYTES[algorithm];
    expect(() => backend.verifyingKey(algorithm, new Uint8Array(n - 1))).toThrow(TypeError);
    expect(() => backend.verifyingKey(algorithm, new Uint8Array(n + 1))).toThrow(TypeError);
    expect(() => backend.verifyingKey(algorithm, new Uint8Array(0))).toThrow(TypeError);
    const otherAlgorithm = ALGORITHMS.find((a) => a !== algorithm)!;
    expect(() => backend.verifyingKey(algorithm, new Uint8Array(PUBLIC_KEY_BYTES[otherAlgorithm]))).toThrow(TypeError);
    expect(() => backend.verifyingKey(algorithm, 'ab' as unknown as Uint8Array)).toThrow(TypeError);
  });

  it('rejects bad seeds and algorithms up front', () => {
    expect(() => backend.signingKey('ML-DSA-65', new Uint8Array(31))).toThrow(TypeError);
    expect(() => backend.signingKey('ML-DSA-65', new Uint8Array(33))).toThrow(TypeError);
    expect(() => backend.signingKey('ML-DSA-99' as Algorithm, new Uint8Array(32))).toThrow(TypeError);
    expect(() => backend.verifyingKey('ed25519' as Algorithm, new Uint8Array(32))).toThrow(TypeError);
  });

  it('rejects (never signs with) a context over 255 bytes', async () => {
    const key = backend.signingKey('ML-DSA-44', new Uint8Array(32));
    await expect(key.sign(new Uint8Array(1), new Uint8Array(256))).rejects.toThrow(RangeError);
  });

  it('keeps its own copy of the public key', async () => {
    const key = backend.signingKey('ML-DSA-44', new Uint8Array(32).fill(9));
    const pk = key.publicKey.slice();
    const verifier = backend.verifyingKey('ML-DSA-44', pk);
    const sig = await key.sign(CONTEXT, CONTEXT);
    pk.fill(0);
    expect(hex(verifier.publicKey)).toBe(hex(key.publicKey));
    expect(await verifier.verify(CONTEXT, sig, CONTEXT)).toBe(true);
  });

  it('accepts Buffers as well as Uint8Arrays', async () => {
    const key = backend.signingKey('ML-DSA-44', Buffer.alloc(32, 3));
    const verifier = backend.verifyingKey('ML-DSA-44', Buffer.from(key.publicKey));
    const sig = await key.sign(Buffer.from('hello'), Buffer.from('ctx'));
    expect(await verifier.verify(Buffer.from('hello'), Buffer.from(sig), Buffer.from('ctx'))).toBe(true);
  });

  it('verifies the shared message vectors (deterministic signatures from the reference implementation)', async () => {
    const valid = messages.filter((m) => m.expect === 'valid');
    expect(valid.length).toBeGreaterThanOrEqual(9);
    for (const m of valid) {
      const signer = identities.find((i) => i.role === m.signer && i.algorithm === m.algorithm)!;
      const wire = JSON.parse(m.wire) as { _pqc: { signature: string } };
      expect(sha3_256Hex(m.signing_input!)).toBe(m.digest);
      const digest = unhex(m.digest!);
      const signature = unhex(wire._pqc.signature);
      const context = m.profile === 2 ? CONTEXT : new Uint8Array(0);
      const verifier = backend.verifyingKey(m.algorithm, unhex(signer.public_key));
      expect([m.name, await verifier.verify(digest, signature, context)]).toEqual([m.name, true]);
      expect([m.name, await verifier.verify(digest, signature, ascii('pqc-mcp/v2/other'))]).toEqual([m.name, false]);
    }
  });
});

describe('interoperability between backends', () => {
  it('runs the native↔noble pairs whenever the node backend exists', () => {
    const names = pairCases.map(([s, v]) => `${s}->${v}`);
    expect(names).toContain('noble->noble');
    if (runtimeHasNativeMlDsa()) expect(names).toEqual(expect.arrayContaining(['node->noble', 'noble->node', 'node->node']));
  });

  describe.each(pairCases)('sign with %s, verify with %s', (_s, _v, signer, verifier) => {
    it.each(ALGORITHMS.map((a) => [a]))('%s', async (algorithm) => {
      const seed = random(32);
      const sk = signer.signingKey(algorithm, seed);
      expect(hex(sk.publicKey)).toBe(hex(verifier.signingKey(algorithm, seed).publicKey));
      const vk = verifier.verifyingKey(algorithm, sk.publicKey);
      const message = random(32);
      const sig = await sk.sign(message, CONTEXT);
      expect(await vk.verify(message, sig, CONTEXT)).toBe(true);
      expect(await vk.verify(message, sig, ascii('pqc-mcp/v2/handshake-response'))).toBe(false);
      const empty = new Uint8Array(0);
      expect(await vk.verify(message, await sk.sign(message, empty), empty)).toBe(true);
    });
  });
});

describe('SHA3-256', () => {
  it('uses node:crypto on Node', () => {
    expect(sha3Backend()).toBe('node');
  });

  it('matches the known digest of the empty input', () => {
    const empty = 'a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a';
    expect(hex(sha3_256(new Uint8Array(0)))).toBe(empty);
    expect(sha3_256Hex(new Uint8Array(0))).toBe(empty);
    expect(sha3_256Hex('')).toBe(empty);
    expect(sha3_256Hex('abc')).toBe('3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532');
  });

  it('matches noble on random inputs, bytes and strings', () => {
    for (const n of [1, 31, 32, 135, 136, 137, 1000, 65537]) {
      const data = random(n);
      const expected = hex(nobleSha3(data));
      const out = sha3_256(data);
      expect(out).toBeInstanceOf(Uint8Array);
      expect(out.length).toBe(32);
      expect(hex(out)).toBe(expected);
      expect(sha3_256Hex(data)).toBe(expected);
      expect(sha3_256Hex(Buffer.from(data))).toBe(expected);
    }
    for (const text of ['hello', 'héllo 😀', '\u0000\u007f', 'x'.repeat(5000)]) {
      expect(sha3_256Hex(text)).toBe(hex(nobleSha3(new TextEncoder().encode(text))));
    }
  });
});

describe('backend selection', () => {
  afterEach(() => {
    setDefaultBackend('auto');
  });

  it('selects by name or passes a backend object through', () => {
    expect(selectBackend('noble')).toBe(nobleBackend);
    expect(selectBackend(nobleBackend)).toBe(nobleBackend);
    expect(() => selectBackend('rust' as 'noble')).toThrow(TypeError);
  });

  it("'node' is the native backend, or a clear error where there is none", () => {
    if (runtimeHasNativeMlDsa()) {
      expect(selectBackend('node')).toBe(nodeBackend());
      expect(selectBackend('node').name).toBe('node');
    } else {
      expect(() => selectBackend('node')).toThrow(/'node' ML-DSA backend is not available/);
    }
  });

  it('setDefaultBackend overrides the default', () => {
    expect(setDefaultBackend('noble')).toBe(nobleBackend);
    expect(defaultBackend()).toBe(nobleBackend);
    expect(setDefaultBackend('auto')).toBe(selectBackend('auto'));
    expect(defaultBackend()).toBe(selectBackend('auto'));
  });

  describe('PQC_MCP_BACKEND', () => {
    const saved = process.env.PQC_MCP_BACKEND;
    afterEach(() => {
      if (saved === undefined) delete process.env.PQC_MCP_BACKEND;
      else process.env.PQC_MCP_BACKEND = saved;
    });

    function freshDefault(value: string | undefined): () => CryptoBackend {
      if (value === undefined) delete process.env.PQC_MCP_BACKEND;
      else process.env.PQC_MCP_BACKEND = value;
      let fresh: typeof import('../src/crypto/select.js') | undefined;
      jest.isolateModules(() => {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        fresh = require('../src/crypto/select.js') as typeof import('../src/crypto/select.js');
      });
      return () => fresh!.defaultBackend();
    }

    it('sets the initial default', () => {
      const auto = runtimeHasNativeMlDsa() ? 'node' : 'noble';
      expect(freshDefault(undefined)().name).toBe(auto);
      expect(freshDefault('')().name).toBe(auto);
      expect(freshDefault('auto')().name).toBe(auto);
      expect(freshDefault('noble')().name).toBe('noble');
      expect(freshDefault(' NOBLE ')().name).toBe('noble');
      if (runtimeHasNativeMlDsa()) expect(freshDefault('node')().name).toBe('node');
      else expect(freshDefault('node')).toThrow(/not available/);
      expect(freshDefault('rust')).toThrow(/PQC_MCP_BACKEND=rust/);
    });
  });
});
