/**
 * The transfer pipeline: storage stream <-> data socket, with TYPE A line
 * ending conversion when asked. `stream.pipeline` carries backpressure both
 * ways and destroys every stage on error or abort, which is what makes an
 * aborted upload abort the storage write (see StorageWritable). Byte counts
 * come from the socket itself (bytesRead/bytesWritten): no counting stage.
 *
 * Binary downloads from a ChunkSource (a local file) skip the stream
 * machinery: two buffers take turns, one being filled by the disk while the
 * other is on its way to the socket, so a download allocates two buffers
 * however big the file. (Streams allocate a buffer per chunk; at disk speed
 * that churn of external memory costs V8 full garbage collections and the
 * kernel fresh zeroed pages, together about half the CPU of a download.)
 *
 * Bandwidth limits (a `Throttle`): only when one applies. The pump then
 * waits for bytes before each write and writes at most what it got (a
 * 512 KiB chunk at 1 KB/s goes out 100 bytes at a time); stream pipelines
 * get one generator stage that does the same (downloads: before the socket,
 * counting the bytes on the wire; uploads: after it, so the socket is read
 * only as fast as the rate, and the client waits in TCP's flow control).
 * Pausing the socket instead would not hold: `pipe` resumes its source on
 * every 'drain' of the destination. Without a throttle nothing is added,
 * not even a per-chunk check.
 */
import { Readable, Transform, type Writable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import type { Socket } from 'node:net';
import { CrlfToLf, LfToCrlf } from '../protocol/ascii.js';
import { ErrorCodes, FerryError } from '../errors.js';
import { createDigest, type Digest } from '../storage/digest.js';
import { isChunkSource, type ChunkSource } from '../storage/types.js';
import type { Throttle } from '../limits/throttle.js';

/** Read size of the two-buffer pump: fewer read(2)/write(2) calls and thread-pool trips per MiB. */
export const PUMP_CHUNK_BYTES = 512 * 1024;

function toNetworkAscii(): Transform {
  const converter = new LfToCrlf();
  return new Transform({
    transform(chunk: Buffer, _enc, callback) {
      callback(null, converter.convert(chunk));
    },
  });
}

function fromNetworkAscii(): Transform {
  const converter = new CrlfToLf();
  return new Transform({
    transform(chunk: Buffer, _enc, callback) {
      callback(null, converter.convert(chunk));
    },
    flush(callback) {
      const rest = converter.flush();
      callback(null, rest.length ? rest : undefined);
    },
  });
}

export interface TransferOptions {
  ascii: boolean;
  signal: AbortSignal;
  /** The bandwidth limits this transfer obeys; null or absent: none. */
  throttle?: Throttle | null;
}

/** RETR, LIST, NLST, MLSD: storage (or listing) -> socket. Resolves when the socket has flushed. */
export async function sendToSocket(source: Readable, socket: Socket, options: TransferOptions): Promise<void> {
  const { signal, throttle } = options;
  if (!options.ascii && isChunkSource(source)) await pump(source, socket, signal, throttle ?? null);
  else if (throttle) {
    const paced = paceOut(throttle, socket, signal);
    if (options.ascii) await pipeline(source, toNetworkAscii(), paced, socket, { signal });
    else await pipeline(source, paced, socket, { signal });
  } else if (options.ascii) await pipeline(source, toNetworkAscii(), socket, { signal });
  else await pipeline(source, socket, { signal });
}

/** What an upload stored: the bytes handed to the storage (after TYPE A conversion) and their SHA-256. */
export interface UploadDigest {
  /** Hex SHA-256 of the bytes stored by this upload (for APPE or REST+STOR: of this upload's bytes only). */
  sha256: string;
  /** Bytes stored by this upload. */
  size: number;
}

export interface ReceiveOptions extends TransferOptions {
  /**
   * Hash the bytes as they stream to the storage (SHA-256, chunk by chunk,
   * no copy): beforeCommit then gets the digest. Off: it gets null.
   */
  digest?: boolean;
  /**
   * Runs once the data connection has ended cleanly and every byte has been
   * handed to the sink, before the sink is ended (ending it commits). Throw
   * to abort instead: the sink is then destroyed by the caller, never ended.
   */
  beforeCommit(digest: UploadDigest | null): Promise<void>;
}

/**
 * STOR, APPE, STOU: socket -> storage. Resolves when the storage has
 * committed. The sink is not ended when the data connection ends: that end
 * only says the client stopped sending, and whether it is the end of the
 * file is decided by `beforeCommit` (the upload rule).
 *
 * Piped by hand rather than with stream.pipeline, which destroys the socket
 * the moment the sink fails: a socket closed with unread data sends a
 * reset, which reaches the client before the storage's reply (552 over a
 * quota or the maximum file size), and curl, lftp and basic-ftp then report
 * a reset (lftp retries) instead of the 552. On any failure this stops
 * reading and rejects; the caller replies, then destroys the socket, and
 * destroys the sink (the abort).
 */
export function receiveFromSocket(socket: Socket, sink: Writable, options: ReceiveOptions): Promise<void> {
  const { signal, throttle } = options;
  // The stages before the sink: the socket, the throttle's pacing, the TYPE A conversion.
  // The pacing stage reads the socket through an iterator that leaves it
  // open when the stage is destroyed, so a refused upload's socket can
  // still be drained (see stop) rather than reset.
  const stages: Readable[] = [socket];
  if (throttle) stages.push(Readable.from(paceIn(throttle, socket, signal)(socket.iterator({ destroyOnReturn: false })), { objectMode: false }));
  if (options.ascii) stages.push(stages[stages.length - 1]!.pipe(fromNetworkAscii()));
  const source = stages[stages.length - 1]!;
  // The digest sees exactly what the sink is given: the chunks pipe() writes,
  // from the same 'data' events, before any stage could reuse them.
  const hash: Digest | null = options.digest ? createDigest('SHA-256') : null;
  let size = 0;
  const onData = (chunk: Buffer): void => {
    hash!.update(chunk);
    size += chunk.length;
  };
  if (hash) source.on('data', onData);
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const stop = (err: unknown): void => {
      if (settled) return;
      settled = true;
      // Every stage lets go of the socket: piped into the TYPE A converter
      // or iterated by the pacing stage, it could not be drained, and the
      // close that follows would reset the connection before the 552 is read.
      source.unpipe(sink);
      for (let i = stages.length - 1; i > 0; i--) {
        stages[i - 1]!.unpipe(stages[i] as unknown as Writable);
        stages[i]!.destroy();
      }
      socket.pause();
      cleanup();
      reject(err);
    };
    const onAbort = (): void => stop(signal.reason);
    const onSinkError = (err: Error): void => stop(err);
    const onSinkClose = (): void => stop(sink.errored ?? new FerryError(ErrorCodes.ABORTED, 'storage stream closed during the upload'));
    const cleanup = (): void => {
      source.off('data', onData);
      signal.removeEventListener('abort', onAbort);
      sink.off('error', onSinkError);
      sink.off('close', onSinkClose);
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    sink.on('error', onSinkError);
    sink.on('close', onSinkClose);
    // Each stage's failure (the socket's reset or premature close, as pipeline reported them); the last one's end is the data's end.
    const ended = Promise.all(stages.map((stage) => finished(stage, { writable: false })));
    ended.then(
      () => {
        if (settled) return;
        settled = true;
        cleanup();
        resolve();
      },
      stop,
    );
    source.pipe(sink, { end: false });
  }).then(async () => {
    await options.beforeCommit(hash ? { sha256: hash.hex(), size } : null);
    sink.end();
    await finished(sink);
  });
}

async function pump(source: ChunkSource, socket: Socket, signal: AbortSignal, throttle: Throttle | null): Promise<void> {
  const onAbort = (): void => void socket.destroy(signal.reason as Error);
  signal.addEventListener('abort', onAbort, { once: true });
  // Failures reach us through the write callbacks and finished(); the event itself must not go unheard.
  socket.on('error', () => undefined);
  try {
    signal.throwIfAborted();
    const size = Math.min(PUMP_CHUNK_BYTES, source.remaining);
    const buffers: Buffer[] = [];
    const writes: Promise<void>[] = [];
    for (let turn = 0; source.remaining > 0; turn ^= 1) {
      await writes[turn]; // this buffer is free again once the socket has taken it
      const buffer = (buffers[turn] ??= Buffer.allocUnsafeSlow(size));
      const n = await source.readInto(buffer);
      if (n === 0) continue;
      const chunk = n === size ? buffer : buffer.subarray(0, n);
      if (!throttle) writes[turn] = write(socket, chunk);
      else {
        // Throttled writes go one after the other (the other buffer's may still be waiting for bytes).
        const before = writes[turn ^ 1];
        const paced = (async () => {
          await before;
          await writePaced(socket, chunk, throttle, signal);
        })();
        paced.catch(() => undefined); // awaited later, as write()'s are
        writes[turn] = paced;
      }
    }
    await Promise.all(writes);
    socket.end();
    await finished(socket, { readable: false });
  } finally {
    signal.removeEventListener('abort', onAbort);
    source.destroy();
  }
}

function write(socket: Socket, chunk: Buffer): Promise<void> {
  const done = new Promise<void>((resolve, reject) => {
    // socket.errored says why (ECONNRESET, an ABOR); a plain close is a failed data connection (426).
    if (socket.destroyed) reject(socket.errored ?? new FerryError(ErrorCodes.DATA_CONNECTION, 'data connection closed'));
    else socket.write(chunk, (err) => (err ? reject(err) : resolve()));
  });
  done.catch(() => undefined); // awaited later; a failure meanwhile must not count as unhandled
  return done;
}

/** Write `chunk` as the throttle allows: each piece only once its bytes are granted. */
async function writePaced(socket: Socket, chunk: Buffer, throttle: Throttle, signal: AbortSignal): Promise<void> {
  for (let offset = 0; offset < chunk.length; ) {
    const n = await grant(throttle, chunk.length - offset, socket, signal);
    await write(socket, chunk.subarray(offset, (offset += n)));
  }
}

/** The stage before the socket of a throttled download pipeline: pieces of at most what was granted. */
function paceOut(throttle: Throttle, socket: Socket, signal: AbortSignal) {
  return async function* (source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    for await (const chunk of source) {
      for (let offset = 0; offset < chunk.length; ) {
        const n = await grant(throttle, chunk.length - offset, socket, signal);
        yield chunk.subarray(offset, (offset += n));
      }
    }
  };
}

/**
 * The stage after the socket of a throttled upload pipeline: each chunk is
 * passed on once its bytes are paid for, and the socket is read only as the
 * stage asks for more (a chunk is read before it is paid for: the rate
 * holds on average, over more than one chunk's worth of time).
 */
function paceIn(throttle: Throttle, socket: Socket, signal: AbortSignal) {
  return async function* (source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    for await (const chunk of source) {
      for (let paid = 0; paid < chunk.length; ) paid += await grant(throttle, chunk.length - paid, socket, signal);
      yield chunk;
    }
  };
}

/**
 * Up to `max` bytes from the throttle, waiting for them if need be. While
 * it waits, the data connection's idle timeout is off: the wait is ours, not
 * the client's, and a low rate must never look like a stalled client.
 */
async function grant(throttle: Throttle, max: number, socket: Socket, signal: AbortSignal): Promise<number> {
  let n = throttle.take(max);
  if (n > 0) return n;
  const idleMs = socket.timeout ?? 0;
  if (idleMs > 0) socket.setTimeout(0);
  try {
    while ((n = throttle.take(max)) === 0) await throttle.wait(signal);
  } finally {
    if (idleMs > 0 && !socket.destroyed) socket.setTimeout(idleMs);
  }
  return n;
}
