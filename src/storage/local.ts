/**
 * LocalStorage: the Storage contract over a directory on local disk.
 *
 * Jail. Every operation resolves its virtual path with the jail (jail.ts):
 * a walk from an fd of the root, one component at a time, each opened
 * O_NOFOLLOW relative to its parent's fd, so no directory swapped for a
 * symlink meanwhile can move an operation outside the root. Symlinks inside
 * the root are followed (virtually, within the root); anything resolving
 * outside is ACCESS_DENIED:
 *   - operations that follow the path (stat, list, read, writing into an
 *     existing file, chmod, setModifiedTime) resolve the final symlinks too
 *     and act on what they point to;
 *   - operations that create or remove a directory entry (new file, mkdir,
 *     rmdir, delete, both ends of rename) resolve the parent and act on the
 *     name in it, so they act on a symlink itself, never through it;
 *   - writing through a dangling symlink is refused: following it could
 *     create a file anywhere.
 * The final open of an entry adds O_NOFOLLOW, so an entry replaced by a
 * symlink after the walk fails (ELOOP → ACCESS_DENIED) instead of being
 * followed; chmod and utimes act through an O_PATH fd of the entry.
 * Without /proc/self/fd (not Linux) the jail falls back to realpath checks,
 * which a local user who can swap directories in the served tree can race.
 *
 * Uploads (see write()):
 *   - full replace (no offset, not append): data goes to a hidden temp file
 *     `.ferry-upload-<host>-<pid>-<start>-<random>.part` next to the target
 *     (temp-files.ts: whose it is, and who removes it); 'finish' comes after
 *     fdatasync + close + rename over the target + fsync of the directory, so
 *     the new content appears atomically and durably. An abort unlinks the
 *     temp file; the previous content is untouched. The replaced file's
 *     permission bits are kept.
 *   - exclusive (STOU): same temp file, committed with link(temp, target),
 *     which fails atomically with EEXIST if the name was taken meanwhile (the
 *     name is also checked when write() is called, so the usual error comes
 *     early). Filesystems without hard links fall back to check + rename.
 *   - start > 0 (REST + STOR): the existing file is overwritten in place from
 *     the offset; nothing is truncated when the write is opened. Only the
 *     commit cuts the file where the new data ends (ftruncate to the final
 *     position, before fdatasync), so a committed resume leaves exactly
 *     `start + bytes written` bytes. An abort (destroyed before 'finish')
 *     truncates nothing: bytes already written in place stay, so the client
 *     can resume again, and the file is never shortened (a resume whose data
 *     connection never opens leaves the file as it was).
 *   - append (APPE): O_APPEND on the existing file; an abort keeps what was
 *     appended. If the file did not exist it is created, and removed again on
 *     abort (a new file does not appear).
 * Temp names are reserved: paths naming one are refused with INVALID_NAME and
 * list() skips them, so clients neither see nor touch uploads in progress.
 *
 * No synchronous fs calls anywhere.
 */
import { constants as fsConstants, type Stats } from 'node:fs';
import * as fsp from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { sep } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { ErrorCodes, FerryError, fromSystemError } from '../errors.js';
import { DirReader, EntryKind, readSmallFile, type SmallFile } from './reader-threads.js';
import { existing, onEntry, openFlags, pathOf, release, resolve, sharedRoot, type Final, type JailRoot, type Place } from './jail.js';
import { FileReadStream, WholeFileStream } from './file-read-stream.js';
import type {
  FileInfo,
  ReadOptions,
  Storage,
  StorageCapabilities,
  StorageWritable,
  WriteOptions,
} from './types.js';
import { checkOffset, checkWrite, parsePath as parseVirtualPath } from './paths.js';
import { discardTempFile, isTempName, sweepDirectoryOnce, tempFileName, trackTempFile, untrackTempFile } from './temp-files.js';
import type { Logger } from '../observability/logger.js';

/** Files up to this size (from the REST offset) are read whole on a reader thread: one round trip instead of five. */
const SMALL_FILE_BYTES = 64 * 1024;
/** Writable buffer before backpressure: _writev batches socket chunks into writes of up to 1 MiB. */
const WRITE_BUFFER_BYTES = 1024 * 1024;
/** Positioned writes running at once per upload (see FileUpload#write). */
const MAX_WRITES_IN_FLIGHT = 4;

// Not defined on Windows; there the flags are simply not used.
const O_NOFOLLOW = fsConstants.O_NOFOLLOW ?? 0;
const O_NONBLOCK = fsConstants.O_NONBLOCK ?? 0;
const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_APPEND } = fsConstants;

export interface LocalStorageOptions {
  /**
   * fdatasync files (and fsync their directory) before an upload's 'finish'.
   * Default true: 'finish' means durable. Turning it off trades crash safety
   * for speed (e.g. scratch areas, tests).
   */
  fsync?: boolean;
  /** Where the temp file sweep says what it removed (see temp-files.ts). */
  logger?: Logger;
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

function denied(message: string): FerryError {
  return new FerryError(ErrorCodes.ACCESS_DENIED, message);
}

/** Why a file cannot be read, found on a reader thread (readSmallFile) or from fstat (the streaming path). */
type ReadProblem = Extract<SmallFile, { kind: 'dir' | 'special' | 'offset' | 'changed' }>;

function readRefusal(problem: ReadProblem, path: string, start: number): FerryError {
  switch (problem.kind) {
    case 'dir':
      return new FerryError(ErrorCodes.IS_A_DIRECTORY, `read of a directory: ${path}`);
    case 'special':
      return denied(`read of a special file: ${path}`);
    case 'offset':
      return new FerryError(ErrorCodes.INVALID_OFFSET, `offset ${start} beyond size ${problem.size}: ${path}`);
    case 'changed':
      return new FerryError(ErrorCodes.FILE_CHANGED, `file shrank while it was read: ${path}`);
  }
}

/** Segments LocalStorage refuses on top of the shared rules: platform separators, reserved temp names. */
function checkLocalSegment(segment: string, path: string): void {
  if (sep === '\\' && /[\\:]/.test(segment)) {
    throw new FerryError(ErrorCodes.INVALID_NAME, `path segment not allowed on this platform: ${path}`);
  }
  if (isTempName(segment)) {
    throw new FerryError(ErrorCodes.INVALID_NAME, `name reserved for uploads in progress: ${path}`);
  }
}

/**
 * Split a normalised virtual path into segments ('/' → []), re-checking
 * defensively what the session should already guarantee.
 */
function parsePath(path: string): string[] {
  return parseVirtualPath(path, checkLocalSegment);
}

function fileId(st: Stats): string {
  return `${st.dev.toString(16)}g${st.ino.toString(16)}`;
}

function infoFromStats(name: string, st: Stats): FileInfo {
  return {
    name,
    type: st.isDirectory() ? 'dir' : 'file',
    size: st.size,
    mtime: st.mtime,
    mode: st.mode & 0o777,
    id: fileId(st),
  };
}

async function lstatOrNull(path: string): Promise<Stats | null> {
  try {
    return await fsp.lstat(path);
  } catch (err) {
    if (errno(err) === 'ENOENT') return null;
    throw err;
  }
}

/**
 * Orphans a dead process left in an upload's folder go in the background,
 * once per folder (temp-files.ts). The sweep works by path, later, so it is
 * given the folder's real path, read from the fd the upload holds (the
 * readlink is queued before anything that could release it).
 */
function sweepFolderOf(place: Place, logger: Logger | undefined): void {
  if (!place.dir.startsWith('/proc/self/fd/')) return sweepDirectoryOnce(place.dir, logger);
  fsp.readlink(place.dir).then(
    (real) => sweepDirectoryOnce(real, logger),
    () => undefined,
  );
}

async function unlinkQuietly(path: string): Promise<void> {
  await fsp.unlink(path).catch(() => undefined);
}

/** Make a directory entry (create, rename, link) durable. Best effort: Windows cannot fsync a directory. */
async function syncDirectory(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await fsp.open(dir, O_RDONLY);
    await handle.sync();
  } catch {
    // ignored on purpose, see above
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

/** Drop the first `count` bytes from a list of buffers. */
function skipBytes(buffers: Buffer[], count: number): Buffer[] {
  let index = 0;
  let remaining = count;
  while (index < buffers.length && remaining >= buffers[index]!.length) {
    remaining -= buffers[index]!.length;
    index += 1;
  }
  const rest = buffers.slice(index);
  if (remaining > 0 && rest.length > 0) rest[0] = rest[0]!.subarray(remaining);
  return rest.filter((b) => b.length > 0);
}

interface UploadPlan {
  handle: FileHandle;
  /** Next write position; null for O_APPEND handles. */
  position: number | null;
  /** Cut the file at the final position when committing (REST + STOR); needs a position. */
  truncateAtEnd: boolean;
  durable: boolean;
  /** Runs after the handle is synced and closed; makes the data visible. */
  commit: () => Promise<void>;
  /** Runs after the handle is closed when the upload is destroyed before committing. */
  abort: () => Promise<void>;
}

/**
 * The writable returned by write(): writes go straight to a FileHandle
 * (writev batches buffered chunks), 'finish' fires after commit, and
 * destroy-before-finish runs the abort step.
 */
class FileUpload extends Writable {
  #handle: FileHandle | null;
  #position: number | null;
  readonly #truncateAtEnd: boolean;
  readonly #durable: boolean;
  readonly #commit: () => Promise<void>;
  readonly #abort: () => Promise<void>;
  #committed = false;
  #finalizing: Promise<void> | null = null;
  readonly #inFlight = new Set<Promise<void>>();
  #failure: Error | null = null;

  constructor(plan: UploadPlan) {
    super({ highWaterMark: WRITE_BUFFER_BYTES });
    this.#handle = plan.handle;
    this.#position = plan.position;
    this.#truncateAtEnd = plan.truncateAtEnd;
    this.#durable = plan.durable;
    this.#commit = plan.commit;
    this.#abort = plan.abort;
  }

  /** True once the new content is in place (StorageWritable.committed), even if destroy() came during the commit. */
  get committed(): boolean {
    return this.#committed;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#write([chunk], callback);
  }

  override _writev(
    chunks: Array<{ chunk: Buffer; encoding: BufferEncoding }>,
    callback: (error?: Error | null) => void,
  ): void {
    this.#write(
      chunks.map((c) => c.chunk),
      callback,
    );
  }

  /**
   * Positioned writes may overlap in time: each reserves its byte range up
   * front, so up to MAX_WRITES_IN_FLIGHT run on the thread pool at once while
   * the socket keeps delivering (one write at a time leaves the disk and the
   * network taking turns). O_APPEND writes have no position and stay serial.
   */
  #write(buffers: Buffer[], callback: (error?: Error | null) => void): void {
    if (this.#failure) {
      callback(this.#failure);
      return;
    }
    const position = this.#position;
    if (position !== null) this.#position = position + buffers.reduce((n, b) => n + b.length, 0);
    const write = this.#writeAll(buffers, position).catch((err: unknown) => {
      this.#failure ??= fromSystemError(err) as Error;
    });
    this.#inFlight.add(write);
    void write.finally(() => this.#inFlight.delete(write));
    // Only into a temp file: a failed write there discards the upload. In a
    // resumed file a gap before a later successful write would survive.
    if (position !== null && !this.#truncateAtEnd && this.#inFlight.size < MAX_WRITES_IN_FLIGHT) callback();
    else void write.then(() => callback(this.#failure));
  }

  async #writeAll(buffers: Buffer[], position: number | null): Promise<void> {
    const handle = this.#handle;
    if (!handle) throw new Error('upload already closed');
    let pending = buffers.filter((b) => b.length > 0);
    while (pending.length > 0) {
      const { bytesWritten } = await handle.writev(pending, position ?? undefined);
      if (bytesWritten === 0) throw new Error('write made no progress');
      if (position !== null) position += bytesWritten;
      pending = skipBytes(pending, bytesWritten);
    }
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#finalizing = (async () => {
      await Promise.all(this.#inFlight);
      if (this.#failure) throw this.#failure;
      const handle = this.#handle;
      if (!handle) throw new Error('upload already closed');
      // Only a committing write shortens the file: an abort never runs this.
      if (this.#truncateAtEnd && this.#position !== null) await handle.truncate(this.#position);
      if (this.#durable) await handle.datasync();
      this.#handle = null;
      await handle.close();
      await this.#commit();
      this.#committed = true;
    })();
    this.#finalizing.then(
      () => callback(),
      (err: unknown) => callback(fromSystemError(err) as Error),
    );
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    void (async () => {
      // A destroy racing a commit in flight waits for it, so a committed file is never "aborted".
      await this.#finalizing?.catch(() => undefined);
      const handle = this.#handle;
      this.#handle = null;
      // FileHandle.close() waits for operations still in flight on it.
      if (handle) await handle.close().catch(() => undefined);
      if (!this.#committed) await this.#abort().catch(() => undefined);
    })().then(() => callback(error));
  }
}

export class LocalStorage implements Storage {
  readonly kind = 'local';
  readonly capabilities: StorageCapabilities = Object.freeze({
    randomWrite: true,
    append: true,
    atomicRename: true,
    directories: true,
  });

  readonly #root: string;
  readonly #durable: boolean;
  readonly #logger: Logger | undefined;
  #jailRootPromise: Promise<JailRoot> | undefined;

  /** @param root an existing directory; the virtual '/' maps to it (it may be a symlink). */
  constructor(root: string, options: LocalStorageOptions = {}) {
    this.#root = root;
    this.#durable = options.fsync ?? true;
    this.#logger = options.logger;
  }

  /**
   * The root opened for the jail (shared with other storages on the same
   * folder, jail.ts sharedRoot), once. A failure is not cached, so a later
   * call retries.
   */
  #jailRoot(): Promise<JailRoot> {
    if (!this.#jailRootPromise) {
      const promise = sharedRoot(this.#root);
      this.#jailRootPromise = promise;
      promise.catch(() => {
        if (this.#jailRootPromise === promise) this.#jailRootPromise = undefined;
      });
    }
    return this.#jailRootPromise;
  }

  /** Resolve `segments` with the jail; the caller releases the place. */
  async #resolve(segments: string[], final: Final): Promise<Place> {
    return resolve(await this.#jailRoot(), segments, final);
  }

  async stat(path: string): Promise<FileInfo> {
    try {
      const segments = parsePath(path);
      const place = await this.#resolve(segments, 'lstat');
      release(place);
      return infoFromStats(segments[segments.length - 1] ?? '/', existing(place, path));
    } catch (err) {
      throw fromSystemError(err);
    }
  }

  async *list(path: string): AsyncGenerator<FileInfo[]> {
    let reader: DirReader;
    let segments: string[];
    try {
      segments = parsePath(path);
      reader = await DirReader.open(await this.#jailRoot(), segments);
    } catch (err) {
      throw fromSystemError(err);
    }
    try {
      // The next page is read on the reader thread while this one is used.
      let next = reader.read();
      for (;;) {
        const page = await next;
        if (!page.done) {
          next = reader.read();
          next.catch(() => undefined); // observed by the next await; never unhandled
        }
        const entries: FileInfo[] = [];
        const { names, stats } = page;
        // Entries of a directory share a device: its part of the id is made once.
        let dev = Number.NaN;
        let devPart = '';
        for (let i = 0; i < names.length; i++) {
          const name = names[i]!;
          const o = i * 6;
          const kind = stats[o]!;
          if (kind === EntryKind.Gone || isTempName(name)) continue;
          if (stats[o + 4] !== dev) {
            dev = stats[o + 4]!;
            devPart = `${dev.toString(16)}g`;
          }
          const own: FileInfo = {
            name,
            type: kind === EntryKind.Dir ? 'dir' : kind === EntryKind.Symlink ? 'symlink' : 'file',
            size: kind === EntryKind.Symlink ? 0 : stats[o + 1]!,
            // Rounded as Node rounds Stats.mtime, so a listing and stat() (MDTM, MLST) agree.
            mtime: new Date(Math.round(stats[o + 2]!)),
            mode: stats[o + 3]! & 0o777,
            id: devPart + stats[o + 5]!.toString(16),
          };
          if (kind === EntryKind.Symlink || kind === EntryKind.Error) {
            // Rare: resolve links (inside the root or not) and errors the careful way.
            const info = await this.#entryInfo([...segments, name], own, kind === EntryKind.Symlink);
            if (info === null) continue;
            if ('error' in info) throw fromSystemError(info.error);
            entries.push(info);
            continue;
          }
          entries.push(own);
        }
        if (entries.length > 0) yield entries;
        if (page.done) return;
      }
    } finally {
      reader.close();
    }
  }

  /**
   * A listing entry that is a symlink (shown as its target when that is
   * inside the root, else as the link itself: `own`) or that could not be
   * lstat-ed on the reader thread: null if it vanished, `{error}` for other
   * failures (so prefetching never rejects unhandled).
   */
  async #entryInfo(segments: string[], own: FileInfo, isLink: boolean): Promise<FileInfo | { error: unknown } | null> {
    try {
      const place = await this.#resolve(segments, 'lstat');
      release(place);
      if (place.stats) return infoFromStats(own.name, place.stats);
      return isLink ? own : null;
    } catch (err) {
      // Outside the root or looping: show the link, not its target.
      if (isLink) return own;
      if (errno(err) === 'ENOENT') return null;
      return { error: err };
    }
  }

  async read(path: string, options: ReadOptions = {}): Promise<Readable> {
    try {
      const start = checkOffset(options.start);
      const segments = parsePath(path);
      // Small files in one round trip to a reader thread; larger ones stream from a handle.
      const small = await readSmallFile(await this.#jailRoot(), segments, start, SMALL_FILE_BYTES);
      if (small.kind === 'data') return new WholeFileStream(Buffer.from(small.data.buffer, small.data.byteOffset, small.length));
      if (small.kind === 'large' || small.kind === 'busy') return await this.#openRead(segments, path, start);
      throw readRefusal(small, path, start);
    } catch (err) {
      throw fromSystemError(err);
    }
  }

  async #openRead(segments: string[], path: string, start: number): Promise<Readable> {
    const place = await this.#resolve(segments, 'lstat');
    let handle: FileHandle;
    try {
      existing(place, path);
      // O_NONBLOCK: opening a FIFO must not park a threadpool thread; it is refused just below.
      handle = await fsp.open(pathOf(place), openFlags(place, O_RDONLY | O_NONBLOCK));
    } finally {
      release(place);
    }
    try {
      const st = await handle.stat();
      if (st.isDirectory()) throw readRefusal({ kind: 'dir' }, path, start);
      if (!st.isFile()) throw readRefusal({ kind: 'special' }, path, start);
      if (start > st.size) throw readRefusal({ kind: 'offset', size: st.size }, path, start);
      return new FileReadStream(handle, start, st.size);
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw err;
    }
  }

  async write(path: string, options: WriteOptions = {}): Promise<StorageWritable> {
    try {
      const segments = parsePath(path);
      const start = checkWrite(segments, options);
      // Exclusive creates never follow the name; the others follow a symlink (to a target inside the root).
      const place = await this.#resolve(segments, options.exclusive ? 'parent' : 'lstat');
      try {
        if (options.exclusive) {
          if (await lstatOrNull(pathOf(place))) throw new FerryError(ErrorCodes.EXISTS, `exists: ${path}`);
          return await this.#uploadViaTemp(place, null, 'link');
        }
        const st = place.stats;
        if (!st && place.viaLink) throw denied(`write through a dangling symlink: ${path}`);
        if (st?.isDirectory()) throw new FerryError(ErrorCodes.IS_A_DIRECTORY, `write to a directory: ${path}`);
        if (st && !st.isFile()) throw denied(`write to a special file: ${path}`);
        if (options.append) return await this.#append(place, st !== null);
        if (start > 0) {
          if (!st) throw new FerryError(ErrorCodes.NOT_FOUND, `resume of a missing file: ${path}`);
          return await this.#resume(place, start, path);
        }
        return await this.#uploadViaTemp(place, st, 'rename');
      } catch (err) {
        release(place);
        throw err;
      }
    } catch (err) {
      throw fromSystemError(err);
    }
  }

  /*
   * The three upload openers below take `place` over once they return: the
   * upload releases it when it commits or aborts (or at once if not needed).
   * If they throw, the caller still owns it.
   */

  /** Full upload into a hidden temp file next to the entry, committed by rename (replace) or link (exclusive). */
  async #uploadViaTemp(place: Place, previous: Stats | null, commitBy: 'rename' | 'link'): Promise<FileUpload> {
    const target = pathOf(place);
    sweepFolderOf(place, this.#logger);
    // Tracked by its /proc/self/fd path: valid while the upload holds the folder, which is as long as the file can exist.
    const temp = `${place.dir}/${await tempFileName()}`;
    trackTempFile(temp);
    let handle: FileHandle;
    try {
      handle = await fsp.open(temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o666);
    } catch (err) {
      untrackTempFile(temp);
      throw err;
    }
    try {
      if (previous) await handle.chmod(previous.mode & 0o777);
    } catch (err) {
      await handle.close().catch(() => undefined);
      await discardTempFile(temp);
      throw err;
    }
    const durable = this.#durable;
    return new FileUpload({
      handle,
      position: 0,
      truncateAtEnd: false,
      durable,
      commit: async () => {
        if (commitBy === 'rename') {
          await fsp.rename(temp, target);
          untrackTempFile(temp);
        } else {
          await linkExclusive(temp, target);
          await discardTempFile(temp);
        }
        if (durable) await syncDirectory(place.dir);
        release(place);
      },
      abort: async () => {
        await discardTempFile(temp);
        release(place);
      },
    });
  }

  async #resume(place: Place, start: number, vpath: string): Promise<FileUpload> {
    const handle = await fsp.open(pathOf(place), O_WRONLY | O_NOFOLLOW);
    try {
      const st = await handle.stat();
      if (start > st.size) {
        throw new FerryError(ErrorCodes.INVALID_OFFSET, `offset ${start} beyond size ${st.size}: ${vpath}`);
      }
    } catch (err) {
      // The caller still owns `place` and releases it: releasing here too would close its fd twice.
      await handle.close().catch(() => undefined);
      throw err;
    }
    release(place);
    // REST + STOR: overwrite in place; the file ends where the new data ends
    // only once the write commits (truncateAtEnd), never at open.
    return new FileUpload({
      handle,
      position: start,
      truncateAtEnd: true,
      durable: this.#durable,
      commit: async () => undefined,
      // Keep what was written and truncate nothing: the client can resume again.
      abort: async () => undefined,
    });
  }

  async #append(place: Place, exists: boolean): Promise<FileUpload> {
    const target = pathOf(place);
    let handle: FileHandle;
    let created = false;
    if (exists) {
      handle = await fsp.open(target, O_WRONLY | O_APPEND | O_NOFOLLOW);
    } else {
      try {
        handle = await fsp.open(target, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW, 0o666);
        created = true;
      } catch (err) {
        // Created by someone else in the meantime: append to it.
        if (errno(err) !== 'EEXIST') throw err;
        handle = await fsp.open(target, O_WRONLY | O_APPEND | O_NOFOLLOW);
      }
    }
    // Only a file this upload created needs its directory again (sync on commit, unlink on abort).
    if (!created) release(place);
    const durable = this.#durable;
    return new FileUpload({
      handle,
      position: null,
      truncateAtEnd: false,
      durable,
      commit: async () => {
        if (created && durable) await syncDirectory(place.dir);
        if (created) release(place);
      },
      // An aborted append keeps its data in an existing file; a file it created disappears.
      abort: async () => {
        if (!created) return;
        await unlinkQuietly(target);
        release(place);
      },
    });
  }

  /** Run `op` on the entry `segments` names in its (jailed) parent directory, never following the entry itself. */
  async #inParent<T>(segments: string[], op: (entry: string) => Promise<T>): Promise<T> {
    const place = await this.#resolve(segments, 'parent');
    try {
      return await op(pathOf(place));
    } finally {
      release(place);
    }
  }

  async mkdir(path: string): Promise<void> {
    try {
      const segments = parsePath(path);
      if (segments.length === 0) throw new FerryError(ErrorCodes.EXISTS, 'mkdir of the root');
      await this.#inParent(segments, (entry) => fsp.mkdir(entry));
    } catch (err) {
      throw fromSystemError(err);
    }
  }

  async rmdir(path: string): Promise<void> {
    try {
      const segments = parsePath(path);
      if (segments.length === 0) throw denied('rmdir of the root');
      await this.#inParent(segments, (entry) => fsp.rmdir(entry));
    } catch (err) {
      // Some systems report a non-empty directory as EEXIST (POSIX allows both).
      if (errno(err) === 'EEXIST') throw new FerryError(ErrorCodes.NOT_EMPTY, `not empty: ${path}`, { cause: err });
      throw fromSystemError(err);
    }
  }

  async delete(path: string): Promise<void> {
    try {
      const segments = parsePath(path);
      if (segments.length === 0) throw new FerryError(ErrorCodes.IS_A_DIRECTORY, 'delete of the root');
      await this.#inParent(segments, async (entry) => {
        // lstat: a symlink (even to a directory) is removed itself, never followed.
        const st = await fsp.lstat(entry);
        if (st.isDirectory()) throw new FerryError(ErrorCodes.IS_A_DIRECTORY, `delete of a directory: ${path}`);
        await fsp.unlink(entry);
      });
    } catch (err) {
      throw fromSystemError(err);
    }
  }

  async rename(from: string, to: string): Promise<void> {
    try {
      const fromSegments = parsePath(from);
      const toSegments = parsePath(to);
      if (fromSegments.length === 0 || toSegments.length === 0) throw denied('rename of or onto the root');
      // A directory into its own subtree fails with EINVAL → INVALID_NAME.
      await this.#inParent(fromSegments, (source) => this.#inParent(toSegments, (target) => fsp.rename(source, target)));
    } catch (err) {
      throw fromSystemError(err);
    }
  }

  /** Run `op` on the entry `path` resolves to (symlinks followed), through a path naming exactly that entry; never the root. */
  async #onTarget(path: string, what: string, op: (target: string, stats: Stats) => Promise<void>): Promise<void> {
    const place = await this.#resolve(parsePath(path), 'lstat');
    try {
      const stats = existing(place, path);
      if (place.isRoot) throw denied(`${what} of the root`);
      await onEntry(place, (target) => op(target, stats));
    } finally {
      release(place);
    }
  }

  async setModifiedTime(path: string, mtime: Date): Promise<void> {
    try {
      await this.#onTarget(path, 'setModifiedTime', (target, st) => fsp.utimes(target, st.atime, mtime));
    } catch (err) {
      throw fromSystemError(err);
    }
  }

  async chmod(path: string, mode: number): Promise<void> {
    try {
      await this.#onTarget(path, 'chmod', (target) => fsp.chmod(target, mode & 0o777));
    } catch (err) {
      throw fromSystemError(err);
    }
  }
}

/** link(2) fails atomically if `target` exists; without hard-link support, check then rename (racy, rare). */
async function linkExclusive(temp: string, target: string): Promise<void> {
  try {
    await fsp.link(temp, target);
  } catch (err) {
    const code = errno(err);
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'ENOSYS' && code !== 'EOPNOTSUPP') throw err;
    if (await lstatOrNull(target)) throw new FerryError(ErrorCodes.EXISTS, `exists: ${target}`);
    await fsp.rename(temp, target);
  }
}
