/**
 * The attacks the Python predecessor (`pqc-mcp-transport`) fell to and those found against revision 1 of the protocol,
 * each now refused with the exact reason of docs/PROTOCOL.md §6. Every test runs after a real handshake; the server
 * is the real handler (`createPQCHandler`) answering real `Request`s, the client verifies with its own session. The
 * same attacks over real sockets, against every adapter, are the hostile suite of the test kit.
 */
import { HANDSHAKE_REQUEST_CONTEXT, HANDSHAKE_RESPONSE_CONTEXT, EMPTY_CONTEXT, MESSAGE_CONTEXT } from '../src/protocol.js';
import { sha3_256, sha3_256Hex } from '../src/crypto/hash.js';
import { toHex, utf8 } from '../src/bytes.js';
import { formatTimestamp } from '../src/time.js';
import { messageId } from '../src/envelope.js';
import { resolveFetchOptions } from '../src/client/options.js';
import { verifyServerMessage } from '../src/client/verify.js';
import {
  HandshakeError,
  MemorySessionStore,
  MessageSigner,
  PQCHandshake,
  PQCSession,
  PQCTransportError,
  REASON_HTTP_STATUS,
  canonicalJson,
  createPQCHandler,
  errorForReason,
  isPQCReason,
  parseLossless,
  type AgentIdentity,
  type Authorizer,
  type HttpBinding,
  type PQCHandler,
  type PQCReason,
  type PendingHandshake,
  type Profile,
  type SessionRecord,
  type SessionStore,
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
/** The HTTP request every client message below is sent in. */
const HTTP: HttpBinding = { method: 'POST', path: '/mcp', mcpSessionId: null };

/** A server, its store and clock, and one client session opened by a real handshake. */
interface World {
  clock: { t: number };
  now: () => number;
  store: MemorySessionStore;
  handlers: Map<string, PQCHandler>;
  /** The session as the server's store holds it. */
  serverSession: SessionRecord;
  /** The same session as the client holds it. */
  clientSession: PQCSession;
  pending: PendingHandshake;
  request: string;
  response: string;
  /** What the application received. */
  seen: unknown[];
}

async function handshakeIn(
  w: Pick<World, 'clock' | 'now' | 'store'>,
  who: AgentIdentity,
  profile: Profile = 2,
): Promise<Pick<World, 'serverSession' | 'clientSession' | 'pending' | 'request' | 'response'>> {
  const { request, pending } = await PQCHandshake.initiate(who, { profile, serverDid: server.did, now: w.now });
  const { response, session } = await PQCHandshake.respond(request, server, { store: w.store, profiles: [1, 2], now: w.now });
  const clientSession = await PQCHandshake.complete(response, who, pending, { serverDid: server.did, now: w.now });
  return { serverSession: session, clientSession, pending, request, response };
}

async function world(profile: Profile = 2): Promise<World> {
  const clock = { t: T0 };
  const now = () => clock.t;
  const store = new MemorySessionStore({ now });
  return { clock, now, store, handlers: new Map(), seen: [], ...(await handshakeIn({ clock, now, store }, client, profile)) };
}

function handlerFor(w: World, profiles: readonly Profile[], clockSkewSec = 300): PQCHandler {
  const key = `${profiles.join()}:${clockSkewSec}`;
  let handler = w.handlers.get(key);
  if (!handler) {
    handler = createPQCHandler({ identity: server, store: w.store, profiles, clockSkewSec, now: w.now });
    w.handlers.set(key, handler);
  }
  return handler;
}

/** What an answer says, without the messages (keeps failure output short). */
interface Outcome {
  ok: boolean;
  reason: PQCReason | null;
  id: string | number | null;
  digest?: string;
  /** Whether a rejection was signed (§6). */
  signed?: boolean;
}

/** The header a client names its session in: the envelope's session, for a v2 message. */
function sessionHeaderOf(text: string): Record<string, string> {
  try {
    const env = (JSON.parse(text) as { _pqc?: { v?: unknown; session_id?: unknown } })._pqc;
    return env?.v === 2 && typeof env.session_id === 'string' ? { 'pqc-session': env.session_id } : {};
  } catch {
    return {};
  }
}

/** The real handler's answer to a POST of `text` to /mcp (both profiles enabled unless said otherwise). */
async function serverVerify(
  w: World,
  text: string,
  options: { profiles?: readonly Profile[]; clockSkewSec?: number; headers?: Record<string, string>; path?: string } = {},
): Promise<Outcome> {
  const handler = handlerFor(w, options.profiles ?? [1, 2], options.clockSkewSec);
  const headers = { 'content-type': 'application/json', ...sessionHeaderOf(text), ...options.headers };
  const request = new Request(`http://localhost${options.path ?? '/mcp'}`, { method: 'POST', headers, body: text });
  const response = await handler.handle(request, async (_request, body) => {
    w.seen.push(body);
    return Response.json({ jsonrpc: '2.0', id: (body as { id?: unknown }).id ?? null, result: {} });
  });
  const body = (await response.json()) as { id: string | number | null; error?: { data?: { pqc?: PQCReason } }; _pqc?: unknown };
  if (response.status === 200) {
    const verified = handler.audit.entries().filter((e) => e.operation === 'request' && e.verified);
    return { ok: true, reason: null, id: body.id, digest: verified.at(-1)?.digest ?? undefined };
  }
  return { ok: false, reason: body.error?.data?.pqc ?? null, id: body.id, signed: body._pqc !== undefined };
}

/** The client's verification of a server message in its session, bound (or not, `null`) to a request's nonce. */
async function clientVerify(w: World, text: string, inReplyTo: string | null = null, clockSkewSec = 300): Promise<Outcome> {
  const options = resolveFetchOptions({ identity: client, serverDid: server.did, now: w.now, clockSkewSec });
  const tree = parseLossless(text);
  try {
    await verifyServerMessage(tree, w.clientSession, options, inReplyTo);
    return { ok: true, reason: null, id: messageId(tree) };
  } catch (err) {
    if (!(err instanceof PQCTransportError)) throw err;
    return { ok: false, reason: err.reason, id: messageId(tree) };
  }
}

/** The client's call, signed in its session. */
async function clientCall(w: World, options: { now?: number; sessionId?: string; http?: typeof HTTP } = {}) {
  return new MessageSigner(client).signMessage(call, {
    sessionId: options.sessionId ?? w.clientSession.sessionId,
    now: options.now ?? w.clock.t,
    http: options.http ?? HTTP,
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

/** An envelope claiming `claimed`; a client message's (`http` bound to POST /mcp) unless `extra` says otherwise. */
function envelopeOf(claimed: AgentIdentity, sessionId: string, at: number, extra: Record<string, unknown> = {}) {
  return {
    v: 2,
    signer_did: claimed.did,
    algorithm: claimed.algorithm,
    timestamp: formatTimestamp(at),
    nonce: 'ab'.repeat(16),
    session_id: sessionId,
    ...(claimed === server ? {} : { http: { method: 'POST', path: '/mcp', mcp_session_id: null } }),
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
  return { ok: false, reason, id, signed: false };
}

/** A rejection at the client (no signature question there). */
function refusedWith(reason: PQCReason, id: string | number | null = 7): Outcome {
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
    expect(await clientVerify(w, bare, 'cd'.repeat(16))).toEqual(refusedWith('invalid_signature'));
    const withKey = await forge(mallory, answer, envelopeOf(server, sid, T0, { public_key: mallory.publicKeyHex }));
    expect(await clientVerify(w, withKey)).toEqual(refusedWith('peer_mismatch'));
  });

  test('the predecessor’s hole: trusting the envelope’s own key is refused (did_mismatch), a pinned peer refuses it too', async () => {
    const env = envelopeOf(client, 'ef'.repeat(16), T0, { public_key: mallory.publicKeyHex });
    const forged = await forge(mallory, call, env);
    expect(await MessageSigner.verifyMessage(forged, { now: T0 })).toMatchObject({ valid: false, reason: 'did_mismatch' });
    expect(await MessageSigner.verifyMessage(forged, { peer: client, now: T0 })).toMatchObject({
      valid: false,
      reason: 'peer_mismatch',
    });
  });

  test('in a v1 session: the signer stays bound to the session key', async () => {
    const w = await world(1);
    const sid = w.serverSession.sessionId;
    // Control: the client's v1 message is accepted in its v1 session.
    const good = await new MessageSigner(client).signMessage(call, { profile: 1, sessionId: sid, now: T0 });
    expect(await serverVerify(w, good.text)).toMatchObject({ ok: true });
    // Mallory signs a v1 message with her key, claiming the client's DID.
    const own = await new MessageSigner(mallory).signMessage({ ...call, id: 8 }, { profile: 1, sessionId: sid, now: T0 });
    const claimed = withEnvelope(own.text, { signer_did: client.did });
    expect(await serverVerify(w, claimed)).toEqual(rejectedWith('peer_mismatch', 8));
    // ... and with the client's key in the envelope, her signature does not verify.
    const keySwapped = withEnvelope(own.text, { signer_did: client.did, public_key: client.publicKeyHex });
    expect(await serverVerify(w, keySwapped)).toEqual(rejectedWith('invalid_signature', 8));
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

  test('http (moving a signed POST to another target): invalid_signature', async () => {
    const w = await world();
    const signed = await clientCall(w);
    const moved = withEnvelope(signed.text, { http: { method: 'POST', path: '/mcp?tenant=other', mcp_session_id: null } });
    expect(await serverVerify(w, moved, { path: '/mcp?tenant=other' })).toEqual(rejectedWith('invalid_signature'));
  });

  test('in_reply_to (swapping responses): invalid_signature at the client', async () => {
    const w = await world();
    const signed = await new MessageSigner(server).signMessage(answer, {
      sessionId: w.clientSession.sessionId,
      inReplyTo: '11'.repeat(16),
      now: T0,
    });
    const swapped = withEnvelope(signed.text, { in_reply_to: '22'.repeat(16) });
    expect(await clientVerify(w, swapped, '22'.repeat(16))).toEqual(refusedWith('invalid_signature'));
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

  test('session id to an unknown id: unknown_session, unsigned, before the body is read', async () => {
    const w = await world();
    const signed = await clientCall(w);
    const moved = withEnvelope(signed.text, { session_id: '99'.repeat(16) });
    expect(await serverVerify(w, moved)).toEqual(rejectedWith('unknown_session', null));
    // At the client, a message naming another session is refused the same way.
    const reply = await new MessageSigner(server).signMessage(answer, { sessionId: '99'.repeat(16), now: T0 });
    expect(await clientVerify(w, reply.text)).toEqual(refusedWith('unknown_session'));
  });
});

describe('the PQC-Session header (§3): one POST, one session, checked before the body is read', () => {
  test('missing: missing_envelope; naming another session than the messages: invalid_envelope', async () => {
    const w = await world();
    const signed = await clientCall(w);
    expect(await serverVerify(w, signed.text, { profiles: [2], headers: { 'pqc-session': '' } })).toEqual(rejectedWith('invalid_envelope', null));
    const handler = handlerFor(w, [2]);
    const bare = await handler.handle(new Request('http://localhost/mcp', { method: 'POST', body: signed.text }), () => Promise.reject(new Error('app ran')));
    expect(bare.status).toBe(401);
    expect(await bare.json()).toMatchObject({ id: null, error: { data: { pqc: 'missing_envelope' } } });
    const second = await handshakeIn(w, client);
    expect(await serverVerify(w, signed.text, { headers: { 'pqc-session': second.serverSession.sessionId } })).toEqual(rejectedWith('invalid_envelope'));
  });

  test('an unknown session is refused without reading a byte of the body', async () => {
    const w = await world();
    let pulled = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled++;
        controller.enqueue(new Uint8Array(65536).fill(0x5b)); // "[[[[..." forever
      },
    });
    const request = new Request('http://localhost/mcp', { method: 'POST', headers: { 'pqc-session': '42'.repeat(16) }, body, duplex: 'half' } as RequestInit);
    const response = await handlerFor(w, [2]).handle(request, () => Promise.reject(new Error('app ran')));
    expect(response.status).toBe(401);
    expect(await response.json()).toMatchObject({ id: null, error: { data: { pqc: 'unknown_session' } } });
    expect(pulled).toBeLessThanOrEqual(1); // at most what the stream pre-pulls on its own
  });

  test('a session opened by another server identity is unknown here, even in a shared store', async () => {
    const w = await world();
    const signed = await clientCall(w);
    const elsewhere = createPQCHandler({ identity: mallory, store: w.store, now: w.now });
    const request = new Request('http://localhost/mcp', { method: 'POST', headers: sessionHeaderOf(signed.text), body: signed.text });
    const response = await elsewhere.handle(request, () => Promise.reject(new Error('app ran')));
    expect(response.status).toBe(401);
    expect(await response.json()).toMatchObject({ error: { data: { pqc: 'unknown_session' } } });
  });
});

describe('http binds a client message to its request (§3 step 8)', () => {
  test('a message without http: invalid_envelope', async () => {
    const w = await world();
    const bare = await new MessageSigner(client).signMessage(call, { sessionId: w.clientSession.sessionId, now: T0 });
    expect(await serverVerify(w, bare.text)).toEqual(rejectedWith('invalid_envelope'));
  });

  test('another path, query, method or Mcp-Session-Id: target_mismatch', async () => {
    const w = await world();
    const cases: [typeof HTTP, { path?: string; headers?: Record<string, string> }][] = [
      [{ ...HTTP, path: '/other' }, {}],
      [HTTP, { path: '/mcp?injected=1' }],
      [{ ...HTTP, path: '/mcp?a=1' }, { path: '/mcp?a=2' }],
      [{ ...HTTP, path: '/mcp' }, { path: '/MCP' }],
      [{ ...HTTP, method: 'PUT' }, {}],
      [{ ...HTTP, mcpSessionId: 'abc' }, {}],
    ];
    for (const [http, request] of cases) {
      const signed = await clientCall(w, { http });
      expect({ http, request, outcome: await serverVerify(w, signed.text, request) }).toEqual({ http, request, outcome: rejectedWith('target_mismatch') });
    }
    // Control: the path as sent, query included, is accepted.
    const right = await clientCall(w, { http: { ...HTTP, path: '/mcp?a=1' } });
    expect(await serverVerify(w, right.text, { path: '/mcp?a=1' })).toMatchObject({ ok: true });
  });

  test('a server message carrying http, or a client message carrying mcp_session_id: invalid_envelope', async () => {
    const w = await world();
    const serverMsg = await forge(server, answer, envelopeOf(server, w.clientSession.sessionId, T0, { http: { method: 'POST', path: '/mcp', mcp_session_id: null } }));
    expect(await clientVerify(w, serverMsg)).toEqual(refusedWith('invalid_envelope'));
    const clientMsg = await forge(client, call, envelopeOf(client, w.serverSession.sessionId, T0, { mcp_session_id: 'x' }));
    expect(await serverVerify(w, clientMsg)).toEqual(rejectedWith('invalid_envelope'));
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
    expect(await clientVerify(w, oldReply.text)).toEqual(refusedWith('stale_timestamp'));
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
    expect(await serverVerify(w, signed.text, { clockSkewSec: 30 })).toEqual(rejectedWith('stale_timestamp'));
  });
});

describe('handshake attacks', () => {
  async function signedRequest(signer: AgentIdentity, fields: Record<string, unknown>): Promise<string> {
    const signature = await signer.sign(sha3_256(utf8(canonicalJson(fields))), HANDSHAKE_REQUEST_CONTEXT);
    return JSON.stringify({ ...fields, signature: toHex(signature) });
  }

  /** A v2 handshake response to `request`, as `responder` would sign it (whatever the request named). */
  async function respondAs(responder: AgentIdentity, request: string, sessionId = '3c'.repeat(16)): Promise<string> {
    const fields = JSON.parse(request) as Record<string, string>;
    const body = {
      type: 'pqc_handshake_response',
      v: 2,
      server_did: responder.did,
      server_public_key: responder.publicKeyHex,
      algorithm: responder.algorithm,
      client_nonce: fields.nonce,
      server_nonce: '5d'.repeat(16),
      session_id: sessionId,
      expires_at: formatTimestamp(T0 + 3_600_000),
      request_digest: sha3_256Hex(canonicalJson(JSON.parse(request))),
    };
    const signature = await responder.sign(sha3_256(utf8(canonicalJson(body))), HANDSHAKE_RESPONSE_CONTEXT);
    return JSON.stringify({ ...body, signature: toHex(signature) });
  }

  test('a client_did that is not the DID of its key: did_mismatch (v2 and v1)', async () => {
    const store = new MemorySessionStore({ now: () => T0 });
    const fields = {
      type: 'pqc_handshake_request',
      v: 2,
      client_did: client.did,
      client_public_key: mallory.publicKeyHex,
      algorithm: 'ML-DSA-65',
      server_did: server.did,
      timestamp: formatTimestamp(T0),
      nonce: '42'.repeat(16),
    };
    const v2 = await signedRequest(mallory, fields);
    await expect(PQCHandshake.respond(v2, server, { store, now: T0 })).rejects.toMatchObject({
      name: 'HandshakeError',
      reason: 'did_mismatch',
      httpStatus: 401,
    });
    // The v1 format: the client signs "{client_did}:{nonce}:{timestamp}" with the empty context.
    const v1Fields = omit(omit(fields, 'v'), 'server_did');
    const v1Sig = await mallory.sign(sha3_256(utf8(`${client.did}:${fields.nonce}:${fields.timestamp}`)), EMPTY_CONTEXT);
    const v1 = JSON.stringify({ ...v1Fields, signature: toHex(v1Sig) });
    await expect(PQCHandshake.respond(v1, server, { store, profiles: [1, 2], now: T0 })).rejects.toMatchObject({
      reason: 'did_mismatch',
    });
    expect(store.size).toBe(0);
  });

  test('a handshake meant for another server (relayed by a server the client trusts): peer_mismatch (§5)', async () => {
    const store = new MemorySessionStore({ now: () => T0 });
    // The client means to reach mallory; mallory relays its request to the server, to act there as the client.
    const { request } = await PQCHandshake.initiate(client, { serverDid: mallory.did, now: T0 });
    await expect(PQCHandshake.respond(request, server, { store, now: T0 })).rejects.toMatchObject({ reason: 'peer_mismatch' });
    expect(store.size).toBe(0);
    // Without server_did, a v2 request is malformed.
    const fields = omit(JSON.parse(request) as Record<string, unknown>, 'signature');
    const unnamed = await signedRequest(client, omit(fields, 'server_did'));
    await expect(PQCHandshake.respond(unnamed, server, { store, now: T0 })).rejects.toMatchObject({ reason: 'invalid_envelope' });
  });

  test('the client refuses a response from a server other than the one its request named', async () => {
    const { request, pending } = await PQCHandshake.initiate(client, { serverDid: server.did, now: T0 });
    const relayed = await respondAs(mallory, request);
    await expect(PQCHandshake.complete(relayed, client, pending, { now: T0 })).rejects.toMatchObject({ reason: 'peer_mismatch' });
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

  test('v1 handshakes are fresh and unreplayable (§7): replay, stale, and malformed nonces or timestamps refused', async () => {
    const store = new MemorySessionStore({ now: () => T0 });
    const { request } = await PQCHandshake.initiate(client, { profile: 1, now: T0 });
    await expect(PQCHandshake.respond(request, server, { store, profiles: [1, 2], now: T0 })).resolves.toBeDefined();
    await expect(PQCHandshake.respond(request, server, { store, profiles: [1, 2], now: T0 })).rejects.toMatchObject({ reason: 'replay_detected' });
    await expect(PQCHandshake.respond(request, server, { store, profiles: [1, 2], now: T0 + 10 * MINUTE })).rejects.toMatchObject({ reason: 'stale_timestamp' });
    const v1With = async (nonce: string, timestamp: string) => {
      const signature = await client.sign(sha3_256(utf8(`${client.did}:${nonce}:${timestamp}`)), EMPTY_CONTEXT);
      return JSON.stringify({ type: 'pqc_handshake_request', client_did: client.did, client_public_key: client.publicKeyHex, algorithm: 'ML-DSA-65', timestamp, nonce, signature: toHex(signature) });
    };
    for (const [nonce, timestamp] of [
      ['AB'.repeat(16), formatTimestamp(T0)],
      ['ab'.repeat(8), formatTimestamp(T0)],
      ['ab'.repeat(16), `${formatTimestamp(T0)}:x`],
      ['ab'.repeat(16), 'yesterday'],
    ] as const) {
      await expect(PQCHandshake.respond(await v1With(nonce, timestamp), server, { store, profiles: [1, 2], now: T0 })).rejects.toMatchObject({ reason: 'invalid_envelope' });
    }
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
      server_did: server.did,
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
      // The client trusts on first use and asks mallory's server; its request names mallory.
      const { request, pending } = await PQCHandshake.initiate(client, { serverDid: mallory.did, now: T0 });
      const store = new MemorySessionStore({ now: () => T0 });
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
    expect(await clientVerify(w, reply.text)).toEqual(refusedWith('replay_detected'));
  });

  test('a replayed v1 message (nonce swapped, same digest): replay_detected, in this session and the next', async () => {
    const w = await world(1);
    const signed = await new MessageSigner(client).signMessage(call, { profile: 1, sessionId: w.serverSession.sessionId, now: T0 });
    expect(await serverVerify(w, signed.text)).toMatchObject({ ok: true });
    // v1 signs no envelope member, so a fresh nonce would pass the signature: replay is keyed on the digest.
    const renonced = withEnvelope(signed.text, { nonce: '77'.repeat(16) });
    expect(await serverVerify(w, renonced)).toEqual(rejectedWith('replay_detected'));
    // Nor in the client's next v1 session, whose id the attacker puts in the unsigned envelope (§7).
    const next = await handshakeIn(w, client, 1);
    w.clock.t += 20 * MINUTE;
    const moved = withEnvelope(signed.text, { session_id: next.serverSession.sessionId, timestamp: formatTimestamp(w.clock.t) });
    expect(await serverVerify(w, moved)).toEqual(rejectedWith('replay_detected'));
  });

  test('the server’s own message reflected back to it: refused', async () => {
    const w = await world();
    const reply = await new MessageSigner(server).signMessage(answer, { sessionId: w.serverSession.sessionId, now: T0, http: HTTP });
    expect(await serverVerify(w, reply.text)).toEqual(rejectedWith('peer_mismatch'));
  });

  test('an expired session: a signed session_expired, then unknown_session once the store forgot it', async () => {
    const w = await world();
    w.clock.t = w.serverSession.expiresAt + MINUTE;
    const late = await clientCall(w);
    const outcome = await serverVerify(w, late.text);
    expect(outcome).toEqual({ ok: false, reason: 'session_expired', id: 7, signed: true });
    expect(
      await clientVerify(w, (await new MessageSigner(server).signMessage(answer, { sessionId: w.clientSession.sessionId, now: w.clock.t })).text),
    ).toEqual(refusedWith('session_expired'));
    w.clock.t = w.serverSession.expiresAt + 12 * MINUTE; // past the retention (twice the skew plus 60 s)
    const later = await clientCall(w);
    expect(await serverVerify(w, later.text)).toEqual(rejectedWith('unknown_session', null));
  });

  test('an unknown session: unknown_session, unsigned', async () => {
    const w = await world();
    const signed = await clientCall(w, { sessionId: '5a'.repeat(16) });
    expect(await serverVerify(w, signed.text)).toEqual(rejectedWith('unknown_session', null));
  });

  test('a v1 message in a v2 session (v1 enabled): unsupported_version', async () => {
    const w = await world(2);
    const v1 = await new MessageSigner(client).signMessage(call, { profile: 1, sessionId: w.serverSession.sessionId, now: T0 });
    expect(await serverVerify(w, v1.text, { profiles: [1, 2] })).toEqual(rejectedWith('unknown_session'));
    // ... and the client refuses a v1 message in its v2 session.
    const v1Reply = await new MessageSigner(server).signMessage(answer, { profile: 1, sessionId: w.clientSession.sessionId, now: T0 });
    expect(await clientVerify(w, v1Reply.text)).toEqual(refusedWith('unsupported_version'));
  });

  test('a v2 message in a v1 session: unsupported_version', async () => {
    const w = await world(1);
    const v2 = await clientCall(w, { sessionId: w.serverSession.sessionId });
    expect(await serverVerify(w, v2.text, { profiles: [1, 2] })).toEqual(rejectedWith('unsupported_version', null));
  });

  test('a v1 message when v1 is disabled: missing_envelope (no PQC-Session header)', async () => {
    const w = await world(1);
    const v1 = await new MessageSigner(client).signMessage(call, { profile: 1, sessionId: w.serverSession.sessionId, now: T0 });
    expect(await serverVerify(w, v1.text, { profiles: [2] })).toEqual(rejectedWith('missing_envelope', null));
  });

  test('a client checks in_reply_to against its request: peer_mismatch on any difference', async () => {
    const w = await world();
    const requestNonce = 'a1'.repeat(16);
    const signer = new MessageSigner(server);
    const sid = w.clientSession.sessionId;
    const reply = async (inReplyTo?: string) => (await signer.signMessage(answer, { sessionId: sid, inReplyTo, now: T0 })).text;
    expect(await clientVerify(w, await reply(requestNonce), requestNonce)).toMatchObject({ ok: true });
    // The response to another request.
    expect(await clientVerify(w, await reply('b2'.repeat(16)), requestNonce)).toEqual(refusedWith('peer_mismatch'));
    // No in_reply_to where one is expected.
    expect(await clientVerify(w, await reply(), requestNonce)).toEqual(refusedWith('peer_mismatch'));
    // One where none may be (a GET stream).
    expect(await clientVerify(w, await reply(requestNonce), null)).toEqual(refusedWith('peer_mismatch'));
    expect(await clientVerify(w, await reply(), null)).toMatchObject({ ok: true });
  });

  test('the client keeps nonces as long as a timestamp stays acceptable (twice the skew), whatever the skew', async () => {
    const w = await world();
    const reply = await new MessageSigner(server).signMessage(answer, { sessionId: w.clientSession.sessionId, now: T0 });
    expect(await clientVerify(w, reply.text, null, 900)).toMatchObject({ ok: true });
    // 12 minutes later the message is still within a 15-minute skew: a replay must still be caught.
    w.clock.t = T0 + 12 * MINUTE;
    expect(await clientVerify(w, reply.text, null, 900)).toEqual(refusedWith('replay_detected'));
  });
});

describe('batches (§9): bounded, and no signature checked for what could be refused cheaply', () => {
  /** A backend that counts verifications (the server's crypto, wrapped). */
  function counting(w: World, options: { maxBatch?: number } = {}) {
    let verifies = 0;
    const backend = {
      ...server.backend,
      name: 'counting',
      verifyingKey(algorithm: never, publicKey: Uint8Array) {
        const key = server.backend.verifyingKey(algorithm, publicKey);
        return { ...key, verify: (...args: Parameters<typeof key.verify>) => (verifies++, key.verify(...args)) };
      },
    };
    const handler = createPQCHandler({ identity: server, store: w.store, now: w.now, backend: backend as never, maxBatch: options.maxBatch });
    const post = async (body: string) => {
      const response = await handler.handle(
        new Request('http://localhost/mcp', { method: 'POST', headers: { 'pqc-session': w.clientSession.sessionId }, body }),
        async (_r, parsed) => Response.json((parsed as unknown[]).map((m) => ({ jsonrpc: '2.0', id: (m as { id: number }).id, result: {} }))),
      );
      return { status: response.status, body: (await response.json()) as { error?: { data?: { pqc?: string } } } };
    };
    return { post, verifies: () => verifies };
  }

  test('more than maxBatch messages: invalid_envelope, refused while parsing', async () => {
    const w = await world();
    const { post, verifies } = counting(w, { maxBatch: 3 });
    const messages = await Promise.all([1, 2, 3, 4].map(async (id) => (await new MessageSigner(client).signMessage({ ...call, id }, { sessionId: w.clientSession.sessionId, now: T0, http: HTTP })).text));
    const answer4 = await post(`[${messages.join(',')}]`);
    expect({ status: answer4.status, reason: answer4.body.error?.data?.pqc }).toEqual({ status: 400, reason: 'invalid_envelope' });
    expect(verifies()).toBe(0);
    const answer3 = await post(`[${messages.slice(0, 3).join(',')}]`);
    expect(answer3.status).toBe(200);
    expect(verifies()).toBe(3);
  });

  test('one signature reused on many elements: replay_detected before any signature is checked', async () => {
    const w = await world();
    const { post, verifies } = counting(w);
    const one = (await clientCall(w)).text;
    const reused = await post(`[${Array.from({ length: 40 }, () => one).join(',')}]`);
    expect({ status: reused.status, reason: reused.body.error?.data?.pqc }).toEqual({ status: 401, reason: 'replay_detected' });
    expect(verifies()).toBe(0);
  });

  test('a batch fails at its first bad signature: the rest are not verified', async () => {
    const w = await world();
    const { post, verifies } = counting(w);
    const forged = await Promise.all(Array.from({ length: 20 }, (_, i) => forge(mallory, { ...call, id: i }, envelopeOf(client, w.serverSession.sessionId, T0, { nonce: i.toString(16).padStart(32, '0') }))));
    const answer20 = await post(`[${forged.join(',')}]`);
    expect(answer20.body.error?.data?.pqc).toBe('invalid_signature');
    expect(verifies()).toBe(1);
  });
});

describe('ended sessions and signed rejections (§6, §9)', () => {
  test('a session ended by its client: the next request gets a signed unknown_session the client can verify', async () => {
    const w = await world();
    await w.store.endSession(w.serverSession.sessionId, 660);
    const signed = await clientCall(w);
    const handler = handlerFor(w, [2]);
    const response = await handler.handle(
      new Request('http://localhost/mcp', { method: 'POST', headers: sessionHeaderOf(signed.text), body: signed.text }),
      () => Promise.reject(new Error('app ran')),
    );
    expect(response.status).toBe(401);
    const text = await response.text();
    expect(await clientVerify(w, text, signed.nonce)).toMatchObject({ ok: true });
    expect(JSON.parse(text)).toMatchObject({ id: 7, error: { data: { pqc: 'unknown_session' } }, _pqc: { in_reply_to: signed.nonce, session_id: w.serverSession.sessionId } });
    // The same request once more is a replay, refused unsigned: a middlebox cannot make the server sign at will.
    expect(await serverVerify(w, signed.text, { profiles: [2] })).toEqual(rejectedWith('replay_detected'));
  });

  test('a forged request in an ended session gets no signature (invalid_signature, unsigned)', async () => {
    const w = await world();
    await w.store.endSession(w.serverSession.sessionId, 660);
    const forged = await forge(mallory, call, envelopeOf(client, w.serverSession.sessionId, T0));
    expect(await serverVerify(w, forged, { profiles: [2] })).toEqual(rejectedWith('invalid_signature'));
  });

  test('per-client cap: a client opening one session too many ends its oldest, which is told so signed', async () => {
    const clock = { t: T0 };
    const now = () => clock.t;
    const store = new MemorySessionStore({ now });
    const handler = createPQCHandler({ identity: server, store, now, maxSessionsPerClient: 2 });
    const sessions: PQCSession[] = [];
    for (let i = 0; i < 3; i++) {
      const { request, pending } = await PQCHandshake.initiate(client, { serverDid: server.did, now });
      const response = await handler.handle(new Request('http://localhost/pqc/handshake', { method: 'POST', body: request }), () => Promise.reject(new Error('app ran')));
      sessions.push(await PQCHandshake.complete(await response.text(), client, pending, { serverDid: server.did, now }));
      clock.t += 1000;
    }
    const post = async (s: PQCSession) => {
      const signed = await new MessageSigner(client).signMessage(call, { sessionId: s.sessionId, now, http: HTTP });
      const response = await handler.handle(new Request('http://localhost/mcp', { method: 'POST', headers: { 'pqc-session': s.sessionId }, body: signed.text }), async () => Response.json({ jsonrpc: '2.0', id: 7, result: {} }));
      return { status: response.status, body: (await response.json()) as { error?: { data?: { pqc?: string } }; _pqc?: unknown } };
    };
    const oldest = await post(sessions[0]!);
    expect({ status: oldest.status, reason: oldest.body.error?.data?.pqc, signed: oldest.body._pqc !== undefined }).toEqual({ status: 401, reason: 'unknown_session', signed: true });
    expect((await post(sessions[1]!)).status).toBe(200);
    expect((await post(sessions[2]!)).status).toBe(200);
  });
});

describe('authorization and limits', () => {
  async function respondWith(options: { authorize?: Authorizer; maxSessions?: number }, store: MemorySessionStore, at = T0) {
    const { request } = await PQCHandshake.initiate(client, { serverDid: server.did, now: at });
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

  test('a full session table never refuses a handshake: it ends the least recently used session', async () => {
    const clock = { t: T0 };
    const store = new MemorySessionStore({ now: () => clock.t });
    const first = await respondWith({ maxSessions: 2 }, store, T0);
    const second = await respondWith({ maxSessions: 2 }, store, T0 + MINUTE);
    clock.t = T0 + 2 * MINUTE;
    expect(await store.recordNonce(first.session.sessionId, 'aa'.repeat(16), clock.t, 660)).toBe('accepted');
    const third = await respondWith({ maxSessions: 2 }, store, clock.t);
    expect(third.ended).toEqual([second.session.sessionId]);
    expect(store.size).toBe(2);
    expect(await store.recordNonce(second.session.sessionId, 'bb'.repeat(16), clock.t, 660)).toBe('ended');
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
    expect(table.size).toBe(19);
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

  test('a failing store is store_unavailable (503), never an exception or an unverified pass', async () => {
    const w = await world();
    const signed = await clientCall(w);
    const broken: SessionStore = Object.create(w.store) as SessionStore;
    broken.getSession = async () => {
      throw new Error('connection refused');
    };
    const handler = createPQCHandler({ identity: server, store: broken, now: w.now });
    const response = await handler.handle(
      new Request('http://localhost/mcp', { method: 'POST', headers: sessionHeaderOf(signed.text), body: signed.text }),
      () => Promise.reject(new Error('app ran')),
    );
    expect(response.status).toBe(503);
    expect(await response.json()).toMatchObject({ error: { data: { pqc: 'store_unavailable' } } });
    expect(REASON_HTTP_STATUS.store_unavailable).toBe(503);
  });

});
