/**
 * How long the quota's recount of a home takes (src/limits/usage.ts): the
 * walk every user with a quota pays once after a start, before their first
 * change. Figures are in docs/architecture.md ("Storage policies").
 *
 *   node --import tsx bench/usage-count.ts local DIR
 *       DIR made with, e.g., 1,000 folders of 1,000 files (see the docs).
 *   node --import tsx bench/usage-count.ts s3 COUNT
 *       starts a throwaway Ceph (test/helpers/ceph.ts), puts COUNT small
 *       objects under 100 prefixes, then counts them twice: S3Storage.usage()
 *       (one flat listing) and the generic walk of list() (one listing per
 *       folder), for comparison.
 */
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { storageUsage } from '../src/limits/usage.js';
import { LocalStorage } from '../src/storage/local.js';
import { S3Storage } from '../src/storage/s3.js';
import type { Storage } from '../src/storage/types.js';
import { cephClient, createBucket, startCeph } from '../test/helpers/ceph.js';

async function timed(label: string, count: () => Promise<{ bytes: number; files: number }>): Promise<void> {
  const started = process.hrtime.bigint();
  const usage = await count();
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  console.log(`${label}: ${usage.files} files, ${usage.bytes} bytes in ${(ms / 1000).toFixed(2)} s (${Math.round(usage.files / (ms / 1000))} files/s)`);
}

/** The generic walk, even where the backend has a faster usage(). */
function walkOnly(storage: Storage): Storage {
  return { capabilities: storage.capabilities, stat: (p) => storage.stat(p), list: (p) => storage.list(p) } as Storage;
}

const [mode, arg] = process.argv.slice(2);
if (mode === 'local' && arg) {
  const storage = new LocalStorage(arg);
  for (let run = 1; run <= 3; run++) await timed(`local walk, run ${run}`, () => storageUsage(storage));
  await storage.close?.();
} else if (mode === 's3' && arg) {
  const count = Number(arg);
  const ceph = await startCeph();
  try {
    const client = cephClient(ceph);
    const bucket = await createBucket(ceph, client);
    const started = Date.now();
    const body = Buffer.alloc(10, 1);
    let next = 0;
    const putter = async (): Promise<void> => {
      for (let i = next++; i < count; i = next++) {
        await client.send(new PutObjectCommand({ Bucket: bucket, Key: `home/d${i % 100}/f${i}`, Body: body }));
      }
    };
    await Promise.all(Array.from({ length: 64 }, putter));
    console.log(`put ${count} objects in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    const credentials = { accessKeyId: ceph.accessKeyId, secretAccessKey: ceph.secretAccessKey };
    const storage = new S3Storage({ bucket, prefix: 'home/', endpoint: ceph.endpoint, forcePathStyle: true, credentials });
    for (let run = 1; run <= 2; run++) await timed(`S3 flat listing (usage()), run ${run}`, () => storageUsage(storage));
    await timed('S3 walk of list()', () => storageUsage(walkOnly(storage)));
    storage.destroy();
    client.destroy();
  } finally {
    await ceph.stop();
  }
} else {
  console.error('usage: usage-count.ts local DIR | s3 COUNT');
  process.exit(2);
}
