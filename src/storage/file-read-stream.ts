/**
 * A local file opened for RETR: a Readable for generic consumers and a
 * ChunkSource for the transfer pipeline, which fills its own recycled
 * buffers through readInto() (see data/transfer.ts).
 *
 * The byte range is fixed at open (start to the size seen then), so small
 * files cost one exact-size read and a file growing meanwhile is served as
 * a snapshot; one that shrinks below it fails the read (FILE_CHANGED → 451).
 * The handle is closed on end, error or destroy.
 */
import type { FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { ErrorCodes, FerryError } from '../errors.js';
import type { ChunkSource } from './types.js';

/** Chunk size of the stream interface (the transfer pipeline chooses its own). */
const STREAM_CHUNK_BYTES = 256 * 1024;

export class FileReadStream extends Readable implements ChunkSource {
  readonly #handle: FileHandle;
  #position: number;
  readonly #end: number;

  /** Serves bytes [start, end) of the open file. */
  constructor(handle: FileHandle, start: number, end: number) {
    super({ highWaterMark: STREAM_CHUNK_BYTES });
    this.#handle = handle;
    this.#position = start;
    this.#end = end;
  }

  get remaining(): number {
    return Math.max(0, this.#end - this.#position);
  }

  async readInto(buffer: Buffer): Promise<number> {
    const want = Math.min(buffer.length, this.remaining);
    if (want <= 0) return 0;
    const { bytesRead } = await this.#handle.read(buffer, 0, want, this.#position);
    // Truncated meanwhile: the bytes announced (SIZE, the range fixed at open)
    // will not come. Ending early would pass a short file off as complete (226).
    if (bytesRead === 0) throw new FerryError(ErrorCodes.FILE_CHANGED, `file shrank below ${this.#position} of ${this.#end} bytes during the transfer`);
    this.#position += bytesRead;
    return bytesRead;
  }

  override _read(): void {
    const buffer = Buffer.allocUnsafe(Math.min(STREAM_CHUNK_BYTES, this.remaining));
    if (buffer.length === 0) {
      this.push(null);
      return;
    }
    this.readInto(buffer).then(
      (n) => this.push(n === 0 ? null : n === buffer.length ? buffer : buffer.subarray(0, n)),
      (err: Error) => this.destroy(err),
    );
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.#handle.close().then(
      () => callback(err),
      (closeErr: Error) => callback(err ?? closeErr),
    );
  }
}

/** A small file already read whole (see readSmallFile): the same two faces over one buffer. */
export class WholeFileStream extends Readable implements ChunkSource {
  #data: Buffer;

  constructor(data: Buffer) {
    super();
    this.#data = data;
  }

  get remaining(): number {
    return this.#data.length;
  }

  async readInto(buffer: Buffer): Promise<number> {
    const n = this.#data.copy(buffer, 0, 0, Math.min(buffer.length, this.#data.length));
    this.#data = this.#data.subarray(n);
    return n;
  }

  override _read(): void {
    const data = this.#data;
    this.#data = data.subarray(data.length);
    if (data.length > 0) this.push(data);
    this.push(null);
  }
}
