/**
 * The attacks the seed (`pqc-mcp-transport`) fell to, each now rejected with the exact reason of docs/PROTOCOL.md §6.
 * Every test runs after a real handshake: the server verifies with a `MemorySessionStore` and `verifyWithStore`,
 * the client with its `PQCSession` and `verifyWithSession`.
 */
import {
  EMPTY_CONTEXT,
  HANDSHAKE_REQUEST_CONTEXT,
  HandshakeError,
  MESSAGE_CONTEXT,
  MemorySessionStore,
  MessageSigner,
  PQCHandshake,
  PQCSession,
  PQCTransportError,
  PeerKeyCache,
  REASON_HTTP_STATUS,
  canonicalJson,
  errorForReason,
  formatTimestamp,
  isPQCReason,
  messageId,
  parseLossless,
  sha3_256,
  toHex,
  utf8,
  verifyWithSession,
  verifyWithStore,
  type AgentIdentity,
  type Authorizer,
  type MessageVerdict,
  type PQCReason,
  type PendingHandshake,
  type Profile,
  type SessionRecord,
} from '../src/index.js';
import { VECTOR_TIME, readProtocolDoc, seededIdentity } from '@pqc-mcp/test-kit';

const T0 = VECTOR_TIME;
const MINUTE = 60_000;

const client = seededIdentity(11, 'ML-DSA-65', 'client');
const server = seededIdentity(12, 'ML-DSA-65', 'server');
/** Another client, with its own sessions on the same server. */
const other = seededIdentity(13, 'ML-DSA-65', 'other');
/** The attacker: a valid identity of its own, but not the one it claims to be. */
const mallory = seededIdentity(14, 'ML-DSA-65', 'mallory');

const call = { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'transfer', arguments: { amount: 10 } } };
const answer = { jsonrpc: '2.0', id: 7, result: { content: [{ type: 'text', text: 'done' }] } };

/** A server, its store and clock, and one client session opened by a real handshake. */
interface World {
  clock: { t: number };
  now: () => number;
  store: MemorySessionStore;
  /** The session as the server's store holds it. */
  serverSession: SessionRecord;
  /** The same session as the client holds it. */
  clientSession: PQCSession;
  pending: PendingHandshake;
  request: string;
  response: string;
}

async function handshakeIn(
  w: Pick<World, 'clock' | 'now' | 'store'>,
  who: AgentIdentity,
  profile: Profile = 2,
): Promise<Omit<World, 'clock' | 'now' | 'store'>> {
  const { request, pending } = await PQCHandshake.initiate(who, { profile, now: w.now });
  const { response, session } = await PQCHandshake.respond(request, server, {
    store: w.store,
    profiles: [1, 2],
    now: w.now,
  });
  const clientSession = await PQCHandshake.complete(response, who, pending, { serverDid: server.did, now: w.now });
  return { serverSession: session, clientSession, pending, request, response };
}

async function world(profile: Profile = 2): Promise<World> {
  const clock = { t: T0 };
  const now = () => clock.t;
  const store = new MemorySessionStore({ now });
  return { clock, now, store, ...(await handshakeIn({ clock, now, store }, client, profile)) };
}

/** What a verdict says, without the parsed message (keeps failure output short). */
interface Outcome {
  ok: boolean;
  reason: PQCReason | null;
  id: string | number | null;
  digest?: string;
}

function outcome(verdict: MessageVerdict): Outcome {
  return verdict.ok
    ? { ok: true, reason: null, id: messageId(verdict.parsed.message), digest: verdict.digest }
    : { ok: false, reason: verdict.reason, id: verdict.id };
}

/** Server-side verification of a wire text, both profiles enabled unless said otherwise. */
async function serverVerify(w: World, text: string, profiles: readonly Profile[] = [1, 2]): Promise<Outcome> {
  return outcome(await verifyWithStore(parseLossless(text), { store: w.store, now: w.now, profiles }));
}

async function clientVerify(w: World, text: string, inReplyTo?: string | null): Promise<Outcome> {
  const options = inReplyTo === undefined ? { now: w.now } : { now: w.now, inReplyTo };
  return outcome(await verifyWithSession(parseLossless(text), w.clientSession, options));
}

/** The client's call, signed in its session. */
async function clientCall(w: World, options: { now?: number; sessionId?: string } = {}) {
  return new MessageSigner(client).signMessage(call, {
    sessionId: options.sessionId ?? w.clientSession.sessionId,
    now: options.now ?? w.clock.t,
  });
}

/** The wire text of `text` with envelope members replaced (the signature left as it was). */
function withEnvelope(text: string, changes: Record<string, unknown>): string {
  const message = JSON.parse(text) as Record<string, unknown>;
  return JSON.stringify({ ...message, _pqc: { ...(message._pqc as object), ...changes } });
}

/**
 * A v2 message signed correctly by `signer` over whatever envelope the attacker chose (claiming any DID): the
 * signature is genuine, only the signer is not who the envelope says.
 */
async function forge(signer: AgentIdentity, body: object, envelope: Record<string, unknown>): Promise<string> {
  const digest = sha3_256(utf8(canonicalJson({ ...body, _pqc: envelope })));
  const signature = toHex(await signer.sign(digest, MESSAGE_CONTEXT));
  return JSON.stringify({ ...body, _pqc: { ...envelope, signature } });
}

function envelopeOf(claimed: AgentIdentity, sessionId: string, at: number, extra: Record<string, unknown> = {}) {
  return {
    v: 2,
    signer_did: claimed.did,
    algorithm: claimed.algorithm,
    timestamp: formatTimestamp(at),
    nonce: 'ab'.repeat(16),
    session_id: sessionId,
    ...extra,
  };
}

/** A shallow copy of `object` without `key`. */
function omit<T extends object>(object: T, key: string): Partial<T> {
  const copy = { ...object } as Record<string, unknown>;
  delete copy[key];
  return copy as Partial<T>;
}

/** A rejection: the reason, and that it is a refusal (`ok: false`) with the JSON-RPC id read from the message. */
function rejectedWith(reason: PQCReason, id: string | number | null = 7): Outcome {
  return { ok: false, reason, id };
}

describe('a message signed by another key claiming the peer’s DID', () => {
  test('to the server, without public_key: invalid_signature', async () => {
    const w = await world();
    // Control: the real client's message is accepted.
    expect(await serverVerify(w, (await clientCall(w)).text)).toMatchObject({ ok: true });
    const forged = await forge(mallory, call, envelopeOf(client, w.serverSession.sessionId, T0));
    expect(await serverVerify(w, forged)).toEqual(rejectedWith('invalid_signature'));
  });

  test('to the server, with the attacker’s public_key: peer_mismatch', async () => {
    const w = await world();
    const env = envelopeOf(client, w.serverSession.sessionId, T0, { public_key: mallory.publicKeyHex });
    const forged = await forge(mallory, call, env);
    expect(await serverVerify(w, forged)).toEqual(rejectedWith('peer_mismatch'));
  });

  test('to the client, as the server: invalid_signature without public_key, peer_mismatch with it', async () => {
    const w = await world();
    const sid = w.clientSession.sessionId;
    const bare = await forge(mallory, answer, envelopeOf(server, sid, T0, { in_reply_to: 'cd'.repeat(16) }));
    expect(await clientVerify(w, bare)).toEqual(rejectedWith('invalid_signature'));
    const withKey = await forge(mallory, answer, envelopeOf(server, sid, T0, { public_key: mallory.publicKeyHex }));
    expect(await clientVerify(w, withKey)).toEqual(rejectedWith('peer_mismatch'));
  });

  test('the seed’s hole: trusting the envelope’s own key is refused (did_mismatch), a pinned peer refuses it too', async () => {
    const env = envelopeOf(client, 'ef'.repeat(16), T0, { public_key: mallory.publicKeyHex });
    const forged = await forge(mallory, call, env);
    expect(await MessageSigner.verifyMessage(forged, { now: T0 })).toMatchObject({ valid: false, reason: 'did_mismatch' });
    expect(await MessageSigner.verifyMessage(forged, { peer: client, now: T0 })).toMatchObject({
      valid: false,
      reason: 'peer_mismatch',
    });
  });

  test('in a v1 (seed profile) session: the signer stays bound to the session key', async () => {
    const w = await world(1);
    const sid = w.serverSession.sessionId;
    // Control: the client's v1 message is accepted in its v1 session.
    const good = await new MessageSigner(client).signMessage(call, { profile: 1, sessionId: sid, now: T0 });
    expect(await serverVerify(w, good.text)).toMatchObject({ ok: true });
    // Mallory signs a v1 message with her key, claiming the client's DID.
    const own = await new MessageSigner(mallory).signMessage(call, { profile: 1, sessionId: sid, now: T0 });
    const claimed = withEnvelope(own.text, { signer_did: client.did });
    expect(await serverVerify(w, claimed)).toEqual(rejectedWith('peer_mismatch'));
    // ... and with the client's key in the envelope, her signature does not verify.
    const keySwapped = withEnvelope(own.text, { signer_did: client.did, public_key: client.publicKeyHex });
    expect(await serverVerify(w, keySwapped)).toEqual(rejectedWith('invalid_signature'));
  });
});

describe('a changed envelope member on a signed message', () => {
  test('nonce: invalid_signature', async () => {
    const w = await world();
    const signed = await clientCall(w);
    const text = withEnvelope(signed.text, { nonce: 'ee'.repeat(16) });
    expect(await serverVerify(w, text)).toEqual(rejectedWith('invalid_signature'));
    // The original is still good: a failed verification records nothing.
    expect(await serverVerify(w, signed.text)).toMatchObject({ ok: true });
  });

  test('timestamp (still fresh): invalid_signature', async () => {
    const w = await world();
    const signed = await clientCall(w);
    const text = withEnvelope(signed.text, { timestamp: formatTimestamp(T0 + 1000) });
    expect(await serverVerify(w, text)).toEqual(rejectedWith('invalid_signature'));
    const zulu = withEnvelope(signed.text, { timestamp: '2026-11-25T12:00:00.123Z' });
    expect(await serverVerify(w, zulu)).toEqual(rejectedWith('invalid_signature'));
  });

  test('in_reply_to (swapping responses): invalid_signature at the client', async () => {
    const w = await world();
    const signed = await new MessageSigner(server).signMessage(answer, {
      sessionId: w.clientSession.sessionId,
      inReplyTo: '11'.repeat(16),
      now: T0,
    });
    const swapped = withEnvelope(signed.text, { in_reply_to: '22'.repeat(16) });
    expect(await clientVerify(w, swapped, '22'.repeat(16))).toEqual(rejectedWith('invalid_signature'));
  });

  test('session id to another live session of the same peer: invalid_signature', async () => {
    const w = await world();
    const second = await handshakeIn(w, client);
    expect(second.serverSession.sessionId).not.toBe(w.serverSession.sessionId);
    const signed = await clientCall(w);
    const moved = withEnvelope(signed.text, { session_id: second.serverSession.sessionId });
    expect(await serverVerify(w, moved)).toEqual(rejectedWith('invalid_signature'));
  });

  test('session id to a live session of a different peer: peer_mismatch', async () => {
    const w = await world();
    const others = await handshakeIn(w, other);
    const signed = await clientCall(w);
    const moved = withEnvelope(signed.text, { session_id: others.serverSession.sessionId });
    expect(await serverVerify(w, moved)).toEqual(rejectedWith('peer_mismatch'));
  });

  test('session id to an unknown id: unknown_session', async () => {
    const w = await world();
    const signed = await clientCall(w);
    const moved = withEnvelope(signed.text, { session_id: '99'.repeat(16) });
    expect(await serverVerify(w, moved)).toEqual(rejectedWith('unknown_session'));
    // At the client, a message naming another session is refused the same way.
    const reply = await new MessageSigner(server).signMessage(answer, { sessionId: '99'.repeat(16), now: T0 });
    expect(await clientVerify(w, reply.text)).toEqual(rejectedWith('unknown_session'));
  });
});

describe('freshness', () => {
  test('a timestamp 10 minutes in the past: stale_timestamp', async () => {
    const w = await world();
    const old = await clientCall(w, { now: T0 - 10 * MINUTE });
    expect(await serverVerify(w, old.text)).toEqual(rejectedWith('stale_timestamp'));
    const oldReply = await new MessageSigner(server).signMessage(answer, {
      sessionId: w.clientSession.sessionId,
      now: T0 - 10 * MINUTE,
    });
    expect(await clientVerify(w, oldReply.text)).toEqual(rejectedWith('stale_timestamp'));
  });

  test('a timestamp in the future beyond the skew: stale_timestamp; at the skew: accepted', async () => {
    const w = await world();
    expect(await serverVerify(w, (await clientCall(w, { now: T0 + 300_001 })).text)).toEqual(rejectedWith('stale_timestamp'));
    expect(await serverVerify(w, (await clientCall(w, { now: T0 + 300_000 })).text)).toMatchObject({ ok: true });
    expect(await serverVerify(w, (await clientCall(w, { now: T0 - 300_000 })).text)).toMatchObject({ ok: true });
    expect(await serverVerify(w, (await clientCall(w, { now: T0 - 300_001 })).text)).toEqual(rejectedWith('stale_timestamp'));
  });

  test('a smaller configured skew is honoured', async () => {
    const w = await world();
    const signed = await clientCall(w, { now: T0 - 31_000 });
    const verdict = await verifyWithStore(parseLossless(signed.text), { store: w.store, now: w.now, clockSkewSec: 30 });
    expect(outcome(verdict)).toEqual(rejectedWith('stale_timestamp'));
  });
});

describe('handshake attacks', () => {
  async function signedRequest(signer: AgentIdentity, fields: Record<string, unknown>): Promise<string> {
    const signature = await signer.sign(sha3_256(utf8(canonicalJson(fields))), HANDSHAKE_REQUEST_CONTEXT);
    return JSON.stringify({ ...fields, signature: toHex(signature) });
  }

  test('a client_did that is not the DID of its key: did_mismatch (v2 and v1)', async () => {
    const store = new MemorySessionStore({ now: () => T0 });
    const fields = {
      type: 'pqc_handshake_request',
      v: 2,
      client_did: client.did,
      client_public_key: mallory.publicKeyHex,
      algorithm: 'ML-DSA-65',
      timestamp: formatTimestamp(T0),
      nonce: '42'.repeat(16),
    };
    const v2 = await signedRequest(mallory, fields);
    await expect(PQCHandshake.respond(v2, server, { store, now: T0 })).rejects.toMatchObject({
      name: 'HandshakeError',
      reason: 'did_mismatch',
      httpStatus: 401,
    });
    // The seed's format: the client signs "{client_did}:{nonce}:{timestamp}" with the empty context.
    const v1Fields = omit(fields, 'v');
    const v1Sig = await mallory.sign(sha3_256(utf8(`${client.did}:${fields.nonce}:${fields.timestamp}`)), EMPTY_CONTEXT);
    const v1 = JSON.stringify({ ...v1Fields, signature: toHex(v1Sig) });
    await expect(PQCHandshake.respond(v1, server, { store, profiles: [1, 2], now: T0 })).rejects.toMatchObject({
      reason: 'did_mismatch',
    });
    expect(store.size).toBe(0);
  });

  test('a replayed handshake request: replay_detected; later, stale_timestamp', async () => {
    const w = await world();
    await expect(PQCHandshake.respond(w.request, server, { store: w.store, now: w.now })).rejects.toMatchObject({
      name: 'HandshakeError',
      reason: 'replay_detected',
    });
    expect(w.store.size).toBe(1);
    w.clock.t = T0 + 10 * MINUTE;
    await expect(PQCHandshake.respond(w.request, server, { store: w.store, now: w.now })).rejects.toMatchObject({
      reason: 'stale_timestamp',
    });
  });

  test('a server response reflected as a request: handshake_failed', async () => {
    const w = await world();
    await expect(PQCHandshake.respond(w.response, server, { store: w.store, now: w.now })).rejects.toMatchObject({
      name: 'HandshakeError',
      reason: 'handshake_failed',
    });
    // The other way: a client request presented to the client as the server's response.
    await expect(PQCHandshake.complete(w.request, client, w.pending, { now: w.now })).rejects.toMatchObject({
      reason: 'handshake_failed',
    });
  });

  test('a response’s signature cannot be reused as a request signature (distinct contexts)', async () => {
    const w = await world();
    const res = JSON.parse(w.response) as Record<string, string>;
    const asRequest = JSON.stringify({
      type: 'pqc_handshake_request',
      v: 2,
      client_did: server.did,
      client_public_key: server.publicKeyHex,
      algorithm: 'ML-DSA-65',
      timestamp: formatTimestamp(T0),
      nonce: res.server_nonce,
      signature: res.signature,
    });
    await expect(PQCHandshake.respond(asRequest, server, { store: w.store, now: w.now })).rejects.toMatchObject({
      reason: 'invalid_signature',
    });
  });

  describe('a server that is not the pinned one', () => {
    async function impostorResponse() {
      const store = new MemorySessionStore({ now: () => T0 });
      const { request, pending } = await PQCHandshake.initiate(client, { now: T0 });
      // Mallory runs a perfectly valid server with her own key.
      const { response } = await PQCHandshake.respond(request, mallory, { store, now: T0 });
      return { response, pending };
    }

    test('pinned by DID: peer_mismatch', async () => {
      const { response, pending } = await impostorResponse();
      // Unpinned, the impostor's handshake is valid: the pin is what refuses it.
      await expect(PQCHandshake.complete(response, client, pending, { now: T0 })).resolves.toMatchObject({
        peerDid: mallory.did,
      });
      await expect(PQCHandshake.complete(response, client, pending, { serverDid: server.did, now: T0 })).rejects.toMatchObject({
        name: 'HandshakeError',
        reason: 'peer_mismatch',
        httpStatus: 401,
      });
    });

    test('pinned by public key (hex or bytes): peer_mismatch', async () => {
      const { response, pending } = await impostorResponse();
      for (const serverPublicKey of [server.publicKeyHex, server.publicKey]) {
        await expect(PQCHandshake.complete(response, client, pending, { serverPublicKey, now: T0 })).rejects.toMatchObject({
          reason: 'peer_mismatch',
        });
      }
    });

    test('the right pins are accepted', async () => {
      const w = await world();
      const session = await PQCHandshake.complete(w.response, client, w.pending, {
        serverDid: server.did,
        serverPublicKey: server.publicKey,
        now: T0,
      });
      expect(session.peerDid).toBe(server.did);
    });
  });
});

describe('sessions', () => {
  test('a replayed message: replay_detected at the server', async () => {
    const w = await world();
    const signed = await clientCall(w);
    expect(await serverVerify(w, signed.text)).toMatchObject({ ok: true, digest: signed.digest });
    w.clock.t += 5000;
    expect(await serverVerify(w, signed.text)).toEqual(rejectedWith('replay_detected'));
  });

  test('a replayed message: replay_detected at the client', async () => {
    const w = await world();
    const reply = await new MessageSigner(server).signMessage(answer, { sessionId: w.clientSession.sessionId, now: T0 });
    expect(await clientVerify(w, reply.text)).toMatchObject({ ok: true });
    expect(await clientVerify(w, reply.text)).toEqual(rejectedWith('replay_detected'));
  });

  test('a replayed v1 message (nonce swapped, same digest): replay_detected', async () => {
    const w = await world(1);
    const signed = await new MessageSigner(client).signMessage(call, { profile: 1, sessionId: w.serverSession.sessionId, now: T0 });
    expect(await serverVerify(w, signed.text)).toMatchObject({ ok: true });
    // v1 signs no envelope member, so a fresh nonce would pass the signature: replay is keyed on the digest.
    const renonced = withEnvelope(signed.text, { nonce: '77'.repeat(16) });
    expect(await serverVerify(w, renonced)).toEqual(rejectedWith('replay_detected'));
  });

  test('the server’s own message reflected back to it: peer_mismatch', async () => {
    const w = await world();
    const reply = await new MessageSigner(server).signMessage(answer, { sessionId: w.serverSession.sessionId, now: T0 });
    expect(await serverVerify(w, reply.text)).toEqual(rejectedWith('peer_mismatch'));
  });

  test('an expired session: session_expired, then unknown_session once the store forgot it', async () => {
    const w = await world();
    w.clock.t = w.serverSession.expiresAt + MINUTE;
    const late = await clientCall(w);
    expect(await serverVerify(w, late.text)).toEqual(rejectedWith('session_expired'));
    expect(await clientVerify(w, (await new MessageSigner(server).signMessage(answer, { sessionId: w.clientSession.sessionId, now: w.clock.t })).text)).toEqual(
      rejectedWith('session_expired'),
    );
    w.clock.t = w.serverSession.expiresAt + 11 * MINUTE; // past the store's 10-minute grace
    const later = await clientCall(w);
    expect(await serverVerify(w, later.text)).toEqual(rejectedWith('unknown_session'));
  });

  test('an unknown session: unknown_session', async () => {
    const w = await world();
    const signed = await clientCall(w, { sessionId: '5a'.repeat(16) });
    expect(await serverVerify(w, signed.text)).toEqual(rejectedWith('unknown_session'));
  });

  test('a v1 message in a v2 session (v1 enabled): unsupported_version', async () => {
    const w = await world(2);
    const v1 = await new MessageSigner(client).signMessage(call, { profile: 1, sessionId: w.serverSession.sessionId, now: T0 });
    expect(await serverVerify(w, v1.text, [1, 2])).toEqual(rejectedWith('unsupported_version'));
    // ... and the client refuses a v1 message in its v2 session.
    const v1Reply = await new MessageSigner(server).signMessage(answer, { profile: 1, sessionId: w.clientSession.sessionId, now: T0 });
    expect(await clientVerify(w, v1Reply.text)).toEqual(rejectedWith('unsupported_version'));
  });

  test('a v2 message in a v1 session: unsupported_version', async () => {
    const w = await world(1);
    const v2 = await clientCall(w, { sessionId: w.serverSession.sessionId });
    expect(await serverVerify(w, v2.text, [1, 2])).toEqual(rejectedWith('unsupported_version'));
  });

  test('a v1 message when v1 is disabled: unsupported_version', async () => {
    const w = await world(1);
    const v1 = await new MessageSigner(client).signMessage(call, { profile: 1, sessionId: w.serverSession.sessionId, now: T0 });
    expect(await serverVerify(w, v1.text, [2])).toEqual(rejectedWith('unsupported_version'));
    const byDefault = await verifyWithStore(parseLossless(v1.text), { store: w.store, now: w.now });
    expect(outcome(byDefault)).toEqual(rejectedWith('unsupported_version'));
  });

  test('a client checks in_reply_to against its request: peer_mismatch on any difference', async () => {
    const w = await world();
    const requestNonce = 'a1'.repeat(16);
    const signer = new MessageSigner(server);
    const sid = w.clientSession.sessionId;
    const reply = async (inReplyTo?: string) => (await signer.signMessage(answer, { sessionId: sid, inReplyTo, now: T0 })).text;
    expect(await clientVerify(w, await reply(requestNonce), requestNonce)).toMatchObject({ ok: true });
    // The response to another request.
    expect(await clientVerify(w, await reply('b2'.repeat(16)), requestNonce)).toEqual(rejectedWith('peer_mismatch'));
    // No in_reply_to where one is expected.
    expect(await clientVerify(w, await reply(), requestNonce)).toEqual(rejectedWith('peer_mismatch'));
    // One where none may be (a GET stream).
    expect(await clientVerify(w, await reply(requestNonce), null)).toEqual(rejectedWith('peer_mismatch'));
    expect(await clientVerify(w, await reply(), null)).toMatchObject({ ok: true });
  });

  test('the client keeps nonces as long as a timestamp stays acceptable (twice the skew), whatever the skew', async () => {
    const w = await world();
    const reply = await new MessageSigner(server).signMessage(answer, { sessionId: w.clientSession.sessionId, now: T0 });
    const verify = async () =>
      outcome(await verifyWithSession(parseLossless(reply.text), w.clientSession, { now: w.now, clockSkewSec: 900 }));
    expect(await verify()).toMatchObject({ ok: true });
    // 12 minutes later the message is still within a 15-minute skew: a replay must still be caught.
    w.clock.t = T0 + 12 * MINUTE;
    expect(await verify()).toEqual(rejectedWith('replay_detected'));
  });
});

describe('authorization and limits', () => {
  async function respondWith(options: { authorize?: Authorizer; maxSessions?: number }, store: MemorySessionStore, at = T0) {
    const { request } = await PQCHandshake.initiate(client, { now: at });
    return PQCHandshake.respond(request, server, { store, now: at, ...options });
  }

  test('a DID list: peer_not_authorized for a client not on it', async () => {
    const store = new MemorySessionStore({ now: () => T0 });
    await expect(respondWith({ authorize: [other.did] }, store)).rejects.toMatchObject({
      name: 'HandshakeError',
      reason: 'peer_not_authorized',
      httpStatus: 403,
    });
    expect(store.size).toBe(0);
    await expect(respondWith({ authorize: [other.did, client.did] }, store)).resolves.toMatchObject({
      session: { peerDid: client.did },
    });
    expect(store.size).toBe(1);
  });

  test('a function: peer_not_authorized when it says no (sync or async), given the authenticated peer', async () => {
    const store = new MemorySessionStore({ now: () => T0 });
    const seen: string[] = [];
    const deny: Authorizer = (peer) => {
      seen.push(peer.did);
      return false;
    };
    await expect(respondWith({ authorize: deny }, store)).rejects.toMatchObject({ reason: 'peer_not_authorized' });
    expect(seen).toEqual([client.did]);
    await expect(respondWith({ authorize: async () => false }, store)).rejects.toMatchObject({ reason: 'peer_not_authorized' });
    // Only a literal true authorizes.
    const truthy = (() => 1) as unknown as Authorizer;
    await expect(respondWith({ authorize: truthy }, store)).rejects.toMatchObject({ reason: 'peer_not_authorized' });
    await expect(respondWith({ authorize: async (peer) => peer.did === client.did }, store)).resolves.toBeDefined();
    expect(store.size).toBe(1);
  });

  test('maxSessions reached: too_many_sessions; expired sessions are evicted to make room', async () => {
    const clock = { t: T0 };
    const store = new MemorySessionStore({ now: () => clock.t });
    const first = await respondWith({ maxSessions: 2 }, store, T0);
    const second = await respondWith({ maxSessions: 2 }, store, T0 + MINUTE);
    expect(store.size).toBe(2);
    const err = await respondWith({ maxSessions: 2 }, store, T0 + 2 * MINUTE).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HandshakeError);
    expect(err).toMatchObject({ reason: 'too_many_sessions', httpStatus: 503 });
    expect(store.size).toBe(2);
    // The first session expires (one hour after it opened); the second is still live.
    clock.t = first.session.expiresAt + 1;
    const third = await respondWith({ maxSessions: 2 }, store, clock.t);
    expect(store.size).toBe(2);
    expect(await store.getSession(first.session.sessionId)).toBeUndefined();
    expect(await store.getSession(second.session.sessionId)).toBeDefined();
    expect(await store.getSession(third.session.sessionId)).toBeDefined();
    // Both live again: full.
    await expect(respondWith({ maxSessions: 2 }, store, clock.t)).rejects.toMatchObject({ reason: 'too_many_sessions' });
  });
});

describe('errors', () => {
  /** The reason → HTTP status table of docs/PROTOCOL.md §6, read from the document itself. */
  function protocolTable(): Map<string, number> {
    const text = readProtocolDoc();
    const section = text.slice(text.indexOf('## 6. Errors'), text.indexOf('## 7.'));
    const table = new Map<string, number>();
    for (const line of section.split('\n')) {
      const row = /^\|(.+)\|\s*(\d{3})\s*\|$/.exec(line.trim());
      if (!row) continue;
      for (const [, reason] of row[1]!.matchAll(/`([a-z_]+)`/g)) table.set(reason!, Number(row[2]));
    }
    return table;
  }

  test('each reason has the HTTP status of docs/PROTOCOL.md §6', () => {
    const table = protocolTable();
    expect(table.size).toBe(17);
    expect(Object.fromEntries(table)).toEqual(REASON_HTTP_STATUS);
    for (const [reason, status] of table) {
      expect(isPQCReason(reason)).toBe(true);
      const err = new PQCTransportError(reason as PQCReason);
      expect({ reason, status: err.httpStatus }).toEqual({ reason, status });
      expect(err.message).toBe(`PQC authentication failed: ${reason}`);
      const specific = errorForReason(reason as PQCReason);
      expect(specific).toBeInstanceOf(PQCTransportError);
      expect({ reason, status: specific.httpStatus, r: specific.reason }).toEqual({ reason, status, r: reason });
    }
    expect(isPQCReason('not_a_reason')).toBe(false);
  });

  test('respond and complete throw HandshakeError instances carrying the reason and status', async () => {
    const w = await world();
    const failures: [string, () => Promise<unknown>][] = [
      ['malformed_json', () => PQCHandshake.respond('{"type":', server, { store: w.store, now: w.now })],
      ['replay_detected', () => PQCHandshake.respond(w.request, server, { store: w.store, now: w.now })],
      ['unsupported_version', () => PQCHandshake.respond(w.request, server, { store: w.store, now: w.now, profiles: [1] })],
      ['unsupported_algorithm', () => PQCHandshake.respond(w.request, server, { store: w.store, now: w.now, algorithms: ['ML-DSA-87'] })],
      ['stale_timestamp', () => PQCHandshake.respond(w.request, server, { store: w.store, now: T0 + 10 * MINUTE })],
      ['handshake_failed', () => PQCHandshake.complete(w.request, client, w.pending, { now: w.now })],
      ['malformed_json', () => PQCHandshake.complete('nope', client, w.pending, { now: w.now })],
      ['peer_mismatch', () => PQCHandshake.complete(w.response, client, w.pending, { serverDid: other.did, now: w.now })],
    ];
    // Thunks: each promise is created and handled in turn (a fast native backend rejects before a later await).
    for (const [reason, attempt] of failures) {
      const err = await attempt().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(HandshakeError);
      expect(err).toBeInstanceOf(PQCTransportError);
      expect({ reason: (err as HandshakeError).reason, status: (err as HandshakeError).httpStatus }).toEqual({
        reason,
        status: REASON_HTTP_STATUS[reason as PQCReason],
      });
    }
  });

  test('verifyWithStore never throws: a failing store is store_unavailable (503)', async () => {
    const w = await world();
    const signed = await clientCall(w);
    const broken = Object.create(w.store) as MemorySessionStore;
    broken.getSession = async () => {
      throw new Error('connection refused');
    };
    const verdict = await verifyWithStore(parseLossless(signed.text), { store: broken, now: w.now, peers: new PeerKeyCache() });
    expect(outcome(verdict)).toEqual(rejectedWith('store_unavailable'));
    expect(REASON_HTTP_STATUS.store_unavailable).toBe(503);
  });
});
