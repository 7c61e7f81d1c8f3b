/**
 * `UrlTrustStore`: a trust document served at a URL (a JWK Set, JWKS-style), fetched with the web-standard `fetch`.
 * Cached; fetched again when older than `maxAgeMs` (on use, so revocations reach this instance within it) and for a
 * handshake of an unknown key, at most once per `unknownKeyCooldownMs`: a flood of handshakes with fresh keys (anyone
 * can make keys) costs at most one fetch per cooldown, never one per request. Each fetch is bounded in time and size.
 */
import type { FetchLike } from '../client/options.js';
import { readBodyLimited } from '../http.js';
import { TrustStore, type TrustStoreOptions } from './store.js';
import type { TrustSet } from './document.js';

/** Options of `UrlTrustStore.load`. */
export interface UrlTrustStoreOptions extends TrustStoreOptions {
  /** The fetch to use (default `globalThis.fetch`). */
  fetch?: FetchLike;
  /** Headers sent with every fetch (an authorization to the key server, say). */
  headers?: Record<string, string>;
  /** Bound on one fetch, headers and body, ms (default 5 000). */
  timeoutMs?: number;
  /** Bound on the document, bytes (default 1 MiB). */
  maxBytes?: number;
  /** Age past which the document is fetched again on use, ms (default 300 000). */
  maxAgeMs?: number;
  /** Least time between two fetches for handshakes of unknown keys, ms (default 30 000). */
  unknownKeyCooldownMs?: number;
  /** The store's clock, epoch ms (default `Date.now`). */
  now?: () => number;
}

function positive(value: number | undefined, fallback: number, name: string): number {
  const v = value ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new TypeError(`UrlTrustStore: option "${name}" must be a number >= 0, got ${String(v)}`);
  return v;
}

interface Fetched {
  text: string | undefined;
  etag: string | null;
}

/** A trust document fetched from a URL (docs: packages/core/README.md, "Trust stores and revocation"). */
export class UrlTrustStore extends TrustStore {
  readonly url: string;
  readonly #fetch: FetchLike;
  readonly #headers: Record<string, string>;
  readonly #timeoutMs: number;
  readonly #maxBytes: number;
  readonly #maxAgeMs: number;
  readonly #cooldownMs: number;
  readonly #now: () => number;
  /** When the last fetch started (successful or not): the bounds count from there. */
  #lastFetch: number;
  #etag: string | null;

  private constructor(url: string, first: Fetched & { text: string }, startedAt: number, o: Required<Omit<UrlTrustStoreOptions, 'onError' | 'maxEntries'>> & TrustStoreOptions) {
    super(first.text, o);
    this.url = url;
    this.#fetch = o.fetch;
    this.#headers = o.headers;
    this.#timeoutMs = o.timeoutMs;
    this.#maxBytes = o.maxBytes;
    this.#maxAgeMs = o.maxAgeMs;
    this.#cooldownMs = o.unknownKeyCooldownMs;
    this.#now = o.now;
    this.#lastFetch = startedAt;
    this.#etag = first.etag;
  }

  /**
   * Fetches the document at `url` and builds the store; throws when the first fetch fails or the document is bad (a
   * server must not start with a trust store it could not read).
   */
  static async load(url: string | URL, options: UrlTrustStoreOptions = {}): Promise<UrlTrustStore> {
    const href = new URL(url).href;
    const fetchImpl = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    if (typeof fetchImpl !== 'function') throw new TypeError('UrlTrustStore: option "fetch" must be a function');
    const o = {
      ...options,
      fetch: fetchImpl,
      headers: { ...(options.headers ?? {}) },
      timeoutMs: positive(options.timeoutMs, 5_000, 'timeoutMs'),
      maxBytes: positive(options.maxBytes, 1024 * 1024, 'maxBytes'),
      maxAgeMs: positive(options.maxAgeMs, 300_000, 'maxAgeMs'),
      unknownKeyCooldownMs: positive(options.unknownKeyCooldownMs, 30_000, 'unknownKeyCooldownMs'),
      now: options.now ?? Date.now,
    };
    const startedAt = o.now();
    const first = await fetchDocument(href, o.fetch, o.headers, null, o.timeoutMs, o.maxBytes);
    if (first.text === undefined) throw new TypeError(`UrlTrustStore: ${href} answered 304 to a first fetch`);
    return new UrlTrustStore(href, { ...first, text: first.text }, startedAt, o);
  }

  protected override onUse(): void {
    if (this.#now() - this.#lastFetch >= this.#maxAgeMs) void this.reload();
  }

  protected override async beforeAuthorize(did: string): Promise<void> {
    const age = this.#now() - this.#lastFetch;
    if (age >= this.#maxAgeMs) await this.reload();
    else if (!this.keys.has(did) && !this.isRevoked(did) && age >= this.#cooldownMs) await this.reload();
  }

  protected override async beforeSession(openedAt: number): Promise<void> {
    // Fetched before the session opened: another instance may have admitted a key added since. Once per session.
    if (this.#lastFetch <= openedAt) await this.reload();
  }

  protected override async load(): Promise<TrustSet | undefined> {
    this.#lastFetch = this.#now();
    try {
      const fetched = await fetchDocument(this.url, this.#fetch, this.#headers, this.#etag, this.#timeoutMs, this.#maxBytes);
      if (fetched.text === undefined) return undefined;
      const set = this.parse(fetched.text);
      this.#etag = fetched.etag;
      return set;
    } catch (err) {
      throw new Error(`${err instanceof Error ? err.message : String(err)}; the last good one stays`, { cause: err });
    }
  }
}

/** One bounded fetch: the text (undefined for a 304 to `If-None-Match`), or a thrown error naming the cause. */
async function fetchDocument(
  url: string,
  fetchImpl: FetchLike,
  headers: Record<string, string>,
  etag: string | null,
  timeoutMs: number,
  maxBytes: number,
): Promise<Fetched> {
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const response = await fetchImpl(url, {
      method: 'GET',
      headers: { accept: 'application/json', ...headers, ...(etag !== null ? { 'if-none-match': etag } : {}) },
      redirect: 'error',
      signal,
    });
    if (response.status === 304 && etag !== null) {
      await response.body?.cancel().catch(() => {});
      return { text: undefined, etag };
    }
    if (response.status !== 200) {
      await response.body?.cancel().catch(() => {});
      throw new Error(`HTTP ${response.status}`);
    }
    const bytes = await readBodyLimited(response.body, maxBytes, response.headers.get('content-length'));
    return { text: new TextDecoder('utf-8', { fatal: true }).decode(bytes), etag: response.headers.get('etag') };
  } catch (err) {
    const cause = signal.aborted ? `no answer within ${timeoutMs} ms` : err instanceof Error ? err.message : String(err);
    throw new Error(`trust document at ${url} not read: ${cause}`, { cause: err });
  }
}
