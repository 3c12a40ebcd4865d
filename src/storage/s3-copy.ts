/**
 * Server-side copy of one object (renames): no byte passes through Ferry.
 *
 * CopyObject handles objects up to 5 GiB; larger ones are copied as a
 * multipart upload of UploadPartCopy ranges, aborted if any part fails so
 * that no partial object or orphan part remains.
 */
import type { CompletedPart, S3Client } from '@aws-sdk/client-s3';
import { MAX_PARTS, type S3Sdk } from './s3-client.js';
import { fromS3Error, s3Call } from './s3-errors.js';

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
    await s3Call('CopyObject', from, () => client.send(new sdk.CopyObjectCommand({ Bucket: bucket, Key: to, CopySource: copySource(bucket, from) })));
    return;
  }
  await multipartCopy(request);
}

async function multipartCopy({ client, sdk, bucket, from, to, size, singleCopyLimitBytes }: CopyRequest): Promise<void> {
  const partBytes = Math.max(Math.min(COPY_PART_BYTES, singleCopyLimitBytes ?? COPY_PART_BYTES), Math.ceil(size / MAX_PARTS));
  const created = await s3Call('CreateMultipartUpload', to, () => client.send(new sdk.CreateMultipartUploadCommand({ Bucket: bucket, Key: to })));
  const uploadId = created.UploadId!;
  const ranges: Array<{ part: number; first: number; last: number }> = [];
  for (let first = 0, part = 1; first < size; first += partBytes, part++) {
    ranges.push({ part, first, last: Math.min(size, first + partBytes) - 1 });
  }
  const parts: CompletedPart[] = [];
  let next = 0;
  let failure: unknown = null;
  const worker = async (): Promise<void> => {
    while (failure === null && next < ranges.length) {
      const { part, first, last } = ranges[next++]!;
      try {
        const out = await client.send(
          new sdk.UploadPartCopyCommand({
            Bucket: bucket,
            Key: to,
            UploadId: uploadId,
            PartNumber: part,
            CopySource: copySource(bucket, from),
            CopySourceRange: `bytes=${first}-${last}`,
          }),
        );
        parts.push({ PartNumber: part, ETag: out.CopyPartResult?.ETag });
      } catch (err) {
        failure ??= fromS3Error(err, 'UploadPartCopy', from);
      }
    }
  };
  // Every worker settles before an abort, so no part lands after it.
  await Promise.all(Array.from({ length: Math.min(PARALLEL_PART_COPIES, ranges.length) }, worker));
  if (failure === null) {
    try {
      parts.sort((a, b) => a.PartNumber! - b.PartNumber!);
      await client.send(new sdk.CompleteMultipartUploadCommand({ Bucket: bucket, Key: to, UploadId: uploadId, MultipartUpload: { Parts: parts } }));
      return;
    } catch (err) {
      failure = fromS3Error(err, 'CompleteMultipartUpload', to);
    }
  }
  await client.send(new sdk.AbortMultipartUploadCommand({ Bucket: bucket, Key: to, UploadId: uploadId })).catch(() => undefined);
  throw failure;
}
