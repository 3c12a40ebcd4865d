/**
 * A TCP proxy on 127.0.0.1 between Ferry and an S3 server, that turns faults
 * on and off while transfers run:
 *   - `stop()`: connections reset, new ones refused (the server is down);
 *     `start()` listens again on the same port;
 *   - `pause()`: connections stay open but no byte moves either way (a hung
 *     server); `pass()` lets them flow again;
 *   - `slow(bytesPerSecond)`: each direction of each connection at most that fast;
 *   - `reset()`: every open connection gets an RST, once;
 *   - `fail(status)`: open connections are reset, and every new request is
 *     answered with an S3 error of that HTTP status (after its body, or at
 *     once when it waits for "100 Continue") instead of reaching the server;
 *   - `loseAnswerTo(pattern)`: the next request whose head matches reaches
 *     the server, and its connection is reset when the answer starts (an
 *     answer lost on the way, which the S3 client retries);
 *   - `hangAfter(pattern)`: the next request whose head matches reaches the
 *     server, and then the proxy pauses (as `pause()`) before the answer
 *     comes back: a server that hangs with that request taken up.
 * `bytes` counts what reached each side, so a test can wait until a
 * transfer is under way before the fault.
 */
import net from 'node:net';

type Mode = { kind: 'pass' } | { kind: 'pause' } | { kind: 'slow'; bytesPerSecond: number } | { kind: 'fail'; status: number };

const S3_ERROR_CODES: Record<number, string> = { 500: 'InternalError', 503: 'ServiceUnavailable', 403: 'AccessDenied' };

export class FaultProxy {
  readonly #target: number;
  #server: net.Server | null = null;
  #port = 0;
  #mode: Mode = { kind: 'pass' };
  readonly #sockets = new Set<net.Socket>();
  /** Bytes that reached the server (`up`) and the client (`down`). */
  readonly bytes = { up: 0, down: 0 };
  /** Requests answered with an error by `fail()`. */
  failed = 0;
  /** Answers cut by `loseAnswerTo()`. */
  lost = 0;
  #lose: RegExp | null = null;
  #hang: RegExp | null = null;

  constructor(targetPort: number) {
    this.#target = targetPort;
  }

  get port(): number {
    return this.#port;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  /** Listen (port 0 the first time, the same port after a stop). */
  async start(): Promise<number> {
    if (this.#server) return this.#port;
    const server = net.createServer((client) => this.#accept(client));
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(this.#port, '127.0.0.1', resolve));
    this.#server = server;
    this.#port = (server.address() as net.AddressInfo).port;
    return this.#port;
  }

  /** Refuse new connections and reset the open ones. */
  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    this.reset();
    if (server) await new Promise((resolve) => server.close(resolve));
  }

  pass(): void {
    this.#mode = { kind: 'pass' };
    for (const socket of this.#sockets) socket.resume();
  }

  pause(): void {
    this.#mode = { kind: 'pause' };
    for (const socket of this.#sockets) socket.pause();
  }

  slow(bytesPerSecond: number): void {
    this.#mode = { kind: 'slow', bytesPerSecond };
  }

  fail(status = 503): void {
    this.#mode = { kind: 'fail', status };
    this.reset();
  }

  loseAnswerTo(pattern: RegExp): void {
    this.#lose = pattern;
  }

  hangAfter(pattern: RegExp): void {
    this.#hang = pattern;
  }

  reset(): void {
    for (const socket of this.#sockets) socket.resetAndDestroy();
    this.#sockets.clear();
  }

  /** Wait (bounded) until `count` bytes have gone the given way. */
  async waitForBytes(way: 'up' | 'down', count: number, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.bytes[way] < count) {
      if (Date.now() > deadline) throw new Error(`only ${this.bytes[way]} of ${count} bytes went ${way} in ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  #track(socket: net.Socket): void {
    this.#sockets.add(socket);
    socket.on('error', () => undefined);
    socket.once('close', () => this.#sockets.delete(socket));
  }

  #accept(client: net.Socket): void {
    this.#track(client);
    if (this.#mode.kind === 'fail') return this.#answerError(client, this.#mode.status);
    const server = net.connect(this.#target, '127.0.0.1');
    this.#track(server);
    const connection = { loseAnswer: false };
    this.#forward(client, server, 'up', connection);
    this.#forward(server, client, 'down', connection);
    if (this.#mode.kind === 'pause') {
      client.pause();
      server.pause();
    }
  }

  #forward(from: net.Socket, to: net.Socket, way: 'up' | 'down', connection: { loseAnswer: boolean }): void {
    from.on('data', (chunk: Buffer) => {
      if (way === 'up' && this.#lose?.test(chunk.toString('latin1'))) {
        this.#lose = null;
        connection.loseAnswer = true;
      } else if (way === 'down' && connection.loseAnswer) {
        this.lost += 1;
        to.resetAndDestroy();
        from.destroy();
        return;
      }
      this.bytes[way] += chunk.length;
      const drained = to.write(chunk);
      if (way === 'up' && this.#hang?.test(chunk.toString('latin1'))) {
        this.#hang = null;
        this.pause();
      }
      const mode = this.#mode;
      if (mode.kind === 'pause') from.pause();
      else if (mode.kind === 'slow') {
        from.pause();
        setTimeout(() => this.#mode.kind !== 'pause' && from.resume(), (chunk.length / mode.bytesPerSecond) * 1000);
      } else if (!drained) {
        from.pause();
        to.once('drain', () => this.#mode.kind !== 'pause' && from.resume());
      }
    });
    from.once('end', () => to.end());
    from.once('close', () => to.destroy());
  }

  /** Read one request (headers, then Content-Length bytes of body) and answer it with an S3 error. */
  #answerError(client: net.Socket, status: number): void {
    let head = Buffer.alloc(0);
    let bodyLeft = -1;
    client.on('data', (chunk: Buffer) => {
      if (bodyLeft < 0) {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        const headers = head.subarray(0, end).toString('latin1');
        const length = /\r\ncontent-length:\s*(\d+)/i.exec(headers);
        // A client that waits for "100 Continue" sends no body: answer at once, as a server may.
        bodyLeft = /\r\nexpect:\s*100-continue/i.test(headers) ? 0 : Number(length?.[1] ?? 0) - (head.length - end - 4);
      } else {
        bodyLeft -= chunk.length;
      }
      if (bodyLeft > 0) return;
      this.failed += 1;
      const code = S3_ERROR_CODES[status] ?? 'InternalError';
      const body = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>injected by the test proxy</Message></Error>`;
      client.end(
        `HTTP/1.1 ${status} ${code}\r\nContent-Type: application/xml\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
      client.removeAllListeners('data');
    });
  }
}
