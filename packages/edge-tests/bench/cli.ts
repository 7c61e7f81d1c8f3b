/** Node, Bun, Deno: prints the `measureCost` result as one JSON line. */
import { measureCost } from './cost.js';

const samples = Number((globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.BENCH_SAMPLES ?? 40);
console.log(JSON.stringify(await measureCost(samples)));
