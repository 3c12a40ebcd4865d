/**
 * FTPS settings: what `FtpServerOptions.tls` accepts, its defaults, and its
 * validation (a TypeError naming the option, like every other option).
 */
import { constants } from 'node:crypto';
import tls from 'node:tls';

/**
 * When TLS is required, per user (Authenticator.tlsPolicy) or for everyone:
 * - 'optional': plain FTP and FTPS are both accepted;
 * - 'login': USER is refused (530) until AUTH TLS, so no password is ever sent in the clear;
 * - 'data': as 'login', and transfers are refused (521) until PROT P.
 */
export const TLS_POLICIES = ['optional', 'login', 'data'] as const;
export type TlsPolicy = (typeof TLS_POLICIES)[number];

/** Certificate, key and protocol settings: what `server.reloadTls()` replaces. */
export interface TlsCredentials {
  /** PEM certificate chain, leaf first (the file's contents, not its path). */
  cert: string | Buffer;
  /** PEM private key of the leaf certificate. */
  key: string | Buffer;
  /** PEM CA certificates to send or to verify client certificates with. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Oldest TLS version accepted. Default 'TLSv1.2'. */
  minVersion?: 'TLSv1.2' | 'TLSv1.3';
  /** OpenSSL cipher list (TLS 1.2 names and TLS_* 1.3 suites). Default: AEAD suites with forward secrecy only. */
  ciphers?: string;
}

export interface TlsOptions extends TlsCredentials {
  /** Who must use TLS. Default 'login'. */
  policy?: TlsPolicy;
  /** Anonymous logins (anonymous, ftp) are not held to `policy`. Default true: their "password" is no secret. */
  anonymousExempt?: boolean;
  /**
   * Refuse (522) a PROT P data connection whose TLS session is not a
   * resumption of the control connection's session (vsftpd's
   * require_ssl_reuse): a third party cannot steal a data connection even
   * from the client's address. Default true.
   */
  requireSessionReuse?: boolean;
  /** Also listen for implicit FTPS (TLS from the first byte, usually port 990) on this port. 0 picks a free one. Default: no implicit listener. */
  implicitPort?: number;
  /**
   * Ask clients for a certificate on the control connection (mutual TLS).
   * One that verifies against `ca` reaches the authenticator as
   * `AuthRequest.clientCertificate`, which may map it to a user; a client
   * without one, or with one that does not verify, is not refused by TLS.
   * Default false.
   */
  requestClientCert?: boolean;
}

export interface ResolvedTlsOptions {
  readonly credentials: Readonly<TlsCredentials>;
  readonly policy: TlsPolicy;
  readonly anonymousExempt: boolean;
  readonly requireSessionReuse: boolean;
  readonly implicitPort: number | null;
  readonly requestClientCert: boolean;
}

/**
 * Mozilla's "intermediate" profile: TLS 1.3 suites, then ECDHE with AES-GCM
 * or ChaCha20 for TLS 1.2. No CBC, no RSA key exchange.
 */
const DEFAULT_CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/**
 * Sessions (and TLS 1.3 tickets) stay resumable for a day: data connections
 * resume the control connection's session, which lives as long as the
 * client stays connected. OpenSSL's default of 300 s would make every data
 * connection after five minutes a full handshake, refused under
 * requireSessionReuse.
 */
export const SESSION_TIMEOUT_S = 24 * 60 * 60;

/** The same for every process and every reload, so sessions survive both. */
const SESSION_ID_CONTEXT = 'ferry-ftps';

function pem(name: string, value: unknown, required: boolean): void {
  if (value === undefined && !required) return;
  const ok = (v: unknown) => (typeof v === 'string' || Buffer.isBuffer(v)) && v.length > 0;
  if (Array.isArray(value) ? value.every(ok) : ok(value)) return;
  throw new TypeError(`${name}: expected PEM text (a string or Buffer with the file's contents)${required ? '' : ' or nothing'}`);
}

/** Build the secure context, turning OpenSSL's errors into one that names the option. */
export function createSecureContext(credentials: TlsCredentials): tls.SecureContext {
  pem('tls.cert', credentials.cert, true);
  pem('tls.key', credentials.key, true);
  pem('tls.ca', credentials.ca, false);
  const minVersion = credentials.minVersion ?? 'TLSv1.2';
  if (minVersion !== 'TLSv1.2' && minVersion !== 'TLSv1.3') throw new TypeError(`tls.minVersion: "${String(minVersion)}" is not TLSv1.2 or TLSv1.3`);
  if (credentials.ciphers !== undefined && (typeof credentials.ciphers !== 'string' || !credentials.ciphers)) throw new TypeError('tls.ciphers: expected an OpenSSL cipher list');
  try {
    return tls.createSecureContext({
      cert: credentials.cert,
      key: credentials.key,
      ca: credentials.ca,
      minVersion,
      ciphers: credentials.ciphers ?? DEFAULT_CIPHERS,
      honorCipherOrder: true,
      // Client-initiated renegotiation costs the server a full handshake per
      // request and FTP never needs it; Node's own limit does not apply to
      // sockets made outside a tls.Server.
      secureOptions: constants.SSL_OP_NO_RENEGOTIATION,
      sessionIdContext: SESSION_ID_CONTEXT,
      sessionTimeout: SESSION_TIMEOUT_S,
    });
  } catch (err) {
    throw new TypeError(`tls.cert/tls.key: cannot be used (${(err as Error).message}); give a PEM certificate chain and its matching private key`, { cause: err });
  }
}

export function resolveTlsOptions(options: TlsOptions): ResolvedTlsOptions {
  if (typeof options !== 'object' || options === null) throw new TypeError('tls: expected an object with cert and key');
  const { policy = 'login', anonymousExempt = true, requireSessionReuse = true, implicitPort, requestClientCert = false } = options;
  if (!TLS_POLICIES.includes(policy)) throw new TypeError(`tls.policy: "${String(policy)}" is not one of ${TLS_POLICIES.join(', ')}`);
  if (typeof anonymousExempt !== 'boolean') throw new TypeError('tls.anonymousExempt: expected true or false');
  if (typeof requireSessionReuse !== 'boolean') throw new TypeError('tls.requireSessionReuse: expected true or false');
  if (typeof requestClientCert !== 'boolean') throw new TypeError('tls.requestClientCert: expected true or false');
  if (implicitPort !== undefined && (!Number.isInteger(implicitPort) || implicitPort < 0 || implicitPort > 65535)) {
    throw new TypeError(`tls.implicitPort: ${String(implicitPort)} is not a whole number from 0 to 65535`);
  }
  createSecureContext(options); // fail now, not at the first AUTH TLS
  const { cert, key, ca, minVersion, ciphers } = options;
  return Object.freeze({
    credentials: Object.freeze({ cert, key, ca, minVersion, ciphers }),
    policy,
    anonymousExempt,
    requireSessionReuse,
    implicitPort: implicitPort ?? null,
    requestClientCert,
  });
}
