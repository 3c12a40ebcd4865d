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
 * - the SHA-256 Ferry records with its own uploads (s3-upload.ts): the
 *   metadata `ferry-sha256` of a one-part upload, sent with the object (S3
 *   replaces it when the object is overwritten, and CopyObject copies it
 *   with the bytes); or, for a multipart upload, the tags `ferry-sha256`
 *   and `ferry-sha256-etag`, written just after the object: another upload
 *   may land in between, so the tag counts only when its ETag is the
 *   object's (a copy, whose ETag differs, is then read instead).
 *
 * The ETag is not used: it is an MD5 of the bytes only for single-part
 * uploads without SSE-KMS or SSE-C, and nothing in a HEAD says which.
 */
import type { HashAlgorithm } from '../protocol/hash.js';
import { SHA256_ETAG_TAG, SHA256_TAG } from './s3-upload.js';

/** What HeadObject returns that matters here (a subset of HeadObjectCommandOutput). */
export interface StoredChecksums {
  ChecksumSHA256?: string;
  ChecksumSHA1?: string;
  ChecksumCRC32?: string;
  ChecksumType?: string;
  Metadata?: Record<string, string>;
  ETag?: string;
}

const SHA256_HEX = /^[0-9a-f]{64}$/i;

/** The digest of the whole object for `algorithm` from a HEAD's answer, lowercase hex, or null. */
export function storedDigest(head: StoredChecksums, algorithm: HashAlgorithm): string | null {
  if (algorithm === 'SHA-256') {
    const recorded = head.Metadata?.[SHA256_TAG];
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

/** The SHA-256 recorded as the object tag `ferry-sha256`, lowercase hex, when its `ferry-sha256-etag` is `etag` (the object's); else null. */
export function taggedSha256(tags: ReadonlyArray<{ Key?: string; Value?: string }> | undefined, etag: string | undefined): string | null {
  const tag = (key: string): string | undefined => tags?.find((t) => t.Key === key)?.Value;
  const value = tag(SHA256_TAG);
  const unquoted = etag?.replace(/"/g, '');
  if (!value || !SHA256_HEX.test(value) || !unquoted || tag(SHA256_ETAG_TAG)?.replace(/"/g, '') !== unquoted) return null;
  return value.toLowerCase();
}
