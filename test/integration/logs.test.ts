/**
 * The daemon's logs as an operator gets them: a real `ferry` process, real
 * clients, the log files read back. Standard output pure JSON (the banner on
 * standard error), a log file and an xferlog transfer log written while
 * sessions run, logrotate's rename/reopen cycle with the example from
 * docs/configuration.md (single process and cluster), no password anywhere.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { Client } from 'basic-ftp';
import { hashPassword } from '../../src/auth/password.js';
import { childPids, exitOf, startCli, type RunningCli } from '../helpers/cli.js';
import { parseXferlogFile } from '../helpers/xferlog.js';

const PASSWORD = 'Known-Pa55word-7f3e';
const WRONG = 'Wrong-Guess-91c2';

/** A folder with a users file (alice, PASSWORD, full rights) and a config; `logging` is the config's logging section. */
async function setup(t: TestContext, logging: string, extra = ''): Promise<{ dir: string; root: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-logs-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const root = path.join(dir, 'files');
  await mkdir(path.join(root, 'alice'), { recursive: true });
  await mkdir(path.join(dir, 'logs'));
  await writeFile(path.join(dir, 'users.yaml'), `users:\n  alice:\n    passwordHash: "${await hashPassword(PASSWORD)}"\n    home: /alice\n    permissions: full\n`);
  await writeFile(
    path.join(dir, 'ferry.yaml'),
    `host: 127.0.0.1\nport: 0\nstorage:\n  root: files\nusers:\n  file: users.yaml\nanonymous:\n  enabled: true\n  home: /alice\n${extra}logging:\n${logging}`,
  );
  return { dir, root };
}

async function login(t: TestContext, port: number, user = 'alice', password = PASSWORD): Promise<Client> {
  const client = new Client(10_000);
  t.after(() => client.close());
  await client.access({ host: '127.0.0.1', port, user, password });
  return client;
}

async function stop(ferry: RunningCli): Promise<void> {
  ferry.child.kill('SIGTERM');
  assert.equal(await exitOf(ferry.child), 0);
}

const jsonLines = (text: string) => text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);

/** Every line: ISO time, a level name, and the one set of field names (no `session`, `remote`, `user`). */
function assertLogLines(lines: Array<Record<string, unknown>>): void {
  assert.ok(lines.length > 0);
  for (const line of lines) {
    assert.match(String(line.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, JSON.stringify(line));
    assert.ok(['debug', 'info', 'warn', 'error'].includes(line.level as string), JSON.stringify(line));
    for (const old of ['session', 'remote', 'user', 'dir']) assert.ok(!(old in line), `"${old}" in ${JSON.stringify(line)}`);
    if ('sessionId' in line) assert.equal(typeof line.remoteAddress, 'string', JSON.stringify(line));
  }
}

test('standard output is JSON lines only (ISO time, level names); the banner and the stop message go to standard error', async (t) => {
  const { dir } = await setup(t, '  level: debug\n');
  const ferry = await startCli(t, ['serve', '--config', 'ferry.yaml'], dir);
  const client = await login(t, ferry.port);
  await client.uploadFrom(Readable.from([Buffer.from('hello')]), 'a.txt');
  client.close();
  // The output is set up once: a reload that changes it says it takes a restart, and the lines stay JSON.
  const config = path.join(dir, 'ferry.yaml');
  await writeFile(config, (await readFile(config, 'utf8')).replace('  level: debug\n', '  level: debug\n  format: pretty\n  transferLog: xferlog\n'));
  ferry.child.kill('SIGHUP');
  const deadline = Date.now() + 10_000;
  while (!ferry.stdout().includes('configuration reloaded') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  await stop(ferry);
  const lines = jsonLines(ferry.stdout());
  assert.deepEqual(lines.find((l) => l.msg === 'these settings change only on restart')?.settings, ['logging.format', 'logging.transferLog']);
  assertLogLines(lines);
  assert.ok(lines.some((l) => l.msg === 'file-received' && l.username === 'alice' && l.path === '/a.txt' && l.bytes === 5));
  assert.ok(lines.some((l) => l.msg === 'command' && l.verb === 'PASS'), 'commands are logged at debug');
  assert.match(ferry.stderr(), /^Ferry .* is serving /m);
  assert.match(ferry.stderr(), /Press Ctrl-C to stop\.\n\nSIGTERM: stopping/);
  for (const text of [ferry.stdout(), ferry.stderr()]) assert.ok(!text.includes(PASSWORD), 'no password');
  assert.ok(ferry.stdout().includes(`"verb":"PASS"`), 'PASS itself is logged, without its argument');
});

test('logging.file and logging.transferLog (relative to the config file): one xferlog line per file transfer, parsed back; no password in either', async (t) => {
  const { dir, root } = await setup(t, '  level: debug\n  file: logs/ferry.log\n  transferLog: logs/xferlog\n');
  await writeFile(path.join(root, 'alice', 'big.bin'), Buffer.alloc(64 * 1024 * 1024));
  const ferry = await startCli(t, ['serve', '--config', 'ferry.yaml'], dir);
  await assert.rejects(login(t, ferry.port, 'alice', WRONG), /530/);
  const alice = await login(t, ferry.port);
  await alice.uploadFrom(Readable.from([Buffer.alloc(1000, 1)]), 'cam 1.jpg');
  await alice.send('TYPE A');
  await alice.uploadFrom(Readable.from([Buffer.from('one\ntwo\n')]), 'notes.txt');
  await alice.send('TYPE I');
  await alice.downloadTo(new Writable({ write: (_c, _e, done) => done() }), 'cam 1.jpg');
  await alice.list();
  const anonymous = await login(t, ferry.port, 'anonymous', 'guest@example.com');
  await anonymous.downloadTo(new Writable({ write: (_c, _e, done) => done() }), 'notes.txt');
  // A download cut short: the client goes away after its first chunk.
  const quitter = await login(t, ferry.port);
  let gone = false;
  await quitter
    .downloadTo(
      new Writable({
        write: (_c, _e, done) => {
          if (!gone) quitter.close();
          gone = true;
          done();
        },
      }),
      'big.bin',
    )
    .catch(() => undefined);
  alice.close();
  anonymous.close();
  // The aborted transfer is logged once the server has seen the connections go.
  const deadline = Date.now() + 10_000;
  const xferlog = path.join(dir, 'logs', 'xferlog');
  while ((await readFile(xferlog, 'utf8')).split('\n').length < 6 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  await stop(ferry);

  assert.equal(ferry.stdout(), '', 'with a log file, nothing on standard output');
  assert.match(ferry.stderr(), new RegExp(`Logs: ${dir}/logs/ferry\\.log; transfers \\(xferlog\\) in ${dir}/logs/xferlog \\(kill -USR1 ${ferry.child.pid} reopens them\\)\\.`));
  const lines = jsonLines(await readFile(path.join(dir, 'logs', 'ferry.log'), 'utf8'));
  assertLogLines(lines);
  const entries = parseXferlogFile(await readFile(xferlog, 'utf8'));
  const summary = entries.map((e) => [e.filename, e.bytes, e.transferType, e.direction, e.accessMode, e.username, e.status, e.remoteHost, e.service]);
  assert.deepEqual(summary.slice(0, 4), [
    ['/cam_1.jpg', 1000, 'b', 'i', 'r', 'alice', 'c', '127.0.0.1', 'ftp'],
    ['/notes.txt', 8, 'a', 'i', 'r', 'alice', 'c', '127.0.0.1', 'ftp'],
    ['/cam_1.jpg', 1000, 'b', 'o', 'r', 'alice', 'c', '127.0.0.1', 'ftp'],
    ['/notes.txt', 8, 'b', 'o', 'a', 'anonymous', 'c', '127.0.0.1', 'ftp'],
  ]);
  assert.equal(entries.length, 5, 'the listing is not a file transfer');
  const cut = entries[4]!;
  assert.deepEqual([cut.filename, cut.direction, cut.status], ['/big.bin', 'o', 'i']);
  assert.ok(cut.bytes > 0 && cut.bytes < 64 * 1024 * 1024, String(cut.bytes));
  for (const e of entries) assert.ok(Math.abs(e.time.getTime() - Date.now()) < 120_000, 'local time, now');
  assert.ok(lines.some((l) => l.msg === 'login-failed' && l.username === 'alice'), 'the failed login is logged');
  for (const file of ['ferry.log', 'xferlog']) {
    const text = await readFile(path.join(dir, 'logs', file), 'utf8');
    assert.ok(!text.includes(PASSWORD) && !text.includes(WRONG), `no password in ${file}`);
  }
});

/** The logrotate example of docs/configuration.md, its paths and signal command made those of this test. */
async function logrotateConfig(logs: string, pid: number): Promise<string> {
  const doc = await readFile('docs/configuration.md', 'utf8');
  const example = /```\n(# \/etc\/logrotate\.d\/ferry\n[\s\S]*?)```/.exec(doc);
  assert.ok(example, 'docs/configuration.md has the logrotate example');
  return example[1]!
    .replaceAll('/var/log/ferry', logs)
    // Run as root here, on root's files.
    .replace(/^\s*su .*\n/m, '')
    .replace(/^(\s*create \d+).*$/m, '$1')
    .replace(/^(\s*)systemctl kill .*$/m, `$1kill -USR1 ${pid}`);
}

for (const workers of [1, 2]) {
  test(`logrotate with the documented config while uploads run (${workers === 1 ? 'one process' : 'two workers'}): new lines in new files, none lost`, async (t) => {
    const { dir } = await setup(t, '  level: info\n  file: logs/ferry.log\n  transferLog: logs/xferlog\n', `workers: ${workers}\n`);
    const ferry = await startCli(t, ['serve', '--config', 'ferry.yaml'], dir);
    const logs = path.join(dir, 'logs');
    await writeFile(path.join(dir, 'logrotate.conf'), await logrotateConfig(logs, ferry.child.pid!));

    // Several clients upload in a loop, across the rotation (sessions spread over the workers).
    let stopping = false;
    let uploads = 0;
    const uploader = async (n: number) => {
      const client = await login(t, ferry.port);
      for (let i = 0; !stopping && i < 2000; i++) {
        await client.uploadFrom(Readable.from([Buffer.from(`upload ${n}-${i}`)]), `u${n}-${i}.txt`);
        uploads++;
      }
      client.close();
    };
    const running = Promise.all([0, 1, 2].map(uploader));
    const waitFor = async (count: number) => {
      const deadline = Date.now() + 30_000;
      while (uploads < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.ok(uploads >= count, `only ${uploads} uploads`);
    };
    await waitFor(15);
    const rotated = await new Promise<{ code: number | null; output: string }>((resolve) =>
      execFile('logrotate', ['-f', '-s', path.join(dir, 'logrotate.state'), path.join(dir, 'logrotate.conf')], (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, output: stdout + stderr }),
      ),
    );
    assert.equal(rotated.code, 0, rotated.output);
    const atRotation = uploads;
    await waitFor(atRotation + 15);
    stopping = true;
    await running;
    await stop(ferry);

    assert.deepEqual((await readdir(logs)).sort(), ['ferry.log', 'ferry.log.1', 'xferlog', 'xferlog.1']);
    const read = (name: string) => readFile(path.join(logs, name), 'utf8');
    const before = parseXferlogFile(await read('xferlog.1'));
    const after = parseXferlogFile(await read('xferlog'));
    assert.ok(before.length > 0 && after.length > 0, `${before.length} lines before, ${after.length} after`);
    // Every upload is in exactly one of the two transfer logs and in one of the two logs.
    const names = [...before, ...after].map((e) => e.filename).sort();
    assert.equal(names.length, uploads, 'one transfer line per upload');
    assert.equal(new Set(names).size, uploads, 'none twice');
    const received = [...jsonLines(await read('ferry.log.1')), ...jsonLines(await read('ferry.log'))].filter((l) => l.msg === 'file-received');
    assert.deepEqual(received.map((l) => `/${String(l.path).slice(1)}`).sort(), names);
    assert.ok(jsonLines(await read('ferry.log')).some((l) => l.msg === 'file-received'), 'uploads after the rotation are logged in the new file');
    if (workers === 2) {
      const from = new Set(jsonLines(await read('ferry.log')).filter((l) => l.msg === 'file-received').map((l) => l.worker));
      assert.deepEqual([...from].sort(), [0, 1], 'both workers reopened');
    }
  });
}

/** Every process below `pid` (the shell script(1) starts, ferry, its workers). */
async function descendants(pid: number): Promise<number[]> {
  const found: number[] = [];
  for (let queue = [pid]; queue.length > 0; ) {
    const children = await childPids(queue.shift()!);
    found.push(...children);
    queue.push(...children);
  }
  return found;
}

test('on a terminal (a pseudo-terminal from script(1)), log lines are for people: local time, level, message, key=value', async (t) => {
  const { dir } = await setup(t, '  level: info\n');
  const tsx = import.meta.resolve('tsx');
  const command = [process.execPath, '--import', tsx, path.resolve('src/cli/main.ts'), 'serve', '--config', 'ferry.yaml'].map((a) => `'${a}'`).join(' ');
  const script = execFile('script', ['-q', '-f', '-e', '-c', command, '/dev/null'], { cwd: dir, env: { ...process.env, NO_COLOR: '1' } });
  let out = '';
  script.stdout!.on('data', (d) => (out += d));
  t.after(async () => {
    for (const pid of (await descendants(script.pid!)).reverse()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    script.kill('SIGKILL');
  });
  const deadline = Date.now() + 20_000;
  while (!/127\.0\.0\.1:(\d+)\//.test(out) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const port = Number(/127\.0\.0\.1:(\d+)\//.exec(out)?.[1]);
  assert.ok(port > 0, out);
  const client = await login(t, port);
  client.close();
  while (!/ INFO  login /.test(out) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const line = out.split(/\r?\n/).find((l) => / INFO  login /.test(l));
  assert.match(line ?? out, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} INFO  login  sessionId=\S+ remoteAddress=127\.0\.0\.1 username=alice/);
  assert.ok(!out.includes('{"level"'), 'no JSON on the terminal');
  assert.ok(!out.includes('\x1b['), 'NO_COLOR is honoured');
});
