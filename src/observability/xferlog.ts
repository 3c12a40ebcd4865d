/**
 * One transfer as a line of the xferlog format (xferlog(5) of wu-ftpd and
 * ProFTPD), which log analysers (xferstats, Webalizer, AWStats) read:
 * fields separated by spaces, the time being the first five words:
 *
 *   current-time transfer-time remote-host file-size filename transfer-type
 *   special-action-flag direction access-mode username service-name
 *   authentication-method authenticated-user-id completion-status
 *
 *   Tue Dec  8 02:30:01 2026 1 127.0.0.1 1048576 /in/cam_1.jpg b _ i r alice ftp 0 * c
 *
 * The format has no quoting: spaces and control characters in a name become
 * '_' (as ProFTPD does), so the line always splits into the same fields.
 * Pure, so it is tested without a server.
 */

export interface XferRecord {
  /** When the transfer ended (the line's time, local, as the format says). */
  end: Date;
  durationMs: number;
  remoteAddress: string;
  /** Bytes moved on the data connection. */
  bytes: number;
  /** Virtual path of the file. */
  path: string;
  /** TYPE A (ascii) rather than TYPE I (binary). */
  ascii: boolean;
  direction: 'upload' | 'download';
  /** An anonymous login (access-mode a) rather than an account (r). */
  anonymous: boolean;
  username: string;
  /** Completed (226) rather than aborted or failed. */
  complete: boolean;
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const two = (n: number) => String(n).padStart(2, '0');

/** ctime(3)'s "DDD MMM dd hh:mm:ss YYYY" in local time, the day of the month padded with a space as ctime does. */
export function ctime(date: Date): string {
  const time = `${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}`;
  return `${DAYS[date.getDay()]} ${MONTHS[date.getMonth()]} ${String(date.getDate()).padStart(2, ' ')} ${time} ${date.getFullYear()}`;
}

/** A field without spaces or control characters (the format cannot quote them). */
const xferlogField = (value: string) => (value === '' ? '_' : value.replace(/[\s\x00-\x1f\x7f]/g, '_'));

export function xferlogLine(record: XferRecord): string {
  // Whole seconds as the format has them; at least 1 so that an analyser dividing bytes by time never divides by 0.
  const seconds = Math.max(1, Math.round(record.durationMs / 1000));
  return [
    ctime(record.end),
    seconds,
    record.remoteAddress,
    record.bytes,
    xferlogField(record.path),
    record.ascii ? 'a' : 'b',
    '_',
    record.direction === 'upload' ? 'i' : 'o',
    record.anonymous ? 'a' : 'r',
    xferlogField(record.username),
    'ftp',
    0,
    '*',
    record.complete ? 'c' : 'i',
  ].join(' ') + '\n';
}
