/**
 * Passive data connections (RFC 959 PASV, RFC 2428 EPSV).
 *
 * Each PASV takes a listener from the pool; the first connection from the
 * control connection's peer address becomes the data socket and the listener
 * goes back to the pool at once, so another PASV can have its port while
 * this transfer runs. Connections from any other address, and any that
 * reach a listener nobody is waiting on, are dropped (no data-connection
 * theft). Readiness is one event and one deadline, never a polling loop.
 *
 * Listeners stay open between transfers (up to MAX_IDLE_LISTENERS per
 * process): a PASV then costs no socket/bind/listen/close, which is a good
 * part of a small transfer's CPU.
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

/** Idle listeners kept open per process; beyond this a released listener closes. */
const MAX_IDLE_LISTENERS = 64;

/** A listening socket on a passive port, lent to one channel at a time. */
export class PassiveListener {
  /** Who gets the next connection; null while idle in the pool. */
  owner: ((socket: Socket) => void) | null = null;

  constructor(
    readonly server: net.Server,
    readonly host: string,
    readonly port: number,
  ) {
    server.on('connection', (socket) => (this.owner ? this.owner(socket) : socket.destroy()));
    // Accept errors (EMFILE, ...): this listener is done; its channel, if any, times out or gets its socket elsewhere.
    server.on('error', () => server.close());
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
  /** Open listeners nobody uses, oldest first (so ports rotate), by local address. */
  readonly #idle = new Map<string, PassiveListener[]>();
  #idleCount = 0;
  #closed = false;

  constructor(range?: PortRange | null) {
    this.#range = range ?? null;
    this.#cursor = range ? range.min + Math.floor(Math.random() * (range.max - range.min + 1)) : 0;
  }

  /** A listener on `host`: an idle one if there is one, else a newly bound port from the range. */
  async acquire(host: string): Promise<PassiveListener> {
    const idle = this.#idle.get(host);
    while (idle?.length) {
      const listener = idle.shift()!;
      this.#idleCount--;
      if (!listener.server.listening) continue; // closed by an error while idle
      listener.server.ref();
      return listener;
    }
    const server = net.createServer({ noDelay: true });
    try {
      return new PassiveListener(server, host, await this.#bind(server, host));
    } catch (err) {
      server.close();
      throw err;
    }
  }

  /** Back to the pool (or closed, if the pool is full or shut). */
  release(listener: PassiveListener): void {
    listener.owner = null;
    if (this.#closed || this.#idleCount >= MAX_IDLE_LISTENERS || !listener.server.listening) {
      listener.server.close();
      return;
    }
    listener.server.unref(); // an idle listener never keeps the process alive
    let list = this.#idle.get(listener.host);
    if (!list) this.#idle.set(listener.host, (list = []));
    list.push(listener);
    this.#idleCount++;
  }

  /** Close every idle listener; listeners released later close too (server shutdown). */
  close(): void {
    this.#closed = true;
    for (const list of this.#idle.values()) for (const listener of list) listener.server.close();
    this.#idle.clear();
    this.#idleCount = 0;
  }

  async #bind(server: net.Server, host: string): Promise<number> {
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

/** The reason a closed channel gives its prepare step; one object, since abort() without a reason builds a DOMException with a stack each time. */
const CHANNEL_CLOSED = new Error('data channel closed');

export class PassiveChannel implements DataChannel {
  readonly port: number;
  /** Ours until the data connection arrives or the channel closes, then back in the pool. */
  #listener: PassiveListener | null;
  readonly #pool: PassivePortPool;
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

  private constructor(pool: PassivePortPool, listener: PassiveListener, peer: string, timeoutMs: number) {
    this.#pool = pool;
    this.#listener = listener;
    this.port = listener.port;
    this.#peer = peer;
    this.#timeoutMs = timeoutMs;
    this.#unusedTimer = setTimeout(() => {
      if (!this.#waiter && !this.#socket) this.close();
    }, timeoutMs).unref();
    listener.owner = (socket) => this.#onConnection(socket);
  }

  static async open(pool: PassivePortPool, host: string, peer: string, timeoutMs: number): Promise<PassiveChannel> {
    return new PassiveChannel(pool, await pool.acquire(host), peer, timeoutMs);
  }

  #onConnection(socket: Socket): void {
    if (this.#socket || !sameHost(socket.remoteAddress ?? '', this.#peer)) {
      socket.destroy();
      return;
    }
    this.#socket = socket;
    this.#releaseListener();
    socket.on('error', () => {}); // the transfer observes errors through its pipeline
    this.#ready = this.#prepare ? this.#prepare(socket, this.#closed.signal) : Promise.resolve(socket);
    this.#ready.catch(() => {}); // observed by open(), if a transfer ever asks
    this.#waiter?.(this.#ready);
  }

  #releaseListener(): void {
    if (this.#listener) this.#pool.release(this.#listener);
    this.#listener = null;
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
    if (signal.aborted || !this.#listener?.server.listening) return Promise.reject(new Error('passive listener closed or aborted'));
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
    if (!this.#closed.signal.aborted) this.#closed.abort(CHANNEL_CLOSED);
    this.#releaseListener();
    this.#socket?.destroy();
  }
}
