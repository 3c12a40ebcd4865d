/**
 * s3rver (a Node S3 server that stores objects on disk) in a child process
 * (see s3rver-process.mjs for why), on 127.0.0.1: the benchmark's S3
 * endpoint, cheap to start and independent of Ceph. The tests use Ceph's
 * gateway instead (s3.ts): s3rver lists, pages and copies unlike S3.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const S3_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

export const S3RVER_SCRIPT = fileURLToPath(new URL('./s3rver-process.mjs', import.meta.url));

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
