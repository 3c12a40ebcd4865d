/**
 * A cluster primary and two workers where three users of the cluster IPC
 * run at once: Ferry's shared objects (server/shared.ts), Ferry's metrics
 * scrape (observability/metrics-cluster.ts) and prom-client's own
 * AggregatorRegistry, as an embedder might add. Run by
 * test/unit/metrics-merge.test.ts; the primary prints one JSON line with
 * what each of them got.
 */
import cluster from 'node:cluster';
import client from 'prom-client';
import { answerMetricsRequests, ClusterMetrics } from '../../src/observability/metrics-cluster.js';
import { fromPrimary, hostForWorkers } from '../../src/server/shared.js';

class Counter {
  total = 0;
  add(n: number): number {
    return (this.total += n);
  }
}

setTimeout(() => process.exit(2), 20_000).unref();
if (cluster.isPrimary) {
  const counter = new Counter();
  hostForWorkers('counter', counter);
  const theirs = new client.AggregatorRegistry();
  const workers = [cluster.fork({ INDEX: '1' }), cluster.fork({ INDEX: '2' })];
  const ours = new ClusterMetrics(new client.Registry(), (w) => String(workers.indexOf(w) + 1));
  let ready = 0;
  let added = 0;
  for (const worker of workers) {
    worker.on('message', async (message: { type?: string }) => {
      if (message.type === 'added') added++;
      if (message.type !== 'ready' || ++ready < workers.length) return;
      for (const w of workers) w.send({ type: 'go' });
      // Both scrapes at once, while the workers call the shared counter.
      const [mine, prom] = await Promise.all([ours.metrics(), theirs.clusterMetrics()]);
      const wait = Date.now() + 5000;
      while (added < workers.length && Date.now() < wait) await new Promise((r) => setTimeout(r, 20));
      process.stdout.write(JSON.stringify({ mine, prom, total: counter.total }) + '\n');
      for (const w of workers) w.kill();
      process.exit(0);
    });
  }
} else {
  const registry = new client.Registry();
  new client.Counter({ name: 'ferry_x_total', help: 'h', registers: [registry] }).inc(Number(process.env.INDEX));
  client.AggregatorRegistry.setRegistries(registry);
  new client.AggregatorRegistry(); // prom-client's worker listener
  answerMetricsRequests(registry);
  const counter = fromPrimary<Counter>('counter', { timeoutMs: 5000 });
  process.on('message', (message: { type?: string }) => {
    if (message.type === 'go') void counter.add(1).then(() => process.send!({ type: 'added' }));
  });
  process.send!({ type: 'ready' });
}
