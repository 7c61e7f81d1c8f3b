/**
 * `@pqc-mcp/durable-object`: a `SessionStore` on a Cloudflare Durable Object, for PQC servers on Workers.
 *
 * A Worker runs in many isolates at once, in many locations, and an isolate's memory lives only as long as the
 * isolate: a `MemorySessionStore` there forgets sessions at random and, worse, two isolates would each accept the
 * same replayed nonce. Sessions and nonces need one strongly consistent home, which is what a Durable Object is: one
 * instance in the world per name, its requests handled one at a time, its storage transactional.
 *
 * Workers KV is NOT safe for nonces: it is eventually consistent (a write is visible in other locations only after up
 * to 60 seconds), and it has no atomic compare-and-set, so "was this nonce seen? if not, record it" is a race that
 * two requests (or two locations) can both win: a replayed request inside that window would be accepted.
 *
 * Two pieces:
 *   - `PQCSessionStoreObject`, the Durable Object class: export it from the Worker's main module and bind it as a
 *     SQLite-backed class (wrangler `new_sqlite_classes`, the only kind the Workers free plan offers). Every store
 *     operation runs as synchronous SQL inside one `fetch` of the object, in one transaction, with no `await` between
 *     its reads and its writes: it is atomic, and it is durable before the answer leaves the object (output gates).
 *   - `DurableObjectSessionStore`, the `SessionStore` the PQC layer uses: each method is one call to the object.
 *     A call that fails (the object cannot be reached) throws, and the server answers `store_unavailable`.
 *
 * ```ts
 * import { DurableObjectSessionStore, PQCSessionStoreObject } from '@pqc-mcp/durable-object';
 * export { PQCSessionStoreObject };
 * // in fetch(request, env): pqc({ identity, store: new DurableObjectSessionStore(env.PQC_SESSIONS) })
 * ```
 *
 * Only web standards and the Workers runtime's Durable Object API are used; no Cloudflare type package is needed
 * (the `*Like` interfaces are the parts used, and the real types fit them).
 */
export {
  DurableObjectSessionStore,
  type DurableObjectNamespaceLike,
  type DurableObjectSessionStoreOptions,
  type DurableObjectStubLike,
} from './store.js';
export {
  PQCSessionStoreObject,
  type DurableObjectStateLike,
  type PQCSessionStoreObjectOptions,
  type SqlCursorLike,
  type SqlStorageLike,
} from './object.js';
export type { SessionStoreStats } from './calls.js';
