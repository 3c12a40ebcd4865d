/**
 * Passive data connections (RFC 959 PASV, RFC 2428 EPSV).
 *
 * Each PASV takes a listener from the pool; the first connection from the
 * control connection's peer address becomes the data socket. Connections
 * from any other address, and any that reach a listener nobody is waiting
 * on, are dropped (no data-connection theft). Readiness is one event and one
 * deadline, never a polling loop.
 *
 * A listener whose data connection arrived goes back to the pool at once
 * (another PASV can have its port while this transfer runs) and stays open
 * for the next one: a PASV then costs no socket/bind/listen/close, a good
 * part of a small transfer's CPU. A listener whose channel closed without a
 * connection (ABOR, a second PASV, a timeout) is closed instead, as is any
 * idle one after IDLE_LISTENER_MS: a client connecting late must find the
 * port closed, never another session waiting on it.
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

/** At most this many idle listeners per process, and never more than a quarter of the range. */
const MAX_IDLE_LISTENERS = 64;
/** An idle listener closes after this long unused, so a quiet server holds no passive ports. */
const IDLE_LISTENER_MS = 10_000;

/**
 * Passive listeners of every pool in this process (the metrics read them):
 * `open` are bound (lent or idle), `lent` wait for or carry a channel's data
 * connection.
 */
const listeners = { open: 0, lent: 0 };
export function passiveListenerCounts(): Readonly<{ open: number; lent: number }> {
  return listeners;
}

/** A listening socket on a passive port, lent to one channel at a time. */
export class PassiveListener {
  /** Who gets the next connection; null while idle in the pool. */
  owner: ((socket: Socket) => void) | null = null;
  idleTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly server: net.Server,
    readonly host: string,
    readonly port: number,
  ) {
    server.on('connection', (socket) => (this.owner ? this.owner(socket) : socket.destroy()));
    listeners.open++;
    server.once('close', () => listeners.open--);
    // Accept errors (EMFILE, ...): this listener is done; its channel, if any, times out.
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
  readonly #maxIdle: number;
  #closed = false;

  constructor(range?: PortRange | null) {
    this.#range = range ?? null;
    this.#cursor = range ? range.min + Math.floor(Math.random() * (range.max - range.min + 1)) : 0;
    this.#maxIdle = range ? Math.min(MAX_IDLE_LISTENERS, Math.floor((range.max - range.min + 1) / 4)) : MAX_IDLE_LISTENERS;
  }

  /** A listener on `host`: an idle one if there is one, else a newly bound port from the range. */
  async acquire(host: string): Promise<PassiveListener> {
    const idle = this.#idle.get(host);
    while (idle?.length) {
      const listener = idle.shift()!;
      clearTimeout(listener.idleTimer!);
      if (!listener.server.listening) continue; // closed by an error while idle
      listener.server.ref();
      listeners.lent++;
      return listener;
    }
    const server = net.createServer({ noDelay: true });
    try {
      const listener = new PassiveListener(server, host, await this.#bind(server, host));
      listeners.lent++;
      return listener;
    } catch (err) {
      server.close();
      throw err;
    }
  }

  /** Its data connection was accepted: keep it open for the next PASV (or close it if the pool is full or shut). */
  recycle(listener: PassiveListener): void {
    listeners.lent--;
    listener.owner = null;
    if (this.#closed || this.#idleCount() >= this.#maxIdle || !listener.server.listening) {
      listener.server.close();
      return;
    }
    listener.server.unref(); // an idle listener never keeps the process alive
    listener.idleTimer = setTimeout(() => this.#evict(listener), IDLE_LISTENER_MS).unref();
    let list = this.#idle.get(listener.host);
    if (!list) this.#idle.set(listener.host, (list = []));
    list.push(listener);
  }

  /** Its channel closed without a connection: close it, so a late one is refused rather than handed to the next PASV. */
  discard(listener: PassiveListener): void {
    listeners.lent--;
    listener.owner = null;
    listener.server.close();
  }

  /** Close every idle listener; listeners recycled later close too (server shutdown). */
  close(): void {
    this.#closed = true;
    void this.#evictAll();
  }

  #evict(listener: PassiveListener): Promise<void> {
    const list = this.#idle.get(listener.host);
    const at = list?.indexOf(listener) ?? -1;
    if (at >= 0) list!.splice(at, 1);
    clearTimeout(listener.idleTimer!);
    return new Promise((resolve) => (listener.server.listening ? listener.server.close(() => resolve()) : resolve()));
  }

  #idleCount(): number {
    let count = 0;
    for (const list of this.#idle.values()) count += list.length;
    return count;
  }

  #evictAll(): Promise<void> {
    const all = [...this.#idle.values()].flat();
    return Promise.all(all.map((listener) => this.#evict(listener))).then(() => undefined);
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
    // Idle listeners of other local addresses may hold the rest of the range: free them and try once more.
    if (this.#idleCount() > 0) {
      await this.#evictAll();
      return this.#bind(server, host);
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
  /** Ours until the data connection arrives (then recycled) or the channel closes (then closed). */
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
    if (this.#listener) this.#pool.recycle(this.#listener);
    this.#listener = null;
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
    if (this.#listener) this.#pool.discard(this.#listener);
    this.#listener = null;
    this.#socket?.destroy();
  }
}
