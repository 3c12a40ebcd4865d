/**
 * maxSessions: a user's sessions logged in at once, counted for the whole
 * server (one process, or every worker of a cluster through the primary).
 */
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { hashPassword } from '../../src/auth/password.js';
import { UserListAuthenticator } from '../../src/auth/user-list.js';
import { createServer } from '../../src/server/server.js';
import { LocalStorage } from '../../src/storage/local.js';
import { childPids, startCli } from '../helpers/cli.js';
import { RawClient } from '../helpers/ftp-raw.js';

/** USER/PASS on a fresh connection; the PASS reply's code, and the client (open when 230). */
async function tryLogin(port: number, user: string, password: string): Promise<{ code: number; text: string; client: RawClient }> {
  const client = await RawClient.connect(port);
  await client.expect(220);
  await client.command(`USER ${user}`, 331);
  const { code, text } = await client.command(`PASS ${password}`);
  return { code, text, client };
}

test('one process: the user limit, the default for every user, and a slot given back by QUIT, REIN and a vanished client', async (t) => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'ferry-sessions-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  const storage = () => new LocalStorage(root);
  const authenticator = new UserListAuthenticator([
    { username: 'cam', password: 'pw', storage, permissions: 'full', limits: { maxSessions: 2 } },
    { username: 'bob', password: 'pw', storage, permissions: 'full' }, // the server's default: 1
    { username: 'free', password: 'pw', storage, permissions: 'full', limits: { maxSessions: 0 } }, // 0 overrides the default: no limit
  ]);
  const server = createServer({ authenticator, perUserLimits: { maxSessions: 1 }, host: '127.0.0.1', port: 0, loginFailureDelayMs: 10 });
  t.after(() => server.close(0));
  const { port } = await server.listen();
  const open: RawClient[] = [];
  t.after(() => open.forEach((c) => c.close()));

  const a = await tryLogin(port, 'cam', 'pw');
  const b = await tryLogin(port, 'cam', 'pw');
  open.push(a.client, b.client);
  assert.deepEqual([a.code, b.code], [230, 230]);
  const third = await tryLogin(port, 'cam', 'pw');
  assert.equal(third.code, 421, 'a third session of cam is refused');
  assert.match(third.text, /Too many sessions/);
  await third.client.closed();

  const bob = await tryLogin(port, 'bob', 'pw');
  open.push(bob.client);
  assert.equal(bob.code, 230);
  assert.equal((await tryLogin(port, 'bob', 'pw')).code, 421, 'the default limit of 1 applies to bob');
  const frees = await Promise.all([1, 2, 3].map(() => tryLogin(port, 'free', 'pw')));
  open.push(...frees.map((f) => f.client));
  assert.deepEqual(frees.map((f) => f.code), [230, 230, 230]);

  // QUIT gives the slot back.
  await a.client.command('QUIT', 221);
  await a.client.closed();
  const again = await waitForLogin(port, 'cam');
  open.push(again);
  // REIN gives it back too (the session is no longer logged in).
  await b.client.command('REIN', 220);
  open.push((await waitForLogin(port, 'cam')));
  // A client that vanishes gives it back.
  bob.client.socket.destroy();
  open.push(await waitForLogin(port, 'bob'));
});

/** Log in as `user`, retrying briefly while the slot is released (bounded). */
async function waitForLogin(port: number, user: string, tries = 50): Promise<RawClient> {
  for (let i = 0; i < tries; i++) {
    const attempt = await tryLogin(port, user, 'pw').catch(() => null); // no worker ready yet: closed before the greeting
    if (!attempt) {
      await new Promise((r) => setTimeout(r, 50));
      continue;
    }
    const { code, client } = attempt;
    if (code === 230) return client;
    client.close();
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${user} could not log in again`);
}

test('two workers: a burst of 24 simultaneous logins lets exactly maxSessions in, and dead workers give their slots back', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-sessions-cluster-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await mkdir(path.join(dir, 'files', 'cam'), { recursive: true });
  // A cheap hash: the test is about counting, not about scrypt's cost under a burst.
  const hash = await hashPassword('pw', 10);
  await writeFile(path.join(dir, 'users.yaml'), `users:\n  cam:\n    passwordHash: "${hash}"\n    home: /cam\n    permissions: full\n    limits: { maxSessions: 3 }\n`);
  await writeFile(
    path.join(dir, 'ferry.yaml'),
    'host: 127.0.0.1\nport: 0\nworkers: 2\nstorage: { type: local, root: files }\nusers: { file: users.yaml }\nlogging: { level: info }\nlimits: { loginFailureDelayMs: 10 }\n',
  );
  const cluster = await startCli(t, ['--config', 'ferry.yaml'], dir);
  const open: RawClient[] = [];
  t.after(() => open.forEach((c) => c.close()));

  for (const round of [1, 2]) {
    const clients = await Promise.all(Array.from({ length: 24 }, () => RawClient.connect(cluster.port)));
    open.push(...clients);
    await Promise.all(clients.map((c) => c.expect(220)));
    await Promise.all(clients.map((c) => c.command('USER cam', 331)));
    // Every PASS is on the wire before the first answer: the burst reaches both workers at once.
    const codes = await Promise.all(clients.map((c) => c.command('PASS pw').then((r) => r.code)));
    assert.equal(codes.filter((c) => c === 230).length, 3, `round ${round}: exactly 3 of 24 got in (${codes.join(' ')})`);
    assert.equal(codes.filter((c) => c === 421).length, 21, `round ${round}: the rest got 421`);
    // Sessions really ran on both workers (else the test proves nothing about the cluster); logs arrive a little later.
    if (round === 1) {
      const answered = () => new Set([...cluster.output().matchAll(/"worker":(\d+)[^\n]*"msg":"login( refused)?"/g)].map((m) => m[1])).size;
      for (let i = 0; i < 60 && answered() < 2; i++) await new Promise((r) => setTimeout(r, 50));
      assert.equal(answered(), 2, 'both workers answered');
    }
    await Promise.all(clients.filter((c) => !c.isClosed).map((c) => c.command('QUIT', 221).catch(() => undefined)));
    clients.forEach((c) => c.close());
    // The slots come back once the QUITs are through.
    open.push(await waitForLogin(cluster.port, 'cam'));
    open.pop()!.close();
    await new Promise((r) => setTimeout(r, 200));
  }

  // Three sessions, then every worker killed: the slots their sessions held come back once the
  // replacements serve (which worker served which session depends on the primary's counts, so both go).
  const three = [await waitForLogin(cluster.port, 'cam'), await waitForLogin(cluster.port, 'cam'), await waitForLogin(cluster.port, 'cam')];
  open.push(...three);
  assert.equal((await tryLogin(cluster.port, 'cam', 'pw')).code, 421, 'a fourth is refused while three are in');
  for (const pid of await childPids(cluster.child.pid!)) process.kill(pid, 'SIGKILL');
  await Promise.all(three.map((c) => c.closed(5000)));
  const again: RawClient[] = [];
  for (let i = 0; i < 3; i++) again.push(await waitForLogin(cluster.port, 'cam', 400)); // bounded: 400 × 50 ms while replacements start
  open.push(...again);
  assert.equal((await tryLogin(cluster.port, 'cam', 'pw')).code, 421, 'exactly three again: nothing stale, nothing lost');
});
