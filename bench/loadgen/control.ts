/**
 * A raw FTP control connection over node:net: a tiny reply parser (multi-line
 * aware, RFC 959 §4.2) and a FIFO of waiters, nothing else. Commands are sent
 * as pre-built strings; each `expect()` takes the next complete reply.
 */
import net from 'node:net';
import tls from 'node:tls';

export interface Reply {
  code: number;
  /** The whole reply text (all lines, CRLF-joined, without the final CRLF). */
  text: string;
}

export class FtpError extends Error {
  constructor(
    message: string,
    readonly reply?: Reply,
  ) {
    super(message);
  }
}

type Waiter = { resolve: (r: Reply) => void; reject: (e: Error) => void };

export class Control {
  socket: net.Socket;
  #buf = '';
  /** Code of the multi-line reply being read ("123-..."), or 0. */
  #multi = 0;
  #multiLines: string[] = [];
  readonly #replies: Reply[] = [];
  readonly #waiters: Waiter[] = [];
  #error: Error | null = null;
  #ended = false;

  constructor(socket: net.Socket) {
    this.socket = socket;
    socket.setNoDelay(true);
    this.#listen(socket);
    socket.on('close', () => {
      this.#ended = true;
      this.#fail(new FtpError('control connection closed'));
    });
  }

  #listen(socket: net.Socket): void {
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => this.#onData(chunk));
    socket.on('error', (err) => this.#fail(err));
  }

  /** AUTH TLS (the 234 already read): the TLS handshake over the control connection. */
  startTls(): Promise<void> {
    this.socket.removeAllListeners('data');
    const secure = tls.connect({ socket: this.socket, rejectUnauthorized: false });
    this.#listen(secure);
    this.socket = secure;
    return new Promise((resolve, reject) => {
      secure.once('secureConnect', () => resolve());
      secure.once('error', reject);
    });
  }

  /** The TLS session to resume on data connections (after startTls). */
  get tlsSession(): Buffer | undefined {
    return (this.socket as tls.TLSSocket).getSession?.();
  }

  static connect(host: string, port: number): Control {
    return new Control(net.connect({ host, port }));
  }

  get closed(): boolean {
    return this.#ended;
  }

  send(line: string): void {
    this.socket.write(line);
  }

  /** The next reply (already received, or when it arrives). */
  expect(): Promise<Reply> {
    const r = this.#replies.shift();
    if (r) return Promise.resolve(r);
    if (this.#error) return Promise.reject(this.#error);
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /** The next reply, which must have the given first digit (or exact code when >= 100). */
  async want(expected: number, what: string): Promise<Reply> {
    const r = await this.expect();
    const ok = expected >= 100 ? r.code === expected : Math.floor(r.code / 100) === expected;
    if (!ok) throw new FtpError(`${what}: ${r.text.slice(0, 200)}`, r);
    return r;
  }

  destroy(): void {
    this.socket.destroy();
  }

  #onData(chunk: string): void {
    let buf = this.#buf.length > 0 ? this.#buf + chunk : chunk;
    let start = 0;
    for (;;) {
      const nl = buf.indexOf('\n', start);
      if (nl < 0) break;
      this.#line(buf, start, nl);
      start = nl + 1;
    }
    this.#buf = start === buf.length ? '' : buf.slice(start);
    if (this.#buf.length > 65536) this.#fail(new FtpError('reply line too long'));
  }

  /** One line buf[start..nl) (nl is the index of its '\n'). */
  #line(buf: string, start: number, nl: number): void {
    const end = nl > start && buf.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
    const isCode =
      end - start >= 3 &&
      isDigit(buf.charCodeAt(start)) &&
      isDigit(buf.charCodeAt(start + 1)) &&
      isDigit(buf.charCodeAt(start + 2));
    const code = isCode ? (buf.charCodeAt(start) - 48) * 100 + (buf.charCodeAt(start + 1) - 48) * 10 + (buf.charCodeAt(start + 2) - 48) : 0;
    const sep = end - start > 3 ? buf.charCodeAt(start + 3) : 32;
    if (this.#multi === 0) {
      if (!isCode) return; // stray text between replies: ignore
      if (sep === 45 /* - */) {
        this.#multi = code;
        this.#multiLines = [buf.slice(start, end)];
        return;
      }
      this.#push({ code, text: buf.slice(start, end) });
      return;
    }
    this.#multiLines.push(buf.slice(start, end));
    // A multi-line reply ends with a line "ddd " carrying the same code.
    if (code === this.#multi && sep !== 45) {
      const reply = { code, text: this.#multiLines.join('\r\n') };
      this.#multi = 0;
      this.#multiLines = [];
      this.#push(reply);
    }
  }

  #push(reply: Reply): void {
    const w = this.#waiters.shift();
    if (w) w.resolve(reply);
    else this.#replies.push(reply);
  }

  #fail(err: Error): void {
    if (this.#error) return;
    this.#error = err;
    for (const w of this.#waiters.splice(0)) w.reject(err);
  }
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

const EPSV_RE = /\(([^\d\s])\1\1(\d{1,5})\1\)/;
/** Port of a 229 reply "Entering Extended Passive Mode (|||port|)" (RFC 2428 §3). */
export function epsvPort(reply: Reply): number {
  const m = EPSV_RE.exec(reply.text);
  if (!m) throw new FtpError(`EPSV: cannot parse ${reply.text.slice(0, 100)}`, reply);
  return Number(m[2]);
}
