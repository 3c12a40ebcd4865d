/**
 * Control-channel framing: bytes in, complete command lines out.
 *
 * Lines end with LF (CRLF per RFC 959; a bare LF is tolerated). A command may
 * arrive split over many TCP segments, and one segment may carry several
 * commands, so an unterminated tail is carried over to the next chunk. The
 * carry-over is bounded by `maxLineBytes`: a longer line is reported once
 * and its remaining bytes are discarded up to the next LF, so a client that
 * never sends a newline cannot grow our memory before it even logs in.
 */

const LF = 0x0a;
const CR = 0x0d;
const IAC = 0xff;

export interface LineSink {
  line(line: Buffer): void;
  tooLong(): void;
}

export class LineReader {
  readonly #maxLineBytes: number;
  #carry: Buffer | null = null;
  #discarding = false;

  constructor(maxLineBytes: number) {
    this.#maxLineBytes = maxLineBytes;
  }

  push(chunk: Buffer, sink: LineSink): void {
    let data = chunk;
    if (this.#carry) {
      data = Buffer.concat([this.#carry, chunk]);
      this.#carry = null;
    }
    let start = 0;
    let lf: number;
    while ((lf = data.indexOf(LF, start)) !== -1) {
      const end = lf > start && data[lf - 1] === CR ? lf - 1 : lf;
      if (this.#discarding) {
        this.#discarding = false;
      } else if (end - start > this.#maxLineBytes) {
        sink.tooLong();
      } else {
        sink.line(stripTelnet(data.subarray(start, end)));
      }
      start = lf + 1;
    }
    if (start >= data.length || this.#discarding) return;
    const rest = data.subarray(start);
    if (rest.length > this.#maxLineBytes) {
      this.#discarding = true;
      sink.tooLong();
      return;
    }
    if (isUrgentAbort(rest)) {
      sink.line(stripTelnet(rest.subarray(0, rest.length - 1)));
      return;
    }
    // Copy: the tail must not pin the (possibly large) socket chunk.
    this.#carry = Buffer.from(rest);
  }
}

/**
 * Clients send ABOR as TCP urgent data (RFC 959 §4.1.3, Telnet Synch). Linux
 * removes the urgent byte from the stream unless SO_OOBINLINE is set, which
 * Node cannot set; Python's ftplib marks the final LF urgent, so we receive
 * "ABOR\r" and nothing more until we answer. Treat exactly that as a line.
 */
function isUrgentAbort(rest: Buffer): boolean {
  if (rest.length < 5 || rest[rest.length - 1] !== CR) return false;
  const text = stripTelnet(rest.subarray(0, rest.length - 1)).toString('latin1');
  return text.toUpperCase() === 'ABOR';
}

/**
 * Remove Telnet commands (RFC 854): IAC IP and IAC DM precede ABOR; IAC IAC
 * is a literal 0xff. Option negotiation (WILL/WONT/DO/DONT) is dropped.
 */
export function stripTelnet(line: Buffer): Buffer {
  if (line.indexOf(IAC) === -1) return line;
  const out = Buffer.allocUnsafe(line.length);
  let n = 0;
  for (let i = 0; i < line.length; i++) {
    const byte = line[i]!;
    if (byte !== IAC) {
      out[n++] = byte;
      continue;
    }
    const command = line[i + 1];
    if (command === undefined) break;
    if (command === IAC) out[n++] = IAC;
    // WILL, WONT, DO, DONT carry one option byte.
    i += command >= 251 && command <= 254 ? 2 : 1;
  }
  return out.subarray(0, n);
}

export interface ParsedCommand {
  /** Upper-cased verb, e.g. "RETR". */
  verb: string;
  /** Everything after the first space, untouched (may contain spaces, quotes, dashes). */
  arg: string;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Split a line into verb and argument (split once, RFC 959 §5.3). Returns
 * null when the bytes are not valid UTF-8 (RFC 2640 makes UTF-8 the encoding).
 */
export function parseCommand(line: Buffer): ParsedCommand | null {
  let text: string;
  try {
    text = utf8.decode(line);
  } catch {
    return null;
  }
  const space = text.indexOf(' ');
  if (space === -1) return { verb: text.toUpperCase(), arg: '' };
  return { verb: text.slice(0, space).toUpperCase(), arg: text.slice(space + 1) };
}
