/**
 * A throwaway Ceph cluster with its S3 gateway (radosgw), for tests that need
 * an S3 server that behaves like S3 (delimiters two levels down, paging with
 * a delimiter, ListMultipartUploads, UploadPartCopy, DeleteObjects,
 * If-None-Match). One monitor and one OSD on the in-memory object store
 * (memstore), cephx off, no mgr, all on 127.0.0.1, in a fresh temporary
 * folder; the monitor's and the gateway's ports are picked free at start
 * (the OSD takes the first free ports of Ceph's own range 6800-7300).
 *
 * Start takes ~14 s and ~150 MB (more as objects are stored: memstore keeps
 * them in memory), so a test process starts one and shares it
 * (`sharedCeph`, `stopSharedCeph`): each test makes its own bucket
 * (`createBucket`).
 *
 * No process outlives the test run: every daemon is a child of the test
 * process, and a watchdog shell, whose stdin is a pipe from the test
 * process, SIGKILLs the daemons and removes the folder as soon as that pipe
 * closes: at `stop()`, or when the test process ends however it ends.
 *
 * Ceph comes from Debian (`bash .ci/install-ceph.sh`). When it is missing,
 * `cephSkip()` skips the tests outside CI and lets them fail under CI, with
 * a message naming that script.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { appendFile, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { CreateBucketCommand, ListMultipartUploadsCommand, S3Client } from '@aws-sdk/client-s3';

const run = promisify(execFile);

export const CEPH_INSTALL = 'bash .ci/install-ceph.sh';
const DAEMONS = ['ceph-mon', 'ceph-osd', 'radosgw', 'radosgw-admin', 'monmaptool', 'ceph'];
/** Bounds on each step of the start: a stuck step fails the test instead of hanging it. */
const STEP_TIMEOUT_MS = 60_000;

export interface Ceph {
  /** The S3 gateway, e.g. http://127.0.0.1:41234 (path-style). */
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** The cluster's folder (configuration, logs). */
  directory: string;
  /** Kill every daemon and remove the folder. */
  stop(): Promise<void>;
}

function onPath(command: string): boolean {
  return (process.env['PATH'] ?? '').split(':').some((dir) => dir !== '' && existsSync(path.join(dir, command)));
}

/** Why Ceph cannot run here, or null when it can. */
export function cephMissing(): string | null {
  const missing = DAEMONS.filter((command) => !onPath(command));
  return missing.length === 0 ? null : `Ceph is not installed (${missing.join(', ')} missing): run ${CEPH_INSTALL}`;
}

/**
 * The `skip` option for a suite that needs Ceph: outside CI a missing Ceph
 * skips it with the reason; under CI (CI=true) it runs, and startCeph()
 * fails with the same reason.
 */
export function cephSkip(): string | false {
  const reason = cephMissing();
  if (!reason || process.env['CI'] === 'true') return false;
  return reason;
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function config(dir: string, fsid: string, monPort: number, rgwPort: number): string {
  return `[global]
fsid = ${fsid}
mon host = v1:127.0.0.1:${monPort}
public addr = 127.0.0.1
cluster addr = 127.0.0.1
# msgr v1 only: one monitor port, which we choose.
ms bind msgr2 = false
auth cluster required = none
auth service required = none
auth client required = none
run dir = ${dir}/run
admin socket = ${dir}/run/$name.asok
log file = ${dir}/log/$name.log
pid file = ${dir}/run/$name.pid
# One OSD: pools of one copy, few placement groups.
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
osd objectstore = memstore
memstore device bytes = 4294967296
# The OSD's own CRUSH updates at start race its monitor client (a command
# with an empty fsid, refused, and the OSD exits): we place it ourselves.
osd crush update on start = false
osd class update on start = false
[mon.a]
mon data = ${dir}/mon
[osd.0]
osd data = ${dir}/osd
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:${rgwPort}
`;
}

async function logTail(dir: string): Promise<string> {
  const parts: string[] = [];
  for (const name of ['mon.a', 'osd.0', 'client.rgw']) {
    const text = await readFile(path.join(dir, 'log', `${name}.log`), 'utf8').catch(() => '');
    parts.push(`--- ${name}.log\n${text.split('\n').slice(-15).join('\n')}`);
  }
  return parts.join('\n');
}

/** Poll `check` every 200 ms until it is true, at most `timeoutMs`; a daemon that exits ends the wait. */
async function waitFor(what: string, check: () => Promise<boolean>, daemons: ChildProcess[], timeoutMs = STEP_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const dead = daemons.find((d) => d.exitCode !== null || d.signalCode !== null);
    if (dead) throw new Error(`${dead.spawnargs[0]} exited (${dead.exitCode ?? dead.signalCode}) while waiting for ${what}`);
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`Ceph: ${what} not ready after ${timeoutMs} ms`);
}

function httpAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.end('GET / HTTP/1.0\r\n\r\n'));
    socket.setTimeout(1000, () => socket.destroy());
    let answered = false;
    socket.on('data', () => (answered = true));
    socket.on('close', () => resolve(answered));
    socket.on('error', () => undefined);
  });
}

/** Start a cluster; a start that fails (a port taken meanwhile, a daemon that died) is tried once more from scratch. */
export async function startCeph(): Promise<Ceph> {
  const missing = cephMissing();
  if (missing) throw new Error(missing);
  return startCluster().catch(() => startCluster());
}

async function startCluster(): Promise<Ceph> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-ceph-'));
  const pids = path.join(dir, 'pids');
  await writeFile(pids, '');
  // Runs until its stdin (our pipe) closes, then kills what `pids` lists and removes the folder.
  const watchdog = spawn('sh', ['-c', 'cat >/dev/null; for p in $(cat "$1/pids"); do kill -9 "$p" 2>/dev/null; done; sleep 0.2; rm -rf "$1"', 'sh', dir], {
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  // Nothing here keeps the test process alive: when it ends, the pipe closes and the watchdog cleans up.
  watchdog.unref();
  (watchdog.stdin as unknown as net.Socket).unref();
  const daemons: ChildProcess[] = [];
  const stop = async (): Promise<void> => {
    // ref(): what we wait for must keep the event loop alive until it happens.
    for (const daemon of daemons) {
      if (daemon.exitCode === null && daemon.signalCode === null) {
        const exited = once(daemon, 'exit');
        daemon.ref();
        daemon.kill('SIGKILL');
        await exited;
      }
    }
    if (watchdog.exitCode === null && watchdog.signalCode === null) {
      const exited = once(watchdog, 'exit');
      watchdog.ref();
      watchdog.stdin!.end();
      await exited;
    }
  };
  const daemon = async (command: string, args: string[]): Promise<void> => {
    const child = spawn(command, args, { cwd: dir, stdio: 'ignore' });
    child.unref();
    daemons.push(child);
    await appendFile(pids, `${child.pid}\n`);
  };

  try {
    const [monPort, rgwPort] = [await freePort(), await freePort()];
    const fsid = randomUUID();
    const conf = path.join(dir, 'ceph.conf');
    await Promise.all(['mon', 'osd', 'run', 'log'].map((sub) => mkdir(path.join(dir, sub))));
    await writeFile(conf, config(dir, fsid, monPort, rgwPort));
    const c = ['-c', conf];
    const step = { cwd: dir, timeout: STEP_TIMEOUT_MS, killSignal: 'SIGKILL' as const };
    await run('monmaptool', ['--create', '--addv', 'a', `[v1:127.0.0.1:${monPort}]`, '--fsid', fsid, path.join(dir, 'monmap')], step);
    await run('ceph-mon', [...c, '--mkfs', '-i', 'a', '--monmap', path.join(dir, 'monmap')], step);
    await daemon('ceph-mon', [...c, '-f', '-i', 'a']);
    // Registers OSD 0 (waiting for the monitor to answer); its folder exists before --mkfs.
    await run('ceph', [...c, '--connect-timeout', '30', 'osd', 'create'], step);
    await run('ceph', [...c, 'osd', 'crush', 'add', 'osd.0', '1', 'root=default'], step);
    await run('ceph-osd', [...c, '--mkfs', '-i', '0'], step);
    await daemon('ceph-osd', [...c, '-f', '-i', '0']);
    await waitFor(
      'the OSD',
      async () => (JSON.parse((await run('ceph', [...c, 'osd', 'stat', '-f', 'json'], step)).stdout) as { num_up_osds: number }).num_up_osds === 1,
      daemons,
    );
    await daemon('radosgw', [...c, '-f', '-n', 'client.rgw']);
    await waitFor('radosgw', () => httpAnswers(rgwPort), daemons);
    const accessKeyId = 'FERRYTEST';
    const secretAccessKey = randomUUID();
    await run('radosgw-admin', [...c, 'user', 'create', '--uid', 'ferry', '--display-name', 'Ferry tests', '--access-key', accessKeyId, '--secret', secretAccessKey], step);
    return { endpoint: `http://127.0.0.1:${rgwPort}`, accessKeyId, secretAccessKey, directory: dir, stop };
  } catch (err) {
    const logs = await logTail(dir);
    await stop();
    throw new Error(`Ceph did not start: ${(err as Error).message}\n${logs}`, { cause: err });
  }
}

let shared: Promise<Ceph> | null = null;

/**
 * One cluster for the whole test process, started on first use. A file that
 * uses it calls `after(stopSharedCeph)` at its top level; should the process
 * end first (a crash, a kill), the watchdog still removes everything.
 */
export function sharedCeph(): Promise<Ceph> {
  shared ??= startCeph();
  return shared;
}

export async function stopSharedCeph(): Promise<void> {
  const started = shared;
  shared = null;
  await (await started?.catch(() => null))?.stop();
}

/** A plain S3 client for the cluster (path-style), for keys made behind Ferry's back. */
export function cephClient(ceph: Ceph, endpoint = ceph.endpoint): S3Client {
  return new S3Client({
    region: 'us-east-1',
    endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: ceph.accessKeyId, secretAccessKey: ceph.secretAccessKey },
    // A gateway that stops answering fails the test's request rather than hang it.
    requestHandler: { connectionTimeout: 5_000, requestTimeout: 60_000 },
  });
}

let buckets = 0;

/** A new, empty bucket: one per test keeps tests apart on a shared cluster. */
export async function createBucket(ceph: Ceph, client: S3Client): Promise<string> {
  buckets += 1;
  const bucket = `ferry-${process.pid}-${buckets}`;
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  return bucket;
}

/** Multipart uploads started in `bucket` and neither completed nor aborted. */
export async function pendingUploads(client: S3Client, bucket: string): Promise<number> {
  const out = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  return out.Uploads?.length ?? 0;
}
