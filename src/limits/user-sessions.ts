/**
 * Sessions logged in per user, for `maxSessions`. One instance counts for
 * the whole server (in cluster mode it lives in the primary: see
 * server/shared.ts), and `acquire` checks and counts in one step, so a
 * burst of simultaneous logins across workers never lets one more in.
 *
 * Each slot has a lease id chosen by the caller. A caller that gave up
 * waiting (an IPC timeout) releases its lease: the primary hears calls in
 * the order they were sent, so the release finds the slot if the acquire
 * took one, and is a no-op if it did not, and nothing leaks either way.
 */
interface Lease {
  username: string;
  owner: string;
}

export class UserSessions {
  readonly #leases = new Map<string, Lease>();
  readonly #counts = new Map<string, number>();

  /** Count a session of `username` under `lease` if it has fewer than `max` (0: no limit); false at the limit. */
  acquire(username: string, max: number, owner: string, lease: string): boolean {
    const count = this.#counts.get(username) ?? 0;
    if ((max > 0 && count >= max) || this.#leases.has(lease)) return false;
    this.#leases.set(lease, { username, owner });
    this.#counts.set(username, count + 1);
    return true;
  }

  /** Give a slot back; an unknown lease (never granted, or released already) is ignored. */
  release(lease: string): void {
    const held = this.#leases.get(lease);
    if (!held) return;
    this.#leases.delete(lease);
    const count = this.#counts.get(held.username)! - 1;
    if (count > 0) this.#counts.set(held.username, count);
    else this.#counts.delete(held.username);
  }

  /** Sessions `username` has now, in every process. */
  count(username: string): number {
    return this.#counts.get(username) ?? 0;
  }

  /** A worker died: its sessions are gone with it. */
  forgetOwner(owner: string): void {
    for (const [lease, held] of this.#leases) if (held.owner === owner) this.release(lease);
  }
}
