/**
 * Active data connections (RFC 959 PORT, RFC 2428 EPRT): the server dials the
 * client. The session only builds one after checking that the target is the
 * control connection's own peer and not a privileged port (no FTP bounce).
 */
import net from 'node:net';
import type { Socket } from 'node:net';
import type { DataChannel } from './channel.js';

export class ActiveChannel implements DataChannel {
  readonly #host: string;
  readonly #port: number;
  readonly #localAddress: string | undefined;
  readonly #timeoutMs: number;
  #socket: Socket | null = null;

  constructor(host: string, port: number, localAddress: string | undefined, timeoutMs: number) {
    this.#host = host;
    this.#port = port;
    this.#localAddress = localAddress;
    this.#timeoutMs = timeoutMs;
  }

  open(signal: AbortSignal): Promise<Socket> {
    if (signal.aborted) return Promise.reject(new Error('aborted before connecting'));
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: this.#host, port: this.#port, localAddress: this.#localAddress, noDelay: true });
      this.#socket = socket;
      const finish = (err: Error | null) => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        socket.off('connect', onConnect);
        socket.off('error', finish);
        if (err) {
          socket.destroy();
          reject(err);
        } else {
          socket.on('error', () => {}); // observed by the transfer pipeline
          resolve(socket);
        }
      };
      const onConnect = () => finish(null);
      const onAbort = () => finish(new Error('aborted while connecting'));
      const timer = setTimeout(() => finish(new Error('active connection timed out')), this.#timeoutMs);
      signal.addEventListener('abort', onAbort, { once: true });
      socket.once('connect', onConnect);
      socket.once('error', finish);
    });
  }

  close(): void {
    this.#socket?.destroy();
  }
}
