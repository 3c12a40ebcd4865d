/**
 * Counts an upload's bytes as its storage stream takes them, without a
 * stream stage of its own: the stream's `_write`, `_writev` and `_final` are
 * wrapped in place, so the data goes straight to the backend as before and
 * the StorageWritable contract (`committed`, destroy aborts, 'finish' means
 * committed) is the backend's own, untouched.
 *
 * A chunk that would pass a limit fails its write callback with the limit's
 * error: Node then destroys the stream with it, which is the backend's
 * abort (the partial upload is discarded, an old file stays), and the
 * transfer pipeline ends with that error, so the client gets its 552 at
 * once. Checks that need an answer from elsewhere (a quota reservation in
 * the cluster primary) do not hold the data back: the answer destroys the
 * stream when it is a refusal, and the commit (`_final`) waits for every
 * answer, so an upload over the line never commits.
 */
import type { StorageWritable } from '../storage/types.js';

export interface MeterHooks {
  /** `bytes` more arrive; return an error to refuse them (the upload is aborted with it), or a promise of that answer to hold them until then. */
  take(bytes: number): Error | null | Promise<Error | null>;
  /** Runs before the backend commits; reject to abort instead. */
  beforeCommit(): Promise<void>;
}

type Callback = (error?: Error | null) => void;
type WriteFn = (chunk: Buffer | string, encoding: BufferEncoding, callback: Callback) => void;
type WritevFn = (chunks: Array<{ chunk: Buffer | string; encoding: BufferEncoding }>, callback: Callback) => void;
type FinalFn = (callback: Callback) => void;

/** Private-ish members of Writable we wrap; Node looks them up on the instance at each call. */
interface WritableInternals {
  _write: WriteFn;
  _writev?: WritevFn | null;
  _final?: FinalFn;
}

function byteLength(chunk: Buffer | string, encoding: BufferEncoding): number {
  return typeof chunk === 'string' ? Buffer.byteLength(chunk, encoding) : chunk.length;
}

export function meterUpload(sink: StorageWritable, hooks: MeterHooks): void {
  const target = sink as unknown as WritableInternals;
  const write = target._write;
  const writev = target._writev;
  const final = target._final;
  target._write = function (chunk, encoding, callback) {
    const answer = hooks.take(byteLength(chunk, encoding));
    const go = (refused: Error | null): void => (refused ? callback(refused) : write.call(this, chunk, encoding, callback));
    if (answer instanceof Promise) answer.then(go, callback);
    else go(answer);
  };
  if (typeof writev === 'function') {
    target._writev = function (chunks, callback) {
      let bytes = 0;
      for (const { chunk, encoding } of chunks) bytes += byteLength(chunk, encoding);
      const answer = hooks.take(bytes);
      const go = (refused: Error | null): void => (refused ? callback(refused) : writev.call(this, chunks, callback));
      if (answer instanceof Promise) answer.then(go, callback);
      else go(answer);
    };
  }
  target._final = function (callback) {
    hooks.beforeCommit().then(
      () => (final ? final.call(this, callback) : callback()),
      (err: unknown) => callback(err as Error),
    );
  };
}
