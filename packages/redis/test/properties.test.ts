/**
 * Property-based tests (fast-check): the canonical form, the signature over it, and a server under random junk.
 * Seeds are printed by fast-check on failure; `FC_SEED=<n>` replays one.
 */
import fc from 'fast-check';
import {
  MemorySessionStore,
  MessageSigner,
  PQCHandshake,
  REASON_HTTP_STATUS,
  canonicalText,
  checkEnvelope,
  formatTimestamp,
  isPQCReason,
  parseLossless,
  sha3_256Hex,
  signingInput,
  utf8,
  verifyWithStore,
  type JsonValue,
  type PQCReason,
} from '@pqc-mcp/core';
import { report, seededIdentity } from '@pqc-mcp/test-kit';
import {
  RawClient,
  reasonOf,
  startServer,
  trackUnhandledRejections,
  type TestServer,
} from './helpers.js';

const seed = process.env.FC_SEED === undefined ? undefined : Number(process.env.FC_SEED);
const runs = (numRuns: number): fc.Parameters<unknown> => (seed === undefined ? { numRuns } : { numRuns, seed });

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

describe('any single-byte change to the signed part of a message is rejected', () => {
  const SIGNER = seededIdentity(61);
  const LOCAL = seededIdentity(62);
  const SESSION_ID = '6f'.repeat(16);

  test('flip one byte of the canonical signed members, rebuild the message: never accepted', async () => {
    const store = new MemorySessionStore();
    const now = Date.now();
    await store.createSession(
      {
        sessionId: SESSION_ID,
        profile: 2,
        peerDid: SIGNER.did,
        peerAlgorithm: SIGNER.algorithm,
        peerPublicKey: SIGNER.publicKeyHex,
        localDid: LOCAL.did,
        createdAt: now,
        expiresAt: now + 3_600_000,
      },
      { maxSessions: 10 },
    );
    // Signed once: a message with unicode, floats kept as written, nesting and an unknown envelope-side member.
    const text =
      '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"text":"héllo 😀 \\u0001","n":[7.0,1e-07,-0,12345678901234567890],"deep":{"a":{"b":[true,false,null]}}}}}';
    const signed = await new MessageSigner(SIGNER).signMessage(text, { sessionId: SESSION_ID });
    // The signed part as the receiver rebuilds it from the wire text (numbers as written): what was signed.
    const checked = checkEnvelope(parseLossless(signed.text));
    if (!checked.ok) throw new Error(checked.detail);
    const signedPart = signingInput(checked.value);
    expect(sha3_256Hex(signedPart)).toBe(signed.digest);
    const original = await MessageSigner.verifyMessage(signed.text, { peer: SIGNER.toPeer() });
    expect(original.valid).toBe(true);
    expect(original.digest).toBe(signed.digest);
    const signedBytes = utf8(signedPart);
    const anchor = '"_pqc":{';
    const insertAt = signedPart.indexOf(anchor) + anchor.length;
    expect(insertAt).toBeGreaterThan(anchor.length - 1);
    const sigMember = utf8(`"signature":"${signed.envelope.signature}",`);
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
        const wire = new Uint8Array(tampered.length + sigMember.length);
        wire.set(tampered.subarray(0, insertAt), 0);
        wire.set(sigMember, insertAt);
        wire.set(tampered.subarray(insertAt), insertAt + sigMember.length);
        let reason: string;
        let tree: JsonValue | undefined;
        try {
          tree = parseLossless(wire);
        } catch {
          reason = 'malformed_json';
        }
        if (tree !== undefined) {
          const verdict = await verifyWithStore(tree, { store });
          expect(verdict.ok).toBe(false);
          reason = verdict.ok ? 'accepted' : verdict.reason;
          // The signature alone never holds either (no replay cache in the way).
          expect((await MessageSigner.verifyMessage(wire, { peer: SIGNER.toPeer() })).valid).toBe(false);
        }
        reasons[reason!] = (reasons[reason!] ?? 0) + 1;
      }),
      runs(300),
    );
    // The original, rebuilt the same way, is accepted: the flips above were the only difference.
    const untouched = new Uint8Array(signedBytes.length + sigMember.length);
    untouched.set(signedBytes.subarray(0, insertAt), 0);
    untouched.set(sigMember, insertAt);
    untouched.set(signedBytes.subarray(insertAt), insertAt + sigMember.length);
    expect(await verifyWithStore(parseLossless(untouched), { store })).toMatchObject({ ok: true });
    report(`[property] ${signedBytes.length}-byte signed part, 300 single-byte flips → rejected as ${JSON.stringify(reasons)}`);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Junk bodies against a running server

describe('random junk never crashes a server and always gets a §6 error', () => {
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
    server = await startServer({ identity: SERVER, store: new MemorySessionStore(), maxBodyBytes: LIMIT });
    client = new RawClient(CLIENT, SERVER.did);
    await client.handshake(server.url);
    validText = (await client.toolCall('echo', { text: 'valid' })).text;
    // Sent once: a splice that changes nothing signed (whitespace, an escape) is then this same message, a replay.
    expect((await client.post(server.url, validText)).status).toBe(200);
  });

  afterAll(async () => {
    await server.close();
    unhandled.stop();
    report(`[property] junk answers (status reason → count): ${JSON.stringify(statuses)}`);
  });

  const hex = (bytes: number) => fc.uint8Array({ minLength: bytes, maxLength: bytes }).map((b) => Buffer.from(b).toString('hex'));
  const did = fc.oneof(hex(32).map((h) => `did:pqaid:${h}`), fc.string());
  const envelope = () =>
    fc.oneof(
      fc.jsonValue({ maxDepth: 2 }),
      fc.record(
        {
          v: fc.oneof(fc.constant(2), fc.constant(1), fc.constant('2'), fc.double()),
          signer_did: fc.oneof(did, fc.constant(CLIENT.did)),
          algorithm: fc.oneof(fc.constantFrom('ML-DSA-44', 'ML-DSA-65', 'ML-DSA-87', 'ml-dsa-44', 'Ed25519'), fc.string()),
          timestamp: fc.oneof(
            fc.integer({ min: -600_000, max: 600_000 }).map((d) => formatTimestamp(Date.now() + d)),
            fc.string(),
            fc.constant('2026-13-45T99:99:99Z'),
          ),
          nonce: fc.oneof(hex(16), hex(15), fc.string()),
          session_id: fc.oneof(hex(16), fc.constant(client?.session.sessionId ?? '00'.repeat(16)), fc.string()),
          in_reply_to: hex(16),
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
  }

  test('POST junk to the MCP endpoint → 400, 401 or 413 with error.data.pqc; the app never sees it', async () => {
    server.seen.length = 0;
    await fc.assert(
      fc.asyncProperty(body, async (junk) => {
        const seen = server.seen.length;
        const response = await fetch(server.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
          body: typeof junk === 'string' ? junk : (junk as Uint8Array<ArrayBuffer>),
        });
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
            timestamp: fc.oneof(fc.constant(formatTimestamp(Date.now())), fc.string()),
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
    const fresh = new RawClient(seededIdentity(73, 'ML-DSA-44'), SERVER.did);
    await fresh.handshake(server.url);
    const signed = await fresh.toolCall('add', { a: 40, b: 2 });
    const response = await fresh.post(server.url, signed.text);
    expect(response.status).toBe(200);
    expect(await fresh.verified(response, signed.nonce)).toMatchObject([{ result: { content: [{ text: '42' }] } }]);
    const replay = await fresh.post(server.url, signed.text);
    expect(await reasonOf(replay)).toBe('replay_detected');
    // The handshake endpoint still answers a real handshake too.
    const { request } = await PQCHandshake.initiate(CLIENT);
    expect((await fetch(new URL('pqc/handshake', server.url), { method: 'POST', body: request })).status).toBe(200);
    expect(unhandled.count()).toBe(0);
  });
});
