/**
 * Typed errors and their FTP replies, in one place.
 *
 * Storage backends, authenticators and the session throw `FerryError` with a
 * stable `code`; `replyForError` is the only function that turns any thrown
 * value into an FTP reply. Unknown errors become a generic 451 so that no
 * internal detail (an absolute path, a stack, an SDK message) reaches the
 * client; the caller logs the original.
 */

export const ErrorCodes = {
  /** The path does not exist. */
  NOT_FOUND: 'FERRY_ERR_NOT_FOUND',
  /** Something already exists where a new entry was to be created. */
  EXISTS: 'FERRY_ERR_EXISTS',
  NOT_A_DIRECTORY: 'FERRY_ERR_NOT_A_DIRECTORY',
  IS_A_DIRECTORY: 'FERRY_ERR_IS_A_DIRECTORY',
  NOT_EMPTY: 'FERRY_ERR_NOT_EMPTY',
  /** The backend refused (EACCES, AccessDenied) or the path leaves the root. */
  ACCESS_DENIED: 'FERRY_ERR_ACCESS_DENIED',
  /** The account lacks the permission letter the command needs. */
  NO_PERMISSION: 'FERRY_ERR_NO_PERMISSION',
  /** A path that is never valid: NUL byte, too long, bad encoding. */
  INVALID_NAME: 'FERRY_ERR_INVALID_NAME',
  /** The storage cannot do this at all (e.g. REST+STOR on object storage). */
  UNSUPPORTED: 'FERRY_ERR_UNSUPPORTED',
  /** A REST offset beyond the end of the file. */
  INVALID_OFFSET: 'FERRY_ERR_INVALID_OFFSET',
  /** The disk or bucket is out of space (retry later may help). */
  NO_SPACE: 'FERRY_ERR_NO_SPACE',
  /** A quota was exceeded. */
  QUOTA_EXCEEDED: 'FERRY_ERR_QUOTA_EXCEEDED',
  /** An upload crossed the configured maximum file size (or the store's own limit). */
  FILE_TOO_LARGE: 'FERRY_ERR_FILE_TOO_LARGE',
  /** A directory operation would touch more entries than the storage allows at once. */
  TOO_MANY_ENTRIES: 'FERRY_ERR_TOO_MANY_ENTRIES',
  /** A non-atomic rename made the copy but could not remove every old entry: both names now exist. */
  RENAME_INCOMPLETE: 'FERRY_ERR_RENAME_INCOMPLETE',
  /** The storage is set up wrongly (no such bucket, bad credentials): an operator must act. */
  MISCONFIGURED: 'FERRY_ERR_MISCONFIGURED',
  /** The backend is temporarily unavailable (endpoint down, throttled). */
  UNAVAILABLE: 'FERRY_ERR_UNAVAILABLE',
  /** A file being downloaded shrank under the transfer (truncated by someone else): what was sent is not the file. */
  FILE_CHANGED: 'FERRY_ERR_FILE_CHANGED',
  FILE_BUSY: 'FERRY_ERR_FILE_BUSY',
  /** HASH of a directory: the hash of a directory is not defined (draft-bryan-ftpext-hash-02 §3.5). */
  HASH_OF_DIRECTORY: 'FERRY_ERR_HASH_OF_DIRECTORY',
  /** limits.maxConcurrentHashes hashes are already running in this process. */
  HASH_BUSY: 'FERRY_ERR_HASH_BUSY',
  /** A RANG or X* range that starts beyond the end of the file. */
  INVALID_RANGE: 'FERRY_ERR_INVALID_RANGE',
  /** The data connection closed or failed during a transfer. */
  DATA_CONNECTION: 'FERRY_ERR_DATA_CONNECTION',
  /** The transfer was aborted by ABOR, shutdown or a timeout. */
  ABORTED: 'FERRY_ERR_ABORTED',
  /**
   * The password was right but the account's storage could not be opened
   * (e.g. a home folder the server's runAs user cannot create or enter):
   * the operator must act; the client is not told its password is wrong.
   */
  HOME_UNAVAILABLE: 'FERRY_ERR_HOME_UNAVAILABLE',
  /** The user already has as many sessions as its `maxSessions` allows. */
  TOO_MANY_SESSIONS: 'FERRY_ERR_TOO_MANY_SESSIONS',
  /** A limit could not be checked (the cluster primary did not answer): refused rather than let through. */
  LIMITS_UNAVAILABLE: 'FERRY_ERR_LIMITS_UNAVAILABLE',
  /** The defender banned the client's address (too many failed logins, protocol abuse, or by hand). */
  ADDRESS_BANNED: 'FERRY_ERR_ADDRESS_BANNED',
  /** The client's address is on defender.denyList. */
  ADDRESS_DENIED: 'FERRY_ERR_ADDRESS_DENIED',
  /** An awaited hook refused the action; the reply's text is the hook's reason. */
  HOOK_DENIED: 'FERRY_ERR_HOOK_DENIED',
  /** An awaited hook threw or did not answer within hookTimeoutMs: refused for now (fail closed). */
  HOOK_FAILED: 'FERRY_ERR_HOOK_FAILED',
  /** The TLS policy requires AUTH TLS before USER (no password in the clear). */
  TLS_REQUIRED_FOR_LOGIN: 'FERRY_ERR_TLS_REQUIRED_FOR_LOGIN',
  /** The TLS policy requires PROT P before any transfer. */
  TLS_REQUIRED_FOR_DATA: 'FERRY_ERR_TLS_REQUIRED_FOR_DATA',
  /** requireSessionReuse: the data connection did not resume the control connection's TLS session. */
  TLS_SESSION_NOT_REUSED: 'FERRY_ERR_TLS_SESSION_NOT_REUSED',
  /** The TLS handshake on the data connection failed or timed out. */
  TLS_HANDSHAKE_FAILED: 'FERRY_ERR_TLS_HANDSHAKE_FAILED',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export interface FtpReply {
  code: number;
  text: string;
}

/** The reply each code maps to. Texts are generic on purpose: no paths. */
const replies: Record<ErrorCode, FtpReply> = {
  FERRY_ERR_NOT_FOUND: { code: 550, text: 'No such file or directory.' },
  FERRY_ERR_EXISTS: { code: 550, text: 'File exists.' },
  FERRY_ERR_NOT_A_DIRECTORY: { code: 550, text: 'Not a directory.' },
  FERRY_ERR_IS_A_DIRECTORY: { code: 550, text: 'Is a directory.' },
  FERRY_ERR_NOT_EMPTY: { code: 550, text: 'Directory not empty.' },
  FERRY_ERR_ACCESS_DENIED: { code: 550, text: 'Permission denied.' },
  FERRY_ERR_NO_PERMISSION: { code: 550, text: 'Permission denied.' },
  // RFC 959: 553 Requested action not taken. File name not allowed.
  FERRY_ERR_INVALID_NAME: { code: 553, text: 'File name not allowed.' },
  // RFC 959: 504 Command not implemented for that parameter.
  FERRY_ERR_UNSUPPORTED: { code: 504, text: 'Not supported by this storage.' },
  FERRY_ERR_INVALID_OFFSET: { code: 554, text: 'Invalid REST offset.' },
  // RFC 959: 452 is the transient "insufficient storage", 552 the quota one.
  FERRY_ERR_NO_SPACE: { code: 452, text: 'Insufficient storage space.' },
  FERRY_ERR_QUOTA_EXCEEDED: { code: 552, text: 'Exceeded storage allocation.' },
  FERRY_ERR_FILE_TOO_LARGE: { code: 552, text: 'File too large: exceeds the maximum file size.' },
  FERRY_ERR_TOO_MANY_ENTRIES: { code: 550, text: 'Too many entries for this operation on this storage.' },
  FERRY_ERR_RENAME_INCOMPLETE: { code: 550, text: 'Rename incomplete: the copy was made, some old entries remain.' },
  FERRY_ERR_MISCONFIGURED: { code: 550, text: 'Storage unavailable: server misconfigured.' },
  FERRY_ERR_UNAVAILABLE: { code: 451, text: 'Storage temporarily unavailable; try again later.' },
  // RFC 959: 451 Requested action aborted: local error in processing.
  FERRY_ERR_FILE_CHANGED: { code: 451, text: 'File changed during transfer; try again.' },
  // RFC 959: 450 Requested file action not taken. File unavailable (e.g., file busy).
  FERRY_ERR_FILE_BUSY: { code: 450, text: 'File busy: another transfer is using it; try again.' },
  // draft-bryan-ftpext-hash-02 §3.5: 553 for a directory, 450 when busy ("retry in the future").
  FERRY_ERR_HASH_OF_DIRECTORY: { code: 553, text: 'HASH is defined for files only, not directories.' },
  FERRY_ERR_HASH_BUSY: { code: 450, text: 'Too many hashes in progress; try again later.' },
  // RFC 1123 §4.1.3.4 answers a REST offset it cannot use with 554; a range is the same kind of parameter.
  FERRY_ERR_INVALID_RANGE: { code: 554, text: 'Invalid range: it starts beyond the end of the file; send RANG 1 0 or a smaller start.' },
  FERRY_ERR_DATA_CONNECTION: { code: 426, text: 'Connection closed; transfer aborted.' },
  FERRY_ERR_ABORTED: { code: 426, text: 'Transfer aborted.' },
  // RFC 959 §5.4 allows PASS only 230, 202, 530, 500, 501, 503, 421 and 332.
  // 530 says "not logged in" and clients ask for another password; 421
  // (service not available, closing) says the server is at fault, and
  // clients report it and retry later, which works once the operator fixed it.
  FERRY_ERR_HOME_UNAVAILABLE: { code: 421, text: 'Cannot open your home folder: server misconfigured; try again later.' },
  // 421 and close, as for HOME_UNAVAILABLE: the password was right, so 530
  // would make clients ask for another; 421 is retried later, when a session ended.
  FERRY_ERR_TOO_MANY_SESSIONS: { code: 421, text: 'Too many sessions for this user; close one or try again later.' },
  FERRY_ERR_LIMITS_UNAVAILABLE: { code: 421, text: 'Service temporarily unavailable; try again later.' },
  // RFC 959: 421 Service not available, closing control connection: before
  // the greeting (instead of 220) and at PASS, then the connection closes.
  FERRY_ERR_ADDRESS_BANNED: { code: 421, text: 'Service not available: your address is banned; try again later.' },
  FERRY_ERR_ADDRESS_DENIED: { code: 421, text: 'Service not available: connections from your address are refused.' },
  // RFC 959: 530 Not logged in (vsftpd answers USER the same way).
  // The hook's own reason replaces this text (FerryError's `reply`).
  FERRY_ERR_HOOK_DENIED: { code: 550, text: 'Refused by the server.' },
  FERRY_ERR_HOOK_FAILED: { code: 451, text: 'The server cannot decide now; try again later.' },
  FERRY_ERR_TLS_REQUIRED_FOR_LOGIN: { code: 530, text: 'TLS required: send AUTH TLS before logging in.' },
  // RFC 4217 §9: 521 data connection cannot be opened with this PROT setting.
  FERRY_ERR_TLS_REQUIRED_FOR_DATA: { code: 521, text: 'Data connections must be encrypted: send PBSZ 0 and PROT P.' },
  // vsftpd's reply for require_ssl_reuse, which clients and operators recognise.
  FERRY_ERR_TLS_SESSION_NOT_REUSED: { code: 522, text: 'Data connection refused: its TLS session must resume the control connection\'s.' },
  FERRY_ERR_TLS_HANDSHAKE_FAILED: { code: 425, text: "Can't open data connection: TLS negotiation failed." },
};

const kFerryError = Symbol.for('ferry.error');

export class FerryError extends Error {
  readonly code: ErrorCode;
  /** The reply's text instead of the code's generic one: only for text meant for the client (a hook's reason). */
  readonly reply?: string;

  /**
   * @param code stable error code
   * @param message for logs only; never sent to the client
   */
  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown; reply?: string }) {
    super(message ?? code, options);
    this.name = 'FerryError';
    this.code = code;
    if (options?.reply) this.reply = options.reply;
  }

  get [kFerryError](): true {
    return true;
  }

  // Recognise errors from a second copy of the package too (undici does the same).
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[kFerryError] === true;
  }
}

const errnoToCode: Record<string, ErrorCode> = {
  ENOENT: ErrorCodes.NOT_FOUND,
  EEXIST: ErrorCodes.EXISTS,
  ENOTDIR: ErrorCodes.NOT_A_DIRECTORY,
  EISDIR: ErrorCodes.IS_A_DIRECTORY,
  ENOTEMPTY: ErrorCodes.NOT_EMPTY,
  EACCES: ErrorCodes.ACCESS_DENIED,
  EPERM: ErrorCodes.ACCESS_DENIED,
  EROFS: ErrorCodes.ACCESS_DENIED,
  ELOOP: ErrorCodes.ACCESS_DENIED,
  // Opening a UNIX socket: a special file, refused like a FIFO.
  ENXIO: ErrorCodes.ACCESS_DENIED,
  ENAMETOOLONG: ErrorCodes.INVALID_NAME,
  EINVAL: ErrorCodes.INVALID_NAME,
  ENOSPC: ErrorCodes.NO_SPACE,
  EDQUOT: ErrorCodes.QUOTA_EXCEEDED,
  EFBIG: ErrorCodes.QUOTA_EXCEEDED,
  EXDEV: ErrorCodes.UNSUPPORTED,
};

/** Translate a Node system error (ENOENT, EACCES, ...) into a FerryError. */
export function fromSystemError(err: unknown): unknown {
  if (err instanceof FerryError) return err;
  const errno = (err as NodeJS.ErrnoException | null)?.code;
  const code = errno ? errnoToCode[errno] : undefined;
  return code ? new FerryError(code, (err as Error).message, { cause: err }) : err;
}

/** The single place where anything thrown becomes an FTP reply. */
export function replyForError(err: unknown): FtpReply {
  const translated = fromSystemError(err);
  if (translated instanceof FerryError) return translated.reply ? { code: replies[translated.code].code, text: translated.reply } : replies[translated.code];
  return { code: 451, text: 'Local error in processing.' };
}

/**
 * Codes an operator must hear about (logged at warn): the client cannot fix
 * them, and they hit every session until someone acts.
 */
const operatorCodes: ReadonlySet<ErrorCode> = new Set([
  ErrorCodes.ACCESS_DENIED,
  // A full disk refuses every upload until someone frees space.
  ErrorCodes.NO_SPACE,
  ErrorCodes.UNAVAILABLE,
  ErrorCodes.MISCONFIGURED,
  ErrorCodes.HOME_UNAVAILABLE,
  ErrorCodes.LIMITS_UNAVAILABLE,
]);

export function needsOperator(err: unknown): boolean {
  const translated = fromSystemError(err);
  return translated instanceof FerryError && operatorCodes.has(translated.code);
}

/** True when the error is one we expect in normal operation (not worth a stack in the log). */
export function isExpectedError(err: unknown): boolean {
  return fromSystemError(err) instanceof FerryError;
}
