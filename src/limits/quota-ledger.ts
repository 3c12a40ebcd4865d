/**
 * QuotaLedger: how much each user stores (bytes and files), and what the
 * uploads in flight have reserved on top. Pure bookkeeping, no I/O: one per
 * server, in the cluster primary when there are workers (shared.quotas), so
 * every session of a user, in any worker, checks against the same numbers.
 *
 * Counts are recomputed, not persisted: a user is unknown until the first
 * process that needs the count has walked the home and reported it
 * (`report`); until then nothing is charged (the policy layer makes writes
 * wait for the count). A recount cannot drift, a persisted counter can.
 *
 * An upload reserves its growth as its bytes arrive (`reserve`, refused
 * when committed + reserved + asked would pass the limit) and settles once,
 * when its storage stream has committed or aborted (`settle`: the
 * reservation goes, the real change is applied). Deletes and renames that
 * replace a file apply their change directly (`adjust`). Every method takes
 * and returns plain JSON values: a worker calls them over cluster IPC.
 */

export interface Usage {
  bytes: number;
  files: number;
}

/** A user's counted usage and the part of it uploads in flight hold. */
export interface UserUsage extends Usage {
  /** Bytes reserved by uploads in flight (not yet in `bytes`). */
  reservedBytes: number;
  /** New files reserved by uploads in flight (not yet in `files`). */
  reservedFiles: number;
}

/** The limits a reservation is checked against; 0 = no limit. */
export interface QuotaLimits {
  quotaBytes: number;
  quotaFiles: number;
}

interface Reservation {
  user: string;
  owner: string;
  bytes: number;
  files: number;
}

export class QuotaLedger {
  readonly #users = new Map<string, UserUsage>();
  readonly #reservations = new Map<string, Reservation>();

  /** The user's usage, or null while nobody has counted the home since the start. */
  usage(user: string): UserUsage | null {
    const entry = this.#users.get(user);
    return entry ? { ...entry } : null;
  }

  /**
   * The home's count, made by the caller. The first report wins: a later
   * one (another worker counted at the same time) is ignored, since changes
   * may already have been applied on top of the first.
   */
  report(user: string, counted: Usage): UserUsage {
    let entry = this.#users.get(user);
    if (!entry) {
      entry = { bytes: counted.bytes, files: counted.files, reservedBytes: 0, reservedFiles: 0 };
      this.#users.set(user, entry);
    }
    return { ...entry };
  }

  /**
   * Reserve `bytes` and `files` more for the upload `id` (created on first
   * use, held by `owner`: a process id, so a dead worker's reservations can
   * be dropped). False, and nothing reserved, when the user would pass a
   * limit; an unknown user (not counted) is refused too.
   */
  reserve(id: string, owner: string, user: string, bytes: number, files: number, limits: QuotaLimits): boolean {
    const entry = this.#users.get(user);
    if (!entry) return false;
    if (bytes > 0 && limits.quotaBytes > 0 && entry.bytes + entry.reservedBytes + bytes > limits.quotaBytes) return false;
    if (files > 0 && limits.quotaFiles > 0 && entry.files + entry.reservedFiles + files > limits.quotaFiles) return false;
    let reservation = this.#reservations.get(id);
    if (!reservation) {
      reservation = { user, owner, bytes: 0, files: 0 };
      this.#reservations.set(id, reservation);
    }
    reservation.bytes += bytes;
    reservation.files += files;
    entry.reservedBytes += bytes;
    entry.reservedFiles += files;
    return true;
  }

  /** The upload `id` ended: its reservation goes and `change` (what it really changed, maybe negative) is applied. */
  settle(id: string, user: string, change: Usage): void {
    this.#release(id);
    this.adjust(user, change);
  }

  /** Apply a change made outside an upload (a delete, a rename over a file). Unknown users are ignored: their count comes later. */
  adjust(user: string, change: Usage): void {
    const entry = this.#users.get(user);
    if (!entry) return;
    entry.bytes = Math.max(0, entry.bytes + change.bytes);
    entry.files = Math.max(0, entry.files + change.files);
  }

  /** A worker died: the uploads it held ended with it (their storage streams were never committed by it). */
  forgetOwner(owner: string): void {
    for (const [id, reservation] of this.#reservations) {
      if (reservation.owner === owner) this.#release(id);
    }
  }

  #release(id: string): void {
    const reservation = this.#reservations.get(id);
    if (!reservation) return;
    this.#reservations.delete(id);
    const entry = this.#users.get(reservation.user);
    if (!entry) return;
    entry.reservedBytes -= reservation.bytes;
    entry.reservedFiles -= reservation.files;
  }
}
