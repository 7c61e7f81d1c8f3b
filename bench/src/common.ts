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

/** A typical MCP tools/call request (the example servers' `echo` tool, a sentence of arguments). */
export function toolsCall(id: number): Record<string, unknown> {
  return {
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: { name: 'echo', arguments: { text: 'Summarise the quarterly report for the finance team, please.' } },
  };
}

/** The answer the example server gives to `toolsCall` (as the MCP SDK writes it). */
export function toolsCallResult(id: number): Record<string, unknown> {
  return {
    result: { content: [{ type: 'text', text: 'Summarise the quarterly report for the finance team, please.' }] },
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
