/**
 * The quota side of a server process: turns a logged-in user's effective
 * limits into the StoragePolicy the session wraps its storage with, and
 * makes sure the user's home is counted once after a start.
 *
 * Counting. The ledger (this process's, or the cluster primary's) knows a
 * user once some process has walked the home and reported it. The first
 * session of a user in this process that needs the count (an upload, a
 * delete, a rename) starts the walk; every change of that user's files in
 * this process waits for it, so the count and the changes never overlap.
 * Reads, listings and logins do not wait. Two workers may count the same
 * home at the same time; the ledger keeps the first report. A failed walk
 * is forgotten (the next change tries again) and that change gets 451.
 */
import type { Shared } from '../server/shared.js';
import type { Storage } from '../storage/types.js';
import type { QuotaLedger, Usage } from './quota-ledger.js';
import { limitStorage } from './limited-storage.js';
import { storageUsage } from './usage.js';

/** What one user may store; 0 = no limit. */
export interface StorageLimits {
  maxFileSizeBytes: number;
  quotaBytes: number;
  quotaFiles: number;
}

export class Quotas {
  readonly #ledger: Shared<QuotaLedger>;
  readonly #owner: string;
  readonly #onError: (err: unknown) => void;
  readonly #counting = new Map<string, Promise<void>>();

  constructor(ledger: Shared<QuotaLedger>, owner: string, onError: (err: unknown) => void) {
    this.#ledger = ledger;
    this.#owner = owner;
    this.#onError = onError;
  }

  /**
   * The storage a session of `user` works with: `storage` itself when no
   * limit applies, else wrapped by the policy layer. `serverMaxFileSizeBytes`
   * (all users) and the user's own cap both apply: the smaller one wins.
   */
  wrap(storage: Storage, user: string, limits: StorageLimits, serverMaxFileSizeBytes: number): Storage {
    const maxFileSizeBytes = smallestLimit(serverMaxFileSizeBytes, limits.maxFileSizeBytes);
    const quotaLimits = { quotaBytes: limits.quotaBytes, quotaFiles: limits.quotaFiles };
    const hasQuota = quotaLimits.quotaBytes > 0 || quotaLimits.quotaFiles > 0;
    return limitStorage(storage, {
      maxFileSizeBytes,
      quota: hasQuota
        ? {
            user,
            limits: quotaLimits,
            book: this.#ledger,
            owner: this.#owner,
            counted: () => this.counted(user, storage),
            onError: this.#onError,
          }
        : undefined,
    });
  }

  /** Resolves once `user`'s home is counted in the ledger (walking `storage` if nobody has). */
  counted(user: string, storage: Storage): Promise<void> {
    let counting = this.#counting.get(user);
    if (!counting) {
      counting = this.#count(user, storage);
      this.#counting.set(user, counting);
      counting.catch(() => this.#counting.delete(user));
    }
    return counting;
  }

  async #count(user: string, storage: Storage): Promise<void> {
    if (await this.#ledger.usage(user)) return;
    const counted: Usage = await storageUsage(storage);
    await this.#ledger.report(user, counted);
  }
}

/** The stricter of two limits where 0 means none. */
export function smallestLimit(a: number, b: number): number {
  if (a <= 0) return Math.max(0, b);
  if (b <= 0) return a;
  return Math.min(a, b);
}
