/**
 * @pqc-mcp/core: post-quantum signed Model Context Protocol messages (docs/PROTOCOL.md), in web-standard TypeScript.
 */
export * from './errors.js';
export * from './bytes.js';
export * from './time.js';
export * from './crypto/index.js';
export * from './json/index.js';
export * from './identity.js';
export * from './envelope.js';
export * from './session.js';
export * from './handshake.js';
export * from './audit.js';
export * from './verify.js';
export * from './http.js';
export * from './sse.js';
export * from './server.js';
export * from './client.js';
