/**
 * The library's door to the metrics: prom-client is imported on the first
 * call, not with Ferry (it costs a few hundred milliseconds of startup on a
 * busy machine, for embedders who never use it).
 */
import type { FerryMetrics, MetricsOptions } from './metrics.js';

export type { FerryMetrics, MetricsOptions };

/**
 * A prom-client registry that counts what every FtpServer of this process
 * does (sessions, logins, transfers, replies, S3 requests, ...), plus
 * prom-client's process metrics. Serve `registry.metrics()` with a
 * MetricsListener or your own HTTP server; `close()` stops counting.
 */
export async function createMetrics(options: MetricsOptions = {}): Promise<FerryMetrics> {
  return (await import('./metrics.js')).createMetrics(options);
}
