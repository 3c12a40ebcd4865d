/** A test's own HTTP server on 127.0.0.1, port 0, closed (with its connections) when the test ends. */
import { once } from 'node:events';
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Cleanup } from './server.js';

/** Listen on a free loopback port; resolves with the base URL, `http://127.0.0.1:PORT`. */
export async function listenLocal(t: Cleanup, server: http.Server): Promise<string> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}
