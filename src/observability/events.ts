/** The typed events a server emits. Payloads never carry passwords. */

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
  bytes: number;
  durationMs: number;
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
  connect: [info: SessionInfo & { remotePort: number }];
  login: [info: UserInfo];
  'login-failed': [info: SessionInfo & { username: string }];
  /**
   * An upload completed and is durable in storage. `sha256` (hex) and `size`
   * are of the bytes this upload stored (after TYPE A conversion; for APPE
   * and REST+STOR only the bytes it added), hashed as they streamed in;
   * absent when `uploadSha256` is off.
   */
  'file-received': [info: TransferInfo & { sha256?: string; size?: number }];
  'file-sent': [info: TransferInfo];
  /** An upload ended early (ABOR, client vanished, storage error); nothing was committed. */
  'upload-aborted': [info: TransferInfo & { reason: string }];
  /** A download ended early (ABOR, client vanished, storage error); `bytes` is what was sent. */
  'download-aborted': [info: TransferInfo & { reason: string }];
  delete: [info: UserInfo & { path: string }];
  rename: [info: UserInfo & { from: string; to: string }];
  mkdir: [info: UserInfo & { path: string }];
  rmdir: [info: UserInfo & { path: string }];
  disconnect: [info: SessionInfo & { username: string | null; durationMs: number }];
  /** The defender banned an address (by its score, or by hand). In cluster mode only the primary's log has it. */
  ban: [info: BanInfo];
  /** A ban ended or was removed. */
  unban: [info: UnbanInfo];
  /** A server-level failure (e.g. the listener failed). Sessions never emit this. */
  error: [err: Error];
}
