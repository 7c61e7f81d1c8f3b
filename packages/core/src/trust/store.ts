/**
 * `TrustStore`: the client keys a server trusts and the DIDs it revoked, held in memory so that every message can be
 * checked against it for free. Given as the server's `authorize` option, it decides handshakes (a key must be listed,
 * with the very public key presented, and not revoked) and ends the live sessions of a client whose trust is
 * withdrawn: revoked, or no longer listed after a reload. Subclasses reload it from a source: `UrlTrustStore` (a URL
 * serving a JWK Set, here) and `FileTrustStore` (a file, `@pqc-mcp/core/node`).
 *
 * A reload that fails (unreadable, malformed, too large) keeps the last good set and is reported to `onError`: keys
 * only the bad document would add stay untrusted (fail closed), keys and revocations already known stay in force.
 */
import type { PeerIdentity } from '../identity.js';
import { DEFAULT_MAX_TRUST_ENTRIES, parseTrustDocument, type TrustDocument, type TrustSet, type TrustedKey } from './document.js';

/** Options shared by the trust stores. */
export interface TrustStoreOptions {
  /**
   * Told of every failure: a reload refused (the last good set stays), a withdrawn client's sessions that the session
   * store could not end. Default: `console.error`. Errors it throws are ignored.
   */
  onError?: (error: Error) => void;
  /** Bound on the keys plus revoked DIDs of one document (default 10 000); a larger one is refused whole. */
  maxEntries?: number;
}

/** Told the DIDs whose trust was just withdrawn (revoked, or no longer listed). */
export type TrustWithdrawnListener = (dids: readonly string[]) => void;

function defaultOnError(error: Error): void {
  console.error(`pqc trust store: ${error.message}`);
}

/** A set of trusted client keys and revoked DIDs (docs: packages/core/README.md, "Trust stores and revocation"). */
export class TrustStore {
  #set: TrustSet;
  readonly #listeners = new Set<TrustWithdrawnListener>();
  readonly #onError: (error: Error) => void;
  #pending: Promise<boolean> | undefined;
  /** Bound on the entries of a document this store reads. */
  protected readonly maxEntries: number;

  /** A store of the keys and revocations of `document` (a `TrustDocument` or its JSON text); throws on a bad one. */
  constructor(document: TrustDocument | string, options: TrustStoreOptions = {}) {
    if (options.onError !== undefined && typeof options.onError !== 'function') throw new TypeError('TrustStore: option "onError" must be a function');
    const maxEntries = options.maxEntries ?? DEFAULT_MAX_TRUST_ENTRIES;
    if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new TypeError(`TrustStore: option "maxEntries" must be a positive integer, got ${String(maxEntries)}`);
    this.maxEntries = maxEntries;
    this.#onError = options.onError ?? defaultOnError;
    this.#set = parseTrustDocument(document, maxEntries);
  }

  /** The trusted keys, by DID (revoked ones included: see `isRevoked`). */
  get keys(): ReadonlyMap<string, TrustedKey> {
    return this.#set.keys;
  }

  /** True when the document revokes `did`. */
  isRevoked(did: string): boolean {
    return this.#set.revoked.has(did);
  }

  /**
   * True while `did` may keep a session: listed and not revoked. In memory (the server asks it for every message); a
   * subclass may start a reload in the background when its document is due for one.
   */
  allows(did: string): boolean {
    this.onUse();
    return this.#set.keys.has(did) && !this.isRevoked(did);
  }

  /**
   * True while the session of `did` opened at `openedAt` (epoch ms) may go on. Like `allows`, but a DID this store
   * does not list (and does not revoke) is checked against the source first when the session may have been opened
   * by an instance that read a newer document (a key added since this store last read its source): refused only if
   * the source does not list it either.
   */
  async allowsSession(did: string, openedAt: number): Promise<boolean> {
    if (this.allows(did)) return true;
    if (this.isRevoked(did)) return false;
    await this.beforeSession(openedAt);
    return this.#set.keys.has(did) && !this.isRevoked(did);
  }

  /**
   * True when `peer` may open a session: its DID is listed with the very key it presented, and is not revoked. A
   * subclass may first reload its document (a file checked for a change, a URL fetched for an unknown key).
   */
  async authorize(peer: PeerIdentity): Promise<boolean> {
    await this.beforeAuthorize(peer.did);
    const key = this.#set.keys.get(peer.did);
    return key !== undefined && key.algorithm === peer.algorithm && key.publicKeyHex === peer.publicKeyHex && !this.isRevoked(peer.did);
  }

  /** Subscribes to withdrawals (the server does, to end sessions); returns the unsubscribe function. */
  onWithdraw(listener: TrustWithdrawnListener): () => void {
    if (typeof listener !== 'function') throw new TypeError('TrustStore.onWithdraw: the listener must be a function');
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Reloads the document from the store's source now (coalesced: calls during a reload share it). Resolves true when
   * the store holds the source's current document, false when the reload failed (reported to `onError`; the last good
   * set stays). A store built from a document has no source: true.
   */
  reload(): Promise<boolean> {
    this.#pending ??= (async () => {
      try {
        const set = await this.load();
        if (set !== undefined) this.replace(set);
        return true;
      } catch (err) {
        this.reportError(err);
        return false;
      } finally {
        this.#pending = undefined;
      }
    })();
    return this.#pending;
  }

  /** Reports a failure to `onError` (never throws). */
  reportError(error: unknown): void {
    try {
      this.#onError(error instanceof Error ? error : new Error(String(error)));
    } catch {
      // the reporter's own failure is not ours to handle
    }
  }

  /** Stops what the store runs in the background (a file watcher). */
  close(): void {}

  /** Reads the source: the new set, or undefined when unchanged. Throws when it cannot be read or parsed. */
  protected async load(): Promise<TrustSet | undefined> {
    return undefined;
  }

  /** Called on every `allows` (every message): a subclass starts a background reload when one is due. */
  protected onUse(): void {}

  /** Called for a session of a DID this store does not list: a subclass reloads if its source may list it now. */
  protected async beforeSession(_openedAt: number): Promise<void> {}

  /** Called before a handshake is decided: a subclass reloads when its document may be stale for `did`. */
  protected async beforeAuthorize(_did: string): Promise<void> {}

  /** Parses a document with this store's bound. */
  protected parse(document: string | TrustDocument): TrustSet {
    return parseTrustDocument(document, this.maxEntries);
  }

  /** Installs a new set and tells the listeners which DIDs it withdrew (no longer listed, or newly revoked). */
  protected replace(set: TrustSet): void {
    const before = this.#set;
    this.#set = set;
    const withdrawn = new Set<string>();
    for (const did of before.keys.keys()) {
      const wasAllowed = !before.revoked.has(did);
      if (wasAllowed && !(set.keys.has(did) && !this.isRevoked(did))) withdrawn.add(did);
    }
    for (const did of set.revoked) if (!before.revoked.has(did)) withdrawn.add(did);
    if (withdrawn.size > 0) this.#emit([...withdrawn]);
  }

  #emit(dids: readonly string[]): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener(dids);
      } catch (err) {
        this.reportError(err);
      }
    }
  }
}
