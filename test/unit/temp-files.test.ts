/**
 * Temp file ownership and the sweeps: only files of a dead writer on this
 * host go; a live process's, this process's and unknown names stay.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { LogFn, Logger } from '../../src/observability/logger.js';
import { LocalStorage } from '../../src/storage/local.js';
import { isOrphan, sweepTempFiles, tempFileName } from '../../src/storage/temp-files.js';

async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-temp-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A temp name as process `pid` (started at `start`) would make it, on this host. */
async function nameFor(pid: number, start: string): Promise<string> {
  const mine = await tempFileName();
  const [host] = mine.slice('.ferry-upload-'.length).split('-');
  return `.ferry-upload-${host}-${pid}-${start}-00ff.part`;
}

async function startOf(pid: number): Promise<string> {
  const stat = await readFile(`/proc/${pid}/stat`, 'latin1');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!;
}

/** A short-lived child process: its pid is dead once it has exited. */
async function deadPid(): Promise<{ pid: number; start: string }> {
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 200)']);
  const start = await startOf(child.pid!);
  await once(child, 'exit');
  return { pid: child.pid!, start };
}

test('the writer is judged by host, pid and start time', { skip: process.platform !== 'linux' && 'needs /proc' }, async (t) => {
  const sleeper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30_000)']);
  t.after(() => void sleeper.kill('SIGKILL'));
  const liveStart = await startOf(sleeper.pid!);
  const dead = await deadPid();
  assert.equal(await isOrphan(await nameFor(sleeper.pid!, liveStart)), false, 'a live process is writing it');
  assert.equal(await isOrphan(await nameFor(sleeper.pid!, String(Number(liveStart) - 1))), true, 'the pid was reused by another process');
  assert.equal(await isOrphan(await nameFor(dead.pid, dead.start)), true, 'its writer exited');
  assert.equal(await isOrphan(await tempFileName()), false, "this process's own files are never swept");
  assert.equal(await isOrphan(`.ferry-upload-00000000-${dead.pid}-${dead.start}-00ff.part`), false, "another host's files cannot be judged");
  assert.equal(await isOrphan('.ferry-upload-0123456789abcdef01234567.part'), false, 'an unknown name is left alone');
});

test('a recursive sweep removes only orphans and reports their count and bytes', { skip: process.platform !== 'linux' && 'needs /proc' }, async (t) => {
  const root = await tempDir(t);
  const deep = path.join(root, 'a', 'b');
  await mkdir(deep, { recursive: true });
  const sleeper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30_000)']);
  t.after(() => void sleeper.kill('SIGKILL'));
  const dead = await deadPid();
  const orphanTop = await nameFor(dead.pid, dead.start);
  const orphanDeep = await nameFor(dead.pid, dead.start).then((n) => n.replace('00ff', '01ff'));
  const live = await nameFor(sleeper.pid!, await startOf(sleeper.pid!));
  const own = await tempFileName();
  await writeFile(path.join(root, orphanTop), Buffer.alloc(1000));
  await writeFile(path.join(deep, orphanDeep), Buffer.alloc(234));
  await writeFile(path.join(deep, live), 'live upload');
  await writeFile(path.join(root, own), 'mine');
  await writeFile(path.join(root, 'kept.txt'), 'a user file');
  const logged: Array<Record<string, unknown>> = [];
  const log = ((entry: object, msg?: string) => void logged.push({ ...entry, msg })) as LogFn;
  const logger: Logger = { debug: log, info: log, warn: log, error: log, child: () => logger };

  const flat = await sweepTempFiles(root, { logger });
  assert.deepEqual([flat.files, flat.bytes], [1, 1000], 'without recursive, only the folder itself');
  const result = await sweepTempFiles(root, { recursive: true, logger });
  assert.deepEqual([result.files, result.bytes, result.truncated], [1, 234, false]);
  assert.deepEqual((await readdir(root)).sort(), ['a', 'kept.txt', own].sort());
  assert.deepEqual(await readdir(deep), [live]);
  assert.deepEqual(
    logged.map((e) => [e.msg, e.files, e.bytes]),
    [
      ['removed temp files left by a stopped process', 1, 1000],
      ['removed temp files left by a stopped process', 1, 234],
    ],
  );

  const bounded = await sweepTempFiles(root, { recursive: true, maxDirectories: 2, logger });
  assert.equal(bounded.truncated, true, 'a walk stops at its bound');
  assert.match(String(logged.at(-1)?.msg), /stopped at its bound/);
});

test("LocalStorage sweeps a folder the first time this process uploads into it (homes the CLI's sweep cannot know)", { skip: process.platform !== 'linux' && 'needs /proc' }, async (t) => {
  const root = await tempDir(t);
  await mkdir(path.join(root, 'home'));
  const dead = await deadPid();
  const orphan = await nameFor(dead.pid, dead.start);
  await writeFile(path.join(root, 'home', orphan), Buffer.alloc(4096));
  const logged: Array<Record<string, unknown>> = [];
  const log = ((entry: object, msg?: string) => void logged.push({ ...entry, msg })) as LogFn;
  const logger: Logger = { debug: log, info: log, warn: log, error: log, child: () => logger };
  const storage = new LocalStorage(root, { fsync: false, logger });
  const upload = await storage.write('/home/new.txt');
  await new Promise<void>((resolve, reject) => upload.end('new', (err?: Error | null) => (err ? reject(err) : resolve())));
  // The sweep runs in the background; its log line comes once it is done.
  for (let i = 0; i < 100 && logged.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(await readdir(path.join(root, 'home')), ['new.txt']);
  assert.deepEqual(
    logged.map((e) => [e.msg, e.files, e.bytes]),
    [['removed temp files left by a stopped process', 1, 4096]],
  );
});
