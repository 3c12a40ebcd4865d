/**
 * A Ferry server in a process of its own, for the fuzzer and the soak: its
 * RSS and open files are then its own, not the load generator's. Started
 * with `fork` by `startServerProcess`; talks over the IPC channel.
 *
 * The child serves a fresh temporary folder on 127.0.0.1 (port 0, passive
 * ports anywhere) to `alice` (every permission) and to anonymous (read
 * only), with the options it is given; it answers `stats` with its session
 * count and RSS (after a full GC when asked), and exits on `stop` or when
 * its parent goes away.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, readlink, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FtpServerOptions } from '../../src/index.js';

/**
 * Threads started during a run (the reader threads start on first use, the
 * second small-file thread only under concurrent reads, and under tsx each
 * has a module-hooks thread too) bring their own files: an epoll, an
 * eventfd, two pipe ends and /dev/null. Fuzz and soak allow those files
 * while bounding the threads themselves.
 */
export const FILES_PER_THREAD = 5;
export const MAX_NEW_THREADS = 10;

export const LOAD_USER = 'alice';
export const LOAD_PASSWORD = 'load pass';

export interface ServerStats {
  sessions: number;
  rss: number;
  heapUsed: number;
  /** Memory outside the V8 heap held by JS objects (Buffers). */
  external: number;
}

type ChildOptions = Omit<Partial<FtpServerOptions>, 'authenticator' | 'logger' | 'tls'> & {
  /** Explicit FTPS (AUTH TLS, optional) with a fresh self-signed certificate for 127.0.0.1. */
  selfSignedTls?: boolean;
};
type Request = { type: 'stats'; gc: boolean; id: number } | { type: 'stop' };
type Message = { type: 'listening'; port: number; root: string } | ({ type: 'stats'; id: number } & ServerStats);

export interface ServerProcess {
  pid: number;
  port: number;
  /** The folder served as '/'. */
  root: string;
  stats(options?: { gc?: boolean }): Promise<ServerStats>;
  /** Files the process holds open, counted in /proc (Linux). */
  openFiles(): Promise<number>;
  /** What those files are, by kind ('socket', 'anon_inode:[eventpoll]', a path...), for a report. */
  openFileKinds(): Promise<Map<string, number>>;
  /** Threads of the process (/proc/<pid>/status): reader threads start on first use, each with a few files of its own. */
  threads(): Promise<number>;
  stop(): Promise<void>;
}

const self = fileURLToPath(import.meta.url);

export async function startServerProcess(options: ChildOptions): Promise<ServerProcess> {
  const child = fork(self, ['--child'], {
    execArgv: ['--import', 'tsx', '--expose-gc'],
    env: { ...process.env, FERRY_LOAD_OPTIONS: JSON.stringify(options) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = once(child, 'exit');
  const listening = await Promise.race([
    once(child, 'message').then(([message]) => message as Message),
    exited.then(([code]) => {
      throw new Error(`server process exited with ${String(code)} before listening`);
    }),
  ]);
  if (listening.type !== 'listening') throw new Error('server process: unexpected first message');
  let nextId = 0;
  return {
    pid: child.pid!,
    port: listening.port,
    root: listening.root,
    stats: ({ gc = false } = {}) => request(child, { type: 'stats', gc, id: ++nextId }),
    openFiles: async () => (await readdir(`/proc/${child.pid}/fd`)).length,
    threads: async () => Number(/^Threads:\s+(\d+)/m.exec(await readFile(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? 0),
    async openFileKinds() {
      const kinds = new Map<string, number>();
      for (const fd of await readdir(`/proc/${child.pid}/fd`)) {
        const target = await readlink(`/proc/${child.pid}/fd/${fd}`).catch(() => 'gone');
        const kind = target.replace(/:\[\d+\]$/, '');
        kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
      }
      return kinds;
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.send({ type: 'stop' });
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

function request(child: ChildProcess, message: Request & { id: number }): Promise<ServerStats> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.off('message', onMessage);
      reject(new Error('server process did not answer stats within 10 s'));
    }, 10_000);
    const onMessage = (reply: Message): void => {
      if (reply.type !== 'stats' || reply.id !== message.id) return;
      clearTimeout(timer);
      child.off('message', onMessage);
      resolve({ sessions: reply.sessions, rss: reply.rss, heapUsed: reply.heapUsed, external: reply.external });
    };
    child.on('message', onMessage);
    child.send(message);
  });
}

async function runChild(): Promise<void> {
  const { AnonymousAuthenticator, ChainAuthenticator, createSelfSignedCertificate, createServer, LocalStorage, UserListAuthenticator } = await import('../../src/index.js');
  const { selfSignedTls, ...options } = JSON.parse(process.env.FERRY_LOAD_OPTIONS ?? '{}') as ChildOptions;
  const root = await mkdtemp(path.join(os.tmpdir(), 'ferry-load-'));
  const storage = new LocalStorage(root);
  const authenticator = new ChainAuthenticator([
    new UserListAuthenticator([{ username: LOAD_USER, password: LOAD_PASSWORD, storage: () => storage, permissions: 'elradfmwMT' }]),
    new AnonymousAuthenticator({ storage: () => storage }),
  ]);
  const tls = selfSignedTls ? { ...createSelfSignedCertificate({ hosts: ['127.0.0.1'] }), policy: 'optional' as const } : undefined;
  const server = createServer({ ...options, authenticator, tls, host: '127.0.0.1', port: 0 });
  const address = await server.listen();
  const send = (message: Message): void => void process.send!(message);
  const stop = async (): Promise<void> => {
    await server.close(0);
    await rm(root, { recursive: true, force: true });
    process.exit(0);
  };
  process.on('message', (message: Request) => {
    if (message.type === 'stop') void stop();
    else if (message.type === 'stats') {
      if (message.gc) globalThis.gc?.();
      const memory = process.memoryUsage();
      send({ type: 'stats', id: message.id, sessions: server.connectionCount, rss: memory.rss, heapUsed: memory.heapUsed, external: memory.external });
    }
  });
  // The parent gone (crashed, killed): never outlive it.
  process.on('disconnect', () => void stop());
  send({ type: 'listening', port: address.port, root });
}

if (process.argv.includes('--child')) await runChild();
