/**
 * s3rver in its own process, for the benchmark (bench/s3.ts):
 *   node --openssl-legacy-provider s3rver-process.mjs DIRECTORY BUCKET [PORT]
 * prints one line `{"port":N}` once it listens, and runs until killed or
 * until its stdin closes (the parent exited).
 *
 * Its own process because s3rver 3.7 encrypts ListObjectsV2 continuation
 * tokens with DES, which OpenSSL 3 only has in its legacy provider (a flag
 * we do not want on the process under test), and because killing it is
 * what an endpoint crash looks like.
 *
 * s3rver has no AbortMultipartUpload (it answers 405); this adds it as S3
 * does it: DELETE /bucket/key?uploadId=ID removes the upload and its parts.
 * Pending uploads live in DIRECTORY/BUCKET/._S3rver_uploads/ID.
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import S3rver from 's3rver';

const [directory, bucket, port = '0'] = process.argv.slice(2);
if (!directory || !bucket) {
  process.stderr.write('usage: s3rver-process.mjs DIRECTORY BUCKET [PORT]\n');
  process.exit(2);
}

const server = new S3rver({
  address: '127.0.0.1',
  port: Number(port),
  silent: true,
  directory,
  configureBuckets: [{ name: bucket, configs: [] }],
});

server.middleware.unshift(async (ctx, next) => {
  const uploadId = ctx.query.uploadId;
  if (ctx.method !== 'DELETE' || !uploadId || !ctx.path.startsWith(`/${bucket}/`)) return next();
  await rm(path.join(directory, bucket, '._S3rver_uploads', path.basename(String(uploadId))), { recursive: true, force: true });
  ctx.status = 204;
  ctx.body = '';
});

const address = await server.run();
process.stdout.write(`${JSON.stringify({ port: address.port })}\n`);

// Our parent holds stdin open: when it goes away, however it ends, so do we.
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
