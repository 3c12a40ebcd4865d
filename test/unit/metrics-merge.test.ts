/**
 * The cluster scrape's merge (observability/metrics-cluster.ts): sums with
 * each metric's aggregator, every process's own series with a `worker`
 * label, in one family per name.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { test } from 'node:test';
import client from 'prom-client';
import { mergeSources } from '../../src/observability/metrics-cluster.js';
import { parseMetrics } from '../helpers/prometheus.js';

async function registryWith(sessions: number, startTime: number) {
  const registry = new client.Registry();
  new client.Counter({ name: 'ferry_sessions_total', help: 'h', registers: [registry] }).inc(sessions);
  // prom-client's process_start_time_seconds has this aggregator: no sum makes sense.
  new client.Gauge({ name: 'start_seconds', help: 'h', aggregator: 'omit', registers: [registry] }).set(startTime);
  new client.Histogram({ name: 'ferry_d_seconds', help: 'h', buckets: [1], registers: [registry] }).observe(sessions);
  return (await registry.getMetricsAsJSON()) as never;
}

test('the merge sums each series, keeps each process under its worker label, and one family per name', async () => {
  const families = mergeSources(
    [
      { worker: 'primary', metrics: await registryWith(0, 100) },
      { worker: '0', metrics: await registryWith(2, 101) },
      { worker: '1', metrics: await registryWith(3, 102) },
    ],
    [
      { worker: '0', up: true },
      { worker: '1', up: true },
      { worker: '2', up: false },
    ],
  );
  const registry = new client.Registry();
  for (const family of families) registry.registerMetric({ ...family, get: () => family } as never);
  const text = await registry.metrics();
  const s = parseMetrics(text);
  assert.equal(s.value('ferry_sessions_total'), 5);
  assert.equal(s.value('ferry_sessions_total', { worker: '0' }), 2);
  assert.equal(s.value('ferry_sessions_total', { worker: '1' }), 3);
  assert.equal(s.value('ferry_sessions_total', { worker: 'primary' }), 0);
  assert.equal(s.value('start_seconds'), undefined);
  assert.equal(s.value('start_seconds', { worker: '1' }), 102);
  assert.equal(s.value('ferry_d_seconds_count'), 3);
  assert.equal(s.value('ferry_d_seconds_bucket', { le: '1' }), 1);
  assert.equal(s.value('ferry_d_seconds_bucket', { le: '+Inf', worker: '1' }), 1);
  assert.deepEqual(s.samples('ferry_cluster_worker_up').map(([l, v]) => `${l.worker}=${v}`), ['0=1', '1=1', '2=0']);
  for (const name of ['ferry_sessions_total', 'start_seconds', 'ferry_d_seconds']) assert.equal(text.split(`# TYPE ${name} `).length, 2, name);
});

test("over real cluster IPC, Ferry's scrape, prom-client's AggregatorRegistry and Ferry's shared objects run at once and ignore each other's messages", async () => {
  const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), path.resolve('test/helpers/metrics-cluster-ipc.ts')], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const [code] = await once(child, 'exit');
  clearTimeout(timer);
  assert.equal(code, 0, out);
  const { mine, prom, total } = JSON.parse(out) as { mine: string; prom: string; total: number };
  const ours = parseMetrics(mine);
  assert.equal(ours.value('ferry_x_total'), 3);
  assert.equal(ours.value('ferry_x_total', { worker: '1' }), 1);
  assert.equal(ours.value('ferry_x_total', { worker: '2' }), 2);
  assert.equal(parseMetrics(prom).value('ferry_x_total'), 3);
  assert.equal(total, 2);
});
