/**
 * A well-behaved client's round trip (basic-ftp): log in, list, upload a
 * file, download it back and compare SHA-256 on both ends. The fuzzer runs
 * it every second to show that everyone else is still served.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from 'basic-ftp';

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A Writable that keeps everything written to it. */
export class Collect extends Writable {
  readonly chunks: Buffer[] = [];
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.chunks.push(chunk);
    callback();
  }
  get data(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

export interface ProbeTarget {
  port: number;
  user: string;
  password: string;
}

/** One round trip; resolves with its duration in ms, rejects with what went wrong. */
export async function probeOnce(target: ProbeTarget, name: string, bytes = 64 * 1024, timeoutMs = 15_000): Promise<number> {
  const started = performance.now();
  const client = new Client(timeoutMs);
  try {
    await client.access({ host: '127.0.0.1', port: target.port, user: target.user, password: target.password });
    await client.list('/');
    const body = randomBytes(bytes);
    await client.uploadFrom(Readable.from([body]), name);
    const back = new Collect();
    await client.downloadTo(back, name);
    if (sha256(back.data) !== sha256(body)) throw new Error(`probe: ${name} came back different (${back.data.length} of ${bytes} bytes)`);
    await client.remove(name);
    return performance.now() - started;
  } finally {
    client.close();
  }
}

/** Idle pooled passive listeners close after this (10 s in src/data/passive.ts, plus a margin). */
export const PASSIVE_POOL_IDLE_MS = 11_000;

/**
 * Before a baseline: a few round trips start what a serving process keeps
 * (reader threads, compiled code, the passive pool), then the pool's idle
 * listeners are left to close, so the baseline is a served, idle server.
 */
export async function warmUp(target: ProbeTarget): Promise<void> {
  for (let i = 0; i < 3; i++) await probeOnce(target, `warm-${i}.bin`);
  await sleep(PASSIVE_POOL_IDLE_MS);
}
