import { sha3_256Hex } from '../src/crypto/hash.js';
import { checkEnvelope, signingInput } from '../src/envelope.js';
import {
  AgentIdentity,
  MessageSigner,
  MemorySessionStore,
  PQCHandshake,
  PeerIdentity,
  canonicalJson,
  parseLossless,
  type PendingHandshake,
} from '../src/index.js';
import { VECTOR_TIME, readVector, type ProtocolVectors } from '@pqc-mcp/test-kit';
import { BACKENDS } from './helpers.js';

const vectors = readVector<ProtocolVectors>('protocol.json');

function identity(role: 'client' | 'server', algorithm: string, backend: 'noble' | 'node'): AgentIdentity {
  const v = vectors.identities.find((i) => i.role === role && i.algorithm === algorithm)!;
  return AgentIdentity.fromSeed(v.seed, { algorithm: v.algorithm, name: role, backend });
}

describe.each(BACKENDS)('protocol vectors on the %s backend', (backend) => {
  test('identities: seed gives the public key and DID', () => {
    for (const v of vectors.identities) {
      const id = AgentIdentity.fromSeed(v.seed, { algorithm: v.algorithm, backend });
      expect(id.publicKeyHex).toBe(v.public_key);
      expect(id.did).toBe(v.did);
    }
  });

  describe.each(vectors.messages.map((m) => [m.name, m] as const))('message: %s', (_name, m) => {
    const signer = () => identity(m.signer, m.algorithm, backend);

    test(`verifies as ${m.expect}`, async () => {
      const peer = new PeerIdentity(m.algorithm, signer().publicKey, { backend });
      const result = await MessageSigner.verifyMessage(m.wire, { peer, profiles: [1, 2], now: VECTOR_TIME });
      if (m.expect === 'valid') {
        expect(result).toMatchObject({ valid: true, reason: null, profile: m.profile, digest: m.digest });
        expect(result.message).not.toHaveProperty('_pqc');
      } else {
        expect(result.valid).toBe(false);
        expect(result.reason).toBe(m.expect);
      }
    });

    if (m.signing_input !== undefined) {
      test('signing input and digest are byte for byte', () => {
        const checked = checkEnvelope(parseLossless(m.wire), { profiles: [1, 2], now: VECTOR_TIME });
        if (!checked.ok) throw new Error(checked.detail);
        expect(signingInput(checked.value)).toBe(m.signing_input);
        expect(sha3_256Hex(m.signing_input!)).toBe(m.digest);
      });
    }

    if (m.expect === 'valid' && m.profile === 2 && m.wire.includes('"public_key"')) {
      test('verifies without a peer from its own public_key', async () => {
        const result = await MessageSigner.verifyMessage(m.wire, { now: VECTOR_TIME });
        expect(result.valid).toBe(true);
      });
    }

    if (m.expect === 'valid') {
      test('is refused under another key claiming the same DID', async () => {
        const other = AgentIdentity.fromSeed(new Uint8Array(32).fill(9), { algorithm: m.algorithm, backend });
        const peer = new PeerIdentity(m.algorithm, other.publicKey, { backend, did: signer().did });
        const result = await MessageSigner.verifyMessage(m.wire, { peer, profiles: [1, 2], now: VECTOR_TIME });
        expect(result.reason).toBe(m.wire.includes('"public_key"') ? 'peer_mismatch' : 'invalid_signature');
      });

      test('is stale an hour later and refused in a profile not enabled', async () => {
        const peer = signer().toPeer();
        const late = await MessageSigner.verifyMessage(m.wire, { peer, profiles: [1, 2], now: VECTOR_TIME + 3600_000 });
        expect(late.reason).toBe('stale_timestamp');
        const otherProfile = await MessageSigner.verifyMessage(m.wire, {
          peer,
          profiles: [m.profile === 1 ? 2 : 1],
          now: VECTOR_TIME,
        });
        expect(otherProfile.reason).toBe('unsupported_version');
      });
    }
  });

  describe.each(vectors.handshakes.map((h) => [h.name, h] as const))('handshake: %s', (_name, h) => {
    const request = JSON.parse(h.request) as Record<string, unknown>;
    const profile = request.v === 2 ? 2 : 1;

    test('request signing input and digest', () => {
      if (profile === 2) {
        const { signature: _signature, ...unsigned } = request;
        expect(canonicalJson(unsigned)).toBe(h.request_signing_input);
        expect(sha3_256Hex(canonicalJson(parseLossless(h.request)))).toBe(h.request_digest);
      } else {
        expect(h.request_signing_input).toBe(`${request.client_did}:${request.nonce}:${request.timestamp}`);
      }
    });

    test('the server accepts the request', async () => {
      const store = new MemorySessionStore({ now: () => VECTOR_TIME });
      const server = identity('server', h.algorithm, backend);
      const result = await PQCHandshake.respond(h.request, server, { store, profiles: [1, 2], now: VECTOR_TIME });
      expect(result.session.peerDid).toBe(request.client_did);
      expect(result.session.profile).toBe(profile);
      expect(await store.getSession(result.session.sessionId)).toBeDefined();
      // The same request again is a replay; sent to another server identity, it names the wrong server.
      if (profile === 2) {
        const elsewhere = AgentIdentity.fromSeed(new Uint8Array(32).fill(99), { algorithm: h.algorithm, backend });
        await expect(PQCHandshake.respond(h.request, elsewhere, { store: new MemorySessionStore(), now: VECTOR_TIME })).rejects.toMatchObject({
          reason: 'peer_mismatch',
        });
      }
      await expect(PQCHandshake.respond(h.request, server, { store, profiles: [1, 2], now: VECTOR_TIME })).rejects.toMatchObject({
        reason: 'replay_detected',
      });
    });

    if (h.response !== undefined) {
      test('the client accepts the response', async () => {
        const client = identity('client', h.algorithm, backend);
        const server = identity('server', h.algorithm, backend);
        const response = JSON.parse(h.response!) as Record<string, unknown>;
        const { signature: _signature, ...unsigned } = response;
        expect(canonicalJson(unsigned)).toBe(h.response_signing_input);
        const pending: PendingHandshake = {
          profile: 2,
          clientDid: client.did,
          serverDid: request.server_did as string,
          nonce: request.nonce as string,
          timestamp: request.timestamp as string,
          requestDigest: h.request_digest!,
          request: h.request,
        };
        const session = await PQCHandshake.complete(h.response!, client, pending, { serverDid: server.did, now: VECTOR_TIME });
        expect(session.sessionId).toBe(response.session_id);
        expect(session.peerDid).toBe(server.did);
        expect(session.expiresAt).toBe(Date.parse(response.expires_at as string));
      });
    }
  });
});
