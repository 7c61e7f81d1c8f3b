/** @pqc-mcp/test-kit: what the tests of every package share (private, never published). */
export * from './vectors.js';
export * from './identities.js';
export * from './conformance.js';
export * from './redis.js';
export * from './redis-process.js';
export * from './report.js';
export * from './store-contract.js';
export * from './raw-client.js';
export * from './middlebox.js';
export * from './hostile.js';
export * from './mcp-apps-1x.js';
export * from './sdk-clients.js';
export * from './exports.js';
export * from './routing-fuzz.js';
export * from './python-peer.js';
export * from './python-client-suite.js';
export * from './python-server.js';
