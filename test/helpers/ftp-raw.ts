/**
 * A minimal FTP client over a raw socket for protocol-level tests: send any
 * bytes, read replies exactly as the server wrote them (multi-line aware).
 * Every wait is bounded so that a broken server fails the test, not hangs it.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';

export interface Reply {
  code: number;
  /** All lines of the reply, without CRLF. */
  lines: string[];
  /** The text of the last line after the code. */
  text: string;
}

const WAIT_MS = 5000;

export class RawClient {
  socket: net.Socket;
  #buffer = '';
  #replies: Reply[] = [];
  #waiters: Array<(reply: Reply) => void> = [];
  #closed = false;
  #closeWaiters: Array<() => void> = [];

  private constructor(socket: net.Socket) {
    this.socket = socket;
    this.#listen(socket);
    socket.on('close', () => {
      this.#closed = true;
      for (const waiter of this.#closeWaiters.splice(0)) waiter();
    });
  }

  /** `localAddress` picks the client's source address (any of 127.0.0.0/8 works on Linux loopback). */
  static async connect(port: number, host = '127.0.0.1', localAddress?: string): Promise<RawClient> {
    const socket = net.connect({ port, host, localAddress });
    await once(socket, 'connect');
    return new RawClient(socket);
  }

  /** A client over a socket already connected (e.g. from a chosen local address, or after a PROXY protocol header). */
  static over(socket: net.Socket): RawClient {
    return new RawClient(socket);
  }

  /** Connect, read the greeting, log in as the given user. */
  static async login(port: number, user: string, password: string, host = '127.0.0.1', localAddress?: string): Promise<RawClient> {
    const client = await RawClient.connect(port, host, localAddress);
    await client.expect(220);
    await client.command(`USER ${user}`, 331);
    await client.command(`PASS ${password}`, 230);
    return client;
  }

  #listen(socket: net.Socket): void {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.#onData(chunk));
    socket.on('error', () => {});
  }

  /** After a 234 to AUTH TLS: run the client side of the handshake on the control connection. */
  async startTls(options: tls.ConnectionOptions = {}): Promise<tls.TLSSocket> {
    this.socket.removeAllListeners('data');
    const secure = tls.connect({ socket: this.socket, rejectUnauthorized: false, ...options });
    const timer = setTimeout(() => secure.destroy(new Error(`no TLS handshake within ${WAIT_MS} ms`)), WAIT_MS);
    try {
      await once(secure, 'secureConnect');
    } finally {
      clearTimeout(timer);
    }
    this.#listen(secure);
    this.socket = secure;
    return secure;
  }

  /** AUTH TLS, the handshake, PBSZ 0 and PROT P. */
  async secure(options: tls.ConnectionOptions = {}): Promise<tls.TLSSocket> {
    await this.command('AUTH TLS', 234);
    const secure = await this.startTls(options);
    await this.command('PBSZ 0', 200);
    await this.command('PROT P', 200);
    return secure;
  }

  #onData(chunk: string): void {
    this.#buffer += chunk;
    for (;;) {
      const reply = this.#takeReply();
      if (!reply) return;
      const waiter = this.#waiters.shift();
      if (waiter) waiter(reply);
      else this.#replies.push(reply);
    }
  }

  #takeReply(): Reply | null {
    const lines = this.#buffer.split('\r\n');
    if (lines.length < 2) return null;
    const first = lines[0]!;
    const match = /^(\d{3})([ -])/.exec(first);
    if (!match) throw new Error(`malformed reply line: ${JSON.stringify(first)}`);
    const code = Number(match[1]);
    let end = 0;
    if (match[2] === '-') {
      end = lines.findIndex((line, i) => i > 0 && i < lines.length - 1 && line.startsWith(`${code} `));
      if (end === -1) return null;
    }
    const replyLines = lines.slice(0, end + 1);
    this.#buffer = lines.slice(end + 1).join('\r\n');
    return { code, lines: replyLines, text: replyLines[replyLines.length - 1]!.slice(4) };
  }

  /** The next reply (bounded wait). */
  read(timeoutMs = WAIT_MS): Promise<Reply> {
    const ready = this.#replies.shift();
    if (ready) return Promise.resolve(ready);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(new Error(`no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = (reply: Reply) => {
        clearTimeout(timer);
        resolve(reply);
      };
      this.#waiters.push(waiter);
    });
  }

  /** Write raw bytes or text (no CRLF added). */
  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  send(line: string): void {
    this.socket.write(`${line}\r\n`);
  }

  /** Read one reply and check its code. */
  async expect(code: number, timeoutMs?: number): Promise<Reply> {
    const reply = await this.read(timeoutMs);
    if (reply.code !== code) throw new Error(`expected ${code}, got ${reply.lines.join(' | ')}`);
    return reply;
  }

  /** Send a command; return its reply, checking the code if given. */
  async command(line: string, code?: number): Promise<Reply> {
    this.send(line);
    return code === undefined ? this.read() : this.expect(code);
  }

  /** EPSV and connect the data socket. */
  async passive(host = '127.0.0.1'): Promise<net.Socket> {
    const reply = await this.command('EPSV', 229);
    const port = Number(/\(\|\|\|(\d+)\|\)/.exec(reply.text)![1]);
    const socket = net.connect({ port, host });
    await once(socket, 'connect');
    return socket;
  }

  /** EPSV and connect the data socket with TLS (`session` to resume the control connection's). */
  async passiveTls(options: tls.ConnectionOptions = {}, host = '127.0.0.1'): Promise<tls.TLSSocket> {
    const reply = await this.command('EPSV', 229);
    const port = Number(/\(\|\|\|(\d+)\|\)/.exec(reply.text)![1]);
    const socket = tls.connect({ port, host, rejectUnauthorized: false, ...options });
    socket.on('error', () => {});
    return socket;
  }

  /** Wait for the server to close the connection (bounded). */
  closed(timeoutMs = WAIT_MS): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`connection still open after ${timeoutMs} ms`)), timeoutMs);
      this.#closeWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Read a data socket to its end (bounded). */
export async function readAll(socket: net.Socket, timeoutMs = WAIT_MS): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  const timer = setTimeout(() => socket.destroy(new Error('data not finished in time')), timeoutMs);
  try {
    await once(socket, 'end');
  } finally {
    clearTimeout(timer);
  }
  return Buffer.concat(chunks);
}

/** Connect, send USER and PASS, and return the code PASS got (the connection is closed after). */
export async function loginCode(port: number, user: string, password: string, host = '127.0.0.1'): Promise<number> {
  const client = await RawClient.connect(port, host);
  try {
    await client.expect(220);
    await client.command(`USER ${user}`, 331);
    return (await client.command(`PASS ${password}`)).code;
  } finally {
    client.close();
  }
}

/** Write `bytes` of random data on a data connection, 64 KiB at a time, until done or the server cuts it. */
export async function sendBytes(data: net.Socket, bytes: number): Promise<void> {
  data.on('error', () => undefined);
  const chunk = randomBytes(64 * 1024);
  for (let sent = 0; sent < bytes && !data.destroyed; sent += chunk.length) {
    if (!data.write(chunk.subarray(0, Math.min(chunk.length, bytes - sent)))) {
      // once() rejects on 'error' (the server resets the connection when it refuses): that ends the loop too.
      await Promise.race([once(data, 'drain'), once(data, 'close')]).catch(() => undefined);
    }
  }
}

/** `verb` (STOR, APPE) `bytes` over EPSV; resolves with the transfer's final reply code (or the refusal before 150). */
export async function uploadBytes(client: RawClient, verb: string, name: string, bytes: number): Promise<number> {
  const data = await client.passive();
  client.send(`${verb} ${name}`);
  const first = await client.read();
  if (first.code !== 150) {
    data.destroy();
    return first.code;
  }
  const sending = sendBytes(data, bytes).then(() => data.end());
  const reply = await client.read(20_000);
  data.destroy();
  await sending;
  return reply.code;
}
