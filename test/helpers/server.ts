/**
 * Test fixtures: a real Ferry server on 127.0.0.1 (or ::1), port 0, over a
 * fresh temporary folder, stopped by the test's `after` even on failure.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {
  AnonymousAuthenticator,
  ChainAuthenticator,
  createServer,
  LocalStorage,
  UserListAuthenticator,
  type FtpServer,
  type FtpServerOptions,
  type Storage,
} from '../../src/index.js';

export const USER = 'alice';
export const PASSWORD = 's3cret pass';

export interface TestServer {
  server: FtpServer;
  host: string;
  port: number;
  /** The folder on disk behind '/', when the storage is local. */
  root: string;
}

export interface TestServerOptions extends Partial<FtpServerOptions> {
  /** Permission letters for alice (default: all). */
  permissions?: string;
  /** Storage for alice and anonymous (default: LocalStorage on a temp dir). */
  storage?: Storage;
  /** Allow anonymous read-only logins too. */
  anonymous?: boolean;
  /** Runs before listen(): where hooks are added (server.hook), which listen() locks. */
  beforeListen?: (server: FtpServer) => void;
}

/** Start a server for one test (or one suite, with a suite context). */
/** Anything that can run cleanup after the test: a TestContext, or a suite's own list. */
export interface Cleanup {
  after(fn: () => Promise<void>): void;
}

export async function startServer(t: Cleanup, options: TestServerOptions = {}): Promise<TestServer> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'ferry-test-'));
  const { permissions = 'elradfmwMT', storage, anonymous = false, beforeListen, ...rest } = options;
  const store = () => storage ?? new LocalStorage(root);
  const users = new UserListAuthenticator([{ username: USER, password: PASSWORD, storage: store, permissions }]);
  const authenticator = anonymous ? new ChainAuthenticator([users, new AnonymousAuthenticator({ storage: store })]) : users;
  const host = rest.host ?? '127.0.0.1';
  const server = createServer({ loginFailureDelayMs: 10, ...rest, authenticator, host, port: 0 });
  t.after(async () => {
    await server.close(0);
    await rm(root, { recursive: true, force: true });
  });
  beforeListen?.(server);
  const address = await server.listen();
  return { server, host, port: address.port, root };
}

/** Whether this machine can listen on ::1 (IPv6 tests skip, saying why, where it cannot). */
export function canBindIpv6Loopback(): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', () => resolve(false));
    probe.listen(0, '::1', () => probe.close(() => resolve(true)));
  });
}
