/**
 * The seed project's (Python `pqc-mcp-transport`) own test list, ported to this API: canonicalization, the
 * envelope, verification, stripping, nonces, the handshake and sessions.
 */
import { toHex, utf8 } from '../src/bytes.js';
import { SIGNATURE_BYTES } from '../src/crypto/algorithms.js';
import { sha3_256, sha3_256Hex } from '../src/crypto/hash.js';
import { HANDSHAKE_RESPONSE_CONTEXT } from '../src/protocol.js';
import {
  AuditLog,
  HandshakeError,
  MemorySessionStore,
  MessageSigner,
  PQCHandshake,
  PQCSession,
  canonicalJson,
  parseLossless,
  type AgentIdentity,
  type Profile,
} from '../src/index.js';
import { VECTOR_TIME, seededIdentity } from '@pqc-mcp/test-kit';
import { resolveFetchOptions } from '../src/client/options.js';
import { verifyServerMessage } from '../src/client/verify.js';

const NOW = VECTOR_TIME;
const SESSION = '0123456789abcdef0123456789abcdef';
const REPLY_TO = 'fedcba9876543210fedcba9876543210';
const HEX32 = /^[0-9a-f]{32}$/;
const PY_ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+00:00$/;

const client = seededIdentity(1, 'ML-DSA-65', 'client');
const server = seededIdentity(2, 'ML-DSA-65', 'server');
const stranger = seededIdentity(3, 'ML-DSA-65', 'stranger');

const request = { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'add', arguments: { a: 1, b: 2 } } };

/** A hex string with the character at `index` changed to another lowercase hex digit. */
function flipHex(hex: string, index: number): string {
  const c = hex[index]!;
  return hex.slice(0, index) + (c === '0' ? '1' : '0') + hex.slice(index + 1);
}

/** A shallow copy of `object` without `key`. */
function omit<T extends object>(object: T, key: string): Partial<T> {
  const copy = { ...object } as Record<string, unknown>;
  delete copy[key];
  return copy as Partial<T>;
}

describe('canonicalization', () => {
  test('is deterministic and independent of key order', () => {
    const a = MessageSigner.canonicalize({ b: 2, a: 1, c: { z: [3, { y: true, x: null }], m: 'é' } });
    const b = MessageSigner.canonicalize({ c: { m: 'é', z: [3, { x: null, y: true }] }, a: 1, b: 2 });
    expect(a).toBe(b);
    expect(a).toBe('{"a":1,"b":2,"c":{"m":"\\u00e9","z":[3,{"x":null,"y":true}]}}');
    // The same from text, whatever its spacing and order.
    expect(MessageSigner.canonicalize(' { "c" : {"z":[3,{"y":true,"x":null}],"m":"\\u00e9"}, "b":2, "a":1 } ')).toBe(a);
    expect(MessageSigner.canonicalize(utf8('{"b":2,"a":1,"c":{"m":"é","z":[3,{"x":null,"y":true}]}}'))).toBe(a);
  });

  test('MessageSigner.canonicalize strips the top-level _pqc only', () => {
    const withEnvelope = { ...request, _pqc: { v: 2, signature: 'ab' } };
    expect(MessageSigner.canonicalize(withEnvelope)).toBe(MessageSigner.canonicalize(request));
    expect(MessageSigner.canonicalize(withEnvelope)).not.toContain('_pqc');
    expect(MessageSigner.canonicalize('{"_pqc":{"v":2},"id":1}')).toBe('{"id":1}');
    // A nested `_pqc` belongs to the payload and stays.
    expect(MessageSigner.canonicalize({ id: 1, params: { _pqc: 1 } })).toBe('{"id":1,"params":{"_pqc":1}}');
  });
});

describe('signing', () => {
  const signer = new MessageSigner(client);

  test('adds a v2 envelope with exactly the v2 members', async () => {
    const signed = await signer.signMessage(request, { sessionId: SESSION, now: NOW });
    const env = signed.envelope;
    expect(Object.keys(env)).toEqual(['v', 'signer_did', 'algorithm', 'timestamp', 'nonce', 'session_id', 'signature']);
    expect(env.v).toBe(2);
    expect(env.signer_did).toBe(client.did);
    expect(env.algorithm).toBe('ML-DSA-65');
    expect(env.timestamp).toMatch(PY_ISO);
    expect(env.timestamp).toBe('2026-11-25T12:00:00.123000+00:00');
    expect(env.nonce).toMatch(HEX32);
    expect(signed.nonce).toBe(env.nonce);
    expect(env.session_id).toBe(SESSION);
    expect(env.signature).toMatch(/^[0-9a-f]+$/);
    expect(env.signature).toHaveLength(SIGNATURE_BYTES['ML-DSA-65'] * 2);
    expect(env).not.toHaveProperty('public_key');
    expect(env).not.toHaveProperty('in_reply_to');

    // The wire text carries the message and that envelope; the digest is over the message with the unsigned envelope.
    const wire = JSON.parse(signed.text) as Record<string, unknown>;
    expect(wire).toEqual({ ...request, _pqc: env });
    expect(signed.message).toEqual(wire);
    const unsigned = omit(env, 'signature');
    expect(signed.digest).toBe(sha3_256Hex(canonicalJson({ ...request, _pqc: unsigned })));
  });

  test('adds in_reply_to and public_key when asked', async () => {
    const signed = await new MessageSigner(server).signMessage(
      { jsonrpc: '2.0', id: 1, result: {} },
      { sessionId: SESSION, inReplyTo: REPLY_TO, includePublicKey: true, now: NOW },
    );
    expect(signed.envelope.in_reply_to).toBe(REPLY_TO);
    expect(signed.envelope.public_key).toBe(server.publicKeyHex);
    expect(Object.keys(signed.envelope)).toEqual([
      'v',
      'signer_did',
      'algorithm',
      'timestamp',
      'nonce',
      'session_id',
      'in_reply_to',
      'public_key',
      'signature',
    ]);
    const result = await MessageSigner.verifyMessage(signed.text, { peer: server, now: NOW });
    expect(result).toMatchObject({ valid: true, inReplyTo: REPLY_TO, sessionId: SESSION });
  });

  test('a v2 message needs a session id', async () => {
    await expect(signer.signMessage(request)).rejects.toThrow(TypeError);
    await expect(signer.signMessage(request, { sessionId: 'ABCDEF' })).rejects.toThrow(TypeError);
  });

  test('v1 (profile 1) adds public_key and session_id and no v, and signs only the message', async () => {
    const signed = await signer.signMessage(request, { profile: 1, sessionId: SESSION, now: NOW });
    const env = signed.envelope;
    expect(env).not.toHaveProperty('v');
    expect(Object.keys(env).sort()).toEqual(
      ['algorithm', 'nonce', 'public_key', 'session_id', 'signature', 'signer_did', 'timestamp'].sort(),
    );
    expect(env.public_key).toBe(client.publicKeyHex);
    expect(env.session_id).toBe(SESSION);
    expect(env.timestamp).toMatch(PY_ISO);
    expect(signed.digest).toBe(sha3_256Hex(canonicalJson(request)));

    const result = await MessageSigner.verifyMessage(signed.text, { peer: client, profiles: [1, 2], now: NOW });
    expect(result).toMatchObject({ valid: true, profile: 1, signerDid: client.did, sessionId: SESSION });
    // v1 is off by default.
    const off = await MessageSigner.verifyMessage(signed.text, { peer: client, now: NOW });
    expect(off.reason).toBe('unsupported_version');
    // §7: nothing of the v1 envelope is signed, the session id included (weaker by design).
    const moved = { ...signed.message, _pqc: { ...env, session_id: REPLY_TO } };
    expect((await MessageSigner.verifyMessage(moved, { peer: client, profiles: [1], now: NOW })).valid).toBe(true);
  });

  test('an existing _pqc is replaced, not signed over', async () => {
    const first = await signer.signMessage(request, { sessionId: SESSION, now: NOW });
    const second = await signer.signMessage(first.text, { sessionId: SESSION, now: NOW });
    expect(second.nonce).not.toBe(first.nonce);
    const result = await MessageSigner.verifyMessage(second.text, { peer: client, now: NOW });
    expect(result.valid).toBe(true);
    expect(result.nonce).toBe(second.nonce);
    expect(result.message).toEqual(request);
  });
});

describe('verification', () => {
  const signer = new MessageSigner(client);

  test('a valid message verifies, as text, bytes and object', async () => {
    const signed = await signer.signMessage(request, { sessionId: SESSION, now: NOW });
    for (const form of [signed.text, utf8(signed.text), signed.message]) {
      const result = await MessageSigner.verifyMessage(form, { peer: client.toPeer(), now: NOW });
      expect(result).toEqual({
        valid: true,
        reason: null,
        detail: null,
        profile: 2,
        signerDid: client.did,
        algorithm: 'ML-DSA-65',
        timestamp: '2026-11-25T12:00:00.123000+00:00',
        nonce: signed.nonce,
        sessionId: SESSION,
        inReplyTo: null,
        digest: signed.digest,
        message: request,
      });
    }
  });

  test('tampered params give invalid_signature', async () => {
    const signed = await signer.signMessage(request, { sessionId: SESSION, now: NOW });
    const tampered = { ...signed.message, params: { name: 'add', arguments: { a: 1, b: 3 } } };
    const result = await MessageSigner.verifyMessage(tampered, { peer: client, now: NOW });
    expect(result).toMatchObject({ valid: false, reason: 'invalid_signature', digest: null, message: null });
    // The same change made in the text.
    const text = signed.text.replace('"b":2', '"b":3');
    expect(text).not.toBe(signed.text);
    expect((await MessageSigner.verifyMessage(text, { peer: client, now: NOW })).reason).toBe('invalid_signature');
  });

  test('a wrong key (another identity as the peer) gives peer_mismatch', async () => {
    const signed = await signer.signMessage(request, { sessionId: SESSION, now: NOW });
    const result = await MessageSigner.verifyMessage(signed.text, { peer: stranger, now: NOW });
    expect(result).toMatchObject({ valid: false, reason: 'peer_mismatch', signerDid: client.did });
  });

  test('no envelope gives missing_envelope', async () => {
    expect((await MessageSigner.verifyMessage(request, { peer: client, now: NOW })).reason).toBe('missing_envelope');
    expect((await MessageSigner.verifyMessage(JSON.stringify(request), { peer: client })).reason).toBe('missing_envelope');
    expect((await MessageSigner.verifyMessage('[1,2]', { peer: client })).reason).toBe('missing_envelope');
  });

  test('malformed text gives malformed_json', async () => {
    for (const text of ['{"jsonrpc":"2.0",', '{"a":1,}', '{"a":NaN}', '{"a":1,"a":2}', '\ufeff{}', '{"a":1e400}']) {
      const result = await MessageSigner.verifyMessage(text, { peer: client });
      expect({ text, reason: result.reason, valid: result.valid }).toEqual({ text, reason: 'malformed_json', valid: false });
    }
  });
});

describe('stripPqc', () => {
  const signer = new MessageSigner(client);

  test('on an object: a copy without _pqc, the original untouched', async () => {
    const signed = await signer.signMessage(request, { sessionId: SESSION, now: NOW });
    const message = signed.message;
    const stripped = MessageSigner.stripPqc(message);
    expect(stripped).toEqual(request);
    expect(stripped).not.toBe(message);
    expect(message).toHaveProperty('_pqc');
  });

  test('on text: text without _pqc, number lexemes kept', () => {
    const text = '{"jsonrpc":"2.0","id":1,"result":{"x":7.0},"_pqc":{"v":2}}';
    expect(MessageSigner.stripPqc(text)).toBe('{"jsonrpc":"2.0","id":1,"result":{"x":7.0}}');
  });

  test('on a batch: each element, as array and as text', async () => {
    const a = await signer.signMessage({ jsonrpc: '2.0', id: 1, method: 'a' }, { sessionId: SESSION, now: NOW });
    const b = await signer.signMessage({ jsonrpc: '2.0', method: 'b' }, { sessionId: SESSION, now: NOW });
    expect(MessageSigner.stripPqc([a.message, b.message])).toEqual([
      { jsonrpc: '2.0', id: 1, method: 'a' },
      { jsonrpc: '2.0', method: 'b' },
    ]);
    expect(MessageSigner.stripPqc(`[${a.text},${b.text}]`)).toBe('[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"b"}]');
  });
});

test('nonces are unique over 1000 signatures', async () => {
  // ML-DSA-44: the fastest parameter set (pure JS on Node 20 signs at ~10 ms).
  const signer = new MessageSigner(seededIdentity(4, 'ML-DSA-44'));
  const nonces = new Set<string>();
  for (let i = 0; i < 1000; i++) {
    const signed = await signer.signMessage({ jsonrpc: '2.0', id: i, method: 'ping' }, { sessionId: SESSION, now: NOW });
    expect(signed.nonce).toMatch(HEX32);
    nonces.add(signed.nonce);
  }
  expect(nonces.size).toBe(1000);
}, 120_000);

describe('handshake', () => {
  async function handshake(profile: Profile) {
    const store = new MemorySessionStore({ now: () => NOW });
    const { request: requestText, pending } = await PQCHandshake.initiate(client, { profile, serverDid: server.did, now: NOW });
    const responded = await PQCHandshake.respond(requestText, server, { store, profiles: [1, 2], now: NOW });
    return { store, requestText, pending, ...responded };
  }

  test('v2: initiate, respond and complete give both sides the same session', async () => {
    const { store, requestText, pending, response, session, client: seenClient } = await handshake(2);
    const req = JSON.parse(requestText) as Record<string, unknown>;
    expect(Object.keys(req)).toEqual([
      'type',
      'v',
      'client_did',
      'client_public_key',
      'algorithm',
      'server_did',
      'timestamp',
      'nonce',
      'signature',
    ]);
    expect(req).toMatchObject({
      type: 'pqc_handshake_request',
      v: 2,
      client_did: client.did,
      client_public_key: client.publicKeyHex,
      algorithm: 'ML-DSA-65',
      timestamp: '2026-11-25T12:00:00.123000+00:00',
      nonce: pending.nonce,
    });
    expect(pending).toMatchObject({ profile: 2, clientDid: client.did, request: requestText });
    expect(pending.requestDigest).toBe(sha3_256Hex(canonicalJson(req)));

    const res = JSON.parse(response) as Record<string, unknown>;
    expect(res).toMatchObject({
      type: 'pqc_handshake_response',
      v: 2,
      server_did: server.did,
      server_public_key: server.publicKeyHex,
      algorithm: 'ML-DSA-65',
      client_nonce: pending.nonce,
      session_id: session.sessionId,
      expires_at: '2026-11-25T13:00:00.123000+00:00',
      request_digest: pending.requestDigest,
    });
    expect(res.server_nonce).toMatch(HEX32);
    expect(session).toEqual({
      sessionId: expect.stringMatching(HEX32),
      profile: 2,
      peerDid: client.did,
      peerAlgorithm: 'ML-DSA-65',
      peerPublicKey: client.publicKeyHex,
      localDid: server.did,
      createdAt: NOW,
      expiresAt: NOW + 3600_000,
    });
    expect(seenClient.did).toBe(client.did);
    expect(await store.getSession(session.sessionId)).toEqual(session);

    const clientSession = await PQCHandshake.complete(response, client, pending, { serverDid: server.did, now: NOW });
    expect(clientSession).toBeInstanceOf(PQCSession);
    expect(clientSession.toRecord()).toEqual({
      sessionId: session.sessionId,
      profile: 2,
      peerDid: server.did,
      peerAlgorithm: 'ML-DSA-65',
      peerPublicKey: server.publicKeyHex,
      localDid: client.did,
      createdAt: NOW,
      expiresAt: NOW + 3600_000,
    });
  });

  test('v1: the seed handshake round trip', async () => {
    const { requestText, pending, response, session } = await handshake(1);
    const req = JSON.parse(requestText) as Record<string, unknown>;
    expect(req).not.toHaveProperty('v');
    expect(req.type).toBe('pqc_handshake_request');
    const res = JSON.parse(response) as Record<string, unknown>;
    expect(res).not.toHaveProperty('v');
    expect(res).not.toHaveProperty('expires_at');
    expect(res).not.toHaveProperty('request_digest');
    expect(session.profile).toBe(1);
    const clientSession = await PQCHandshake.complete(response, client, pending, { now: NOW });
    expect(clientSession).toMatchObject({ sessionId: session.sessionId, profile: 1, peerDid: server.did });
    expect(clientSession.expiresAt).toBe(NOW + 3600_000);
    // A v1 request is refused by a server that did not enable v1.
    const again = await PQCHandshake.initiate(client, { profile: 1, now: NOW });
    await expect(
      PQCHandshake.respond(again.request, server, { store: new MemorySessionStore({ now: () => NOW }), now: NOW }),
    ).rejects.toMatchObject({ reason: 'unsupported_version' });
  });

  test.each([2, 1] as const)('v%s: a bad client signature is invalid_signature', async (profile) => {
    const { request: requestText } = await PQCHandshake.initiate(client, { profile, serverDid: server.did, now: NOW });
    const req = JSON.parse(requestText) as Record<string, string>;
    const forged = JSON.stringify({ ...req, signature: flipHex(req.signature!, 10) });
    const store = new MemorySessionStore({ now: () => NOW });
    const err = await PQCHandshake.respond(forged, server, { store, profiles: [1, 2], now: NOW }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HandshakeError);
    expect(err).toMatchObject({ reason: 'invalid_signature', httpStatus: 401 });
    expect(store.size).toBe(0);
  });

  test.each([2, 1] as const)('v%s: a bad server signature is invalid_signature in complete', async (profile) => {
    const { pending, response } = await handshake(profile);
    const res = JSON.parse(response) as Record<string, string>;
    const forged = JSON.stringify({ ...res, signature: flipHex(res.signature!, 10) });
    await expect(PQCHandshake.complete(forged, client, pending, { now: NOW })).rejects.toMatchObject({
      name: 'HandshakeError',
      reason: 'invalid_signature',
    });
  });

  /** A v2 response body signed correctly by `signer`, so that only the field under test is wrong. */
  async function signedResponse(signer: AgentIdentity, body: Record<string, unknown>): Promise<string> {
    const signature = await signer.sign(sha3_256(utf8(canonicalJson(body))), HANDSHAKE_RESPONSE_CONTEXT);
    return JSON.stringify({ ...body, signature: toHex(signature) });
  }

  test('a wrong echoed nonce is handshake_failed (correctly signed by the server)', async () => {
    const { pending, response } = await handshake(2);
    const body = omit(JSON.parse(response) as Record<string, unknown>, 'signature');
    // Control: the same body re-signed unchanged is accepted, so the signing here is right.
    const control = await signedResponse(server, body);
    await expect(PQCHandshake.complete(control, client, pending, { now: NOW })).resolves.toBeInstanceOf(PQCSession);
    const wrongEcho = await signedResponse(server, { ...body, client_nonce: flipHex(pending.nonce, 0) });
    await expect(PQCHandshake.complete(wrongEcho, client, pending, { now: NOW })).rejects.toMatchObject({
      reason: 'handshake_failed',
      message: expect.stringContaining('client_nonce'),
    });
  });

  test('a wrong request_digest is handshake_failed (correctly signed by the server)', async () => {
    const { pending, response } = await handshake(2);
    const body = omit(JSON.parse(response) as Record<string, unknown>, 'signature');
    const wrongDigest = await signedResponse(server, { ...body, request_digest: sha3_256Hex('another request') });
    await expect(PQCHandshake.complete(wrongDigest, client, pending, { now: NOW })).rejects.toMatchObject({
      reason: 'handshake_failed',
      message: expect.stringContaining('request_digest'),
    });
  });
});

describe('session', () => {
  const record = {
    sessionId: SESSION,
    profile: 2 as const,
    peerDid: server.did,
    peerAlgorithm: 'ML-DSA-65' as const,
    peerPublicKey: server.publicKeyHex,
    localDid: client.did,
    createdAt: NOW,
    expiresAt: NOW + 3600_000,
  };

  test('is valid before expiresAt and not from expiresAt on', () => {
    const session = new PQCSession(record);
    expect(session.isValid(NOW)).toBe(true);
    expect(session.isValid(new Date(NOW + 3599_999))).toBe(true);
    expect(session.isValid(NOW + 3600_000)).toBe(false);
    expect(session.isValid(() => NOW + 7200_000)).toBe(false);
    expect(session.peer.did).toBe(server.did);
    expect(session.toRecord()).toEqual(record);
  });

  test('expires: a session past its expiry refuses messages with session_expired', async () => {
    const session = new PQCSession(record);
    const signer = new MessageSigner(server);
    const live = await signer.signMessage({ jsonrpc: '2.0', id: 1, result: {} }, { sessionId: SESSION, now: NOW });
    const options = (now: number) => resolveFetchOptions({ identity: client, serverDid: server.did, now: () => now });
    await expect(verifyServerMessage(parseLossless(live.text), session, options(NOW), null)).resolves.toBeDefined();
    const late = NOW + 3600_000 + 1;
    const signed = await signer.signMessage({ jsonrpc: '2.0', id: 2, result: {} }, { sessionId: SESSION, now: late });
    await expect(verifyServerMessage(parseLossless(signed.text), session, options(late), null)).rejects.toMatchObject({ reason: 'session_expired' });
  });

  test('replay: the same nonce twice is refused, distinct nonces are accepted', () => {
    const session = new PQCSession(record);
    expect(session.checkNonce('aa'.repeat(16), NOW, NOW)).toBe(true);
    expect(session.checkNonce('aa'.repeat(16), NOW, NOW)).toBe(false);
    expect(session.checkNonce('aa'.repeat(16), NOW, NOW + 1000)).toBe(false);
    for (let i = 0; i < 50; i++) expect(session.checkNonce(i.toString(16).padStart(32, '0'), NOW, NOW)).toBe(true);
    expect(session.nonceCount).toBe(51);
  });

  test('audit entries carry the §8 fields', () => {
    const audit = new AuditLog();
    const session = new PQCSession(record, { audit });
    const entry = session.logOperation({
      operation: 'request',
      method: 'tools/call',
      signer_did: client.did,
      algorithm: 'ML-DSA-65',
      signature_truncated: 'ab'.repeat(40),
      digest: 'cd'.repeat(32),
      verified: true,
      details: { id: 1 },
    });
    session.logOperation({ operation: 'rejected', verified: false, reason: 'replay_detected' });
    const log = session.getAuditLog();
    expect(log).toHaveLength(2);
    expect(log[0]).toBe(entry);
    expect(Object.keys(entry).sort()).toEqual(
      [
        'timestamp',
        'session_id',
        'operation',
        'method',
        'signer_did',
        'peer_did',
        'algorithm',
        'signature_truncated',
        'digest',
        'verified',
        'reason',
        'details',
      ].sort(),
    );
    expect(entry).toMatchObject({
      session_id: SESSION,
      operation: 'request',
      method: 'tools/call',
      signer_did: client.did,
      peer_did: server.did,
      algorithm: 'ML-DSA-65',
      signature_truncated: 'ab'.repeat(16),
      digest: 'cd'.repeat(32),
      verified: true,
      reason: null,
      details: { id: 1 },
    });
    expect(Number.isNaN(Date.parse(entry.timestamp))).toBe(false);
    expect(log[1]).toMatchObject({
      session_id: SESSION,
      peer_did: server.did,
      operation: 'rejected',
      verified: false,
      reason: 'replay_detected',
      method: null,
      signature_truncated: null,
    });
    expect(audit.entries()).toEqual(log);
  });

  test('complete logs the handshake in the client session', async () => {
    const store = new MemorySessionStore({ now: () => NOW });
    const { request: requestText, pending } = await PQCHandshake.initiate(client, { serverDid: server.did, now: NOW });
    const { response } = await PQCHandshake.respond(requestText, server, { store, now: NOW });
    const session = await PQCHandshake.complete(response, client, pending, { now: NOW });
    const res = JSON.parse(response) as Record<string, string>;
    const { signature, ...unsigned } = res;
    expect(session.getAuditLog()).toEqual([
      expect.objectContaining({
        operation: 'handshake',
        session_id: res.session_id,
        signer_did: server.did,
        peer_did: server.did,
        algorithm: 'ML-DSA-65',
        signature_truncated: signature!.slice(0, 32),
        digest: sha3_256Hex(canonicalJson(unsigned)),
        verified: true,
        details: { profile: 2 },
      }),
    ]);
  });
});
