/**
 * The typed events a server emits, with one set of field names (the log
 * field names too): sessionId, remoteAddress, username, path, bytes,
 * durationMs. Payloads never carry passwords. docs/events.md lists each
 * with an example.
 */
import type { LoginFailureReason } from './channels.js';
import type { UploadMode } from '../server/hooks.js';

export type { LoginFailureReason, UploadMode };

export interface SessionInfo {
  sessionId: string;
  remoteAddress: string;
}

export interface UserInfo extends SessionInfo {
  username: string;
}

export interface TransferInfo extends UserInfo {
  /** Virtual path inside the user's root. */
  path: string;
  /** Bytes moved on the data connection. */
  bytes: number;
  /** From the command to its end. */
  durationMs: number;
}

export interface UploadInfo extends TransferInfo {
  /** STOR (replace), REST + STOR (resume), APPE (append), STOU (unique). */
  mode: UploadMode;
  /** Where the bytes were written from: the REST offset; 0 otherwise (and for append). */
  offset: number;
}

/** A ban of the defender (limits/defender.ts): logged, emitted, listed by `ferry ban list`. JSON all through. */
export interface BanInfo {
  /** The banned address, or its /64 for IPv6 (`2001:db8:1:2::/64`). */
  address: string;
  /** Why: the offences that added up ("10 failed logins within 10 min"), or the text given with the ban by hand. */
  reason: string;
  /** Added by hand (`ferry ban add`, `shared.defender.ban()`), not by the score. */
  manual: boolean;
  /** ISO time the ban started. */
  since: string;
  /** Its length; null for a ban until removed (or the server restarts). */
  durationMs: number | null;
  /** ISO time it ends; null for a ban until removed. */
  expiresAt: string | null;
}

export interface UnbanInfo extends BanInfo {
  /** 'expired', or 'removed' (`ferry ban remove`, `shared.defender.unban()`). */
  cause: 'expired' | 'removed';
}

export interface ServerEvents {
  /** A control connection was accepted (after the admission gate). */
  connect: [info: SessionInfo & { remotePort: number }];
  login: [info: UserInfo & { secure: boolean }];
  /** A login did not succeed; `username` is the name the client gave. */
  'login-failed': [info: UserInfo & { reason: LoginFailureReason }];
  /** A logged-in user left: QUIT, REIN, a new USER, or the connection closed. Comes before `disconnect`. */
  logout: [info: UserInfo & { durationMs: number }];
  /**
   * An upload completed: the new content is in place under `path`. `sha256`
   * (hex) and `size` are of the bytes this upload stored (after TYPE A
   * conversion; for APPE and REST+STOR only the bytes it added), hashed as
   * they streamed in; absent when `uploadSha256` is off.
   */
  'file-received': [info: UploadInfo & { sha256?: string; size?: number }];
  'file-sent': [info: TransferInfo];
  /** An upload ended early (ABOR, client vanished, storage error); the old content (or nothing) remains. */
  'upload-aborted': [info: UploadInfo & { reason: string }];
  /** A download ended early (ABOR, client vanished, storage error); `bytes` is what was sent. */
  'download-aborted': [info: TransferInfo & { reason: string }];
  delete: [info: UserInfo & { path: string }];
  rename: [info: UserInfo & { from: string; to: string }];
  mkdir: [info: UserInfo & { path: string }];
  rmdir: [info: UserInfo & { path: string }];
  /** The control connection closed; `username` is null when nobody was logged in. */
  disconnect: [info: SessionInfo & { username: string | null; durationMs: number }];
  /** The defender banned an address (by its score, or by hand). In cluster mode the primary emits it (diagnostics channel ferry:event, logs, hooks). */
  ban: [info: BanInfo];
  /** A ban ended or was removed. */
  unban: [info: UnbanInfo];
  /** A server-level failure (e.g. the listener failed). Sessions never emit this. */
  error: [err: Error];
}
