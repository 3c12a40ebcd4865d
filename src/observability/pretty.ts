/**
 * pino's JSON lines made readable for a person at a terminal:
 *
 *   2026-12-08 02:30:01.123 INFO  file-received  sessionId=k3x9 remoteAddress=127.0.0.1 username=alice path=/a.txt bytes=12
 *
 * Local time (the operator's clock), the level name padded to one width,
 * the message, then every other field as key=value in the order pino wrote
 * it. Values with spaces or quotes are JSON-quoted so a line still splits
 * on spaces; objects are JSON. An `err` prints its message inline and its
 * stack on the following lines, indented. Pure: one line in, one out, so
 * it is tested without a terminal. A line that is not JSON passes through.
 */

/** Fields the line's head already shows, or that say nothing to a reader. */
const HEAD = new Set(['time', 'level', 'msg', 'pid', 'hostname', 'worker']);

const COLORS: Record<string, string> = { debug: '\x1b[90m', info: '\x1b[32m', warn: '\x1b[33m', error: '\x1b[31m', fatal: '\x1b[35m', trace: '\x1b[90m' };
const RESET = '\x1b[0m';

export interface PrettyOptions {
  /** ANSI colours on the level name (a terminal that did not say NO_COLOR). */
  color: boolean;
}

export function prettyLine(line: string, options: PrettyOptions): string {
  const record = parseObject(line);
  if (!record) return line.endsWith('\n') ? line : `${line}\n`;
  const level = typeof record.level === 'string' ? record.level : String(record.level ?? '');
  const padded = level.toUpperCase().padEnd(5);
  const head = [localTime(record.time), options.color && COLORS[level] ? `${COLORS[level]}${padded}${RESET}` : padded];
  if (record.worker !== undefined) head.push(`[worker ${String(record.worker)}]`);
  if (typeof record.msg === 'string') head.push(record.msg);
  const fields: string[] = [];
  let stack: string | null = null;
  for (const [key, value] of Object.entries(record)) {
    if (HEAD.has(key) || value === undefined) continue;
    if (key === 'err' && value && typeof value === 'object') {
      const err = value as { message?: unknown; stack?: unknown };
      fields.push(`err=${quote(String(err.message ?? JSON.stringify(value)))}`);
      // The stack's first line repeats the message.
      if (typeof err.stack === 'string') stack = err.stack.split('\n').slice(1).map((l) => `    ${l.trim()}`).join('\n');
      continue;
    }
    fields.push(`${key}=${typeof value === 'string' ? quote(value) : JSON.stringify(value)}`);
  }
  const text = fields.length > 0 ? `${head.join(' ')}  ${fields.join(' ')}` : head.join(' ');
  return stack ? `${text}\n${stack}\n` : `${text}\n`;
}

function parseObject(line: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(line);
    return value !== null && typeof value === 'object' ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** A string as is when it has no space, quote, '=' or control character; else JSON-quoted. */
function quote(value: string): string {
  return value !== '' && !/[\s"=\\\x00-\x1f\x7f]/.test(value) ? value : JSON.stringify(value);
}

const two = (n: number) => String(n).padStart(2, '0');

/** `time` (ISO string or epoch ms) as local `YYYY-MM-DD HH:MM:SS.mmm`; what it was when unreadable. */
function localTime(time: unknown): string {
  const date = typeof time === 'string' || typeof time === 'number' ? new Date(time) : null;
  if (!date || Number.isNaN(date.getTime())) return String(time ?? '-');
  return `${date.getFullYear()}-${two(date.getMonth() + 1)}-${two(date.getDate())} ${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}.${String(date.getMilliseconds()).padStart(3, '0')}`;
}
