/**
 * The AWS SDK, loaded on first use, and the one S3Client a set of S3Storage
 * instances share.
 *
 * Lazy: `@aws-sdk/client-s3` costs tens of megabytes and ~100 ms to load;
 * servers on local disk never pay for it, and importing Ferry's public API
 * stays cheap.
 *
 * Shared: one client means one connection pool for every session of every
 * user. The keep-alive agent keeps TLS handshakes off the per-request path,
 * and its socket cap bounds what a burst of sessions can open; the SDK warns
 * when requests queue for a socket.
 */
import http from 'node:http';
import https from 'node:https';
import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import { channels } from '../observability/channels.js';

export type S3Sdk = typeof import('@aws-sdk/client-s3');

/** S3's limit on parts per multipart upload (uploads and multipart copies). */
export const MAX_PARTS = 10_000;

let sdk: Promise<S3Sdk> | null = null;

export function loadSdk(): Promise<S3Sdk> {
  sdk ??= import('@aws-sdk/client-s3').catch((err: unknown) => {
    sdk = null;
    throw err;
  });
  return sdk;
}

export interface S3ConnectionOptions {
  /** AWS region; default: AWS_REGION, AWS_DEFAULT_REGION, else us-east-1 (what MinIO and most others accept). */
  region?: string;
  /** Endpoint URL for S3-compatible stores (MinIO, R2, Wasabi, Ceph); default: AWS S3. */
  endpoint?: string;
  /** Path-style URLs (endpoint/bucket/key) instead of bucket.endpoint/key: MinIO and most self-hosted stores. */
  forcePathStyle?: boolean;
  /** Explicit credentials; default: the AWS default chain (env, shared files, SSO, instance/container roles). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Parallel connections to the endpoint for the whole process. Default 256. */
  maxSockets?: number;
  /** Attempts per request, retries included (throttling, 5xx, connection errors, timeouts). Default 4. */
  maxAttempts?: number;
  /**
   * A request whose socket stays silent this long fails (TimeoutError, then
   * retried; after the last attempt the client gets 451) and its socket is
   * closed. Idle time, not total time: a long upload that keeps moving is
   * never cut. Default 30,000.
   */
  socketTimeoutMs?: number;
}

const DEFAULT_MAX_SOCKETS = 256;
const DEFAULT_MAX_ATTEMPTS = 4;
/** A down endpoint answers 451 after this, not after the kernel's minutes-long SYN timeout. */
const CONNECT_TIMEOUT_MS = 5_000;
/** An endpoint that accepts but stalls: without this, a session (and a pooled socket) would wait forever. */
const DEFAULT_SOCKET_TIMEOUT_MS = 30_000;

export function clientConfig(options: S3ConnectionOptions): S3ClientConfig {
  const maxSockets = options.maxSockets ?? DEFAULT_MAX_SOCKETS;
  return {
    region: options.region ?? process.env['AWS_REGION'] ?? process.env['AWS_DEFAULT_REGION'] ?? 'us-east-1',
    endpoint: options.endpoint,
    forcePathStyle: options.forcePathStyle ?? false,
    credentials: options.credentials,
    maxAttempts: options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
    // Checksums only where S3 requires them (DeleteObjects): since SDK 3.729
    // the default adds CRC32 headers to every upload, which several
    // S3-compatible stores reject, and costs CPU on the data path. What is
    // left guarding the bytes in transit is TLS (with an https endpoint) and
    // TCP's own checksum; Ferry does not compare the ETags S3 returns with
    // the data it sent (see docs/s3.md, "Limits and trade-offs").
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: {
      httpAgent: new http.Agent({ keepAlive: true, maxSockets }),
      httpsAgent: new https.Agent({ keepAlive: true, maxSockets }),
      connectionTimeout: CONNECT_TIMEOUT_MS,
      socketTimeout: options.socketTimeoutMs ?? DEFAULT_SOCKET_TIMEOUT_MS,
    },
  };
}

const observed = new WeakSet<S3Client>();

/**
 * Publish each request on `ferry:s3:request` (the metrics count them). At
 * the initialize step, so one message per operation with its retries inside
 * it: its duration is what the session waited, its error the one the
 * session saw. Without subscribers it only checks `hasSubscribers`.
 */
function observe(client: S3Client): S3Client {
  // An embedder's client may back several storages: one middleware is enough.
  // A stand-in without a middleware stack (a test double) goes unobserved.
  if (observed.has(client) || typeof client.middlewareStack?.add !== 'function') return client;
  observed.add(client);
  client.middlewareStack.add(
    (next, context) => async (args) => {
      if (!channels.s3Request.hasSubscribers) return next(args);
      const operation = (context.commandName ?? 'unknown').replace(/Command$/, '');
      const started = performance.now();
      try {
        const result = await next(args);
        channels.s3Request.publish({ operation, durationMs: performance.now() - started, error: null });
        return result;
      } catch (err) {
        const error = (err as { name?: string; Code?: string }).name ?? 'Error';
        channels.s3Request.publish({ operation, durationMs: performance.now() - started, error });
        throw err;
      }
    },
    { step: 'initialize', name: 'ferryDiagnostics' },
  );
  return client;
}

/**
 * A client created on first use from `options`, shared by everyone holding
 * this handle; `destroy()` closes its sockets.
 */
export class SharedClient {
  readonly #options: S3ConnectionOptions;
  #client: Promise<S3Client> | null = null;
  /** A client the embedder passed in is theirs to destroy. */
  readonly #owned: boolean;

  constructor(options: S3ConnectionOptions, client?: S3Client) {
    this.#options = options;
    this.#owned = !client;
    if (client) this.#client = Promise.resolve(observe(client));
  }

  get(): Promise<S3Client> {
    this.#client ??= loadSdk().then((s) => observe(new s.S3Client(clientConfig(this.#options))));
    return this.#client;
  }

  destroy(): void {
    if (!this.#owned) return;
    void this.#client?.then((client) => client.destroy());
    this.#client = null;
  }
}

/**
 * What a maximum file size would need to be, as "reachable with ...; set
 * partSizeBytes to at least N" (S3 allows MAX_PARTS parts per upload); null
 * when this part size reaches it. The config checks limits.maxFileSizeBytes against storage.partSizeBytes.
 */
export function unreachableFileSize(maxFileSizeBytes: number, partSizeBytes: number): string | null {
  if (maxFileSizeBytes <= partSizeBytes * MAX_PARTS) return null;
  const mib = 1024 * 1024;
  const needed = Math.ceil(maxFileSizeBytes / MAX_PARTS / mib) * mib;
  return `reachable with partSizeBytes ${partSizeBytes} (S3 allows ${MAX_PARTS.toLocaleString('en-US')} parts: ${partSizeBytes * MAX_PARTS} bytes); set partSizeBytes to at least ${needed}`;
}
