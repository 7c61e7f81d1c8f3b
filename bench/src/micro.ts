/**
 * Sections 1, 2 and 4 of the benchmark, in the runtime that runs this script (the orchestrator, run.ts, starts it
 * once per Node version): ML-DSA keygen/sign/verify per algorithm and backend, the per-message path against the
 * bare backend operation, and bytes on the wire. Only `@pqc-mcp/core`'s public API: the server's per-message path is
 * the handler's own (`createPQCHandler().handle`, a web `Request` in memory, no socket). Prints `RESULT <json>` last.
 *
 *   tsx --conditions=@pqc-mcp/source bench/src/micro.ts [--quick] [--wire]
 */
import {
  ALGORITHMS,
  AgentIdentity,
  MemorySessionStore,
  MessageSigner,
  PQCHandshake,
  PQC_ENVELOPE_HEADER,
  PQC_SESSION_HEADER,
  availableBackends,
  canonicalJson,
  createPQCHandler,
  detectBackends,
  parseLossless,
  selectBackend,
  type Algorithm,
  type CryptoBackend,
  type HttpBinding,
  type PQCHandler,
  type PQCNext,
  type PQCSession,
} from '@pqc-mcp/core';
import { TOOLS_CALL_HEADERS, cores, printResult, round, summary, timeCalls, toolsCall, toolsCallResult } from './common.js';

const quick = process.argv.includes('--quick');
const withWire = process.argv.includes('--wire');
/** Milliseconds spent on each crypto measurement. */
const CRYPTO_MS = quick ? 100 : 1000;

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);
const randomSeed = (): Uint8Array => crypto.getRandomValues(new Uint8Array(32));
const fromHex = (hex: string): Uint8Array => Uint8Array.from({ length: hex.length / 2 }, (_, i) => parseInt(hex.slice(2 * i, 2 * i + 2), 16));

/** The ML-DSA context of v2 message signatures (docs/PROTOCOL.md §3); the per-message section proves it on an envelope. */
const MESSAGE_CONTEXT = utf8('pqc-mcp/v2/message');

/** Where the benchmark's handler is "served": requests are web `Request`s handed to `handler.handle`. */
const ORIGIN = 'http://127.0.0.1';
/** The HTTP request every client message says it is sent in (§3). */
const HTTP: HttpBinding = { method: 'POST', path: '/mcp', mcpSessionId: null };

interface OpStats {
  opsPerSec: number;
  meanMs: number;
  p50Ms: number;
  p99Ms: number;
  n: number;
}

function opStats(samples: number[]): OpStats {
  const s = summary(samples);
  return { opsPerSec: round(1000 / s.mean, 1), meanMs: round(s.mean, 4), p50Ms: round(s.p50, 4), p99Ms: round(s.p99, 4), n: s.n };
}

/** The default backend of this runtime (`PQC_MCP_BACKEND`, else the fastest): what an identity made without one uses. */
function defaultBackend(): CryptoBackend {
  return AgentIdentity.fromSeed(randomSeed()).backend;
}

async function cryptoSection(): Promise<unknown[]> {
  const backends = availableBackends().map((name) => selectBackend(name as 'noble' | 'node' | 'webcrypto'));
  const digest = randomSeed(); // any 32 bytes: the cost of ML-DSA does not depend on them
  const rows = [];
  for (const algorithm of ALGORITHMS) {
    for (const backend of backends) {
      const keygen = await timeCalls(() => backend.signingKey(algorithm, randomSeed()), CRYPTO_MS);
      const key = backend.signingKey(algorithm, randomSeed());
      // Signing time varies call to call (rejection sampling): at least 40 calls, more in a full run.
      const sign = await timeCalls(() => key.sign(digest, MESSAGE_CONTEXT), CRYPTO_MS * 1.5, quick ? 40 : 150);
      const signature = await key.sign(digest, MESSAGE_CONTEXT);
      const vk = backend.verifyingKey(algorithm, key.publicKey);
      const verify = await timeCalls(async () => {
        if (!(await vk.verify(digest, signature, MESSAGE_CONTEXT))) throw new Error('bench: verification failed');
      }, CRYPTO_MS);
      rows.push({ algorithm, backend: backend.name, keygen: opStats(keygen), sign: opStats(sign), verify: opStats(verify) });
    }
  }
  return rows;
}

/** Mean milliseconds of `fn(i)` over the last two thirds of `count` calls (the first third warms up). */
async function timeBatch(count: number, fn: (i: number) => unknown): Promise<number> {
  const warm = Math.floor(count / 3);
  for (let i = 0; i < warm; i++) await fn(i);
  const t = performance.now();
  for (let i = warm; i < count; i++) await fn(i);
  return (performance.now() - t) / (count - warm);
}

/** A backend whose operations cost nothing (fixed signature, always valid): what is left is our own overhead. */
function freeBackend(real: CryptoBackend, signature: Uint8Array): CryptoBackend {
  return {
    name: 'free',
    signingKey(algorithm, seed) {
      const { publicKey } = real.signingKey(algorithm, seed);
      return { algorithm, publicKey, sign: () => Promise.resolve(signature) };
    },
    verifyingKey(algorithm, publicKey) {
      return { algorithm, publicKey, verify: () => Promise.resolve(true) };
    },
  };
}

/** The application behind the handler when only the request is measured: it accepts, answers nothing to sign. */
const accept: PQCNext = async () => new Response(null, { status: 202 });
/** The application behind the handler for a whole round: the example server's answer to `toolsCall`. */
const answer: PQCNext = async (_request, body) => Response.json(toolsCallResult((body as { id: number }).id));

/** A client and a server (`createPQCHandler` on a `MemorySessionStore`) on `backend`, one session between them opened through the handler. */
async function sessionOn(backend: CryptoBackend, algorithm: Algorithm) {
  const client = AgentIdentity.fromSeed(randomSeed(), { name: 'bench-client', algorithm, backend });
  const server = AgentIdentity.fromSeed(randomSeed(), { name: 'bench-server', algorithm, backend });
  const handler = createPQCHandler({ identity: server, store: new MemorySessionStore() });
  const { session } = await handshake(handler, client);
  const signer = new MessageSigner(client);
  /** A signed tools/call as the client sends it: the wire text and its nonce. */
  const sign = (id: number) => signer.signMessage(toolsCall(id), { sessionId: session.sessionId, http: HTTP });
  return { client, server, handler, session, signer, sign };
}

/** Performs the handshake through the handler (POST pqc/handshake); resolves the client's session and the bytes of both messages. */
async function handshake(handler: PQCHandler, client: AgentIdentity): Promise<{ session: PQCSession; bytes: { request: number; response: number } }> {
  const serverDid = handler.identity.did;
  const { request, pending } = await PQCHandshake.initiate(client, { serverDid });
  const response = await handler.handle(new Request(`${ORIGIN}/pqc/handshake`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: request }), accept);
  const text = await response.text();
  if (response.status !== 200) throw new Error(`bench: the handshake answered ${response.status}: ${text}`);
  const session = await PQCHandshake.complete(text, client, pending, { serverDid });
  return { session, bytes: { request: utf8(request).length, response: utf8(text).length } };
}

/** The POST of a signed message to the handler's endpoint, as the client sends it. */
function post(text: string, sessionId: string): Request {
  return new Request(`${ORIGIN}${HTTP.path}`, { method: 'POST', headers: { ...TOOLS_CALL_HEADERS, [PQC_SESSION_HEADER]: sessionId }, body: text });
}

/** The handler's answer to `request` through `next`, read to its end; throws unless it is `status`. */
async function handled(handler: PQCHandler, request: Request, next: PQCNext, status: number): Promise<string> {
  const response = await handler.handle(request, next);
  const text = await response.text();
  if (response.status !== status) throw new Error(`bench: the handler answered ${response.status}, not ${status}: ${text.slice(0, 300)}`);
  return text;
}

/**
 * The per-message path on the runtime's default backend, ML-DSA-65, a typical tools/call:
 *   - sign: `MessageSigner.signMessage` (what a client does per request, and the server per answer) against the bare
 *     `sign` of the backend on a digest;
 *   - verify: the server's path for one request, `handler.handle` of its POST (session header, body read, lossless
 *     parse, envelope checks, pinned key, canonical text, SHA3-256, verify, nonce and liveness in the store, the
 *     request forwarded) with an application that answers nothing to sign; and `MessageSigner.verifyMessage` of the
 *     text (parse, envelope, key, verify: no store, no HTTP); both against the bare `verify`;
 *   - round: the handler for a request the application answers (verify, then sign the answer) against bare sign + verify;
 *   - the JSON steps alone: `parseLossless` of the text and `canonicalJson` of the parsed message.
 * Measured two ways: directly (interleaved blocks, means), and as our own cost alone (the same paths on a backend
 * whose operations cost nothing).
 */
async function perMessageSection(): Promise<unknown> {
  const backend = defaultBackend();
  const algorithm: Algorithm = 'ML-DSA-65';
  const side = await sessionOn(backend, algorithm);
  const { client, handler, session, sign } = side;
  const peer = client.toPeer();
  const sample = await sign(0);
  // The protocol's digest and context: the envelope's own signature verifies over them.
  const digest = fromHex(sample.digest);
  const signature = fromHex(sample.envelope.signature);
  if (!(await peer.verifyingKey.verify(digest, signature, MESSAGE_CONTEXT))) throw new Error('bench: the message context is not the protocol\'s');

  // Interleaved blocks, so drift of a noisy machine hits both sides alike.
  const signMs = quick ? 1200 : 6000;
  const block = backend.name === 'noble' ? 4 : 20;
  const full: number[] = [];
  const bare: number[] = [];
  let id = 1;
  for (let i = 0; i < block; i++) {
    await sign(id++);
    await client.sign(digest, MESSAGE_CONTEXT);
  }
  const signEnd = performance.now() + signMs;
  while (performance.now() < signEnd) {
    for (let i = 0; i < block; i++) {
      const t = performance.now();
      await sign(id++);
      full.push(performance.now() - t);
    }
    for (let i = 0; i < block; i++) {
      const t = performance.now();
      await client.sign(digest, MESSAGE_CONTEXT);
      bare.push(performance.now() - t);
    }
  }

  // Verification needs distinct messages (each nonce is accepted once): sign them first, build their requests.
  const count = backend.name === 'noble' ? (quick ? 60 : 300) : quick ? 400 : 2000;
  const texts: string[] = [];
  for (let i = 0; i < count; i++) texts.push((await sign(100_000 + i)).text);
  const requests = texts.map((text) => post(text, session.sessionId));
  const vHandler: number[] = [];
  const vMessage: number[] = [];
  const vBare: number[] = [];
  for (let i = 0; i < count; i++) {
    // Alternate the two paths (the handler's needs a new message; verifyMessage keeps no state).
    if (i % 2 === 0) {
      const t = performance.now();
      await handled(handler, requests[i]!, accept, 202);
      vHandler.push(performance.now() - t);
    } else {
      const t = performance.now();
      const result = await MessageSigner.verifyMessage(texts[i]!, { peer });
      vMessage.push(performance.now() - t);
      if (!result.valid) throw new Error(`bench: verifyMessage refused a message (${result.reason})`);
    }
    const t = performance.now();
    if (!(await peer.verifyingKey.verify(digest, signature, MESSAGE_CONTEXT))) throw new Error('bench: bare verification failed');
    vBare.push(performance.now() - t);
  }

  // A whole round on the server: the request verified, the application's answer signed.
  const rounds = Math.max(20, Math.floor(count / 4));
  const roundRequests: Request[] = [];
  for (let i = 0; i < rounds; i++) roundRequests.push(post((await sign(150_000 + i)).text, session.sessionId));
  const roundTimes: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const t = performance.now();
    await handled(handler, roundRequests[i]!, answer, 200);
    roundTimes.push(performance.now() - t);
  }

  // Our own cost alone: the same paths on a backend whose sign and verify return at once.
  const free = await sessionOn(freeBackend(backend, signature), algorithm);
  const freePeer = free.client.toPeer();
  // Fixed counts (a session holds 10 000 nonces: every verified message must be new): warm up on the first third,
  // time the rest as a whole.
  const ownCount = quick ? 3000 : 8000;
  const ownSignMs = await timeBatch(ownCount, (i) => free.sign(200_000 + i));
  const freeTexts: string[] = [];
  for (let i = 0; i < ownCount; i++) freeTexts.push((await free.sign(300_000 + i)).text);
  const freeRequests = freeTexts.map((text) => post(text, free.session.sessionId));
  const ownHandlerMs = await timeBatch(ownCount, (i) => handled(free.handler, freeRequests[i]!, accept, 202));
  const ownMessageMs = await timeBatch(ownCount, async (i) => {
    const result = await MessageSigner.verifyMessage(freeTexts[i]!, { peer: freePeer });
    if (!result.valid) throw new Error(`bench: ${result.reason}`);
  });
  // The server's whole round alone: a request verified, the application's answer signed (what a signed server adds per request).
  const freeRoundRequests: Request[] = [];
  for (let i = 0; i < ownCount; i++) freeRoundRequests.push(post((await free.sign(400_000 + i)).text, free.session.sessionId));
  const ownRoundMs = await timeBatch(ownCount, (i) => handled(free.handler, freeRoundRequests[i]!, answer, 200));
  const ownParseMs = await timeBatch(ownCount, (i) => parseLossless(freeTexts[i]!));
  const trees = freeTexts.map((text) => parseLossless(text));
  const ownCanonicalMs = await timeBatch(ownCount, (i) => canonicalJson(trees[i]!));

  const s = { full: summary(full), bare: summary(bare), vHandler: summary(vHandler), vMessage: summary(vMessage), vBare: summary(vBare), round: summary(roundTimes) };
  const bareRound = s.bare.mean + s.vBare.mean;
  return {
    algorithm,
    backend: backend.name,
    messageBytes: utf8(sample.text).length,
    sign: {
      fullMeanMs: round(s.full.mean, 4),
      bareMeanMs: round(s.bare.mean, 4),
      ratio: round(s.full.mean / s.bare.mean, 3),
      ownMeanUs: round(ownSignMs * 1000, 1),
      ownRatio: round((s.bare.mean + ownSignMs) / s.bare.mean, 3),
      n: s.full.n,
    },
    verify: {
      fullMeanMs: round(s.vHandler.mean, 4),
      bareMeanMs: round(s.vBare.mean, 4),
      ratio: round(s.vHandler.mean / s.vBare.mean, 3),
      ownMeanUs: round(ownHandlerMs * 1000, 1),
      ownRatio: round((s.vBare.mean + ownHandlerMs) / s.vBare.mean, 3),
      messageMeanMs: round(s.vMessage.mean, 4),
      messageRatio: round(s.vMessage.mean / s.vBare.mean, 3),
      messageOwnUs: round(ownMessageMs * 1000, 1),
      n: s.vHandler.n,
    },
    round: {
      meanMs: round(s.round.mean, 4),
      bareMeanMs: round(bareRound, 4),
      ratio: round(s.round.mean / bareRound, 3),
      ownMeanUs: round(ownRoundMs * 1000, 1),
      n: s.round.n,
    },
    json: { parseMeanUs: round(ownParseMs * 1000, 1), canonicalMeanUs: round(ownCanonicalMs * 1000, 1) },
  };
}

/** Section 4: the bytes of each message, unsigned and signed, per algorithm (bodies and the GET header, UTF-8). */
async function wireSection(): Promise<unknown[]> {
  const rows = [];
  for (const algorithm of ALGORITHMS) {
    const { server, session, sign, signer, handler } = await sessionOn(selectBackend('noble'), algorithm);
    const request = toolsCall(7);
    const signedRequest = await sign(7);
    const response = toolsCallResult(7);
    const signedResponse = await new MessageSigner(server).signMessage(response, { sessionId: session.sessionId, inReplyTo: signedRequest.nonce });
    const getEnvelope = await signer.signMessage({ http: { method: 'GET', path: HTTP.path, mcp_session_id: null } }, { sessionId: session.sessionId });
    const other = await handshake(handler, AgentIdentity.fromSeed(randomSeed(), { algorithm, backend: selectBackend('noble') }));
    const bytes = (text: string) => utf8(text).length;
    rows.push({
      algorithm,
      signatureBytes: signedRequest.envelope.signature.length / 2,
      request: { unsigned: bytes(JSON.stringify(request)), signed: bytes(signedRequest.text) },
      response: { unsigned: bytes(JSON.stringify(response)), signed: bytes(signedResponse.text) },
      getHeader: { name: PQC_ENVELOPE_HEADER, bytes: bytes(JSON.stringify(getEnvelope.envelope)) },
      handshake: other.bytes,
    });
  }
  return rows;
}

const started = performance.now();
await detectBackends();
const result: Record<string, unknown> = {
  node: process.version,
  cores: cores(),
  availableBackends: availableBackends(),
  defaultBackend: defaultBackend().name,
  crypto: await cryptoSection(),
  perMessage: await perMessageSection(),
};
if (withWire) result.wire = await wireSection();
result.seconds = round((performance.now() - started) / 1000, 1);
printResult(result);
