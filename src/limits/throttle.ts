/**
 * Bandwidth limits in one process: a pool of leased bytes per rate key,
 * filled from the rate authority (`rates.ts`, local or in the cluster
 * primary) one lease at a time, and spent by the transfers of this process.
 * A transfer's `Throttle` spends from every pool that applies to it (the
 * server's rate for its direction, its user's), so the tighter one decides
 * at each moment.
 *
 * A transfer with no rate gets no Throttle at all (`null`), and the data
 * path then runs exactly as without this module (see data/transfer.ts).
 */
import type { RateAuthority } from './rates.js';
import { leaseBytes } from './token-bucket.js';

export type Direction = 'download' | 'upload';

/** How long a pool no transfer uses keeps its leftover bytes (a client fetching many small files reuses them). */
const POOL_LINGER_MS = 1000;

/** Bytes leased for one rate key in this process. */
class Pool {
  tokens = 0;
  users = 0;
  #pending: Promise<void> | null = null;
  #linger: NodeJS.Timeout | null = null;

  constructor(
    readonly key: string,
    public bytesPerSecond: number,
    readonly local: LocalRates,
  ) {}

  /**
   * Ask for the next lease before this one is spent (below half of one), so
   * that the authority's queue always holds this process's next request: a
   * lease asked for only once the pool is empty arrives a round trip late
   * (IPC to the primary, a busy event loop).
   */
  spent(): void {
    if (this.#pending === null && this.tokens < leaseBytes(this.bytesPerSecond) / 2) this.refill().catch(() => undefined); // a waiter hears the error
  }

  /** One lease at a time per pool: every transfer waiting on it wakes when it arrives. */
  refill(): Promise<void> {
    return (this.#pending ??= this.local.authority
      .lease(this.key, this.bytesPerSecond, this.local.ownerId)
      .then((bytes) => void (this.tokens += bytes))
      .finally(() => (this.#pending = null)));
  }

  acquire(bytesPerSecond: number): this {
    this.users++;
    this.bytesPerSecond = bytesPerSecond;
    if (this.#linger) clearTimeout(this.#linger);
    this.#linger = null;
    return this;
  }

  release(): void {
    if (--this.users > 0) return;
    this.#linger = setTimeout(() => {
      if (this.users === 0) this.local.drop(this);
    }, POOL_LINGER_MS).unref();
  }
}

/** One rate a transfer obeys: `key` names what shares it (`server:download`, `user:"alice":upload`). */
export interface Rate {
  key: string;
  bytesPerSecond: number;
}

/** The rates a transfer of `username` in `direction` obeys; 0 means no limit. */
export function ratesFor(direction: Direction, server: number, username: string, user: number): Rate[] {
  const rates: Rate[] = [];
  if (server > 0) rates.push({ key: `server:${direction}`, bytesPerSecond: server });
  // JSON-quoted so that no user name can spell another key.
  if (user > 0) rates.push({ key: `user:${JSON.stringify(username)}:${direction}`, bytesPerSecond: user });
  return rates;
}

/** This process's pools, one per rate key in use. */
export class LocalRates {
  readonly #pools = new Map<string, Pool>();

  /** `ownerId`: this process's owner id, so the authority can forget a dead worker's waiting leases. */
  constructor(
    readonly authority: Pick<RateAuthority, 'lease'>,
    readonly ownerId: string,
  ) {}

  /** A throttle for one transfer, or null when no rate applies; release it when the transfer ends. */
  throttle(rates: readonly Rate[]): Throttle | null {
    if (rates.length === 0) return null;
    return new Throttle(rates.map(({ key, bytesPerSecond }) => this.#pool(key, bytesPerSecond)));
  }

  /** Pools alive in this process (tests). */
  get size(): number {
    return this.#pools.size;
  }

  drop(pool: Pool): void {
    if (this.#pools.get(pool.key) === pool) this.#pools.delete(pool.key);
  }

  #pool(key: string, bytesPerSecond: number): Pool {
    let pool = this.#pools.get(key);
    if (!pool) this.#pools.set(key, (pool = new Pool(key, bytesPerSecond, this)));
    return pool.acquire(bytesPerSecond);
  }
}

/** What one transfer spends from: take what is there, or wait for more. */
export class Throttle {
  readonly #pools: Pool[];
  #released = false;

  constructor(pools: Pool[]) {
    this.#pools = pools;
  }

  /** Take up to `max` bytes now, from every pool at once: 0 when one of them is empty (then `wait`). */
  take(max: number): number {
    let n = max;
    for (const pool of this.#pools) n = Math.min(n, pool.tokens);
    if (n > 0) {
      for (const pool of this.#pools) {
        pool.tokens -= n;
        pool.spent();
      }
    }
    return n;
  }

  /** Resolves once every empty pool got its next lease; rejects with the signal's reason on abort. */
  wait(signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    const leases = this.#pools.filter((pool) => pool.tokens < 1).map((pool) => pool.refill());
    if (leases.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => reject(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      Promise.all(leases).then(
        () => (signal.removeEventListener('abort', onAbort), resolve()),
        (err: unknown) => (signal.removeEventListener('abort', onAbort), reject(err)),
      );
    });
  }

  /** The transfer ended: its pools may go once no other transfer uses them. Idempotent. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    for (const pool of this.#pools) pool.release();
  }
}
