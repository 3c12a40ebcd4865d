/**
 * Digests S3 already holds for an object, so HASH and the X* commands can
 * answer without reading it (S3Storage.hash):
 *
 * - the object's own checksum (x-amz-checksum-sha256, -sha1, -crc32),
 *   returned by HeadObject with ChecksumMode ENABLED when the uploader sent
 *   one. Only a full-object checksum is the digest of the bytes: a
 *   multipart upload's composite checksum ("<base64>-<parts>", ChecksumType
 *   COMPOSITE) is a digest of the parts' digests and is not used. S3
 *   returns base64 of the digest; HASH answers hex.
 * - the SHA-256 Ferry records with its own uploads (the hooks of issue 13):
 *   the metadata `ferry-sha256` (x-amz-meta-ferry-sha256) or, for uploads
 *   whose metadata was already sent, the object tag `ferry-sha256`. S3
 *   replaces both when the object is overwritten and CopyObject (renames)
 *   copies both with the bytes, so they never describe other content.
 *
 * The ETag is not used: it is an MD5 of the bytes only for single-part
 * uploads without SSE-KMS or SSE-C, and nothing in a HEAD says which.
 */
import type { HashAlgorithm } from '../protocol/hash.js';

/** What HeadObject returns that matters here (a subset of HeadObjectCommandOutput). */
export interface StoredChecksums {
  ChecksumSHA256?: string;
  ChecksumSHA1?: string;
  ChecksumCRC32?: string;
  ChecksumType?: string;
  Metadata?: Record<string, string>;
}

/** The metadata key and tag key of the SHA-256 Ferry records at upload. */
export const FERRY_SHA256_KEY = 'ferry-sha256';

const SHA256_HEX = /^[0-9a-f]{64}$/i;

/** The digest of the whole object for `algorithm` from a HEAD's answer, lowercase hex, or null. */
export function storedDigest(head: StoredChecksums, algorithm: HashAlgorithm): string | null {
  if (algorithm === 'SHA-256') {
    const recorded = head.Metadata?.[FERRY_SHA256_KEY];
    if (recorded && SHA256_HEX.test(recorded)) return recorded.toLowerCase();
  }
  if (head.ChecksumType === 'COMPOSITE') return null;
  const value = algorithm === 'SHA-256' ? head.ChecksumSHA256 : algorithm === 'SHA-1' ? head.ChecksumSHA1 : algorithm === 'CRC32' ? head.ChecksumCRC32 : undefined;
  // A composite checksum from a store that does not send ChecksumType still ends in "-<parts>".
  if (!value || value.includes('-')) return null;
  const bytes = Buffer.from(value, 'base64');
  const expected = { 'SHA-256': 32, 'SHA-1': 20, CRC32: 4 }[algorithm as 'SHA-256' | 'SHA-1' | 'CRC32'];
  return bytes.length === expected ? bytes.toString('hex') : null;
}

/** The SHA-256 recorded as the object tag `ferry-sha256`, lowercase hex, or null. */
export function taggedSha256(tags: ReadonlyArray<{ Key?: string; Value?: string }> | undefined): string | null {
  const value = tags?.find((tag) => tag.Key === FERRY_SHA256_KEY)?.Value;
  return value && SHA256_HEX.test(value) ? value.toLowerCase() : null;
}
