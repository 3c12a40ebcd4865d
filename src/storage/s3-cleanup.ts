/**
 * What an upload leaves in the bucket after a fault, and how Ferry clears it
 * once the endpoint answers again:
 *
 *   - its own multipart upload: AbortMultipartUpload, tried again with
 *     growing pauses while the endpoint is down or erroring;
 *   - orphans: multipart uploads its CreateMultipartUpload made without
 *     Ferry ever learning their ids. The SDK retries a create whose answer
 *     did not come (lost, timed out): if the first attempt reached the store,
 *     two uploads exist and Ferry knows one at most. A hung store may also
 *     take up an attempt queued in a connection the SDK already gave up on,
 *     once it recovers. Nobody would ever abort those, and their parts
 *     (none, here) and the upload itself stay until a lifecycle rule.
 *
 * Finding orphans: S3 cannot say which client made an upload (every node
 * signs with the same credentials) and keeps no metadata we could read back
 * before the upload completes. So an orphan is an upload that is, all at once:
 *   - of exactly this key;
 *   - initiated no earlier than our first create attempt (minus a margin
 *     for the clocks of this host and the store);
 *   - not one this process is using (another session here);
 *   - without a single part: an orphan never gets one (nobody knows its id),
 *     while an upload someone is writing sends its first part right after
 *     its create.
 * What that can still take for ours: another writer's upload of the same
 * key (another node's or client's, or a session's here whose create is not
 * answered yet), created after our failed create and whose first part is
 * not stored yet when we look. Its writer's next UploadPart or Complete then
 * fails with NoSuchUpload (its FTP client gets an error and can try again);
 * no object is ever half-written. We only look after a create was retried or
 * failed without an answer, so that needs a fault and two writers of one key
 * within seconds; giving each user a prefix of their own makes it moot
 * (docs/s3.md).
 */
import type { S3Client } from '@aws-sdk/client-s3';
import type { Logger } from '../observability/logger.js';
import type { S3Sdk } from './s3-client.js';
import { fromS3Error } from './s3-errors.js';

/** Each cleanup request gets its own deadline: it runs after the client is gone, whatever the client's timeouts. */
const REQUEST_TIMEOUT_MS = 30_000;
/** A failed cleanup request (endpoint down) is tried again for this long, so the parts go once the endpoint is back. */
const RETRY_WINDOW_MS = 5 * 60_000;
/** Pauses between tries double from 1 s up to this. */
const MAX_PAUSE_MS = 30_000;
/** The store's clock (an upload's Initiated) may run this far behind ours. */
const CLOCK_MARGIN_MS = 5_000;
/**
 * Orphans are looked for once more this long after the first look: a store
 * coming back from a hang takes up the requests queued in its connections in
 * no set order, so our listing may be answered before a create queued
 * earlier lands. (In the fault test the late create has landed first each
 * time; the second look costs one listing.)
 */
const SECOND_LOOK_MS = 10_000;
/** Bounds the listing: 10 pages of 1,000 uploads under one key's prefix. */
const MAX_PAGES = 10;

export interface CleanupTarget {
  client: S3Client;
  sdk: S3Sdk;
  bucket: string;
  key: string;
  logger?: Logger;
}

/** Ids of the multipart uploads sessions of this process are writing: never taken for orphans. */
const inUse = new Set<string>();

export function uploadStarted(uploadId: string): void {
  inUse.add(uploadId);
}

export function uploadEnded(uploadId: string): void {
  inUse.delete(uploadId);
}

/**
 * True when a CreateMultipartUpload that ended this way may have left an
 * upload we do not know: it needed more than one attempt, or it failed with
 * no answer (timeout, connection lost) or a 5xx. A 4xx answer made nothing.
 */
export function mayHaveOrphans(outcome: unknown, failed: boolean): boolean {
  const { attempts = 1, httpStatusCode } = (outcome as { $metadata?: { attempts?: number; httpStatusCode?: number } } | null)?.$metadata ?? {};
  if (attempts > 1) return true;
  return failed && (httpStatusCode === undefined || httpStatusCode >= 500);
}

/**
 * `request`, tried again with pauses of 1, 2, 4 ... 30 s while it fails,
 * for up to RETRY_WINDOW_MS. `failed` hears of each failure (`last`: no
 * more tries). Resolves to the answer, or undefined after the last try.
 */
async function persist<T>(request: (signal: AbortSignal) => Promise<T>, failed: (message: string, attempt: number, last: boolean) => void, operation: string, key: string): Promise<T | undefined> {
  const deadline = Date.now() + RETRY_WINDOW_MS;
  for (let attempt = 1; ; attempt++) {
    try {
      return await request(AbortSignal.timeout(REQUEST_TIMEOUT_MS));
    } catch (err) {
      const message = (fromS3Error(err, operation, key) as Error).message;
      const pauseMs = Math.min(1000 * 2 ** (attempt - 1), MAX_PAUSE_MS);
      const last = Date.now() + pauseMs > deadline;
      failed(message, attempt, last);
      if (last) return undefined;
      await new Promise((resolve) => setTimeout(resolve, pauseMs).unref());
    }
  }
}

/**
 * AbortMultipartUpload of `uploadId`, tried again while the endpoint fails:
 * an endpoint that comes back within RETRY_WINDOW_MS ends with no parts
 * left behind. Logs with the upload id when it fails, and when it gives up.
 */
export async function abortUpload(target: CleanupTarget, uploadId: string, what = 'a multipart upload'): Promise<void> {
  const { client, sdk, bucket, key, logger } = target;
  const where = { bucket, key, uploadId };
  let attempts = 0;
  const done = await persist(
    async (abortSignal) => {
      attempts += 1;
      try {
        await client.send(new sdk.AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }), { abortSignal });
      } catch (err) {
        if ((err as { name?: string }).name !== 'NoSuchUpload') throw err; // else gone already
      }
      return true;
    },
    (err, attempt, last) => {
      if (last) logger?.warn({ err, ...where, attempts: attempt }, `could not abort ${what}; its parts stay until the bucket lifecycle rule removes them`);
      else if (attempt === 1) logger?.warn({ err, ...where }, `could not abort ${what}; trying again for up to ${RETRY_WINDOW_MS / 1000} s`);
    },
    'AbortMultipartUpload',
    key,
  );
  if (!done) return;
  if (attempts > 1) logger?.info({ ...where, attempts }, `aborted ${what} once the endpoint answered again`);
  else logger?.debug(where, `aborted ${what}`);
}

/**
 * Find and abort the orphans of our CreateMultipartUpload attempts (see
 * above): `since` is when the first attempt was sent, `known` the upload id
 * we got, if any (aborted or completed by the upload itself). Looks once the
 * endpoint answers, and once more SECOND_LOOK_MS later.
 */
export async function abortOrphans(target: CleanupTarget, since: number, known: string | null): Promise<void> {
  for (const look of [1, 2]) {
    if (look === 2) await new Promise((resolve) => setTimeout(resolve, SECOND_LOOK_MS).unref());
    const orphans = await persist(
      (signal) => findOrphans(target, since, known, signal),
      (err, attempt, last) => {
        if (last) target.logger?.warn({ err, bucket: target.bucket, key: target.key }, 'could not look for orphan multipart uploads; the bucket lifecycle rule will remove them');
        else if (attempt === 1) target.logger?.warn({ err, bucket: target.bucket, key: target.key }, 'could not look for orphan multipart uploads yet; trying again');
      },
      'ListMultipartUploads',
      target.key,
    );
    if (!orphans) return;
    for (const uploadId of orphans) {
      await abortUpload(target, uploadId, 'an orphan multipart upload (made by a create attempt whose answer never came)');
    }
  }
}

async function findOrphans(target: CleanupTarget, since: number, known: string | null, abortSignal: AbortSignal): Promise<string[]> {
  const { client, sdk, bucket, key } = target;
  const candidates: string[] = [];
  let KeyMarker: string | undefined;
  let UploadIdMarker: string | undefined;
  for (let page = 0; page < MAX_PAGES; page++) {
    const out = await client.send(new sdk.ListMultipartUploadsCommand({ Bucket: bucket, Prefix: key, KeyMarker, UploadIdMarker }), { abortSignal });
    for (const upload of out.Uploads ?? []) {
      const id = upload.UploadId;
      if (upload.Key !== key || !id || id === known || inUse.has(id)) continue;
      if (!upload.Initiated || upload.Initiated.getTime() < since - CLOCK_MARGIN_MS) continue;
      candidates.push(id);
    }
    if (!out.IsTruncated) break;
    KeyMarker = out.NextKeyMarker;
    UploadIdMarker = out.NextUploadIdMarker;
  }
  const orphans: string[] = [];
  for (const id of candidates) {
    try {
      const parts = await client.send(new sdk.ListPartsCommand({ Bucket: bucket, Key: key, UploadId: id, MaxParts: 1 }), { abortSignal });
      if ((parts.Parts ?? []).length === 0) orphans.push(id);
    } catch (err) {
      if ((err as { name?: string }).name !== 'NoSuchUpload') throw err; // else gone meanwhile
    }
  }
  return orphans;
}
