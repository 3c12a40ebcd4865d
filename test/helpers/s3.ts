/**
 * A real S3-compatible endpoint for tests: s3rver (a Node S3 server that
 * stores objects on disk) in a child process (see s3rver-process.mjs for
 * why), on 127.0.0.1, port 0, in a fresh temporary folder, with one bucket.
 * Killed and removed by the test's `after`, even on failure.
 *
 * s3rver has no ListMultipartUploads (501); tests count the multipart
 * uploads still pending by looking at s3rver's upload folder instead.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Cleanup } from './server.js';

export const S3_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

export const S3RVER_SCRIPT = fileURLToPath(new URL('./s3rver-process.mjs', import.meta.url));

export interface TestS3 {
  endpoint: string;
  bucket: string;
  port: number;
  /** s3rver's folder on disk. */
  directory: string;
  /** Multipart uploads started and neither completed nor aborted. */
  pendingUploads(): Promise<number>;
  /** Kill the endpoint (as a crash would). */
  stop(): Promise<void>;
  /** Start it again on the same port and folder. */
  restart(): Promise<void>;
}

/** Start s3rver-process.mjs and wait (bounded) for the port it listens on. */
export async function spawnS3rver(directory: string, bucket: string, port = 0): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ['--openssl-legacy-provider', S3RVER_SCRIPT, directory, bucket, String(port)], {
    // stdin stays open: s3rver exits when it closes, so a parent that dies leaves no s3rver behind.
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let output = '';
  child.stderr!.on('data', (d) => (output += d));
  const ready = new Promise<number>((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      output += d;
      const match = /\{"port":(\d+)\}/.exec(output);
      if (match) resolve(Number(match[1]));
    });
    child.once('exit', (code) => reject(new Error(`s3rver exited (${code}): ${output}`)));
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  try {
    return { child, port: await ready };
  } finally {
    clearTimeout(timer);
  }
}

async function kill(child: ChildProcess | null): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

export async function startS3(t: Cleanup, bucket = 'ferry-test'): Promise<TestS3> {
  const directory = await mkdtemp(path.join(os.tmpdir(), 'ferry-s3-'));
  let child: ChildProcess | null = null;
  t.after(async () => {
    await kill(child);
    await rm(directory, { recursive: true, force: true });
  });
  const started = await spawnS3rver(directory, bucket);
  child = started.child;
  const port = started.port;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    bucket,
    port,
    directory,
    async pendingUploads() {
      const entries = await readdir(path.join(directory, bucket, '._S3rver_uploads')).catch(() => []);
      return entries.length;
    },
    async stop() {
      await kill(child);
      child = null;
    },
    async restart() {
      child = (await spawnS3rver(directory, bucket, port)).child;
    },
  };
}
