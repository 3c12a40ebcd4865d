/**
 * Passive data connections (RFC 959 PASV, RFC 2428 EPSV).
 *
 * Each PASV opens one listener from the pool; the first connection from the
 * control connection's peer address becomes the data socket and the listener
 * closes at once, so the port returns to the pool. Connections from any other
 * address are dropped (no data-connection theft). Readiness is one event and
 * one deadline, never a polling loop.
 */
import net from 'node:net';
import type { Socket } from 'node:net';
import { sameHost } from '../protocol/address.js';
import type { DataChannel } from './channel.js';

export interface PortRange {
  min: number;
  max: number;
}

export class NoPassivePortError extends Error {
  constructor() {
    super('no free port in the passive range');
  }
}

/**
 * Hands out ports from a range by binding them for real: a port is "free" when
 * listen() succeeds, so there is no probe-then-bind race with other processes.
 * Ports this process holds are skipped without a syscall.
 */
export class PassivePortPool {
  readonly #range: PortRange | null;
  readonly #held = new Set<number>();
  #cursor: number;

  constructor(range?: PortRange | null) {
    this.#range = range ?? null;
    this.#cursor = range ? range.min + Math.floor(Math.random() * (range.max - range.min + 1)) : 0;
  }

  /** Bind `server` on `host` to a port from the range (any port without a range). */
  async bind(server: net.Server, host: string): Promise<number> {
    const range = this.#range;
    if (!range) return listen(server, host, 0);
    const size = range.max - range.min + 1;
    for (let attempt = 0; attempt < size; attempt++) {
      const port = this.#cursor;
      this.#cursor = port >= range.max ? range.min : port + 1;
      if (this.#held.has(port)) continue;
      try {
        await listen(server, host, port);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE' || (err as NodeJS.ErrnoException).code === 'EACCES') continue;
        throw err;
      }
      this.#held.add(port);
      server.once('close', () => this.#held.delete(port));
      return port;
    }
    throw new NoPassivePortError();
  }
}

function listen(server: net.Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    // Both listeners go whatever the outcome: a failed attempt must not leave
    // a 'listening' callback behind to fire on a later, successful one.
    const onError = (err: Error) => {
      server.off('listening', onListening);
      reject(err);
    };
    const onListening = () => {
      server.off('error', onError);
      resolve((server.address() as net.AddressInfo).port);
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen({ host, port, exclusive: true, backlog: 4 });
  });
}

/** Work on an accepted data connection before it is handed out (e.g. the TLS handshake); rejects to refuse it. */
export type PrepareStep = (socket: Socket, signal: AbortSignal) => Promise<Socket>;

export class PassiveChannel implements DataChannel {
  readonly port: number;
  readonly #server: net.Server;
  readonly #peer: string;
  readonly #timeoutMs: number;
  /** An unused listener must not hold its port until the session ends. */
  readonly #unusedTimer: NodeJS.Timeout;
  #socket: Socket | null = null;
  /** The data connection once accepted and prepared (TLS handshake under PROT P). */
  #ready: Promise<Socket> | null = null;
  #prepare: PrepareStep | null = null;
  /** Cancels a prepare step still running when the channel closes. */
  readonly #closed = new AbortController();
  #waiter: ((ready: Promise<Socket>) => void) | null = null;

  private constructor(server: net.Server, port: number, peer: string, timeoutMs: number) {
    this.#server = server;
    this.port = port;
    this.#peer = peer;
    this.#timeoutMs = timeoutMs;
    this.#unusedTimer = setTimeout(() => {
      if (!this.#waiter && !this.#socket) this.close();
    }, timeoutMs).unref();
    server.on('connection', (socket) => this.#onConnection(socket));
    server.on('error', () => this.close());
  }

  static async open(pool: PassivePortPool, host: string, peer: string, timeoutMs: number): Promise<PassiveChannel> {
    const server = net.createServer({ noDelay: true });
    try {
      const port = await pool.bind(server, host);
      return new PassiveChannel(server, port, peer, timeoutMs);
    } catch (err) {
      server.close();
      throw err;
    }
  }

  #onConnection(socket: Socket): void {
    if (this.#socket || !sameHost(socket.remoteAddress ?? '', this.#peer)) {
      socket.destroy();
      return;
    }
    this.#socket = socket;
    this.#server.close();
    socket.on('error', () => {}); // the transfer observes errors through its pipeline
    this.#ready = this.#prepare ? this.#prepare(socket, this.#closed.signal) : Promise.resolve(socket);
    this.#ready.catch(() => {}); // observed by open(), if a transfer ever asks
    this.#waiter?.(this.#ready);
  }

  /**
   * Run `step` on the data connection as soon as it is accepted, before any
   * transfer asks for it: under PROT P the client may start its TLS
   * handshake right after connecting, before it even sends RETR.
   */
  prepareWith(step: PrepareStep): void {
    this.#prepare = step;
  }

  open(signal: AbortSignal): Promise<Socket> {
    clearTimeout(this.#unusedTimer);
    if (this.#ready) {
      // ABOR during the prepare step (a TLS handshake) cancels it; after that the transfer handles ABOR itself.
      const onAbort = () => this.close();
      signal.addEventListener('abort', onAbort, { once: true });
      const forget = () => signal.removeEventListener('abort', onAbort);
      this.#ready.then(forget, forget);
      return this.#ready;
    }
    if (signal.aborted || !this.#server.listening) return Promise.reject(new Error('passive listener closed or aborted'));
    return new Promise((resolve, reject) => {
      const finish = (err: Error | null, ready?: Promise<Socket>) => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        this.#waiter = null;
        if (err) reject(err);
        else resolve(ready!);
      };
      const onAbort = () => finish(new Error('aborted while waiting for the data connection'));
      const timer = setTimeout(() => finish(new Error('data connection timed out')), this.#timeoutMs);
      signal.addEventListener('abort', onAbort, { once: true });
      this.#waiter = (ready) => finish(null, ready);
    });
  }

  close(): void {
    clearTimeout(this.#unusedTimer);
    this.#closed.abort();
    this.#server.close();
    this.#socket?.destroy();
  }
}
