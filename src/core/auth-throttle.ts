// Slows down repeated SASL failures from one address (RFC 6120 §13.9.4 on dictionary attacks).
// Each address keeps a failure count that decays; past a threshold every further failure is delayed.

interface Entry {
  failures: number;
  last: number;
}

/** Per-address failure counter with exponential delay. */
export class AuthThrottle {
  readonly #entries = new Map<string, Entry>();
  readonly #baseDelayMs: number;
  readonly #freeFailures: number;
  readonly #forgetMs: number;

  constructor(opts: { baseDelayMs: number; freeFailures?: number; forgetMs?: number }) {
    this.#baseDelayMs = opts.baseDelayMs;
    this.#freeFailures = opts.freeFailures ?? 3;
    this.#forgetMs = opts.forgetMs ?? 10 * 60_000;
  }

  /** Record a failure; returns how long to wait before answering it (ms). */
  failure(address: string, now = Date.now()): number {
    let e = this.#entries.get(address);
    if (!e || now - e.last > this.#forgetMs) e = { failures: 0, last: now };
    e.failures++;
    e.last = now;
    this.#entries.set(address, e);
    if (this.#entries.size > 100_000) this.#sweep(now);
    return this.delay(address, now);
  }

  /** The delay currently applied to failures from this address (ms). */
  delay(address: string, now = Date.now()): number {
    const e = this.#entries.get(address);
    if (!e || now - e.last > this.#forgetMs || e.failures <= this.#freeFailures) return 0;
    return Math.min(30_000, this.#baseDelayMs * 2 ** Math.min(15, e.failures - this.#freeFailures - 1));
  }

  /** A success does not erase the record (an attacker may own one account), but halves it. */
  success(address: string): void {
    const e = this.#entries.get(address);
    if (e) e.failures = Math.floor(e.failures / 2);
  }

  #sweep(now: number): void {
    for (const [k, e] of this.#entries) if (now - e.last > this.#forgetMs) this.#entries.delete(k);
  }
}
