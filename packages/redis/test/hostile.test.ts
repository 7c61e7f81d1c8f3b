/**
 * Hostile input against servers that share Redis.
 *
 * 1. The test kit's hostile suite (the attacks over real sockets, through a middlebox too), with every server it
 *    starts on one Redis namespace, each with its own `RedisSessionStore` (its own connection), as instances of one
 *    identity share one store (docs/PROTOCOL.md §9); its two services on one store (attack 10) share a Redis store.
 * 2. The hostile input catalogue: each thing an attacker (or a broken peer) can send, and what the server answers,
 *    against two instances sharing Redis. Every row here is also a row of the hostile input catalogue (docs/HOSTILE-INPUTS.md),
 *    checked below, so the catalogue in the docs is the one the tests run.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { PQCHandshake, PQC_ENVELOPE_HEADER, type PQCServerOptions } from '@pqc-mcp/core';
import { RawClient, freePort, runHostileSuite, seededIdentity, type StartServer } from '@pqc-mcp/test-kit';
import { RedisSessionStore } from '../src/index.js';
import { REDIS_URL, connectTestRedis, deletePrefix, sleep, startServer, uniquePrefix, type RawRedis, type TestServer } from './helpers.js';

const SERVER = seededIdentity(81);
const ALICE = seededIdentity(82);
const BOB = seededIdentity(83);
const MALLORY = seededIdentity(84);
const OUTSIDER = seededIdentity(85);
const OTHER_SERVER = seededIdentity(86);
const HOSTILE_MD = path.resolve(__dirname, '../../../docs/HOSTILE-INPUTS.md');

let redis: RawRedis;
const prefixes: string[] = [];
const stores: RedisSessionStore[] = [];
const servers: TestServer[] = [];

function store(keyPrefix: string, url = REDIS_URL): RedisSessionStore {
  const s = new RedisSessionStore({ url, keyPrefix, connectTimeoutMs: 300 });
  stores.push(s);
  return s;
}

beforeAll(async () => {
  redis = await connectTestRedis();
});

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await Promise.all(stores.map((s) => s.close()));
  for (const prefix of prefixes) await deletePrefix(redis, prefix);
  await redis.close();
});

// ---------------------------------------------------------------------------------------------------------------
// 1. The test kit's hostile suite, every server on one Redis

const suitePrefix = uniquePrefix('hostile-suite');
prefixes.push(suitePrefix);

const startOnRedis: StartServer = async ({ json, pqc, sdk }) => {
  const server = await startServer({ ...pqc, store: pqc.store ?? store(suitePrefix) }, { sdk, json });
  return { url: server.url, seen: server.seen, close: server.close };
};

runHostileSuite('core on node:http, every instance on one Redis', startOnRedis, { sharedStore: true, newStore: () => store(suitePrefix) });

// ---------------------------------------------------------------------------------------------------------------
// 2. The hostile input catalogue, two instances on Redis

interface Case {
  what: string;
  status: number;
  reason: string;
  /** A session rejection of a session the servers still record: signed (§6). Every other rejection is unsigned. */
  signed?: boolean;
  send: () => Promise<Response>;
}

let a: TestServer;
let b: TestServer;
let shortTtl: TestServer;
let deadStore: TestServer;
let alice: RawClient;
let bob: RawClient;
let expired: RawClient;
let ended: RawClient;
let onDead: RawClient;

/** A client signing as `identity` in `victim`'s session (an attacker holding its own key only). */
function impostor(identity = MALLORY, victim = alice): RawClient {
  const client = new RawClient(victim.url, identity, SERVER.did);
  client.session = victim.session;
  return client;
}

beforeAll(async () => {
  const prefix = uniquePrefix('hostile');
  prefixes.push(prefix);
  const common: Partial<PQCServerOptions> = { maxBodyBytes: 64 * 1024, authorize: (peer) => peer.did !== OUTSIDER.did };
  const start = async (options: Partial<PQCServerOptions>, keyPrefix = prefix, url = REDIS_URL) => {
    const s = await startServer({ identity: SERVER, ...options, store: store(keyPrefix, url) });
    servers.push(s);
    return s;
  };
  a = await start(common);
  b = await start(common);
  shortTtl = await start({ sessionTtlSec: 1 });
  // A server whose Redis is not there: a session made on a healthy store is asked for where none can be read.
  deadStore = await start({}, prefix, `redis://127.0.0.1:${await freePort()}`);
  alice = new RawClient(a.url, ALICE, SERVER.did);
  bob = new RawClient(b.url, BOB, SERVER.did);
  await alice.handshake();
  await bob.handshake();
  expired = new RawClient(shortTtl.url, ALICE, SERVER.did);
  await expired.handshake();
  ended = new RawClient(b.url, ALICE, SERVER.did);
  await ended.handshake();
  expect((await ended.endSession()).status).toBe(204);
  onDead = new RawClient(deadStore.url, ALICE, SERVER.did);
  onDead.session = alice.session;
  await sleep(1100); // the short-TTL session is now expired
});

const message = (client: RawClient, text = 'x') => ({ jsonrpc: '2.0', id: client.id(), method: 'tools/call', params: { name: 'echo', arguments: { text } } });
/** A signed tools/call of `client` (text and nonce), not sent. */
const call = (client: RawClient, text = 'x', options: Parameters<RawClient['sign']>[1] = {}) => client.sign(message(client, text), options);
/** A POST of `body` to `server` in alice's session (`PQC-Session` header), or with the headers given. */
const post = (server: TestServer, body: string | Uint8Array, headers: Record<string, string | undefined> = {}) =>
  alice.post(body as string, headers, server.url);
const postHandshake = (server: TestServer, body: string) => fetch(new URL('pqc/handshake', server.url), { method: 'POST', body });
const utf8 = (text: string) => new TextEncoder().encode(text);

/** Edits the envelope of a signed message's text after signing. */
function editEnvelope(text: string, edit: (env: Record<string, unknown>) => void): string {
  const parsed = JSON.parse(text) as { _pqc: Record<string, unknown> };
  edit(parsed._pqc);
  return JSON.stringify(parsed);
}

async function handshakeRequest(identity = MALLORY, edit?: (r: Record<string, unknown>) => void, now?: number): Promise<string> {
  const { request } = await PQCHandshake.initiate(identity, { serverDid: SERVER.did, now });
  if (!edit) return request;
  const r = JSON.parse(request) as Record<string, unknown>;
  edit(r);
  return JSON.stringify(r);
}

/** A GET or DELETE of the endpoint with alice's envelope, signed for `signedFor`. */
async function bodyless(server: TestServer, method: 'GET' | 'DELETE', signedFor: { method: string; path: string }) {
  const envelope = await alice.envelope(signedFor.method, { path: signedFor.path });
  return alice.bodyless(method, envelope, undefined, server.url);
}

/** Sends a body of `total` bytes in chunks, with no content-length. */
function chunked(server: TestServer, total: number): Promise<Response> {
  let sent = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= total) return controller.close();
      controller.enqueue(new Uint8Array(16 * 1024).fill(0x20));
      sent += 16 * 1024;
    },
  });
  return fetch(server.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'PQC-Session': alice.session.sessionId },
    body: stream,
    duplex: 'half',
  } as RequestInit);
}

const CASES: Case[] = [
  // Bytes and JSON (docs/PROTOCOL.md §2), in a live session (an unknown one is refused before the body is read)
  { what: 'a body that is not JSON', status: 400, reason: 'malformed_json', send: () => post(a, '{"jsonrpc": "2.0", "id": 1,') },
  { what: 'invalid UTF-8 in a string', status: 400, reason: 'malformed_json', send: () => post(a, new Uint8Array([...utf8('{"a":"'), 0xff, ...utf8('"}')])) },
  { what: 'a byte-order mark before the JSON', status: 400, reason: 'malformed_json', send: async () => post(a, `\ufeff${(await call(alice)).text}`) },
  {
    what: 'duplicate keys (a second `id` ahead of the signed one)',
    status: 400,
    reason: 'malformed_json',
    send: async () => post(a, (await call(alice)).text.replace('{"jsonrpc":"2.0",', '{"jsonrpc":"2.0","id":99,')),
  },
  { what: '`NaN`, `Infinity` or a number that overflows (`1e400`)', status: 400, reason: 'malformed_json', send: () => post(a, '{"jsonrpc":"2.0","id":1e400}') },
  { what: 'nesting deeper than 64 levels', status: 400, reason: 'malformed_json', send: () => post(a, `${'['.repeat(65)}${']'.repeat(65)}`) },
  { what: 'a body past the limit, declared in content-length', status: 413, reason: 'body_too_large', send: () => post(a, `{"pad":"${'x'.repeat(70 * 1024)}"}`) },
  { what: 'a body past the limit, chunked, no content-length', status: 413, reason: 'body_too_large', send: () => chunked(a, 1024 * 1024) },
  // The session header and the envelope (§3 steps 2–3)
  { what: 'a signed request without the `PQC-Session` header', status: 401, reason: 'missing_envelope', send: async () => post(a, (await call(alice)).text, { 'PQC-Session': undefined }) },
  { what: 'a `PQC-Session` header that is not 32 lowercase hex characters', status: 400, reason: 'invalid_envelope', send: async () => post(a, (await call(alice)).text, { 'PQC-Session': alice.session.sessionId.toUpperCase() }) },
  {
    what: "a `PQC-Session` header naming another session than the message's",
    status: 400,
    reason: 'invalid_envelope',
    send: async () => post(a, (await call(alice)).text, { 'PQC-Session': bob.session.sessionId }),
  },
  { what: 'an unsigned JSON-RPC request', status: 401, reason: 'missing_envelope', send: () => post(a, '{"jsonrpc":"2.0","id":1,"method":"tools/list"}') },
  { what: 'an empty batch `[]`', status: 400, reason: 'invalid_envelope', send: () => post(a, '[]') },
  { what: '`_pqc` that is not an object', status: 400, reason: 'invalid_envelope', send: () => post(a, '{"jsonrpc":"2.0","id":1,"method":"x","_pqc":"sig"}') },
  {
    what: 'uppercase hex in the signature',
    status: 400,
    reason: 'invalid_envelope',
    send: async () => post(a, editEnvelope((await call(alice)).text, (e) => (e.signature = String(e.signature).toUpperCase()))),
  },
  {
    what: 'a signature of the wrong length for its algorithm',
    status: 400,
    reason: 'invalid_envelope',
    send: async () => post(a, editEnvelope((await call(alice)).text, (e) => (e.signature = String(e.signature).slice(0, -2)))),
  },
  { what: 'envelope version `v: 3`', status: 400, reason: 'unsupported_version', send: async () => post(a, editEnvelope((await call(alice)).text, (e) => (e.v = 3))) },
  {
    what: 'a v1 (pqc-mcp-transport) message while v1 is off (a v1 peer sends no `PQC-Session`)',
    status: 401,
    reason: 'missing_envelope',
    send: async () => post(a, (await alice.sign({ jsonrpc: '2.0', id: 1, method: 'tools/list' }, { profile: 1 })).text, { 'PQC-Session': undefined }),
  },
  {
    what: 'an algorithm outside the allow-list (`ML-DSA-99`)',
    status: 400,
    reason: 'unsupported_algorithm',
    send: async () => post(a, editEnvelope((await call(alice)).text, (e) => (e.algorithm = 'ML-DSA-99'))),
  },
  { what: 'a timestamp 10 minutes old', status: 401, reason: 'stale_timestamp', send: async () => post(a, (await call(alice, 'x', { now: Date.now() - 600_000 })).text) },
  { what: 'a timestamp 10 minutes ahead', status: 401, reason: 'stale_timestamp', send: async () => post(a, (await call(alice, 'x', { now: Date.now() + 600_000 })).text) },
  { what: 'a `Last-Event-ID` header (stream resumption)', status: 400, reason: 'invalid_envelope', send: async () => post(a, (await call(alice)).text, { 'Last-Event-ID': '1' }) },
  // The session and the signer (§3 steps 4–5)
  {
    what: 'a session id the servers never issued',
    status: 401,
    reason: 'unknown_session',
    send: async () => post(a, (await call(alice, 'x', { sessionId: '0f'.repeat(16) })).text, { 'PQC-Session': '0f'.repeat(16) }),
  },
  { what: 'a session past its expiry', status: 401, reason: 'session_expired', signed: true, send: async () => expired.post((await call(expired)).text) },
  { what: 'a session its client ended', status: 401, reason: 'unknown_session', signed: true, send: async () => ended.post((await call(ended)).text, {}, a.url) },
  {
    what: "another client's session id, signed with one's own key (session hijack)",
    status: 401,
    reason: 'peer_mismatch',
    send: async () => post(a, (await call(impostor(BOB))).text),
  },
  {
    what: "the victim's DID, another key, that key in `public_key`",
    status: 401,
    reason: 'peer_mismatch',
    send: async () => {
      const mallory = impostor();
      const forged = await mallory.signer.signMessage(message(mallory), { sessionId: alice.session.sessionId, includePublicKey: true, http: { method: 'POST', path: '/mcp', mcpSessionId: null } });
      return post(a, editEnvelope(forged.text, (e) => (e.signer_did = ALICE.did)));
    },
  },
  // The signature (§3 step 6)
  {
    what: "the victim's DID and session, signed with another key",
    status: 401,
    reason: 'invalid_signature',
    send: async () => post(a, editEnvelope((await call(impostor())).text, (e) => (e.signer_did = ALICE.did))),
  },
  { what: 'the body changed after signing', status: 401, reason: 'invalid_signature', send: async () => post(a, (await call(alice, 'pay 1')).text.replace('pay 1', 'pay 9')) },
  {
    what: 'an envelope member changed after signing (a fresh nonce to dodge replay)',
    status: 401,
    reason: 'invalid_signature',
    send: async () => post(a, editEnvelope((await call(alice)).text, (e) => (e.nonce = 'ab'.repeat(16)))),
  },
  {
    what: 'an unknown envelope member added after signing',
    status: 401,
    reason: 'invalid_signature',
    send: async () => post(a, editEnvelope((await call(alice)).text, (e) => (e.note = 'added'))),
  },
  {
    what: "one message's signature moved onto another",
    status: 401,
    reason: 'invalid_signature',
    send: async () => {
      const x = await call(alice, 'x');
      const y = await call(alice, 'y');
      return post(a, editEnvelope(x.text, (e) => (e.signature = y.envelope.signature)));
    },
  },
  // Replay and binding (§3 steps 7–8), across instances
  {
    what: 'a request replayed on the same instance',
    status: 401,
    reason: 'replay_detected',
    send: async () => {
      const signed = await call(alice);
      await (await post(a, signed.text)).arrayBuffer();
      return post(a, signed.text);
    },
  },
  {
    what: 'a request replayed on another instance (shared Redis)',
    status: 401,
    reason: 'replay_detected',
    send: async () => {
      const signed = await call(alice);
      await (await post(a, signed.text)).arrayBuffer();
      return post(b, signed.text);
    },
  },
  { what: 'a request signed for another path or query (`http`)', status: 401, reason: 'target_mismatch', send: async () => post(a, (await call(alice, 'x', { path: '/mcp?as=admin' })).text) },
  { what: 'a batch mixing two sessions', status: 400, reason: 'invalid_envelope', send: async () => post(a, `[${(await call(alice)).text},${(await call(bob)).text}]`) },
  {
    what: 'a batch with one forged element (the whole batch is refused)',
    status: 401,
    reason: 'invalid_signature',
    send: async () => post(a, `[${(await call(alice, 'ok')).text},${(await call(alice, 'pay 1')).text.replace('pay 1', 'pay 9')}]`),
  },
  // Bodyless requests (§4)
  { what: 'GET without a `PQC-Envelope` header', status: 401, reason: 'missing_envelope', send: () => fetch(a.url, { headers: { accept: 'text/event-stream' } }) },
  { what: 'GET with an envelope signed for another path', status: 401, reason: 'invalid_signature', send: () => bodyless(a, 'GET', { method: 'GET', path: '/elsewhere' }) },
  { what: "DELETE with a GET's envelope", status: 401, reason: 'invalid_signature', send: () => bodyless(a, 'DELETE', { method: 'GET', path: '/mcp' }) },
  {
    what: 'a GET envelope replayed on another instance',
    status: 401,
    reason: 'replay_detected',
    send: async () => {
      const headers = { [PQC_ENVELOPE_HEADER]: await alice.envelope('GET'), accept: 'text/event-stream' };
      await (await fetch(a.url, { headers })).arrayBuffer();
      return fetch(b.url, { headers });
    },
  },
  // The handshake (§5)
  { what: 'handshake: not JSON', status: 400, reason: 'malformed_json', send: () => postHandshake(a, '{"type":') },
  { what: 'handshake: a byte-order mark before the JSON', status: 400, reason: 'malformed_json', send: async () => postHandshake(a, `\ufeff${await handshakeRequest(MALLORY)}`) },
  { what: 'handshake: not a handshake request', status: 401, reason: 'handshake_failed', send: () => postHandshake(a, '{"type":"hello"}') },
  { what: 'handshake: v1 while v1 is off', status: 400, reason: 'unsupported_version', send: async () => postHandshake(a, await handshakeRequest(MALLORY, (r) => delete r.v)) },
  {
    what: 'handshake: an algorithm outside the allow-list',
    status: 400,
    reason: 'unsupported_algorithm',
    send: async () => postHandshake(a, await handshakeRequest(MALLORY, (r) => (r.algorithm = 'RSA'))),
  },
  {
    what: 'handshake: a public key of the wrong length',
    status: 400,
    reason: 'invalid_envelope',
    send: async () => postHandshake(a, await handshakeRequest(MALLORY, (r) => (r.client_public_key = String(r.client_public_key).slice(2)))),
  },
  {
    what: "handshake: someone else's DID with one's own key",
    status: 401,
    reason: 'did_mismatch',
    send: async () => postHandshake(a, await handshakeRequest(MALLORY, (r) => (r.client_did = ALICE.did))),
  },
  {
    what: 'handshake: a request meant for another server (`server_did`), relayed',
    status: 401,
    reason: 'peer_mismatch',
    send: async () => postHandshake(a, (await PQCHandshake.initiate(MALLORY, { serverDid: OTHER_SERVER.did })).request),
  },
  { what: 'handshake: a timestamp 10 minutes old', status: 401, reason: 'stale_timestamp', send: async () => postHandshake(a, await handshakeRequest(MALLORY, undefined, Date.now() - 600_000)) },
  {
    what: 'handshake: the signature of another request',
    status: 401,
    reason: 'invalid_signature',
    send: async () => {
      const other = JSON.parse(await handshakeRequest(MALLORY)) as { signature: string };
      return postHandshake(a, await handshakeRequest(MALLORY, (r) => (r.signature = other.signature)));
    },
  },
  {
    what: 'handshake: a request replayed on another instance',
    status: 401,
    reason: 'replay_detected',
    send: async () => {
      const request = await handshakeRequest(MALLORY);
      await (await postHandshake(a, request)).arrayBuffer();
      return postHandshake(b, request);
    },
  },
  { what: 'handshake: a client the server does not authorize', status: 403, reason: 'peer_not_authorized', send: async () => postHandshake(a, await handshakeRequest(OUTSIDER)) },
  { what: 'handshake: a timestamp that is not RFC 3339', status: 400, reason: 'invalid_envelope', send: async () => postHandshake(a, await handshakeRequest(MALLORY, (r) => (r.timestamp = 'yesterday'))) },
  // The store
  { what: 'a valid request while Redis is unreachable', status: 503, reason: 'store_unavailable', send: async () => onDead.post((await call(onDead)).text) },
  { what: 'a valid handshake while Redis is unreachable', status: 503, reason: 'store_unavailable', send: async () => postHandshake(deadStore, await handshakeRequest(MALLORY)) },
];

const rows: string[] = [];

describe('hostile input catalogue (two instances on Redis)', () => {
  test.each(CASES.map((c) => [c.what, c.status, c.reason, c] as const))('%s → %i %s', async (_what, status, reason, c) => {
    const response = await c.send();
    const text = await response.text();
    expect({ status: response.status, body: text }).toMatchObject({ status });
    const body = JSON.parse(text) as { id: unknown; error: { code: number; message: string; data: { pqc: string } } };
    expect(body.error.code).toBe(-32010);
    expect(body.error.data).toEqual({ pqc: reason });
    // §6: the reason, and at most a human-readable detail after it.
    expect(body.error.message).toMatch(new RegExp(`^PQC authentication failed: ${reason}(: .+)?$`));
    // Only a rejection in a session the servers still record is signed (§6); every other one is unsigned.
    expect({ signed: text.includes('"_pqc"') }).toEqual({ signed: c.signed === true });
    if (status === 401) expect(response.headers.get('www-authenticate')).toMatch(/^PQC handshake="http:\/\/127\.0\.0\.1:\d+\/pqc\/handshake"$/);
    if (status === 503) expect(response.headers.get('retry-after')).toBe('1');
    rows.push(catalogueRow(c));
  });

  test('no rejected request reached the application', () => {
    for (const s of [a, b, shortTtl, deadStore]) {
      expect(JSON.stringify(s.seen)).not.toContain('pay 9');
      expect(JSON.stringify(s.seen)).not.toContain('_pqc');
    }
  });

  test('the hostile input catalogue (docs/HOSTILE-INPUTS.md) lists every case with the answer the server gave', () => {
    const doc = readFileSync(HOSTILE_MD, 'utf8');
    const missing = CASES.map(catalogueRow).filter((row) => !doc.includes(row));
    if (missing.length > 0) console.log(`docs/HOSTILE-INPUTS.md lacks these rows (as the tests answered them):\n${missing.join('\n')}`);
    expect(missing).toEqual([]);
    expect(rows.length).toBe(CASES.length);
  });
});

function catalogueRow(c: Case): string {
  return `| ${c.what} | ${c.status} | \`${c.reason}\`${c.signed ? ', signed' : ''} |`;
}

// For when a row changes: `PRINT_CATALOGUE=1 npx jest --selectProjects redis --testPathPatterns hostile` prints the table.
afterAll(() => {
  if (process.env.PRINT_CATALOGUE) console.log(['| what was sent | HTTP | `error.data.pqc` |', '|---|---|---|', ...CASES.map(catalogueRow)].join('\n'));
});
