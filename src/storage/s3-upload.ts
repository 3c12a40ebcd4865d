/**
 * S3Upload: a Writable that streams an upload into one S3 object.
 *
 * Memory is bounded by (queueSize + 1) × partSizeBytes whatever the file
 * size: bytes are copied into a part buffer; a full part is sent with
 * UploadPart while the next one fills; when `queueSize` parts are in flight,
 * the write callback waits, so backpressure reaches the FTP data socket.
 * Nothing is staged on disk.
 *
 * An upload that fits in one part is sent with one PutObject at the end (no
 * multipart round trips for small files).
 *
 * Commit and abort follow the StorageWritable contract:
 *   - ending the stream completes the multipart upload (or puts the object);
 *     'finish' means the object is visible under its key;
 *   - destroying it before the final request (CompleteMultipartUpload, or
 *     the single PutObject) is sent cancels the requests in flight and
 *     aborts the multipart upload, so S3 deletes the parts: no object
 *     appears under the key (a previous object stays as it was) and no
 *     orphan parts are left. Every step of the commit checks for a destroy
 *     first (beforeCommit, the last part, the final request). If the abort
 *     itself fails (endpoint down), it is tried again in the background for
 *     ABORT_RETRY_WINDOW_MS; after that the parts stay until the bucket's
 *     AbortIncompleteMultipartUpload lifecycle rule removes them. Both are
 *     logged with the upload id;
 *   - destroying it once the final request is sent cannot take it back: S3
 *     alone decides. The destroy then waits for the answer, and `committed`
 *     says what happened, so the session can still reply 226 for an object
 *     that exists (ABOR or a disconnect racing the last byte).
 *
 * The upload's SHA-256 (setSha256, when the server hashes uploads) is
 * stored with the object, as lowercase hex (docs/s3.md):
 *   - a one-part upload: the user metadata `ferry-sha256` of its PutObject
 *     (x-amz-meta-ferry-sha256), so object and digest appear together, and
 *     no permission beyond PutObject is needed (a Tagging header would
 *     need s3:PutObjectTagging, and its refusal would fail the upload);
 *   - a multipart upload, whose digest is known only after the last part
 *     and whose metadata was fixed at CreateMultipartUpload: the object
 *     tags `ferry-sha256` and `ferry-sha256-etag` (the ETag, without
 *     quotes, of the object the digest belongs to), by PutObjectTagging
 *     right after CompleteMultipartUpload. Another upload of the same key
 *     may land between the two: a reader trusts the tag only when the ETag
 *     tag equals the object's ETag. A failed PutObjectTagging is logged and
 *     the upload still counts (the object is there, without a digest).
 *
 * We do not use @aws-sdk/lib-storage's Upload: it reads from a Readable we
 * would have to feed through a PassThrough (one more buffer stage) and it
 * gives no way to wait for a part slot from a write callback.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import type { CompletedPart, S3Client } from '@aws-sdk/client-s3';
import { ErrorCodes, FerryError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { MAX_PARTS, type S3Sdk } from './s3-client.js';
import { fromS3Error, isPreconditionFailed, s3Call } from './s3-errors.js';

/** Metadata key (x-amz-meta-ferry-upload) of an exclusive upload's token. */
const MARKER = 'ferry-upload';
/** The upload's SHA-256 (hex): a metadata key (one-part uploads) and a tag (multipart), with the tag of the ETag it belongs to. */
export const SHA256_TAG = 'ferry-sha256';
export const SHA256_ETAG_TAG = 'ferry-sha256-etag';
/** Bytes the Writable itself buffers before backpressure (as LocalStorage). */
const STREAM_BUFFER_BYTES = 256 * 1024;
/** AbortMultipartUpload runs after the client is gone: each attempt gets its own deadline, whatever the client's timeouts. */
const ABORT_TIMEOUT_MS = 30_000;
/** A failed abort (endpoint down) is tried again for this long, so the parts go once the endpoint is back. */
const ABORT_RETRY_WINDOW_MS = 5 * 60_000;
/** An abort waits at most this long for cancelled part requests to settle before it goes ahead. */
const PARTS_SETTLE_MS = 10_000;
/** The destroy, and so the client's reply, waits at most this long for the abort; the rest goes on in the background. */
const ABORT_WAIT_MS = 1_000;

export interface UploadTarget {
  client: S3Client;
  sdk: S3Sdk;
  bucket: string;
  key: string;
  partSizeBytes: number;
  queueSize: number;
  logger?: Logger;
  /** Runs once the data is all in, before the object becomes visible (STOU's "is the name still free?"). */
  beforeCommit?: () => Promise<void>;
  /**
   * The object must not exist yet (STOU): the final request carries
   * `If-None-Match: *`, so S3 itself refuses (412, then EXISTS) a name taken
   * between beforeCommit's check and the commit. Stores that ignore the
   * header on a request (Ceph 16 on CompleteMultipartUpload) leave only
   * beforeCommit's check (docs/s3.md).
   */
  exclusive?: boolean;
  /** Part buffers of all uploads of the process come out of this, if set. */
  budget?: PartBudget;
}

/**
 * Bytes of part buffers all uploads together may hold: the per-process
 * bound (without it, maxConnections × (queueSize + 1) × partSizeBytes).
 * An upload that needs a new part buffer when the budget is spent waits, as
 * for a part slot, so backpressure reaches its data socket; it goes on when
 * another upload ends, or with a buffer of its own that a finished part
 * frees. Every upload can always get one buffer eventually (the budget is at
 * least one part), so uploads slow down but never deadlock.
 */
export class PartBudget {
  #free: number;
  #waiters: Array<() => void> = [];

  constructor(readonly bytes: number) {
    this.#free = bytes;
  }

  get free(): number {
    return this.#free;
  }

  /** Take `bytes` if that much is free. */
  tryTake(bytes: number): boolean {
    if (this.#free < bytes) return false;
    this.#free -= bytes;
    return true;
  }

  give(bytes: number): void {
    this.#free += bytes;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  /** Resolves at the next give(): then try again. */
  returned(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
}

export class S3Upload extends Writable {
  readonly #target: UploadTarget;
  /** Cancels PutObject and UploadPart requests in flight when the upload is destroyed. */
  readonly #controller = new AbortController();
  #part: Buffer | null = null;
  /** Part buffers whose UploadPart has finished, reused so memory does not wait for the GC. */
  readonly #spare: Buffer[] = [];
  /** Part buffers taken from the budget (all of them when there is none), given back once at the end. */
  #allocated = 0;
  #filled = 0;
  #uploadId: Promise<string> | null = null;
  /** The exclusive upload's token (#marker), once made. */
  #token: string | null = null;
  #partNumber = 0;
  readonly #parts: CompletedPart[] = [];
  readonly #inFlight = new Set<Promise<void>>();
  #failure: unknown = null;
  /** Set by destroy(): every later step of the commit stops. */
  #aborted = false;
  /** The final PutObject or CompleteMultipartUpload, once sent: past this point only S3 decides. */
  #final: Promise<unknown> | null = null;
  #committed = false;
  /** The SHA-256 the session gave before the commit (setSha256), stored as a tag. */
  #sha256: string | null = null;

  constructor(target: UploadTarget) {
    super({ highWaterMark: STREAM_BUFFER_BYTES });
    this.#target = target;
  }

  get #key(): string {
    return this.#target.key;
  }

  /**
   * True once the object is visible under its key. Also true after a
   * destroy that came too late to stop the final request (see above):
   * read it after 'close' to know whether an interrupted upload committed.
   */
  get committed(): boolean {
    return this.#committed;
  }

  /** The StorageWritable hook: the whole content's SHA-256, before the end. */
  setSha256(sha256: string): void {
    this.#sha256 = sha256;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    try {
      const waiting = this.#accept(chunk);
      if (waiting) waiting.then(() => callback(), callback);
      else callback();
    } catch (err) {
      callback(err as Error);
    }
  }

  /** Copy `chunk` into part buffers; returns a promise only when it must wait for a part slot or a buffer. */
  #accept(chunk: Buffer): Promise<void> | undefined {
    if (this.#failure) throw this.#failure;
    let offset = 0;
    while (offset < chunk.length) {
      // A full part is sent only once more data comes, so that a file of
      // exactly one part still goes as a single PutObject.
      if (this.#filled === this.#target.partSizeBytes) {
        this.#sendPart();
        if (this.#inFlight.size >= this.#target.queueSize) return this.#waitForSlot(chunk.subarray(offset));
      }
      this.#part ??= this.#spare.pop() ?? this.#newBuffer() ?? null;
      if (!this.#part) return this.#waitForBuffer(chunk.subarray(offset));
      const copied = chunk.copy(this.#part, this.#filled, offset);
      this.#filled += copied;
      offset += copied;
    }
    return undefined;
  }

  /** A new part buffer, or undefined when the budget has none to spare now. */
  #newBuffer(): Buffer | undefined {
    const { budget, partSizeBytes } = this.#target;
    if (budget && !budget.tryTake(partSizeBytes)) return undefined;
    this.#allocated += 1;
    return Buffer.allocUnsafeSlow(partSizeBytes);
  }

  /** Wait until another upload gives budget back, or a part of ours finishes (its buffer becomes spare). */
  async #waitForBuffer(rest: Buffer): Promise<void> {
    while (this.#spare.length === 0 && this.#target.budget!.free < this.#target.partSizeBytes) {
      // A failed part frees no buffer: stop waiting (and say why) rather than wait for another upload.
      if (this.#failure) throw this.#failure;
      this.#checkNotAborted();
      await Promise.race([this.#target.budget!.returned(), ...this.#inFlight]);
    }
    if (this.#failure) throw this.#failure;
    const again = this.#accept(rest);
    if (again) await again;
  }

  /** Give the part buffers' budget back: once, when the upload has ended and no request reads them. */
  #releaseBuffers(): void {
    this.#target.budget?.give(this.#allocated * this.#target.partSizeBytes);
    this.#allocated = 0;
  }

  async #waitForSlot(rest: Buffer): Promise<void> {
    while (this.#inFlight.size >= this.#target.queueSize) await Promise.race(this.#inFlight);
    if (this.#failure) throw this.#failure;
    // The rest of the chunk (rare: chunks are far smaller than parts).
    const again = this.#accept(rest);
    if (again) await again;
  }

  #startMultipart(): Promise<string> {
    const { client, sdk, bucket } = this.#target;
    // No abort signal: if the upload is created, we must learn its id to abort it.
    const Metadata = this.#marker();
    this.#uploadId ??= s3Call('CreateMultipartUpload', this.#key, () => client.send(new sdk.CreateMultipartUploadCommand({ Bucket: bucket, Key: this.#key, Metadata }))).then((out) => {
      if (!out.UploadId) throw new Error('CreateMultipartUpload returned no UploadId');
      return out.UploadId;
    });
    return this.#uploadId;
  }

  /** Send the current part buffer (full, or the last one) and start a new one. */
  #sendPart(): void {
    const buffer = this.#part!;
    const body = buffer.subarray(0, this.#filled);
    this.#part = null;
    this.#filled = 0;
    this.#partNumber += 1;
    const partNumber = this.#partNumber;
    if (partNumber > MAX_PARTS) {
      throw new FerryError(ErrorCodes.FILE_TOO_LARGE, `upload to ${this.#key} needs more than ${MAX_PARTS} parts: raise partSizeBytes`);
    }
    const { client, sdk, bucket } = this.#target;
    const sent = this.#startMultipart()
      .then((uploadId) =>
        client.send(
          new sdk.UploadPartCommand({ Bucket: bucket, Key: this.#key, UploadId: uploadId, PartNumber: partNumber, Body: body, ContentLength: body.length }),
          { abortSignal: this.#controller.signal },
        ),
      )
      .then(
        (out) => {
          this.#parts.push({ PartNumber: partNumber, ETag: out.ETag });
          // The request is over (retries included): nothing reads the buffer any more.
          this.#spare.push(buffer);
        },
        (err: unknown) => {
          this.#failure ??= fromS3Error(err, 'UploadPart', this.#key);
        },
      )
      .finally(() => this.#inFlight.delete(sent));
    this.#inFlight.add(sent);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#complete().then(
      () => callback(),
      (err: unknown) => callback(err as Error),
    );
  }

  #checkNotAborted(): void {
    if (this.#aborted) throw new FerryError(ErrorCodes.ABORTED, `upload to ${this.#key} was aborted`);
  }

  async #complete(): Promise<void> {
    if (this.#failure) throw this.#failure;
    await this.#target.beforeCommit?.();
    this.#checkNotAborted();
    const { client, sdk, bucket } = this.#target;
    const IfNoneMatch = this.#target.exclusive ? '*' : undefined;
    if (!this.#uploadId) {
      const body = this.#part ? this.#part.subarray(0, this.#filled) : Buffer.alloc(0);
      const Metadata = this.#sha256 ? { ...this.#marker(), [SHA256_TAG]: this.#sha256 } : this.#marker();
      const input = { Bucket: bucket, Key: this.#key, Body: body, ContentLength: body.length, IfNoneMatch, Metadata };
      // Sent without the abort signal: once it is on its way, only S3 decides.
      await this.#send(s3Call('PutObject', this.#key, () => client.send(new sdk.PutObjectCommand(input))));
      return;
    }
    if (this.#filled > 0) this.#sendPart();
    while (this.#inFlight.size > 0) await Promise.race(this.#inFlight);
    if (this.#failure) throw this.#failure;
    const uploadId = await this.#uploadId;
    this.#checkNotAborted();
    const parts = [...this.#parts].sort((a, b) => a.PartNumber! - b.PartNumber!);
    const input = { Bucket: bucket, Key: this.#key, UploadId: uploadId, MultipartUpload: { Parts: parts }, IfNoneMatch };
    const completed = s3Call('CompleteMultipartUpload', this.#key, () => client.send(new sdk.CompleteMultipartUploadCommand(input)));
    await this.#send(completed);
    if (this.#sha256) await this.#tagDigest(this.#sha256, await completed.catch(() => null), parts);
  }

  /** After a multipart commit: the digest tag, with the ETag it belongs to (see the header). Never fails the upload. */
  async #tagDigest(sha256: string, completed: { ETag?: string; VersionId?: string } | null, parts: CompletedPart[]): Promise<void> {
    const { client, sdk, bucket, logger } = this.#target;
    // Ceph's radosgw answers CompleteMultipartUpload with an empty ETag: then it is made from the parts', as S3 does.
    const etag = completed?.ETag?.replace(/"/g, '') || multipartEtag(parts);
    // Without the ETag a reader could not tell whose digest it is: no tag rather than one to doubt.
    if (!etag) return;
    const TagSet = [
      { Key: SHA256_TAG, Value: sha256 },
      { Key: SHA256_ETAG_TAG, Value: etag },
    ];
    try {
      await s3Call('PutObjectTagging', this.#key, () =>
        client.send(new sdk.PutObjectTaggingCommand({ Bucket: bucket, Key: this.#key, VersionId: completed?.VersionId, Tagging: { TagSet } })),
      );
    } catch (err) {
      logger?.warn({ err: (err as Error).message, bucket, key: this.#key }, 'could not tag the upload with its SHA-256; the object is stored without it');
    }
  }

  /** The final request: recorded (so a destroy waits for it rather than racing it), then `committed` on success. */
  async #send(request: Promise<unknown>): Promise<void> {
    this.#final = request;
    try {
      await request;
    } catch (err) {
      if (!(this.#target.exclusive && isPreconditionFailed(err))) throw err;
      // The SDK retries a request whose answer was lost: then the 412 may
      // answer our own first, successful attempt. The object tells whose it is.
      if (!(await this.#isOurs())) {
        throw new FerryError(ErrorCodes.EXISTS, `${this.#key} was created by someone else during the upload`, { cause: err });
      }
    }
    this.#committed = true;
    this.#releaseBuffers();
  }

  /** Exclusive uploads (STOU) carry a token of their own in the object's metadata, to recognise it after a 412. */
  #marker(): Record<string, string> | undefined {
    if (!this.#target.exclusive) return undefined;
    this.#token ??= randomBytes(12).toString('hex');
    return { [MARKER]: this.#token };
  }

  async #isOurs(): Promise<boolean> {
    const { client, sdk, bucket } = this.#target;
    try {
      const head = await client.send(new sdk.HeadObjectCommand({ Bucket: bucket, Key: this.#key }));
      return this.#token !== null && head.Metadata?.[MARKER] === this.#token;
    } catch {
      return false;
    }
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // Synchronously, so that no commit step starts after this point.
    this.#aborted = true;
    this.#abort().then(
      () => callback(error),
      () => callback(error),
    );
  }

  async #abort(): Promise<void> {
    // The final request already went out (ABOR racing the last bytes): S3 decides alone.
    if (this.#final) {
      await this.#final.catch(() => undefined);
      if (this.#committed) return;
    }
    this.#controller.abort();
    this.#part = null;
    this.#spare.length = 0;
    // Let cancelled part requests settle first: a part landing after the
    // abort would otherwise stay behind as an orphan (and until then the
    // SDK may still read the buffers).
    // Bounded: a cancelled part request that never settles (seen when the
    // endpoint answered while the SDK waited for 100 Continue) must not keep
    // the upload from being aborted; a part landing later gets NoSuchUpload.
    await settleWithin([...this.#inFlight], PARTS_SETTLE_MS);
    this.#releaseBuffers();
    if (!this.#uploadId) return;
    // The client's reply waits a moment for the abort, not for its retries.
    const aborting = this.#abortUpload(this.#uploadId);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([aborting, new Promise((resolve) => (timer = setTimeout(resolve, ABORT_WAIT_MS).unref()))]);
    clearTimeout(timer);
  }

  /**
   * AbortMultipartUpload, tried again with growing pauses while the endpoint
   * fails (down, erroring) for up to ABORT_RETRY_WINDOW_MS: an endpoint
   * that comes back within that window ends with no parts left behind.
   */
  async #abortUpload(pending: Promise<string>): Promise<void> {
    const uploadId = await pending.catch(() => null);
    if (!uploadId) return;
    const { client, sdk, bucket, logger } = this.#target;
    const where = { bucket, key: this.#key, uploadId };
    const deadline = Date.now() + ABORT_RETRY_WINDOW_MS;
    for (let attempt = 1; ; attempt++) {
      try {
        await client.send(new sdk.AbortMultipartUploadCommand({ Bucket: bucket, Key: this.#key, UploadId: uploadId }), {
          abortSignal: AbortSignal.timeout(ABORT_TIMEOUT_MS),
        });
        if (attempt > 1) logger?.info({ ...where, attempts: attempt }, 'aborted a multipart upload once the endpoint answered again');
        else logger?.debug(where, 'aborted a multipart upload');
        return;
      } catch (err) {
        if ((err as { name?: string }).name === 'NoSuchUpload') return; // gone already
        const message = (fromS3Error(err, 'AbortMultipartUpload', this.#key) as Error).message;
        const pauseMs = Math.min(1000 * 2 ** (attempt - 1), 30_000);
        if (Date.now() + pauseMs > deadline) {
          logger?.warn({ err: message, ...where, attempts: attempt }, 'could not abort a multipart upload; its parts stay until the bucket lifecycle rule removes them');
          return;
        }
        if (attempt === 1) logger?.warn({ err: message, ...where }, `could not abort a multipart upload; trying again for up to ${ABORT_RETRY_WINDOW_MS / 1000} s`);
        await new Promise((resolve) => setTimeout(resolve, pauseMs).unref());
      }
    }
  }
}

/**
 * The ETag S3 gives an object made of `parts`: the MD5 of their MD5s, then
 * `-` and their count (not so with SSE-KMS or SSE-C; then the reader's
 * check fails and it reads the object instead). Empty when a part has no
 * ETag.
 */
export function multipartEtag(parts: readonly CompletedPart[]): string {
  const md5 = createHash('md5');
  for (const part of parts) {
    const hex = part.ETag?.replace(/"/g, '') ?? '';
    if (!/^[0-9a-f]{32}$/i.test(hex)) return '';
    md5.update(Buffer.from(hex, 'hex'));
  }
  return `${md5.digest('hex')}-${parts.length}`;
}

/** Resolves once every promise settled, or after `ms`; never rejects. */
function settleWithin(promises: Array<Promise<unknown>>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    Promise.allSettled(promises).then(() => undefined),
    new Promise<void>((resolve) => (timer = setTimeout(resolve, ms).unref())),
  ]).finally(() => clearTimeout(timer));
}
