/**
 * The S3 endpoint for the `ferry-s3` rows: s3rver (a Node S3 server writing
 * to local disk) in its own process, started once per run on first use, with
 * the data set's small.bin and big.bin uploaded into the bucket and an `up/`
 * directory for uploads. Killed when the benchmark exits.
 *
 * s3rver, not Ferry, is the likely limit of these rows: it is a test server
 * that hashes, writes and, for multipart uploads, concatenates every byte on
 * the same two cores. The figures say what Ferry sustains against it, not
 * what it would against AWS S3 or MinIO.
 */
import type { ChildProcess } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { S3Storage } from '../src/storage/s3.js';
import { S3_CREDENTIALS, spawnS3rver } from '../test/helpers/s3rver.js';
import { PATHS } from './data.js';

export const S3_BUCKET = 'ferry-bench';

export interface BenchS3 {
  /** Extra `ferry` flags that serve the bucket. */
  flags: string[];
  /** Environment for the Ferry process (credentials). */
  env: NodeJS.ProcessEnv;
  /** The s3rver process, for its CPU. */
  pid: number;
}

let started: Promise<BenchS3> | null = null;
let s3rver: ChildProcess | null = null;

export function benchS3(dataRoot: string, workRoot: string, log: (s: string) => void): Promise<BenchS3> {
  started ??= start(dataRoot, workRoot, log);
  return started;
}

async function start(dataRoot: string, workRoot: string, log: (s: string) => void): Promise<BenchS3> {
  const directory = join(workRoot, 's3rver');
  await rm(directory, { recursive: true, force: true });
  await mkdir(directory, { recursive: true });
  const { child, port } = await spawnS3rver(directory, S3_BUCKET);
  s3rver = child;
  process.on('exit', () => child.kill('SIGKILL'));
  const endpoint = `http://127.0.0.1:${port}`;
  const storage = new S3Storage({ bucket: S3_BUCKET, endpoint, forcePathStyle: true, credentials: S3_CREDENTIALS });
  log(`s3rver on ${endpoint} (pid ${child.pid}); uploading ${PATHS.small} and ${PATHS.big}`);
  for (const name of [PATHS.small, PATHS.big]) {
    await pipeline(createReadStream(join(dataRoot, name), { highWaterMark: 1 << 20 }), await storage.write(`/${name}`));
  }
  await storage.mkdir(`/${PATHS.uploadDir}`);
  storage.destroy();
  return {
    flags: ['--s3', `s3://${S3_BUCKET}/`, '--s3-endpoint', endpoint],
    env: { AWS_ACCESS_KEY_ID: S3_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: S3_CREDENTIALS.secretAccessKey },
    pid: child.pid!,
  };
}

/** Stop s3rver if this run started it: a live child would keep the benchmark from exiting. */
export async function stopBenchS3(): Promise<void> {
  const child = s3rver;
  s3rver = null;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}
