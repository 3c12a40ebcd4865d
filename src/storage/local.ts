/**
 * LocalStorage: the Storage contract over a directory on local disk.
 *
 * Jail. A virtual path '/a/b' maps to join(realRoot, 'a', 'b'), where
 * realRoot is the realpath of the configured root (so the root itself may be
 * a symlink). The session normalises paths, but symlinks inside the root may
 * point anywhere, so every operation resolves what it touches with realpath
 * and refuses (ACCESS_DENIED) anything outside realRoot:
 *   - operations that follow the path (stat, list, read, writing into an
 *     existing file, chmod, setModifiedTime) check the target's realpath and
 *     then work on that real path;
 *   - operations that create or remove a directory entry (new file, mkdir,
 *     rmdir, delete, both ends of rename) check the parent's realpath and work
 *     on `realParent/name`, so they act on a symlink itself, never through it;
 *   - writing through a dangling symlink is refused: its target cannot be
 *     checked, and following it could create a file anywhere.
 * Opens of already-resolved paths add O_NOFOLLOW, so a final component swapped
 * for a symlink after the check fails (ELOOP → ACCESS_DENIED) instead of being
 * followed. Known limit: Node has no openat2(RESOLVE_BENEATH), so a local user
 * who can swap a *directory* component for a symlink between the check and the
 * use could still race us. FTP clients cannot create symlinks, so this needs
 * shell access to the served tree.
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
import { constants as fsConstants, type Dir, type Dirent, type Stats } from 'node:fs';
import * as fsp from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { dirname, join, sep } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { ErrorCodes, FerryError, fromSystemError } from '../errors.js';
import { DirReader, EntryKind, readSmallFile, type SmallFile } from './reader-threads.js';
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
type ReadProblem = Extract<SmallFile, { kind: 'outside' | 'dir' | 'special' | 'offset' }>;

function readRefusal(problem: ReadProblem, path: string, start: number): FerryError {
  switch (problem.kind) {
    case 'outside':
      return denied(`${path} resolves outside the root: ${problem.real}`);
    case 'dir':
      return new FerryError(ErrorCodes.IS_A_DIRECTORY, `read of a directory: ${path}`);
    case 'special':
      return denied(`read of a special file: ${path}`);
    case 'offset':
      return new FerryError(ErrorCodes.INVALID_OFFSET, `offset ${start} beyond size ${problem.size}: ${path}`);
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
  readonly capabilities: StorageCapabilities = Object.freeze({
    randomWrite: true,
    append: true,
    atomicRename: true,
    directories: true,
  });

  readonly #root: string;
  readonly #durable: boolean;
  readonly #logger: Logger | undefined;
  #realRootPromise: Promise<string> | undefined;

  /** @param root an existing directory; the virtual '/' maps to it (it may be a symlink). */
  constructor(root: string, options: LocalStorageOptions = {}) {
    this.#root = root;
    this.#durable = options.fsync ?? true;
    this.#logger = options.logger;
  }

  /** The root's realpath, computed once. A failure is not cached, so a later call retries. */
  #realRoot(): Promise<string> {
    if (!this.#realRootPromise) {
      const promise = fsp.realpath(this.#root);
      this.#realRootPromise = promise;
      promise.catch(() => {
        if (this.#realRootPromise === promise) this.#realRootPromise = undefined;
      });
    }
    return this.#realRootPromise;
  }

  #assertInside(real: string, realRoot: string, what: string): void {
    const prefix = realRoot.endsWith(sep) ? realRoot : realRoot + sep;
    if (real !== realRoot && !real.startsWith(prefix)) {
      throw denied(`${what} resolves outside the root: ${real}`);
    }
  }

  /** Realpath of an existing path, symlinks followed, verified inside the root. */
  async #resolve(segments: string[], vpath: string): Promise<string> {
    const realRoot = await this.#realRoot();
    if (segments.length === 0) return realRoot;
    const real = await fsp.realpath(join(realRoot, ...segments));
    this.#assertInside(real, realRoot, vpath);
    return real;
  }

  /**
   * The real parent directory of an entry (verified inside the root) and the
   * entry's path under it: the final component itself is not followed.
   */
  async #locate(segments: string[], vpath: string): Promise<{ parent: string; entry: string }> {
    const name = segments[segments.length - 1];
    if (name === undefined) throw denied('the root has no parent');
    const parent = await this.#resolve(segments.slice(0, -1), vpath);
    return { parent, entry: join(parent, name) };
  }

  async stat(path: string): Promise<FileInfo> {
    try {
      const segments = parsePath(path);
      const real = await this.#resolve(segments, path);
      return infoFromStats(segments[segments.length - 1] ?? '/', await fsp.stat(real));
    } catch (err) {
      throw fromSystemError(err);
    }
  }

  async *list(path: string): AsyncGenerator<FileInfo[]> {
    let reader: DirReader;
    let realRoot: string;
    let real: string;
    try {
      const segments = parsePath(path);
      realRoot = await this.#realRoot();
      real = await this.#resolve(segments, path);
      reader = await DirReader.open(real);
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
          if (kind === EntryKind.Symlink || kind === EntryKind.Error) {
            // Rare: resolve links (inside the root or not) and errors the careful way.
            const info = await this.#entryInfo(real, name, realRoot);
            if (info === null) continue;
            if ('error' in info) throw fromSystemError(info.error);
            entries.push(info);
            continue;
          }
          if (stats[o + 4] !== dev) {
            dev = stats[o + 4]!;
            devPart = `${dev.toString(16)}g`;
          }
          entries.push({
            name,
            type: kind === EntryKind.Dir ? 'dir' : 'file',
            size: stats[o + 1]!,
            // Rounded as Node rounds Stats.mtime, so a listing and stat() (MDTM, MLST) agree.
            mtime: new Date(Math.round(stats[o + 2]!)),
            mode: stats[o + 3]! & 0o777,
            id: devPart + stats[o + 5]!.toString(16),
          });
        }
        if (entries.length > 0) yield entries;
        if (page.done) return;
      }
    } finally {
      reader.close();
    }
  }

  /** One listing entry: null if it vanished, `{error}` for other failures (so prefetching never rejects unhandled). */
  async #entryInfo(dirPath: string, name: string, realRoot: string): Promise<FileInfo | { error: unknown } | null> {
    const full = join(dirPath, name);
    try {
      const lst = await fsp.lstat(full);
      if (!lst.isSymbolicLink()) return infoFromStats(name, lst);
      try {
        const target = await fsp.realpath(full);
        this.#assertInside(target, realRoot, full);
        return infoFromStats(name, await fsp.stat(target));
      } catch {
        // Outside the root, dangling or looping: show the link, not its target.
        return { name, type: 'symlink', size: 0, mtime: lst.mtime, mode: lst.mode & 0o777, id: fileId(lst) };
      }
    } catch (err) {
      if (errno(err) === 'ENOENT') return null;
      return { error: err };
    }
  }

  async read(path: string, options: ReadOptions = {}): Promise<Readable> {
    try {
      const start = checkOffset(options.start);
      const segments = parsePath(path);
      const realRoot = await this.#realRoot();
      // Small files in one round trip to a reader thread; larger ones stream from a handle.
      const small = await readSmallFile(join(realRoot, ...segments), realRoot, start, SMALL_FILE_BYTES);
      if (small.kind === 'data') return new WholeFileStream(Buffer.from(small.data.buffer, small.data.byteOffset, small.length));
      if (small.kind === 'large' || small.kind === 'busy') return await this.#openRead(segments, path, start);
      throw readRefusal(small, path, start);
    } catch (err) {
      throw fromSystemError(err);
    }
  }

  async #openRead(segments: string[], path: string, start: number): Promise<Readable> {
    const real = await this.#resolve(segments, path);
    // O_NONBLOCK: opening a FIFO must not park a threadpool thread; it is refused just below.
    const handle = await fsp.open(real, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
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
      const { entry } = await this.#locate(segments, path);

      if (options.exclusive) {
        if (await lstatOrNull(entry)) throw new FerryError(ErrorCodes.EXISTS, `exists: ${path}`);
        return await this.#uploadViaTemp(entry, null, 'link');
      }

      // Follow a symlink (to a target inside the root); refuse dangling ones.
      let target = entry;
      let st = await lstatOrNull(entry);
      if (st?.isSymbolicLink()) {
        const realRoot = await this.#realRoot();
        try {
          target = await fsp.realpath(entry);
        } catch (err) {
          if (errno(err) === 'ENOENT') throw denied(`write through a dangling symlink: ${path}`);
          throw err;
        }
        this.#assertInside(target, realRoot, path);
        st = await lstatOrNull(target);
      }
      if (st?.isDirectory()) throw new FerryError(ErrorCodes.IS_A_DIRECTORY, `write to a directory: ${path}`);
      if (st && !st.isFile()) throw denied(`write to a special file: ${path}`);

      if (options.append) return await this.#append(target, st !== null);
      if (start > 0) {
        if (!st) throw new FerryError(ErrorCodes.NOT_FOUND, `resume of a missing file: ${path}`);
        return await this.#resume(target, start, path);
      }
      return await this.#uploadViaTemp(target, st, 'rename');
    } catch (err) {
      throw fromSystemError(err);
    }
  }

  /** Full upload into a hidden temp file next to `target`, committed by rename (replace) or link (exclusive). */
  async #uploadViaTemp(target: string, previous: Stats | null, commitBy: 'rename' | 'link'): Promise<FileUpload> {
    const dir = dirname(target);
    // Orphans a dead process left here go in the background (temp-files.ts).
    sweepDirectoryOnce(dir, this.#logger);
    const temp = join(dir, await tempFileName());
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
        if (durable) await syncDirectory(dir);
      },
      abort: () => discardTempFile(temp),
    });
  }

  async #resume(target: string, start: number, vpath: string): Promise<FileUpload> {
    const handle = await fsp.open(target, O_WRONLY | O_NOFOLLOW);
    try {
      const st = await handle.stat();
      if (start > st.size) {
        throw new FerryError(ErrorCodes.INVALID_OFFSET, `offset ${start} beyond size ${st.size}: ${vpath}`);
      }
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw err;
    }
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

  async #append(target: string, exists: boolean): Promise<FileUpload> {
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
    const durable = this.#durable;
    return new FileUpload({
      handle,
      position: null,
      truncateAtEnd: false,
      durable,
      commit: async () => {
        if (created && durable) await syncDirectory(dirname(target));
      },
      // An aborted append keeps its data in an existing file; a file it created disappears.
      abort: async () => {
        if (created) await unlinkQuietly(target);
      },
    });
  }

  async mkdir(path: string): Promise<void> {
    try {
      const segments = parsePath(path);
      if (segments.length === 0) throw new FerryError(ErrorCodes.EXISTS, 'mkdir of the root');
      const { entry } = await this.#locate(segments, path);
      await fsp.mkdir(entry);
    } catch (err) {
      throw fromSystemError(err);
    }
  }

  async rmdir(path: string): Promise<void> {
    try {
      const segments = parsePath(path);
      if (segments.length === 0) throw denied('rmdir of the root');
      const { entry } = await this.#locate(segments, path);
      await fsp.rmdir(entry);
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
      const { entry } = await this.#locate(segments, path);
      // lstat: a symlink (even to a directory) is removed itself, never followed.
      const st = await fsp.lstat(entry);
      if (st.isDirectory()) throw new FerryError(ErrorCodes.IS_A_DIRECTORY, `delete of a directory: ${path}`);
      await fsp.unlink(entry);
    } catch (err) {
      throw fromSystemError(err);
    }
  }

  async rename(from: string, to: string): Promise<void> {
    try {
      const fromSegments = parsePath(from);
      const toSegments = parsePath(to);
      if (fromSegments.length === 0 || toSegments.length === 0) throw denied('rename of or onto the root');
      const source = await this.#locate(fromSegments, from);
      const target = await this.#locate(toSegments, to);
      // A directory into its own subtree fails with EINVAL → INVALID_NAME.
      await fsp.rename(source.entry, target.entry);
    } catch (err) {
      throw fromSystemError(err);
    }
  }

  async setModifiedTime(path: string, mtime: Date): Promise<void> {
    try {
      const real = await this.#resolve(parsePath(path), path);
      const st = await fsp.stat(real);
      await fsp.utimes(real, st.atime, mtime);
    } catch (err) {
      throw fromSystemError(err);
    }
  }

  async chmod(path: string, mode: number): Promise<void> {
    try {
      const real = await this.#resolve(parsePath(path), path);
      await fsp.chmod(real, mode & 0o777);
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
