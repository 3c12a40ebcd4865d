/**
 * One control connection: framing, the command queue, login state, the data
 * channel and the transfer in progress. Command semantics live in
 * `commands/`; this file owns the lifecycle and the generic checks.
 */
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { Account, AccountLimits, ClientCertificate, Permission, TlsPolicy } from '../auth/types.js';
import { accountHasPermission } from '../auth/types.js';
import { ErrorCodes, FerryError, fromSystemError, isExpectedError, needsOperator, replyForError } from '../errors.js';
import type { ServerEvents } from '../observability/events.js';
import type { Logger } from '../observability/logger.js';
import { normalizeAddress } from '../protocol/address.js';
import { LineReader, parseCommand, type LineSink, type ParsedCommand } from '../protocol/line-reader.js';
import { MLSX_FACTS, type MlsxFact } from '../protocol/listing.js';
import { DEFAULT_HASH_ALGORITHM, type ByteRange, type HashAlgorithm } from '../protocol/hash.js';
import { resolvePath, stripListOptions } from '../protocol/path.js';
import { formatReply } from '../protocol/reply.js';
import type { DataChannel } from '../data/channel.js';
import { refusalText, type Offence, type Verdict } from '../limits/defender.js';
import type { PassivePortPool } from '../data/passive.js';
import type { ResolvedOptions } from '../server/options.js';
import { leaseId, ownerId } from '../server/shared.js';
import type { SharedState } from '../server/shared-state.js';
import type { Quotas } from '../limits/quotas.js';
import { ratesFor, type LocalRates, type Throttle } from '../limits/throttle.js';
import type { Storage } from '../storage/types.js';
import type { SessionBinding, TlsContext } from '../tls/context.js';
import { handshake } from '../tls/handshake.js';
import type { CommandSpec } from './command.js';
import type { HookName, HookRequests, Hooks } from '../server/hooks.js';
import { findCommand } from './command-table.js';
import { channels, type TransferDirection, type TransferStartMessage } from '../observability/channels.js';

/** What a session needs from its server. */
export interface SessionHost {
  readonly options: ResolvedOptions;
  readonly passivePorts: PassivePortPool;
  readonly commands: ReadonlyMap<string, CommandSpec>;
  readonly logger: Logger;
  /** State all processes of the server agree on (sessions per user, ...). */
  readonly shared: SharedState;
  /** Wraps a logged-in account's storage in the storage policies (file size, quotas) of its limits. */
  readonly quotas: Quotas;
  /** Bandwidth pools of this process, for transfers under a rate limit. */
  readonly rates: LocalRates;
  /** The shared TLS context, when the server has a certificate. */
  readonly tls: TlsContext | null;
  /** Awaited hooks (beforeUpload, ...), run through Session.runHook. */
  readonly hooks: Hooks;
  /** Emit an event; a listener that throws is logged, never allowed to break the session. */
  notify<K extends keyof ServerEvents>(event: K, ...args: ServerEvents[K]): void;
}

type LoginState =
  | { kind: 'anonymous' }
  | { kind: 'user-given'; username: string; tlsPolicy: TlsPolicy }
  | { kind: 'logged-in'; account: Account; storage: Storage; tlsPolicy: TlsPolicy; limits: Limits; slot: string | null; at: number; ended?: true };

/** A session's limits in force: the account's own over the server's perUserLimits, key by key. */
export type Limits = Readonly<Required<AccountLimits>>;

export function effectiveLimits(defaults: Limits, own: AccountLimits | undefined): Limits {
  if (!own) return defaults;
  const limits = { ...defaults };
  for (const key of Object.keys(defaults) as Array<keyof Limits>) if (own[key] !== undefined) limits[key] = own[key];
  return Object.freeze(limits);
}

interface Transfer {
  readonly verb: string;
  readonly controller: AbortController;
  readonly done: Promise<void>;
  path: string | null;
  /** Set once the data connection is open (and, under PROT P, secured). */
  socket: Socket | null;
  /** An upload may outlive its control connection after QUIT (see #cleanup). */
  upload: boolean;
  readonly startedAt: number;
  /** Why the data transfer failed, for the aborted events and the log. */
  failure: string | null;
  /** Bytes done by a command without a data connection (a HASH), for STAT. */
  progress: number;
  /** The transfer:start message, once the 150 went out (the channel's end message repeats it). */
  started: TransferStartMessage | null;
  /** The outcome the events report (an upload whose commit won a race with ABOR completed). */
  ok: boolean;
}

/** A queued command; `cancelled` once an ABOR, QUIT or REIN behind it made it moot. */
interface Queued {
  readonly command: ParsedCommand | null;
  /** Counted against MAX_QUEUED_BYTES. */
  readonly bytes: number;
  cancelled: boolean;
}

/**
 * Bytes of commands queued behind the running one. The socket is never
 * paused for a backlog of commands: a paused socket reads nothing, so the
 * client's close (or its ABOR) would go unnoticed until the running command
 * ends, which for a transfer waiting on its data connection is 30 s. A
 * client that queues more than this without waiting for replies is cut off.
 */
const MAX_QUEUED_BYTES = 256 * 1024;
/** What a queued command costs besides its text (the objects holding it), for the bound above. */
const QUEUED_OVERHEAD_BYTES = 64;
/** Progress STATs answered beside a transfer: one per this interval; more queue behind it. */
const STAT_BESIDE_TRANSFER_MS = 100;

const kSession = Symbol('ferry.session');
type SessionSocket = Socket & { [kSession]: Session };
/** Shared by every session until one sends OPTS MLST. */
const DEFAULT_FACTS: ReadonlySet<MlsxFact> = new Set(MLSX_FACTS);
/**
 * Replies a client has not read yet. A client that sends commands but never
 * reads is paused at the first threshold and cut off at the second, so it
 * cannot make us buffer without limit (a STAT listing is the largest reply).
 */
const REPLY_BACKLOG_PAUSE_BYTES = 64 * 1024;
const REPLY_BACKLOG_MAX_BYTES = 8 * 1024 * 1024;

export class Session implements LineSink {
  readonly id: string;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  /** True when the control connection is IPv6 (not IPv4-mapped). */
  readonly ipv6: boolean;
  readonly host: SessionHost;
  /** Date.now() at the connection. */
  readonly connectedAt = Date.now();

  cwd = '/';
  /** RFC 959 §3.1.1: ASCII is the default type. */
  transferType: 'A' | 'I' = 'A';
  restOffset = 0;
  /** The size ALLO announced for the next upload (beforeUpload's `size`); null when none. */
  allocatedBytes: number | null = null;
  renameFrom: string | null = null;
  /** RFC 2428 §4: after EPSV ALL only EPSV may set up data connections. */
  epsvAll = false;
  mlstFacts: ReadonlySet<MlsxFact> = DEFAULT_FACTS;
  failedLogins = 0;
  /** RFC 4217 PROT: 'P' encrypts data connections. Implicit TLS starts at 'P'. */
  dataProtection: 'C' | 'P' = 'C';
  /** HASH's algorithm (OPTS HASH) and the byte range the next HASH uses (RANG); see commands/hash.ts. */
  hashAlgorithm: HashAlgorithm = DEFAULT_HASH_ALGORITHM;
  hashRange: ByteRange | null = null;

  /** The socket commands and replies travel on: the TCP socket, or the TLS socket over it. */
  #socket: Socket;
  /** The socket the session was handed (TCP, or TLS for implicit FTPS): its 'close' is the session's end, whatever runs over it. */
  readonly #tcp: Socket;
  /** Set once the control connection is TLS (AUTH TLS or implicit). */
  #tls: SessionBinding | null = null;
  readonly #reader: LineReader;
  readonly #queue: Queued[] = [];
  #queuedBytes = 0;
  #lastStatBesideTransfer = 0;
  /** QUIT was read (even if not yet run): the client said it is done, so a close after it is not a crash. */
  #quitReceived = false;
  /** Resolved when the control connection closes (uploads waiting to commit listen). */
  #closeWaiters: Array<() => void> = [];
  readonly #idleTimer: NodeJS.Timeout;
  /**
   * Runs until login, whatever the client sends: a connection that never
   * logs in must not hold one of the limited connection slots for long.
   */
  #loginTimer: NodeJS.Timeout | null = null;
  #login: LoginState = { kind: 'anonymous' };
  #log: Logger | null = null;
  #dataChannel: DataChannel | null = null;
  #transfer: Transfer | null = null;
  #draining = false;
  #closed = false;
  /** No more commands are read: QUIT, a fatal error, or shutdown. */
  #closing = false;
  #shuttingDown = false;
  /** Between AUTH TLS and the TLS socket: plaintext lines are not commands. */
  #awaitingHandshake = false;

  /**
   * `tls`: the socket is already the TLS side of an implicit-FTPS connection, bound to this context.
   * `peer`: the client behind a load balancer (from its PROXY protocol header), when it is not the socket's peer.
   */
  constructor(id: string, socket: Socket, host: SessionHost, tls?: SessionBinding, peer?: { address: string; port: number }) {
    this.id = id;
    this.#socket = socket;
    this.#tcp = socket;
    this.host = host;
    this.remoteAddress = peer?.address ?? normalizeAddress(socket.remoteAddress ?? '');
    this.remotePort = peer?.port ?? socket.remotePort ?? 0;
    this.localAddress = normalizeAddress(socket.localAddress ?? '');
    this.ipv6 = this.localAddress.includes(':');
    this.#reader = new LineReader(host.options.maxCommandBytes);
    this.#idleTimer = setTimeout(() => this.#onIdle(), host.options.idleTimeoutMs).unref();
    this.#startLoginTimer();

    socket.setNoDelay(true);
    // Shared handlers that find the session on the socket: no closures per
    // session, since idle sessions are what a server holds most of.
    (socket as SessionSocket)[kSession] = this;
    socket.on('data', Session.#onData);
    socket.on('error', Session.#onError);
    socket.on('close', Session.#onClose);
    if (tls) {
      // Implicit FTPS has always meant encrypted data too; clients still send PROT P.
      this.dataProtection = 'P';
      this.#secured(socket as TLSSocket, tls);
    }
  }

  static #onData(this: SessionSocket, chunk: Buffer): void {
    const session = this[kSession];
    session.#reader.push(chunk, session);
  }

  static #onError(this: SessionSocket, err: Error): void {
    this[kSession].log.debug({ err }, 'control connection error');
  }

  static #onClose(this: SessionSocket): void {
    this[kSession].#cleanup();
  }

  /** Made on first use: an idle session that never logs should not pay for a child logger. */
  get log(): Logger {
    return (this.#log ??= this.host.logger.child({ sessionId: this.id, remoteAddress: this.remoteAddress }));
  }

  start(): void {
    this.reply(220, [...this.host.options.greeting]);
  }

  // ---- replies and lifecycle ----------------------------------------------

  reply(code: number, text: string | readonly string[]): void {
    if (this.#closed || this.#socket.writableEnded) return;
    this.#socket.write(formatReply(code, text));
    this.#replied(code);
    if (this.#socket.writableLength > REPLY_BACKLOG_MAX_BYTES) {
      this.log.warn('client does not read its replies; closing');
      this.#socket.destroy();
      void this.offence('protocol-abuse');
    }
  }

  #replied(code: number): void {
    if (channels.reply.hasSubscribers) channels.reply.publish({ sessionId: this.id, code });
  }

  /** Send a last reply and close the control connection once it is flushed. */
  closeWith(code: number, text: string): void {
    if (this.#closed) return;
    this.#closing = true;
    this.#socket.end(formatReply(code, text));
    this.#replied(code);
    // A peer that never reads must not keep us waiting forever.
    setTimeout(() => this.#socket.destroy(), 2000).unref();
  }

  /** Server shutdown: close now if idle, else once the running command or transfer ends. */
  shutdown(): void {
    this.#shuttingDown = true;
    if (this.#transfer || this.#draining) this.#closing = true;
    else this.closeWith(421, 'Server shutting down. Goodbye.');
  }

  /** End of the shutdown grace period: tell the client why, then cut. */
  destroy(): void {
    if (!this.#closed && !this.#socket.writableEnded) {
      const text = this.#transfer ? formatReply(426, 'Transfer aborted: server shutting down.') : '';
      this.#socket.end(text + formatReply(421, 'Server shutting down. Goodbye.'));
    }
    this.#transfer?.controller.abort();
    setTimeout(() => this.#socket.destroy(), 100).unref();
  }

  /** LineSink: a complete command line from the reader. */
  line(line: Buffer): void {
    this.#onLine(line);
  }

  /** LineSink: a line over the length limit. */
  tooLong(): void {
    this.#onLine(null, 'too-long');
  }

  /**
   * Count an offence of this client's address with the defender: a failed
   * login, or something a real client never does. Resolves to the address's
   * verdict after it; when that is a ban, the connection is closed at once
   * (for a failed login, pass() does that after its usual delay).
   */
  async offence(kind: Offence): Promise<Verdict> {
    let verdict: Verdict = 'allowed';
    try {
      verdict = await this.host.shared.defender.report(this.remoteAddress, kind);
    } catch (err) {
      // A cluster worker whose primary is gone: the session goes on, unscored.
      this.log.warn({ err }, 'could not reach the defender');
    }
    if (verdict !== 'allowed' && kind !== 'login-failed') this.closeWith(421, refusalText(verdict));
    return verdict;
  }

  #onLine(line: Buffer | null, problem?: 'too-long'): void {
    if (this.#closed || this.#awaitingHandshake) return;
    this.#idleTimer.refresh();
    if (problem === 'too-long') {
      this.reply(500, 'Command line too long.');
      void this.offence('protocol-abuse');
      return;
    }
    const command = parseCommand(line!);
    const verb = command?.verb;
    if (verb === 'QUIT') {
      this.#quitReceived = true;
      this.#notifyCloseWaiters();
    }
    if (command && this.#transfer && this.#runsNow(command)) {
      void this.#execute(command);
      return;
    }
    // While shutting down, only ABOR and STAT for the running transfer are heard.
    if (this.#closing) return;
    // ABOR, QUIT and REIN act at once on transfers that have not started moving
    // data: a transfer waiting for its data connection would otherwise hold
    // them (and the client) for dataConnectTimeoutMs.
    if (verb === 'ABOR' || verb === 'QUIT' || verb === 'REIN') this.#cancelPendingTransfers();
    const bytes = line!.length + QUEUED_OVERHEAD_BYTES;
    if (this.#queuedBytes + bytes > MAX_QUEUED_BYTES) {
      this.log.warn({ queuedBytes: this.#queuedBytes }, 'client queued too many commands without reading replies; closing');
      this.#queue.length = 0;
      this.closeWith(421, 'Too many commands queued; closing control connection.');
      void this.offence('protocol-abuse');
      // Nothing it sends now is heard, so stop reading it (closeWith bounds the rest).
      this.#socket.pause();
      return;
    }
    this.#queuedBytes += bytes;
    this.#queue.push({ command, bytes, cancelled: false });
    void this.#drain();
  }

  /**
   * Commands that run beside a transfer instead of behind it: ABOR always;
   * STAT (progress) at most once per STAT_BESIDE_TRANSFER_MS and only while
   * the client reads its replies. Other STATs queue, bounded like every
   * command, so a client pipelining thousands of them is cut off at once
   * instead of making us answer each (measured before: 150 such clients took
   * the server to 1.9 GB and kept new clients from their greeting).
   */
  #runsNow(command: ParsedCommand): boolean {
    if (command.verb === 'ABOR') return true;
    if (!findCommand(this.host.commands, command.verb, command.arg)?.spec.duringTransfer) return false;
    const now = Date.now();
    if (now - this.#lastStatBesideTransfer < STAT_BESIDE_TRANSFER_MS) return false;
    if (this.#socket.writableLength > REPLY_BACKLOG_PAUSE_BYTES) return false;
    this.#lastStatBesideTransfer = now;
    return true;
  }

  /** Cancel the running transfer if no data has started to move, and every queued transfer command. */
  #cancelPendingTransfers(): void {
    const transfer = this.#transfer;
    if (transfer && transfer.socket === null) transfer.controller.abort();
    for (const entry of this.#queue) {
      if (entry.command && findCommand(this.host.commands, entry.command.verb, entry.command.arg)?.spec.transfer) entry.cancelled = true;
    }
  }

  async #drain(): Promise<void> {
    if (this.#draining) return;
    this.#draining = true;
    try {
      while (this.#queue.length > 0 && !this.#closing) {
        // A client that does not read its replies gets no new ones until it
        // does; what it sends meanwhile is queued, within MAX_QUEUED_BYTES.
        if (this.#socket.writableLength > REPLY_BACKLOG_PAUSE_BYTES) await this.#replyDrain();
        if (this.#closing) break;
        const entry = this.#queue.shift()!;
        this.#queuedBytes -= entry.bytes;
        await this.#execute(entry.command, entry.cancelled);
      }
    } finally {
      this.#draining = false;
    }
    if (this.#shuttingDown && !this.#closed && !this.#socket.writableEnded) this.closeWith(421, 'Server shutting down. Goodbye.');
  }

  /**
   * Wait until the client has read its pending replies (or the connection
   * ends). The socket keeps reading meanwhile, so a close is noticed.
   */
  #replyDrain(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.#socket.off('drain', done);
        this.#socket.off('close', done);
        resolve();
      };
      this.#socket.once('drain', done);
      this.#socket.once('close', done);
    });
  }

  async #execute(command: ParsedCommand | null, cancelled = false): Promise<void> {
    if (!command) {
      this.reply(501, 'Command is not valid UTF-8.');
      return;
    }
    const found = findCommand(this.host.commands, command.verb, command.arg);
    // RFC 959 §4.1.1: RNTO must come right after RNFR; anything else cancels it.
    if (command.verb !== 'RNTO') this.renameFrom = null;
    if (!found) {
      this.reply(500, `Unknown command "${command.verb.slice(0, 16)}".`);
      return;
    }
    const { spec, arg } = found;
    if (spec.arg === 'required' && arg.trim() === '') {
      this.reply(501, `Syntax: ${spec.syntax}`);
      return;
    }
    if (spec.arg === 'none' && arg.trim() !== '') {
      this.reply(501, `Syntax: ${spec.syntax}`);
      return;
    }
    if (spec.auth && !this.loggedIn) {
      this.reply(530, 'Please log in with USER and PASS first.');
      return;
    }
    this.log.debug({ verb: spec.verb, arg: spec.verb === 'PASS' ? undefined : arg }, 'command');
    if (channels.command.hasSubscribers) channels.command.publish({ sessionId: this.id, verb: spec.verb, arg: spec.verb === 'PASS' ? '' : arg });
    let path = this.cwd;
    try {
      if (spec.path) path = this.resolve(pathArgument(spec.path, arg));
      if (spec.permission) this.authorize(spec.permission, path);
      if (spec.transfer && cancelled) {
        // An ABOR, QUIT or REIN sent right behind it: RFC 959 §4.1.3, the aborted command gets 426.
        this.setDataChannel(null);
        this.replyError(new FerryError(ErrorCodes.ABORTED, 'cancelled by a later command'));
      } else if (spec.transfer) await this.#runAsTransfer(spec, { arg, path });
      else await spec.handler(this, { arg, path });
    } catch (err) {
      this.replyError(err);
    }
  }

  /** Answer with the reply for `err` (the one mapping in errors.ts); log what the client does not see. */
  replyError(err: unknown): void {
    const { code, text } = replyForError(err);
    const known = fromSystemError(err);
    if (!isExpectedError(err)) this.log.warn({ err }, 'command failed unexpectedly');
    else if (needsOperator(known)) this.log.warn({ code: (known as FerryError).code, reason: (known as Error).message }, 'storage refused or failed');
    else this.log.debug({ code: (known as FerryError).code, reason: (known as Error).message }, 'command failed');
    this.reply(code, text);
  }

  async #runAsTransfer(spec: CommandSpec, context: { arg: string; path: string }): Promise<void> {
    let finish!: () => void;
    const transfer: Transfer = {
      verb: spec.verb,
      controller: new AbortController(),
      done: new Promise<void>((resolve) => (finish = resolve)),
      path: null,
      socket: null,
      upload: false,
      startedAt: Date.now(),
      failure: null,
      progress: 0,
      started: null,
      ok: false,
    };
    this.#transfer = transfer;
    try {
      await spec.handler(this, context);
    } finally {
      const bytes = this.transferredBytes;
      this.#transfer = null;
      this.restOffset = 0;
      this.allocatedBytes = null;
      if (transfer.started && channels.transferEnd.hasSubscribers) {
        const { started } = transfer;
        channels.transferEnd.publish({
          ...started,
          bytes,
          durationMs: Date.now() - started.startedAt,
          ok: transfer.ok,
          reason: transfer.ok ? null : (transfer.failure ?? 'transfer did not complete'),
        });
      }
      finish();
    }
  }

  #startLoginTimer(): void {
    this.#loginTimer ??= setTimeout(() => {
      this.log.info('login timeout');
      this.closeWith(421, 'Login timed out; closing control connection.');
      void this.offence('protocol-abuse');
    }, this.host.options.loginTimeoutMs).unref();
  }

  #onIdle(): void {
    if (this.#transfer) {
      this.#idleTimer.refresh();
      return;
    }
    this.log.info('idle timeout');
    this.closeWith(421, 'Idle timeout; closing control connection.');
  }

  #cleanup(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closing = true;
    this.#queue.length = 0;
    this.#queuedBytes = 0;
    clearTimeout(this.#idleTimer);
    if (this.#loginTimer) clearTimeout(this.#loginTimer);
    // A control connection gone before the data's end aborts the transfer
    // (a killed client), except an upload whose client said QUIT first: a
    // fire-and-forget uploader closes the data connection, sends QUIT and
    // leaves while its last bytes are still on the way. That upload runs to
    // its end (bounded by dataIdleTimeoutMs) and commits; nobody hears 226.
    const transfer = this.#transfer;
    if (transfer && !(transfer.upload && transfer.socket && this.#quitReceived)) transfer.controller.abort();
    this.#notifyCloseWaiters();
    this.#dataChannel?.close();
    this.#dataChannel = null;
    // A transfer still running (its upload committing, or settling its abort)
    // reports first: its event and its end come before logout and disconnect,
    // and its storage is closed only once it is done with it.
    if (transfer) void transfer.done.then(() => this.#disconnected());
    else this.#disconnected();
  }

  /** The end of a closed session: logout (when logged in), then disconnect. */
  #disconnected(): void {
    const username = this.account?.username ?? null;
    this.#endLogin();
    const info = { sessionId: this.id, remoteAddress: this.remoteAddress, username, durationMs: Date.now() - this.connectedAt };
    this.host.notify('disconnect', info);
    if (channels.sessionClose.hasSubscribers) channels.sessionClose.publish(info);
  }

  onClose(listener: () => void): void {
    this.#tcp.once('close', listener);
  }

  #notifyCloseWaiters(): void {
    for (const wake of this.#closeWaiters.splice(0)) wake();
  }

  /**
   * The upload rule's last step, run once an upload's data connection has
   * ended cleanly and before the storage commits. In stream mode that end
   * is the end of the file; it counts unless the control connection closed
   * before it without a QUIT (a client killed mid-upload, whose data FIN
   * looks like a finished upload's). Waits up to `uploadSettleMs` for that
   * close: a client killed mid-upload closes both connections, and Linux
   * releases an exiting process's sockets last-opened first, so the data
   * connection's FIN arrives 0.1-6 ms before the control connection's
   * (measured with curl killed by SIGKILL, 50 runs). QUIT, ABOR or the
   * close itself end the wait early. Throws ABORTED when the upload must
   * not count. See docs/architecture.md, "When an upload counts".
   */
  async confirmUpload(signal: AbortSignal): Promise<void> {
    const settleMs = this.host.options.uploadSettleMs;
    if (settleMs > 0 && !this.#closed && !this.#quitReceived && !signal.aborted) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          signal.removeEventListener('abort', done);
          const index = this.#closeWaiters.indexOf(done);
          if (index !== -1) this.#closeWaiters.splice(index, 1);
          resolve();
        };
        const timer = setTimeout(done, settleMs);
        signal.addEventListener('abort', done, { once: true });
        this.#closeWaiters.push(done);
      });
    }
    signal.throwIfAborted();
    if (this.#closed && !this.#quitReceived) {
      throw new FerryError(ErrorCodes.ABORTED, 'control connection closed before the upload ended, without QUIT');
    }
  }

  // ---- TLS (RFC 4217) ----------------------------------------------------

  /** True once the control connection is encrypted. */
  get secure(): boolean {
    return this.#tls !== null;
  }

  /**
   * AUTH TLS: answer, then run the TLS handshake over the same TCP
   * connection. Whatever the client sent after AUTH and before the
   * handshake (queued commands, a partial line) is discarded: it was
   * plaintext, and an attacker on the path could have injected it to be run
   * as if it came over TLS (the STARTTLS command injection, CVE-2011-0411).
   */
  startTls(code: number, text: string): void {
    const context = this.host.tls;
    if (!context || this.#closed) return;
    const raw = this.#socket;
    // AUTH may run while the reader is still splitting the chunk it came in:
    // the lines after it are dropped as they come, until the handshake ends.
    this.#queue.length = 0;
    this.#awaitingHandshake = true;
    raw.off('data', Session.#onData);
    raw.write(formatReply(code, text));
    this.#replied(code);
    // Wrap now, not once the reply is flushed: the client starts its
    // handshake as soon as it reads 234, and the TLS socket must be reading
    // by then. The reply is ahead of any TLS byte in the same stream.
    const binding = context.bind();
    const secure = binding.wrapControl(raw, this.host.options.tls?.requestClientCert ?? false);
    (secure as Socket as SessionSocket)[kSession] = this;
    secure.on('data', Session.#onData);
    secure.on('error', Session.#onError);
    secure.once('secure', () => {
      this.#reader.reset();
      this.#queue.length = 0;
      this.#awaitingHandshake = false;
    });
    this.#socket = secure;
    this.#secured(secure, binding);
  }

  #secured(socket: TLSSocket, binding: SessionBinding): void {
    this.#tls = binding;
    socket.once('secure', () => {
      binding.controlSecured(socket);
      this.log.debug({ protocol: socket.getProtocol(), cipher: socket.getCipher().name }, 'control connection secured');
    });
  }

  /** The client's certificate (mutual TLS), only when it verified against the configured CA. */
  get clientCertificate(): ClientCertificate | undefined {
    const socket = this.#socket;
    if (!this.#tls || !(socket instanceof TLSSocket)) return undefined;
    const x509 = this.host.tls?.verifiedClientCertificate(socket);
    return x509 ? { subject: x509.subject, subjectAltName: x509.subjectAltName, fingerprint256: x509.fingerprint256 } : undefined;
  }

  /** The TLS policy for `username`: the authenticator's word for this user, else the server's (anonymous may be exempt). */
  tlsPolicyFor(username: string): TlsPolicy {
    const { authenticator } = this.host.options;
    const own = authenticator.tlsPolicy?.(username);
    if (own) return own;
    const options = this.host.options.tls;
    if (!options) return 'optional';
    if (options.anonymousExempt && authenticator.isAnonymous?.(username)) return 'optional';
    return options.policy;
  }

  /**
   * Wrap a data connection in TLS when PROT P is in force, and check session
   * reuse when required. Passive channels run it on accept (see
   * PassiveChannel.prepareWith); a socket that is already TLS passes as is.
   */
  async protectData(socket: Socket, signal: AbortSignal): Promise<Socket> {
    if (this.dataProtection === 'C' || socket instanceof TLSSocket) return socket;
    const binding = this.#tls;
    if (!binding) throw new FerryError(ErrorCodes.TLS_HANDSHAKE_FAILED, 'PROT P without a TLS control connection');
    const data = binding.wrapData(socket);
    data.socket.on('error', () => {}); // the handshake and the pipeline observe errors
    try {
      await handshake(data.socket, signal, this.host.options.dataConnectTimeoutMs);
    } catch (err) {
      data.socket.destroy();
      if (signal.aborted) throw new FerryError(ErrorCodes.ABORTED, 'aborted', { cause: err });
      throw new FerryError(ErrorCodes.TLS_HANDSHAKE_FAILED, (err as Error).message, { cause: err });
    }
    if (!data.verify() && this.host.options.tls?.requireSessionReuse) {
      const detail = data.socket.isSessionReused() ? 'resumed a session of another connection' : 'full handshake';
      // Operators see why a client's transfers fail (its own error is often a bare TLS EOF, not the 522).
      this.log.warn({ detail }, 'TLS data connection refused: it did not resume the control session (requireSessionReuse); the client must reuse TLS sessions, or turn the option off');
      data.socket.destroy();
      throw new FerryError(ErrorCodes.TLS_SESSION_NOT_REUSED, `data connection did not resume the control session (${detail})`);
    }
    return data.socket;
  }

  // ---- login state --------------------------------------------------------

  get loggedIn(): boolean {
    return this.#login.kind === 'logged-in';
  }

  get account(): Account | null {
    return this.#login.kind === 'logged-in' ? this.#login.account : null;
  }

  get pendingUsername(): string | null {
    return this.#login.kind === 'user-given' ? this.#login.username : null;
  }

  get storage(): Storage {
    if (this.#login.kind !== 'logged-in') throw new FerryError(ErrorCodes.NO_PERMISSION, 'not logged in');
    return this.#login.storage;
  }

  /** USER: forget any previous login (and its storage) and wait for PASS. */
  setUsername(username: string, tlsPolicy: TlsPolicy): void {
    this.logout();
    this.#login = { kind: 'user-given', username, tlsPolicy };
  }

  /**
   * Log `account` in: counts the session against the user's `maxSessions`
   * (across every process: shared.sessions), then switches the state.
   * Returns false (the account's storage released, nothing counted) when
   * the client left during authentication; throws TOO_MANY_SESSIONS when
   * the user is at its limit.
   */
  async login(account: Account, tlsPolicy = this.#login.kind === 'user-given' ? this.#login.tlsPolicy : 'optional'): Promise<boolean> {
    const limits = effectiveLimits(this.host.options.perUserLimits, account.limits);
    // Every session is counted, limited or not: a reload that sets a limit
    // then counts the sessions already in, and the count is exact from then on.
    const slot = leaseId();
    try {
      const granted = await this.host.shared.sessions.acquire(account.username, limits.maxSessions, ownerId(), slot).catch((err: unknown) => {
        // The primary did not answer: whether it counted is unknown, so give the
        // lease back (a no-op if it was not granted) and refuse: fail closed.
        this.#releaseSlot(slot);
        throw new FerryError(ErrorCodes.LIMITS_UNAVAILABLE, `cannot count the sessions of ${account.username}: ${(err as Error).message}`);
      });
      if (!granted) throw new FerryError(ErrorCodes.TOO_MANY_SESSIONS, `user ${account.username} is at maxSessions ${limits.maxSessions}`);
    } catch (err) {
      closeStorage(account, this.log);
      throw err;
    }
    if (this.#closed) {
      closeStorage(account, this.log);
      this.#releaseSlot(slot);
      return false;
    }
    // The storage policies (maximum file size, quotas) wrap the account's storage once, here.
    const storage = this.host.quotas.wrap(account.storage, account.username, limits, this.host.options.maxFileSizeBytes);
    this.#login = { kind: 'logged-in', account, storage, tlsPolicy, limits, slot, at: Date.now() };
    // Every line about the session from now on names its user.
    this.#log = this.host.logger.child({ sessionId: this.id, remoteAddress: this.remoteAddress, username: account.username });
    this.cwd = '/';
    this.failedLogins = 0;
    if (this.#loginTimer) clearTimeout(this.#loginTimer);
    this.#loginTimer = null;
    return true;
  }

  /** The limits in force for the logged-in user (the server's defaults before login). */
  get limits(): Limits {
    return this.#login.kind === 'logged-in' ? this.#login.limits : this.host.options.perUserLimits;
  }

  /** The logged-in account's end (logout, REIN, close): its storage closed, its session slot given back, 'logout' emitted, once. */
  #endLogin(): void {
    const login = this.#login;
    // Runs for logout() and again for the close: once is what counts.
    if (login.kind !== 'logged-in' || login.ended) return;
    login.ended = true;
    closeStorage(login.account, this.log);
    if (login.slot !== null) this.#releaseSlot(login.slot);
    login.slot = null;
    this.host.notify('logout', { ...this.who, durationMs: Date.now() - login.at });
  }

  /** A primary gone or slow loses nothing here: a dead worker's slots are forgotten, a living one's release is ordered after its acquire. */
  #releaseSlot(slot: string): void {
    void this.host.shared.sessions.release(slot).catch((err: unknown) => this.log.warn({ err }, 'cannot release the session slot'));
  }

  /**
   * REIN and USER: back to the state of a fresh connection (RFC 959 §4.1.1).
   * TLS and PROT stay: clients send PBSZ/PROT before USER, and a TLS
   * connection cannot be turned back into a plain one safely.
   */
  logout(): void {
    this.#endLogin();
    this.#login = { kind: 'anonymous' };
    this.#log = null;
    if (!this.#closed) this.#startLoginTimer();
    this.cwd = '/';
    this.transferType = 'A';
    this.restOffset = 0;
    this.renameFrom = null;
    this.epsvAll = false;
    this.hashAlgorithm = DEFAULT_HASH_ALGORITHM;
    this.hashRange = null;
    this.setDataChannel(null);
  }

  /** Fields every user event carries. */
  get who(): { sessionId: string; remoteAddress: string; username: string } {
    return { sessionId: this.id, remoteAddress: this.remoteAddress, username: this.account?.username ?? '' };
  }

  /**
   * Run the awaited hooks named `name` (see server/hooks.ts) for this
   * session's user: resolves to the request as the hooks left it; throws
   * HOOK_DENIED or HOOK_FAILED, which reply 550 (with the reason) or 451.
   */
  runHook<K extends HookName>(name: K, request: Omit<HookRequests[K], 'sessionId' | 'remoteAddress' | 'username'> & { username?: string }): Promise<HookRequests[K]> {
    const full = { ...this.who, ...request } as HookRequests[K];
    if (!this.host.hooks.has(name)) return Promise.resolve(full);
    return this.host.hooks.run(name, full, this.host.options.hookTimeoutMs, this.log);
  }

  /**
   * Ask the hooks about an action on `request.path` (beforeUpload,
   * beforeDownload): resolves to the path to act on. A path a hook rewrote
   * is normalised as an absolute virtual path and checked for `permission`
   * like the client's own.
   */
  async hookedPath<K extends 'beforeUpload' | 'beforeDownload'>(name: K, request: Omit<HookRequests[K], 'sessionId' | 'remoteAddress' | 'username'>, permission: Permission): Promise<string> {
    const asked = await this.runHook(name, request);
    return asked.path === request.path ? request.path : this.rewrittenPath(asked.path, permission);
  }

  /** A path a hook rewrote: normalised as an absolute virtual path, and checked for `permission` like the client's own. */
  rewrittenPath(path: string, permission: Permission): string {
    const result = resolvePath('/', path);
    if (!result.ok) throw new FerryError(ErrorCodes.HOOK_FAILED, `a hook rewrote the path to ${JSON.stringify(path)}: ${result.reason}`);
    this.authorize(permission, result.path);
    return result.path;
  }

  // ---- paths and permissions ---------------------------------------------

  resolve(arg: string): string {
    const result = resolvePath(this.cwd, arg);
    if (!result.ok) throw new FerryError(ErrorCodes.INVALID_NAME, `path rejected: ${result.reason}`);
    return result.path;
  }

  can(permission: Permission, path: string): boolean {
    const account = this.account;
    return account !== null && accountHasPermission(account, permission, path);
  }

  authorize(permission: Permission, path: string): void {
    if (!this.can(permission, path)) throw new FerryError(ErrorCodes.NO_PERMISSION, `lacks '${permission}' on ${path}`);
  }

  // ---- data connections and transfers ------------------------------------

  setDataChannel(channel: DataChannel | null): void {
    this.#dataChannel?.close();
    this.#dataChannel = channel;
    // The client may have left while the channel was being set up.
    if (this.#closed) this.#dataChannel?.close();
  }

  /**
   * Run a transfer on the prepared data channel. Replies 150 first (before
   * waiting for the connection: clients wait for it), then runs `work` with
   * the connected socket and the bandwidth limits it must obey (null: none),
   * then replies 226, or 425/426/4xx/5xx on failure. Resolves true when the
   * transfer completed.
   */
  async transferData(
    path: string | null,
    preliminary: string,
    work: (socket: Socket, signal: AbortSignal, throttle: Throttle | null) => Promise<void>,
    direction: TransferDirection = 'download',
  ): Promise<boolean> {
    const transfer = this.#transfer;
    const channel = this.#dataChannel;
    this.#dataChannel = null;
    if (!transfer) throw new Error('transferData outside a transfer command');
    transfer.path = path;
    transfer.upload = direction === 'upload';
    const signal = transfer.controller.signal;
    if (signal.aborted) {
      // ABOR arrived while the storage was still opening.
      channel?.close();
      this.replyError(new FerryError(ErrorCodes.ABORTED));
      return false;
    }
    if (!channel) {
      this.reply(425, 'Use PORT, EPRT, PASV or EPSV first.');
      return false;
    }
    if (this.dataProtection === 'C' && this.#login.kind === 'logged-in' && this.#login.tlsPolicy === 'data') {
      channel.close();
      this.replyError(new FerryError(ErrorCodes.TLS_REQUIRED_FOR_DATA, 'transfer at PROT C'));
      return false;
    }
    this.reply(150, preliminary);
    const anonymous = this.host.options.authenticator.isAnonymous?.(this.who.username) ?? false;
    transfer.started = { ...this.who, verb: transfer.verb, direction, path, storage: this.storage.kind ?? 'custom', transferType: this.transferType, anonymous, startedAt: transfer.startedAt };
    if (channels.transferStart.hasSubscribers) channels.transferStart.publish(transfer.started);
    let socket: Socket;
    try {
      socket = await this.protectData(await channel.open(signal), signal);
    } catch (err) {
      channel.close();
      this.log.debug({ err: (err as Error).message }, 'data connection failed');
      if (err instanceof FerryError) this.replyError(err);
      else if (signal.aborted) this.replyError(new FerryError(ErrorCodes.ABORTED));
      else this.reply(425, "Can't open data connection.");
      return false;
    }
    transfer.socket = socket;
    let socketFailed = false;
    socket.once('error', () => (socketFailed = true));
    socket.setTimeout(this.host.options.dataIdleTimeoutMs, () => {
      socketFailed = true;
      socket.destroy(new FerryError(ErrorCodes.DATA_CONNECTION, 'data connection stalled'));
    });
    let closeChannel = true;
    const throttle = this.#throttle(direction === 'upload' ? 'upload' : 'download');
    try {
      await work(socket, signal, throttle);
      transfer.ok = true;
      this.reply(226, 'Transfer complete.');
      return true;
    } catch (err) {
      transfer.failure = signal.aborted ? 'aborted (ABOR, the client left, or shutdown)' : failureReason(err);
      // Reply first, then close the data connection: its reset must not overtake a 552 (see receiveFromSocket).
      if (signal.aborted) this.replyError(new FerryError(ErrorCodes.ABORTED, 'aborted', { cause: err }));
      // A storage failure (552 over the size limit, 451 endpoint down) also
      // ends the data connection; its own reply says more than 426.
      else if (isStorageError(err)) {
        this.replyError(err);
        if (transfer.upload) {
          // A download's data connection is reset (a clean close would look like the file's end).
          closeChannel = false;
          drainThenClose(socket, () => channel.close());
          return false;
        }
      } else if (socketFailed || isDataConnectionError(err)) this.replyError(new FerryError(ErrorCodes.DATA_CONNECTION, 'data connection failed', { cause: err }));
      else this.replyError(err);
      socket.destroy();
      return false;
    } finally {
      if (closeChannel) channel.close();
      throttle?.release();
    }
  }

  /**
   * The rates a transfer obeys: the server's for its direction (read at each
   * transfer, so a reload applies to the next one) and its user's (fixed at
   * login). Listings count as downloads: they are bytes sent to the client.
   */
  #throttle(direction: 'upload' | 'download'): Throttle | null {
    const { options, rates } = this.host;
    const username = this.account?.username ?? '';
    const { limits } = this;
    return direction === 'download'
      ? rates.throttle(ratesFor('download', options.downloadBytesPerSecond, username, limits.downloadBytesPerSecond))
      : rates.throttle(ratesFor('upload', options.uploadBytesPerSecond, username, limits.uploadBytesPerSecond));
  }

  /** Bytes moved on the data connection so far (or done by a HASH), for STAT and events. */
  get transferredBytes(): number {
    const transfer = this.#transfer;
    const socket = transfer?.socket;
    return socket ? socket.bytesRead + socket.bytesWritten : (transfer?.progress ?? 0);
  }

  /** A transfer command without a data connection (HASH) says where it is: STAT shows it. */
  transferProgress(path: string, bytes: number): void {
    const transfer = this.#transfer;
    if (!transfer) return;
    transfer.path = path;
    transfer.progress = bytes;
  }

  transferStatus(): string | null {
    const transfer = this.#transfer;
    if (!transfer) return null;
    const seconds = ((Date.now() - transfer.startedAt) / 1000).toFixed(1);
    return `${transfer.verb} ${transfer.path ?? ''}: ${this.transferredBytes} bytes in ${seconds} s`;
  }

  /**
   * An upload whose transferData failed but whose storage committed anyway
   * (ABOR racing the commit, see StorageWritable): it completed, and the
   * channel's end message must say so as the event does.
   */
  transferCommitted(): void {
    if (this.#transfer) this.#transfer.ok = true;
  }

  /** Why the running transfer's data failed (a 552 over a quota, a reset), or null. */
  get transferFailure(): string | null {
    return this.#transfer?.failure ?? null;
  }

  /** Fires when ABOR, QUIT, REIN, the client's departure or shutdown stops the running transfer command (null: none runs). */
  get transferSignal(): AbortSignal | null {
    return this.#transfer?.controller.signal ?? null;
  }

  /** The running transfer's end (its storage stream settled), or null when none runs. */
  get transferDone(): Promise<void> | null {
    return this.#transfer?.done ?? null;
  }

  /**
   * ABOR: stop the running transfer and wait until its 426 has been sent.
   * True only for the ABOR that stopped it: more ABORs pipelined behind it
   * (an ABOR storm) wait too, so their replies follow the 426, but found
   * nothing left to abort.
   */
  async abortTransfer(): Promise<boolean> {
    const transfer = this.#transfer;
    this.setDataChannel(null);
    if (!transfer) return false;
    const first = !transfer.controller.signal.aborted;
    transfer.controller.abort();
    await transfer.done;
    return first;
  }
}

function pathArgument(kind: NonNullable<CommandSpec['path']>, arg: string): string {
  if (kind === 'plain') return arg;
  if (kind === 'list-options') return stripListOptions(arg);
  return kind(arg);
}

function closeStorage(account: Account, log: Logger): void {
  account.storage.close?.().catch((err: unknown) => log.warn({ err }, 'storage close failed'));
}

/**
 * How long a data connection refused by the storage (552 over a quota or the
 * maximum file size) is still read, and its bytes dropped, before it is
 * closed: closing a socket with unread data sends a reset, and clients that
 * only read the control connection once they have sent everything (curl,
 * Python's ftplib) report that reset instead of the 552.
 */
const REFUSED_DRAIN_MS = 2000;

function drainThenClose(socket: Socket, close: () => void): void {
  socket.on('error', () => undefined);
  socket.on('data', () => undefined);
  socket.resume();
  socket.end();
  setTimeout(close, REFUSED_DRAIN_MS).unref();
}

/** A failure in words for events and logs: a Ferry code with its (log-only) detail, or the system error. */
function failureReason(err: unknown): string {
  const known = fromSystemError(err);
  if (known instanceof FerryError) return `${known.code}: ${known.message}`;
  return (err as Error | null)?.message ?? String(err);
}

function isStorageError(err: unknown): boolean {
  const known = fromSystemError(err);
  return known instanceof FerryError && known.code !== ErrorCodes.DATA_CONNECTION && known.code !== ErrorCodes.ABORTED;
}

function isDataConnectionError(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === 'ECONNRESET' || code === 'EPIPE' || code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'ETIMEDOUT';
}
