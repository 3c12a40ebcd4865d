/**
 * The `ferry` command as a user runs it: a real child process, real clients.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { Client } from 'basic-ftp';
import { exitOf, runCli, startCli, type RunningCli } from '../helpers/cli.js';

/** Start the CLI with a free port on 127.0.0.1; a leading `serve` stays first, its options follow it. */
function start(t: { after(fn: () => Promise<void>): void }, args: string[], cwd: string): Promise<RunningCli> {
  const serveFirst = args[0] === 'serve';
  const rest = serveFirst ? args.slice(1) : args;
  return startCli(t, [...(serveFirst ? ['serve'] : []), '--port', '0', '--host', '127.0.0.1', '--log-level', 'warn', ...rest], cwd);
}

async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-cli-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('with no arguments, ferry serves the current folder read-only to anonymous users', async (t) => {
  const dir = await tempDir(t);
  await writeFile(path.join(dir, 'shared.txt'), 'shared content');
  const ferry = await start(t, [], dir);
  assert.match(ferry.output(), new RegExp(`serving ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(read-only\\) to anonymous users`));
  assert.match(ferry.output(), /Press Ctrl-C to stop/);

  const client = new Client(5000);
  t.after(async () => client.close());
  await client.access({ host: '127.0.0.1', port: ferry.port, user: 'anonymous', password: 'guest@example.com' });
  assert.deepEqual((await client.list()).map((e) => e.name), ['shared.txt']);
  await assert.rejects(client.uploadFrom(Readable.from([Buffer.from('x')]), 'new.txt'), /550/);
  client.close();

  ferry.child.kill('SIGTERM');
  assert.equal(await exitOf(ferry.child), 0);
  assert.match(ferry.output(), /SIGTERM: stopping/);
});

test('--user replaces anonymous access and --write grants uploads (as `ferry serve` too)', async (t) => {
  const dir = await tempDir(t);
  const ferry = await start(t, ['serve', '--root', dir, '--user', 'bob:pa:ss', '--write'], os.tmpdir());
  assert.match(ferry.output(), new RegExp(`serving ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(read-write\\) to user bob`));
  const anonymous = new Client(5000);
  t.after(async () => anonymous.close());
  await assert.rejects(anonymous.access({ host: '127.0.0.1', port: ferry.port, user: 'anonymous', password: 'x' }), /530/);
  const bob = new Client(5000);
  t.after(async () => bob.close());
  await bob.access({ host: '127.0.0.1', port: ferry.port, user: 'bob', password: 'pa:ss' });
  await bob.uploadFrom(Readable.from([Buffer.from('from bob')]), 'up.txt');
  assert.equal(await readFile(path.join(dir, 'up.txt'), 'utf8'), 'from bob');
});

test('--masquerade is announced in PASV replies and --passive-ports bounds the port', async (t) => {
  const dir = await tempDir(t);
  const ferry = await start(t, ['--root', dir, '--masquerade', '203.0.113.9', '--passive-ports', '40000-40100'], dir);
  const socket = net.connect({ host: '127.0.0.1', port: ferry.port });
  t.after(async () => void socket.destroy());
  socket.setEncoding('utf8');
  let got = '';
  socket.on('data', (d) => (got += d));
  const waitFor = async (re: RegExp) => {
    const deadline = Date.now() + 5000;
    while (!re.test(got)) {
      if (Date.now() > deadline) throw new Error(`no ${re} in ${got}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  await waitFor(/^220 /m);
  socket.write('USER anonymous\r\nPASS x\r\nPASV\r\n');
  await waitFor(/^227 /m);
  const m = /227 .*\((203,0,113,9),(\d+),(\d+)\)/.exec(got);
  assert.ok(m, got);
  const port = Number(m[2]) * 256 + Number(m[3]);
  assert.ok(port >= 40000 && port <= 40100, `port ${port}`);
});

test('bad flags and folders end with a message that says what to do, and exit code 2', async (t) => {
  const dir = await tempDir(t);
  const cases: Array<[string[], RegExp]> = [
    [['--passive-ports', '70000-70010'], /70000-70010.*not a port range/],
    [['--port', 'abc'], /port number/],
    [['--root', path.join(dir, 'missing')], /no such folder/],
    [['--user', 'nopassword'], /NAME:PASSWORD/],
    [['--user', 'me:'], /password for me is empty/],
    [['--user', 'a:1', '--user', 'a:2'], /user a is given twice/],
    [['--masquerade', '203.0.113.300'], /203\.0\.113\.300.*not an IPv4 address, a host name, or connected/],
    [['--port', '2122', '--passive-ports', '2120-2130'], /includes the control port 2122/],
  ];
  for (const [args, message] of cases) {
    const child = runCli(args, dir);
    let err = '';
    child.stderr!.on('data', (d) => (err += d));
    assert.equal(await exitOf(child), 2, `${args.join(' ')}: ${err}`);
    assert.match(err, message, args.join(' '));
    assert.doesNotMatch(err, /\n\s+at /, 'no stack trace for a usage error');
  }
});

test('a port already in use is reported with a way out', async (t) => {
  const blocker = net.createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  t.after(async () => void blocker.close());
  const port = (blocker.address() as net.AddressInfo).port;
  const child = runCli(['--port', String(port), '--host', '127.0.0.1'], os.tmpdir());
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  assert.equal(await exitOf(child), 1);
  assert.match(err, new RegExp(`port ${port} on 127.0.0.1 is already in use.*--port`));
});

test('an address that is not on this machine is one clear line and exit code 1', async () => {
  const child = runCli(['--host', '192.0.2.254', '--port', '0'], os.tmpdir());
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  assert.equal(await exitOf(child), 1);
  assert.match(err, /cannot listen on 192\.0\.2\.254: no such address on this machine/);
  assert.doesNotMatch(err, /\n\s+at /);
});

test('--help documents the zero-config defaults', async () => {
  const child = runCli(['--help'], os.tmpdir());
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  assert.equal(await exitOf(child), 0);
  assert.match(out, /default: 2121/);
  assert.match(out, /--passive-ports/);
  assert.match(out, /--masquerade/);
});
