/**
 * Metrics in cluster mode: the primary's scrape asks every worker for its
 * registry's values over the cluster IPC and serves, in one text, the sum
 * over all processes (series without a `worker` label) and each process's
 * own values (the same series with `worker="0"`, `"1"`, ..., and
 * `"primary"` for the primary's: bans happen there).
 *
 * Why not prom-client's AggregatorRegistry.clusterMetrics(): it waits 5 s
 * for a worker that does not answer and then fails the whole scrape, and it
 * has no per-worker values. Here a worker slower than `timeoutMs` (stuck,
 * stopped) is left out of that scrape (`ferry_cluster_worker_up` 0) and the
 * others are served; a dead one is not asked (it is no longer connected). Its static `aggregate()` does the sums,
 * with each metric's own aggregator (counters summed, version info kept
 * once, ...).
 *
 * The messages are typed `ferry:metrics-request` and `ferry:metrics`; every
 * IPC listener of Ferry's (server/cluster.ts, server/shared.ts) and of
 * prom-client's ignores types it does not know, so they coexist with an
 * embedder's own AggregatorRegistry.
 */
import cluster, { type Worker } from 'node:cluster';
import client, { type Registry } from 'prom-client';

/** One family as registry.getMetricsAsJSON() gives it. */
interface Family {
  name: string;
  help: string;
  type: string;
  aggregator: string;
  values: Array<{ value: number; labels: Record<string, string | number>; metricName?: string }>;
}
type MetricsJson = Family[];
const valuesOf = async (registry: Registry) => (await registry.getMetricsAsJSON()) as unknown as MetricsJson;
type Request = { type: 'ferry:metrics-request'; id: number };
type Response = { type: 'ferry:metrics'; id: number; metrics?: MetricsJson; error?: string };

/** How long a scrape waits for the workers: well inside Prometheus's default 10 s scrape timeout. */
const WORKER_SCRAPE_TIMEOUT_MS = 2000;

/** In a cluster worker: answer the primary's requests with `registry`'s values. */
export function answerMetricsRequests(registry: Registry): void {
  if (!cluster.isWorker || !process.send) throw new Error('answerMetricsRequests runs in a cluster worker only');
  process.on('message', (message: Request) => {
    if (message?.type !== 'ferry:metrics-request') return;
    const send = (response: Response) => {
      if (process.connected) process.send!(response);
    };
    valuesOf(registry).then(
      (metrics) => send({ type: 'ferry:metrics', id: message.id, metrics }),
      (err: unknown) => send({ type: 'ferry:metrics', id: message.id, error: (err as Error).message }),
    );
  });
}

interface Scrape {
  responses: Map<Worker, Response>;
  expected: Set<Worker>;
  done(): void;
}

/** In the cluster primary: the text of a scrape over the primary's `registry` and every worker's. */
export class ClusterMetrics {
  readonly #registry: Registry;
  readonly #labelOf: (worker: Worker) => string;
  readonly #timeoutMs: number;
  readonly #scrapes = new Map<number, Scrape>();
  #nextId = 1;

  /** `labelOf` names a worker in the `worker` label: ClusterPrimary.indexOf, which the same worker keeps across scrapes, unlike its pid. */
  constructor(registry: Registry, labelOf: (worker: Worker) => string, options: { timeoutMs?: number } = {}) {
    if (!cluster.isPrimary) throw new Error('ClusterMetrics runs in the cluster primary only');
    this.#registry = registry;
    this.#labelOf = labelOf;
    this.#timeoutMs = options.timeoutMs ?? WORKER_SCRAPE_TIMEOUT_MS;
    cluster.on('message', (worker: Worker, message: Response) => {
      if (message?.type !== 'ferry:metrics') return;
      const scrape = this.#scrapes.get(message.id);
      if (!scrape?.expected.has(worker)) return; // late, after its scrape gave up
      scrape.responses.set(worker, message);
      if (scrape.responses.size === scrape.expected.size) scrape.done();
    });
  }

  get contentType(): string {
    return this.#registry.contentType;
  }

  async metrics(): Promise<string> {
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && w.isConnected());
    const id = this.#nextId++;
    const responses = new Map<Worker, Response>();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => done(), this.#timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.#scrapes.delete(id);
        resolve();
      };
      this.#scrapes.set(id, { responses, expected: new Set(workers), done });
      if (workers.length === 0) return done();
      // A worker dying between the filter and the send fails the send: it is left out like a slow one.
      for (const worker of workers) worker.send({ type: 'ferry:metrics-request', id } satisfies Request, (err: Error | null) => void err);
    });
    const sources: Array<{ worker: string; metrics: MetricsJson }> = [{ worker: 'primary', metrics: await valuesOf(this.#registry) }];
    const up: Array<{ worker: string; up: boolean }> = [];
    for (const worker of workers) {
      const metrics = responses.get(worker)?.metrics;
      const label = this.#labelOf(worker);
      up.push({ worker: label, up: metrics !== undefined });
      if (metrics) sources.push({ worker: label, metrics });
    }
    return render(mergeSources(sources, up), this.#registry.contentType);
  }
}

/**
 * The families of a cluster scrape: each summed over `sources` (no `worker`
 * label) followed by each source's own series (with `worker`); plus
 * `ferry_cluster_worker_up`. Pure: the tests call it with made-up values.
 */
export function mergeSources(sources: Array<{ worker: string; metrics: MetricsJson }>, up: Array<{ worker: string; up: boolean }>): MetricsJson {
  const summed = client.AggregatorRegistry.aggregate(sources.map((s) => s.metrics));
  const byName = new Map<string, Family>();
  for (const metric of summed.getMetricsAsArray() as unknown as Array<{ get(): Family }>) {
    const family = metric.get();
    byName.set(family.name, { ...family, values: [...family.values] });
  }
  for (const source of sources) {
    for (const metric of source.metrics) {
      let family = byName.get(metric.name);
      // A metric whose aggregator is 'omit' (process_start_time_seconds) has no sum, only each process's value.
      if (!family) byName.set(metric.name, (family = { ...metric, values: [] }));
      for (const value of metric.values) family.values.push({ ...value, labels: { ...value.labels, worker: source.worker } });
    }
  }
  const families = [...byName.values()];
  families.push({
    name: 'ferry_cluster_worker_up',
    help: 'Whether each worker answered this scrape in time (1) or not (0: dead, starting, or slower than the scrape timeout).',
    type: 'gauge',
    aggregator: 'sum',
    values: up.map((w) => ({ value: w.up ? 1 : 0, labels: { worker: w.worker } })),
  });
  return families;
}

async function render(families: MetricsJson, contentType: string): Promise<string> {
  const registry = new client.Registry();
  registry.setContentType(contentType as typeof client.Registry.PROMETHEUS_CONTENT_TYPE);
  for (const family of families) registry.registerMetric({ ...family, get: () => family } as unknown as client.Metric);
  return registry.metrics();
}
