/**
 * Quotas across cluster workers (issue 12), through the CLI: the ledger
 * lives in the primary, so sessions of one user on two workers share one
 * count; `ferry user show` prints the usage counted from the files.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { hashPassword } from '../../src/auth/password.js';
import { RawClient, sendBytes as send, uploadBytes } from '../helpers/ftp-raw.js';
import { childPids, runCliToEnd, startCli } from '../helpers/cli.js';

const MIB = 1024 * 1024;

async function setup(t: TestContext, quotaBytes: number): Promise<{ dir: string; home: string; config: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-cluster-quota-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const home = path.join(dir, 'root', 'cam');
  await mkdir(home, { recursive: true });
  await writeFile(path.join(home, 'before.bin'), Buffer.alloc(MIB / 2));
  const passwordHash = await hashPassword('pw');
  await writeFile(path.join(dir, 'users.yaml'), `users:\n  cam:\n    passwordHash: "${passwordHash}"\n    home: /cam\n    permissions: elradfmwMT\n`);
  const config = path.join(dir, 'ferry.yaml');
  await writeFile(
    config,
    `host: 127.0.0.1\nport: 0\nworkers: 2\nstorage:\n  root: ${path.join(dir, 'root')}\nusers:\n  file: ${path.join(dir, 'users.yaml')}\nlimits:\n  perUser: { quotaBytes: ${quotaBytes} }\nlogging:\n  level: info\n`,
  );
  return { dir, home, config };
}

async function stored(home: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(home)) total += (await stat(path.join(home, name))).size;
  return total;
}

test('one user\'s sessions on two workers share one quota: never more stored than it, and the room left is used exactly', async (t) => {
  const quota = 3 * MIB;
  const { home, config, dir } = await setup(t, quota);
  const cluster = await startCli(t, ['--config', config], dir);
  const clients = await Promise.all(Array.from({ length: 4 }, () => RawClient.login(cluster.port, 'cam', 'pw')));
  t.after(() => clients.forEach((c) => c.close()));
  for (const client of clients) await client.command('TYPE I', 200);
  const workers = new Set([...cluster.output().matchAll(/"worker":(\d+)[^\n]*"msg":"login"/g)].map((m) => m[1]));
  assert.deepEqual([...workers].sort(), ['0', '1'], 'sessions on both workers');
  // 0.5 MiB stored; four 1 MiB uploads at once: at most two fit in the 2.5 MiB left.
  const codes = await Promise.all(clients.map((c, i) => uploadBytes(c, 'STOR', `up${i}.bin`, MIB)));
  assert.ok(codes.every((c) => c === 226 || c === 552), codes.join());
  const committed = codes.filter((c) => c === 226).length;
  assert.ok(committed <= 2, codes.join());
  assert.equal(await stored(home), MIB / 2 + committed * MIB);
  // Fill what is left from each worker in turn, then one byte more is refused on either.
  const left = quota - (await stored(home));
  assert.equal(await uploadBytes(clients[0]!, 'STOR', 'fill-a.bin', Math.floor(left / 2)), 226);
  assert.equal(await uploadBytes(clients[1]!, 'STOR', 'fill-b.bin', left - Math.floor(left / 2)), 226);
  assert.equal(await stored(home), quota);
  for (const client of clients) assert.equal(await uploadBytes(client, 'STOR', 'over.bin', 1), 552);
  // A delete in one worker frees room for another.
  await clients[2]!.command('DELE before.bin', 250);
  assert.equal(await uploadBytes(clients[3]!, 'STOR', 'after-delete.bin', MIB / 2), 226);
  assert.equal(await stored(home), quota);

  // `ferry user show` counts the same home from the files.
  const shown = await runCliToEnd(['user', 'show', 'cam', '--config', config], dir);
  assert.equal(shown.code, 0, shown.stderr);
  const out = JSON.parse(shown.stdout) as { usage: { bytes: number; files: number }; effectiveLimits: { quotaBytes: number } };
  assert.deepEqual(out.usage, { bytes: quota, files: (await readdir(home)).length, countedFrom: 'files' });
  assert.equal(out.effectiveLimits.quotaBytes, quota);
});

test('a worker killed mid-upload gives its reservation back: the room is whole again for the replacement workers', async (t) => {
  const quota = 2 * MIB;
  const { home, config, dir } = await setup(t, quota);
  const cluster = await startCli(t, ['--config', config], dir);
  const client = await RawClient.login(cluster.port, 'cam', 'pw');
  t.after(() => client.close());
  await client.command('TYPE I', 200);
  const data = await client.passive();
  client.send('STOR cut.bin');
  await client.expect(150);
  await send(data, MIB); // reserved in the primary by the worker serving this session
  await new Promise((r) => setTimeout(r, 200));
  for (const pid of await childPids(cluster.child.pid!)) process.kill(pid, 'SIGKILL');
  data.destroy();
  // The primary re-forks its workers; log in again once one answers.
  let again: RawClient | null = null;
  const deadline = Date.now() + 15_000;
  while (!again) {
    again = await RawClient.login(cluster.port, 'cam', 'pw').catch(() => null);
    if (!again) {
      assert.ok(Date.now() < deadline, 'no worker came back');
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  const fresh = again;
  t.after(() => fresh.close());
  await fresh.command('TYPE I', 200);
  // 0.5 MiB stored: exactly 1.5 MiB fits, with nothing left held for the dead upload.
  assert.equal(await uploadBytes(fresh, 'STOR', 'fits.bin', quota - MIB / 2), 226);
  assert.equal(await uploadBytes(fresh, 'STOR', 'over.bin', 1), 552);
  assert.equal(await stored(home), quota);
});
