/**
 * `ferry` run from a configuration file, and `ferry user|check-config|
 * hash-password`, as an operator uses them: real processes, real clients.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { Client } from 'basic-ftp';
import { verifyPassword } from '../../src/auth/password.js';
import { createSelfSignedCertificate } from '../../src/tls/self-signed.js';
import { runCliToEnd, startCli, type RunningCli } from '../helpers/cli.js';
import { loginCode, RawClient } from '../helpers/ftp-raw.js';
import type { Cleanup } from '../helpers/server.js';

async function operatorDir(t: Cleanup, config = ''): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-operator-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await mkdir(path.join(dir, 'files'));
  await writeFile(
    path.join(dir, 'ferry.yaml'),
    `host: 127.0.0.1\nport: 0\nstorage:\n  type: local\n  root: files\nusers:\n  file: users.yaml\nlimits:\n  loginFailureDelayMs: 50\nlogging:\n  level: info\n${config}`,
  );
  return dir;
}

async function waitFor(read: () => string, pattern: RegExp, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(read())) {
    if (Date.now() > deadline) throw new Error(`no ${pattern} in: ${read()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** SIGHUP, then wait for the reload's log line (the count-th one). */
async function reload(ferry: RunningCli, count: number): Promise<void> {
  ferry.child.kill('SIGHUP');
  await waitFor(ferry.output, new RegExp(`(configuration reloaded|reload failed)[\\s\\S]*`.repeat(count)));
}

test('check-config: exit 0 and a summary when valid, exit 1 and every problem when not', async (t) => {
  const dir = await operatorDir(t);
  await writeFile(path.join(dir, 'users.yaml'), 'users: {}\n');
  const valid = await runCliToEnd(['check-config', 'ferry.yaml'], dir);
  assert.equal(valid.code, 0, valid.stderr);
  assert.match(valid.stdout, /ferry\.yaml is valid: 127\.0\.0\.1:0, no FTPS, storage .*files, 0 users\./);

  await writeFile(path.join(dir, 'bad.yaml'), 'port: 70000\npasive_ports: 1-2\n');
  const bad = await runCliToEnd(['check-config', 'bad.yaml'], dir);
  assert.equal(bad.code, 1);
  assert.equal(bad.stderr, 'ferry: bad.yaml:1: port: 70000 is not a whole number from 0 to 65535\nferry: bad.yaml:2: pasive_ports: unknown setting; did you mean "passivePorts"?\n');

  const missing = await runCliToEnd(['check-config'], dir);
  assert.equal(missing.code, 2, 'a usage error');
  assert.match(missing.stderr, /missing required argument 'file'\n\(ferry --help, or ferry COMMAND --help, lists the options\)\n$/);

  await writeFile(path.join(dir, 'noroot.yaml'), 'storage:\n  root: /nonexistent/ftp\n');
  const noRoot = await runCliToEnd(['check-config', 'noroot.yaml'], dir);
  assert.equal(noRoot.code, 1, 'what serve would refuse, check-config refuses');
  assert.match(noRoot.stderr, /storage\.root: \/nonexistent\/ftp: no such folder/);
  // A certificate and a key that do not belong together: check-config loads them as serve would.
  const one = createSelfSignedCertificate({ hosts: ['a'] });
  const two = createSelfSignedCertificate({ hosts: ['b'] });
  await writeFile(path.join(dir, 'cert.pem'), one.cert);
  await writeFile(path.join(dir, 'key.pem'), two.key);
  await writeFile(path.join(dir, 'tls.yaml'), 'storage:\n  root: files\ntls:\n  cert: cert.pem\n  key: key.pem\n');
  const mismatch = await runCliToEnd(['check-config', 'tls.yaml'], dir);
  assert.equal(mismatch.code, 1);
  assert.match(mismatch.stderr, /tls\.cert\/tls\.key: cannot be used/);

  const broken = await runCliToEnd(['serve', '--config', 'bad.yaml'], dir);
  assert.equal(broken.code, 1);
  assert.match(broken.stderr, /bad\.yaml:1: port/);

  // What serve finds when it opens things (log files, a webhook's secret file), check-config finds too; and a setting that would do nothing is refused.
  const refused: Array<[string, RegExp]> = [
    ['logging:\n  file: /nonexistent/dir/ferry.log\n', /logging\.file: cannot open \/nonexistent\/dir\/ferry\.log for appending \(ENOENT\): create its folder/],
    ['logging:\n  transferLog: /tmp\n', /logging\.transferLog: cannot open \/tmp for appending \(EISDIR\): it is a folder/],
    ['hooks:\n  webhooks:\n    - events: [file-received]\n      url: http://127.0.0.1:8080/x\n      secretFile: /nonexistent.secret\n', /hooks\.webhooks\.0\.secretFile: cannot read \/nonexistent\.secret \(ENOENT\)/],
    ['hooks:\n  beforeUpload:\n    secret: s\n', /hooks\.beforeUpload\.url: .*without url the hook is off/],
    ['hooks:\n  webhooks:\n    - events: [file-received]\n      url: http://127.0.0.1:6000/x\n', /hooks\.webhooks\.0\.url: .*not 6000/],
  ];
  for (const [yaml, message] of refused) {
    await writeFile(path.join(dir, 'opened.yaml'), `storage:\n  root: files\n${yaml}`);
    const result = await runCliToEnd(['check-config', 'opened.yaml'], dir);
    assert.equal(result.code, 1, `${yaml}: ${result.stdout}`);
    assert.match(result.stderr, message);
  }
});

test('hash-password prints a hash that verifies, read from stdin; a password over two lines is refused', async (t) => {
  const dir = await operatorDir(t);
  const result = await runCliToEnd(['hash-password', '--password-stdin'], dir, 'correct horse\n');
  assert.equal(result.code, 0, result.stderr);
  assert.ok(await verifyPassword('correct horse', result.stdout.trim()));
  const twoLines = await runCliToEnd(['user', 'add', 'x', '--file', 'users.yaml'], dir, 'pw\npw\n');
  assert.equal(twoLines.code, 1);
  assert.match(twoLines.stderr, /line break in it, which no FTP client can send/);
});

test('ferry user: mistakes are refused with a reason, and nothing is written', async (t) => {
  const dir = await operatorDir(t);
  const user = (args: string[], input = '') => runCliToEnd(['user', ...args, '--file', 'users.yaml'], dir, input);
  const listMissing = await user(['list']);
  assert.equal(listMissing.code, 1, 'a mistyped users file is not an empty one');
  assert.match(listMissing.stderr, /cannot read the users file \(ENOENT\)/);
  assert.equal((await user(['add', 'bob', '--password-stdin'], 'pw\n')).code, 0);
  const nothing = await user(['set', 'bob']);
  assert.equal(nothing.code, 2);
  assert.match(nothing.stderr, /nothing to change/);
  const both = await user(['set', 'bob', '--enable', '--disable']);
  assert.equal(both.code, 2);
  assert.match(both.stderr, /cannot be used with/);
  const badPermissions = await user(['set', 'bob', '--permissions', 'rwx']);
  assert.equal(badPermissions.code, 1);
  assert.match(badPermissions.stderr, /permissions: "rwx" is not letters from/);
  assert.equal((await user(['list'])).stdout, 'bob\t/{username}\tread\n');
});

test('user add → login → passwd → old password refused → del → refused, reloaded by SIGHUP; anonymous is off', async (t) => {
  const dir = await operatorDir(t);
  const user = (args: string[], input = '') => runCliToEnd(['user', ...args, '--config', 'ferry.yaml'], dir, input);

  const added = await user(['add', 'cam', '--permissions', 'write', '--allow-from', '127.0.0.1', '--password-stdin'], 'first\n');
  assert.equal(added.code, 0, added.stderr);
  assert.match(added.stdout, /Added cam \(home \/\{username\}, permissions write = elrawm\)/);
  assert.equal((await stat(path.join(dir, 'users.yaml'))).mode & 0o777, 0o600);
  assert.equal((await user(['add', 'cam', '--password-stdin'], 'x\n')).code, 1, 'adding twice is refused');

  const ferry = await startCli(t, ['serve', '--config', 'ferry.yaml'], dir);
  assert.match(ferry.output(), /to the users in .*users\.yaml as configured in .*ferry\.yaml/);
  assert.equal(await loginCode(ferry.port, 'anonymous', 'x'), 530, 'anonymous is off by default');
  assert.equal(await loginCode(ferry.port, 'cam', 'first'), 230);

  assert.equal((await user(['passwd', 'cam', '--password-stdin'], 'second\n')).code, 0);
  await reload(ferry, 1);
  assert.equal(await loginCode(ferry.port, 'cam', 'first'), 530);
  assert.equal(await loginCode(ferry.port, 'cam', 'second'), 230);

  const listed = await user(['list']);
  assert.equal(listed.stdout, 'cam\t/{username}\twrite\n');
  const shown = await user(['show', 'cam']);
  assert.doesNotMatch(shown.stdout, /\$scrypt\$/, 'show never prints the hash');
  assert.match(shown.stdout, /"password": "scrypt hash"/);

  assert.equal((await user(['set', 'cam', '--disable'])).code, 0);
  await reload(ferry, 2);
  assert.equal(await loginCode(ferry.port, 'cam', 'second'), 530, 'disabled');
  assert.equal((await user(['set', 'cam', '--enable'])).code, 0);
  await reload(ferry, 3);
  assert.equal(await loginCode(ferry.port, 'cam', 'second'), 230);

  assert.equal((await user(['del', 'cam'])).code, 0);
  assert.equal((await user(['del', 'cam'])).code, 1, 'deleting a missing user says so');
  await reload(ferry, 4);
  assert.equal(await loginCode(ferry.port, 'cam', 'second'), 530);
});

test('reload keeps a running transfer going, and a broken new configuration leaves the old one in force', async (t) => {
  const dir = await operatorDir(t, 'banner: before\n');
  await runCliToEnd(['user', 'add', 'alice', '--file', 'users.yaml', '--home', '/', '--password-stdin'], dir, 'pw\n');
  const big = Buffer.alloc(32 * 1024 * 1024, 7);
  await writeFile(path.join(dir, 'files', 'big.bin'), big);
  const ferry = await startCli(t, ['serve', '--config', 'ferry.yaml'], dir);

  const client = new Client(10_000);
  t.after(async () => client.close());
  await client.access({ host: '127.0.0.1', port: ferry.port, user: 'alice', password: 'pw' });
  let received = 0;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const sink = new Writable({
    highWaterMark: 1024,
    write(chunk: Buffer, _enc, done) {
      received += chunk.length;
      // Hold the transfer after the first chunk until the reload is done.
      if (received === chunk.length) void gate.then(() => done());
      else done();
    },
  });
  const download = client.downloadTo(sink, 'big.bin');

  const config = path.join(dir, 'ferry.yaml');
  const good = await readFile(config, 'utf8');
  await writeFile(config, good.replace('banner: before', 'banner: after'));
  await runCliToEnd(['user', 'passwd', 'alice', '--file', 'users.yaml', '--password-stdin'], dir, 'pw2\n');
  await reload(ferry, 1);
  assert.match(ferry.output(), /configuration reloaded/);
  assert.ok(received < big.length, 'the transfer was still running during the reload');
  release();
  await download;
  assert.equal(received, big.length);

  const greeting = await RawClient.connect(ferry.port);
  t.after(async () => greeting.close());
  assert.match((await greeting.expect(220)).text, /after/);
  greeting.close();

  await writeFile(config, good + 'workers: banana\n');
  await reload(ferry, 2);
  assert.match(ferry.output(), /reload failed; the previous configuration stays in force/);
  assert.match(ferry.output(), /ferry\.yaml:\d+: workers: \\"banana\\" is not a number of processes/);
  assert.equal(await loginCode(ferry.port, 'alice', 'pw2'), 230, 'still serving with the configuration in force');
});

test('runAs: started as root, ferry binds, serves as the configured user, and still reloads the users file', { skip: process.getuid?.() !== 0 && 'needs root' }, async (t) => {
  const dir = await operatorDir(t, 'runAs:\n  user: nobody\n');
  await chmod(dir, 0o755);
  await chmod(path.join(dir, 'files'), 0o777);
  const nobody = { uid: Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' })), gid: Number(execFileSync('id', ['-g', 'nobody'], { encoding: 'utf8' })) };
  // Through --config, `ferry user` gives a new users file to the runAs user, still 0600.
  await runCliToEnd(['user', 'add', 'alice', '--config', 'ferry.yaml', '--home', '/', '--permissions', 'full', '--password-stdin'], dir, 'pw\n');
  const usersFile = await stat(path.join(dir, 'users.yaml'));
  assert.deepEqual([usersFile.uid, usersFile.mode & 0o777], [nobody.uid, 0o600]);
  const ferry = await startCli(t, ['serve', '--config', 'ferry.yaml'], dir);
  const status = await readFile(`/proc/${ferry.child.pid}/status`, 'utf8');
  assert.match(status, new RegExp(`^Uid:\\s+${nobody.uid}\\s+${nobody.uid}\\s+${nobody.uid}\\s+${nobody.uid}$`, 'm'));
  assert.match(status, new RegExp(`^Gid:\\s+${nobody.gid}\\s+${nobody.gid}\\s+${nobody.gid}\\s+${nobody.gid}$`, 'm'));
  assert.doesNotMatch(status, /^Groups:.*\b0\b/m, 'no root group left');
  const client = new Client(5000);
  t.after(async () => client.close());
  await client.access({ host: '127.0.0.1', port: ferry.port, user: 'alice', password: 'pw' });
  await client.uploadFrom(Readable.from([Buffer.from('x')]), 'owned.txt');
  assert.equal((await stat(path.join(dir, 'files', 'owned.txt'))).uid, nobody.uid);
  client.close();

  // Edited by root, the users file keeps its owner, so the de-privileged server can read it on reload.
  await runCliToEnd(['user', 'passwd', 'alice', '--config', 'ferry.yaml', '--password-stdin'], dir, 'pw2\n');
  assert.equal((await stat(path.join(dir, 'users.yaml'))).uid, nobody.uid);
  await reload(ferry, 1);
  assert.match(ferry.output(), /configuration reloaded/);
  assert.equal(await loginCode(ferry.port, 'alice', 'pw2'), 230);
});
