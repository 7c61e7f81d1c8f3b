/**
 * `@pqc-mcp/core/node`: the glue between Node's `http` objects and the web-standard core, shared by the Express and
 * Fastify adapters and the CLI, and the worker-pool crypto backend. Node-only, so it lives outside the core's main
 * entry (which must bundle for workerd).
 */
export { handleNodeRequest, type NodeRequestOptions, type NodeRunApp } from './handle.js';
export { lingerOnUnreadBody, nodeRequestTarget, nodeRequestUrl, toWebRequest } from './request.js';
export { captureNodeResponse, sendWebResponse } from './response.js';
export { applyKeepAliveTimeout, KEEP_ALIVE_TIMEOUT_MS, type KeepAliveTimeoutOptions } from './keep-alive.js';
export { resolveCryptoPool, type CryptoPoolOption, type NodeServerOptions } from './crypto-pool.js';
export {
  CryptoPoolError,
  createWorkerPoolBackend,
  defaultPoolSize,
  sharedWorkerPool,
  type PoolEngine,
  type WorkerPoolBackend,
  type WorkerPoolOptions,
  type WorkerPoolStats,
} from './pool.js';
export { FileTrustStore, type FileTrustStoreOptions } from './trust-file.js';
export { FileToolPinStore } from './tool-pin-file.js';
export { openAuditFile, type AuditFile, type AuditFileOptions, type AuditFsync } from './audit-file.js';
