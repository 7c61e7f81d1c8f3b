/**
 * A bounded set of keys seen within an acceptance window, each with the signed time it came with. When the cap is
 * reached the oldest key (by arrival) is dropped and its time becomes a floor: a key whose time is not newer than
 * the floor can no longer be proven new and is refused, so dropping never reopens a replay. The rule of every store
 * (memory, Redis, Durable Object): the session-store contract suite holds them to it.
 */
export class NonceWindow {
  readonly #expiries = new Map<string, number>(); // key -> expiry (ms); insertion order is arrival order
  readonly #times = new Map<string, number>(); // key -> signed time (ms)
  #floorMs = Number.NEGATIVE_INFINITY;
  readonly maxKeys: number;

  constructor(maxKeys: number) {
    this.maxKeys = maxKeys;
  }

  /** True (and recorded) when `key` is new and provably so; false for a replay. */
  record(key: string, timestampMs: number, ttlMs: number, now: number): boolean {
    if (this.#expiries.size >= this.maxKeys) this.#sweep(now);
    const seen = this.#expiries.get(key);
    if (seen !== undefined && seen > now) return false;
    if (timestampMs <= this.#floorMs) return false;
    while (this.#expiries.size >= this.maxKeys) {
      const oldest = this.#expiries.keys().next().value as string;
      this.#floorMs = Math.max(this.#floorMs, this.#times.get(oldest) ?? Number.NEGATIVE_INFINITY);
      this.#expiries.delete(oldest);
      this.#times.delete(oldest);
    }
    this.#expiries.delete(key);
    this.#expiries.set(key, now + ttlMs);
    this.#times.set(key, timestampMs);
    return true;
  }

  /** Number of keys held. */
  get size(): number {
    return this.#expiries.size;
  }

  #sweep(now: number): void {
    // Every key gets a TTL of the same order; stop at the first live one met in arrival order.
    for (const [key, expires] of this.#expiries) {
      if (expires > now) break;
      this.#expiries.delete(key);
      this.#times.delete(key);
    }
  }
}
