/**
 * PROXY protocol on the control listeners: behind a load balancer (HAProxy,
 * an AWS NLB) every connection comes from the balancer, and the header it
 * writes first says who the client is. This module decides whether a new
 * connection may carry one, reads it with a bounded read, and hands back the
 * client's address and the bytes read past the header.
 *
 * Who may send a header: only `trustedSources`. The spec (§2.1, §5) forbids
 * guessing whether a header is present, and a listener that took headers from
 * anyone would let a client pick its own address (and walk around per-IP
 * limits and bans). So once PROXY protocol is on, the control listeners are
 * the balancer's: a connection from a trusted source must start with a valid
 * header, and a connection from any other address is refused, logged.
 *
 * Used by FtpServer (one process) and ClusterPrimary (which reads the header
 * before handing the socket to a worker, and sends the address and the extra
 * bytes along with it).
 */
import net from 'node:net';
import { addressList, inList } from '../protocol/address.js';
import { PROXY_PROTOCOL } from '../defaults.js';
import type { Logger } from '../observability/logger.js';
import { normalizeAddress } from '../protocol/address.js';
import { parseProxyHeader, type ProxyHeader } from '../protocol/proxy-header.js';
import { turnAway } from './admission.js';

export interface ProxyProtocolOptions {
  /**
   * Addresses or CIDR ranges of the load balancers that send a PROXY protocol
   * header (v1 or v2). Empty: PROXY protocol off, connections are taken as
   * they come.
   */
  trustedSources: readonly string[];
  /** How long a trusted source has, from connect, to deliver a complete header. */
  headerTimeoutMs: number;
}

/** The client behind a connection, as the rest of the server must see it. */
export interface Peer {
  address: string;
  port: number;
}

export interface ProxiedConnection {
  /** The client: the header's source, or the connection's own peer (v2 LOCAL, v1 UNKNOWN). */
  peer: Peer;
  /** Bytes the client sent after the header, read with it: the session must get them first. */
  head: Buffer;
}

/** The reply a plain-FTP client from an untrusted address gets before the close. */
const REFUSED_TEXT = 'This server accepts connections only through its load balancer.';

export class ProxyProtocolAcceptor {
  #trusted: net.BlockList | null = null;
  #timeoutMs = 0;
  /** Connections whose header is still awaited: bounded, so a trusted but broken balancer cannot pile them up. */
  #pending = 0;
  readonly #log: Logger;

  /** `options` absent, or without trusted sources: off. */
  constructor(options: ProxyProtocolOptions | undefined, logger: Logger) {
    this.#log = logger;
    this.configure(options);
  }

  /** New settings (reload); connections already reading their header keep the old timeout. */
  configure(options: ProxyProtocolOptions | undefined): void {
    this.#trusted = options && options.trustedSources.length > 0 ? addressList(options.trustedSources) : null;
    this.#timeoutMs = options?.headerTimeoutMs ?? PROXY_PROTOCOL.headerTimeoutMs.default;
  }

  get enabled(): boolean {
    return this.#trusted !== null;
  }

  #trusts(address: string): boolean {
    return this.#trusted !== null && inList(this.#trusted, address);
  }

  /**
   * Read the header of a new connection. Resolves with the client behind it
   * and the socket paused (see detachForHandoff before sending it to a
   * worker); or with null once the connection was
   * refused (closed, and logged): an untrusted source, more than
   * `maxPending` headers awaited at once, or no valid header in time.
   */
  async accept(socket: net.Socket, implicitTls: boolean, maxPending: number): Promise<ProxiedConnection | null> {
    socket.on('error', () => {});
    // A connection reset before we saw it (a balancer's health check that
    // closes with an RST) has no address any more: nothing to refuse.
    if (socket.remoteAddress === undefined) {
      this.#log.debug('connection closed before its PROXY header could be read');
      socket.destroy();
      return null;
    }
    const via = normalizeAddress(socket.remoteAddress);
    if (!this.#trusts(via)) {
      this.#log.warn({ remoteAddress: via }, 'connection refused: PROXY protocol is on and this address is not in proxyProtocol.trustedSources');
      turnAway(socket, implicitTls, REFUSED_TEXT);
      return null;
    }
    if (this.#pending >= maxPending) {
      this.#log.warn({ remoteAddress: via, pending: this.#pending }, 'connection refused: too many PROXY protocol headers awaited at once');
      socket.destroy();
      return null;
    }
    this.#pending++;
    try {
      const { header, head } = await readProxyHeader(socket, this.#timeoutMs);
      const peer = header.source ?? { address: via, port: socket.remotePort ?? 0 };
      this.#log.debug({ remoteAddress: peer.address, via, version: header.version, local: header.source === null, headBytes: head.length }, 'PROXY protocol header');
      return { peer, head };
    } catch (err) {
      // A balancer's TCP health check connects and closes without a byte
      // (HAProxy's `check`, an NLB's TCP check): routine, so debug. Anything
      // else means a misconfigured (no send-proxy) or broken balancer: tell
      // the operator, not the client.
      const silent = err instanceof HeaderError && err.closedEmpty;
      this.#log[silent ? 'debug' : 'warn']({ remoteAddress: via, reason: (err as Error).message }, 'connection closed: no valid PROXY protocol header from a trusted source');
      socket.destroy();
      return null;
    } finally {
      this.#pending--;
    }
  }
}

/** Why a connection brought no valid header; `closedEmpty`: it closed before sending a byte. */
class HeaderError extends Error {
  constructor(
    message: string,
    readonly closedEmpty = false,
  ) {
    super(message);
  }
}

/**
 * Read bytes until they hold a complete header (the parser bounds how many
 * that can take), then stop reading. Rejects on an invalid header, a close,
 * or `timeoutMs` without a complete one (the spec, §2.1, asks for at least
 * 3 s: a lost segment is retransmitted after about 1 s, then 3 s).
 */
export function readProxyHeader(socket: net.Socket, timeoutMs: number): Promise<{ header: ProxyHeader; head: Buffer }> {
  return new Promise((resolve, reject) => {
    let received: Buffer = Buffer.alloc(0);
    const finish = (err: Error | null, header?: ProxyHeader, length = 0) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      // Bytes already read past the one that completed the header (several
      // chunks may have queued before 'data' ran) are the client's too.
      const head = Buffer.concat([received.subarray(length), ...drain(socket)]);
      if (err) reject(err);
      else resolve({ header: header!, head });
    };
    const onData = (chunk: Buffer) => {
      received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
      const result = parseProxyHeader(received);
      if (result.kind === 'more') return;
      if (result.kind === 'invalid') finish(new HeaderError(result.reason));
      else finish(null, result.header, result.length);
    };
    const onEnd = () => finish(new HeaderError(`connection closed after ${received.length} bytes, before a complete PROXY protocol header`, received.length === 0));
    const timer = setTimeout(() => finish(new HeaderError(`no complete PROXY protocol header within ${timeoutMs} ms (${received.length} bytes received)`)), timeoutMs);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.resume();
  });
}

/** Pause, and take what the socket had buffered but not yet emitted (read() in paused mode emits to no one once 'data' listeners are gone). */
function drain(socket: net.Socket): Buffer[] {
  socket.pause();
  const chunks: Buffer[] = [];
  for (let chunk: Buffer | null; socket.readableLength > 0 && (chunk = socket.read() as Buffer | null) !== null; ) chunks.push(chunk);
  return chunks;
}

/**
 * Before a socket whose header was read is sent to a cluster worker: stop
 * the kernel reads and return every byte this process still holds. A paused
 * socket keeps reading into its buffer, and Node's handoff drops that
 * buffer (the old handle's onread becomes a no-op), so bytes the client sent
 * after its header would be lost. Call it right before `worker.send`, in
 * the same tick. The socket must not be used here afterwards: it no longer
 * reads (the worker's new socket over the same descriptor does).
 *
 * How: `read(0)` leaves the stream marked as reading until the next push,
 * which never comes once the handle has stopped, so the stream never asks
 * the handle to start again; `readStop()` is what `Socket.pause()` itself
 * does for sockets created with `onread`.
 */
export function detachForHandoff(socket: net.Socket): Buffer {
  const chunks = drain(socket);
  socket.read(0);
  const handle = (socket as unknown as { _handle?: { reading?: boolean; readStop?: () => number } | null })._handle;
  if (handle && typeof handle.readStop === 'function') {
    handle.reading = false;
    handle.readStop();
  }
  return Buffer.concat(chunks);
}
