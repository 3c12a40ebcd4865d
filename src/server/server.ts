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

/** Events logged at info level: what users did, for operators reading logs. Payloads carry no secrets. */
const ACTIVITY_EVENTS = new Set<keyof ServerEvents>([
  'login',
  'login-failed',
  'file-received',
  'file-sent',
  'upload-aborted',
  'delete',
  'rename',
  'mkdir',
  'rmdir',
]);

export class FtpServer extends EventEmitter<ServerEvents> implements SessionHost {
  #options: ResolvedOptions;
  readonly passivePorts: PassivePortPool;
  readonly commands: ReadonlyMap<string, CommandSpec> = defaultCommands();
  readonly #net: net.Server;
  readonly #sessions = new Set<Session>();
  readonly #perIp = new Map<string, number>();
  #nextId = 1;
  #closing: Promise<void> | null = null;

  constructor(options: FtpServerOptions) {
    super();
    this.#options = resolveOptions(options);
    this.passivePorts = new PassivePortPool(this.#options.passivePorts);
    this.#net = net.createServer({ noDelay: true }, (socket) => this.handleConnection(socket));
    // Errors before listening reject listen(); later ones are the embedder's to handle.
    this.#net.on('error', (err) => {
      if (this.#net.listening) this.emit('error', err);
    });
  }

  /** The settings in force; sessions read them at each use, so `reconfigure` reaches sessions already running. */
  get options(): ResolvedOptions {
    return this.#options;
  }

  get logger() {
    return this.#options.logger;
  }

  /**
   * Replace the settings without a restart (reload): new logins use the new
   * authenticator, and limits, timeouts and the greeting apply from now on.
   * The listening address and the passive range cannot change while bound:
   * they keep their values, and their names are returned so the caller can
   * say a restart is needed. Throws TypeError, keeping the old settings, if
   * the new ones are invalid.
   */
  reconfigure(options: FtpServerOptions): string[] {
    const next = resolveOptions(options);
    const old = this.#options;
    const fixed = (['host', 'port', 'passivePorts'] as const).filter((key) => JSON.stringify(next[key]) !== JSON.stringify(old[key]));
    this.#options = Object.freeze({ ...next, host: old.host, port: old.port, passivePorts: old.passivePorts });
    return fixed;
  }

  notify<K extends keyof ServerEvents>(event: K, ...args: ServerEvents[K]): void {
    if (ACTIVITY_EVENTS.has(event)) this.logger.info(args[0] as object, event);
    try {
      (this.emit as (event: K, ...args: ServerEvents[K]) => boolean)(event, ...args);
    } catch (err) {
      // A listener's bug must not take the session (or the process) down.
      this.logger.error({ err, event }, 'event listener threw');
    }
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

  /**
   * Serve a control connection accepted elsewhere (cluster mode: the primary
   * accepts and hands sockets to workers). `listen()` uses it too.
   */
  handleConnection(socket: net.Socket): void {
    const ip = limitKey(normalizeAddress(socket.remoteAddress ?? ''));
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
    this.notify('connect', { sessionId: session.id, remoteAddress: session.remoteAddress, remotePort: session.remotePort });
    session.start();
  }

  /**
   * Graceful shutdown: stop accepting, close idle sessions with 421, let
   * running transfers finish for up to `graceMs`, then cut what remains.
   */
  close(graceMs = this.options.shutdownGraceMs): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      if (this.#net.listening) this.#net.close();
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

/**
 * The per-IP limit counts IPv6 clients by their /64: one host usually owns a
 * whole /64, so counting single addresses would be no limit at all.
 */
export function limitKey(address: string): string {
  if (!address.includes(':')) return address;
  const groups = address.split('::');
  const head = groups[0] ? groups[0].split(':') : [];
  const tail = groups.length > 1 && groups[1] ? groups[1].split(':') : [];
  const full = [...head, ...Array(Math.max(0, 8 - head.length - tail.length)).fill('0'), ...tail];
  return `${full.slice(0, 4).join(':')}::/64`;
}

export function createServer(options: FtpServerOptions): FtpServer {
  return new FtpServer(options);
}
