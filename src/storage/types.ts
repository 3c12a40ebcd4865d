/**
 * The Storage contract: what a backend (local disk, memory, S3, your own)
 * implements. One Storage instance serves one logged-in session and is bound
 * to that account's root.
 *
 * Paths: every path a method receives is already normalised by the session:
 * absolute inside the virtual root, '/'-separated, no '.', '..', empty or
 * trailing segments, no NUL. '/' is the root. Backends must still refuse to
 * leave their root through anything they resolve themselves (symlinks).
 *
 * Errors: throw `FerryError` (see errors.ts) or a Node system error with an
 * errno code (ENOENT, EEXIST, ...); both become precise FTP replies. Anything
 * else becomes a generic 451 and is logged.
 */
import type { Readable, Writable } from 'node:stream';
import type { HashAlgorithm } from '../protocol/hash.js';

export type FileType = 'file' | 'dir' | 'symlink';

export interface FileInfo {
  /** Base name (no '/'); for stat() of '/', the name is '/'. */
  name: string;
  type: FileType;
  /** Bytes; 0 for directories where the backend has no size. */
  size: number;
  /** Last modification time. */
  mtime: Date;
  /** Unix permission bits (e.g. 0o644) if the backend has them. */
  mode?: number;
  /** A stable identifier for the MLSx `unique` fact (e.g. dev+inode, ETag). */
  id?: string;
}

/** What a backend can do; the session consults these before acting. */
export interface StorageCapabilities {
  /** write({start > 0}) overwrites from an offset: REST + STOR. */
  randomWrite: boolean;
  /** write({append: true}): APPE. */
  append: boolean;
  /** rename() is atomic and works for directories too. */
  atomicRename: boolean;
  /** Directories are real objects (false: implied by key prefixes, like S3). */
  directories: boolean;
}

/**
 * A read stream that can also fill buffers its caller owns, in order (a
 * local file read by position). The transfer pipeline uses `readInto` with
 * two buffers it recycles, so a 1 GiB download allocates two buffers instead
 * of thousands; generic consumers use the stream interface. A source is read
 * one way or the other, never both, and is destroyed when done.
 */
export interface ChunkSource extends Readable {
  /** Fills `buffer` from the current position; resolves with the bytes read, 0 at the end. */
  readInto(buffer: Buffer): Promise<number>;
  /** Bytes left to read (the file's size at open, minus what was read). */
  readonly remaining: number;
}

/** A ChunkSource nobody has started reading as a stream (a wrapper tapping 'data' makes it a plain Readable again). */
export function isChunkSource(source: Readable): source is ChunkSource {
  const candidate = source as Partial<ChunkSource>;
  return (
    typeof candidate.readInto === 'function' &&
    typeof candidate.remaining === 'number' &&
    source.readableFlowing === null &&
    !source.readableDidRead
  );
}

export interface ReadOptions {
  /** Byte offset to start from (REST). 0 by default. */
  start?: number;
}

export interface WriteOptions {
  /**
   * Byte offset to write from (REST + STOR). Absent or 0 replaces the file.
   * A start beyond the current size is an INVALID_OFFSET error.
   */
  start?: number;
  /** Append to the end of the file (APPE), creating it if absent. */
  append?: boolean;
  /** Fail with EXISTS if the file already exists (STOU). */
  exclusive?: boolean;
}

/**
 * A write in progress. Ending it (`end()`, as `stream.pipeline` does) commits:
 * its 'finish' event means the data is durable and visible under its name.
 * Destroying it with an error aborts: a new file does not appear, an existing
 * file replaced by a full upload keeps its old content. Backends that cannot
 * keep the old content say so in their documentation.
 *
 * A destroy that races a commit already under way (ABOR or a disconnect
 * just after the last byte) may find a commit that cannot be taken back
 * (S3's CompleteMultipartUpload, once sent). Such a backend lets the commit
 * decide, and says so through `committed`: true once the data is visible
 * under its name, readable after 'close'. The session then replies 226 and
 * emits file-received, not 426 and upload-aborted. Backends without
 * `committed` are judged by `writableFinished` ('finish' was emitted).
 */
export type StorageWritable = Writable & {
  /** True once the write committed, even if destroy() was called while it did. */
  readonly committed?: boolean;
  /**
   * Optional: the SHA-256 (hex) of the whole new content, given just before
   * the commit (the stream's end) to an upload that replaces the file (not
   * APPE, not REST+STOR), when the server hashes uploads (`uploadSha256`).
   * A backend may store it with the file, as part of the commit (S3Storage:
   * the object's metadata or tag `ferry-sha256`, docs/s3.md); the commit
   * may still fail after this call, and then nothing of it remains.
   */
  setSha256?(sha256: string): void;
};

export interface Storage {
  readonly capabilities: StorageCapabilities;
  /** Optional: what kind of backend this is ('local', 's3', 'memory'), for metrics and logs; absent: 'custom'. */
  readonly kind?: string;

  /** Metadata of one path; NOT_FOUND if absent. Symlinks are followed. */
  stat(path: string): Promise<FileInfo>;

  /**
   * Entries of a directory, streamed as pages (arrays of entries, of sizes
   * the backend chooses: a page of readdir results, a ListObjectsV2
   * response). A directory of a million entries must never be loaded whole.
   * Pages rather than single entries because a listing of 10,000 entries
   * would otherwise pay 10,000 promise round trips. Order is
   * backend-defined. NOT_A_DIRECTORY if the path is a file.
   */
  list(path: string): AsyncIterable<readonly FileInfo[]>;

  /** Open a file for reading from `start`; errors surface before any byte flows. */
  read(path: string, options?: ReadOptions): Promise<Readable>;

  /** Open a file for writing; errors (is a directory, no parent) surface here. */
  write(path: string, options?: WriteOptions): Promise<StorageWritable>;

  mkdir(path: string): Promise<void>;
  /** Remove an empty directory; NOT_EMPTY otherwise. */
  rmdir(path: string): Promise<void>;
  /** Remove a file; IS_A_DIRECTORY for a directory. */
  delete(path: string): Promise<void>;
  /** Rename a file or directory; the target's parent must exist. */
  rename(from: string, to: string): Promise<void>;

  /** Optional: MFMT. Absent → the command answers 502 and FEAT omits it. */
  setModifiedTime?(path: string, mtime: Date): Promise<void>;
  /** Optional: SITE CHMOD. Absent → 502. */
  chmod?(path: string, mode: number): Promise<void>;
  /**
   * Optional: the digest of bytes [start, end) of the file at `path` (of
   * `size` bytes, from stat), as hex, from something the backend already
   * knows (S3: the object's stored checksum), without reading the file.
   * Resolve null when it does not know it: HASH and the X* commands then
   * read the file with read() and hash its bytes, so a backend without
   * this method, or one that answers null, gives the same result, only
   * slower. Called after the path was checked to be a readable file; an
   * error it throws is the command's reply (like read()'s). `signal` fires
   * on ABOR or when the client leaves. See docs/configuration.md,
   * "Integrity commands".
   */
  hash?(path: string, algorithm: HashAlgorithm, options: { start: number; end: number; size: number; signal: AbortSignal }): Promise<string | null>;
  /** Optional: called once when the session ends. */
  close?(): Promise<void>;
  /**
   * Optional: bytes and regular files under the root, counted faster than a
   * walk of list() (S3: one flat listing). Used to count a home for quotas
   * after a start; absent → the tree is walked with list().
   */
  usage?(): Promise<{ bytes: number; files: number }>;
}
