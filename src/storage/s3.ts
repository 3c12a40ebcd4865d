/**
 * S3Storage: the Storage contract over an S3-compatible bucket (AWS S3,
 * MinIO, Cloudflare R2, Wasabi, Ceph RGW, ...).
 *
 * Layout: the virtual path `/a/b` is the key `PREFIX + "a/b"`. Directories
 * are key prefixes: a directory exists when a key lies under `PREFIX + "a/"`,
 * either a deeper object or the zero-byte marker `a/` that MKD writes (as the
 * S3 console does). Listings page through ListObjectsV2 with the delimiter
 * '/', one page per response, so a prefix of any size streams.
 *
 * What object storage cannot do is announced in `capabilities` and refused
 * with UNSUPPORTED (504) by the session: REST+STOR at an offset and APPE
 * (objects are written whole), SITE CHMOD and MFMT (no mode, and S3 sets
 * LastModified itself) are absent, so they answer 502.
 *
 * Not atomic, and documented as such (docs/s3.md):
 *   - a file rename is a server-side copy then a delete;
 *   - a directory rename copies every key under the prefix (at most
 *     `maxRenameKeys`, else TOO_MANY_ENTRIES before anything is copied);
 *     if a copy fails, the copies already made are deleted again (not the
 *     marker of a target directory that existed) and the source is
 *     untouched; copies that undo could not delete are logged and named in
 *     the error; if deleting the sources fails afterwards, the new tree is
 *     complete, the client gets RENAME_INCOMPLETE (550) and the log has the
 *     count and a sample of the old keys that remain;
 *   - checks (does the parent exist, is the name a directory) and the write
 *     that follows are separate requests: another node may act in between.
 *
 * One S3Storage holds no per-session state: the CLI shares one per user.
 * `forUser(name)` derives the per-user storage of a `{username}` prefix,
 * sharing the same S3 client (one connection pool for the process).
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { ListObjectsV2CommandOutput, S3Client, _Object } from '@aws-sdk/client-s3';
import { fillUsername, isPathSafeUsername } from '../auth/username.js';
import { ErrorCodes, FerryError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { HashAlgorithm } from '../protocol/hash.js';
import { checkOffset, checkWrite, parsePath } from './paths.js';
import { loadSdk, SharedClient, type S3ConnectionOptions, type S3Sdk } from './s3-client.js';
import { fromS3Error, isNotFound, s3Call } from './s3-errors.js';
import { copyObject, forEachLimited } from './s3-copy.js';
import { DirCache } from './s3-dir-cache.js';
import { storedDigest, taggedSha256 } from './s3-checksums.js';
import { PartBudget, S3Upload } from './s3-upload.js';
import type { FileInfo, ReadOptions, Storage, StorageCapabilities, StorageWritable, WriteOptions } from './types.js';

export interface S3StorageOptions extends S3ConnectionOptions {
  bucket: string;
  /**
   * Key prefix that is this storage's root, e.g. `incoming/` or
   * `users/{username}/` (then use `forUser(name)`). A missing trailing '/'
   * is added. Default: the whole bucket.
   */
  prefix?: string;
  /** Multipart part size: memory per upload is (queueSize + 1) × this. Default 8 MiB; from 5 MiB (S3's minimum) to 512 MiB. */
  partSizeBytes?: number;
  /** Parts of one upload sent in parallel. Default 4. */
  queueSize?: number;
  /**
   * Bytes of part buffers all uploads of this storage (and of every storage
   * forUser()/at() derives from it) may hold together; an upload that needs
   * more waits, with backpressure on its data connection. 0 (default): no
   * process-wide bound beyond the per-upload (queueSize + 1) × partSizeBytes.
   * At least partSizeBytes.
   */
  maxUploadBufferBytes?: number;
  /** A directory rename copies at most this many keys; larger ones are refused. Default 10,000. */
  maxRenameKeys?: number;
  /** An S3Client to use instead of creating one (its own settings then apply). */
  client?: S3Client;
  /** Where failures that no client sees are reported (a multipart upload that could not be aborted, a rename's leftovers). */
  logger?: Logger;
  /**
   * @internal Keys per ListObjectsV2 page for listings and directory
   * renames (default: the store's, 1,000 on S3). Tests page through a few
   * dozen keys with it instead of thousands.
   */
  listPageSize?: number;
}

const MIB = 1024 * 1024;
const DEFAULT_PART_SIZE = 8 * MIB;
const MIN_PART_SIZE = 5 * MIB;
/** Far below buffer.constants.MAX_LENGTH, and each upload holds (queueSize + 1) of these. */
const MAX_PART_SIZE = 512 * MIB;
const DEFAULT_QUEUE_SIZE = 4;
const DEFAULT_MAX_RENAME_KEYS = 10_000;
/** Top-level folders listed at once when counting a prefix's usage. */
const USAGE_CONCURRENCY = 8;
/** Directory renames copy this many keys at once. */
const RENAME_CONCURRENCY = 8;
/** S3's limit on a key's length in bytes. */
const MAX_KEY_BYTES = 1024;
/**
 * Directories have no time in S3 (a listing's CommonPrefixes carry none, and
 * most have no marker): stat and listings agree on the epoch.
 */
const UNKNOWN_TIME = 0;

type Settings = Required<Pick<S3StorageOptions, 'bucket' | 'partSizeBytes' | 'queueSize' | 'maxRenameKeys'>> & {
  logger?: Logger;
  budget?: PartBudget;
  listPageSize?: number;
  /** Shared by every storage derived from this one. */
  dirs: DirCache;
};

function wholeNumber(name: string, value: number | undefined, fallback: number, min: number, max: number): number {
  const chosen = value ?? fallback;
  if (!Number.isSafeInteger(chosen) || chosen < min || chosen > max) {
    throw new TypeError(`S3Storage: ${name} must be a whole number from ${min} to ${max}, got ${String(value)}`);
  }
  return chosen;
}

function normalisePrefix(prefix: string | undefined): string {
  const trimmed = (prefix ?? '').replace(/^\/+/, '');
  return trimmed === '' || trimmed.endsWith('/') ? trimmed : `${trimmed}/`;
}

/** A user name becomes one key segment: nothing that could reach another user's prefix (the users-file rule). */
function checkUsername(username: string): void {
  if (!isPathSafeUsername(username)) {
    throw new FerryError(ErrorCodes.INVALID_NAME, `user name cannot be used in an S3 prefix: ${JSON.stringify(username)}`);
  }
}

function isUsableName(name: string): boolean {
  return name !== '' && name !== '.' && name !== '..' && !name.includes('/');
}

function uniqueId(key: string): string {
  return createHash('sha1').update(key).digest('hex').slice(0, 16);
}

export class S3Storage implements Storage {
  readonly kind = 's3';
  readonly capabilities: StorageCapabilities = Object.freeze({
    randomWrite: false,
    append: false,
    atomicRename: false,
    directories: false,
  });

  readonly #settings: Settings;
  readonly #prefix: string;
  readonly #client: SharedClient;

  constructor(options: S3StorageOptions);
  /** @internal forUser(): same client and settings, another prefix. */
  constructor(options: S3StorageOptions, shared: { settings: Settings; client: SharedClient; prefix: string });
  constructor(options: S3StorageOptions, shared?: { settings: Settings; client: SharedClient; prefix: string }) {
    if (shared) {
      this.#settings = shared.settings;
      this.#client = shared.client;
      this.#prefix = shared.prefix;
      return;
    }
    if (typeof options.bucket !== 'string' || options.bucket === '') throw new TypeError('S3Storage: bucket is required');
    if ('maxFileSizeBytes' in options) {
      // Now a policy for every backend (src/limits/): refused here rather than ignored.
      throw new TypeError('S3Storage: maxFileSizeBytes is no longer an S3 option; set the server option maxFileSizeBytes (config: limits.maxFileSizeBytes)');
    }
    wholeNumber('socketTimeoutMs', options.socketTimeoutMs, 30_000, 1, Number.MAX_SAFE_INTEGER);
    const partSizeBytes = wholeNumber('partSizeBytes', options.partSizeBytes, DEFAULT_PART_SIZE, MIN_PART_SIZE, MAX_PART_SIZE);
    const budget = options.maxUploadBufferBytes
      ? new PartBudget(wholeNumber('maxUploadBufferBytes', options.maxUploadBufferBytes, 0, partSizeBytes, Number.MAX_SAFE_INTEGER))
      : undefined;
    const settings = Object.freeze({
      bucket: options.bucket,
      partSizeBytes,
      budget,
      queueSize: wholeNumber('queueSize', options.queueSize, DEFAULT_QUEUE_SIZE, 1, 64),
      maxRenameKeys: wholeNumber('maxRenameKeys', options.maxRenameKeys, DEFAULT_MAX_RENAME_KEYS, 1, 1_000_000),
      logger: options.logger,
      listPageSize: options.listPageSize === undefined ? undefined : wholeNumber('listPageSize', options.listPageSize, 1000, 1, 1000),
      dirs: new DirCache(),
    });
    this.#settings = settings;
    this.#prefix = normalisePrefix(options.prefix);
    this.#client = new SharedClient(options, options.client);
  }

  /** The bucket and prefix this storage is rooted at, as `s3://bucket/prefix`. */
  get location(): string {
    return `s3://${this.#settings.bucket}/${this.#prefix}`;
  }

  /**
   * The storage of one user: `{username}` in the prefix replaced by `username`.
   * All storages derived from one S3Storage share its S3 client.
   */
  forUser(username: string): S3Storage {
    if (!this.#prefix.includes('{username}')) return this;
    checkUsername(username);
    return this.#derive(fillUsername(this.#prefix, username));
  }

  /**
   * The storage rooted at `home`, a directory of this one given as a virtual
   * path ('/' is this storage itself): a user's home under a shared prefix.
   */
  at(home: string): S3Storage {
    const segments = parsePath(home);
    return segments.length === 0 ? this : this.#derive(`${this.#prefix}${segments.join('/')}/`);
  }

  #derive(prefix: string): S3Storage {
    return new S3Storage({ bucket: this.#settings.bucket }, { settings: this.#settings, client: this.#client, prefix });
  }

  /** Close the shared client's connections (every storage from forUser() included). */
  destroy(): void {
    this.#client.destroy();
  }

  // ---- keys ----------------------------------------------------------------

  #segments(path: string): string[] {
    if (this.#prefix.includes('{username}')) {
      throw new FerryError(ErrorCodes.MISCONFIGURED, `prefix ${this.#prefix} has a {username} placeholder: use forUser()`);
    }
    const segments = parsePath(path);
    if (Buffer.byteLength(this.#prefix) + Buffer.byteLength(path) + 1 > MAX_KEY_BYTES) {
      throw new FerryError(ErrorCodes.INVALID_NAME, `key longer than ${MAX_KEY_BYTES} bytes: ${path}`);
    }
    return segments;
  }

  #fileKey(segments: readonly string[]): string {
    return this.#prefix + segments.join('/');
  }

  /** The key prefix under which a directory's entries lie (its marker has this key). */
  #dirKey(segments: readonly string[]): string {
    return segments.length === 0 ? this.#prefix : `${this.#prefix}${segments.join('/')}/`;
  }

  async #s3(): Promise<{ client: S3Client; sdk: S3Sdk }> {
    const [client, sdk] = await Promise.all([this.#client.get(), loadSdk()]);
    return { client, sdk };
  }

  // ---- probes --------------------------------------------------------------

  /** HeadObject: the file at `key`, or null. */
  async #headFile(key: string, name: string): Promise<FileInfo | null> {
    const { client, sdk } = await this.#s3();
    try {
      const out = await client.send(new sdk.HeadObjectCommand({ Bucket: this.#settings.bucket, Key: key }));
      return this.#fileInfo(name, key, out.ContentLength ?? 0, out.LastModified);
    } catch (err) {
      if (isNotFound(err)) return null;
      throw fromS3Error(err, 'HeadObject', key);
    }
  }

  /** The directory at `segments` (a marker or any deeper key), or null. */
  async #dirInfo(segments: readonly string[]): Promise<FileInfo | null> {
    const prefix = this.#dirKey(segments);
    if (segments.length > 0 && (await this.#listKeys(prefix, 1)).length === 0) return null;
    return this.#dir(segments[segments.length - 1] ?? '/', prefix);
  }

  /** A file or a directory at `segments`, or null; both are looked up at once. */
  async #probe(segments: readonly string[]): Promise<FileInfo | null> {
    if (segments.length === 0) return this.#dirInfo(segments);
    const [file, dir] = await Promise.all([this.#headFile(this.#fileKey(segments), segments[segments.length - 1]!), this.#dirInfo(segments)]);
    // An object and a prefix of the same name: the file wins, as S3 consoles show it.
    return file ?? dir;
  }

  /** Fail unless `segments` is a directory: NOT_A_DIRECTORY when it is a file, else NOT_FOUND. */
  async #requireDir(segments: readonly string[], path: string): Promise<void> {
    if (segments.length === 0) return;
    const prefix = this.#dirKey(segments);
    if (this.#settings.dirs.has(prefix)) return;
    if (await this.#dirInfo(segments)) {
      this.#settings.dirs.add(prefix);
      return;
    }
    throw await this.#notADirectory(segments, path, 'a file on the way to');
  }

  /**
   * The error for `segments`, known not to be a directory: NOT_A_DIRECTORY
   * when it is a file (`what` says what was tried), else what #missing finds.
   */
  async #notADirectory(segments: readonly string[], path: string, what: string): Promise<FerryError> {
    if (await this.#headFile(this.#fileKey(segments), segments[segments.length - 1]!)) {
      return new FerryError(ErrorCodes.NOT_A_DIRECTORY, `${what} ${path}`);
    }
    return this.#missing(segments, path);
  }

  /** The error for a path that is neither a file nor a directory (a file on the way is NOT_A_DIRECTORY). */
  async #missing(segments: readonly string[], path: string): Promise<FerryError> {
    for (let depth = segments.length - 1; depth > 0; depth--) {
      const parent = segments.slice(0, depth);
      if (await this.#headFile(this.#fileKey(parent), parent[depth - 1]!)) {
        return new FerryError(ErrorCodes.NOT_A_DIRECTORY, `a file on the way to ${path}`);
      }
      if (await this.#dirInfo(parent)) break;
    }
    return new FerryError(ErrorCodes.NOT_FOUND, `not found: ${path}`);
  }

  /** One ListObjectsV2 page under `prefix`. */
  async #listPage(prefix: string, options: { delimiter?: string; maxKeys?: number; token?: string | undefined }): Promise<ListObjectsV2CommandOutput> {
    const { client, sdk } = await this.#s3();
    const input = { Bucket: this.#settings.bucket, Prefix: prefix, Delimiter: options.delimiter, MaxKeys: options.maxKeys, ContinuationToken: options.token };
    return s3Call('ListObjectsV2', prefix, () => client.send(new sdk.ListObjectsV2Command(input)));
  }

  /** The first `maxKeys` keys under `prefix`, at any depth. */
  async #listKeys(prefix: string, maxKeys: number): Promise<_Object[]> {
    return (await this.#listPage(prefix, { maxKeys })).Contents ?? [];
  }

  #fileInfo(name: string, key: string, size: number, mtime: Date | undefined): FileInfo {
    return { name, type: 'file', size, mtime: mtime ?? new Date(UNKNOWN_TIME), mode: 0o644, id: uniqueId(key) };
  }

  #dir(name: string, prefix: string): FileInfo {
    return { name, type: 'dir', size: 0, mtime: new Date(UNKNOWN_TIME), mode: 0o755, id: uniqueId(prefix) };
  }

  // ---- Storage -------------------------------------------------------------

  async stat(path: string): Promise<FileInfo> {
    const segments = this.#segments(path);
    const info = await this.#probe(segments);
    if (info) return info;
    throw await this.#missing(segments, path);
  }

  async *list(path: string): AsyncGenerator<FileInfo[]> {
    const segments = this.#segments(path);
    const prefix = this.#dirKey(segments);
    let token: string | undefined;
    let first = true;
    do {
      const out = await this.#listPage(prefix, { delimiter: '/', token, maxKeys: this.#settings.listPageSize });
      if (first && segments.length > 0 && !out.Contents?.length && !out.CommonPrefixes?.length) {
        // Nothing under the prefix: no such directory (or a file).
        throw await this.#notADirectory(segments, path, 'list of a file:');
      }
      first = false;
      const page: FileInfo[] = [];
      for (const common of out.CommonPrefixes ?? []) {
        const name = common.Prefix?.slice(prefix.length, -1) ?? '';
        if (isUsableName(name)) page.push(this.#dir(name, common.Prefix!));
      }
      for (const object of out.Contents ?? []) {
        const name = object.Key?.slice(prefix.length) ?? '';
        // The directory's own marker is not an entry; names FTP cannot address are skipped.
        if (isUsableName(name)) page.push(this.#fileInfo(name, object.Key!, object.Size ?? 0, object.LastModified));
      }
      if (page.length > 0) yield page;
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token);
  }

  /**
   * Bytes and objects under the prefix, for quotas after a start
   * (src/limits/usage.ts). The top level is listed with the delimiter; each
   * top-level folder is then listed flat (1,000 keys a request however deep
   * it goes), USAGE_CONCURRENCY folders at once: a flat listing of the
   * whole prefix is one request after another (each needs the last one's
   * token). Directory markers are not files.
   */
  async usage(): Promise<{ bytes: number; files: number }> {
    const total = { bytes: 0, files: 0 };
    const folders = await this.#countKeys(this.#dirKey(this.#segments('/')), '/', total);
    await forEachLimited(folders, USAGE_CONCURRENCY, async (folder) => {
      await this.#countKeys(folder, undefined, total);
    });
    return total;
  }

  /** Adds the objects under `prefix` to `total`; returns the folders (CommonPrefixes) found with a delimiter. */
  async #countKeys(prefix: string, delimiter: string | undefined, total: { bytes: number; files: number }): Promise<string[]> {
    const folders: string[] = [];
    let token: string | undefined;
    do {
      const out = await this.#listPage(prefix, { delimiter, token, maxKeys: this.#settings.listPageSize });
      for (const object of out.Contents ?? []) {
        if (object.Key?.endsWith('/')) continue;
        total.bytes += object.Size ?? 0;
        total.files += 1;
      }
      for (const common of out.CommonPrefixes ?? []) if (common.Prefix) folders.push(common.Prefix);
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token);
    return folders;
  }

  async read(path: string, options: ReadOptions = {}): Promise<Readable> {
    const start = checkOffset(options.start);
    const segments = this.#segments(path);
    if (segments.length === 0) throw new FerryError(ErrorCodes.IS_A_DIRECTORY, 'read of the root');
    const key = this.#fileKey(segments);
    const { client, sdk } = await this.#s3();
    try {
      // A ranged GET: REST + RETR costs no more than a plain RETR.
      const out = await client.send(new sdk.GetObjectCommand({ Bucket: this.#settings.bucket, Key: key, Range: start > 0 ? `bytes=${start}-` : undefined }));
      // A store that ignores Range answers 200 with the whole object: sent
      // after REST, it would splice the file's start into the client's copy.
      if (start > 0 && !out.ContentRange?.startsWith(`bytes ${start}-`)) {
        (out.Body as Readable | undefined)?.destroy();
        throw new FerryError(ErrorCodes.UNSUPPORTED, `GetObject ${key}: asked for bytes ${start}-, got Content-Range ${String(out.ContentRange)}`);
      }
      return translatedBody(out.Body as Readable, key);
    } catch (err) {
      if (isNotFound(err)) {
        if (await this.#dirInfo(segments)) throw new FerryError(ErrorCodes.IS_A_DIRECTORY, `read of a directory: ${path}`);
        throw await this.#missing(segments, path);
      }
      const translated = fromS3Error(err, 'GetObject', key);
      if ((translated as FerryError).code === ErrorCodes.INVALID_OFFSET) {
        // S3 refuses a range that starts at the end; for REST that is a valid, empty read.
        const file = await this.#headFile(key, segments[segments.length - 1]!);
        if (file && file.size === start) return Readable.from([]);
      }
      throw translated;
    }
  }

  /**
   * HASH and X* from what the bucket stores with the object, for the whole
   * object only (see s3-checksums.ts): one HeadObject, and for SHA-256 one
   * GetObjectTagging when the HEAD had nothing. Null otherwise: the session
   * reads the object (a ranged GET for a range).
   */
  async hash(path: string, algorithm: HashAlgorithm, options: { start: number; end: number; size: number; signal: AbortSignal }): Promise<string | null> {
    if (options.start !== 0 || options.end !== options.size || algorithm === 'MD5' || algorithm === 'SHA-512') return null;
    const key = this.#fileKey(this.#segments(path));
    const { client, sdk } = await this.#s3();
    const { bucket } = this.#settings;
    const signal = { abortSignal: options.signal };
    // Any failure here only costs the read, which reports a real problem (endpoint down) itself: a
    // store that refuses the checksum mode header, a policy without s3:GetObjectTagging, no tags.
    const head = await client.send(new sdk.HeadObjectCommand({ Bucket: bucket, Key: key, ChecksumMode: 'ENABLED' }), signal).catch(() => null);
    const stored = head && storedDigest(head, algorithm);
    if (stored || algorithm !== 'SHA-256' || !head) return stored ?? null;
    const tagging = await client.send(new sdk.GetObjectTaggingCommand({ Bucket: bucket, Key: key }), signal).catch(() => null);
    return taggedSha256(tagging?.TagSet, head.ETag);
  }

  async write(path: string, options: WriteOptions = {}): Promise<StorageWritable> {
    const segments = this.#segments(path);
    const start = checkWrite(segments, options);
    if (options.append || start > 0) throw new FerryError(ErrorCodes.UNSUPPORTED, 'S3 objects are written whole: no append, no offset');
    const key = this.#fileKey(segments);
    const [, existing] = await Promise.all([this.#requireDir(segments.slice(0, -1), path), this.#probe(segments)]);
    if (existing && options.exclusive) throw new FerryError(ErrorCodes.EXISTS, `exists: ${path}`);
    if (existing?.type === 'dir') throw new FerryError(ErrorCodes.IS_A_DIRECTORY, `write to a directory: ${path}`);
    const { client, sdk } = await this.#s3();
    const { bucket, partSizeBytes, queueSize, logger, budget } = this.#settings;
    const name = segments[segments.length - 1]!;
    return new S3Upload({
      client,
      sdk,
      bucket,
      key,
      partSizeBytes,
      queueSize,
      logger,
      budget,
      // STOU: the name may have been taken during the upload; If-None-Match closes the window left after this check.
      exclusive: options.exclusive,
      beforeCommit: options.exclusive
        ? async () => {
            if (await this.#headFile(key, name)) throw new FerryError(ErrorCodes.EXISTS, `taken during the upload: ${path}`);
          }
        : undefined,
    });
  }

  async mkdir(path: string): Promise<void> {
    const segments = this.#segments(path);
    if (segments.length === 0) throw new FerryError(ErrorCodes.EXISTS, 'mkdir of the root');
    const [, existing] = await Promise.all([this.#requireDir(segments.slice(0, -1), path), this.#probe(segments)]);
    if (existing) throw new FerryError(ErrorCodes.EXISTS, `exists: ${path}`);
    await this.#putMarker(this.#dirKey(segments));
  }

  async rmdir(path: string): Promise<void> {
    const segments = this.#segments(path);
    if (segments.length === 0) throw new FerryError(ErrorCodes.ACCESS_DENIED, 'rmdir of the root');
    const prefix = this.#dirKey(segments);
    const keys = await this.#listKeys(prefix, 2);
    if (keys.length === 0) throw await this.#notADirectory(segments, path, 'rmdir of a file:');
    if (keys.some((k) => k.Key !== prefix)) throw new FerryError(ErrorCodes.NOT_EMPTY, `not empty: ${path}`);
    // Forgotten before and after: an upload's check in between may have seen the marker.
    this.#settings.dirs.forget(prefix);
    await this.#deleteKey(prefix);
    this.#settings.dirs.forget(prefix);
    await this.#keepParent(segments);
  }

  async delete(path: string): Promise<void> {
    const segments = this.#segments(path);
    if (segments.length === 0) throw new FerryError(ErrorCodes.IS_A_DIRECTORY, 'delete of the root');
    const key = this.#fileKey(segments);
    if (!(await this.#headFile(key, segments[segments.length - 1]!))) {
      if (await this.#dirInfo(segments)) throw new FerryError(ErrorCodes.IS_A_DIRECTORY, `delete of a directory: ${path}`);
      throw await this.#missing(segments, path);
    }
    await this.#deleteKey(key);
    await this.#keepParent(segments);
  }

  async rename(from: string, to: string): Promise<void> {
    const fromSegments = this.#segments(from);
    const toSegments = this.#segments(to);
    if (fromSegments.length === 0 || toSegments.length === 0) throw new FerryError(ErrorCodes.ACCESS_DENIED, 'rename of or onto the root');
    if (from === to) {
      await this.stat(from);
      return;
    }
    const [source, , target] = await Promise.all([
      this.#probe(fromSegments),
      this.#requireDir(toSegments.slice(0, -1), to),
      this.#probe(toSegments),
    ]);
    if (!source) throw await this.#missing(fromSegments, from);
    if (source.type === 'dir' && to.startsWith(`${from}/`)) {
      throw new FerryError(ErrorCodes.INVALID_NAME, `rename of ${from} into its own subtree ${to}`);
    }
    if (source.type === 'file') {
      if (target?.type === 'dir') throw new FerryError(ErrorCodes.IS_A_DIRECTORY, `rename of a file onto a directory: ${to}`);
      const { client, sdk } = await this.#s3();
      const fromKey = this.#fileKey(fromSegments);
      await copyObject({ client, sdk, bucket: this.#settings.bucket, from: fromKey, to: this.#fileKey(toSegments), size: source.size });
      try {
        await this.#deleteKey(fromKey);
      } catch (err) {
        throw new FerryError(ErrorCodes.RENAME_INCOMPLETE, `rename of ${from} copied the file but could not delete ${fromKey}`, { cause: err });
      }
    } else {
      if (target?.type === 'file') throw new FerryError(ErrorCodes.NOT_A_DIRECTORY, `rename of a directory onto a file: ${to}`);
      if (target && (await this.#listKeys(this.#dirKey(toSegments), 2)).some((k) => k.Key !== this.#dirKey(toSegments))) {
        throw new FerryError(ErrorCodes.NOT_EMPTY, `rename onto a non-empty directory: ${to}`);
      }
      const fromPrefix = this.#dirKey(fromSegments);
      this.#settings.dirs.forget(fromPrefix);
      await this.#renameDir(fromPrefix, this.#dirKey(toSegments), from, target !== null);
      this.#settings.dirs.forget(fromPrefix);
    }
    await this.#keepParent(fromSegments);
  }

  // ---- helpers for changes -------------------------------------------------

  async #putMarker(key: string): Promise<void> {
    const { client, sdk } = await this.#s3();
    const input = { Bucket: this.#settings.bucket, Key: key, Body: Buffer.alloc(0), ContentLength: 0 };
    await s3Call('PutObject', key, () => client.send(new sdk.PutObjectCommand(input)));
  }

  async #deleteKey(key: string): Promise<void> {
    const { client, sdk } = await this.#s3();
    await s3Call('DeleteObject', key, () => client.send(new sdk.DeleteObjectCommand({ Bucket: this.#settings.bucket, Key: key })));
  }

  /**
   * A directory that existed only through the entry just removed would
   * vanish with it; FTP clients expect it to stay, so give it a marker.
   */
  async #keepParent(segments: readonly string[]): Promise<void> {
    if (segments.length <= 1) return;
    const parent = this.#dirKey(segments.slice(0, -1));
    if ((await this.#listKeys(parent, 1)).length === 0) await this.#putMarker(parent);
  }

  /**
   * Copy every key under `fromPrefix` to `toPrefix`, then delete the old
   * keys. `targetExisted`: `toPrefix` was an empty directory (at most its
   * marker), whose marker an undo must leave alone.
   */
  async #renameDir(fromPrefix: string, toPrefix: string, path: string, targetExisted: boolean): Promise<void> {
    const { maxRenameKeys, bucket, logger } = this.#settings;
    const keys: _Object[] = [];
    let token: string | undefined;
    const { client, sdk } = await this.#s3();
    // Count first: a directory too large is refused before anything changes.
    do {
      const out = await this.#listPage(fromPrefix, { token, maxKeys: this.#settings.listPageSize });
      keys.push(...(out.Contents ?? []));
      if (keys.length > maxRenameKeys) {
        throw new FerryError(ErrorCodes.TOO_MANY_ENTRIES, `rename of ${path}: more than maxRenameKeys (${maxRenameKeys}) keys`);
      }
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token);

    const copied: string[] = [];
    try {
      await forEachLimited(keys, RENAME_CONCURRENCY, async (object) => {
        const target = toPrefix + object.Key!.slice(fromPrefix.length);
        await copyObject({ client, sdk, bucket, from: object.Key!, to: target, size: object.Size ?? 0, etag: object.ETag });
        // The target's own marker existed before: the undo must not delete it.
        if (!(targetExisted && target === toPrefix)) copied.push(target);
      });
    } catch (err) {
      // Undo: the source is untouched, the half-made copy goes away.
      const left = await this.#deleteKeys(copied);
      if (left.length === 0) throw err;
      logger?.warn({ path, bucket, failed: left.length, sample: left.slice(0, 10) }, 'directory rename failed, and its undo left copies behind under the target');
      throw new FerryError(ErrorCodes.UNAVAILABLE, `rename of ${path} failed (${(err as Error).message}); the undo could not delete ${left.length} copies, first ${left[0]}`, {
        cause: err,
      });
    }
    const left = await this.#deleteKeys(keys.map((k) => k.Key!));
    if (left.length > 0) {
      logger?.warn({ path, bucket, failed: left.length, sample: left.slice(0, 10) }, 'directory rename copied everything, but some old keys remain');
      throw new FerryError(ErrorCodes.RENAME_INCOMPLETE, `rename of ${path} copied everything but ${left.length} old keys remain, first ${left[0]}`);
    }
  }

  /**
   * DeleteObjects in batches of 1,000 (S3's limit per request); returns the
   * keys not deleted (a batch that failed whole counts all its keys), after
   * trying every batch.
   */
  async #deleteKeys(keys: readonly string[]): Promise<string[]> {
    const { client, sdk } = await this.#s3();
    const left: string[] = [];
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      const input = { Bucket: this.#settings.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } };
      try {
        const out = await s3Call('DeleteObjects', batch[0]!, () => client.send(new sdk.DeleteObjectsCommand(input)));
        for (const error of out.Errors ?? []) left.push(error.Key ?? '(unnamed)');
      } catch (err) {
        this.#settings.logger?.debug({ err: (err as Error).message }, 'DeleteObjects failed');
        left.push(...batch);
      }
    }
    return left;
  }
}

/**
 * The GetObject body with S3 failures translated: an endpoint that dies
 * mid-download becomes UNAVAILABLE (451), not a data-connection 426.
 */
function translatedBody(body: Readable, key: string): Readable {
  const out = new Readable({
    highWaterMark: 256 * 1024,
    read() {
      body.resume();
    },
    destroy(err, callback) {
      body.destroy();
      callback(err);
    },
  });
  body.on('data', (chunk: Buffer) => {
    if (!out.push(chunk)) body.pause();
  });
  body.once('end', () => out.push(null));
  body.once('error', (err) => out.destroy(fromS3Error(err, 'GetObject', key) as Error));
  return out;
}
