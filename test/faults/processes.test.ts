/**
 * Faults that end a process: Ctrl-C twice (an immediate stop), SIGKILL of
 * the server and a restart, SIGKILL of a cluster worker, and server.close()
 * cutting an upload after its grace. No temp file outlives its process, the
 * old file stays, and a live upload's temp file (another process's, another
 * worker's) is never removed.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { childPids, exitOf, startCli, type RunningCli } from '../helpers/cli.js';
import { RawClient } from '../helpers/ftp-raw.js';
import { PASSWORD, USER } from '../helpers/server.js';
import { dataConnection, faultServer, healthyClient, sha256, tempFiles, waitFor } from './fault-helpers.js';

const OLD = 'the old content, which must survive';

async function sharedRoot(t: TestContext): Promise<string> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'ferry-faults-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  await writeFile(path.join(root, 'old.txt'), OLD);
  return root;
}

function ferry(t: TestContext, root: string, extra: string[] = []): Promise<RunningCli> {
  return startCli(t, ['--root', root, '--host', '127.0.0.1', '--port', '0', '--user', 'u:pw', '--write', '--log-level', 'info', ...extra], os.tmpdir());
}

interface Upload {
  client: RawClient;
  data: net.Socket;
  /** The temp file this upload writes (its name says which process owns it). */
  temp: string;
}

/** Log in, start uploading `name` and send `bytes`; resolves once its temp file is on disk. */
async function startUpload(t: TestContext, port: number, root: string, name: string, bytes: Buffer): Promise<Upload> {
  const before = new Set(await tempFiles(root));
  const client = await RawClient.login(port, 'u', 'pw');
  t.after(() => client.close());
  await client.command('TYPE I', 200);
  const data = await dataConnection(client);
  t.after(() => void data.destroy());
  await client.command(`STOR ${name}`, 150);
  data.write(bytes);
  let temp: string | undefined;
  await waitFor(async () => (temp = (await tempFiles(root)).find((f) => !before.has(f))) !== undefined, `the temp file of ${name}`);
  return { client, data, temp: temp! };
}

/** The pid in a temp file's name: `.ferry-upload-<host>-<pid>-<start>-<random>.part`. */
function ownerPid(temp: string): number {
  return Number(path.basename(temp).split('-')[3]);
}

for (const [label, extra] of [
  ['one process', []],
  ['a cluster (the workers exit when their primary is gone)', ['--workers', '2']],
] as const) {
  test(`Ctrl-C twice during an upload, ${label}: it stops at once and leaves no temp file`, async (t) => {
    const root = await sharedRoot(t);
    const cli = await ferry(t, root, [...extra]);
    const workers = await childPids(cli.child.pid!);
    await startUpload(t, cli.port, root, 'old.txt', randomBytes(2 * 1024 * 1024));
    cli.child.kill('SIGINT');
    await waitFor(() => cli.output().includes('Ctrl-C again'), 'the graceful stop to begin');
    cli.child.kill('SIGINT');
    assert.equal(await exitOf(cli.child), 1);
    assert.match(cli.output(), /Stopping now/);
    await waitFor(() => workers.every((pid) => !isAlive(pid)), 'the workers to exit');
    assert.deepEqual(await tempFiles(root), []);
    assert.equal(await readFile(path.join(root, 'old.txt'), 'utf8'), OLD);
  });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('server.close() after its grace cuts the upload, and its temp file is gone when close() resolves', async (t) => {
  const srv = await faultServer(t);
  await writeFile(path.join(srv.root, 'old.txt'), OLD);
  const client = await RawClient.login(srv.port, USER, PASSWORD);
  t.after(() => client.close());
  const data = await dataConnection(client);
  await client.command('STOR old.txt', 150);
  data.write(randomBytes(1024 * 1024));
  await waitFor(async () => (await tempFiles(srv.root)).length === 1, 'the upload to reach the disk');
  await srv.server.close(50);
  assert.deepEqual(await tempFiles(srv.root), []);
  assert.equal(await readFile(path.join(srv.root, 'old.txt'), 'utf8'), OLD);
  assert.ok(srv.events.some((e) => e.event === 'upload-aborted' && e.info.path === '/old.txt'));
});

test('kill -9 mid-upload, then a restart: the orphan is swept, the log says how much, and another live process keeps its upload', async (t) => {
  const root = await sharedRoot(t);
  const killed = await ferry(t, root);
  const live = await ferry(t, root);
  const doomed = await startUpload(t, killed.port, root, 'old.txt', randomBytes(3 * 1024 * 1024));
  const content = randomBytes(2 * 1024 * 1024);
  const survivor = await startUpload(t, live.port, root, 'other.bin', content.subarray(0, 1024 * 1024));
  assert.equal(ownerPid(doomed.temp), killed.child.pid);
  assert.equal(ownerPid(survivor.temp), live.child.pid);

  killed.child.kill('SIGKILL');
  await exitOf(killed.child);
  assert.ok((await tempFiles(root)).includes(doomed.temp), 'SIGKILL leaves the temp file (nothing in the process can run)');

  const restarted = await ferry(t, root);
  const sweepLine = () => restarted.output().split('\n').find((l) => l.includes('removed temp files left by a stopped process'));
  await waitFor(() => sweepLine() !== undefined, 'the sweep at start to log what it removed');
  const line = sweepLine()!;
  assert.ok(!(await tempFiles(root)).includes(doomed.temp));
  const logged = JSON.parse(line) as { files: number; bytes: number };
  assert.equal(logged.files, 1);
  assert.ok(logged.bytes > 0 && logged.bytes <= 3 * 1024 * 1024, `bytes ${logged.bytes}`);
  assert.ok((await tempFiles(root)).includes(survivor.temp), "the live process's upload is untouched");
  assert.equal(await readFile(path.join(root, 'old.txt'), 'utf8'), OLD);

  survivor.data.end(content.subarray(1024 * 1024));
  await survivor.client.expect(226);
  assert.equal(sha256(await readFile(path.join(root, 'other.bin'))), sha256(content));
  assert.deepEqual(await tempFiles(root), []);
});

test('a cluster worker killed mid-upload: its client sees the end, the other worker finishes, a replacement starts, no temp file left', async (t) => {
  const root = await sharedRoot(t);
  const cluster = await ferry(t, root, ['--workers', '2']);
  await waitFor(async () => (await childPids(cluster.child.pid!)).length === 2, 'two workers');
  const doomed = await startUpload(t, cluster.port, root, 'old.txt', randomBytes(3 * 1024 * 1024));
  const content = randomBytes(2 * 1024 * 1024);
  const survivor = await startUpload(t, cluster.port, root, 'other.bin', content.subarray(0, 1024 * 1024));
  const victim = ownerPid(doomed.temp);
  assert.notEqual(victim, ownerPid(survivor.temp), 'the two sessions went to different workers');

  process.kill(victim, 'SIGKILL');
  await doomed.client.closed(10_000);
  // New clients are served meanwhile (by the live worker, then the replacement too), from the
  // moment the primary knows: in the few ms before, it may still hand one to the dead worker
  // (a window noted for the next issue; this client once waited 10 s there for a greeting).
  await waitFor(() => /worker died; starting a replacement/.test(cluster.output()), 'the primary to notice');
  const healthy = healthyClient(cluster.port, { user: 'u', password: 'pw' });
  await waitFor(() => /"files":1,"bytes":\d+[^\n]*removed temp files left by a stopped process/.test(cluster.output()), "the dead worker's temp file to be swept");
  assert.ok(!(await tempFiles(root)).includes(doomed.temp));
  assert.ok((await tempFiles(root)).includes(survivor.temp), "the live worker's upload is untouched");

  survivor.data.end(content.subarray(1024 * 1024));
  await survivor.client.expect(226);
  assert.equal(sha256(await readFile(path.join(root, 'other.bin'))), sha256(content));
  assert.equal(await readFile(path.join(root, 'old.txt'), 'utf8'), OLD);
  await waitFor(async () => {
    const workers = await childPids(cluster.child.pid!);
    return workers.length === 2 && !workers.includes(victim);
  }, 'a replacement worker');
  assert.ok((await healthy.stop()) >= 1, 'the healthy client was served throughout (by whichever worker)');
  assert.deepEqual(
    (await readdir(root)).filter((n) => n.startsWith('.ferry-upload-')),
    [],
  );
});
