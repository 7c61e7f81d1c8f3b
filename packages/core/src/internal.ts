/**
 * `@pqc-mcp/core/internal`: plumbing the other packages of this project share (the stores, the adapters, the CLI).
 * Not for applications: it changes without notice.
 */
export { NonceWindow } from './store/nonce-window.js';
export { parseSessionRecord, recordRetainedUntil, serializeSessionRecord } from './store/record.js';
export { SESSION_STORE_METHODS } from './store/types.js';
export { headersForNewBody, mediaType, readAtMost, pqcErrorResponse, pqcReasonOf, NO_BODY_STATUS } from './http.js';
export { transformEventStream } from './sse.js';
export { DEFAULT_MAX_NONCES_PER_SESSION, MCP_SESSION_HEADER, nonceRetentionSec } from './protocol.js';
export { routeKey, originForm } from './server/route.js';
export { isPQCHandler } from './server/index.js';
export { isLingeringRequest, lingerOnUnreadBody, type LingeringRequest, type LingeringSocket } from './linger.js';
export { readRotationRecords } from './rotation.js';
