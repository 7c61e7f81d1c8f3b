/**
 * Key rotation in core (docs/PROTOCOL.md §11): the server's side of the handshake (which DIDs it answers, with which
 * records, until when), its start-up check of the chain, the client's re-pinning in pqcFetch, and what a middlebox or
 * a rogue server can do with the `rotations` member. Over HTTP with real MCP clients: packages/mcp/test/rotation.test.ts.
 */
import {
  AgentIdentity,
  MemorySessionStore,
  PQCHandshake,
  RotationError,
  createPQCHandler,
  createRotationRecord,
  pqcFetch,
  type FetchLike,
  type PQCServerOptions,
  type RotationChain,
  type RotationRecord,
} from '../src/index.js';
import { seededIdentity } from '@pqc-mcp/test-kit';

const A = seededIdentity(81, 'ML-DSA-65', 'a');
const B = seededIdentity(82, 'ML-DSA-44', 'b');
const C = seededIdentity(83, 'ML-DSA-65', 'c');
const CLIENT = seededIdentity(84, 'ML-DSA-44', 'client');
const T0 = Date.parse('2026-12-01T00:00:00Z');
const DAY = 86_400_000;

let AB: RotationRecord;
let BC: RotationRecord;
beforeAll(async () => {
  AB = await createRotationRecord(A, B, { effectiveAt: T0, overlapSec: 7 * 86_400 });
  BC = await createRotationRecord(B, C, { effectiveAt: T0 + DAY, overlapSec: 7 * 86_400 });
});

/** A server in memory as `fetch`, on clock `now`; `tamper` rewrites its handshake answers (a middlebox). */
function serverFetch(options: PQCServerOptions, tamper?: (body: Record<string, unknown>) => void): FetchLike {
  const handler = createPQCHandler({ store: new MemorySessionStore({ now: options.now }), ...options });
  return async (input, init) => {
    const response = await handler.handle(new Request(String(input), init), () => Promise.resolve(new Response(null, { status: 404 })));
    if (!tamper || !String(input).endsWith('/pqc/handshake') || init?.method !== 'POST' || response.status !== 200) return response;
    const body = (await response.json()) as Record<string, unknown>;
    tamper(body);
    return Response.json(body);
  };
}

const URL_ = 'http://127.0.0.1/mcp';

describe('server', () => {
  test('answers a handshake naming a retired DID with the current key and the chain from that DID on', async () => {
    const store = new MemorySessionStore({ now: () => T0 + 2 * DAY });
    const at = T0 + 2 * DAY;
    for (const [named, expected] of [
      [A, [AB, BC]],
      [B, [BC]],
    ] as const) {
      const { request } = await PQCHandshake.initiate(CLIENT, { serverDid: named.did, now: at });
      const { response, session } = await PQCHandshake.respond(request, C, { store, rotations: [AB, BC], now: at });
      const body = JSON.parse(response) as Record<string, unknown>;
      expect(body).toMatchObject({ server_did: C.did, server_public_key: C.publicKeyHex, rotations: expected });
      expect(session.localDid).toBe(C.did);
    }
    // Its own DID: no records in the answer (the wire of revision 2, unchanged).
    const { request } = await PQCHandshake.initiate(CLIENT, { serverDid: C.did, now: at });
    expect(JSON.parse((await PQCHandshake.respond(request, C, { store, rotations: [AB, BC], now: at })).response)).not.toHaveProperty('rotations');
  });

  test('a DID outside its chain, or a retired one after its overlap, is peer_mismatch', async () => {
    const store = new MemorySessionStore();
    const late = T0 + 8 * DAY + 1;
    const { request: other } = await PQCHandshake.initiate(CLIENT, { serverDid: CLIENT.did, now: T0 });
    await expect(PQCHandshake.respond(other, C, { store, rotations: [AB, BC], now: T0 })).rejects.toMatchObject({ reason: 'peer_mismatch' });
    const { request: expired } = await PQCHandshake.initiate(CLIENT, { serverDid: A.did, now: late });
    await expect(PQCHandshake.respond(expired, C, { store, rotations: [AB, BC], now: late })).rejects.toMatchObject({
      reason: 'peer_mismatch',
      message: expect.stringMatching(/retired/),
    });
    // Without records, a server never answers for another DID.
    const { request: plain } = await PQCHandshake.initiate(CLIENT, { serverDid: A.did, now: T0 });
    await expect(PQCHandshake.respond(plain, B, { store, now: T0 })).rejects.toMatchObject({ reason: 'peer_mismatch' });
  });

  test('the chain is checked at start-up; JSON text and records both work; GET serves it', async () => {
    expect(() => createPQCHandler({ identity: B, rotations: [AB, BC] })).toThrow(/option "rotations".*chain_broken/);
    expect(() => createPQCHandler({ identity: C, rotations: [BC, AB] })).toThrow(/option "rotations".*out_of_order/);
    expect(() => createPQCHandler({ identity: C, rotations: [{ ...AB, effective_at: '2026-12-01T00:00:01Z' }, BC] })).toThrow(/invalid_signature/);
    expect(() => createPQCHandler({ identity: C, rotations: [{ ...AB, note: 'x' } as RotationRecord, BC] })).toThrow(/malformed/);
    expect(() => createPQCHandler({ identity: C, rotations: 'not json' })).toThrow(/option "rotations"/);
    const fromText = createPQCHandler({ identity: C, rotations: JSON.stringify([AB, BC]) });
    const fromStrings = createPQCHandler({ identity: C, rotations: [JSON.stringify(AB), JSON.stringify(BC)] });
    expect(fromText.options.rotations).toEqual([AB, BC]);
    expect(fromStrings.info()).toMatchObject({ did: C.did, rotations: [AB, BC] });
    expect(createPQCHandler({ identity: C }).info()).not.toHaveProperty('rotations');
  });
});

describe('client (pqcFetch)', () => {
  test('re-pins once the new key signed the handshake, tells the application, and names the new DID afterwards', async () => {
    const now = () => T0 + 2 * DAY;
    const events: RotationChain[] = [];
    const sent: string[] = [];
    const inner = serverFetch({ identity: C, rotations: [AB, BC], now });
    const fetch = pqcFetch({
      identity: CLIENT,
      serverDid: A.did,
      now,
      fetch: async (input, init) => {
        if (init?.method === 'POST' && typeof init.body === 'string') sent.push((JSON.parse(init.body) as { server_did: string }).server_did);
        return inner(input, init);
      },
      onRotation: (chain) => {
        events.push(chain);
        throw new Error('an application bug must not undo a verified rotation');
      },
    });
    const session = await fetch.handshake(URL_);
    expect(session.rotation).toMatchObject({ fromDid: A.did, did: C.did, retiredDids: [A.did, B.did] });
    expect(fetch.serverDid).toBe(C.did);
    expect(events.map((e) => e.did)).toEqual([C.did]);
    fetch.reset();
    await fetch.handshake(URL_);
    expect(sent).toEqual([A.did, C.did]);
    expect(events).toHaveLength(1);
  });

  test('a middlebox that strips, swaps or edits the records: refused, the pin unchanged', async () => {
    const now = () => T0 + 2 * DAY;
    const cases: [string, (body: Record<string, unknown>) => void, string, string?][] = [
      ['strips them', (b) => delete b.rotations, 'peer_mismatch'],
      ['drops the first record', (b) => (b.rotations = [BC]), 'peer_mismatch', 'not_pinned'],
      ['edits a record (re-signing is impossible)', (b) => ((b.rotations as RotationRecord[])[1]!.old_valid_until = '2030-01-01T00:00:00.000000+00:00'), 'peer_mismatch', 'invalid_signature'],
      ['appends a record', (b) => (b.rotations as RotationRecord[]).push(AB), 'peer_mismatch', 'out_of_order'],
      ['sends 17 records', (b) => (b.rotations = Array.from({ length: 17 }, () => AB)), 'peer_mismatch', 'malformed'],
      ['sends one record instead of a list', (b) => (b.rotations = BC), 'peer_mismatch', 'malformed'],
      ['sends a string', (b) => (b.rotations = JSON.stringify([AB, BC])), 'peer_mismatch', 'malformed'],
    ];
    for (const [name, tamper, reason, rotationReason] of cases) {
      const fetch = pqcFetch({ identity: CLIENT, serverDid: A.did, now, fetch: serverFetch({ identity: C, rotations: [AB, BC], now }, tamper) });
      const error = await fetch.handshake(URL_).catch((e: unknown) => e);
      expect({ name, error }).toMatchObject({ name, error: { reason, ...(rotationReason ? { rotationReason } : {}) } });
      expect(fetch.serverDid).toBe(A.did);
    }
  });

  test('a server answering with the records but without the new key (it signs with another): refused', async () => {
    const now = () => T0 + 2 * DAY;
    // B holds its key and serves A → B → C, but C is the end of the chain: B cannot pass for C.
    const rogueStore = new MemorySessionStore({ now });
    const rogue: FetchLike = async (_input, init) => {
      if (init?.method !== 'POST') return new Response(null, { status: 404 });
      const { response } = await PQCHandshake.respond(String(init.body), B, { store: rogueStore, rotations: [AB, BC], now: now() });
      return new Response(response, { headers: { 'content-type': 'application/json' } });
    };
    const fetch = pqcFetch({ identity: CLIENT, serverDid: A.did, now, fetch: rogue });
    await expect(fetch.handshake(URL_)).rejects.toMatchObject({ rotationReason: 'chain_broken' });
    expect(fetch.serverDid).toBe(A.did);
  });

  test('pinned by key: the chain must start at that key; a client pinned to the new key ignores records', async () => {
    const now = () => T0 + 2 * DAY;
    const byKey = pqcFetch({ identity: CLIENT, serverPublicKey: A.publicKeyHex, now, fetch: serverFetch({ identity: B, rotations: [AB], now }) });
    await byKey.handshake(URL_);
    expect(byKey.serverDid).toBe(B.did);
    expect(byKey.session!.peerPublicKey).toBe(B.publicKeyHex);
    const current = pqcFetch({ identity: CLIENT, serverDid: B.did, now, fetch: serverFetch({ identity: B, rotations: [AB], now }) });
    expect((await current.handshake(URL_)).rotation).toBeUndefined();
  });

  test('options are checked at once', () => {
    expect(() => pqcFetch({ identity: CLIENT, serverDid: A.did, followRotations: 'yes' as unknown as boolean })).toThrow(/followRotations/);
    expect(() => pqcFetch({ identity: CLIENT, serverDid: A.did, onRotation: 1 as unknown as () => void })).toThrow(/onRotation/);
    expect(() => pqcFetch({ identity: CLIENT, serverDid: A.did, retiredDids: ['nope'] })).toThrow(/retiredDids/);
    expect(() => pqcFetch({ identity: CLIENT, serverDid: A.did, retiredDids: [A.did] })).toThrow(/retiredDids.*pinned/);
  });

  test('createRotationRecord refuses a rotation to the same key and a negative overlap; RotationError is a HandshakeError', async () => {
    await expect(createRotationRecord(A, A.toPeer())).rejects.toThrow(TypeError);
    await expect(createRotationRecord(A, B, { overlapSec: -1 })).rejects.toThrow(TypeError);
    await expect(createRotationRecord(A.toPeer() as unknown as AgentIdentity, B)).rejects.toThrow(TypeError);
    const error = new RotationError('unsigned', 'x');
    expect(error).toMatchObject({ name: 'RotationError', reason: 'peer_mismatch', httpStatus: 401, rotationReason: 'unsigned' });
  });
});
