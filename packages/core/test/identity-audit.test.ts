/** AgentIdentity / PeerIdentity (docs/PROTOCOL.md §1) and the audit trail (§8). */
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { inspect } from 'node:util';
import { sha3_256 as nobleSha3 } from '@noble/hashes/sha3.js';
import { fromBase64Url, fromHex, toBase64Url, toHex, utf8 } from '../src/bytes.js';
import { PUBLIC_KEY_BYTES } from '../src/crypto/algorithms.js';
import { sha3_256, sha3_256Hex } from '../src/crypto/hash.js';
import { HANDSHAKE_REQUEST_CONTEXT, MESSAGE_CONTEXT } from '../src/protocol.js';
import {
  AgentIdentity,
  AuditLog,
  MemorySessionStore,
  MessageSigner,
  PQCHandshake,
  PeerIdentity,
  canonicalJson,
  isDid,
  type AuditEntry,
  type IdentityJwk,
} from '../src/index.js';
import { VECTOR_TIME, seededIdentity } from '@pqc-mcp/test-kit';

/** A seed no other bytes in an identity resemble: 3, 10, 17, … */
const SEED = Uint8Array.from({ length: 32 }, (_, i) => (i * 7 + 3) & 0xff);
const SEED_HEX = toHex(SEED);

/** Every form the seed could leak in. */
function seedForms(): string[] {
  return [SEED_HEX, toBase64Url(SEED), Buffer.from(SEED).toString('base64'), Array.from(SEED).join(', ')];
}

describe('AgentIdentity', () => {
  test('create: a fresh random identity each time, with its name', () => {
    const a = AgentIdentity.create('alice');
    const b = AgentIdentity.create('bob', { algorithm: 'ML-DSA-44' });
    expect(a.name).toBe('alice');
    expect(a.algorithm).toBe('ML-DSA-65');
    expect(b.algorithm).toBe('ML-DSA-44');
    expect(isDid(a.did)).toBe(true);
    expect(a.did).not.toBe(AgentIdentity.create('alice').did);
    expect(a.publicKey).toHaveLength(PUBLIC_KEY_BYTES['ML-DSA-65']);
    expect(b.publicKey).toHaveLength(PUBLIC_KEY_BYTES['ML-DSA-44']);
  });

  test('fromSeed: hex and bytes give the same keys; the same seed always the same DID', () => {
    const fromBytes = AgentIdentity.fromSeed(SEED, { name: 'x' });
    const fromHex = AgentIdentity.fromSeed(SEED_HEX);
    expect(fromHex.did).toBe(fromBytes.did);
    expect(fromHex.publicKeyHex).toBe(fromBytes.publicKeyHex);
    expect(AgentIdentity.fromSeed(SEED).did).toBe(fromBytes.did);
    expect(fromBytes.name).toBe('x');
    expect(fromHex.name).toBe('agent');
    // Another seed, another DID; another algorithm, another key.
    expect(seededIdentity(1).did).not.toBe(fromBytes.did);
    expect(AgentIdentity.fromSeed(SEED, { algorithm: 'ML-DSA-87' }).did).not.toBe(fromBytes.did);
  });

  test('fromSeed copies the seed: changing the caller’s bytes afterwards changes nothing', () => {
    const bytes = Uint8Array.from(SEED);
    const id = AgentIdentity.fromSeed(bytes);
    bytes.fill(0);
    expect(id.toJwk({ includePrivate: true }).priv).toBe(toBase64Url(SEED));
  });

  test('DID = did:pqaid: + SHA3-256 of the raw public key', () => {
    const id = AgentIdentity.fromSeed(SEED);
    expect(id.did).toBe(`did:pqaid:${toHex(nobleSha3(id.publicKey))}`);
    expect(id.did).toBe(`did:pqaid:${sha3_256Hex(id.publicKey)}`);
    expect(id.did).toMatch(/^did:pqaid:[0-9a-f]{64}$/);
    expect(id.publicKeyHex).toBe(toHex(id.publicKey));
  });

  test.each([
    ['31 bytes', new Uint8Array(31)],
    ['33 bytes', new Uint8Array(33)],
    ['0 bytes', new Uint8Array(0)],
    ['62 hex characters', '00'.repeat(31)],
    ['66 hex characters', '00'.repeat(33)],
    ['upper-case hex', SEED_HEX.toUpperCase()],
    ['not hex', 'zz'.repeat(32)],
    ['an array of numbers', Array.from(SEED)],
  ])('a bad seed (%s) throws TypeError', (_name, seed) => {
    expect(() => AgentIdentity.fromSeed(seed as Uint8Array)).toThrow(TypeError);
  });

  test('an unknown algorithm throws TypeError', () => {
    expect(() => AgentIdentity.fromSeed(SEED, { algorithm: 'ML-DSA-99' as 'ML-DSA-65' })).toThrow(TypeError);
  });

  test('toJwk: public by default, the seed only with includePrivate', () => {
    const id = AgentIdentity.fromSeed(SEED, { name: 'alice' });
    const pub = id.toJwk();
    expect(pub).toEqual({ kty: 'AKP', alg: 'ML-DSA-65', pub: toBase64Url(id.publicKey), did: id.did, name: 'alice' });
    expect(pub).not.toHaveProperty('priv');
    expect(fromBase64Url(pub.pub)).toEqual(id.publicKey);
    const priv = id.toJwk({ includePrivate: true });
    expect(priv).toEqual({ ...pub, priv: toBase64Url(SEED) });
    expect(fromBase64Url(priv.priv!)).toEqual(SEED);
  });

  test('fromJwk: round trip from the object and from its text; a public JWK is refused', async () => {
    const id = AgentIdentity.fromSeed(SEED, { name: 'alice', algorithm: 'ML-DSA-44' });
    const jwk = id.toJwk({ includePrivate: true });
    for (const input of [jwk, JSON.stringify(jwk)]) {
      const back = AgentIdentity.fromJwk(input);
      expect(back).toMatchObject({ did: id.did, name: 'alice', algorithm: 'ML-DSA-44', publicKeyHex: id.publicKeyHex });
      expect(back.toJwk({ includePrivate: true })).toEqual(jwk);
    }
    // The restored key signs for the same identity.
    const signed = await new MessageSigner(AgentIdentity.fromJwk(jwk)).signMessage(
      { jsonrpc: '2.0', method: 'ping' },
      { sessionId: '12'.repeat(16), now: VECTOR_TIME },
    );
    expect((await MessageSigner.verifyMessage(signed.text, { peer: id.toPeer(), now: VECTOR_TIME })).valid).toBe(true);
    expect(() => AgentIdentity.fromJwk(id.toJwk())).toThrow(TypeError);
    expect(() => AgentIdentity.fromJwk('{not json')).toThrow(TypeError);
    expect(() => AgentIdentity.fromJwk({ ...jwk, kty: 'OKP' } as unknown as IdentityJwk)).toThrow(TypeError);
    expect(() => AgentIdentity.fromJwk({ ...jwk, priv: toBase64Url(new Uint8Array(31)) })).toThrow(TypeError);
  });

  test('a public JWK gives a PeerIdentity', () => {
    const id = AgentIdentity.fromSeed(SEED, { name: 'alice' });
    for (const input of [id.toJwk(), JSON.stringify(id.toJwk())]) {
      const peer = PeerIdentity.fromJwk(input);
      expect(peer).toBeInstanceOf(PeerIdentity);
      expect(peer).toMatchObject({ did: id.did, name: 'alice', algorithm: 'ML-DSA-65', publicKeyHex: id.publicKeyHex });
      expect(peer.toJwk()).toEqual(id.toJwk());
    }
    // Without a did member, the DID is computed.
    const noDid = id.toJwk();
    delete noDid.did;
    expect(PeerIdentity.fromJwk(noDid).did).toBe(id.did);
    // A private JWK read as a peer keeps only the public part.
    expect(JSON.stringify(PeerIdentity.fromJwk(id.toJwk({ includePrivate: true })))).not.toContain(toBase64Url(SEED));
  });

  test('a JWK whose did or pub does not match throws TypeError', () => {
    const id = AgentIdentity.fromSeed(SEED);
    const other = seededIdentity(5);
    expect(() => PeerIdentity.fromJwk({ ...id.toJwk(), did: other.did })).toThrow(/"did" does not match/);
    expect(() => PeerIdentity.fromJwk({ ...id.toJwk(), did: other.did })).toThrow(TypeError);
    const priv = id.toJwk({ includePrivate: true });
    expect(() => AgentIdentity.fromJwk({ ...priv, pub: toBase64Url(other.publicKey) })).toThrow(/"pub" does not match/);
    expect(() => AgentIdentity.fromJwk({ ...priv, did: other.did })).toThrow(/"did" does not match/);
    // A key of the wrong length for its algorithm.
    expect(() => PeerIdentity.fromJwk({ ...id.toJwk(), alg: 'ML-DSA-44', did: undefined })).toThrow(TypeError);
  });

  test('JSON.stringify, String and util.inspect never show the seed', () => {
    const id = AgentIdentity.fromSeed(SEED, { name: 'alice' });
    const outputs = [
      JSON.stringify(id),
      JSON.stringify({ nested: [id] }),
      String(id),
      `${id}`,
      inspect(id),
      inspect({ id }, { depth: Infinity }),
      inspect(id, { customInspect: false, showHidden: true, depth: Infinity }),
    ];
    expect(JSON.parse(JSON.stringify(id))).toEqual(id.toJwk());
    expect(String(id)).toBe(`AgentIdentity(alice, ML-DSA-65, ${id.did})`);
    for (const out of outputs) for (const form of seedForms()) expect(out).not.toContain(form);
    // Control: the seed forms are what toJwk({ includePrivate: true }) would show.
    expect(JSON.stringify(id.toJwk({ includePrivate: true }))).toContain(toBase64Url(SEED));
  });

  describe('identity files', () => {
    let dir: string;
    beforeEach(() => {
      dir = mkdtempSync(path.join(tmpdir(), 'pqc-identity-'));
    });
    afterEach(() => {
      rmSync(dir, { recursive: true, force: true });
    });

    test('save writes a 0600 RFC 9964 JWK with the seed; load restores the identity', async () => {
      const id = AgentIdentity.fromSeed(SEED, { name: 'alice' });
      const file = path.join(dir, 'alice.json');
      await id.save(file);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      const jwk = JSON.parse(readFileSync(file, 'utf8')) as IdentityJwk;
      expect(jwk).toEqual(id.toJwk({ includePrivate: true }));
      const back = await AgentIdentity.load(file);
      expect(back).toMatchObject({ did: id.did, name: 'alice', publicKeyHex: id.publicKeyHex });
    });

    test('save over an existing 0644 file leaves it 0600', async () => {
      const file = path.join(dir, 'old.json');
      writeFileSync(file, '{"old":true}\n', { mode: 0o644 });
      chmodSync(file, 0o644);
      expect(statSync(file).mode & 0o777).toBe(0o644);
      const id = AgentIdentity.fromSeed(SEED);
      await id.save(file);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect((await AgentIdentity.load(file)).did).toBe(id.did);
    });

    test('the seed is never written into a file with wider permissions than 0600', async () => {
      const file = path.join(dir, 'old.json');
      writeFileSync(file, '{}\n');
      chmodSync(file, 0o644);
      // Watch every write the identity code makes and note the file's mode at that moment.
      type Fs = typeof import('node:fs/promises');
      const getBuiltin = process.getBuiltinModule.bind(process);
      const real = getBuiltin('node:fs/promises') as Fs;
      const modes: number[] = [];
      const modeOf = async (target: unknown) => (await real.stat(target as string)).mode & 0o777;
      const watched: Fs = {
        ...real,
        writeFile: (async (target: Parameters<Fs['writeFile']>[0], ...rest: unknown[]) => {
          modes.push(await modeOf(target));
          return (real.writeFile as (...a: unknown[]) => Promise<void>)(target, ...rest);
        }) as Fs['writeFile'],
        open: (async (...args: Parameters<Fs['open']>) => {
          const handle = await real.open(...args);
          for (const method of ['write', 'writeFile'] as const) {
            const original = (handle[method] as (...a: unknown[]) => Promise<unknown>).bind(handle);
            Object.defineProperty(handle, method, {
              value: async (...a: unknown[]) => {
                modes.push((await handle.stat()).mode & 0o777);
                return original(...a);
              },
            });
          }
          return handle;
        }) as Fs['open'],
      };
      const spy = jest
        .spyOn(process, 'getBuiltinModule')
        .mockImplementation(((id: string) => (id === 'node:fs/promises' ? watched : getBuiltin(id))) as typeof process.getBuiltinModule);
      try {
        await AgentIdentity.fromSeed(SEED).save(file);
      } finally {
        spy.mockRestore();
      }
      expect(modes.length).toBeGreaterThan(0);
      expect(modes.every((mode) => mode === 0o600)).toBe(true);
      expect(statSync(file).mode & 0o777).toBe(0o600);
    });

    test('a public identity file (includePrivate: false) has no seed, loads as a peer, not as an agent', async () => {
      const id = AgentIdentity.fromSeed(SEED, { name: 'alice' });
      const file = path.join(dir, 'alice.pub.json');
      await id.save(file, { includePrivate: false });
      const text = readFileSync(file, 'utf8');
      for (const form of seedForms()) expect(text).not.toContain(form);
      expect(PeerIdentity.fromJwk(text).did).toBe(id.did);
      await expect(AgentIdentity.load(file)).rejects.toThrow(TypeError);
    });

    test('loading a missing file rejects', async () => {
      await expect(AgentIdentity.load(path.join(dir, 'missing.json'))).rejects.toMatchObject({ code: 'ENOENT' });
    });
  });
});

describe('AuditLog', () => {
  const input = (n: number) => ({ operation: 'request' as const, verified: true, method: `m${n}` });

  test('is a bounded ring: maxEntries 3 and 5 records keep the last 3 in order', () => {
    const log = new AuditLog({ maxEntries: 3 });
    const recorded = [1, 2, 3, 4, 5].map((n) => log.record(input(n)));
    expect(log.size).toBe(3);
    expect(log.entries().map((e) => e.method)).toEqual(['m3', 'm4', 'm5']);
    expect(log.entries()).toEqual(recorded.slice(2));
    log.record(input(6));
    expect(log.entries().map((e) => e.method)).toEqual(['m4', 'm5', 'm6']);
    log.clear();
    expect(log.entries()).toEqual([]);
    log.record(input(7));
    expect(log.entries().map((e) => e.method)).toEqual(['m7']);
  });

  test('record fills every §8 field, null by default, and truncates the signature to 32 hex characters', () => {
    const entry = new AuditLog().record({ operation: 'notification', verified: true, signature_truncated: 'f'.repeat(100) });
    expect(entry).toEqual({
      timestamp: expect.any(String),
      session_id: null,
      operation: 'notification',
      method: null,
      signer_did: null,
      peer_did: null,
      algorithm: null,
      signature_truncated: 'f'.repeat(32),
      digest: null,
      verified: true,
      reason: null,
      details: null,
    });
    expect(Math.abs(Date.parse(entry.timestamp) - Date.now())).toBeLessThan(60_000);
  });

  test('the sink receives each entry, in order, even with maxEntries 0', () => {
    const seen: AuditEntry[] = [];
    const log = new AuditLog({ maxEntries: 0, sink: (e) => void seen.push(e) });
    const recorded = [1, 2, 3].map((n) => log.record(input(n)));
    expect(seen).toEqual(recorded);
    expect(seen[0]).toBe(recorded[0]);
    expect(log.size).toBe(0);
  });

  test('a throwing or rejecting sink does not break record', async () => {
    const throwing = new AuditLog({
      sink: () => {
        throw new Error('disk full');
      },
    });
    expect(() => throwing.record(input(1))).not.toThrow();
    expect(throwing.record(input(2)).method).toBe('m2');
    expect(throwing.entries().map((e) => e.method)).toEqual(['m1', 'm2']);

    let calls = 0;
    const rejecting = new AuditLog({
      sink: async () => {
        calls++;
        throw new Error('network down');
      },
    });
    expect(rejecting.record(input(3)).method).toBe('m3');
    await new Promise((resolve) => setImmediate(resolve)); // an unhandled rejection would fail the test run
    expect(calls).toBe(1);
    expect(rejecting.size).toBe(1);
  });

  test('bad options throw TypeError', () => {
    expect(() => new AuditLog({ maxEntries: -1 })).toThrow(TypeError);
    expect(() => new AuditLog({ maxEntries: 1.5 })).toThrow(TypeError);
    expect(() => new AuditLog({ sink: 'stdout' as unknown as () => void })).toThrow(TypeError);
  });

  test('respond writes a handshake entry, and a rejected entry for a refused request', async () => {
    const client = seededIdentity(31, 'ML-DSA-44', 'client');
    const server = seededIdentity(32, 'ML-DSA-65', 'server');
    const audit = new AuditLog();
    const store = new MemorySessionStore({ now: () => VECTOR_TIME });
    const { request } = await PQCHandshake.initiate(client, { serverDid: server.did, now: VECTOR_TIME });
    const { session } = await PQCHandshake.respond(request, server, { store, audit, now: VECTOR_TIME });
    const { signature, ...unsigned } = JSON.parse(request) as Record<string, string>;
    expect(audit.entries()).toEqual([
      {
        timestamp: expect.any(String),
        session_id: session.sessionId,
        operation: 'handshake',
        method: null,
        signer_did: client.did,
        peer_did: client.did,
        algorithm: 'ML-DSA-44',
        signature_truncated: signature!.slice(0, 32),
        digest: sha3_256Hex(canonicalJson(unsigned)),
        verified: true,
        reason: null,
        details: { profile: 2, expires_at: '2026-11-25T13:00:00.123000+00:00' },
      },
    ]);

    // The same request again: refused as a replay, and recorded as such.
    await expect(PQCHandshake.respond(request, server, { store, audit, now: VECTOR_TIME })).rejects.toMatchObject({
      reason: 'replay_detected',
    });
    // A request that is not JSON: recorded without a signer.
    await expect(PQCHandshake.respond('{', server, { store, audit, now: VECTOR_TIME })).rejects.toMatchObject({
      reason: 'malformed_json',
    });
    const [, replay, malformed] = audit.entries();
    expect(replay).toMatchObject({
      operation: 'rejected',
      method: 'pqc/handshake',
      signer_did: client.did,
      session_id: null,
      verified: false,
      reason: 'replay_detected',
    });
    expect(malformed).toMatchObject({ operation: 'rejected', signer_did: null, verified: false, reason: 'malformed_json' });
    expect(audit.size).toBe(3);
  });

  test('the handshake digest is over the signed request (context-bound signature)', async () => {
    // Sanity of what the entry's digest names: the client's signature verifies over it with the request context.
    const client = seededIdentity(33, 'ML-DSA-44');
    const { request } = await PQCHandshake.initiate(client, { serverDid: seededIdentity(34).did, now: VECTOR_TIME });
    const { signature, ...unsigned } = JSON.parse(request) as Record<string, string>;
    const digest = sha3_256(utf8(canonicalJson(unsigned)));
    const key = client.toPeer().verifyingKey;
    expect(await key.verify(digest, fromHex(signature!), HANDSHAKE_REQUEST_CONTEXT)).toBe(true);
    expect(await key.verify(digest, fromHex(signature!), MESSAGE_CONTEXT)).toBe(false);
  });
});
