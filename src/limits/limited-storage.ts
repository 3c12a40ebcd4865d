/**
 * The storage policy layer: maximum file size and quotas, as a decorator
 * around an account's Storage, applied once at login (Session.login). No
 * backend knows about either; every backend gets both.
 *
 * Maximum file size counts the file's final size: a REST+STOR from offset
 * N counts from N, an APPE from the existing file's size. The chunk that
 * would pass it fails the upload with FILE_TOO_LARGE (552).
 *
 * Quotas (bytes and files per user) are kept by the QuotaLedger (one per
 * server, in the cluster primary with workers). An upload reserves its
 * growth as its bytes arrive: for a full replace, what exceeds the old
 * file's size (the old content is charged until the new replaces it); from
 * a REST offset or by APPE, what extends the file. A new file reserves one
 * file when the upload opens (552 before the 150 when there is none left).
 * When the storage stream has closed, the upload settles: committed, it
 * charges the real change (new minus old size); aborted, nothing, except
 * what a REST+STOR or APPE already wrote in place (backends keep that for
 * resuming), found by a stat of the file. Deletes credit the file; a rename
 * over an existing file credits the file it replaced; other renames, MKD
 * and RMD (empty directories only) change nothing. Directories are free.
 *
 * Every upload, delete and rename of a user with a quota first claims its
 * path(s) in the ledger (a rename: both, and what lies under the source),
 * until it settles: a second one on a claimed path gets FILE_BUSY (450), so
 * each change is computed against a file nobody else changes meanwhile.
 */
import type { Readable } from 'node:stream';
import { ErrorCodes, FerryError, fromSystemError } from '../errors.js';
import type { FileInfo, ReadOptions, Storage, StorageCapabilities, StorageWritable, WriteOptions } from '../storage/types.js';
import type { QuotaLimits, Usage } from './quota-ledger.js';
import { meterUpload } from './upload-meter.js';

/** The ledger as this layer calls it: every method asynchronous (it may live in the cluster primary). */
export interface QuotaBook {
  reserve(id: string, owner: string, user: string, bytes: number, files: number, limits: QuotaLimits, inPlace?: boolean): Promise<boolean>;
  claim(id: string, owner: string, user: string, paths: string[], trees?: boolean): Promise<boolean>;
  settle(id: string, user: string, change: Usage): Promise<void>;
  adjust(user: string, change: Usage): Promise<void>;
}

export interface QuotaPolicy {
  user: string;
  limits: QuotaLimits;
  book: QuotaBook;
  /** This process's owner id (shared.ts ownerId()): a dead worker's reservations are dropped by it. */
  owner: string;
  /** Resolves once the user's home has been counted (by this process or another); changes wait for it. */
  counted(): Promise<void>;
  /** A ledger call failed after the fact (primary gone): the count drifts until the next start. */
  onError(err: unknown): void;
}

export interface StoragePolicy {
  /** The largest final size of a file; 0 = no limit. */
  maxFileSizeBytes: number;
  /** Absent: no quota. */
  quota?: QuotaPolicy;
}

/** `storage` itself when the policy limits nothing (no cost then), else the decorated storage. */
export function limitStorage(storage: Storage, policy: StoragePolicy): Storage {
  if (policy.maxFileSizeBytes <= 0 && !policy.quota) return storage;
  return new LimitedStorage(storage, policy);
}

let nextUpload = 0;

/** An id for one upload, delete or rename, unique across the processes of a server. */
function operationId(quota: QuotaPolicy | undefined): string {
  return `${quota?.owner ?? ''}:${(nextUpload += 1)}`;
}

/**
 * Per user, the settles of this process's uploads still on their way to the
 * ledger. The 226 goes out before an upload settles (settling waits for the
 * stream's close and a stat): a client's next command on the same file
 * (STOR then RNFR/RNTO, the usual upload-under-a-temporary-name) would
 * otherwise find the path still claimed.
 */
const settling = new Map<string, Set<Promise<void>>>();

function trackSettle(user: string, done: Promise<void>): void {
  let pending = settling.get(user);
  if (!pending) {
    pending = new Set();
    settling.set(user, pending);
  }
  pending.add(done);
  void done.finally(() => {
    pending.delete(done);
    if (pending.size === 0 && settling.get(user) === pending) settling.delete(user);
  });
}

/** Claim `paths` for `id`, or FILE_BUSY (after waiting for this process's pending settles of the user once). */
async function claim(quota: QuotaPolicy, id: string, paths: string[], trees = false): Promise<void> {
  if (await quota.book.claim(id, quota.owner, quota.user, paths, trees)) return;
  const pending = settling.get(quota.user);
  if (pending && pending.size > 0) {
    await Promise.allSettled([...pending]);
    if (await quota.book.claim(id, quota.owner, quota.user, paths, trees)) return;
  }
  throw new FerryError(ErrorCodes.FILE_BUSY, `${paths.join(' or ')} is in use by another transfer of ${quota.user}`);
}

async function statOrNull(storage: Storage, path: string): Promise<FileInfo | null> {
  try {
    return await storage.stat(path);
  } catch (err) {
    const known = fromSystemError(err);
    if (known instanceof FerryError && known.code === ErrorCodes.NOT_FOUND) return null;
    throw err;
  }
}

const NO_CHANGE: Usage = { bytes: 0, files: 0 };

class LimitedStorage implements Storage {
  readonly capabilities: StorageCapabilities;
  readonly kind?: string;
  readonly setModifiedTime?: Storage['setModifiedTime'];
  readonly chmod?: Storage['chmod'];
  readonly hash?: Storage['hash'];
  readonly close?: Storage['close'];
  readonly usage?: Storage['usage'];
  readonly #inner: Storage;
  readonly #maxFileSize: number;
  readonly #quota: QuotaPolicy | undefined;

  constructor(inner: Storage, policy: StoragePolicy) {
    this.#inner = inner;
    this.#maxFileSize = policy.maxFileSizeBytes;
    this.#quota = policy.quota;
    this.capabilities = inner.capabilities;
    this.kind = inner.kind;
    // Optional methods stay optional: FEAT and 502 replies depend on their presence.
    if (inner.setModifiedTime) this.setModifiedTime = inner.setModifiedTime.bind(inner);
    if (inner.chmod) this.chmod = inner.chmod.bind(inner);
    if (inner.hash) this.hash = inner.hash.bind(inner);
    if (inner.close) this.close = inner.close.bind(inner);
    if (inner.usage) this.usage = inner.usage.bind(inner);
  }

  stat(path: string): Promise<FileInfo> {
    return this.#inner.stat(path);
  }

  list(path: string): AsyncIterable<readonly FileInfo[]> {
    return this.#inner.list(path);
  }

  read(path: string, options?: ReadOptions): Promise<Readable> {
    return this.#inner.read(path, options);
  }

  mkdir(path: string): Promise<void> {
    return this.#inner.mkdir(path);
  }

  rmdir(path: string): Promise<void> {
    return this.#inner.rmdir(path);
  }

  async delete(path: string): Promise<void> {
    const quota = this.#quota;
    if (!quota) return this.#inner.delete(path);
    await this.#counted(quota);
    const id = operationId(quota);
    await claim(quota, id, [path]);
    let change = NO_CHANGE;
    try {
      const old = await statOrNull(this.#inner, path);
      await this.#inner.delete(path);
      if (old?.type === 'file') change = { bytes: -old.size, files: -1 };
    } finally {
      await quota.book.settle(id, quota.user, change);
    }
  }

  async rename(from: string, to: string): Promise<void> {
    const quota = this.#quota;
    if (!quota) return this.#inner.rename(from, to);
    await this.#counted(quota);
    const id = operationId(quota);
    // The source with what lies under it (a directory may hold a file being uploaded), and the target.
    await claim(quota, id, [from, to], true);
    let change = NO_CHANGE;
    try {
      // Within the home a move changes nothing, unless it replaces a file.
      const replaced = await statOrNull(this.#inner, to);
      const source = replaced?.type === 'file' ? await statOrNull(this.#inner, from) : null;
      await this.#inner.rename(from, to);
      // The same file under two names (a hard link, or from === to): rename(2) leaves both.
      if (replaced?.type === 'file' && source && (source.id === undefined || source.id !== replaced.id)) {
        change = { bytes: -replaced.size, files: -1 };
      }
    } finally {
      await quota.book.settle(id, quota.user, change);
    }
  }

  async write(path: string, options: WriteOptions = {}): Promise<StorageWritable> {
    const quota = this.#quota;
    if (quota) await this.#counted(quota);
    const start = options.start ?? 0;
    const inPlace = start > 0 || options.append === true;
    const id = operationId(quota);
    // Until it settles, nobody else changes this path: the old file stays the one this upload settles against.
    if (quota) await claim(quota, id, [path]);
    let old: FileInfo | null;
    let sink: StorageWritable;
    try {
      // The old file: the base an APPE counts from, and what a quota credits or charges.
      old = quota || options.append ? await statOrNull(this.#inner, path) : null;
      const newFile = old === null;
      if (quota && newFile && !(await quota.book.reserve(id, quota.owner, quota.user, 0, 1, quota.limits, inPlace))) {
        throw new FerryError(ErrorCodes.QUOTA_EXCEEDED, `${quota.user} has no file left in the quota (${quota.limits.quotaFiles})`);
      }
      sink = await this.#inner.write(path, options);
    } catch (err) {
      if (quota) trackSettle(quota.user, this.#settle(quota, id, NO_CHANGE));
      throw err;
    }
    const oldSize = old?.type === 'file' ? old.size : 0;
    const base = options.append ? oldSize : start;
    const max = this.#maxFileSize;
    let written = 0;
    let reserved = 0;
    let asking: Promise<void> | null = null;
    let refusal: Error | null = null;
    // Bytes this upload adds to the user's usage if it commits now (the old content is charged already).
    const growth = (): number => Math.max(0, base + written - oldSize);
    const ask = (): Promise<void> => {
      if (!quota || refusal || asking || growth() <= reserved) return asking ?? Promise.resolve();
      // One request in flight per upload; bytes arriving meanwhile go into the next: few calls, and a full
      // upload's chunks go on to the backend meanwhile (a refusal destroys the stream, which discards them).
      const amount = growth() - reserved;
      asking = quota.book.reserve(id, quota.owner, quota.user, amount, 0, quota.limits, inPlace).then(
        (granted) => {
          asking = null;
          if (granted) {
            reserved += amount;
            return ask();
          }
          refusal = new FerryError(ErrorCodes.QUOTA_EXCEEDED, `upload to ${path} crossed ${quota.user}'s quota of ${quota.limits.quotaBytes} bytes`);
          if (!inPlace) sink.destroy(refusal);
          return undefined;
        },
        (err: unknown) => {
          asking = null;
          refusal = new FerryError(ErrorCodes.UNAVAILABLE, 'quota ledger unreachable', { cause: err });
          if (!inPlace) sink.destroy(refusal);
        },
      );
      return asking;
    };
    meterUpload(sink, {
      take: (bytes) => {
        if (refusal) return refusal;
        if (max > 0 && base + written + bytes > max) {
          refusal = new FerryError(ErrorCodes.FILE_TOO_LARGE, `upload to ${path} crossed the maximum file size of ${max} bytes`);
          return refusal;
        }
        written += bytes;
        // Written in place, refused bytes would stay (an abort keeps them for resuming): they wait for the answer.
        if (inPlace && quota && growth() > reserved) return ask().then(() => refusal);
        void ask();
        return null;
      },
      beforeCommit: async () => {
        await ask();
        if (refusal) throw refusal;
      },
    });
    if (quota) {
      sink.once('close', () => {
        const committed = sink.committed ?? sink.writableFinished;
        // Tracked from the close on only: a claim that meets an upload still running gets its 450 at once.
        trackSettle(
          quota.user,
          this.#change(path, inPlace, committed, old, base + written).then(
            (change) => this.#settle(quota, id, change),
            (err: unknown) => {
              quota.onError(err);
              return this.#settle(quota, id, NO_CHANGE);
            },
          ),
        );
      });
    }
    return sink;
  }

  /** What an ended upload changed in the user's usage. */
  async #change(path: string, inPlace: boolean, committed: boolean, old: FileInfo | null, size: number): Promise<Usage> {
    const oldSize = old?.type === 'file' ? old.size : 0;
    const oldFiles = old ? 1 : 0;
    if (!inPlace) return committed ? { bytes: size - oldSize, files: 1 - oldFiles } : NO_CHANGE;
    // In place, even an abort may have changed the file (kept for resuming): ask the storage.
    const now = await statOrNull(this.#inner, path);
    return { bytes: (now?.type === 'file' ? now.size : 0) - oldSize, files: (now ? 1 : 0) - oldFiles };
  }

  #settle(quota: QuotaPolicy, id: string, change: Usage): Promise<void> {
    return quota.book.settle(id, quota.user, change).catch((err: unknown) => quota.onError(err));
  }

  async #counted(quota: QuotaPolicy): Promise<void> {
    try {
      await quota.counted();
    } catch (err) {
      throw new FerryError(ErrorCodes.UNAVAILABLE, `counting ${quota.user}'s home for the quota failed`, { cause: err });
    }
  }
}
