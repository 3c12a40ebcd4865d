/**
 * `logging.transferLog`: one xferlog line per file transfer that completed
 * or was aborted, fed by the `ferry:transfer:end` diagnostics channel (so
 * the session knows nothing of it). Listings are not file transfers and are
 * left out, as other servers do. In a cluster every worker subscribes in its
 * own process and appends to the same file (O_APPEND: whole lines, never
 * interleaved); SIGUSR1 reopens it like the main log.
 */
import { channels, type TransferEndMessage } from './channels.js';
import { AppendFile } from './log-output.js';
import { xferlogLine, type XferRecord } from './xferlog.js';

/** The xferlog record of a transfer's end; null for what is not a file transfer (a listing). */
export function xferRecord(message: TransferEndMessage, end: Date): XferRecord | null {
  if (message.direction === 'list' || message.path === null) return null;
  return {
    end,
    durationMs: message.durationMs,
    remoteAddress: message.remoteAddress,
    bytes: message.bytes,
    path: message.path,
    ascii: message.transferType === 'A',
    direction: message.direction,
    anonymous: message.anonymous,
    username: message.username,
    complete: message.ok,
  };
}

export class TransferLog {
  readonly #file: AppendFile;
  readonly #onEnd = (message: TransferEndMessage): void => {
    const record = xferRecord(message, new Date());
    if (record) this.#file.write(xferlogLine(record));
  };

  /** Opens (creates) `path` now: a path that cannot be written throws, naming the setting. */
  constructor(path: string) {
    this.#file = new AppendFile(path, 'logging.transferLog');
    channels.transferEnd.subscribe(this.#onEnd);
  }

  reopen(): void {
    this.#file.reopen();
  }
}
