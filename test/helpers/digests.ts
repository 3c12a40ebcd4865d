/** Digests computed by Node (crypto, zlib.crc32), by the names HASH uses: what the server's answers are checked against. */
import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';

export const NODE_DIGESTS: Record<string, (data: Buffer) => string> = {
  'SHA-256': (data) => createHash('sha256').update(data).digest('hex'),
  'SHA-512': (data) => createHash('sha512').update(data).digest('hex'),
  'SHA-1': (data) => createHash('sha1').update(data).digest('hex'),
  MD5: (data) => createHash('md5').update(data).digest('hex'),
  CRC32: (data) => crc32(data).toString(16).padStart(8, '0'),
};
