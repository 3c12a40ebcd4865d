/**
 * Prometheus metrics (issue 13): scraped after a scripted session with a
 * real client, in one process (the library) and through the CLI in one
 * process and in cluster mode; the listener's answers; off by default.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { promisify } from 'node:util';
import { after, test, type TestContext } from 'node:test';
import { Client } from 'basic-ftp';
import { createMetrics, MetricsListener, S3Storage, type FerryMetrics } from '../../src/index.js';
import { cephSkip, stopSharedCeph } from '../helpers/ceph.js';
import { startCli, type RunningCli } from '../helpers/cli.js';
import { parseMetrics, scrape } from '../helpers/prometheus.js';
import { startS3 } from '../helpers/s3.js';
import { PASSWORD, USER, startServer, type Cleanup, type TestServerOptions } from '../helpers/server.js';

after(stopSharedCeph);

const BODY = Buffer.alloc(1000, 'x');

/** A registry and its listener on 127.0.0.1, port 0, both stopped after the test. */
async function serveMetrics(t: Cleanup): Promise<{ metrics: FerryMetrics; url: string }> {
  const metrics = await createMetrics();
  const listener = await MetricsListener.listen(metrics.registry, { host: '127.0.0.1', port: 0, path: '/metrics' });
  t.after(async () => {
    await listener.close();
    metrics.close();
  });
  return { metrics, url: `http://127.0.0.1:${listener.address().port}/metrics` };
}

/**
 * The scripted session: a login with a wrong password (its own connection),
 * then a login that works, an upload of BODY, its download, a listing.
 */
async function scriptedSession(t: TestContext, port: number, user = USER, password = PASSWORD): Promise<void> {
  const refused = new Client(10_000);
  t.after(() => refused.close());
  await assert.rejects(refused.access({ host: '127.0.0.1', port, user, password: 'wrong' }), /530/);
  refused.close();
  const client = new Client(10_000);
  t.after(() => client.close());
  await client.access({ host: '127.0.0.1', port, user, password });
  await client.uploadFrom(Readable.from([BODY]), 'up.bin');
  const chunks: Buffer[] = [];
  await client.downloadTo(new Writable({ write: (chunk: Buffer, _e, done) => (chunks.push(chunk), done()) }), 'up.bin');
  assert.equal(Buffer.concat(chunks).length, BODY.length);
  const names = (await client.list()).map((f) => f.name);
  assert.ok(names.includes('up.bin'));
  client.close();
}

/** Scrape until `ready` holds (a session's close reaches the server a moment after the client's). */
async function scrapeUntil(url: string, ready: (s: ReturnType<typeof parseMetrics>) => boolean): Promise<ReturnType<typeof parseMetrics>> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const result = await scrape(url);
    if (ready(result) || Date.now() > deadline) return result;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** What the scripted session must leave, exactly, in series with these extra labels (none, or a worker's). */
function assertSession(s: ReturnType<typeof parseMetrics>, storage: string): void {
  assert.equal(s.value('ferry_sessions'), 0);
  assert.equal(s.value('ferry_sessions_total'), 2);
  assert.equal(s.value('ferry_logins_total', { outcome: 'success' }), 1);
  assert.equal(s.value('ferry_logins_total', { outcome: 'wrong-password' }), 1);
  for (const direction of ['upload', 'download', 'list']) {
    assert.equal(s.value('ferry_transfers_total', { direction, storage, outcome: 'completed' }), 1, direction);
    assert.equal(s.value('ferry_transfer_duration_seconds_count', { direction, storage }), 1, direction);
  }
  assert.equal(s.value('ferry_transfer_bytes_total', { direction: 'upload', storage }), BODY.length);
  assert.equal(s.value('ferry_transfer_bytes_total', { direction: 'download', storage }), BODY.length);
  assert.ok(s.value('ferry_transfer_bytes_total', { direction: 'list', storage })! > 0);
  assert.equal(s.value('ferry_commands_total', { verb: 'STOR' }), 1);
  assert.equal(s.value('ferry_commands_total', { verb: 'RETR' }), 1);
  assert.equal(s.value('ferry_replies_total', { code: '530' }), 1);
  assert.equal(s.value('ferry_replies_total', { code: '230' }), 1);
  assert.equal(s.value('ferry_replies_total', { code: '226' }), 3);
  assert.equal(s.value('ferry_quota_refusals_total'), 0);
  assert.equal(s.value('ferry_passive_ports_waiting'), 0);
}

test('a scripted session is counted exactly: sessions, logins by outcome, transfers, bytes, durations, commands, replies', async (t) => {
  const { url } = await serveMetrics(t);
  const server = await startServer(t);
  await scriptedSession(t, server.port);
  const s = await scrapeUntil(url, (r) => r.value('ferry_sessions') === 0);
  assertSession(s, 'local');
  // Unlabelled names carry their unit; prom-client's process metrics are there, the event-loop delay among them.
  assert.ok(s.value('nodejs_eventloop_lag_seconds') !== undefined);
  assert.ok(s.value('process_cpu_user_seconds_total')! > 0);
  assert.ok(s.samples('ferry_reader_queue_depth').length === 2);
  // No series carries a user name or a path.
  assert.doesNotMatch(s.text, new RegExp(`${USER}|up\\.bin`));
});

test('an open session and its waiting passive port show in the gauges, and leave them when it ends', async (t) => {
  const { url } = await serveMetrics(t);
  const server = await startServer(t);
  const client = new Client(10_000);
  t.after(() => client.close());
  await client.access({ host: '127.0.0.1', port: server.port, user: USER, password: PASSWORD });
  await client.send('PASV');
  const during = await scrape(url);
  assert.equal(during.value('ferry_sessions'), 1);
  assert.equal(during.value('ferry_passive_ports_waiting'), 1);
  assert.ok(during.value('ferry_passive_ports_open')! >= 1);
  client.close();
  const afterwards = await scrapeUntil(url, (r) => r.value('ferry_sessions') === 0 && r.value('ferry_passive_ports_waiting') === 0);
  assert.equal(afterwards.value('ferry_sessions'), 0);
  assert.equal(afterwards.value('ferry_passive_ports_waiting'), 0);
});

test('bans and quota refusals are counted', async (t) => {
  const { url } = await serveMetrics(t);
  // One failed login (score 2) reaches the threshold: the address is banned.
  const banning = await startServer(t, { defender: { threshold: 2 } } as TestServerOptions);
  const refused = new Client(10_000);
  t.after(() => refused.close());
  // The ban comes with the failure: 421, the connection closed.
  await assert.rejects(refused.access({ host: '127.0.0.1', port: banning.port, user: USER, password: 'wrong' }), /421 .*banned/);
  refused.close();
  const quota = await startServer(t, { perUserLimits: { maxFileSizeBytes: 100 } });
  const client = new Client(10_000);
  t.after(() => client.close());
  await client.access({ host: '127.0.0.1', port: quota.port, user: USER, password: PASSWORD });
  await assert.rejects(client.uploadFrom(Readable.from([BODY]), 'big.bin'), /552/);
  const s = await scrapeUntil(url, (r) => r.value('ferry_bans_total') === 1);
  assert.equal(s.value('ferry_bans_total'), 1);
  assert.equal(s.value('ferry_quota_refusals_total'), 1);
  assert.equal(s.value('ferry_replies_total', { code: '552' }), 1);
  assert.equal(s.value('ferry_transfers_total', { direction: 'upload', storage: 'local', outcome: 'aborted' }), 1);
});

test('the listener answers 404 elsewhere, 405 to other methods, HEAD without a body; a closed registry stops counting', async (t) => {
  const { metrics, url } = await serveMetrics(t);
  const base = new URL(url);
  const other = await fetch(new URL('/other', base));
  assert.equal(other.status, 404);
  assert.match(await other.text(), /at \/metrics/);
  const post = await fetch(url, { method: 'POST', body: 'x' });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get('allow'), 'GET, HEAD');
  await post.text();
  const head = await fetch(url, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(await head.text(), '');
  assert.equal((await fetch(`${url}?x=1`)).status, 200);
  metrics.close();
  const server = await startServer(t);
  const client = new Client(10_000);
  t.after(() => client.close());
  await client.access({ host: '127.0.0.1', port: server.port, user: USER, password: PASSWORD });
  assert.equal((await scrape(url)).value('ferry_sessions_total'), 0);
});

test('processMetrics: false leaves out prom-client\'s process and Node.js metrics', async (t) => {
  const metrics = await createMetrics({ processMetrics: false });
  t.after(() => metrics.close());
  const text = await metrics.registry.metrics();
  assert.match(text, /^ferry_sessions 0$/m);
  assert.doesNotMatch(text, /^(process|nodejs)_/m);
});

// ---- the daemon ------------------------------------------------------------

async function startFerry(t: TestContext, env: Record<string, string>, extra: string[] = []): Promise<RunningCli & { root: string }> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'ferry-metrics-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  const args = ['--root', root, '--host', '127.0.0.1', '--port', '0', '--user', `${USER}:${PASSWORD}`, '--write', '--log-level', 'info', ...extra];
  return { ...(await startCli(t, args, os.tmpdir(), 30_000, { ...process.env, ...env })), root };
}

/** Where the daemon says its metrics listen (port 0 picks one). */
function metricsUrl(ferry: RunningCli): { host: string; url: string } {
  const line = ferry.output().split('\n').find((l) => l.includes('metrics listening'));
  assert.ok(line, ferry.output());
  const { host, port, path: at } = JSON.parse(line) as { host: string; port: number; path: string };
  return { host, url: `http://127.0.0.1:${port}${at}` };
}

const ON = { FERRY_METRICS_ENABLED: 'true', FERRY_METRICS_PORT: '0' };

test('ferry serve: metrics on 127.0.0.1 by default, counting the scripted session', async (t) => {
  const ferry = await startFerry(t, ON);
  const { host, url } = metricsUrl(ferry);
  assert.equal(host, '127.0.0.1');
  await scriptedSession(t, ferry.port);
  assertSession(await scrapeUntil(url, (r) => r.value('ferry_sessions') === 0), 'local');
});

test('ferry serve: metrics are off by default, and nothing but FTP listens', async (t) => {
  const ferry = await startFerry(t, {});
  assert.doesNotMatch(ferry.output(), /metrics listening/);
  const { stdout } = await promisify(execFile)('ss', ['-Hltnp']);
  const ours = stdout.split('\n').filter((l) => l.includes(`pid=${ferry.child.pid},`));
  assert.equal(ours.length, 1, stdout);
  assert.match(ours[0]!, new RegExp(`:${ferry.port}\\s`));
});

test('ferry serve with 2 workers: the sum over workers and each worker\'s values, and a stopped worker does not hang a scrape', async (t) => {
  const ferry = await startFerry(t, { ...ON, FERRY_METRICS_PATH: '/prom' }, ['--workers', '2']);
  const { url } = metricsUrl(ferry);
  assert.match(url, /\/prom$/);
  assert.equal((await fetch(url.replace(/prom$/, 'metrics'))).status, 404);
  await scriptedSession(t, ferry.port);
  const s = await scrapeUntil(url, (r) => r.value('ferry_sessions') === 0);
  // The sums (series without a worker label) are exact, as in one process.
  assertSession(s, 'local');
  assert.equal(s.value('ferry_cluster_worker_up', { worker: '0' }), 1);
  assert.equal(s.value('ferry_cluster_worker_up', { worker: '1' }), 1);
  // Each worker's own series add up to the sum; the two sessions went to different workers.
  const perWorker = s.samples('ferry_sessions_total').filter(([l]) => l.worker !== undefined);
  assert.deepEqual(perWorker.map(([l]) => l.worker).sort(), ['0', '1', 'primary']);
  assert.equal(perWorker.reduce((sum, [, v]) => sum + v, 0), 2);
  assert.equal(s.value('ferry_sessions_total', { worker: 'primary' }), 0);
  const logins = (worker: string) => s.value('ferry_logins_total', { outcome: 'success', worker }) ?? 0;
  assert.equal(logins('0') + logins('1'), 1);
  // Histograms keep one family: the sum's buckets and each worker's.
  assert.ok(s.value('ferry_transfer_duration_seconds_bucket', { direction: 'upload', storage: 'local', le: '+Inf' }) === 1);
  assert.equal((s.text.match(/^# TYPE ferry_transfer_duration_seconds histogram$/gm) ?? []).length, 1);
  // A worker that does not answer (stopped) is left out after the timeout; the scrape still answers.
  const workers = await (await import('../helpers/cli.js')).childPids(ferry.child.pid!);
  assert.equal(workers.length, 2);
  process.kill(workers[0]!, 'SIGSTOP');
  t.after(() => {
    try {
      process.kill(workers[0]!, 'SIGCONT');
    } catch {
      // gone already
    }
  });
  const started = Date.now();
  const partial = await scrape(url, 8000);
  const tookMs = Date.now() - started;
  process.kill(workers[0]!, 'SIGCONT');
  const up = partial.samples('ferry_cluster_worker_up').map(([l, v]) => `${l.worker}=${v}`).sort();
  assert.equal(up.filter((u) => u.endsWith('=0')).length, 1, up.join(' '));
  assert.equal(up.filter((u) => u.endsWith('=1')).length, 1, up.join(' '));
  assert.ok(tookMs >= 1900, `left out only after the timeout (${tookMs} ms)`);
  // The answering worker's values are still there; the sum is theirs and the primary's.
  assert.ok(partial.value('ferry_sessions_total')! <= 2);
  // Once it runs again it answers again.
  const again = await scrapeUntil(url, (r) => r.samples('ferry_cluster_worker_up').every(([, v]) => v === 1));
  assert.equal(again.value('ferry_sessions_total'), 2);
});

// ---- S3 --------------------------------------------------------------------

test('S3 requests and their errors are counted by operation (Ceph)', { skip: cephSkip() }, async (t) => {
  const { url } = await serveMetrics(t);
  const s3 = await startS3(t);
  const storage = new S3Storage(s3.options());
  t.after(() => storage.destroy());
  const server = await startServer(t, { storage });
  const client = new Client(10_000);
  t.after(() => client.close());
  await client.access({ host: '127.0.0.1', port: server.port, user: USER, password: PASSWORD });
  await client.uploadFrom(Readable.from([BODY]), 'up.bin');
  await client.downloadTo(new Writable({ write: (_c, _e, done) => done() }), 'up.bin');
  await assert.rejects(client.downloadTo(new Writable({ write: (_c, _e, done) => done() }), 'missing.bin'), /550/);
  const s = await scrape(url);
  const requests = new Map(s.samples('ferry_s3_requests_total').map(([l, v]) => [l.operation!, v]));
  assert.ok(requests.get('PutObject')! >= 1, JSON.stringify([...requests]));
  assert.ok(requests.get('GetObject')! >= 1, JSON.stringify([...requests]));
  const total = [...requests.values()].reduce((a, b) => a + b, 0);
  assert.equal(s.samples('ferry_s3_request_duration_seconds_count').reduce((a, [, v]) => a + v, 0), total);
  // The missing file: a failed operation, named by the error S3 gave.
  const errors = s.samples('ferry_s3_request_errors_total');
  assert.ok(errors.length >= 1 && errors.every(([l]) => requests.has(l.operation!) && /^[A-Za-z]+$/.test(l.error!)), JSON.stringify(errors));
  assert.equal(s.value('ferry_transfer_bytes_total', { direction: 'upload', storage: 's3' }), BODY.length);
  assert.equal(s.value('ferry_transfers_total', { direction: 'download', storage: 's3', outcome: 'completed' }), 1);
});
