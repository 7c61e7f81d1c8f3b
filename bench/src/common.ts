/** Helpers shared by the bench scripts: statistics, timing, the typical MCP messages, child-process JSON. */
import { availableParallelism, cpus } from 'node:os';

/** The JSON line a child prints last on stdout: `RESULT <json>`. */
export const RESULT_PREFIX = 'RESULT ';

export function printResult(value: unknown): void {
  process.stdout.write(`${RESULT_PREFIX}${JSON.stringify(value)}\n`);
}

export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

export function summary(samples: readonly number[]): { n: number; mean: number; p50: number; p99: number; max: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  const mean = sorted.reduce((a, b) => a + b, 0) / Math.max(1, sorted.length);
  return { n: sorted.length, mean, p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99), max: sorted[sorted.length - 1] ?? NaN };
}

export function round(x: number, digits = 3): number {
  if (!Number.isFinite(x)) return x;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Cores this process may use. */
export function cores(): number {
  return typeof availableParallelism === 'function' ? availableParallelism() : cpus().length;
}

/** The MCP era the benchmark speaks: the stateless protocol of the SDK v2 (no `initialize`, no MCP session). */
export const MCP_PROTOCOL_VERSION = '2026-07-28';

const TEXT = 'Summarise the quarterly report for the finance team, please.';

/**
 * A typical MCP tools/call request as the SDK v2 client sends it in the 2026-07-28 era (the example servers' `echo`
 * tool, a sentence of arguments, the client's `_meta`).
 */
export function toolsCall(id: number): Record<string, unknown> {
  return {
    method: 'tools/call',
    params: {
      name: 'echo',
      arguments: { text: TEXT },
      _meta: {
        'io.modelcontextprotocol/protocolVersion': MCP_PROTOCOL_VERSION,
        'io.modelcontextprotocol/clientInfo': { name: 'pqc-mcp-bench', version: '0.1.0' },
        'io.modelcontextprotocol/clientCapabilities': {},
      },
    },
    jsonrpc: '2.0',
    id,
  };
}

/** The HTTP headers the SDK v2 client sends with `toolsCall` (the era, the method and tool named outside the body). */
export const TOOLS_CALL_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  'mcp-method': 'tools/call',
  'mcp-name': 'echo',
  'mcp-protocol-version': MCP_PROTOCOL_VERSION,
});

/** The answer the example server gives to `toolsCall` (as the MCP SDK v2 writes it). */
export function toolsCallResult(id: number): Record<string, unknown> {
  return {
    result: {
      content: [{ type: 'text', text: TEXT }],
      resultType: 'complete',
      _meta: { 'io.modelcontextprotocol/serverInfo': { name: 'pqc-mcp-example', version: '0.1.0' } },
    },
    jsonrpc: '2.0',
    id,
  };
}

/**
 * Runs `fn` repeatedly for about `ms` milliseconds (at least `minIterations` times, after `warmup` untimed runs);
 * returns the per-call times in milliseconds.
 */
export async function timeCalls(fn: () => Promise<unknown> | unknown, ms: number, minIterations = 5, warmup = 3): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn();
  const samples: number[] = [];
  const end = performance.now() + ms;
  while (samples.length < minIterations || performance.now() < end) {
    const t = performance.now();
    await fn();
    samples.push(performance.now() - t);
  }
  return samples;
}
