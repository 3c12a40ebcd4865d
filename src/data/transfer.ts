/**
 * The transfer pipeline: storage stream <-> data socket, with TYPE A line
 * ending conversion when asked. `stream.pipeline` carries backpressure both
 * ways and destroys every stage on error or abort, which is what makes an
 * aborted upload abort the storage write (see StorageWritable). Byte counts
 * come from the socket itself (bytesRead/bytesWritten): no counting stage.
 */
import { Transform, type Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Socket } from 'node:net';
import { CrlfToLf, LfToCrlf } from '../protocol/ascii.js';

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
}

/** RETR, LIST, NLST, MLSD: storage (or listing) -> socket. Resolves when the socket has flushed. */
export async function sendToSocket(source: Readable, socket: Socket, options: TransferOptions): Promise<void> {
  if (options.ascii) await pipeline(source, toNetworkAscii(), socket, { signal: options.signal });
  else await pipeline(source, socket, { signal: options.signal });
}

/** STOR, APPE, STOU: socket -> storage. Resolves when the storage has committed. */
export async function receiveFromSocket(socket: Socket, sink: Writable, options: TransferOptions): Promise<void> {
  if (options.ascii) await pipeline(socket, fromNetworkAscii(), sink, { signal: options.signal });
  else await pipeline(socket, sink, { signal: options.signal });
}
