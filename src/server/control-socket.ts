/**
 * The local control socket: how `ferry ban` (and any later local admin
 * command) talks to a running server. A Unix domain socket, mode 0600 and
 * owned by the user the server runs as, so only that user and root can
 * connect; the file system is the access check, no password involved.
 *
 * Protocol: one request per connection. The client writes one line of JSON,
 * `{"command":"ban.list","args":{...}}`, and reads one line back,
 * `{"ok":true,"result":...}` or `{"ok":false,"error":"what to do"}`, then
 * the server closes. Handlers are registered by name; an error a handler
 * throws becomes the `error` text (so handlers throw messages meant for the
 * operator).
 *
 * In cluster mode the primary runs it (it holds the state the commands act
 * on); in one process, the server process.
 */
import { lstat, unlink } from 'node:fs/promises';
import { chmodSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from '../observability/logger.js';
import { silentLogger } from '../observability/logger.js';

export type ControlHandler = (args: Record<string, unknown>) => unknown;

interface Request {
  command: string;
  args?: Record<string, unknown>;
}

type Response = { ok: true; result: unknown } | { ok: false; error: string };

/** A request line longer than this is refused: the commands are short. */
const MAX_REQUEST_BYTES = 64 * 1024;
/** A connection that sends no complete request in this time is closed. */
const REQUEST_TIMEOUT_MS = 5000;

/**
 * Where the socket goes unless configured: the temporary folder (writable
 * by any user, sticky, so only the owner can remove the file), one socket
 * per control port so several servers on one host do not collide. A
 * service with a private /tmp (systemd PrivateTmp) needs an explicit path
 * that `ferry` commands can reach.
 */
export function defaultControlSocketPath(port: number): string {
  return path.join(os.tmpdir(), `ferry-${port}.sock`);
}

export class ControlSocket {
  readonly path: string;
  readonly #server: net.Server;
  readonly #handlers: ReadonlyMap<string, ControlHandler>;
  readonly #log: Logger;

  private constructor(socketPath: string, handlers: Record<string, ControlHandler>, logger: Logger) {
    this.path = socketPath;
    this.#handlers = new Map(Object.entries(handlers));
    this.#log = logger;
    this.#server = net.createServer((socket) => this.#serve(socket));
  }

  /**
   * Listen on `socketPath`. A socket file left by a server that is gone is
   * replaced; one another live server answers on, or one that belongs to
   * another user, is an error that says what to do.
   */
  static async listen(socketPath: string, handlers: Record<string, ControlHandler>, logger: Logger = silentLogger): Promise<ControlSocket> {
    await clearStale(socketPath);
    const control = new ControlSocket(socketPath, handlers, logger);
    await new Promise<void>((resolve, reject) => {
      control.#server.once('error', reject);
      // Connecting needs write permission on the socket file. It is created
      // 0600 (the umask for the bind, which runs synchronously inside
      // listen): a chmod afterwards would leave a window in which a group
      // member under umask 002 could connect and keep that connection.
      const umask = process.umask(0o077);
      try {
        control.#server.listen(socketPath, () => {
          control.#server.off('error', reject);
          resolve();
        });
      } finally {
        process.umask(umask);
      }
    });
    chmodSync(socketPath, 0o600); // and certain, whatever created it
    control.#server.on('error', (err) => logger.warn({ err, path: socketPath }, 'control socket error'));
    return control;
  }

  #serve(socket: net.Socket): void {
    socket.on('error', () => {});
    socket.setTimeout(REQUEST_TIMEOUT_MS, () => socket.destroy());
    let text = '';
    const onData = (chunk: Buffer) => {
      text += chunk.toString('utf8');
      if (text.length > MAX_REQUEST_BYTES) {
        socket.off('data', onData);
        answer(socket, { ok: false, error: 'request too long' });
        return;
      }
      const end = text.indexOf('\n');
      if (end < 0) return;
      socket.off('data', onData);
      void this.#run(text.slice(0, end)).then((response) => answer(socket, response));
    };
    socket.on('data', onData);
  }

  async #run(line: string): Promise<Response> {
    let request: Request;
    try {
      request = JSON.parse(line) as Request;
    } catch {
      return { ok: false, error: 'the request is not JSON' };
    }
    const handler = typeof request?.command === 'string' ? this.#handlers.get(request.command) : undefined;
    if (!handler) return { ok: false, error: `unknown command ${JSON.stringify(request?.command)}; this server knows ${[...this.#handlers.keys()].join(', ')}` };
    try {
      return { ok: true, result: (await handler(request.args ?? {})) ?? null };
    } catch (err) {
      if (!(err instanceof TypeError || err instanceof RangeError)) this.#log.warn({ err, command: request.command }, 'control command failed');
      return { ok: false, error: (err as Error).message };
    }
  }

  /** Stop listening and remove the socket file. */
  close(): Promise<void> {
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}

function answer(socket: net.Socket, response: Response): void {
  socket.end(JSON.stringify(response) + '\n');
}

/** Remove a socket file no server answers on, when it is ours; refuse anything else. */
async function clearStale(socketPath: string): Promise<void> {
  const info = await lstat(socketPath).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    throw err;
  });
  if (!info) return;
  if (!info.isSocket()) throw new Error(`control socket ${socketPath}: a file that is not a socket is there; remove it or set controlSocket to another path`);
  if (await answers(socketPath)) throw new Error(`control socket ${socketPath}: another server is running with it; stop that one or set controlSocket to another path`);
  if (process.getuid && info.uid !== process.getuid()) {
    throw new Error(`control socket ${socketPath}: left by another user (uid ${info.uid}); remove it as that user or root, or set controlSocket to another path`);
  }
  await unlink(socketPath);
}

function answers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.connect(socketPath);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

/** A failed control request: the message says what to do. */
export class ControlError extends Error {}

/**
 * Send one request to the server listening on `socketPath` and return its
 * result; throws ControlError when no server answers there or it refused.
 * The socket must belong to the caller (or the caller be root): a socket
 * another user placed there is not the server's.
 */
export async function controlRequest(socketPath: string, command: string, args: Record<string, unknown> = {}, timeoutMs = 10_000): Promise<unknown> {
  const info = await lstat(socketPath).catch(() => null);
  if (!info?.isSocket()) {
    throw new ControlError(`no control socket at ${socketPath}: is the server running, with this configuration? (its controlSocket setting, or the default for its port)`);
  }
  const uid = process.getuid?.();
  if (uid !== undefined && uid !== 0 && info.uid !== uid) {
    throw new ControlError(`the control socket ${socketPath} belongs to uid ${info.uid}, not to you: run this as the user the server runs as, or as root`);
  }
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new ControlError(`the server did not answer on ${socketPath} within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    socket.on('connect', () => socket.write(JSON.stringify({ command, args } satisfies Request) + '\n'));
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const why = err.code === 'ECONNREFUSED' ? 'no server is listening there (a file left by a server that stopped?)' : err.code === 'EACCES' ? 'permission denied: run this as the user the server runs as, or as root' : err.message;
      reject(new ControlError(`control socket ${socketPath}: ${why}`));
    });
    socket.on('end', () => {
      clearTimeout(timer);
      let response: Response;
      try {
        response = JSON.parse(text) as Response;
      } catch {
        reject(new ControlError(`the server's answer on ${socketPath} is not JSON: ${text.slice(0, 200)}`));
        return;
      }
      if (response.ok) resolve(response.result);
      else reject(new ControlError(response.error));
    });
  });
}
