/**
 * @pqc-mcp/hono on Node: the same middleware, with the Node adapters' `cryptoPool` option (default `'auto'`), so ML-DSA
 * runs in worker threads off the event loop, as with Express and Fastify. `@pqc-mcp/hono` resolves here under Node
 * (the package's `node` export condition; Bun, Deno and workers get the web-standard entry); `@pqc-mcp/hono/node`
 * names it explicitly.
 */
import type { PQCHandler } from '@pqc-mcp/core';
import { isPQCHandler } from '@pqc-mcp/core/internal';
import { resolveCryptoPool, type CryptoPoolOption, type NodeServerOptions } from '@pqc-mcp/core/node';
import type { MiddlewareHandler } from 'hono';
import { pqc as webPqc, type PQCHonoOptions, type PQCVariables } from './index.js';

export { AgentIdentity, pqcAuthInfo, type PQCAuthInfo, type PQCHandler, type PQCHonoOptions, type PQCRequestContext, type PQCServerOptions, type PQCVariables } from './index.js';
export type { CryptoPoolOption };

/** Options of `pqc` on Node: core's server options plus `cryptoPool` (sign and verify in worker threads; default `'auto'`). */
export type PQCHonoNodeOptions = PQCHonoOptions & Pick<NodeServerOptions, 'cryptoPool'>;

/**
 * The PQC middleware on Node: as the web-standard `pqc`, with `cryptoPool` (default `'auto'`: the built-in noble
 * and node:crypto backends sign and verify in a process-wide worker pool sized to the cores; `false` keeps the crypto
 * on the identity's backend). An existing `PQCHandler` is used as it is.
 */
export function pqc(options: PQCHonoNodeOptions | PQCHandler): MiddlewareHandler<{ Variables: PQCVariables }> {
  return webPqc(isPQCHandler(options) ? options : resolveCryptoPool(options));
}
