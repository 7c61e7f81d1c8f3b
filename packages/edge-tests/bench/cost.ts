/**
 * What one signed MCP message costs in CPU on the runtime this runs on, ML-DSA-65 with the backend `auto` picks:
 * `sign` (ML-DSA.Sign of the 32-byte SHA3-256 digest with the message context, what the envelope signs), `verify`,
 * and `envelope` (a whole `signMessage` of a typical tools/call result: canonical JSON, SHA3-256, sign). Web standards
 * only: the same module runs on Node, Bun, Deno and workerd. Only core's public API: the digest is a real envelope's.
 */
import { AgentIdentity, MessageSigner, detectBackends } from '@pqc-mcp/core';

/** The ML-DSA context of v2 message signatures (docs/PROTOCOL.md §3); `prepare` proves it on a real envelope. */
const MESSAGE_CONTEXT = new TextEncoder().encode('pqc-mcp/v2/message');

function fromHex(hex: string): Uint8Array {
  return Uint8Array.from({ length: hex.length / 2 }, (_, i) => parseInt(hex.slice(2 * i, 2 * i + 2), 16));
}

/** Milliseconds: median and 90th percentile of the samples. */
export interface Stat {
  median: number;
  p90: number;
}

export interface CostResult {
  backend: string;
  algorithm: string;
  samples: number;
  sign: Stat;
  verify: Stat;
  envelope: Stat;
}

/** One operation of the benchmark, run `n` times (for runtimes whose clock cannot time a single call). */
export type Operation = 'sign' | 'verify' | 'envelope' | 'none';

function stat(samples: number[]): Stat {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  const median = sorted.length % 2 ? at(0.5) : (sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2;
  return { median: Math.round(median * 1000) / 1000, p90: Math.round(at(0.9) * 1000) / 1000 };
}

const RESULT = {
  jsonrpc: '2.0',
  id: 7,
  result: { content: [{ type: 'text', text: 'The quick brown fox jumps over the lazy dog. '.repeat(4) }], isError: false },
};

/** A fixed identity and what the operations need, ready (key import done). */
export async function prepare(): Promise<{ backend: string; run(op: Operation, n: number): Promise<void> }> {
  await detectBackends();
  const identity = AgentIdentity.fromSeed(new Uint8Array(32).fill(42), { algorithm: 'ML-DSA-65' });
  const peer = identity.toPeer();
  const signer = new MessageSigner(identity);
  const sessionId = '0'.repeat(32);
  // What an envelope signs: the SHA3-256 digest of its signing input, with the message context. Its own signature
  // verifying over them shows both are the protocol's.
  const sample = await signer.signMessage(RESULT, { sessionId });
  const digest = fromHex(sample.digest);
  const signature = fromHex(sample.envelope.signature);
  if (!(await peer.verifyingKey.verify(digest, signature, MESSAGE_CONTEXT))) {
    throw new Error('an envelope signature does not verify over its digest with the message context');
  }
  return {
    backend: identity.backend.name,
    async run(op, n) {
      for (let i = 0; i < n; i++) {
        if (op === 'sign') await identity.sign(digest, MESSAGE_CONTEXT);
        else if (op === 'verify') await peer.verifyingKey.verify(digest, signature, MESSAGE_CONTEXT);
        else if (op === 'envelope') await signer.signMessage(RESULT, { sessionId });
      }
    },
  };
}

/** Times each operation `samples` times, one call per sample, after `warmup` calls. */
export async function measureCost(samples = 40, warmup = 5, now: () => number = () => performance.now()): Promise<CostResult> {
  const bench = await prepare();
  const times: Record<Exclude<Operation, 'none'>, number[]> = { sign: [], verify: [], envelope: [] };
  for (const op of ['sign', 'verify', 'envelope'] as const) {
    await bench.run(op, warmup);
    for (let i = 0; i < samples; i++) {
      const t0 = now();
      await bench.run(op, 1);
      times[op].push(now() - t0);
    }
  }
  return {
    backend: bench.backend,
    algorithm: 'ML-DSA-65',
    samples,
    sign: stat(times.sign),
    verify: stat(times.verify),
    envelope: stat(times.envelope),
  };
}

export { stat };
