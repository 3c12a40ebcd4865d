/**
 * A home folder the server cannot open (issue 12): with runAs, a storage
 * root the dropped user cannot write made every login "530 Login incorrect".
 * Now check-config and serve warn at start, naming the folder, the user and
 * the fix, and the client gets a 421 that blames the server, with a warning
 * in the log.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, chown, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { hashPassword } from '../../src/auth/password.js';
import { HttpAuthenticator } from '../../src/auth/http-hook.js';
import { makeAccount, UserListAuthenticator } from '../../src/auth/user-list.js';
import { createServer } from '../../src/server/server.js';
import { runCliToEnd, startCli } from '../helpers/cli.js';
import { loginCode, RawClient } from '../helpers/ftp-raw.js';

test('library: a storage factory that fails answers 421 (not 530), closes, logs a warning and is no failed login', async (t) => {
  let log = '';
  const logger = pino({ level: 'info' }, new Writable({ write: (chunk, _encoding, done) => done(void (log += chunk)) }));
  const server = createServer({
    host: '127.0.0.1',
    port: 0,
    loginFailureDelayMs: 10,
    logger,
    authenticator: new UserListAuthenticator([
      {
        username: 'cam',
        password: 'pw',
        permissions: 'read',
        storage: () => {
          throw Object.assign(new Error("EACCES: permission denied, mkdir '/srv/ftp/cam'"), { code: 'EACCES' });
        },
      },
    ]),
  });
  const failed: string[] = [];
  server.on('login-failed', ({ reason }) => failed.push(reason));
  const { port } = await server.listen();
  t.after(() => server.close());

  const client = await RawClient.connect(port);
  t.after(() => client.close());
  await client.expect(220);
  await client.command('USER cam', 331);
  const reply = await client.command('PASS pw');
  assert.equal(`${reply.code} ${reply.text}`, '421 Cannot open your home folder: server misconfigured; try again later.');
  await client.closed();
  // The event tells the truth (the login did not succeed, for an error of the server), and no guess is counted.
  assert.deepEqual(failed, ['error']);
  assert.match(log, /"level":40,.*"username":"cam".*EACCES: permission denied, mkdir.*login refused: the account's home folder cannot be opened/);
  // A wrong password is still the plain 530, and a failed login.
  assert.equal(await loginCode(port, 'cam', 'wrong'), 530);
  assert.deepEqual(failed, ['error', 'wrong-password']);
});

test('HTTP hook: a yes whose home cannot be opened is a 421 too, not a refused login', async (t) => {
  const hook = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
  hook.listen(0, '127.0.0.1');
  await once(hook, 'listening');
  t.after(() => hook.close());
  const server = createServer({
    host: '127.0.0.1',
    port: 0,
    loginFailureDelayMs: 10,
    authenticator: new HttpAuthenticator({
      url: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/`,
      toAccount: (username) =>
        makeAccount(username, {
          permissions: 'read',
          storage: () => Promise.reject(Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' })),
        }),
    }),
  });
  const { port } = await server.listen();
  t.after(() => server.close());
  assert.equal(await loginCode(port, 'hooked', 'pw'), 421);
});

const asRoot = { skip: process.getuid?.() !== 0 && 'needs root (runAs)' };

test('runAs: a root the runAs user cannot write is named at check-config and at start; its users get 421, then log in once it is fixed', asRoot, async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-home-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await chmod(dir, 0o755);
  const files = path.join(dir, 'files');
  await mkdir(files, { mode: 0o755 }); // root's, as `mkdir /srv/ftp` run by root leaves it
  await mkdir(path.join(files, 'carol'), { mode: 0o700 }); // exists, but nobody cannot enter it
  await chmod(path.join(files, 'carol'), 0o700);
  const hash = await hashPassword('pw', 10);
  await writeFile(path.join(dir, 'users.yaml'), `users:\n  alice:\n    passwordHash: "${hash}"\n  carol:\n    passwordHash: "${hash}"\n`);
  await writeFile(
    path.join(dir, 'ferry.yaml'),
    'host: 127.0.0.1\nport: 0\nstorage:\n  type: local\n  root: files\nusers:\n  file: users.yaml\nrunAs:\n  user: nobody\nlimits:\n  loginFailureDelayMs: 50\nlogging:\n  level: info\n',
  );
  const cannotWrite = new RegExp(`storage\\.root: ${files}: the runAs user nobody cannot create folders in it, so users whose home folder does not exist yet cannot log in \\(421\\).*chown nobody ${files}`);

  const check = await runCliToEnd(['check-config', 'ferry.yaml'], dir);
  assert.equal(check.code, 0, check.stderr);
  assert.match(check.stderr, cannotWrite);

  const ferry = await startCli(t, ['serve', '--config', 'ferry.yaml'], dir);
  assert.match(ferry.output(), cannotWrite);
  for (const user of ['alice', 'carol']) {
    const client = await RawClient.connect(ferry.port);
    t.after(() => client.close());
    await client.expect(220);
    await client.command(`USER ${user}`, 331);
    const reply = await client.command('PASS pw');
    assert.equal(reply.code, 421, `${user}: ${reply.text}`);
    assert.match(reply.text, /Cannot open your home folder/);
    await client.closed();
  }
  // The log is written asynchronously: wait (bounded) for both lines.
  const logged = /"username":"alice".*EACCES.*login refused: the account's home folder cannot be opened[\s\S]*"username":"carol".*EACCES.*login refused/;
  for (const deadline = Date.now() + 5000; !logged.test(ferry.output()) && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 25));
  assert.match(ferry.output(), logged);
  assert.doesNotMatch(ferry.output(), /Login incorrect|authenticator failed/);

  // The operator follows the advice: the next login works, no restart needed.
  const nobody = Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }));
  await chown(files, nobody, -1);
  assert.equal(await loginCode(ferry.port, 'alice', 'pw'), 230);
  assert.equal((await stat(path.join(files, 'alice'))).uid, nobody);
  const fixed = await runCliToEnd(['check-config', 'ferry.yaml'], dir);
  assert.doesNotMatch(fixed.stderr, /runAs user/);

  // A root it cannot even enter: every login would fail, and the warning says so.
  await chown(files, 0, -1);
  await chmod(files, 0o700);
  const closed = await runCliToEnd(['check-config', 'ferry.yaml'], dir);
  assert.equal(closed.code, 0, closed.stderr);
  assert.match(closed.stderr, new RegExp(`storage\\.root: ${files}: the runAs user nobody cannot enter or list it, so every login will be refused \\(421.*chown -R nobody ${files}`));
});
