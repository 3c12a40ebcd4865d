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

export interface ServerEvents {
  connect: [info: SessionInfo & { remotePort: number }];
  login: [info: UserInfo];
  'login-failed': [info: SessionInfo & { username: string }];
  /** An upload completed and is durable in storage. */
  'file-received': [info: TransferInfo];
  'file-sent': [info: TransferInfo];
  /** A download ended early (ABOR, client vanished, file unreadable); the reply said why. */
  'download-aborted': [info: TransferInfo & { reason: string }];
  /** An upload ended early (ABOR, client vanished, storage error); nothing was committed. */
  'upload-aborted': [info: TransferInfo & { reason: string }];
  delete: [info: UserInfo & { path: string }];
  rename: [info: UserInfo & { from: string; to: string }];
  mkdir: [info: UserInfo & { path: string }];
  rmdir: [info: UserInfo & { path: string }];
  disconnect: [info: SessionInfo & { username?: string }];
  /** A server-level failure (e.g. the listener failed). Sessions never emit this. */
  error: [err: Error];
}
