/**
 * Cluster mode through the CLI: sessions spread over worker processes, limits
 * hold across them, a dead worker is replaced while the others keep serving.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { passiveSlice } from '../../src/server/cluster.js';
import { RawClient, readAll } from '../helpers/ftp-raw.js';
import { childPids, startCli, type RunningCli } from '../helpers/cli.js';

interface Cluster extends RunningCli {
  root: string;
}

async function startCluster(t: { after(fn: () => Promise<void>): void }, extra: string[] = []): Promise<Cluster> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'ferry-cluster-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  await writeFile(path.join(root, 'file.txt'), 'cluster content');
  const args = ['--root', root, '--host', '127.0.0.1', '--port', '0', '--user', 'u:pw', '--write', '--workers', '2', '--log-level', 'info', ...extra];
  return { ...(await startCli(t, args, os.tmpdir())), root };
}

async function waitFor(check: () => Promise<boolean> | boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function download(client: RawClient, name: string): Promise<string> {
  const data = await client.passive();
  client.send(`RETR ${name}`);
  await client.expect(150);
  const body = (await readAll(data)).toString();
  await client.expect(226);
  return body;
}

test('passive port slices are disjoint, contiguous and cover the range', () => {
  const range = { min: 50000, max: 50009 };
  const slices = [0, 1, 2].map((i) => passiveSlice(range, i, 3)!);
  assert.deepEqual(slices, [
    { min: 50000, max: 50002 },
    { min: 50003, max: 50005 },
    { min: 50006, max: 50009 },
  ]);
  assert.equal(passiveSlice(null, 0, 3), null);
  assert.throws(() => passiveSlice({ min: 1, max: 2 }, 0, 3), /fewer ports than the 3 workers/);
});

test('sessions spread over both workers and every one of them serves files', async (t) => {
  const cluster = await startCluster(t);
  const clients = await Promise.all(Array.from({ length: 6 }, () => RawClient.login(cluster.port, 'u', 'pw')));
  t.after(async () => clients.forEach((c) => c.close()));
  for (const client of clients) {
    await client.command('TYPE I', 200);
    assert.equal(await download(client, 'file.txt'), 'cluster content');
  }
  const workers = new Set([...cluster.output().matchAll(/"worker":(\d+)[^\n]*"msg":"login"/g)].map((m) => m[1]));
  assert.deepEqual([...workers].sort(), ['0', '1']);
});

test('the per-IP limit holds across workers', async (t) => {
  const cluster = await startCluster(t, ['--max-connections-per-ip', '3']);
  const clients = await Promise.all(Array.from({ length: 3 }, () => RawClient.login(cluster.port, 'u', 'pw')));
  t.after(async () => clients.forEach((c) => c.close()));
  const fourth = await RawClient.connect(cluster.port);
  t.after(async () => fourth.close());
  assert.equal((await fourth.read()).code, 421);
  await fourth.closed();
  // A slot frees up when a client leaves.
  await clients[0]!.command('QUIT', 221);
  await waitFor(async () => {
    const retry = await RawClient.connect(cluster.port);
    const code = (await retry.read()).code;
    retry.close();
    return code === 220;
  }, 'a freed slot');
});

test('a worker that dies is replaced while sessions on the other worker continue', async (t) => {
  const cluster = await startCluster(t);
  await waitFor(async () => (await childPids(cluster.child.pid!)).length === 2, 'two workers');
  const clients = await Promise.all(Array.from({ length: 4 }, () => RawClient.login(cluster.port, 'u', 'pw')));
  t.after(async () => clients.forEach((c) => c.close()));
  const [victim] = await childPids(cluster.child.pid!);
  process.kill(victim!, 'SIGKILL');
  await waitFor(() => clients.some((c) => c.isClosed), 'the dead worker’s sessions to drop');
  // Let every connection of the dead worker report its close before choosing survivors.
  await new Promise((r) => setTimeout(r, 500));
  const survivors = clients.filter((c) => !c.isClosed);
  assert.ok(survivors.length > 0 && survivors.length < clients.length, `survivors: ${survivors.length}`);
  for (const client of survivors) {
    await client.command('TYPE I', 200);
    assert.equal(await download(client, 'file.txt'), 'cluster content');
  }
  await waitFor(async () => {
    const pids = await childPids(cluster.child.pid!);
    return pids.length === 2 && !pids.includes(victim!);
  }, 'a replacement worker');
  const fresh = await RawClient.login(cluster.port, 'u', 'pw');
  t.after(async () => fresh.close());
  await fresh.command('TYPE I', 200);
  assert.equal(await download(fresh, 'file.txt'), 'cluster content');
});

test('SIGTERM stops the primary and every worker', async (t) => {
  const cluster = await startCluster(t);
  const idle = await RawClient.login(cluster.port, 'u', 'pw');
  t.after(async () => idle.close());
  await waitFor(async () => (await childPids(cluster.child.pid!)).length === 2, 'two workers');
  const workers = await childPids(cluster.child.pid!);
  cluster.child.kill('SIGTERM');
  const [code] = await once(cluster.child, 'exit');
  assert.equal(code, 0);
  assert.equal((await idle.read()).code, 421);
  for (const pid of workers) assert.throws(() => process.kill(pid, 0), /ESRCH/, `worker ${pid} still runs`);
});
