/**
 * The server: the control listener (and the implicit-FTPS one), connection
 * limits, sessions and graceful shutdown. One FtpServer is one listening
 * address; run several for several addresses (e.g. IPv4 and IPv6).
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { PassivePortPool } from '../data/passive.js';
import type { ServerEvents } from '../observability/events.js';
import { channels, publishEvent } from '../observability/channels.js';
import { commandTable } from '../session/command-table.js';
import type { CommandSpec } from '../session/command.js';
import { Session, type SessionHost } from '../session/session.js';
import { TlsContext } from '../tls/context.js';
import type { TlsCredentials } from '../tls/options.js';
import { Defender, guard } from '../limits/defender.js';
import { AdmissionGate, refuse } from './admission.js';
import { ProxyProtocolAcceptor, type Peer } from './proxy-protocol.js';
import { resolveOptions, type FtpServerOptions, type ResolvedOptions } from './options.js';
import { local, ownerId } from './shared.js';
import { completeSharedState, type SharedState } from './shared-state.js';
import { Quotas } from '../limits/quotas.js';
import type { UserUsage } from '../limits/quota-ledger.js';
import { LocalRates } from '../limits/throttle.js';
import { Hooks, type Hook, type HookName } from './hooks.js';

export interface ConnectionOptions {
  /** The connection is implicit FTPS: TLS starts with its first byte. */
  implicitTls?: boolean;
  /** Already admitted elsewhere (the cluster primary's gate): skip this server's. */
  admitted?: boolean;
  /**
   * The client, when the socket's peer is a load balancer that named it in
   * a PROXY protocol header (read by the listener, or by the cluster
   * primary): the gate, the session, its logs, events and data-connection
   * checks use it instead of the socket's address.
   */
  peer?: Peer;
  /** Bytes the client sent that were read along with its PROXY protocol header: served before the rest. */
  head?: Buffer;
}

/** Events logged at info level: what users did, for operators reading logs. Payloads carry no secrets. */
const ACTIVITY_EVENTS = new Set<keyof ServerEvents>([
  'login',
  'login-failed',
  'logout',
  'file-received',
  'file-sent',
  'upload-aborted',
  'download-aborted',
  'delete',
  'rename',
  'mkdir',
  'rmdir',
]);

/** How long close() waits, after its grace, for the transfers it cut to discard their uploads. */
const CUT_SETTLE_MS = 5000;

export class FtpServer extends EventEmitter<ServerEvents> implements SessionHost {
  #options: ResolvedOptions;
  readonly passivePorts: PassivePortPool;
  readonly commands: ReadonlyMap<string, CommandSpec>;
  readonly tls: TlsContext | null;
  readonly #net: net.Server;
  /** Implicit FTPS (TLS from the first byte), when `tls.implicitPort` is set. */
  readonly #implicitNet: net.Server | null;
  readonly #sessions = new Set<Session>();
  /** Connection caps and address policies, checked before the greeting. */
  readonly gate: AdmissionGate;
  /** State all processes of this server agree on (see shared.ts); made once, kept across reconfigure. */
  readonly shared: SharedState;
  /** This server's own defender; null when `options.shared.defender` is another's (a cluster worker: the primary's). */
  readonly #defender: Defender | null;
  /** The storage policies of this process's sessions (maximum file size, quotas over shared.quotas). */
  readonly quotas: Quotas;
  /** Reads PROXY protocol headers on the listeners when `proxyProtocol.trustedSources` is set. */
  readonly #proxy: ProxyProtocolAcceptor;
  /** This process's bandwidth: leases from `shared.rates`, spent by its transfers. */
  readonly rates: LocalRates;
  /** Awaited hooks (beforeUpload, ...): added with hook() before the server serves, then locked. */
  readonly hooks = new Hooks();
  #nextId = 1;
  /** Set once: session ids stay unique in a process's logs and events across a reconfigure. */
  readonly #sessionIdPrefix: string;
  #closing: Promise<void> | null = null;

  constructor(options: FtpServerOptions) {
    super();
    this.#options = resolveOptions(options);
    this.commands = commandTable(options.commands);
    this.#sessionIdPrefix = this.#options.sessionIdPrefix;
    const given = options.shared ?? {};
    this.#defender = given.defender ? null : new Defender(this.#options.defender, { logger: this.#options.logger, onBan: (info) => this.notify('ban', info), onUnban: (info) => this.notify('unban', info) });
    this.shared = completeSharedState({ ...given, defender: given.defender ?? local(this.#defender!) });
    // A ledger call that fails after an upload ended (primary gone) leaves the count off until the next start.
    this.quotas = new Quotas(this.shared.quotas, ownerId(), (err) => this.logger.warn({ err }, 'quota ledger update failed; usage is recounted at the next start'));
    this.rates = new LocalRates(this.shared.rates, ownerId());
    this.gate = new AdmissionGate(this.#options);
    if (this.#defender) guard(this.gate, this.#defender);
    this.#proxy = new ProxyProtocolAcceptor(this.#options.proxyProtocol, this.#options.logger);
    this.passivePorts = new PassivePortPool(this.#options.passivePorts);
    this.tls = this.#options.tls ? new TlsContext(this.#options.tls.credentials) : null;
    this.#net = this.#listener({});
    this.#implicitNet = this.#options.tls?.implicitPort != null ? this.#listener({ implicitTls: true }) : null;
  }

  #listener(kind: ConnectionOptions): net.Server {
    const server = net.createServer({ noDelay: true }, (socket) => this.#accept(socket, kind));
    // Errors before listening reject listen(); later ones are the embedder's to handle.
    server.on('error', (err) => {
      if (server.listening) this.emit('error', err);
    });
    return server;
  }

  /** A connection on our own listeners: its PROXY protocol header first, when that is on. */
  #accept(socket: net.Socket, kind: ConnectionOptions): void {
    if (!this.#proxy.enabled) {
      this.handleConnection(socket, kind);
      return;
    }
    void this.#proxy.accept(socket, kind.implicitTls === true, this.options.maxConnections).then((proxied) => {
      if (!proxied) return;
      if (this.#closing) {
        socket.destroy();
        return;
      }
      this.handleConnection(socket, { ...kind, ...proxied });
    });
  }

  /**
   * Replace the certificate, key or TLS settings for new handshakes (SIGHUP
   * in the CLI). Sessions already secured keep going, and their data
   * connections still resume: the session ticket keys carry over. Throws a
   * TypeError, keeping the old context, when the new one is unusable.
   */
  reloadTls(credentials: TlsCredentials): void {
    if (!this.tls) throw new TypeError('reloadTls: this server was created without tls options');
    this.tls.reload(credentials);
    this.logger.info('TLS certificate reloaded');
  }

  /** The settings in force; sessions read them at each use, so `reconfigure` reaches sessions already running. */
  get options(): ResolvedOptions {
    return this.#options;
  }

  /**
   * What `username` stores (bytes, files) and what uploads in flight have
   * reserved, as the quota ledger has it (the cluster's, in a worker).
   * Null while the user's home has not been counted since the start: that
   * happens at the user's first change (upload, delete, rename) when the
   * user has a quota. To count any Storage now: `storageUsage(storage)`.
   */
  usage(username: string): Promise<UserUsage | null> {
    return this.shared.quotas.usage(username);
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
    const fixed: string[] = (['host', 'port', 'passivePorts'] as const).filter((key) => JSON.stringify(next[key]) !== JSON.stringify(old[key]));
    // TLS on or off, and the implicit listener, need a restart; the certificate
    // and the policies change now (the ticket keys carry over: see reloadTls).
    let tls = next.tls;
    if (!old.tls !== !next.tls || (old.tls && next.tls && old.tls.implicitPort !== next.tls.implicitPort)) {
      fixed.push('tls');
      tls = old.tls && next.tls ? Object.freeze({ ...next.tls, implicitPort: old.tls.implicitPort }) : old.tls;
    }
    if (tls && tls !== old.tls) this.tls!.reload(tls.credentials);
    this.#options = Object.freeze({ ...next, host: old.host, port: old.port, passivePorts: old.passivePorts, tls });
    this.gate.configure(this.#options);
    this.#defender?.configure(this.#options.defender);
    this.#proxy.configure(this.#options.proxyProtocol);
    return fixed;
  }

  /**
   * Add an awaited hook, run before the action it names: it may let it go
   * on, refuse it (`{ deny: 'reason the client sees' }`) or rewrite it. Only
   * before `listen()` or the first `handleConnection()`; several run in the
   * order added. See docs/events.md.
   */
  hook<K extends HookName>(name: K, hook: Hook<K>): this {
    this.hooks.add(name, hook);
    return this;
  }

  notify<K extends keyof ServerEvents>(event: K, ...args: ServerEvents[K]): void {
    if (ACTIVITY_EVENTS.has(event)) this.logger.info(args[0] as object, event);
    if (event !== 'error') publishEvent(event, args[0]);
    try {
      (this.emit as (event: K, ...args: ServerEvents[K]) => boolean)(event, ...args);
    } catch (err) {
      // A listener's bug must not take the session (or the process) down.
      this.logger.error({ err, event }, 'event listener threw');
    }
  }

  /**
   * Start listening (and on `tls.implicitPort` too, when set). Resolves with
   * the control listener's address (useful with port 0); see
   * `implicitAddress()` for the other.
   */
  async listen(port = this.options.port, host = this.options.host): Promise<net.AddressInfo> {
    this.hooks.lock();
    const address = await listenOn(this.#net, port, host);
    this.logger.info({ address: address.address, port: address.port }, 'listening');
    if (this.#implicitNet) {
      try {
        const implicit = await listenOn(this.#implicitNet, this.options.tls!.implicitPort!, host);
        this.logger.info({ address: implicit.address, port: implicit.port }, 'listening for implicit FTPS');
      } catch (err) {
        this.#net.close();
        throw err;
      }
    }
    return address;
  }

  address(): net.AddressInfo | null {
    return this.#net.address() as net.AddressInfo | null;
  }

  /** The implicit-FTPS listener's address, when it listens. */
  implicitAddress(): net.AddressInfo | null {
    return (this.#implicitNet?.address() as net.AddressInfo | null | undefined) ?? null;
  }

  get connectionCount(): number {
    return this.#sessions.size;
  }

  /**
   * Serve a control connection accepted elsewhere (cluster mode: the primary
   * accepts and hands sockets to workers). `listen()` uses it too.
   */
  handleConnection(socket: net.Socket, kind: ConnectionOptions = {}): void {
    this.hooks.lock();
    if (kind.implicitTls && !this.tls) {
      this.logger.warn('implicit FTPS connection on a server without tls options; closing it');
      socket.destroy();
      return;
    }
    let key: string | null = null;
    if (!kind.admitted) {
      const admission = this.gate.admit(kind.peer?.address ?? socket.remoteAddress ?? '');
      if (!admission.admitted) {
        refuse(socket, kind.implicitTls === true, admission, this.logger);
        return;
      }
      key = admission.key;
    }
    // The client's first bytes, read with its header, go back in front of the rest.
    if (kind.head && kind.head.length > 0) socket.unshift(kind.head);
    let session: Session;
    if (kind.implicitTls) {
      // Replies written before the handshake completes wait inside the TLS socket.
      const binding = this.tls!.bind();
      session = new Session(`${this.#sessionIdPrefix}${this.#nextId++}`, binding.wrapControl(socket, this.#options.tls!.requestClientCert), this, binding, kind.peer);
    } else {
      session = new Session(`${this.#sessionIdPrefix}${this.#nextId++}`, socket, this, undefined, kind.peer);
    }
    this.#sessions.add(session);
    session.onClose(() => {
      this.#sessions.delete(session);
      if (key !== null) this.gate.release(key);
    });
    this.notify('connect', { sessionId: session.id, remoteAddress: session.remoteAddress, remotePort: session.remotePort });
    if (channels.sessionOpen.hasSubscribers) channels.sessionOpen.publish({ sessionId: session.id, remoteAddress: session.remoteAddress, remotePort: session.remotePort, implicitTls: kind.implicitTls === true });
    session.start();
    // A socket whose header was read is paused. A plain session reads it
    // directly; TLS takes the socket's buffered bytes (the head) itself when
    // it starts reading, and resuming the socket would hand them to no one.
    if (!kind.implicitTls) socket.resume();
  }

  /**
   * Graceful shutdown: stop accepting, close idle sessions with 421, let
   * running transfers finish for up to `graceMs`, then cut what remains.
   */
  close(graceMs = this.options.shutdownGraceMs): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      if (this.#net.listening) this.#net.close();
      if (this.#implicitNet?.listening) this.#implicitNet.close();
      this.passivePorts.close();
      this.#defender?.close();
      for (const session of this.#sessions) session.shutdown();
      // Transfers cut at the deadline: close() resolves once their storage
      // streams have settled, so an aborted upload's temp file is gone by then.
      const cut: Array<Promise<void>> = [];
      const deadline = setTimeout(() => {
        for (const session of this.#sessions) {
          const done = session.transferDone;
          if (done) cut.push(done);
          session.destroy();
        }
      }, graceMs);
      let closed = false;
      const check = () => {
        if (this.#sessions.size > 0 || closed) return;
        closed = true;
        clearTimeout(deadline);
        // Bounded: a write stuck on a hung disk must not keep close() from resolving.
        void Promise.race([Promise.all(cut), new Promise((r) => setTimeout(r, CUT_SETTLE_MS).unref())]).then(() => {
          this.logger.info('closed');
          resolve();
        });
      };
      for (const session of this.#sessions) session.onClose(() => setImmediate(check));
      check();
    });
    return this.#closing;
  }
}

export function listenOn(server: net.Server, port: number, host: string): Promise<net.AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host }, () => {
      server.off('error', reject);
      resolve(server.address() as net.AddressInfo);
    });
  });
}

export function createServer(options: FtpServerOptions): FtpServer {
  return new FtpServer(options);
}
