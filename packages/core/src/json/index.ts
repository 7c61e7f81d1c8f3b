/** pqc-json (docs/PROTOCOL.md §2): strict lossless parsing and the canonical / wire serializers. */
export { JsonNumber, MAX_DEPTH, parseLossless, toPlain } from './lossless.js';
export type { JsonObject, JsonValue, ParseLimits } from './lossless.js';
export { canonicalJson, canonicalText, serializeJson } from './canonical.js';
