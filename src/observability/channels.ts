/**
 * Diagnostics channels (`node:diagnostics_channel`): what sessions and
 * servers report for logs, metrics and the admin API to subscribe to,
 * instead of reaching into sessions. A publisher checks `hasSubscribers`
 * first, so an unobserved channel costs one property read (undici does the
 * same). Messages are plain objects whose field names are the log field
 * names. Subscribers run synchronously inside the publisher: they must be
 * quick and must not throw (a throw is reported by Node as an uncaught
 * exception on the next tick, not to the session).
 *
 * Anyone can subscribe by name, without importing Ferry:
 *   diagnostics_channel.subscribe('ferry:transfer:end', (message) => ...)
 */
import diagnostics from 'node:diagnostics_channel';
import type { ServerEvents } from './events.js';

/** Why a login did not succeed, in events, channels, logs and metrics. */
export type LoginFailureReason =
  /** No such user (the users file, or an authenticator that says so). */
  | 'unknown-user'
  /** The password (or certificate) did not match; also an authenticator's plain refusal. */
  | 'wrong-password'
  /** The account exists but is disabled. */
  | 'disabled'
  /** The account may not log in from this address (allowFrom). */
  | 'address-not-allowed'
  /** The user must use TLS and the control connection is plain (at USER). */
  | 'tls-required'
  /** A beforeLogin hook refused it. */
  | 'denied-by-hook'
  /** The user is at maxSessions. */
  | 'too-many-sessions'
  /** The address is banned by the defender. */
  | 'banned'
  /** The check could not be made (the authenticator threw, a limit could not be counted, a hook failed). */
  | 'error';

export interface SessionOpenMessage {
  sessionId: string;
  remoteAddress: string;
  remotePort: number;
  implicitTls: boolean;
}

export interface SessionCloseMessage {
  sessionId: string;
  remoteAddress: string;
  username: string | null;
  durationMs: number;
}

export interface CommandMessage {
  sessionId: string;
  /** The table row that runs: 'RETR', or a subcommand row such as 'SITE CHMOD'. */
  verb: string;
  /** The argument as the row's handler gets it ('' for PASS). */
  arg: string;
}

export interface ReplyMessage {
  sessionId: string;
  code: number;
}

export interface LoginMessage {
  sessionId: string;
  remoteAddress: string;
  username: string;
  outcome: 'success' | LoginFailureReason;
}

export type TransferDirection = 'upload' | 'download' | 'list';

export interface TransferStartMessage {
  sessionId: string;
  remoteAddress: string;
  username: string;
  verb: string;
  direction: TransferDirection;
  /** Virtual path of the file or listed directory; null when unknown. */
  path: string | null;
  /** The storage's kind ('local', 's3', 'memory', or 'custom'). */
  storage: string;
  /** TYPE in force: 'A' (ascii) or 'I' (binary). */
  transferType: 'A' | 'I';
  /** Logged in through the anonymous authenticator (the xferlog's access mode). */
  anonymous: boolean;
  /** Date.now() when the command started. */
  startedAt: number;
}

export interface TransferEndMessage extends TransferStartMessage {
  /** Bytes moved on the data connection. */
  bytes: number;
  durationMs: number;
  /** Completed (226); false when aborted or failed. */
  ok: boolean;
  /** Why it did not complete; null when it did. */
  reason: string | null;
}

export type EventMessage = {
  [K in keyof ServerEvents]: { name: K; info: ServerEvents[K][0] };
}[keyof ServerEvents];

export interface S3RequestMessage {
  /** The S3 operation: 'PutObject', 'UploadPart', 'ListObjectsV2', ... */
  operation: string;
  durationMs: number;
  /** The error's name or code; null on success. */
  error: string | null;
}

/** A channel whose messages have type T. */
export interface TypedChannel<T> {
  readonly name: string | symbol;
  readonly hasSubscribers: boolean;
  publish(message: T): void;
  subscribe(onMessage: (message: T, name: string | symbol) => void): void;
  unsubscribe(onMessage: (message: T, name: string | symbol) => void): boolean;
}

const channel = <T>(name: string) => diagnostics.channel(name) as unknown as TypedChannel<T>;

export const channels = {
  sessionOpen: channel<SessionOpenMessage>('ferry:session:open'),
  sessionClose: channel<SessionCloseMessage>('ferry:session:close'),
  command: channel<CommandMessage>('ferry:command'),
  reply: channel<ReplyMessage>('ferry:reply'),
  login: channel<LoginMessage>('ferry:login'),
  transferStart: channel<TransferStartMessage>('ferry:transfer:start'),
  transferEnd: channel<TransferEndMessage>('ferry:transfer:end'),
  event: channel<EventMessage>('ferry:event'),
  s3Request: channel<S3RequestMessage>('ferry:s3:request'),
} as const;

/** Publish a server event on `ferry:event` (FtpServer.notify; the cluster primary's bans). */
export function publishEvent<K extends keyof ServerEvents>(name: K, info: ServerEvents[K][0]): void {
  if (channels.event.hasSubscribers) channels.event.publish({ name, info } as EventMessage);
}
