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
 *
 * Claims. An upload's settle is computed against the file as it was when
 * the upload opened, so anything else changing that path meanwhile (a
 * second upload, a delete, a rename from or to it) would make the count
 * drift. The ledger therefore keeps one claim per (user, path) while an
 * upload, delete or rename of it runs (`claim`, dropped by `settle` of the
 * same id or `forgetOwner`); a second claimant is refused (450 file busy).
 * Being in the ledger, claims hold across sessions and workers.
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
  /** An APPE or REST+STOR: its granted bytes are written in place and stay on disk even if its process dies. */
  inPlace: boolean;
}

interface Claim {
  id: string;
  owner: string;
}

export class QuotaLedger {
  readonly #users = new Map<string, UserUsage>();
  readonly #reservations = new Map<string, Reservation>();
  /** Per user, the claimed paths and who holds them. */
  readonly #claims = new Map<string, Map<string, Claim>>();

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
   * limit; an unknown user (not counted) is refused too. `inPlace`: the
   * upload writes into the file itself (APPE, REST+STOR), see forgetOwner.
   */
  reserve(id: string, owner: string, user: string, bytes: number, files: number, limits: QuotaLimits, inPlace = false): boolean {
    const entry = this.#users.get(user);
    if (!entry) return false;
    if (bytes > 0 && limits.quotaBytes > 0 && entry.bytes + entry.reservedBytes + bytes > limits.quotaBytes) return false;
    if (files > 0 && limits.quotaFiles > 0 && entry.files + entry.reservedFiles + files > limits.quotaFiles) return false;
    let reservation = this.#reservations.get(id);
    if (!reservation) {
      reservation = { user, owner, bytes: 0, files: 0, inPlace };
      this.#reservations.set(id, reservation);
    }
    reservation.bytes += bytes;
    reservation.files += files;
    entry.reservedBytes += bytes;
    entry.reservedFiles += files;
    return true;
  }

  /**
   * Claim `paths` of `user` for the operation `id` (held by `owner`): all
   * of them, or none and false when another operation holds one of them.
   * With `trees`, a claim anywhere under a path counts too (renaming a
   * directory that holds a file being uploaded). Claiming again what `id`
   * holds is allowed. Dropped by `settle(id)` or `forgetOwner`.
   */
  claim(id: string, owner: string, user: string, paths: string[], trees = false): boolean {
    const held = this.#claims.get(user);
    if (held) {
      for (const path of paths) {
        const other = held.get(path);
        if (other && other.id !== id) return false;
        if (trees) {
          const prefix = path.endsWith('/') ? path : `${path}/`;
          for (const [claimed, claim] of held) if (claim.id !== id && claimed.startsWith(prefix)) return false;
        }
      }
    }
    let mine = held;
    if (!mine) {
      mine = new Map();
      this.#claims.set(user, mine);
    }
    for (const path of paths) mine.set(path, { id, owner });
    return true;
  }

  /** The operation `id` ended: its reservation and claims go and `change` (what it really changed, maybe negative) is applied. */
  settle(id: string, user: string, change: Usage): void {
    this.#release(id);
    this.#unclaim(user, (claim) => claim.id === id);
    this.adjust(user, change);
  }

  /** Apply a change made outside an upload (a delete, a rename over a file). Unknown users are ignored: their count comes later. */
  adjust(user: string, change: Usage): void {
    const entry = this.#users.get(user);
    if (!entry) return;
    entry.bytes = Math.max(0, entry.bytes + change.bytes);
    entry.files = Math.max(0, entry.files + change.files);
  }

  /**
   * A worker died: the uploads it held ended with it (their storage streams
   * were never committed by it) and their claims go. A full upload's bytes
   * go with its temporary file, but an in-place one (APPE, REST+STOR) wrote
   * each chunk only after its reservation was granted, and those bytes stay
   * on disk: its reservation (bytes, and a reserved new file) is moved into
   * the usage instead of dropped. That may overcount by at most the chunk
   * granted but not yet written (until the next start recounts), never
   * undercount.
   */
  forgetOwner(owner: string): void {
    for (const [id, reservation] of this.#reservations) {
      if (reservation.owner !== owner) continue;
      this.#release(id);
      if (reservation.inPlace) this.adjust(reservation.user, { bytes: reservation.bytes, files: reservation.files });
    }
    for (const user of [...this.#claims.keys()]) this.#unclaim(user, (claim) => claim.owner === owner);
  }

  #unclaim(user: string, drop: (claim: Claim) => boolean): void {
    const held = this.#claims.get(user);
    if (!held) return;
    for (const [path, claim] of held) if (drop(claim)) held.delete(path);
    if (held.size === 0) this.#claims.delete(user);
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
