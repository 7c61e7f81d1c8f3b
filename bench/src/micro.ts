/**
 * Sections 1, 2 and 4 of the benchmark, in the runtime that runs this script (the orchestrator, run.ts, starts it
 * once per Node version): ML-DSA keygen/sign/verify per algorithm and backend, the per-message path against the
 * bare backend operation, and bytes on the wire. Prints `RESULT <json>` last.
 *
 *   tsx --conditions=@pqc-mcp/source bench/src/micro.ts [--quick] [--wire]
 */
import {
  ALGORITHMS,
  AgentIdentity,
  MESSAGE_CONTEXT,
  MemorySessionStore,
  MessageSigner,
  PQCHandshake,
  PQC_ENVELOPE_HEADER,
  PeerKeyCache,
  SIGNATURE_BYTES,
  availableBackends,
  defaultBackend,
  fromHex,
  nobleBackend,
  nodeBackend,
  parseLossless,
  randomBytes,
  sha3_256,
  utf8,
  verifyWithStore,
  type Algorithm,
  type CryptoBackend,
} from '@pqc-mcp/core';
import { cores, printResult, round, summary, timeCalls, toolsCall, toolsCallResult } from './common.js';

const quick = process.argv.includes('--quick');
const withWire = process.argv.includes('--wire');
/** Milliseconds spent on each crypto measurement. */
const CRYPTO_MS = quick ? 100 : 1000;

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

async function cryptoSection(): Promise<unknown[]> {
  const backends: CryptoBackend[] = [nobleBackend];
  const native = nodeBackend();
  if (native) backends.push(native);
  const digest = sha3_256(utf8('a typical message'));
  const rows = [];
  for (const algorithm of ALGORITHMS) {
    for (const backend of backends) {
      const keygen = await timeCalls(() => backend.signingKey(algorithm, randomBytes(32)), CRYPTO_MS);
      const key = backend.signingKey(algorithm, randomBytes(32));
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

/** Client and server identities on `backend` with one session between them (the server's store). */
async function sessionOn(backend: CryptoBackend, algorithm: Algorithm) {
  const client = AgentIdentity.fromSeed(randomBytes(32), { name: 'bench-client', algorithm, backend });
  const server = AgentIdentity.fromSeed(randomBytes(32), { name: 'bench-server', algorithm, backend });
  const store = new MemorySessionStore();
  const { request, pending } = await PQCHandshake.initiate(client);
  const { response } = await PQCHandshake.respond(request, server, { store });
  const session = await PQCHandshake.complete(response, client, pending, { serverDid: server.did });
  return { client, server, store, session };
}

/**
 * The per-message path on the runtime's default backend: `MessageSigner.signMessage` of a typical tools/call and
 * `verifyWithStore` of the signed text, against the bare `sign` / `verify` of the backend on the same digest.
 * Measured two ways: directly (interleaved blocks of both, means), and as our own cost alone (the same path on a
 * backend whose operations cost nothing).
 */
async function perMessageSection(): Promise<unknown> {
  const backend = defaultBackend();
  const algorithm: Algorithm = 'ML-DSA-65';
  const { client, store, session } = await sessionOn(backend, algorithm);
  const signer = new MessageSigner(client);
  const peers = new PeerKeyCache(undefined, backend);
  const opts = { sessionId: session.sessionId };
  const sample = await signer.signMessage(toolsCall(0), opts);
  const digest = sha3_256(utf8('x'.repeat(64))); // any 32 bytes: the cost of ML-DSA does not depend on them
  const ctx = MESSAGE_CONTEXT;

  // Interleaved blocks, so drift of a noisy machine hits both sides alike.
  const signMs = quick ? 1200 : 6000;
  const block = backend.name === 'noble' ? 4 : 20;
  const full: number[] = [];
  const bare: number[] = [];
  let id = 1;
  for (let i = 0; i < block; i++) {
    await signer.signMessage(toolsCall(id++), opts);
    await client.sign(digest, ctx);
  }
  const signEnd = performance.now() + signMs;
  while (performance.now() < signEnd) {
    for (let i = 0; i < block; i++) {
      const t = performance.now();
      await signer.signMessage(toolsCall(id++), opts);
      full.push(performance.now() - t);
    }
    for (let i = 0; i < block; i++) {
      const t = performance.now();
      await client.sign(digest, ctx);
      bare.push(performance.now() - t);
    }
  }

  // Verification needs distinct messages (each nonce is accepted once): sign them first.
  const count = backend.name === 'noble' ? (quick ? 60 : 300) : quick ? 400 : 2000;
  const texts: string[] = [];
  for (let i = 0; i < count; i++) texts.push((await signer.signMessage(toolsCall(100_000 + i), opts)).text);
  const trees = texts.map((t) => parseLossless(t));
  const peer = client.toPeer().verifyingKey;
  const sampleDigest = fromHex(sample.digest);
  const vSig = fromHex(sample.envelope.signature);
  const vFull: number[] = [];
  const vParse: number[] = [];
  const vBare: number[] = [];
  for (let i = 0; i < count; i++) {
    // Alternate what is timed with what is parsed: half of the messages include the lossless parse of the body.
    if (i % 2 === 0) {
      const t = performance.now();
      const verdict = await verifyWithStore(trees[i]!, { store, peers });
      vFull.push(performance.now() - t);
      if (!verdict.ok) throw new Error(`bench: verifyWithStore refused a message (${verdict.reason})`);
    } else {
      const t = performance.now();
      const verdict = await verifyWithStore(parseLossless(texts[i]!), { store, peers });
      vParse.push(performance.now() - t);
      if (!verdict.ok) throw new Error(`bench: verifyWithStore refused a message (${verdict.reason})`);
    }
    const t = performance.now();
    if (!(await peer.verify(sampleDigest, vSig, ctx))) throw new Error('bench: bare verification failed');
    vBare.push(performance.now() - t);
  }

  // Our own cost alone: the same path on a backend whose sign and verify return at once.
  const free = freeBackend(backend, vSig);
  const freeSide = await sessionOn(free, algorithm);
  const freeSigner = new MessageSigner(freeSide.client);
  const freePeers = new PeerKeyCache(undefined, free);
  const freeOpts = { sessionId: freeSide.session.sessionId };
  // Fixed counts (every verified message must be new): warm up on the first part, time the rest as a whole.
  const ownCount = quick ? 3000 : 10_000;
  const ownSignMs = await timeBatch(ownCount, (i) => freeSigner.signMessage(toolsCall(200_000 + i), freeOpts));
  const freeTexts: string[] = [];
  for (let i = 0; i < ownCount; i++) freeTexts.push((await freeSigner.signMessage(toolsCall(300_000 + i), freeOpts)).text);
  const freeTrees = freeTexts.map((t) => parseLossless(t));
  const ownVerifyMs = await timeBatch(ownCount, async (i) => {
    const verdict = await verifyWithStore(freeTrees[i]!, { store: freeSide.store, peers: freePeers });
    if (!verdict.ok) throw new Error(`bench: ${verdict.reason}`);
  });
  const ownParseMs = await timeBatch(ownCount, (i) => parseLossless(freeTexts[i]!));
  const own = { sign: { mean: ownSignMs }, verify: { mean: ownVerifyMs }, parse: { mean: ownParseMs } };

  const s = { full: summary(full), bare: summary(bare), vFull: summary(vFull), vParse: summary(vParse), vBare: summary(vBare) };
  return {
    algorithm,
    backend: backend.name,
    messageBytes: utf8(sample.text).length,
    sign: {
      fullMeanMs: round(s.full.mean, 4),
      bareMeanMs: round(s.bare.mean, 4),
      ratio: round(s.full.mean / s.bare.mean, 3),
      ownMeanUs: round(own.sign.mean * 1000, 1),
      ownRatio: round((s.bare.mean + own.sign.mean) / s.bare.mean, 3),
      n: s.full.n,
    },
    verify: {
      fullMeanMs: round(s.vFull.mean, 4),
      bareMeanMs: round(s.vBare.mean, 4),
      ratio: round(s.vFull.mean / s.vBare.mean, 3),
      withParseMeanMs: round(s.vParse.mean, 4),
      withParseRatio: round(s.vParse.mean / s.vBare.mean, 3),
      ownMeanUs: round(own.verify.mean * 1000, 1),
      ownRatio: round((s.vBare.mean + own.verify.mean) / s.vBare.mean, 3),
      parseMeanUs: round(own.parse.mean * 1000, 1),
      n: s.vFull.n,
    },
  };
}

/** Section 4: the bytes of each message, unsigned and signed, per algorithm (bodies only, UTF-8). */
async function wireSection(): Promise<unknown[]> {
  const rows = [];
  for (const algorithm of ALGORITHMS) {
    const { client, server, session } = await sessionOn(nobleBackend, algorithm);
    const request = toolsCall(7);
    const signedRequest = await new MessageSigner(client).signMessage(request, { sessionId: session.sessionId });
    const response = toolsCallResult(7);
    const signedResponse = await new MessageSigner(server).signMessage(response, {
      sessionId: session.sessionId,
      inReplyTo: signedRequest.nonce,
    });
    const getEnvelope = await new MessageSigner(client).signMessage(
      { http: { method: 'GET', path: '/mcp', mcp_session_id: null } },
      { sessionId: session.sessionId },
    );
    const { request: hsRequest, pending } = await PQCHandshake.initiate(client);
    const { response: hsResponse } = await PQCHandshake.respond(hsRequest, server, { store: new MemorySessionStore() });
    await PQCHandshake.complete(hsResponse, client, pending, { serverDid: server.did });
    const bytes = (text: string) => utf8(text).length;
    rows.push({
      algorithm,
      signatureBytes: SIGNATURE_BYTES[algorithm],
      request: { unsigned: bytes(JSON.stringify(request)), signed: bytes(signedRequest.text) },
      response: { unsigned: bytes(JSON.stringify(response)), signed: bytes(signedResponse.text) },
      getHeader: { name: PQC_ENVELOPE_HEADER, bytes: bytes(JSON.stringify(getEnvelope.envelope)) },
      handshake: { request: bytes(hsRequest), response: bytes(hsResponse) },
    });
  }
  return rows;
}

const started = performance.now();
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
