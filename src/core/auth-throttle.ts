// Slows down repeated authentication failures from one network (RFC 6120 §13.9.4 on dictionary attacks), for SASL
// and for the HTTP admin surfaces. Each network (an IPv4 address, or an IPv6 /64, the unit one subscriber gets) keeps
// a failure count that is forgotten after a quiet period; past a few free failures every further one is delayed.
// A success forgives only the failures made for the same account: someone who owns one account cannot launder
// guesses at another account's password by logging in to their own between guesses.
import { isIPv6 } from "node:net";

/** Accounts per network whose failures are remembered separately (the rest are never forgiven). */
const MAX_USERS_PER_ENTRY = 16;

interface Entry {
  failures: number;
  last: number;
  /** Failures per account name, so that a success forgives only its own. */
  byUser: Map<string, number>;
}

/** The throttling unit of an address: IPv4 (also IPv4-mapped) as is, IPv6 by its /64 prefix. */
export function networkOf(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (!isIPv6(address)) return address;
  // Expand "::" so that the first four groups are the prefix, whatever the spelling.
  const [head = "", tail] = address.toLowerCase().split("%")[0]!.split("::") as [string, string | undefined];
  const left = head === "" ? [] : head.split(":");
  const right = tail === undefined || tail === "" ? [] : tail.split(":");
  const groups = tail === undefined ? left : [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill("0"), ...right];
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, "")).join(":")}::/64`;
}

/** Per-network failure counter with exponential delay. */
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

  /** Record a failure (for `user` when the attempt named an account); returns how long to wait before answering it (ms). */
  failure(address: string, opts: { user?: string | undefined; now?: number } = {}): number {
    const now = opts.now ?? Date.now();
    const key = networkOf(address);
    let e = this.#entries.get(key);
    if (!e || now - e.last > this.#forgetMs) e = { failures: 0, last: now, byUser: new Map() };
    e.failures++;
    e.last = now;
    if (opts.user !== undefined && (e.byUser.has(opts.user) || e.byUser.size < MAX_USERS_PER_ENTRY)) {
      e.byUser.set(opts.user, (e.byUser.get(opts.user) ?? 0) + 1);
    }
    this.#entries.set(key, e);
    if (this.#entries.size > 100_000) this.#sweep(now);
    return this.delay(address, now);
  }

  /** The delay currently applied to failures from this address's network (ms). */
  delay(address: string, now = Date.now()): number {
    const e = this.#entries.get(networkOf(address));
    if (!e || now - e.last > this.#forgetMs || e.failures <= this.#freeFailures) return 0;
    return Math.min(30_000, this.#baseDelayMs * 2 ** Math.min(15, e.failures - this.#freeFailures - 1));
  }

  /** `user` logged in from this address: their own earlier failures (mistyped passwords) are forgiven, no others. */
  success(address: string, user: string): void {
    const e = this.#entries.get(networkOf(address));
    const own = e?.byUser.get(user);
    if (!e || own === undefined) return;
    e.failures = Math.max(0, e.failures - own);
    e.byUser.delete(user);
  }

  #sweep(now: number): void {
    for (const [k, e] of this.#entries) if (now - e.last > this.#forgetMs) this.#entries.delete(k);
  }
}
