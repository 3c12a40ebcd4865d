/**
 * Server-side copy of one object (renames): no byte passes through Ferry.
 *
 * CopyObject handles objects up to 5 GiB; larger ones are copied as a
 * multipart upload of UploadPartCopy ranges, aborted if any part fails so
 * that no partial object or orphan part remains.
 *
 * Every copy request carries CopySourceIfMatch with the source's ETag (from
 * the listing, or from one HEAD): a source overwritten during the copy makes
 * it fail (412) rather than mix two versions, which a multipart copy's
 * ranges would otherwise do. CopyObject keeps the source's Content-Type and
 * metadata by itself; a multipart copy takes them from that HEAD into
 * CreateMultipartUpload.
 */
import type { CompletedPart, S3Client } from '@aws-sdk/client-s3';
import { MAX_PARTS, type S3Sdk } from './s3-client.js';
import { s3Call } from './s3-errors.js';

const GIB = 1024 * 1024 * 1024;
/** S3's limit for a single CopyObject. */
export const MAX_SINGLE_COPY_BYTES = 5 * GIB;
/** Part size for multipart copies: 512 MiB, or larger so that 5 TiB fits in 10,000 parts. */
const COPY_PART_BYTES = 512 * 1024 * 1024;
const PARALLEL_PART_COPIES = 4;

export interface CopyRequest {
  client: S3Client;
  sdk: S3Sdk;
  bucket: string;
  from: string;
  to: string;
  /** The source's size, which chooses between CopyObject and a multipart copy. */
  size: number;
  /** The source's ETag if known (a listing has it); else it is read with a HEAD. */
  etag?: string | undefined;
  /** For tests: the size above which the multipart copy is used. */
  singleCopyLimitBytes?: number;
}

/**
 * The x-amz-copy-source value: bucket/key, URL-encoded. The sub-delimiters
 * that need no escaping in a path (/ : @ & = $ , ;) stay literal, because
 * some S3-compatible servers decode this header with decodeURI, which leaves
 * their escapes undecoded; '?', '#', '+' and '%' must be escaped for S3.
 */
function copySource(bucket: string, key: string): string {
  const encoded = encodeURIComponent(key).replace(/%(2F|3A|40|26|3D|24|2C|3B)/g, (escape) => decodeURIComponent(escape));
  return `${bucket}/${encoded}`;
}

export async function copyObject(request: CopyRequest): Promise<void> {
  const { client, sdk, bucket, from, to, size } = request;
  if (size <= (request.singleCopyLimitBytes ?? MAX_SINGLE_COPY_BYTES)) {
    const etag = request.etag ?? (await headSource(request)).ETag;
    const input = { Bucket: bucket, Key: to, CopySource: copySource(bucket, from), CopySourceIfMatch: etag };
    await s3Call('CopyObject', from, () => client.send(new sdk.CopyObjectCommand(input)));
    return;
  }
  await multipartCopy(request);
}

function headSource({ client, sdk, bucket, from }: CopyRequest) {
  return s3Call('HeadObject', from, () => client.send(new sdk.HeadObjectCommand({ Bucket: bucket, Key: from })));
}

async function multipartCopy(request: CopyRequest): Promise<void> {
  const { client, sdk, bucket, from, to, size, singleCopyLimitBytes } = request;
  const partBytes = Math.max(Math.min(COPY_PART_BYTES, singleCopyLimitBytes ?? COPY_PART_BYTES), Math.ceil(size / MAX_PARTS));
  const head = await headSource(request);
  const etag = request.etag ?? head.ETag;
  const create = {
    Bucket: bucket,
    Key: to,
    ContentType: head.ContentType,
    ContentEncoding: head.ContentEncoding,
    ContentDisposition: head.ContentDisposition,
    ContentLanguage: head.ContentLanguage,
    CacheControl: head.CacheControl,
    Metadata: head.Metadata,
  };
  const created = await s3Call('CreateMultipartUpload', to, () => client.send(new sdk.CreateMultipartUploadCommand(create)));
  const uploadId = created.UploadId!;
  const ranges: Array<{ part: number; first: number; last: number }> = [];
  for (let first = 0, part = 1; first < size; first += partBytes, part++) {
    ranges.push({ part, first, last: Math.min(size, first + partBytes) - 1 });
  }
  const parts: CompletedPart[] = [];
  let failure: unknown = null;
  try {
    // Every part copy settles before an abort, so no part lands after it.
    await forEachLimited(ranges, PARALLEL_PART_COPIES, async ({ part, first, last }) => {
      const input = {
        Bucket: bucket,
        Key: to,
        UploadId: uploadId,
        PartNumber: part,
        CopySource: copySource(bucket, from),
        CopySourceRange: `bytes=${first}-${last}`,
        CopySourceIfMatch: etag,
      };
      const out = await s3Call('UploadPartCopy', from, () => client.send(new sdk.UploadPartCopyCommand(input)));
      parts.push({ PartNumber: part, ETag: out.CopyPartResult?.ETag });
    });
    parts.sort((a, b) => a.PartNumber! - b.PartNumber!);
    const complete = { Bucket: bucket, Key: to, UploadId: uploadId, MultipartUpload: { Parts: parts } };
    await s3Call('CompleteMultipartUpload', to, () => client.send(new sdk.CompleteMultipartUploadCommand(complete)));
    return;
  } catch (err) {
    failure = err;
  }
  await client.send(new sdk.AbortMultipartUploadCommand({ Bucket: bucket, Key: to, UploadId: uploadId })).catch(() => undefined);
  throw failure;
}

/**
 * Run `work` on every item, at most `limit` at once. The first failure
 * stops new work; the items already started all settle before it is thrown,
 * so a caller's cleanup never races work still in flight.
 */
export async function forEachLimited<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const item = items[next++]!;
      try {
        await work(item);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  const results = await Promise.allSettled(Array.from({ length: Math.min(limit, items.length) }, worker));
  const rejection = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (rejection) throw rejection.reason;
}
