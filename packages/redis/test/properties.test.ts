/**
 * Property-based tests (fast-check) against the real handler (`createPQCHandler`) behind node:http, its sessions and
 * nonces in a real Redis: the canonical form, the signature over it, any interleaving of sends, replays, races and
 * session ends over two instances, and a server under random junk.
 * Seeds are printed by fast-check on failure; `FC_SEED=<n>` replays one.
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import {
  MessageSigner,
  PQCHandshake,
  REASON_HTTP_STATUS,
  canonicalJson,
  isPQCReason,
  parseLossless,
  type JsonValue,
  type PQCReason,
} from '@pqc-mcp/core';
import { RawClient, report, seededIdentity } from '@pqc-mcp/test-kit';
import { RedisSessionStore } from '../src/index.js';
import {
  REDIS_URL,
  connectTestRedis,
  deletePrefix,
  rejectionOf,
  startServer,
  trackUnhandledRejections,
  uniquePrefix,
  type RawRedis,
  type TestServer,
} from './helpers.js';

const seed = process.env.FC_SEED === undefined ? undefined : Number(process.env.FC_SEED);
const runs = (numRuns: number): fc.Parameters<unknown> => (seed === undefined ? { numRuns } : { numRuns, seed });

let redis: RawRedis;
const prefixes: string[] = [];
const stores: RedisSessionStore[] = [];

function redisStore(keyPrefix = uniquePrefix('properties')): RedisSessionStore {
  if (!prefixes.includes(keyPrefix)) prefixes.push(keyPrefix);
  const store = new RedisSessionStore({ url: REDIS_URL, keyPrefix });
  stores.push(store);
  return store;
}

beforeAll(async () => {
  redis = await connectTestRedis();
});

afterAll(async () => {
  await Promise.all(stores.map((s) => s.close()));
  for (const prefix of prefixes) await deletePrefix(redis, prefix);
  await redis.close();
});

/** docs/PROTOCOL.md §2 on a received text: the strict lossless parse, then the canonical form. */
const canonicalText = (text: string | Uint8Array) => canonicalJson(parseLossless(text));
const utf8 = (text: string) => new TextEncoder().encode(text);
const sha3Hex = (text: string) => createHash('sha3-256').update(text, 'utf8').digest('hex');

// ---------------------------------------------------------------------------------------------------------------
// Canonical form

/** A small deterministic PRNG (mulberry32), so one generated integer drives every choice of a serialization. */
function prng(state: number): () => number {
  let a = state >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WHITESPACE = [' ', '\t', '\n', '\r', '  ', ''];

/**
 * Writes `value` as JSON with keys in a random order, random whitespace between tokens, characters of strings randomly
 * written as `\uXXXX` (upper- or lowercase hex), and floats randomly in exponent form: the same JSON value every time.
 */
function scramble(value: unknown, random: () => number): string {
  const ws = () => (random() < 0.5 ? '' : WHITESPACE[Math.floor(random() * WHITESPACE.length)]!);
  const str = (s: string): string => {
    let out = '"';
    for (const ch of JSON.stringify(s).slice(1, -1).match(/\\u[0-9a-f]{4}|\\.|[^\\]/gi) ?? []) {
      if (ch.length === 1 && random() < 0.2) {
        const hex = ch.charCodeAt(0).toString(16).padStart(4, '0');
        out += `\\u${random() < 0.5 ? hex : hex.toUpperCase()}`;
      } else out += ch;
    }
    return `${out}"`;
  };
  const write = (v: unknown): string => {
    if (v === null || typeof v === 'boolean') return String(v);
    if (typeof v === 'number') {
      const lexeme = JSON.stringify(v);
      // A float stays a float (Python reads it so) in any spelling of the same double.
      return /[.eE]/.test(lexeme) && random() < 0.5 ? v.toExponential() : lexeme;
    }
    if (typeof v === 'string') return str(v);
    if (Array.isArray(v)) return `[${ws()}${v.map((x) => write(x)).join(`${ws()},${ws()}`)}${ws()}]`;
    const keys = Object.keys(v as object);
    for (let i = keys.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [keys[i], keys[j]] = [keys[j]!, keys[i]!];
    }
    const members = keys.map((k) => `${ws()}${str(k)}${ws()}:${ws()}${write((v as Record<string, unknown>)[k])}${ws()}`);
    return `{${members.join(',')}${ws()}}`;
  };
  return `${ws()}${write(value)}${ws()}`;
}

const jsonValues = fc.jsonValue({ maxDepth: 6, stringUnit: 'binary' });

describe('canonical form (docs/PROTOCOL.md §2)', () => {
  test('idempotent, independent of key order, whitespace, escapes and float spelling, and the same value', () => {
    fc.assert(
      fc.property(jsonValues, fc.integer(), fc.integer(), (value, seedA, seedB) => {
        const plain = JSON.stringify(value);
        const canonical = canonicalText(plain);
        expect(canonicalText(canonical)).toBe(canonical);
        expect(canonicalText(scramble(value, prng(seedA)))).toBe(canonical);
        expect(canonicalText(scramble(value, prng(seedB)))).toBe(canonical);
        expect(/^[\x20-\x7e]*$/.test(canonical)).toBe(true); // pure printable ASCII, no whitespace outside strings
        expect(JSON.parse(canonical)).toEqual(JSON.parse(plain));
      }),
      runs(1000),
    );
  });

  test('two values with the same canonical form are the same value', () => {
    fc.assert(
      fc.property(jsonValues, jsonValues, (a, b) => {
        const same = canonicalText(JSON.stringify(a)) === canonicalText(JSON.stringify(b));
        if (same) expect(JSON.parse(JSON.stringify(a))).toEqual(JSON.parse(JSON.stringify(b)));
      }),
      runs(500),
    );
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Single-byte changes to the signed part

describe('any single-byte change to the signed part of a message is rejected by a server on Redis', () => {
  const SERVER = seededIdentity(61);
  const SIGNER = seededIdentity(62);

  test('flip one byte of the canonical signed members, rebuild the message, POST it in the session: never accepted', async () => {
    const server = await startServer({ identity: SERVER, store: redisStore() }, { app: async (_request, body) => Response.json({ jsonrpc: '2.0', id: (body as { id: number }).id, result: {} }) });
    try {
      const client = new RawClient(server.url, SIGNER, SERVER.did);
      await client.handshake();
      // Signed once: a message with unicode, floats kept as written, nesting, and the envelope's http binding.
      const text =
        '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"text":"héllo 😀 \\u0001","n":[7.0,1e-07,-0,12345678901234567890],"deep":{"a":{"b":[true,false,null]}}}}}';
      const signed = await client.sign(text);
      // The signed part as the receiver rebuilds it from the wire text (§3: the message with `_pqc` without its
      // signature, in canonical form, numbers as written): what was signed.
      const tree = parseLossless(signed.text) as Map<string, JsonValue>;
      (tree.get('_pqc') as Map<string, JsonValue>).delete('signature');
      const signedPart = canonicalJson(tree);
      expect(sha3Hex(signedPart)).toBe(signed.digest);
      const original = await MessageSigner.verifyMessage(signed.text, { peer: SIGNER.toPeer() });
      expect(original.valid).toBe(true);
      expect(original.digest).toBe(signed.digest);
      const signedBytes = utf8(signedPart);
      const anchor = '"_pqc":{';
      const insertAt = signedPart.indexOf(anchor) + anchor.length;
      expect(insertAt).toBeGreaterThan(anchor.length - 1);
      const sigMember = utf8(`"signature":"${signed.envelope.signature}",`);
      const wireOf = (bytes: Uint8Array) => {
        const wire = new Uint8Array(bytes.length + sigMember.length);
        wire.set(bytes.subarray(0, insertAt), 0);
        wire.set(sigMember, insertAt);
        wire.set(bytes.subarray(insertAt), insertAt + sigMember.length);
        return wire;
      };
      const canonicalOf = (bytes: Uint8Array): string | undefined => {
        try {
          return canonicalJson(parseLossless(new TextDecoder('utf-8', { fatal: true }).decode(bytes)));
        } catch {
          return undefined;
        }
      };
      const reasons: Record<string, number> = {};
      // Half the changes flip random bits; half put another hex digit or letter in place, which keeps the JSON (and a
      // hex member's shape) valid far more often, so the signature check itself is what refuses them.
      const ALNUM = utf8('0123456789abcdefxyz');
      const change = fc.oneof(
        fc.integer({ min: 1, max: 255 }).map((mask) => (b: number) => b ^ mask),
        fc.nat({ max: ALNUM.length - 2 }).map((k) => (b: number) => {
          const others = ALNUM.filter((c) => c !== b);
          return others[k % others.length]!;
        }),
      );

      await fc.assert(
        fc.asyncProperty(fc.nat({ max: signedBytes.length - 1 }), change, async (position, changeByte) => {
          const tampered = signedBytes.slice();
          tampered[position] = changeByte(tampered[position]!);
          expect(tampered[position]).not.toBe(signedBytes[position]);
          // What is signed is the canonical form (§2, §3): a change that canonicalizes back to the very same text
          // (`1e-07` → `1E-07`, `\u00e9` → `\u00E9`) is the same signed message, not a forgery; it is left out.
          fc.pre(canonicalOf(tampered) !== signedPart);
          const wire = wireOf(tampered);
          const rejection = await rejectionOf(await client.post(wire as unknown as string));
          expect(rejection.status).not.toBe(200);
          expect(rejection.signed).toBe(false);
          expect(server.seen).toEqual([]);
          // The signature alone never holds either (no replay cache in the way).
          expect((await MessageSigner.verifyMessage(wire, { peer: SIGNER.toPeer() })).valid).toBe(false);
          reasons[`${rejection.status} ${rejection.reason}`] = (reasons[`${rejection.status} ${rejection.reason}`] ?? 0) + 1;
        }),
        runs(300),
      );
      // The original, rebuilt the same way, is accepted: the flips above were the only difference, and none of them
      // recorded its nonce (a forged message cannot burn the client's nonce).
      const accepted = await client.post(wireOf(signedBytes) as unknown as string);
      expect(accepted.status).toBe(200);
      expect(await client.verified(accepted, signed.nonce)).toMatchObject([{ id: 7, result: {} }]);
      expect(server.seen).toHaveLength(1);
      report(`[property] ${signedBytes.length}-byte signed part, 300 single-byte flips → rejected as ${JSON.stringify(reasons)}`);
    } finally {
      await server.close();
    }
  }, 120_000);
});

// ---------------------------------------------------------------------------------------------------------------
// Sends, replays, races and ends over two instances

describe('nonce and session handling over two instances sharing Redis', () => {
  const SERVER = seededIdentity(63, 'ML-DSA-44');
  const CLIENT = seededIdentity(64, 'ML-DSA-44');
  let servers: TestServer[];

  beforeAll(async () => {
    const keyPrefix = uniquePrefix('properties-pair');
    const app = async (_request: Request, body: unknown) => Response.json({ jsonrpc: '2.0', id: (body as { id: number }).id, result: { ok: true } });
    servers = [await startServer({ identity: SERVER, store: redisStore(keyPrefix) }, { app }), await startServer({ identity: SERVER, store: redisStore(keyPrefix) }, { app })];
  });
  afterAll(() => Promise.all(servers.map((s) => s.close())));

  type Op =
    | { kind: 'send'; on: number }
    | { kind: 'replay'; pick: number; on: number }
    | { kind: 'race'; first: number }
    | { kind: 'end'; on: number };
  const on = fc.integer({ min: 0, max: 1 });
  const op: fc.Arbitrary<Op> = fc.oneof(
    { weight: 4, arbitrary: on.map((n) => ({ kind: 'send', on: n }) as const) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('replay' as const), pick: fc.nat(), on }) },
    { weight: 2, arbitrary: on.map((n) => ({ kind: 'race', first: n }) as const) },
    { weight: 1, arbitrary: on.map((n) => ({ kind: 'end', on: n }) as const) },
  );

  test('every signed request is run at most once, on whichever instance it reaches first; replays and ends are shared', async () => {
    const tally: Record<string, number> = {};
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 12 }), async (ops) => {
        const client = new RawClient(servers[0]!.url, CLIENT, SERVER.did);
        await client.handshake();
        const seenBefore = servers[0]!.seen.length + servers[1]!.seen.length;
        let live = true;
        let ran = 0;
        const sent: string[] = [];
        /** The answer the model expects to a new request: run while the session lives, else told (signed) it ended. */
        const expectFresh = async (response: Response, nonce: string) => {
          if (live) {
            expect(response.status).toBe(200);
            expect(await client.verified(response, nonce)).toMatchObject([{ result: { ok: true } }]);
            ran++;
          } else {
            expect(response.status).toBe(401);
            expect(await client.verified(response, nonce)).toMatchObject([{ error: { data: { pqc: 'unknown_session' } } }]);
          }
        };
        for (const o of ops) {
          tally[o.kind] = (tally[o.kind] ?? 0) + 1;
          if (o.kind === 'send') {
            const signed = await client.sign({ jsonrpc: '2.0', id: client.id(), method: 'tools/list' });
            await expectFresh(await client.post(signed.text, {}, servers[o.on]!.url), signed.nonce);
            sent.push(signed.text);
          } else if (o.kind === 'replay') {
            if (sent.length === 0) continue;
            const text = sent[o.pick % sent.length]!;
            expect(await rejectionOf(await client.post(text, {}, servers[o.on]!.url))).toEqual({ status: 401, reason: 'replay_detected', signed: false });
          } else if (o.kind === 'race') {
            const signed = await client.sign({ jsonrpc: '2.0', id: client.id(), method: 'tools/list' });
            const order = [servers[o.first]!, servers[1 - o.first]!];
            const responses = await Promise.all(order.map((s) => client.post(signed.text, {}, s.url)));
            // Exactly one of the two is the request's answer; the other is a replay, unsigned.
            const outcomes = await Promise.all(responses.map((r) => rejectionOf(r.clone())));
            const replays = outcomes.filter((r) => r.reason === 'replay_detected');
            expect(replays).toEqual([{ status: 401, reason: 'replay_detected', signed: false }]);
            await expectFresh(responses[outcomes.findIndex((r) => r.reason !== 'replay_detected')]!, signed.nonce);
            sent.push(signed.text);
          } else {
            const ender = new RawClient(servers[o.on]!.url, CLIENT, SERVER.did);
            ender.session = client.session;
            const response = await ender.endSession();
            if (live) expect(response.status).toBe(204);
            else expect(await rejectionOf(response)).toEqual({ status: 401, reason: 'unknown_session', signed: true });
            await response.arrayBuffer().catch(() => {});
            live = false;
          }
        }
        // The application ran exactly the requests the model says ran, once each, across both instances.
        expect(servers[0]!.seen.length + servers[1]!.seen.length - seenBefore).toBe(ran);
      }),
      runs(30),
    );
    report(`[property] two instances on Redis, 30 random runs: operations ${JSON.stringify(tally)}`);
  }, 120_000);
});

// ---------------------------------------------------------------------------------------------------------------
// Junk bodies against a running server

describe('random junk never crashes a server on Redis and always gets a §6 error', () => {
  const SERVER = seededIdentity(71, 'ML-DSA-44');
  const CLIENT = seededIdentity(72, 'ML-DSA-44');
  const LIMIT = 8192;
  let server: TestServer;
  let client: RawClient;
  let validText: string;
  let unhandled: ReturnType<typeof trackUnhandledRejections>;
  const statuses: Record<string, number> = {};

  beforeAll(async () => {
    unhandled = trackUnhandledRejections();
    server = await startServer({ identity: SERVER, store: redisStore(), maxBodyBytes: LIMIT });
    client = new RawClient(server.url, CLIENT, SERVER.did);
    await client.handshake();
    validText = (await client.sign({ jsonrpc: '2.0', id: client.id(), method: 'tools/call', params: { name: 'echo', arguments: { text: 'valid' } } })).text;
    // Sent once: a splice that changes nothing signed (whitespace, an escape) is then this same message, a replay.
    const first = await client.post(validText);
    expect(first.status).toBe(200);
    await first.arrayBuffer();
  });

  afterAll(async () => {
    await server.close();
    unhandled.stop();
    report(`[property] junk answers (status reason → count): ${JSON.stringify(statuses)}`);
  });

  const hex = (bytes: number) => fc.uint8Array({ minLength: bytes, maxLength: bytes }).map((b) => Buffer.from(b).toString('hex'));
  const did = fc.oneof(hex(32).map((h) => `did:pqaid:${h}`), fc.string());
  const timestamp = (offsetMs: number) => new Date(Date.now() + offsetMs).toISOString();
  const envelope = () =>
    fc.oneof(
      fc.jsonValue({ maxDepth: 2 }),
      fc.record(
        {
          v: fc.oneof(fc.constant(2), fc.constant(1), fc.constant('2'), fc.double()),
          signer_did: fc.oneof(did, fc.constant(CLIENT.did)),
          algorithm: fc.oneof(fc.constantFrom('ML-DSA-44', 'ML-DSA-65', 'ML-DSA-87', 'ml-dsa-44', 'Ed25519'), fc.string()),
          timestamp: fc.oneof(fc.integer({ min: -600_000, max: 600_000 }).map(timestamp), fc.string(), fc.constant('2026-13-45T99:99:99Z')),
          nonce: fc.oneof(hex(16), hex(15), fc.string()),
          session_id: fc.oneof(hex(16), fc.constant(client?.session.sessionId ?? '00'.repeat(16)), fc.string()),
          in_reply_to: hex(16),
          http: fc.oneof(
            fc.constant({ method: 'POST', path: '/mcp', mcp_session_id: null }),
            fc.record({ method: fc.string(), path: fc.string(), mcp_session_id: fc.oneof(fc.string(), fc.constant(null)) }, { requiredKeys: [] }),
            fc.jsonValue({ maxDepth: 1 }),
          ),
          public_key: fc.oneof(hex(1312), fc.constant(CLIENT.publicKeyHex), hex(8)),
          signature: fc.oneof(hex(2420), hex(3), fc.constant('AB'.repeat(2420)), fc.string()),
        },
        { requiredKeys: [] },
      ),
    );
  const rpc = () =>
    fc.record(
      {
        jsonrpc: fc.oneof(fc.constant('2.0'), fc.jsonValue({ maxDepth: 1 })),
        id: fc.oneof(fc.integer(), fc.string(), fc.constant(null), fc.double()),
        method: fc.oneof(fc.constantFrom('tools/call', 'initialize', 'tools/list'), fc.string()),
        params: fc.jsonValue({ maxDepth: 3 }),
        _pqc: envelope(),
      },
      { requiredKeys: [] },
    );
  /** A valid signed message with a random splice: a range deleted and junk inserted. */
  const mutated = () =>
    fc.tuple(fc.nat(), fc.nat({ max: 40 }), fc.string({ maxLength: 20, unit: 'binary' })).map(([at, cut, junk]) => {
      const i = at % validText.length;
      return validText.slice(0, i) + junk + validText.slice(i + cut);
    });
  const body = fc.oneof(
    fc.uint8Array({ maxLength: 400 }),
    fc.string({ maxLength: 300, unit: 'binary' }),
    fc.json({ maxDepth: 4 }),
    rpc().map((m) => JSON.stringify(m)),
    fc.array(rpc(), { maxLength: 4 }).map((m) => JSON.stringify(m)),
    mutated(),
    fc.nat({ max: 200 }).map((n) => '['.repeat(n) + ']'.repeat(n)),
    fc.integer({ min: LIMIT + 1, max: 3 * LIMIT }).map((n) => `{"jsonrpc":"2.0","pad":"${'x'.repeat(n)}"}`),
    fc.constantFrom('', ' ', 'null', '[]', '{}', '{"_pqc":null}', '{"a":1,"a":2}', '\ufeff{}', 'NaN', '[1e400]', '{"x":1,}'),
  );
  /**
   * The `PQC-Session` header the junk comes with: the live session (so the body is read and checked), none, a session
   * never issued, or junk.
   */
  const sessionHeader = fc.oneof(
    { weight: 4, arbitrary: fc.constant('live') },
    { weight: 1, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: hex(16) },
    { weight: 1, arbitrary: fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 40 }) },
  );

  async function expectSection6(response: Response, allowed: number[]): Promise<void> {
    const text = await response.text();
    const parsed = JSON.parse(text) as { jsonrpc: string; error: { code: number; data: { pqc: string } } };
    const reason = parsed.error.data.pqc;
    statuses[`${response.status} ${reason}`] = (statuses[`${response.status} ${reason}`] ?? 0) + 1;
    expect(allowed).toContain(response.status);
    expect(parsed.jsonrpc).toBe('2.0');
    expect(parsed.error.code).toBe(-32010);
    expect(isPQCReason(reason)).toBe(true);
    expect(REASON_HTTP_STATUS[reason as PQCReason]).toBe(response.status);
    expect(text).not.toContain('"_pqc"'); // nothing junk can do makes the server sign
  }

  test('POST junk to the MCP endpoint → 400, 401 or 413 with error.data.pqc; the app never sees it', async () => {
    server.seen.length = 0;
    await fc.assert(
      fc.asyncProperty(body, sessionHeader, async (junk, session) => {
        const seen = server.seen.length;
        const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
        if (session !== undefined) headers['PQC-Session'] = session === 'live' ? client.session.sessionId : session;
        const response = await fetch(server.url, { method: 'POST', headers, body: typeof junk === 'string' ? junk : (junk as Uint8Array<ArrayBuffer>) });
        await expectSection6(response, [400, 401, 413]);
        expect(server.seen.length).toBe(seen);
      }),
      runs(400),
    );
  }, 120_000);

  test('POST junk to the handshake → 400, 401 or 413 with error.data.pqc', async () => {
    const handshakeJunk = fc.oneof(
      body,
      fc
        .record(
          {
            type: fc.oneof(fc.constant('pqc_handshake_request'), fc.string()),
            v: fc.oneof(fc.constant(2), fc.jsonValue({ maxDepth: 1 })),
            client_did: fc.oneof(did, fc.constant(CLIENT.did)),
            client_public_key: fc.oneof(hex(1312), fc.constant(CLIENT.publicKeyHex), fc.string()),
            algorithm: fc.constantFrom('ML-DSA-44', 'ML-DSA-65', 'x'),
            server_did: fc.oneof(did, fc.constant(SERVER.did)),
            timestamp: fc.oneof(fc.constant(timestamp(0)), fc.string()),
            nonce: fc.oneof(hex(16), fc.string()),
            signature: fc.oneof(hex(2420), fc.string()),
          },
          { requiredKeys: [] },
        )
        .map((r) => JSON.stringify(r)),
    );
    await fc.assert(
      fc.asyncProperty(handshakeJunk, async (junk) => {
        const response = await fetch(new URL('pqc/handshake', server.url), {
          method: 'POST',
          body: typeof junk === 'string' ? junk : (junk as Uint8Array<ArrayBuffer>),
        });
        await expectSection6(response, [400, 401, 413]);
      }),
      runs(300),
    );
  }, 120_000);

  test('GET and DELETE with a junk PQC-Envelope header → 400 or 401', async () => {
    const header = fc.oneof(
      fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 200 }),
      // Header values must be visible ASCII for fetch to send them at all.
      envelope().map((e) => JSON.stringify(e).replace(/[^\x20-\x7e]/g, '?')),
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('GET', 'DELETE'), header, async (method, value) => {
        const seen = server.seen.length;
        const response = await fetch(server.url, { method, headers: { 'pqc-envelope': value, accept: 'text/event-stream' } });
        await expectSection6(response, [400, 401]);
        expect(server.seen.length).toBe(seen);
      }),
      runs(200),
    );
  }, 120_000);

  test('after all of it the server still serves a real client, and nothing was left unhandled', async () => {
    const fresh = new RawClient(server.url, seededIdentity(73, 'ML-DSA-44'), SERVER.did);
    await fresh.handshake();
    expect(await fresh.call('add', { a: 40, b: 2 })).toMatchObject({ result: { content: [{ text: '42' }] } });
    const signed = await fresh.sign({ jsonrpc: '2.0', id: fresh.id(), method: 'tools/call', params: { name: 'echo', arguments: { text: 'once' } } });
    expect((await fresh.post(signed.text)).status).toBe(200);
    expect(await rejectionOf(await fresh.post(signed.text))).toEqual({ status: 401, reason: 'replay_detected', signed: false });
    // The handshake endpoint still answers a real handshake too.
    const { request } = await PQCHandshake.initiate(CLIENT, { serverDid: SERVER.did });
    expect((await fetch(new URL('pqc/handshake', server.url), { method: 'POST', body: request })).status).toBe(200);
    expect(unhandled.count()).toBe(0);
  });
});
