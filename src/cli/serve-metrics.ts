/**
 * `metrics:` of the daemon: count in every process, serve where the
 * connections are admitted. One process: its registry on the metrics
 * listener. Cluster: each worker answers the primary's requests, and the
 * primary serves the sum and each worker's values (observability/metrics-cluster.ts).
 * prom-client is imported only when metrics are on: it costs a few hundred
 * milliseconds of startup on a busy machine.
 */
import type { Worker } from 'node:cluster';
import type { Config } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import type { MetricsListener } from '../server/metrics-listener.js';
import { createMetrics } from '../observability/metrics-api.js';
import { fail } from './fail.js';

export type MetricsRole = { process: 'single' } | { process: 'primary'; labelOf: (worker: Worker) => string } | { process: 'worker' };

/** What the caller closes on shutdown; null when metrics are off or this process does not serve them (a worker). */
export async function startMetrics(settings: Config['metrics'], role: MetricsRole, logger: Logger): Promise<MetricsListener | null> {
  if (!settings.enabled) return null;
  const { registry } = await createMetrics();
  if (role.process === 'worker') {
    const { answerMetricsRequests } = await import('../observability/metrics-cluster.js');
    answerMetricsRequests(registry);
    return null;
  }
  const { MetricsListener } = await import('../server/metrics-listener.js');
  const source = role.process === 'primary' ? new (await import('../observability/metrics-cluster.js')).ClusterMetrics(registry, role.labelOf) : registry;
  const { host, port, path } = settings;
  try {
    const listener = await MetricsListener.listen(source, { host, port, path, logger });
    logger.info({ host, port: listener.address().port, path }, 'metrics listening');
    return listener;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') fail(`metrics.port ${port} on ${host} is already in use. Stop the other program or set another metrics.port.`, 1);
    if (code === 'EADDRNOTAVAIL') fail(`metrics.host ${host} is no address of this machine. Use 127.0.0.1 (this machine only) or one of its addresses.`, 1);
    fail(`cannot serve metrics on ${host}:${port}: ${(err as Error).message}`, 1);
  }
}
