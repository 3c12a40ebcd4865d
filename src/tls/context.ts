/**
 * One secure context per server, shared by the control connection and every
 * data connection of every session, so that data connections can resume the
 * control connection's TLS session (FileZilla, WinSCP, curl and lftp do).
 *
 * Sockets are wrapped with `new tls.TLSSocket(socket, { isServer })` over
 * connections accepted by our own listeners (the control listener, the
 * implicit listener, the passive port pool) or dialled by us (PORT): no
 * tls.Server per listener, and nothing that would give a data connection a
 * context, and so ticket keys, of its own.
 *
 * Resumption works two ways, and both are shared across the server:
 * - tickets (TLS 1.3, and TLS 1.2 clients that offer them): encrypted with
 *   the context's ticket keys, which a reload carries over;
 * - TLS 1.2 session IDs: Node only keeps a server-side session cache for
 *   sockets whose `server` option has 'newSession'/'resumeSession'
 *   listeners (tls.Server does it for its own sockets). Our sockets get a
 *   small emitter, a SessionRecorder, wired to one bounded SessionCache.
 *
 * The recorder also remembers the master secrets of the sessions issued on
 * one control connection, which is how a data connection is checked to be a
 * resumption of *that* session and not merely of some session (see
 * `SessionBinding#isResumedBy`).
 */
import { EventEmitter } from 'node:events';
import type net from 'node:net';
import tls from 'node:tls';
import { timingSafeEqual, X509Certificate } from 'node:crypto';
import { createSecureContext, SESSION_TIMEOUT_S, type TlsCredentials } from './options.js';
import { isTls13Session, sessionMasterKey } from './session-der.js';

/** TLS 1.2 sessions kept for session-ID resumption, oldest dropped first. */
const SESSION_CACHE_ENTRIES = 10_000;
/** Master secrets remembered per control connection (each TLS 1.3 connection issues two tickets). */
const KEYS_PER_BINDING = 32;

/** The server-wide TLS 1.2 session-ID cache (insertion-ordered Map: oldest first). */
class SessionCache {
  readonly #entries = new Map<string, { session: Buffer; expires: number }>();

  set(id: Buffer, session: Buffer): void {
    const key = id.toString('hex');
    this.#entries.delete(key);
    this.#entries.set(key, { session, expires: Date.now() + SESSION_TIMEOUT_S * 1000 });
    if (this.#entries.size > SESSION_CACHE_ENTRIES) this.#entries.delete(this.#entries.keys().next().value!);
  }

  get(id: Buffer): Buffer | null {
    const key = id.toString('hex');
    const entry = this.#entries.get(key);
    if (!entry) return null;
    if (entry.expires > Date.now()) return entry.session;
    this.#entries.delete(key);
    return null;
  }
}

/**
 * What a TLSSocket reports its sessions to (its `server` option): stores
 * them in the shared cache, answers resumption lookups from it, and, when
 * `onKey` is set, passes on each new session's master secret.
 */
class SessionRecorder extends EventEmitter {
  constructor(cache: SessionCache, onKey: (key: Buffer) => void) {
    super();
    this.on('newSession', (id: Buffer, session: Buffer, done: () => void) => {
      // TLS 1.3 resumes by ticket only; caching its sessions would only let
      // handshakes before login flush the TLS 1.2 entries clients resume by ID.
      if (!isTls13Session(session)) cache.set(id, session);
      const key = sessionMasterKey(session);
      if (key) onKey(key);
      done();
    });
    this.on('resumeSession', (id: Buffer, done: (err: Error | null, session: Buffer | null) => void) => done(null, cache.get(id)));
  }
}

/**
 * The TLS identity of one control connection: the master secrets of the
 * sessions the server issued on it (and on data connections that were
 * verified to resume it, since some clients resume the newest session they
 * hold).
 */
export class SessionBinding {
  readonly #context: TlsContext;
  readonly #keys: Buffer[] = [];
  readonly #recorder: SessionRecorder;

  constructor(context: TlsContext) {
    this.#context = context;
    this.#recorder = new SessionRecorder(context.cache, (key) => this.#remember(key));
  }

  #remember(key: Buffer): void {
    if (this.#keys.some((known) => known.equals(key))) return;
    this.#keys.push(Buffer.from(key));
    if (this.#keys.length > KEYS_PER_BINDING) this.#keys.shift();
  }

  /** The control handshake completed: its session (TLS 1.2) is one this connection may resume. */
  controlSecured(socket: tls.TLSSocket): void {
    const key = sessionMasterKey(socket.getSession());
    if (key) this.#remember(key);
  }

  /**
   * Whether a data connection resumed a session of this control connection:
   * `isSessionReused()`, and the resumed session's master secret is one this
   * connection was issued. TLS 1.2 resumption keeps the original master
   * secret; TLS 1.3 resumption's session holds the PSK of the ticket used,
   * which is the master secret of the ticket's session as issued. A session
   * from another control connection (another client behind the same
   * address) fails the second test.
   */
  #isResumedBy(data: tls.TLSSocket): boolean {
    if (!data.isSessionReused()) return false;
    const key = sessionMasterKey(data.getSession());
    return key !== null && this.#keys.some((known) => known.length === key.length && timingSafeEqual(known, key));
  }

  /**
   * Start the server side of a handshake on a data connection of this
   * session. `verify()`, once it is secure, tells whether it resumed this
   * session; only then do the sessions it is issued count as this
   * connection's (a refused connection must not earn a usable ticket).
   */
  wrapData(socket: net.Socket): { socket: tls.TLSSocket; verify(): boolean } {
    let trusted = false;
    const pending: Buffer[] = [];
    const recorder = new SessionRecorder(this.#context.cache, (key) => (trusted ? this.#remember(key) : pending.push(key)));
    const wrapped = this.#context.wrap(socket, recorder);
    return {
      socket: wrapped,
      verify: () => {
        if (!this.#isResumedBy(wrapped)) return false;
        trusted = true;
        for (const key of pending.splice(0)) this.#remember(key);
        return true;
      },
    };
  }

  /** Start the server side of the control connection's handshake; `requestCert` for mutual TLS. */
  wrapControl(socket: net.Socket, requestCert: boolean): tls.TLSSocket {
    return this.#context.wrap(socket, this.#recorder, requestCert);
  }
}

export class TlsContext {
  #secureContext: tls.SecureContext;
  /** The `ca` certificates, for checking client certificates (mutual TLS). */
  #clientCAs: X509Certificate[];
  readonly cache = new SessionCache();

  constructor(credentials: TlsCredentials) {
    this.#secureContext = createSecureContext(credentials);
    this.#clientCAs = certificates(credentials.ca);
  }

  /**
   * The client's certificate when it is valid now and issued (and signed)
   * by one of the `ca` certificates, or is one of them. Node computes
   * `authorized` only for sockets of a tls.Server, so the check is ours;
   * it covers certificates issued directly by a listed CA, not chains
   * through intermediates.
   */
  verifiedClientCertificate(socket: tls.TLSSocket): X509Certificate | null {
    const peer = socket.getPeerX509Certificate();
    if (!peer) return null;
    const now = Date.now();
    if (Date.parse(peer.validFrom) > now || Date.parse(peer.validTo) < now) return null;
    const trusted = this.#clientCAs.some((ca) => peer.raw.equals(ca.raw) || (peer.checkIssued(ca) && peer.verify(ca.publicKey)));
    return trusted ? peer : null;
  }

  /**
   * New certificate or settings for new handshakes; connections already
   * secured keep theirs. The ticket keys move to the new context, so data
   * connections of sessions secured before the reload still resume.
   */
  reload(credentials: TlsCredentials): void {
    const next = createSecureContext(credentials);
    const keys = (this.#secureContext.context as { getTicketKeys(): Buffer }).getTicketKeys();
    (next.context as { setTicketKeys(keys: Buffer): void }).setTicketKeys(keys);
    this.#secureContext = next;
    this.#clientCAs = certificates(credentials.ca);
  }

  /** A binding for a new control connection. */
  bind(): SessionBinding {
    return new SessionBinding(this);
  }

  wrap(socket: net.Socket, recorder: EventEmitter, requestCert = false): tls.TLSSocket {
    // `server` is only used for the session events (see the module comment).
    // A client certificate that does not verify is not a handshake failure:
    // the authenticator only ever sees verified ones (Session.clientCertificate).
    const secure = new tls.TLSSocket(socket, {
      isServer: true,
      secureContext: this.#secureContext,
      server: recorder as unknown as net.Server,
      requestCert,
      rejectUnauthorized: false,
    });
    // A socket made outside a tls.Server reports TLS errors after the
    // handshake only to this internal event, never as 'error': without it a
    // failed record (or a refused renegotiation) would leave the connection
    // hanging. Ending the connection is the only sane answer.
    secure.on('_tlsError', () => secure.destroy());
    return secure;
  }
}

/** Every certificate of PEM text or a list of them (a bundle holds several). */
function certificates(pem: TlsCredentials['ca']): X509Certificate[] {
  const texts = (Array.isArray(pem) ? pem : pem ? [pem] : []).map((p) => p.toString());
  return texts.flatMap((text) => text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((block) => new X509Certificate(block));
}
