/**
 * Sessions logged in per user, for `maxSessions`. One instance counts for
 * the whole server (in cluster mode it lives in the primary: see
 * server/shared.ts), and `acquire` checks and counts in one step, so a
 * burst of simultaneous logins across workers never lets one more in.
 */
export class UserSessions {
  /** user -> owner (process) -> sessions */
  readonly #held = new Map<string, Map<string, number>>();

  /** Count a session of `username` if it has fewer than `max` (0: no limit); false when it is at the limit. */
  acquire(username: string, max: number, owner: string): boolean {
    const byOwner = this.#held.get(username) ?? new Map<string, number>();
    if (max > 0 && total(byOwner) >= max) return false;
    byOwner.set(owner, (byOwner.get(owner) ?? 0) + 1);
    this.#held.set(username, byOwner);
    return true;
  }

  release(username: string, owner: string): void {
    const byOwner = this.#held.get(username);
    const count = byOwner?.get(owner);
    if (!byOwner || count === undefined) return;
    if (count > 1) byOwner.set(owner, count - 1);
    else byOwner.delete(owner);
    if (byOwner.size === 0) this.#held.delete(username);
  }

  /** Sessions `username` has now, in every process. */
  count(username: string): number {
    const byOwner = this.#held.get(username);
    return byOwner ? total(byOwner) : 0;
  }

  /** A worker died: its sessions are gone with it. */
  forgetOwner(owner: string): void {
    for (const [username, byOwner] of this.#held) {
      byOwner.delete(owner);
      if (byOwner.size === 0) this.#held.delete(username);
    }
  }
}

function total(byOwner: Map<string, number>): number {
  let sum = 0;
  for (const count of byOwner.values()) sum += count;
  return sum;
}
