/**
 * The HTTP listener Prometheus scrapes: GET (or HEAD) `path` answers the
 * metrics text, any other path 404, any other method 405. node:http and
 * nothing else: it serves one page, and stays apart from the FTP listeners
 * (its own address and port, 127.0.0.1 by default) so that exposing FTP
 * never exposes it. What it serves comes from `source`, so the same
 * listener serves one process's registry or the cluster primary's sum.
 */
import http from 'node:http';
import type net from 'node:net';
import type { Logger } from '../observability/logger.js';
import { listenOn } from './server.js';

export interface MetricsSource {
  readonly contentType: string;
  metrics(): Promise<string>;
}

export interface MetricsListenerOptions {
  host: string;
  port: number;
  path: string;
  logger?: Logger;
}

export class MetricsListener {
  readonly #server: http.Server;

  private constructor(server: http.Server) {
    this.#server = server;
  }

  /** Listen on `host`:`port` (0: any free port); rejects as server.listen does (EADDRINUSE, ...). */
  static async listen(source: MetricsSource, options: MetricsListenerOptions): Promise<MetricsListener> {
    const server = http.createServer((req, res) => void answer(source, options, req, res));
    // A scraper holds one keep-alive connection; a stray client must not hold more for long.
    server.keepAliveTimeout = 60_000;
    server.requestTimeout = 30_000;
    await listenOn(server, options.port, options.host);
    return new MetricsListener(server);
  }

  address(): net.AddressInfo {
    return this.#server.address() as net.AddressInfo;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }
}

async function answer(source: MetricsSource, options: MetricsListenerOptions, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?', 1)[0];
  if (path !== options.path) return plain(res, 404, `Not found: the metrics are at ${options.path}\n`);
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    return plain(res, 405, 'Method not allowed: use GET\n');
  }
  try {
    const body = await source.metrics();
    res.writeHead(200, { 'Content-Type': source.contentType, 'Content-Length': Buffer.byteLength(body) });
    res.end(req.method === 'HEAD' ? undefined : body);
  } catch (err) {
    options.logger?.warn({ err }, 'metrics scrape failed');
    plain(res, 500, 'The metrics could not be collected; see the server log.\n');
  }
}

function plain(res: http.ServerResponse, code: number, text: string): void {
  res.writeHead(code, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}
