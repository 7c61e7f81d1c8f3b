export * from './algorithms.js';
export type * from './types.js';
export { nobleBackend } from './noble.js';
export { nodeBackend } from './node.js';
export { sha3_256, sha3_256Hex, sha3Backend } from './hash.js';
export * from './select.js';
export { detectWebCrypto, webcryptoBackend } from './webcrypto.js';
