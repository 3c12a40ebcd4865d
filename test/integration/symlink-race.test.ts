/**
 * Issue 11, item 7: the jail holds against a local process racing it.
 *
 * A helper process (python3, renameat2 with RENAME_EXCHANGE through ctypes)
 * swaps a directory inside the served root with a symlink to an outside
 * folder as fast as it can, while a real client loops RETR, STOR, MKD, NLST,
 * SITE CHMOD and MFMT inside that directory. Before the jail walked paths by
 * fd, 3 s of this returned the outside file's content, created entries
 * outside and changed an outside file's mode and time. The test first checks
 * that the race was real: the swapper swapped thousands of times and the
 * client saw both states (the real directory, and the link refused).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { LocalStorage } from '../../src/storage/local.js';
import { PASSWORD, startServer, USER } from '../helpers/server.js';
import { RawClient, readAll } from '../helpers/ftp-raw.js';

/** How long the client loops; the swapper runs until told to stop, or SWAP_SECONDS at most. */
const CLIENT_MS = 3000;
const SWAP_SECONDS = 30;
/** A bound on the loop whatever the clock says. */
const MAX_ROUNDS = 5000;

const INSIDE = 'inside content\n';
const SECRET = 'OUTSIDE SECRET\n';

// Exchanges argv[1] and argv[2] (a directory and a symlink) until SIGTERM or
// argv[3] seconds, then prints how many swaps it made.
const SWAPPER = `
import ctypes, os, signal, sys, time
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_EXCHANGE = -100, 2
a, b, seconds = os.fsencode(sys.argv[1]), os.fsencode(sys.argv[2]), float(sys.argv[3])
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
print('ready', flush=True)
n, end = 0, time.monotonic() + seconds
while not stop and time.monotonic() < end:
    for _ in range(100):
        if libc.renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) != 0:
            sys.exit('renameat2: ' + os.strerror(ctypes.get_errno()))
    n += 100
print(n, flush=True)
`;

/** Every entry under `dir` with what the race could change: mode, mtime, size, and the secret's content. */
async function snapshot(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    const st = await lstat(path.join(dir, rel));
    out.push(`${rel || '.'} ${st.mode.toString(8)} ${st.mtimeMs} ${st.isDirectory() ? '-' : st.size}`);
    if (st.isDirectory()) for (const name of (await readdir(path.join(dir, rel))).sort()) await walk(path.join(rel, name));
  };
  await walk('');
  out.push(await readFile(path.join(dir, 'file.txt'), 'utf8'));
  return out;
}

test('a directory swapped for a symlink to outside, thousands of times a second, never lets a client out of the root (issue 11)', async (t) => {
  const base = await mkdtemp(path.join(os.tmpdir(), 'ferry-race-'));
  let swapper: ChildProcess | undefined;
  t.after(async () => {
    // The swapper stops before the tree is removed: rm racing it could wander anywhere the links point.
    if (swapper && swapper.exitCode === null && swapper.signalCode === null) {
      swapper.kill('SIGKILL');
      await once(swapper, 'exit');
    }
    await rm(base, { recursive: true, force: true });
  });
  const root = path.join(base, 'root');
  const outside = path.join(base, 'outside');
  await mkdir(path.join(root, 'dir'), { recursive: true });
  await writeFile(path.join(root, 'dir', 'file.txt'), INSIDE);
  await mkdir(outside, { mode: 0o700 });
  await writeFile(path.join(outside, 'file.txt'), SECRET);
  await writeFile(path.join(outside, 'outside-only.txt'), 'x');
  await chmod(path.join(outside, 'file.txt'), 0o640);
  await utimes(path.join(outside, 'file.txt'), new Date(1e12), new Date(1e12));
  await utimes(outside, new Date(1e12), new Date(1e12));
  await symlink(outside, path.join(root, 'swap'));
  const before = await snapshot(outside);

  const srv = await startServer(t, { storage: new LocalStorage(root, { fsync: false }), uploadSettleMs: 0 });
  const client = await RawClient.login(srv.port, USER, PASSWORD);
  t.after(() => client.close());
  await client.command('TYPE I', 200);

  const seen = { retrInside: 0, retrOutside: 0, retrRefused: 0, listInside: 0, listOutside: 0, stored: 0, made: 0, chmods: 0, mfmts: 0, refused: 0 };
  /** A transfer command on a fresh passive connection: the body (uploading `body` if given), or null if refused. */
  const transfer = async (command: string, body?: Buffer): Promise<Buffer | null> => {
    const data: net.Socket = await client.passive();
    data.on('error', () => {});
    const first = await client.command(command);
    if (first.code !== 150 && first.code !== 125) {
      data.destroy();
      assert.equal(first.code, 550, `${command}: ${first.code} ${first.text}`);
      return null;
    }
    let received: Buffer = Buffer.alloc(0);
    if (body) data.end(body);
    else received = await readAll(data);
    // An upload refused when it commits (its directory moved away meanwhile) ends 550 instead of 226.
    const last = await client.read();
    assert.ok(last.code === 226 || last.code === 550, `${command}: ${last.code} ${last.text}`);
    return last.code === 226 ? received : null;
  };
  const ok = (code: number, command: string): boolean => {
    assert.ok(code < 400 || code === 550, `${command}: ${code}`);
    if (code === 550) seen.refused++;
    return code < 400;
  };

  // Start the reader threads (a first RETR and NLST) before the race, so the whole window is spent racing.
  assert.equal((await transfer('RETR dir/file.txt'))?.toString(), INSIDE);
  for (let i = 0; i < 2; i++) assert.ok((await transfer('NLST dir'))?.includes('file.txt')); // two listing threads

  const child = spawn('python3', ['-c', SWAPPER, path.join(root, 'dir'), path.join(root, 'swap'), String(SWAP_SECONDS)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  swapper = child;
  child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const exited = once(child, 'exit');
  const deadline = Date.now() + 10_000;
  while (!stdout.includes('ready') && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 10));
  assert.ok(stdout.includes('ready'), `swapper did not start: ${stderr}`);

  const stopAt = Date.now() + CLIENT_MS;
  for (let i = 0; i < MAX_ROUNDS && Date.now() < stopAt; i++) {
    const got = await transfer('RETR dir/file.txt');
    if (got === null) seen.retrRefused++;
    else if (got.toString() === SECRET) seen.retrOutside++;
    else if (got.toString() === INSIDE) seen.retrInside++;
    const names = await transfer('NLST dir');
    if (names?.includes('outside-only.txt')) seen.listOutside++;
    else if (names?.includes('file.txt')) seen.listInside++;
    if ((await transfer(`STOR dir/up-${i}.txt`, Buffer.from('upload'))) !== null) seen.stored++;
    if (ok((await client.command(`MKD dir/made-${i}`)).code, 'MKD')) seen.made++;
    if (ok((await client.command('SITE CHMOD 777 dir/file.txt')).code, 'SITE CHMOD')) seen.chmods++;
    if (ok((await client.command('MFMT 20000101000000 dir/file.txt')).code, 'MFMT')) seen.mfmts++;
    if (ok((await client.command('SITE CHMOD 777 dir')).code, 'SITE CHMOD dir')) seen.chmods++;
  }
  child.kill('SIGTERM');
  await exited;
  const swaps = Number(stdout.trim().split('\n').at(-1));
  t.diagnostic(`swaps ${swaps}; ${JSON.stringify(seen)}`);

  // The race was real: many swaps, and the client met both states.
  assert.equal(child.exitCode, 0, stderr);
  assert.ok(swaps >= 1000, `only ${swaps} swaps`);
  assert.ok(seen.retrInside > 0 && seen.stored > 0 && seen.made > 0, `never saw the real directory: ${JSON.stringify(seen)}`);
  assert.ok(seen.retrRefused + seen.retrOutside + seen.refused > 0, `never saw the symlink: ${JSON.stringify(seen)}`);

  // And it never got out: no outside content served, nothing created or changed outside.
  const after = await snapshot(outside);
  const outsideChanges = [...after.filter((l) => !before.includes(l)).map((l) => `+ ${l}`), ...before.filter((l) => !after.includes(l)).map((l) => `- ${l}`)];
  assert.deepEqual(
    { retrOutside: seen.retrOutside, listOutside: seen.listOutside, outsideChanges: outsideChanges.slice(0, 10), changed: outsideChanges.length },
    { retrOutside: 0, listOutside: 0, outsideChanges: [], changed: 0 },
  );
});
