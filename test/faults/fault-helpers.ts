/**
 * What every fault case shares: a server whose log lines and events are
 * kept, a healthy client that keeps transferring beside the fault (each
 * round trip checked by SHA-256), and bounded waits.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readdir, writeFile } from 'node:fs/promises';
import type net from 'node:net';
import path from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from 'basic-ftp';
import type { LogFn, Logger } from '../../src/observability/logger.js';
import { RawClient } from '../helpers/ftp-raw.js';
import { collector } from '../helpers/streams.js';
import { PASSWORD, startServer, USER, type Cleanup, type TestServer, type TestServerOptions } from '../helpers/server.js';

export interface Recorded {
  event: string;
  info: Record<string, unknown>;
}

export interface FaultServer extends TestServer {
  /** Log lines as JSON objects (msg, level, bindings). */
  lines: Array<Record<string, unknown>>;
  events: Recorded[];
}

const EVENTS = ['file-received', 'file-sent', 'upload-aborted', 'download-aborted', 'disconnect'] as const;

function capturingLogger(lines: Array<Record<string, unknown>>, bindings: Record<string, unknown> = {}): Logger {
  const log =
    (level: string): LogFn =>
    (objOrMsg: object | string, msg?: string) => {
      const entry = typeof objOrMsg === 'string' ? { msg: objOrMsg } : { ...objOrMsg, msg };
      lines.push({ level, ...bindings, ...entry });
    };
  return { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error'), child: (more) => capturingLogger(lines, { ...bindings, ...more }) };
}

export async function faultServer(t: Cleanup, options: TestServerOptions = {}): Promise<FaultServer> {
  const lines: Array<Record<string, unknown>> = [];
  const srv = await startServer(t, { logger: capturingLogger(lines), ...options });
  const events: Recorded[] = [];
  for (const event of EVENTS) srv.server.on(event, (info: unknown) => events.push({ event, info: info as Record<string, unknown> }));
  return { ...srv, lines, events };
}

/** Wait (bounded) until `check` holds; fail saying `what` otherwise. */
export async function waitFor(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** The event `name` for `path` (waits for it, bounded). */
export async function eventFor(srv: FaultServer, name: string, filePath: string): Promise<Recorded> {
  await waitFor(() => srv.events.some((e) => e.event === name && e.info.path === filePath), `${name} for ${filePath}; got ${JSON.stringify(srv.events.map((e) => [e.event, e.info.path]))}`);
  return srv.events.find((e) => e.event === name && e.info.path === filePath)!;
}

/** The fault's own log line: the activity line the server writes for `event` on `path`. */
export function logLineFor(srv: FaultServer, event: string, filePath: string): Record<string, unknown> {
  const line = srv.lines.find((l) => l.msg === event && l.path === filePath);
  assert.ok(line, `no log line "${event}" for ${filePath}`);
  return line;
}

/** Temp files anywhere under `root`. */
export async function tempFiles(root: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(root, { recursive: true })) if (path.basename(entry).startsWith('.ferry-upload-')) found.push(entry);
  return found;
}

/**
 * EPSV and a connected data socket whose errors are expected: a fault ends
 * transfers, and the server may reset a data connection it aborts.
 */
export async function dataConnection(client: RawClient): Promise<net.Socket> {
  const socket = await client.passive();
  socket.on('error', () => undefined);
  return socket;
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Every session gone (bounded): a fault must never leave one stuck. */
export async function noSessionsLeft(srv: TestServer): Promise<void> {
  await waitFor(() => srv.server.connectionCount === 0, `sessions to end (${srv.server.connectionCount} left)`);
}

export interface Healthy {
  /**
   * Stop once one more round trip has completed (so the client was served
   * after the fault too); resolves with the number completed, rejects on any failure.
   */
  stop(): Promise<number>;
}

/**
 * A well-behaved client (basic-ftp) beside the fault: uploads 256 KiB of
 * random bytes under its own name and downloads them again, over and over,
 * checking the SHA-256 of each round trip, until stopped (at most 60 s).
 */
export function healthyClient(port: number, login = { user: USER, password: PASSWORD }): Healthy {
  const name = `healthy-${randomBytes(4).toString('hex')}.bin`;
  let stopAfter = Number.POSITIVE_INFINITY;
  let rounds = 0;
  const run = (async () => {
    const client = new Client(10_000);
    try {
      await client.access({ host: '127.0.0.1', port, ...login });
      const deadline = Date.now() + 60_000;
      while (rounds < stopAfter) {
        if (Date.now() > deadline) throw new Error(`the healthy client was not stopped within 60 s`);
        const data = randomBytes(256 * 1024);
        await client.uploadFrom(Readable.from([data]), name);
        const down = collector();
        await client.downloadTo(down.sink, name);
        assert.equal(sha256(down.bytes()), sha256(data), 'the healthy client got its own bytes back');
        rounds++;
      }
      return rounds;
    } finally {
      client.close();
    }
  })();
  run.catch(() => undefined); // observed by stop()
  return {
    stop: async () => {
      stopAfter = rounds + 1;
      return run;
    },
  };
}

/** What old.txt holds before a fault: it must still hold it after an aborted overwrite. */
export const OLD = 'the old content, which must survive';
/** big.bin: large enough that a fault lands mid-transfer. */
export const BIG_BYTES = 32 * 1024 * 1024;

/** A fault server with old.txt and big.bin, and a client logged in on it in binary mode. */
export async function serverWithClient(t: Cleanup): Promise<{ srv: FaultServer; client: RawClient }> {
  const srv = await faultServer(t);
  await writeFile(path.join(srv.root, 'old.txt'), OLD);
  await writeFile(path.join(srv.root, 'big.bin'), randomBytes(BIG_BYTES));
  const client = await RawClient.login(srv.port, USER, PASSWORD);
  t.after(async () => client.close());
  await client.command('TYPE I', 200);
  return { srv, client };
}
