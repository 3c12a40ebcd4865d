/**
 * The rate authority: one token bucket per rate key ("the server's
 * downloads", "alice's uploads"), granting leases of a tenth of a second's
 * worth of bytes. Every process spends its leases locally (`LocalRates`),
 * so a user's rate is shared by all of the user's sessions, in one process
 * or across cluster workers, where this object lives in the primary
 * (`shared.rates`) and workers lease over IPC about ten times a second per
 * rate in use.
 *
 * Leases are granted in the order they were asked for: the bucket fills at
 * the rate, and the oldest request gets the next full lease. So two workers
 * asking at once alternate instead of one of them getting every refill.
 *
 * The bucket holds up to two leases and starts with one. One lease of room
 * would lose what accrues while a request is late (a timer that fires late
 * on a busy machine, the IPC round trip): a lease 10 ms late every 100 ms
 * would be 10 % of the rate. With two, lateness carries over to the next
 * lease, and a burst after a pause is at most 200 ms worth. The
 * caller says the rate with each lease: the authority has no settings of its
 * own, and a reload takes effect with the next lease.
 */
import { leaseBytes, TokenBucket } from './token-bucket.js';

/** What a process asks of the rate authority (every method may cross IPC: plain JSON in and out). */
export interface RateAuthority {
  /**
   * Resolves with the bytes granted from `key` at `bytesPerSecond` (one
   * lease, `leaseBytes(bytesPerSecond)`), once the key's bucket holds them;
   * requests for one key are served first come, first served.
   */
  lease(key: string, bytesPerSecond: number, owner: string): Promise<number>;
  /** A process is gone (a dead cluster worker): drop its requests still waiting. */
  forgetOwner?(owner: string): void;
}

interface Waiter {
  owner: string;
  resolve(bytes: number): void;
}

interface KeyState {
  bucket: TokenBucket;
  queue: Waiter[];
  timer: NodeJS.Timeout | null;
}

export class RateService implements RateAuthority {
  readonly #rates = new Map<string, KeyState>();
  readonly #now: () => number;

  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
  }

  lease(key: string, bytesPerSecond: number, owner: string): Promise<number> {
    if (!(bytesPerSecond > 0)) return Promise.reject(new RangeError(`rate ${key}: ${bytesPerSecond} bytes/s is not a positive rate`));
    const now = this.#now();
    const known = this.#rates.get(key);
    const lease = leaseBytes(bytesPerSecond);
    const rate = known ?? { bucket: new TokenBucket(bytesPerSecond, 2 * lease, now, lease), queue: [], timer: null };
    if (!known) this.#rates.set(key, rate);
    else if (rate.bucket.rate !== bytesPerSecond) rate.bucket.setRate(bytesPerSecond, 2 * lease, now);
    const granted = new Promise<number>((resolve) => rate.queue.push({ owner, resolve }));
    this.#serve(key, rate);
    return granted;
  }

  forgetOwner(owner: string): void {
    for (const [key, rate] of this.#rates) {
      rate.queue = rate.queue.filter((waiter) => waiter.owner !== owner);
      this.#serve(key, rate);
    }
  }

  /** Rate keys with a bucket (tests: idle buckets are dropped once full). */
  get size(): number {
    return this.#rates.size;
  }

  /** Stop every timer (the server closes). Requests still waiting never settle: their transfers are being cut. */
  close(): void {
    for (const rate of this.#rates.values()) if (rate.timer) clearTimeout(rate.timer);
    this.#rates.clear();
  }

  #serve(key: string, rate: KeyState): void {
    if (rate.timer) clearTimeout(rate.timer);
    rate.timer = null;
    const { bucket } = rate;
    for (;;) {
      const now = this.#now();
      if (rate.queue.length === 0) {
        // Nobody waits: once the bucket is full again it is the same as a new one, so it goes.
        const wait = bucket.msUntil(bucket.capacity, now);
        if (wait === 0) this.#rates.delete(key);
        else rate.timer = setTimeout(() => this.#serve(key, rate), wait).unref();
        return;
      }
      const lease = leaseBytes(bucket.rate);
      const wait = bucket.msUntil(lease, now);
      if (wait > 0) {
        // Not unref'd: someone is waiting for it.
        rate.timer = setTimeout(() => this.#serve(key, rate), wait);
        return;
      }
      rate.queue.shift()!.resolve(bucket.take(lease, now));
    }
  }
}
