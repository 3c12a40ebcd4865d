/**
 * A token bucket: pure arithmetic, no timers and no clock of its own (the
 * caller passes `now` in milliseconds), so it is tested exactly.
 *
 * One token is one byte. The bucket fills at `rate` tokens per second up to
 * `capacity`; what is not taken by then is lost, which is what bounds a
 * burst after an idle period. It starts with `initial` tokens (default: full).
 */
export class TokenBucket {
  #rate: number;
  #capacity: number;
  #tokens: number;
  #last: number;

  constructor(bytesPerSecond: number, capacity: number, now: number, initial = capacity) {
    this.#rate = bytesPerSecond;
    this.#capacity = capacity;
    this.#tokens = Math.min(initial, capacity);
    this.#last = now;
  }

  get rate(): number {
    return this.#rate;
  }

  get capacity(): number {
    return this.#capacity;
  }

  /** A new rate (a reload): what has accrued so far counts at the old one. */
  setRate(bytesPerSecond: number, capacity: number, now: number): void {
    this.#refill(now);
    this.#rate = bytesPerSecond;
    this.#capacity = capacity;
    this.#tokens = Math.min(this.#tokens, capacity);
  }

  /** Whole tokens available at `now`. */
  available(now: number): number {
    this.#refill(now);
    return Math.floor(this.#tokens);
  }

  /** Take up to `max` tokens at `now`; returns how many were taken (0 when empty). */
  take(max: number, now: number): number {
    const n = Math.min(max, this.available(now));
    this.#tokens -= n;
    return n;
  }

  /** Milliseconds from `now` until `n` tokens (at most the capacity) are available; 0 when they already are. */
  msUntil(n: number, now: number): number {
    this.#refill(now);
    const missing = Math.min(n, this.#capacity) - this.#tokens;
    return missing <= 0 ? 0 : Math.ceil((missing * 1000) / this.#rate);
  }

  #refill(now: number): void {
    // A clock that steps back (it is monotonic in Ferry, but callers may not be) adds nothing.
    if (now > this.#last) this.#tokens = Math.min(this.#capacity, this.#tokens + ((now - this.#last) * this.#rate) / 1000);
    this.#last = Math.max(this.#last, now);
  }
}

/** How long a lease lasts at its rate: a tenth of a second's worth of bytes. */
export const LEASE_MS = 100;

/**
 * The bytes one lease grants at `bytesPerSecond`: small enough that no
 * write bursts more than 100 ms worth (a 512 KiB chunk at 1 KB/s goes 100
 * bytes at a time), large enough that a process asks the authority about
 * ten times a second per rate.
 */
export function leaseBytes(bytesPerSecond: number): number {
  return Math.max(1, Math.round((bytesPerSecond * LEASE_MS) / 1000));
}
