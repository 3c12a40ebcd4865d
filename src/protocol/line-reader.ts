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
  /** Pieces of an unterminated line, joined once its LF arrives (no quadratic re-copying). */
  #carry: Buffer[] = [];
  #carryBytes = 0;
  #discarding = false;
  /** After an urgent "ABOR\r", its LF may still arrive: drop exactly that one. */
  #swallowLf = false;

  constructor(maxLineBytes: number) {
    this.#maxLineBytes = maxLineBytes;
  }

  /** Forget any partial line (AUTH TLS: nothing sent in the clear may complete a command sent over TLS). */
  reset(): void {
    this.#carry = [];
    this.#carryBytes = 0;
    this.#discarding = false;
    this.#swallowLf = false;
  }

  push(chunk: Buffer, sink: LineSink): void {
    if (this.#swallowLf) {
      this.#swallowLf = false;
      if (chunk[0] === LF) chunk = chunk.subarray(1);
    }
    let start = 0;
    let lf = chunk.indexOf(LF);
    if (lf !== -1 && this.#carryBytes > 0) {
      // Complete the carried line with the head of this chunk.
      const line = Buffer.concat([...this.#carry, chunk.subarray(0, lf)]);
      this.#carry = [];
      this.#carryBytes = 0;
      this.#emit(line, 0, line.length, sink);
      start = lf + 1;
      lf = chunk.indexOf(LF, start);
    }
    for (; lf !== -1; lf = chunk.indexOf(LF, start)) {
      this.#emit(chunk, start, lf, sink);
      start = lf + 1;
    }
    if (start >= chunk.length || this.#discarding) return;
    const rest = chunk.subarray(start);
    if (this.#carryBytes + rest.length > this.#maxLineBytes) {
      this.#carry = [];
      this.#carryBytes = 0;
      this.#discarding = true;
      sink.tooLong();
      return;
    }
    if (this.#carryBytes === 0 && isUrgentAbort(rest)) {
      this.#swallowLf = true;
      sink.line(stripTelnet(rest.subarray(0, rest.length - 1)));
      return;
    }
    // Copy: the tail must not pin the (possibly large) socket chunk.
    this.#carry.push(Buffer.from(rest));
    this.#carryBytes += rest.length;
  }

  /** Emit bytes [start, lf) of `data` as a line (without its CR). */
  #emit(data: Buffer, start: number, lf: number, sink: LineSink): void {
    if (this.#discarding) {
      this.#discarding = false;
      return;
    }
    const end = lf > start && data[lf - 1] === CR ? lf - 1 : lf;
    if (end - start > this.#maxLineBytes) sink.tooLong();
    else sink.line(stripTelnet(data.subarray(start, end)));
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
 * Remove Telnet commands (RFC 854) that clients put before ABOR and STAT:
 * IAC IP, IAC DM and the like (IAC + 0xF0..0xFA), with IAC IAC meaning a
 * literal 0xFF. Because the urgent byte of a Synch is taken out of band, some
 * clients leave a lone IAC or a lone command byte behind: a lone IAC is
 * dropped, and so are command bytes (>= 0xF0) left at the start of the line,
 * where no valid command can have them. Other bytes stay, so non-UTF-8 input
 * still ends in a 501.
 */
export function stripTelnet(line: Buffer): Buffer {
  if (line.length === 0 || (line.indexOf(IAC) === -1 && line[0]! < 0xf0)) return line;
  const out = Buffer.allocUnsafe(line.length);
  let n = 0;
  for (let i = 0; i < line.length; i++) {
    const byte = line[i]!;
    if (byte !== IAC) {
      // A stray Telnet command byte before the verb.
      if (n === 0 && byte >= 0xf0) continue;
      out[n++] = byte;
      continue;
    }
    const next = line[i + 1];
    if (next === IAC) {
      out[n++] = IAC;
      i++;
    } else if (next !== undefined && next >= 0xf0 && next <= 0xfa) {
      i++;
    }
    // Otherwise a lone IAC: drop it and keep what follows.
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
