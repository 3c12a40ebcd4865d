/**
 * Directories recently seen to exist, shared by every storage derived from
 * one S3Storage (all users, all sessions of this process).
 *
 * Why: every upload checks that its directory exists (a LIST), and a camera
 * that drops a file every second into the same folder would pay that LIST
 * every time: it is a quarter of a small upload's S3 requests.
 *
 * Bounds: an entry lives `ttlMs`; past `maxEntries` the whole cache is
 * dropped (no eviction bookkeeping on the hot path). This process forgets a
 * prefix, and everything under it, as soon as it removes or renames it.
 * Another node's RMD is seen here within `ttlMs`; an upload in that window
 * lands under the removed prefix and so recreates the directory, as any S3
 * writer would.
 */
export class DirCache {
  readonly #seen = new Map<string, number>();
  readonly #ttlMs: number;
  readonly #maxEntries: number;

  constructor(ttlMs = 2_000, maxEntries = 10_000) {
    this.#ttlMs = ttlMs;
    this.#maxEntries = maxEntries;
  }

  has(prefix: string): boolean {
    const until = this.#seen.get(prefix);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.#seen.delete(prefix);
    return false;
  }

  add(prefix: string): void {
    if (this.#seen.size >= this.#maxEntries) this.#seen.clear();
    this.#seen.set(prefix, Date.now() + this.#ttlMs);
  }

  /** Forget `prefix` and every directory under it. */
  forget(prefix: string): void {
    for (const known of this.#seen.keys()) if (known.startsWith(prefix)) this.#seen.delete(known);
  }
}
