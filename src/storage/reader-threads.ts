/**
 * Directory pages and small files read on worker threads.
 *
 * A listing needs one lstat per entry; 10,000 of them through the promise
 * API cost the event loop more than everything else a listing does (each is
 * a thread-pool round trip plus a Stats object). Here long-lived worker
 * threads open the directory, read up to PAGE entries and lstat them
 * synchronously (on their own thread, so no session waits), and send back
 * names plus packed numbers in one message: one round trip per page instead
 * of one per entry. The event loop only formats. Measured: MLSD of 10,000
 * entries went from 12 to 25 listings/s for one client.
 *
 * A small-file download needs the jail's walk (jail.ts) ending in open,
 * then fstat, read and close: four or more thread-pool round trips through
 * the promise API, each a wake-up of a pool thread and then of the event
 * loop. `readSmallFile` does all of them here in one round trip (measured: about 39 -> 8 us of event loop and 64 -> 35 us
 * of CPU per file), and under load the transfer waits for one wake-up
 * instead of five.
 *
 * The threads run reader-worker.ts, a module like any other: the same jail
 * and the same types as the event loop, no code in a string.
 *
 * Workers are created on first use and unref'd while idle, so they never
 * keep a process alive. If one dies, its pending reads fail (the listing
 * answers 451) and the next listing starts a new one.
 */
import { Worker } from 'node:worker_threads';
import { ErrorCodes, FerryError, type ErrorCode } from '../errors.js';
import type { JailRoot } from './jail.js';
import { EntryKind, FIELDS, type ErrorReply, type Reply, type Request, type SmallFile } from './reader-protocol.js';

export { EntryKind, type SmallFile };

/** Entries per page: large enough to amortise the round trip, small enough to stay flat. */
export const PAGE = 1000;

export interface DirPage {
  /** Entry names in directory order. */
  names: string[];
  /** FIELDS numbers per name: kind, size, mtimeMs, mode, dev, ino. */
  stats: Float64Array;
  done: boolean;
}

/** The threads' own module, next to this one: reader-worker.js in dist/, reader-worker.ts when run from the sources (tsx). */
const fromSource = import.meta.url.endsWith('.ts');
const WORKER_URL = new URL(fromSource ? './reader-worker.ts' : './reader-worker.js', import.meta.url);

/**
 * From dist/ a thread runs the worker module directly. From the sources
 * (the tests run under `--import tsx`) that fails with
 * ERR_UNKNOWN_FILE_EXTENSION even though threads inherit `--import tsx`:
 * Node 20 does not carry module hooks into worker threads and tsx registers
 * them on the main thread only. So there a one-line loader registers tsx's
 * API in the thread, then imports the same module.
 */
function startWorker(): Worker {
  if (!fromSource) return new Worker(WORKER_URL);
  const tsx = JSON.stringify(import.meta.resolve('tsx/esm/api'));
  return new Worker(`import(${tsx}).then((t) => t.register()).then(() => import(${JSON.stringify(WORKER_URL.href)}))`, { eval: true });
}

const ferryCodes = new Set<string>(Object.values(ErrorCodes));

/** An error as thrown on the reader thread: FerryErrors stay FerryErrors, system errors keep their code. */
function errorFrom(reply: ErrorReply): Error {
  if (reply.code !== undefined && ferryCodes.has(reply.code)) return new FerryError(reply.code as ErrorCode, reply.message);
  return Object.assign(new Error(reply.message), { code: reply.code });
}

type Waiter = { resolve: (reply: Reply) => void; reject: (err: Error) => void };

/**
 * Two threads for listings and two for small files. A listing stays on one
 * thread (its directory handle lives there) and concurrent listings
 * alternate, so on a 2-core machine the lstat work of several listings runs
 * in parallel beside the event loop.
 */
const THREADS = 2;

class ReaderThread {
  #worker: Worker | null = null;
  /** The requests of the current worker: a worker that dies fails its own requests only, not its replacement's. */
  #pending = new Map<number, Waiter>();

  /** Requests sent and not yet answered. */
  get load(): number {
    return this.#pending.size;
  }

  #get(): Worker {
    if (this.#worker) return this.#worker;
    const created = startWorker();
    const pending = new Map<number, Waiter>();
    created.unref();
    created.on('message', (reply: Reply) => {
      const waiter = pending.get(reply.id);
      if (!waiter) return;
      pending.delete(reply.id);
      if (pending.size === 0) created.unref();
      if (reply.error) waiter.reject(errorFrom(reply.error));
      else waiter.resolve(reply);
    });
    const fail = (err: Error) => {
      if (this.#worker === created) this.#worker = null;
      for (const waiter of pending.values()) waiter.reject(err);
      pending.clear();
    };
    created.on('error', fail);
    created.on('exit', () => fail(new Error('reader thread exited')));
    this.#worker = created;
    this.#pending = pending;
    return created;
  }

  request(message: Request, id: number): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const worker = this.#get();
      this.#pending.set(id, { resolve, reject });
      // Keep the process alive only while a request is outstanding.
      worker.ref();
      worker.postMessage({ ...message, id });
    });
  }

  close(id: number): void {
    this.#worker?.postMessage({ op: 'close', id } satisfies Request & { id: number });
  }
}

/** Listing threads: a listing stays on one, and listings alternate between them. */
const listThreads = Array.from({ length: THREADS }, () => new ReaderThread());
/**
 * Small-file threads, apart from the listing ones: a small RETR never waits
 * behind a page of 1,000 lstats. The least busy one is asked; when both have
 * SMALL_QUEUE_MAX requests waiting (a slow or hung disk), reads go through
 * the thread pool as before instead of queueing here.
 */
const smallThreads = Array.from({ length: THREADS }, () => new ReaderThread());
const SMALL_QUEUE_MAX = 16;
let nextId = 1;
let nextListing = 0;

/** Requests sent to the reader threads and not yet answered, per pool (the metrics' queue depth). */
export function readerQueueDepth(): { listing: number; small: number } {
  const sum = (threads: ReaderThread[]) => threads.reduce((total, thread) => total + thread.load, 0);
  return { listing: sum(listThreads), small: sum(smallThreads) };
}

/** An open directory on the reader thread; read pages until `done`, then it closes itself. */
export class DirReader {
  readonly #id = nextId++;
  readonly #thread = listThreads[nextListing++ % THREADS]!;
  #open = true;

  private constructor() {}

  /** Open the directory at `segments` under `root` (resolved on the thread by the jail); ENOENT/ENOTDIR/ACCESS_DENIED surface here. */
  static async open(root: JailRoot, segments: string[]): Promise<DirReader> {
    const reader = new DirReader();
    await reader.#thread.request({ op: 'open', root, segments }, reader.#id);
    return reader;
  }

  async read(): Promise<DirPage> {
    const reply = await this.#thread.request({ op: 'read', max: PAGE }, this.#id);
    if (reply.done) this.close();
    const names = reply.names === '' ? [] : reply.names!.split('/');
    // A name with a '/' (impossible from a sane filesystem) would shift every entry after it.
    if (names.length * FIELDS !== reply.stats!.length) throw Object.assign(new Error('malformed directory page'), { code: 'EIO' });
    return { names, stats: reply.stats!, done: reply.done! };
  }

  close(): void {
    if (!this.#open) return;
    this.#open = false;
    this.#thread.close(this.#id);
  }
}

/**
 * Reads the file at `segments` under `root` (resolved on the thread by the
 * jail, symlinks inside the root followed) from `start` to its end in one round trip,
 * if that is at most `max` bytes; else says 'large' and the caller streams
 * it. 'busy' means both small-file threads are backed up: use the thread
 * pool. System errors (ENOENT, ...) reject with their code.
 */
export async function readSmallFile(root: JailRoot, segments: string[], start: number, max: number): Promise<SmallFile | { kind: 'busy' }> {
  const thread = smallThreads[0]!.load <= smallThreads[1]!.load ? smallThreads[0]! : smallThreads[1]!;
  if (thread.load >= SMALL_QUEUE_MAX) return { kind: 'busy' };
  const id = nextId++;
  return (await thread.request({ op: 'small', root, segments, start, max }, id)) as SmallFile;
}
