/**
 * MemoryStorage: the Storage contract over an in-memory tree.
 *
 * One instance is one filesystem: share it between sessions to let them see
 * each other's files. Meant for tests and embedding; semantics follow
 * LocalStorage:
 *   - full upload (no offset, not append): bytes collect in the writable and
 *     replace the file only on 'finish' (a new node under the name); an
 *     aborted upload leaves the old content and creates nothing;
 *   - exclusive: EXISTS when write() is called if the name is taken, and again
 *     at commit if another upload took it meanwhile;
 *   - start > 0: the file is overwritten in place from the offset and cut
 *     where the new data ends only when the write commits; an abort keeps
 *     what was written (resumable) and never shortens the file;
 *   - append: appends in place; a file created by the append is removed on
 *     abort, an existing one keeps what was appended.
 *
 * Stored Buffers are never mutated once stored: content changes swap or extend
 * a node's chunk list, and read() works on a copy of that list (references, not
 * bytes), so a reader sees a consistent snapshot. Incoming chunks are copied,
 * since the caller may reuse its buffers once a write completes.
 *
 * No limits of its own: quotas and file-size caps are the policy layer's
 * (src/limits/), around any backend.
 */
import { Readable, Writable } from 'node:stream';
import { ErrorCodes, FerryError } from '../errors.js';
import type {
  FileInfo,
  ReadOptions,
  Storage,
  StorageCapabilities,
  StorageWritable,
  WriteOptions,
} from './types.js';
import { checkOffset, checkWrite, parsePath } from './paths.js';

interface FileNode {
  kind: 'file';
  chunks: Buffer[];
  size: number;
  mtime: Date;
  mode: number;
  id: string;
}

interface DirNode {
  kind: 'dir';
  children: Map<string, Node>;
  mtime: Date;
  mode: number;
  id: string;
}

type Node = FileNode | DirNode;

/** Stream buffer size for reads and for uploads before backpressure (as LocalStorage). */
const STREAM_BUFFER_BYTES = 256 * 1024;
/** Full uploads up to this size are stored as one Buffer rather than many small ones. */
const COALESCE_BYTES = 1024 * 1024;

function copyOf(chunk: Buffer): Buffer {
  const copy = Buffer.allocUnsafeSlow(chunk.length);
  chunk.copy(copy);
  return copy;
}

function concatExact(chunks: Buffer[], size: number): Buffer {
  const out = Buffer.allocUnsafeSlow(size);
  let offset = 0;
  for (const chunk of chunks) offset += chunk.copy(out, offset);
  return out;
}

/** Keep the first `size` bytes of a chunk list (new list; Buffers shared via subarray). */
function truncateChunks(chunks: Buffer[], size: number): Buffer[] {
  const out: Buffer[] = [];
  let remaining = size;
  for (const chunk of chunks) {
    if (remaining === 0) break;
    const piece = chunk.length <= remaining ? chunk : chunk.subarray(0, remaining);
    out.push(piece);
    remaining -= piece.length;
  }
  return out;
}

/** Drop the first `size` bytes of a chunk list (new list; Buffers shared via subarray). */
function dropChunks(chunks: Buffer[], size: number): Buffer[] {
  let index = 0;
  let skip = size;
  while (index < chunks.length && skip >= chunks[index]!.length) {
    skip -= chunks[index]!.length;
    index += 1;
  }
  const out = chunks.slice(index);
  if (skip > 0 && out.length > 0) out[0] = out[0]!.subarray(skip);
  return out;
}

function chunkReader(chunks: readonly Buffer[], start: number): Readable {
  let index = 0;
  let skip = start;
  while (index < chunks.length && skip >= chunks[index]!.length) {
    skip -= chunks[index]!.length;
    index += 1;
  }
  return new Readable({
    highWaterMark: STREAM_BUFFER_BYTES,
    read() {
      while (index < chunks.length) {
        let chunk = chunks[index]!;
        index += 1;
        if (skip > 0) {
          chunk = chunk.subarray(skip);
          skip = 0;
        }
        if (chunk.length > 0 && !this.push(chunk)) return;
      }
      this.push(null);
    },
  });
}

interface Sink {
  write(chunk: Buffer): void;
  commit(): void;
  abort(): void;
}

/** Synchronous sink behind a Writable: 'finish' after commit, destroy-before-finish aborts. */
class MemoryUpload extends Writable {
  readonly #sink: Sink;
  #committed = false;

  constructor(sink: Sink) {
    super({ highWaterMark: STREAM_BUFFER_BYTES });
    this.#sink = sink;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    try {
      if (chunk.length > 0) this.#sink.write(chunk);
      callback();
    } catch (err) {
      callback(err as Error);
    }
  }

  override _final(callback: (error?: Error | null) => void): void {
    try {
      this.#sink.commit();
      this.#committed = true;
      callback();
    } catch (err) {
      callback(err as Error);
    }
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.#committed) {
      try {
        this.#sink.abort();
      } catch {
        // nothing to undo beyond what abort managed
      }
    }
    callback(error);
  }
}

/** Entries per listing page. */
const LIST_PAGE = 1000;

export class MemoryStorage implements Storage {
  readonly kind = 'memory';
  readonly capabilities: StorageCapabilities = Object.freeze({
    randomWrite: true,
    append: true,
    atomicRename: true,
    directories: true,
  });

  readonly #root: DirNode;
  #nextId = 1;

  constructor() {
    this.#root = this.#newDir();
  }

  #newId(): string {
    const id = `m${this.#nextId.toString(16)}`;
    this.#nextId += 1;
    return id;
  }

  #newDir(): DirNode {
    return { kind: 'dir', children: new Map(), mtime: new Date(), mode: 0o755, id: this.#newId() };
  }

  #newFile(chunks: Buffer[], size: number, mode: number): FileNode {
    return { kind: 'file', chunks, size, mtime: new Date(), mode, id: this.#newId() };
  }

  #lookup(segments: string[], path: string): Node {
    let node: Node = this.#root;
    for (const segment of segments) {
      if (node.kind !== 'dir') throw new FerryError(ErrorCodes.NOT_A_DIRECTORY, `not a directory on the way to ${path}`);
      const child = node.children.get(segment);
      if (!child) throw new FerryError(ErrorCodes.NOT_FOUND, `not found: ${path}`);
      node = child;
    }
    return node;
  }

  #parentOf(segments: string[], path: string): { parent: DirNode; name: string } {
    const name = segments[segments.length - 1];
    if (name === undefined) throw new FerryError(ErrorCodes.ACCESS_DENIED, 'the root has no parent');
    const parent = this.#lookup(segments.slice(0, -1), path);
    if (parent.kind !== 'dir') throw new FerryError(ErrorCodes.NOT_A_DIRECTORY, `parent is a file: ${path}`);
    return { parent, name };
  }

  #info(name: string, node: Node): FileInfo {
    return {
      name,
      type: node.kind,
      size: node.kind === 'file' ? node.size : 0,
      mtime: new Date(node.mtime.getTime()), // a copy: callers must not reach into the tree
      mode: node.mode,
      id: node.id,
    };
  }

  async stat(path: string): Promise<FileInfo> {
    const segments = parsePath(path);
    return this.#info(segments[segments.length - 1] ?? '/', this.#lookup(segments, path));
  }

  async *list(path: string): AsyncGenerator<FileInfo[]> {
    const node = this.#lookup(parsePath(path), path);
    if (node.kind !== 'dir') throw new FerryError(ErrorCodes.NOT_A_DIRECTORY, `list of a file: ${path}`);
    // Map iteration tolerates changes meanwhile: removed entries are skipped.
    let page: FileInfo[] = [];
    for (const [name, child] of node.children) {
      page.push(this.#info(name, child));
      if (page.length === LIST_PAGE) {
        yield page;
        page = [];
      }
    }
    if (page.length > 0) yield page;
  }

  async read(path: string, options: ReadOptions = {}): Promise<Readable> {
    const start = checkOffset(options.start);
    const node = this.#lookup(parsePath(path), path);
    if (node.kind === 'dir') throw new FerryError(ErrorCodes.IS_A_DIRECTORY, `read of a directory: ${path}`);
    if (start > node.size) {
      throw new FerryError(ErrorCodes.INVALID_OFFSET, `offset ${start} beyond size ${node.size}: ${path}`);
    }
    return chunkReader(node.chunks.slice(), start);
  }

  async write(path: string, options: WriteOptions = {}): Promise<StorageWritable> {
    const segments = parsePath(path);
    const start = checkWrite(segments, options);
    const { parent, name } = this.#parentOf(segments, path);
    const existing = parent.children.get(name);
    if (options.exclusive && existing) throw new FerryError(ErrorCodes.EXISTS, `exists: ${path}`);
    if (existing?.kind === 'dir') throw new FerryError(ErrorCodes.IS_A_DIRECTORY, `write to a directory: ${path}`);

    if (options.append) return this.#append(parent, name, existing);
    if (start > 0) {
      if (!existing) throw new FerryError(ErrorCodes.NOT_FOUND, `resume of a missing file: ${path}`);
      return this.#resume(existing, start, path);
    }
    return this.#fullUpload(segments, path, options.exclusive === true);
  }

  #fullUpload(segments: string[], path: string, exclusive: boolean): MemoryUpload {
    const chunks: Buffer[] = [];
    let size = 0;
    return new MemoryUpload({
      write: (chunk) => {
        chunks.push(copyOf(chunk));
        size += chunk.length;
      },
      commit: () => {
        // Resolve again: the tree may have changed during the upload.
        const { parent, name } = this.#parentOf(segments, path);
        const previous = parent.children.get(name);
        if (previous && exclusive) throw new FerryError(ErrorCodes.EXISTS, `exists: ${path}`);
        if (previous?.kind === 'dir') throw new FerryError(ErrorCodes.IS_A_DIRECTORY, `write to a directory: ${path}`);
        const stored = chunks.length > 1 && size <= COALESCE_BYTES ? [concatExact(chunks, size)] : chunks;
        const node = this.#newFile(stored, size, previous?.mode ?? 0o644);
        parent.children.set(name, node);
        parent.mtime = new Date();
      },
      abort: () => undefined, // the collected chunks are simply dropped
    });
  }

  #resume(node: FileNode, start: number, path: string): MemoryUpload {
    if (start > node.size) {
      throw new FerryError(ErrorCodes.INVALID_OFFSET, `offset ${start} beyond size ${node.size}: ${path}`);
    }
    // REST + STOR: overwrite in place from `start`; nothing is cut until the commit.
    let position = start;
    return new MemoryUpload({
      write: (chunk) => {
        this.#writeAt(node, position, chunk);
        position += chunk.length;
      },
      // The file ends where the new data ends, once the write commits.
      commit: () => {
        if (node.size > position) {
          node.chunks = truncateChunks(node.chunks, position);
          node.size = position;
          node.mtime = new Date();
        }
      },
      // Keep what was written and cut nothing: the client can resume again.
      abort: () => undefined,
    });
  }

  /** Write `chunk` at `position`, overwriting and, past the end, extending (as pwrite). */
  #writeAt(node: FileNode, position: number, chunk: Buffer): void {
    if (position === node.size) {
      this.#writeInPlace(node, chunk);
      return;
    }
    // Past the end (the file shrank meanwhile): the gap reads as zeros, as on disk.
    const gap = Math.max(0, position - node.size);
    const end = position + chunk.length;
    const growth = Math.max(0, end - node.size);
    // A new list, so stored Buffers stay untouched and readers' snapshots stay valid.
    const pieces = truncateChunks(node.chunks, position);
    if (gap > 0) pieces.push(Buffer.alloc(gap));
    pieces.push(copyOf(chunk));
    for (const rest of dropChunks(node.chunks, end)) pieces.push(rest);
    node.chunks = pieces;
    node.size += growth;
    node.mtime = new Date();
  }

  #append(parent: DirNode, name: string, existing: FileNode | undefined): MemoryUpload {
    let node = existing;
    let created = false;
    if (!node) {
      node = this.#newFile([], 0, 0o644);
      parent.children.set(name, node);
      parent.mtime = new Date();
      created = true;
    }
    const target = node;
    return new MemoryUpload({
      write: (chunk) => this.#writeInPlace(target, chunk),
      commit: () => undefined,
      // An aborted append keeps its data in an existing file; a file it created disappears.
      abort: () => {
        if (created && parent.children.get(name) === target) {
          parent.children.delete(name);
          parent.mtime = new Date();
        }
      },
    });
  }

  #writeInPlace(node: FileNode, chunk: Buffer): void {
    // Push onto the live list: readers hold their own copy of the list.
    node.chunks.push(copyOf(chunk));
    node.size += chunk.length;
    node.mtime = new Date();
  }

  async mkdir(path: string): Promise<void> {
    const segments = parsePath(path);
    if (segments.length === 0) throw new FerryError(ErrorCodes.EXISTS, 'mkdir of the root');
    const { parent, name } = this.#parentOf(segments, path);
    if (parent.children.has(name)) throw new FerryError(ErrorCodes.EXISTS, `exists: ${path}`);
    parent.children.set(name, this.#newDir());
    parent.mtime = new Date();
  }

  async rmdir(path: string): Promise<void> {
    const segments = parsePath(path);
    if (segments.length === 0) throw new FerryError(ErrorCodes.ACCESS_DENIED, 'rmdir of the root');
    const { parent, name } = this.#parentOf(segments, path);
    const node = parent.children.get(name);
    if (!node) throw new FerryError(ErrorCodes.NOT_FOUND, `not found: ${path}`);
    if (node.kind !== 'dir') throw new FerryError(ErrorCodes.NOT_A_DIRECTORY, `rmdir of a file: ${path}`);
    if (node.children.size > 0) throw new FerryError(ErrorCodes.NOT_EMPTY, `not empty: ${path}`);
    parent.children.delete(name);
    parent.mtime = new Date();
  }

  async delete(path: string): Promise<void> {
    const segments = parsePath(path);
    if (segments.length === 0) throw new FerryError(ErrorCodes.IS_A_DIRECTORY, 'delete of the root');
    const { parent, name } = this.#parentOf(segments, path);
    const node = parent.children.get(name);
    if (!node) throw new FerryError(ErrorCodes.NOT_FOUND, `not found: ${path}`);
    if (node.kind === 'dir') throw new FerryError(ErrorCodes.IS_A_DIRECTORY, `delete of a directory: ${path}`);
    parent.children.delete(name);
    parent.mtime = new Date();
  }

  async rename(from: string, to: string): Promise<void> {
    const fromSegments = parsePath(from);
    const toSegments = parsePath(to);
    if (fromSegments.length === 0 || toSegments.length === 0) {
      throw new FerryError(ErrorCodes.ACCESS_DENIED, 'rename of or onto the root');
    }
    const source = this.#parentOf(fromSegments, from);
    const node = source.parent.children.get(source.name);
    if (!node) throw new FerryError(ErrorCodes.NOT_FOUND, `not found: ${from}`);
    const target = this.#parentOf(toSegments, to);
    const existing = target.parent.children.get(target.name);
    if (existing === node) return; // same entry: POSIX makes this a no-op
    if (
      node.kind === 'dir' &&
      toSegments.length > fromSegments.length &&
      fromSegments.every((segment, i) => toSegments[i] === segment)
    ) {
      // As rename(2)'s EINVAL: a directory cannot move into itself.
      throw new FerryError(ErrorCodes.INVALID_NAME, `rename of ${from} into its own subtree ${to}`);
    }
    if (existing) {
      if (node.kind === 'file' && existing.kind === 'dir') {
        throw new FerryError(ErrorCodes.IS_A_DIRECTORY, `rename of a file onto a directory: ${to}`);
      }
      if (node.kind === 'dir' && existing.kind === 'file') {
        throw new FerryError(ErrorCodes.NOT_A_DIRECTORY, `rename of a directory onto a file: ${to}`);
      }
      if (existing.kind === 'dir' && existing.children.size > 0) {
        throw new FerryError(ErrorCodes.NOT_EMPTY, `rename onto a non-empty directory: ${to}`);
      }
    }
    source.parent.children.delete(source.name);
    target.parent.children.set(target.name, node);
    const now = new Date();
    source.parent.mtime = now;
    target.parent.mtime = now;
  }

  async setModifiedTime(path: string, mtime: Date): Promise<void> {
    this.#lookup(parsePath(path), path).mtime = new Date(mtime.getTime());
  }

  async chmod(path: string, mode: number): Promise<void> {
    this.#lookup(parsePath(path), path).mode = mode & 0o777;
  }
}
