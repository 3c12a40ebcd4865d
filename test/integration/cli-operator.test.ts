/**
 * Operator fixes found in the trial (issue 12), as an operator meets them:
 * the `ferry` command as a real child process, real clients.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'basic-ftp';
import { childPids, runCliToEnd, startCli } from '../helpers/cli.js';
import type { Cleanup } from '../helpers/server.js';
import { certificateFiles } from '../helpers/tls.js';

async function tempDir(t: Cleanup): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-operator-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await mkdir(path.join(dir, 'files'));
  return dir;
}

async function login(t: Cleanup, port: number, user: string, password: string, host = '127.0.0.1'): Promise<Client> {
  const client = new Client(5000);
  t.after(async () => client.close());
  await client.access({ host, port, user, password });
  return client;
}

test('`ferry help <command> [sub]` prints the help of every command and subcommand', async (t) => {
  const dir = await tempDir(t);
  const commandsOf = (help: string) => [...help.slice(help.indexOf('Commands:')).matchAll(/^ {2}([a-z][a-z-]*)/gm)].map((m) => m[1]!);
  const root = await runCliToEnd(['--help'], dir);
  const commands = commandsOf(root.stdout);
  assert.ok(commands.includes('user') && commands.includes('check-config') && commands.includes('help'), root.stdout);
  for (const command of commands) {
    const help = await runCliToEnd(['help', command], dir);
    assert.equal(help.code, 0, `ferry help ${command}: ${help.stderr}`);
    assert.match(help.stdout, new RegExp(`^Usage: ferry ${command} `), `ferry help ${command}`);
    if (command === 'help') continue;
    for (const sub of commandsOf(help.stdout).filter((c) => c !== 'help')) {
      const subHelp = await runCliToEnd(['help', command, sub], dir);
      assert.equal(subHelp.code, 0, `ferry help ${command} ${sub}: ${subHelp.stderr}`);
      assert.match(subHelp.stdout, new RegExp(`^Usage: ferry ${command} ${sub} `), `ferry help ${command} ${sub}`);
    }
  }
  const unknown = await runCliToEnd(['help', 'user', 'nope'], dir);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /no command "user nope"/);
});

test('a reversed --passive-ports says it is reversed and shows the order', async (t) => {
  const dir = await tempDir(t);
  const run = await runCliToEnd(['--passive-ports', '50100-50000'], dir);
  assert.equal(run.code, 2);
  assert.match(run.stderr, /"50100-50000" is not a port range from low to high \(it is reversed\); write 50000-50100/);
});

test('an empty users file gets the "nobody can log in" warning at check-config and serve', async (t) => {
  const dir = await tempDir(t);
  await writeFile(path.join(dir, 'ferry.yaml'), 'host: 127.0.0.1\nport: 0\nstorage:\n  root: files\nusers:\n  file: users.yaml\n');
  await writeFile(path.join(dir, 'users.yaml'), 'users: {}\n');
  const warning = /nobody can log in: .*users\.yaml has no users; add one with `ferry user add`/;
  const check = await runCliToEnd(['check-config', 'ferry.yaml'], dir);
  assert.equal(check.code, 0, check.stderr);
  assert.match(check.stderr, warning);
  const ferry = await startCli(t, ['--config', 'ferry.yaml'], dir);
  assert.match(ferry.output(), warning);
});

test('ferry user add/set --tls sets the per-user TLS policy: a plain-FTP camera logs in where the server demands TLS', async (t) => {
  const dir = await tempDir(t);
  const { cert, key } = await certificateFiles(t);
  await writeFile(
    path.join(dir, 'ferry.yaml'),
    `host: 127.0.0.1\nport: 0\nstorage:\n  root: files\nusers:\n  file: users.yaml\nlimits:\n  loginFailureDelayMs: 0\ntls:\n  cert: ${cert}\n  key: ${key}\n  policy: data\n`,
  );
  const user = (args: string[], input = '') => runCliToEnd(['user', ...args, '--file', 'users.yaml'], dir, input);
  const added = await user(['add', 'cam', '--tls', 'login', '--password-stdin'], 'cam-pw\n');
  assert.equal(added.code, 0, added.stderr);
  assert.match(added.stdout, /TLS policy login/);
  assert.equal((await user(['add', 'bob', '--password-stdin'], 'bob-pw\n')).code, 0);
  const bad = await user(['set', 'cam', '--tls', 'never']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /Allowed choices are optional, login, data/);
  assert.equal((await user(['set', 'cam', '--tls', 'optional'])).code, 0);
  const shown = JSON.parse((await user(['show', 'cam'])).stdout) as { tls: string | null };
  assert.equal(shown.tls, 'optional');
  assert.equal((JSON.parse((await user(['show', 'bob'])).stdout) as { tls: string | null }).tls, null, "bob follows the server's policy");

  const ferry = await startCli(t, ['--config', 'ferry.yaml'], dir);
  const port = Number(/127\.0\.0\.1:(\d+)\//.exec(ferry.output())![1]);
  const cam = await login(t, port, 'cam', 'cam-pw');
  assert.deepEqual(await cam.list(), []);
  await assert.rejects(login(t, port, 'bob', 'bob-pw'), /5\d\d/, 'without the exception, the server policy (data) refuses plain FTP');
});

test('with --host :: the start banner lists the IPv6 addresses too, in brackets, and a client reaches [::1]', async (t) => {
  const dir = await tempDir(t);
  const ferry = await startCli(t, ['--host', '::', '--port', '0', '--root', 'files', '--log-level', 'warn'], dir);
  const port = Number(/127\.0\.0\.1:(\d+)\//.exec(ferry.output())![1]);
  const urls = [...ferry.output().matchAll(/^ {2}ftp:\/\/(\S+)\/$/gm)].map((m) => m[1]!);
  const ipv6 = Object.values(os.networkInterfaces())
    .flat()
    .filter((i) => i && i.family === 'IPv6' && !i.internal && !i.address.startsWith('fe80'))
    .map((i) => `[${i!.address}]:${port}`);
  const ipv4 = Object.values(os.networkInterfaces())
    .flat()
    .filter((i) => i && i.family === 'IPv4' && !i.internal)
    .map((i) => `${i!.address}:${port}`);
  assert.deepEqual(urls, [`127.0.0.1:${port}`, `[::1]:${port}`, ...ipv4, ...ipv6]);
  const client = await login(t, port, 'anonymous', 'guest', '::1');
  assert.deepEqual(await client.list(), []);
});

/** The command line and environment of each worker of `ferry`, from /proc. */
async function workersOf(pid: number): Promise<Array<{ cmdline: string; environ: string }>> {
  const pids = await childPids(pid);
  return Promise.all(pids.map(async (p) => ({ cmdline: await readFile(`/proc/${p}/cmdline`, 'utf8'), environ: await readFile(`/proc/${p}/environ`, 'utf8') })));
}

test('--user passwords from the command line, FERRY_USER_PASSWORD or standard input never reach the workers’ command lines', async (t) => {
  const dir = await tempDir(t);
  const cluster = ['--port', '0', '--host', '127.0.0.1', '--root', 'files', '--log-level', 'warn', '--workers', '2'];
  const env = { ...process.env, FERRY_USER_PASSWORD: 'bob-from-env' };
  const ferry = await startCli(t, [...cluster, '--user', 'alice:alice-on-argv', '--user', 'bob'], dir, 30_000, env);
  const port = Number(/127\.0\.0\.1:(\d+)\//.exec(ferry.output())![1]);
  await login(t, port, 'alice', 'alice-on-argv');
  await login(t, port, 'bob', 'bob-from-env');
  await assert.rejects(login(t, port, 'bob', 'wrong'), /530/);
  const workers = await workersOf(ferry.child.pid!);
  assert.equal(workers.length, 2);
  for (const { cmdline, environ } of workers) {
    assert.ok(cmdline.includes('--user\0alice\0') && cmdline.includes('--user\0bob\0'), cmdline);
    assert.ok(!cmdline.includes('alice-on-argv') && !cmdline.includes('bob-from-env'), cmdline);
    assert.ok(!environ.includes('bob-from-env'), 'the variable is not inherited');
  }

  const fromStdin = await startCli(t, [...cluster, '--user', 'carol'], dir, 30_000, undefined, 'carol-from-stdin\n');
  const stdinPort = Number(/127\.0\.0\.1:(\d+)\//.exec(fromStdin.output())![1]);
  await login(t, stdinPort, 'carol', 'carol-from-stdin');
  for (const { cmdline } of await workersOf(fromStdin.child.pid!)) assert.ok(!cmdline.includes('carol-from-stdin'), cmdline);
});

test('--user-password-file gives the password of a --user given alone; mistakes are refused with a reason', async (t) => {
  const dir = await tempDir(t);
  await writeFile(path.join(dir, 'pw'), 'dave-from-file\n', { mode: 0o600 });
  const ferry = await startCli(t, ['--port', '0', '--host', '127.0.0.1', '--root', 'files', '--log-level', 'warn', '--user', 'dave', '--user-password-file', 'pw'], dir);
  const port = Number(/127\.0\.0\.1:(\d+)\//.exec(ferry.output())![1]);
  await login(t, port, 'dave', 'dave-from-file');

  const refused: Array<[string[], string, RegExp]> = [
    [['--user', 'a', '--user', 'b'], '', /only one --user may leave out its password \(a, b do\)/],
    [['--user', 'a:x', '--user-password-file', 'pw'], '', /--user-password-file needs a --user NAME given without a password/],
    [['--user', 'a'], '', /standard input: the password is empty/],
    [['--user', 'a'], 'two\nlines\n', /standard input: the password has a line break/],
    [['--user', 'a:'], '', /the password for a is empty/],
  ];
  for (const [args, input, expected] of refused) {
    const run = await runCliToEnd(['--port', '0', '--root', 'files', ...args], dir, input);
    assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
    assert.match(run.stderr, expected);
  }
  const missing = await runCliToEnd(['--port', '0', '--root', 'files', '--user', 'a', '--user-password-file', 'nope'], dir);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /--user-password-file nope: cannot read it \(ENOENT\)/);
  // A configuration file does not mistake the variable for a setting.
  await writeFile(path.join(dir, 'ferry.yaml'), 'port: 0\nstorage:\n  root: files\n');
  const check = await runCliToEnd(['check-config', 'ferry.yaml'], dir, '', { ...process.env, FERRY_USER_PASSWORD: 'x' });
  assert.equal(check.code, 0, check.stderr);
});
