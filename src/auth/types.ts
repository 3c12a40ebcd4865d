/**
 * Authentication (who is this?) and authorization (may they do that here?).
 *
 * An Authenticator turns USER/PASS into an Account or a rejection. The
 * Account carries the session's Storage (already bound to the user's root)
 * and the permissions the session checks before every command.
 */
import type { Storage } from '../storage/types.js';
import type { TlsPolicy } from '../tls/options.js';

export type { TlsPolicy };

/**
 * Permission letters, as in pyftpdlib:
 * e change directory (CWD, CDUP), l list (LIST, NLST, MLSD, MLST, STAT path, SIZE, MDTM),
 * r retrieve (RETR), a append (APPE), d delete (DELE, RMD), f rename (RNFR, RNTO),
 * m make directory (MKD), w store (STOR, STOU), M change mode (SITE CHMOD),
 * T change modification time (MFMT).
 */
export type Permission = 'e' | 'l' | 'r' | 'a' | 'd' | 'f' | 'm' | 'w' | 'M' | 'T';

export const READ_PERMISSIONS = 'elr';
export const ALL_PERMISSIONS = 'elradfmwMT';

export interface Account {
  username: string;
  /**
   * Storage bound to this user's root. The session calls its `close()`, if
   * present, when it ends: a Storage shared by several sessions must not
   * implement `close` (or hand out one instance per session).
   */
  storage: Storage;
  /** Granted permission letters, e.g. 'elr' (read-only) or 'elradfmwMT'. */
  permissions: string;
  /**
   * Optional finer check, e.g. per-directory overrides. Called with a
   * normalised virtual path; when present it replaces the `permissions` test.
   */
  hasPermission?(permission: Permission, path: string): boolean;
  /**
   * This user's limits, key by key over the server's `perUserLimits`
   * (absent: the server's value; 0: no limit).
   */
  limits?: AccountLimits;
}

/** Per-user limits; 0 means no limit, absent means the server's default (`perUserLimits`). */
export interface AccountLimits {
  /** Sessions logged in at once as this user, across every process of the server. */
  maxSessions?: number;
  /** Download rate shared by all of the user's sessions. */
  downloadBytesPerSecond?: number;
  /** Upload rate shared by all of the user's sessions. */
  uploadBytesPerSecond?: number;
  /** Bytes the user's files may take in all. */
  quotaBytes?: number;
  /** Files the user may have in all. */
  quotaFiles?: number;
  /** Largest file the user may store. */
  maxFileSizeBytes?: number;
}

export interface AuthRequest {
  username: string;
  password: string;
  /** The client's address as seen on the control connection (IPv4 in dotted form). */
  remoteAddress: string;
  /** True when the control connection is encrypted. */
  secure: boolean;
  /** With `tls.requestClientCert`: the client's certificate, present only when it verified against `tls.ca`. */
  clientCertificate?: ClientCertificate;
}

/** A verified client certificate (mutual TLS), as an authenticator sees it. */
export interface ClientCertificate {
  /** e.g. "CN=camera-17\nO=Example". */
  subject: string;
  /** e.g. "DNS:camera-17.example.com", when present. */
  subjectAltName: string | undefined;
  /** SHA-256 fingerprint, "AB:CD:...": the most precise way to pin one certificate to one user. */
  fingerprint256: string;
}

/**
 * A refusal that says why, for the 'login-failed' event, logs and metrics
 * (the client sees the same 530 whatever the reason: it must not learn
 * which names exist). 'error': the check could not be made.
 */
export interface LoginRefusal {
  refused: 'unknown-user' | 'wrong-password' | 'disabled' | 'address-not-allowed' | 'error';
}

export function isRefusal(answer: Account | LoginRefusal | null): answer is LoginRefusal {
  return answer !== null && typeof (answer as LoginRefusal).refused === 'string';
}

export interface Authenticator {
  /**
   * Resolve to an Account, or refuse: null, or a LoginRefusal saying why
   * (null counts as 'wrong-password'). The client sees 530 after a delay.
   */
  authenticate(request: AuthRequest): Promise<Account | LoginRefusal | null>;
  /**
   * Optional: true when this authenticator alone decides for `username`. In a
   * ChainAuthenticator its refusal is then final: a user the users file
   * disables must not be let in by the next authenticator in line.
   */
  owns?(username: string): boolean;
  /**
   * Optional: this user's TLS policy, consulted at USER (before any
   * password is sent), overriding the server's `tls.policy` and the
   * anonymous exemption. Return undefined to use the server's policy.
   * 'login' or 'data' on a server without TLS means the user cannot log in.
   * Must not be slow: it runs on every USER.
   */
  tlsPolicy?(username: string): TlsPolicy | undefined;
  /**
   * Optional: true when `username` logs in anonymously here (no secret to
   * protect), so `tls.anonymousExempt` may let it in without TLS. Without
   * it, no name is exempt: a real account called "ftp" must not be.
   */
  isAnonymous?(username: string): boolean;
}

export function accountHasPermission(account: Account, permission: Permission, path: string): boolean {
  return account.hasPermission ? account.hasPermission(permission, path) : account.permissions.includes(permission);
}
