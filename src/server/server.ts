/**
 * The server: the control listener, connection limits, sessions and
 * graceful shutdown. One FtpServer is one listening address; run several for
 * several addresses (e.g. IPv4 and IPv6).
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { PassivePortPool } from '../data/passive.js';
import type { ServerEvents } from '../observability/events.js';
import { normalizeAddress } from '../protocol/address.js';
import { formatReply } from '../protocol/reply.js';
import { defaultCommands } from '../session/command-table.js';
import type { CommandSpec } from '../session/command.js';
import { Session, type SessionHost } from '../session/session.js';
import { resolveOptions, type FtpServerOptions, type ResolvedOptions } from './options.js';

export class FtpServer extends EventEmitter<ServerEvents> implements SessionHost {
  readonly options: ResolvedOptions;
  readonly passivePorts: PassivePortPool;
  readonly commands: ReadonlyMap<string, CommandSpec> = defaultCommands();
  readonly #net: net.Server;
  readonly #sessions = new Set<Session>();
  readonly #perIp = new Map<string, number>();
  #nextId = 1;
  #closing: Promise<void> | null = null;

  constructor(options: FtpServerOptions) {
    super();
    this.options = resolveOptions(options);
    this.passivePorts = new PassivePortPool(this.options.passivePorts);
    this.#net = net.createServer({ noDelay: true }, (socket) => this.#accept(socket));
    // Errors before listening reject listen(); later ones are the embedder's to handle.
    this.#net.on('error', (err) => {
      if (this.#net.listening) this.emit('error', err);
    });
  }

  get logger() {
    return this.options.logger;
  }

  /** Start listening. Resolves with the bound address (useful with port 0). */
  listen(port = this.options.port, host = this.options.host): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.#net.once('error', onError);
      this.#net.listen({ port, host }, () => {
        this.#net.off('error', onError);
        const address = this.address()!;
        this.logger.info({ address: address.address, port: address.port }, 'listening');
        resolve(address);
      });
    });
  }

  address(): net.AddressInfo | null {
    return this.#net.address() as net.AddressInfo | null;
  }

  get connectionCount(): number {
    return this.#sessions.size;
  }

  #accept(socket: net.Socket): void {
    if (this.#closing) {
      socket.end(formatReply(421, 'Server shutting down.'));
      return;
    }
    const ip = normalizeAddress(socket.remoteAddress ?? '');
    const fromIp = this.#perIp.get(ip) ?? 0;
    if (this.#sessions.size >= this.options.maxConnections || fromIp >= this.options.maxConnectionsPerIp) {
      this.logger.warn({ remote: ip }, 'connection limit reached');
      socket.on('error', () => {});
      socket.end(formatReply(421, 'Too many connections; try again later.'));
      setTimeout(() => socket.destroy(), 2000).unref();
      return;
    }
    const session = new Session(String(this.#nextId++), socket, this);
    this.#sessions.add(session);
    this.#perIp.set(ip, fromIp + 1);
    session.onClose(() => {
      this.#sessions.delete(session);
      const left = (this.#perIp.get(ip) ?? 1) - 1;
      if (left > 0) this.#perIp.set(ip, left);
      else this.#perIp.delete(ip);
    });
    this.emit('connect', { sessionId: session.id, remoteAddress: session.remoteAddress, remotePort: session.remotePort });
    session.start();
  }

  /**
   * Graceful shutdown: stop accepting, close idle sessions with 421, let
   * running transfers finish for up to `graceMs`, then cut what remains.
   */
  close(graceMs = this.options.shutdownGraceMs): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      this.#net.close();
      for (const session of this.#sessions) session.shutdown();
      const deadline = setTimeout(() => {
        for (const session of this.#sessions) session.destroy();
      }, graceMs);
      const check = () => {
        if (this.#sessions.size > 0) return;
        clearTimeout(deadline);
        this.logger.info('closed');
        resolve();
      };
      for (const session of this.#sessions) session.onClose(() => setImmediate(check));
      check();
    });
    return this.#closing;
  }
}

export function createServer(options: FtpServerOptions): FtpServer {
  return new FtpServer(options);
}
