import type tls from 'node:tls';

/**
 * Resolve when `socket` completes its server-side handshake; reject on a TLS
 * error, on close, on abort (ABOR) or after `timeoutMs` (a client that
 * connects and never speaks TLS must not hold the transfer).
 */
export function handshake(socket: tls.TLSSocket, signal: AbortSignal, timeoutMs: number): Promise<void> {
  if (signal.aborted) return Promise.reject(new Error('aborted before the TLS handshake'));
  return new Promise((resolve, reject) => {
    const finish = (err: Error | null) => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      socket.off('secure', onSecure);
      socket.off('error', finish);
      socket.off('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    const onSecure = () => finish(null);
    const onClose = () => finish(new Error('connection closed during the TLS handshake'));
    const onAbort = () => finish(new Error('aborted during the TLS handshake'));
    const timer = setTimeout(() => finish(new Error('TLS handshake timed out')), timeoutMs);
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('secure', onSecure);
    socket.once('error', finish);
    socket.once('close', onClose);
  });
}
