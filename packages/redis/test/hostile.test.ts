/**
 * The hostile input catalogue: each thing an attacker (or a broken peer) can send, and what the server answers,
 * against two instances sharing Redis. Every row here is also a row of the README's hostile input catalogue, checked below, so
 * the catalogue in the docs is the one the tests run.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { MessageSigner, PQCHandshake, PQC_ENVELOPE_HEADER, utf8 } from '@pqc-mcp/core';
import { RedisSessionStore } from '../src/index.js';
import { freePort, seededIdentity } from '@pqc-mcp/test-kit';
import {
  REDIS_URL,
  RawClient,
  connectTestRedis,
  deletePrefix,
  sleep,
  startServer,
  uniquePrefix,
  type RawRedis,
  type TestServer,
} from './helpers.js';

const SERVER = seededIdentity(81);
const ALICE = seededIdentity(82);
const BOB = seededIdentity(83);
const MALLORY = seededIdentity(84);
const OUTSIDER = seededIdentity(85);
const HOSTILE_MD = path.resolve(__dirname, '../../../README.md');

interface Case {
  what: string;
  status: number;
  reason: string;
  send: () => Promise<Response>;
}

let redis: RawRedis;
const prefixes: string[] = [];
const stores: RedisSessionStore[] = [];
const servers: TestServer[] = [];
let a: TestServer;
let b: TestServer;
let limited: TestServer;
let shortTtl: TestServer;
let deadStore: TestServer;
let alice: RawClient;
let bob: RawClient;
let expired: RawClient;
let onDead: RawClient;

function store(keyPrefix: string, url = REDIS_URL): RedisSessionStore {
  const s = new RedisSessionStore({ url, keyPrefix, connectTimeoutMs: 300 });
  stores.push(s);
  return s;
}

async function server(options: Parameters<typeof startServer>[0]): Promise<TestServer> {
  const s = await startServer(options);
  servers.push(s);
  return s;
}

beforeAll(async () => {
  redis = await connectTestRedis();
  const prefix = uniquePrefix('hostile');
  const limitedPrefix = uniquePrefix('hostile-limited');
  prefixes.push(prefix, limitedPrefix);
  const common = { identity: SERVER, maxBodyBytes: 64 * 1024, authorize: (peer: { did: string }) => peer.did !== OUTSIDER.did };
  a = await server({ ...common, store: store(prefix) });
  b = await server({ ...common, store: store(prefix) });
  limited = await server({ identity: SERVER, maxSessions: 1, store: store(limitedPrefix) });
  shortTtl = await server({ identity: SERVER, sessionTtlSec: 1, store: store(prefix) });
  alice = new RawClient(ALICE, SERVER.did);
  bob = new RawClient(BOB, SERVER.did);
  await alice.handshake(a.url);
  await bob.handshake(b.url);
  await new RawClient(ALICE, SERVER.did).handshake(limited.url);
  expired = new RawClient(ALICE, SERVER.did);
  await expired.handshake(shortTtl.url);
  // A server whose Redis is not there: a session made on a healthy store is asked for where none can be read.
  onDead = new RawClient(ALICE, SERVER.did);
  onDead.session = alice.session;
  deadStore = await server({ identity: SERVER, store: store(prefix, `redis://127.0.0.1:${await freePort()}`) });
  await sleep(1100); // the short-TTL session is now expired
});

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await Promise.all(stores.map((s) => s.close()));
  for (const prefix of prefixes) await deletePrefix(redis, prefix);
  await redis.close();
});

const call = (client: RawClient, text = 'x') => client.toolCall('echo', { text });
const post = (server: TestServer, body: string | Uint8Array) =>
  fetch(server.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: body as BodyInit,
  });
const postHandshake = (server: TestServer, body: string) => fetch(new URL('pqc/handshake', server.url), { method: 'POST', body });

/** Edits the envelope of a signed message's text after signing. */
function editEnvelope(text: string, edit: (env: Record<string, unknown>) => void): string {
  const message = JSON.parse(text) as { _pqc: Record<string, unknown> };
  edit(message._pqc);
  return JSON.stringify(message);
}

async function handshakeRequest(identity = MALLORY, edit?: (r: Record<string, unknown>) => void, now?: number): Promise<string> {
  const { request } = await PQCHandshake.initiate(identity, now === undefined ? {} : { now });
  if (!edit) return request;
  const r = JSON.parse(request) as Record<string, unknown>;
  edit(r);
  return JSON.stringify(r);
}

async function bodyless(client: RawClient, server: TestServer, method: 'GET' | 'DELETE', signedFor: { method: string; path: string }) {
  const signed = await client.sign({ http: { method: signedFor.method, path: signedFor.path, mcp_session_id: null } });
  const send = () => fetch(server.url, { method, headers: { [PQC_ENVELOPE_HEADER]: JSON.stringify(signed.envelope), accept: 'text/event-stream' } });
  return { signed, send };
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
  return fetch(server.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: stream, duplex: 'half' } as RequestInit);
}

const CASES: Case[] = [
  // Bytes and JSON (docs/PROTOCOL.md §2)
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
  // The envelope (§3 steps 2–3)
  { what: 'an unsigned JSON-RPC request', status: 401, reason: 'missing_envelope', send: () => post(a, '{"jsonrpc":"2.0","id":1,"method":"tools/list"}') },
  { what: 'an empty batch `[]`', status: 401, reason: 'missing_envelope', send: () => post(a, '[]') },
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
    what: 'a v1 (seed-format) message while v1 is off',
    status: 400,
    reason: 'unsupported_version',
    send: async () =>
      post(a, (await alice.signer.signMessage({ jsonrpc: '2.0', id: 1, method: 'tools/list' }, { profile: 1, sessionId: alice.session.sessionId })).text),
  },
  {
    what: 'an algorithm outside the allow-list (`ML-DSA-99`)',
    status: 400,
    reason: 'unsupported_algorithm',
    send: async () => post(a, editEnvelope((await call(alice)).text, (e) => (e.algorithm = 'ML-DSA-99'))),
  },
  {
    what: 'a timestamp 10 minutes old',
    status: 401,
    reason: 'stale_timestamp',
    send: async () => post(a, (await alice.sign({ jsonrpc: '2.0', id: 1, method: 'tools/list' }, { now: Date.now() - 600_000 })).text),
  },
  {
    what: 'a timestamp 10 minutes ahead',
    status: 401,
    reason: 'stale_timestamp',
    send: async () => post(a, (await alice.sign({ jsonrpc: '2.0', id: 1, method: 'tools/list' }, { now: Date.now() + 600_000 })).text),
  },
  // The session (§3 steps 4–5)
  {
    what: 'a session id the servers never issued',
    status: 401,
    reason: 'unknown_session',
    send: async () => post(a, (await new MessageSigner(ALICE).signMessage({ jsonrpc: '2.0', id: 1, method: 'x' }, { sessionId: '0f'.repeat(16) })).text),
  },
  { what: 'a session past its expiry', status: 401, reason: 'session_expired', send: async () => post(shortTtl, (await call(expired)).text) },
  {
    what: "another client's session id, signed with one's own key (session hijack)",
    status: 401,
    reason: 'peer_mismatch',
    send: async () => post(a, (await bob.signer.signMessage({ jsonrpc: '2.0', id: 1, method: 'tools/list' }, { sessionId: alice.session.sessionId })).text),
  },
  {
    what: "the victim's DID, another key, that key in `public_key`",
    status: 401,
    reason: 'peer_mismatch',
    send: async () => {
      const forged = await new MessageSigner(MALLORY).signMessage({ jsonrpc: '2.0', id: 1, method: 'x' }, { sessionId: alice.session.sessionId, includePublicKey: true });
      return post(a, editEnvelope(forged.text, (e) => (e.signer_did = ALICE.did)));
    },
  },
  // The signature (§3 step 6)
  {
    what: "the victim's DID and session, signed with another key",
    status: 401,
    reason: 'invalid_signature',
    send: async () => {
      const forged = await new MessageSigner(MALLORY).signMessage({ jsonrpc: '2.0', id: 1, method: 'x' }, { sessionId: alice.session.sessionId });
      return post(a, editEnvelope(forged.text, (e) => (e.signer_did = ALICE.did)));
    },
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
  // Replay (§3 step 7), across instances
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
  {
    what: 'a batch mixing two sessions',
    status: 401,
    reason: 'peer_mismatch',
    send: async () => post(a, `[${(await call(alice)).text},${(await call(bob)).text}]`),
  },
  {
    what: 'a batch with one forged element (the whole batch is refused)',
    status: 401,
    reason: 'invalid_signature',
    send: async () => post(a, `[${(await call(alice, 'ok')).text},${(await call(alice, 'pay 1')).text.replace('pay 1', 'pay 9')}]`),
  },
  // Bodyless requests (§4)
  { what: 'GET without a `PQC-Envelope` header', status: 401, reason: 'missing_envelope', send: () => fetch(a.url, { headers: { accept: 'text/event-stream' } }) },
  { what: 'GET with an envelope signed for another path', status: 401, reason: 'invalid_signature', send: async () => (await bodyless(alice, a, 'GET', { method: 'GET', path: '/elsewhere' })).send() },
  { what: "DELETE with a GET's envelope", status: 401, reason: 'invalid_signature', send: async () => (await bodyless(alice, a, 'DELETE', { method: 'GET', path: '/mcp' })).send() },
  {
    what: 'a GET envelope replayed on another instance',
    status: 401,
    reason: 'replay_detected',
    send: async () => {
      const { signed } = await bodyless(alice, a, 'GET', { method: 'GET', path: '/mcp' });
      const headers = { [PQC_ENVELOPE_HEADER]: JSON.stringify(signed.envelope), accept: 'text/event-stream' };
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
  { what: 'handshake: past `maxSessions` (counted over every instance)', status: 503, reason: 'too_many_sessions', send: async () => postHandshake(limited, await handshakeRequest(MALLORY)) },
  { what: 'handshake: a timestamp that is not RFC 3339', status: 400, reason: 'invalid_envelope', send: async () => postHandshake(a, await handshakeRequest(MALLORY, (r) => (r.timestamp = 'yesterday'))) },
  // The store
  { what: 'a valid request while Redis is unreachable', status: 503, reason: 'store_unavailable', send: async () => post(deadStore, (await call(onDead)).text) },
  { what: 'a valid handshake while Redis is unreachable', status: 503, reason: 'store_unavailable', send: async () => postHandshake(deadStore, await handshakeRequest(MALLORY)) },
];

const rows: string[] = [];

describe('hostile input catalogue (two instances on Redis)', () => {
  test.each(CASES.map((c) => [c.what, c.status, c.reason, c] as const))('%s → %i %s', async (_what, status, reason, c) => {
    const response = await c.send();
    const text = await response.text();
    expect({ status: response.status, body: text }).toMatchObject({ status });
    const body = JSON.parse(text) as { id: unknown; error: { code: number; message: string; data: { pqc: string } } };
    expect(body.error).toEqual({ code: -32010, message: `PQC authentication failed: ${reason}`, data: { pqc: reason } });
    expect(text).not.toContain('_pqc'); // rejections are unsigned
    if (status === 401) expect(response.headers.get('www-authenticate')).toMatch(/^PQC handshake="/);
    if (status === 503) expect(response.headers.get('retry-after')).toBe('1');
    rows.push(catalogueRow(c));
  });

  test('no rejected request reached the application', () => {
    for (const s of [a, b, limited, shortTtl, deadStore]) {
      expect(JSON.stringify(s.seen)).not.toContain('pay 9');
      expect(JSON.stringify(s.seen)).not.toContain('_pqc');
    }
  });

  test('the README hostile input catalogue lists every case with the answer the server gave', () => {
    const doc = readFileSync(HOSTILE_MD, 'utf8');
    const missing = CASES.map(catalogueRow).filter((row) => !doc.includes(row));
    if (missing.length > 0) console.log(`README.md (hostile input catalogue) lacks these rows (as the tests answered them):\n${missing.join('\n')}`);
    expect(missing).toEqual([]);
    expect(rows.length).toBe(CASES.length);
  });
});

function catalogueRow(c: Case): string {
  return `| ${c.what} | ${c.status} | \`${c.reason}\` |`;
}

// For when a row changes: `PRINT_CATALOGUE=1 npx jest packages/redis/test/hostile.test.ts` prints the table.
afterAll(() => {
  if (process.env.PRINT_CATALOGUE) console.log(['| what was sent | HTTP | `error.data.pqc` |', '|---|---|---|', ...CASES.map(catalogueRow)].join('\n'));
});

