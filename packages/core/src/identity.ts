import { fromBase64Url, fromHex, isLowerHex, randomBytes, toBase64Url, toHex } from './bytes.js';
import { DEFAULT_ALGORITHM, PUBLIC_KEY_BYTES, SEED_BYTES, isAlgorithm, type Algorithm } from './crypto/algorithms.js';
import { sha3_256Hex } from './crypto/hash.js';
import { defaultBackend, selectBackend, type BackendPreference } from './crypto/select.js';
import type { CryptoBackend, SigningKey, VerifyingKey } from './crypto/types.js';
import { nodeBuiltin } from './runtime.js';

/** The DID prefix of docs/PROTOCOL.md §1. */
export const DID_PREFIX = 'did:pqaid:';

/** `did:pqaid:` + hex SHA3-256 of the raw public key. */
export function didFromPublicKey(publicKey: Uint8Array): string {
  return DID_PREFIX + sha3_256Hex(publicKey);
}

/** True when `did` has the form `did:pqaid:<64 lowercase hex>`. */
export function isDid(did: unknown): did is string {
  return typeof did === 'string' && did.length === 74 && did.startsWith(DID_PREFIX) && isLowerHex(did.slice(10), 32);
}

/** An identity file or public identity: a JWK of RFC 9964 form plus `did` and `name` (docs/PROTOCOL.md §1). */
export interface IdentityJwk {
  kty: 'AKP';
  alg: Algorithm;
  /** base64url raw public key. */
  pub: string;
  /** base64url 32-byte seed; absent in a public identity. */
  priv?: string;
  did?: string;
  name?: string;
}

/** Options shared by the identity constructors. */
export interface IdentityOptions {
  /** ML-DSA parameter set (default ML-DSA-65). */
  algorithm?: Algorithm;
  /** Human-readable name, informational only. */
  name?: string;
  /** Crypto backend (default: the fastest on this runtime). */
  backend?: BackendPreference;
}

function backendOf(preference: BackendPreference | undefined): CryptoBackend {
  return preference === undefined ? defaultBackend() : selectBackend(preference);
}

function checkAlgorithm(algorithm: unknown): Algorithm {
  if (!isAlgorithm(algorithm)) {
    throw new TypeError(`unsupported algorithm ${JSON.stringify(algorithm)}: use ML-DSA-44, ML-DSA-65 or ML-DSA-87`);
  }
  return algorithm;
}

function parseJwk(input: IdentityJwk | string): IdentityJwk {
  let jwk: unknown = input;
  if (typeof input === 'string') {
    try {
      jwk = JSON.parse(input);
    } catch {
      throw new TypeError('identity: not a JSON Web Key (invalid JSON)');
    }
  }
  if (typeof jwk !== 'object' || jwk === null) throw new TypeError('identity: not a JSON Web Key');
  const k = jwk as Record<string, unknown>;
  if (k.kty !== 'AKP') throw new TypeError(`identity: kty must be "AKP", got ${JSON.stringify(k.kty)}`);
  checkAlgorithm(k.alg);
  if (typeof k.pub !== 'string') throw new TypeError('identity: "pub" (base64url public key) is missing');
  if (k.priv !== undefined && typeof k.priv !== 'string') throw new TypeError('identity: "priv" must be a string');
  if (k.did !== undefined && typeof k.did !== 'string') throw new TypeError('identity: "did" must be a string');
  if (k.name !== undefined && typeof k.name !== 'string') throw new TypeError('identity: "name" must be a string');
  return k as unknown as IdentityJwk;
}

function decodeB64(value: string, what: string): Uint8Array {
  try {
    return fromBase64Url(value);
  } catch {
    throw new TypeError(`identity: ${what} is not valid base64url`);
  }
}

/**
 * A public identity: what one side knows of the other. Holds the verifying key, prepared once for the backend.
 */
export class PeerIdentity {
  readonly algorithm: Algorithm;
  readonly publicKey: Uint8Array;
  readonly publicKeyHex: string;
  readonly did: string;
  readonly name: string | undefined;
  readonly #backend: CryptoBackend;
  #verifyingKey: VerifyingKey | undefined;

  /** Builds a peer from its algorithm and raw public key (bytes or lowercase hex). Throws `TypeError` on a bad key. */
  constructor(
    algorithm: Algorithm,
    publicKey: Uint8Array | string,
    options: { name?: string; backend?: BackendPreference; did?: string } = {},
  ) {
    this.algorithm = checkAlgorithm(algorithm);
    if (typeof publicKey === 'string') {
      if (!isLowerHex(publicKey)) throw new TypeError('public key must be lowercase hex');
      this.publicKeyHex = publicKey;
      this.publicKey = fromHex(publicKey);
    } else {
      this.publicKey = publicKey;
      this.publicKeyHex = toHex(publicKey);
    }
    if (this.publicKey.length !== PUBLIC_KEY_BYTES[this.algorithm]) {
      throw new TypeError(`${this.algorithm} public key must be ${PUBLIC_KEY_BYTES[this.algorithm]} bytes`);
    }
    this.did = options.did ?? didFromPublicKey(this.publicKey);
    this.name = options.name;
    this.#backend = backendOf(options.backend);
  }

  /** A peer from a public JWK (or identity file text); the `did` member, when present, must match the key. */
  static fromJwk(input: IdentityJwk | string, options: { backend?: BackendPreference } = {}): PeerIdentity {
    const jwk = parseJwk(input);
    const peer = new PeerIdentity(jwk.alg, decodeB64(jwk.pub, '"pub"'), { name: jwk.name, backend: options.backend });
    if (jwk.did !== undefined && jwk.did !== peer.did) throw new TypeError('identity: "did" does not match "pub"');
    return peer;
  }

  /** The key prepared for verification (imported once, then cached). */
  get verifyingKey(): VerifyingKey {
    return (this.#verifyingKey ??= this.#backend.verifyingKey(this.algorithm, this.publicKey));
  }

  /** Public JWK of RFC 9964 form with `did` and `name`. */
  toJwk(): IdentityJwk {
    const jwk: IdentityJwk = { kty: 'AKP', alg: this.algorithm, pub: toBase64Url(this.publicKey), did: this.did };
    if (this.name !== undefined) jwk.name = this.name;
    return jwk;
  }

  toJSON(): IdentityJwk {
    return this.toJwk();
  }
}

/**
 * An agent's ML-DSA identity: the 32-byte seed (the private key at rest), the key pair derived from it and the DID.
 * The seed never appears in `JSON.stringify`, `console.log` or `toJwk()` unless asked for.
 */
export class AgentIdentity {
  readonly algorithm: Algorithm;
  readonly name: string;
  readonly publicKey: Uint8Array;
  readonly publicKeyHex: string;
  readonly did: string;
  readonly backend: CryptoBackend;
  readonly #seed: Uint8Array;
  readonly #signingKey: SigningKey;
  #peer: PeerIdentity | undefined;

  private constructor(seed: Uint8Array, algorithm: Algorithm, name: string, backend: CryptoBackend) {
    this.#seed = seed;
    this.algorithm = algorithm;
    this.name = name;
    this.backend = backend;
    this.#signingKey = backend.signingKey(algorithm, seed);
    this.publicKey = this.#signingKey.publicKey;
    this.publicKeyHex = toHex(this.publicKey);
    this.did = didFromPublicKey(this.publicKey);
  }

  /** A new identity from a fresh random seed. */
  static create(name = 'agent', options: Omit<IdentityOptions, 'name'> = {}): AgentIdentity {
    return AgentIdentity.fromSeed(randomBytes(SEED_BYTES), { ...options, name });
  }

  /** The identity of a 32-byte seed (bytes or 64 hex characters): the same seed always gives the same keys. */
  static fromSeed(seed: Uint8Array | string, options: IdentityOptions = {}): AgentIdentity {
    let bytes: Uint8Array;
    if (typeof seed === 'string') {
      if (!isLowerHex(seed, SEED_BYTES)) throw new TypeError('seed must be 64 lowercase hex characters');
      bytes = fromHex(seed);
    } else if (seed instanceof Uint8Array && seed.length === SEED_BYTES) {
      bytes = Uint8Array.from(seed);
    } else {
      throw new TypeError(`seed must be ${SEED_BYTES} bytes`);
    }
    const algorithm = checkAlgorithm(options.algorithm ?? DEFAULT_ALGORITHM);
    return new AgentIdentity(bytes, algorithm, options.name ?? 'agent', backendOf(options.backend));
  }

  /** An identity from a private JWK (with `priv`); `pub` and `did`, when present, must match the seed. */
  static fromJwk(input: IdentityJwk | string, options: { backend?: BackendPreference } = {}): AgentIdentity {
    const jwk = parseJwk(input);
    if (jwk.priv === undefined) throw new TypeError('identity: "priv" (the private seed) is missing: this is a public identity');
    const seed = decodeB64(jwk.priv, '"priv"');
    if (seed.length !== SEED_BYTES) throw new TypeError(`identity: "priv" must be a ${SEED_BYTES}-byte seed`);
    const identity = AgentIdentity.fromSeed(seed, { algorithm: jwk.alg, name: jwk.name, backend: options.backend });
    if (jwk.pub !== toBase64Url(identity.publicKey)) throw new TypeError('identity: "pub" does not match the seed');
    if (jwk.did !== undefined && jwk.did !== identity.did) throw new TypeError('identity: "did" does not match the key');
    return identity;
  }

  /** Reads an identity file (docs/PROTOCOL.md §1). Node, Bun and Deno only. */
  static async load(path: string, options: { backend?: BackendPreference } = {}): Promise<AgentIdentity> {
    const text = await fsPromises().readFile(path, 'utf8');
    return AgentIdentity.fromJwk(text, options);
  }

  /**
   * The same identity (seed, keys, DID, name) signing and verifying through another backend, e.g. a worker pool
   * (`createWorkerPoolBackend()` of `@pqc-mcp/core/node`). Returns this identity when the backend is the same.
   */
  withBackend(preference: BackendPreference): AgentIdentity {
    const backend = selectBackend(preference);
    if (backend === this.backend) return this;
    return new AgentIdentity(this.#seed, this.algorithm, this.name, backend);
  }

  /** Signs `message` with this identity's key and `context`. Used by the envelope and handshake code. */
  sign(message: Uint8Array, context: Uint8Array): Promise<Uint8Array> {
    return this.#signingKey.sign(message, context);
  }

  /** The public side of this identity, as a peer sees it. */
  toPeer(): PeerIdentity {
    return (this.#peer ??= new PeerIdentity(this.algorithm, this.publicKey, {
      name: this.name,
      backend: this.backend,
      did: this.did,
    }));
  }

  /** RFC 9964 JWK with `did` and `name`; the seed (`priv`) only with `includePrivate: true`. */
  toJwk(options: { includePrivate?: boolean } = {}): IdentityJwk {
    const jwk: IdentityJwk = { kty: 'AKP', alg: this.algorithm, pub: toBase64Url(this.publicKey) };
    if (options.includePrivate) jwk.priv = toBase64Url(this.#seed);
    jwk.did = this.did;
    jwk.name = this.name;
    return jwk;
  }

  /** Writes the identity file with mode 0600 (the seed included unless `includePrivate: false`). */
  async save(path: string, options: { includePrivate?: boolean } = {}): Promise<void> {
    const fs = fsPromises();
    const text = JSON.stringify(this.toJwk({ includePrivate: options.includePrivate ?? true }), null, 2) + '\n';
    // `mode` only applies when the file is created: an existing file is truncated and made 0600 before the seed is
    // written into it, so the seed never sits in a file with wider permissions.
    const handle = await fs.open(path, 'w', 0o600);
    try {
      await handle.chmod(0o600);
      await handle.writeFile(text);
    } finally {
      await handle.close();
    }
  }

  /** JSON form: the public JWK, never the seed. */
  toJSON(): IdentityJwk {
    return this.toJwk();
  }

  toString(): string {
    return `AgentIdentity(${this.name}, ${this.algorithm}, ${this.did})`;
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }
}

function fsPromises(): typeof import('node:fs/promises') {
  const fs = nodeBuiltin<typeof import('node:fs/promises')>('node:fs/promises');
  if (!fs) throw new Error('identity files need a runtime with a file system (Node, Bun or Deno)');
  return fs;
}
