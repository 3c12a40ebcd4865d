/**
 * Ferry against a real client: lftp over loopback. lftp is not part of a
 * stock image: .ci/run installs it. When it is missing these tests fail
 * (they do not skip), so CI can never pass without having run them.
 *
 * lftp runs with `-d`: its debug trace ("---> COMMAND" lines) goes to stderr
 * and the command output to stdout, so tests check both.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { PASSWORD, USER, startServer, type TestServer } from '../helpers/server.js';

interface LftpResult {
  code: number;
  stdout: string;
  stderr: string;
  /** The FTP command lines lftp sent, from its debug trace. */
  sent: string[];
}

/** Settings for every run: no TLS, fail fast and never prompt or retry for long. */
const SETTINGS = [
  'set ftp:ssl-allow no',
  'set cmd:fail-exit yes',
  'set cmd:interactive no',
  'set net:max-retries 1',
  'set net:timeout 5',
  'set net:reconnect-interval-base 1',
  'set xfer:clobber on',
  'set cache:enable no',
].join('; ');

function runLftp(args: string[], options: { cwd: string; home: string }, timeoutMs = 15_000): Promise<LftpResult> {
  const env = { ...process.env, HOME: options.home, LC_ALL: 'C.UTF-8', LANG: 'C.UTF-8' };
  return new Promise((resolve, reject) => {
    execFile('lftp', args, { cwd: options.cwd, env, timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') {
        const hint = (err as NodeJS.ErrnoException).code === 'ENOENT' ? ' lftp is not installed: run .ci/run (it installs lftp).' : '';
        reject(new Error(`lftp did not run to completion (${err.message}).${hint}\n${stderr}`));
        return;
      }
      const sent = stderr
        .split('\n')
        .filter((line) => line.startsWith('---> '))
        .map((line) => line.slice(5).replace(/\r$/, ''));
      resolve({ code: err ? (err.code as number) : 0, stdout, stderr, sent });
    });
  });
}

/** Every file under `dir` (relative paths, "/" for directories) with its bytes. */
async function snapshot(dir: string, prefix = ''): Promise<Map<string, Buffer | 'dir'>> {
  const result = new Map<string, Buffer | 'dir'>();
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const rel = prefix + entry.name;
    if (entry.isDirectory()) {
      result.set(`${rel}/`, 'dir');
      for (const [k, v] of await snapshot(path.join(dir, entry.name), `${rel}/`)) result.set(k, v);
    } else {
      result.set(rel, await readFile(path.join(dir, entry.name)));
    }
  }
  return result;
}

function assertSameTree(actual: Map<string, Buffer | 'dir'>, expected: Map<string, Buffer | 'dir'>): void {
  assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort());
  for (const [name, value] of expected) {
    const got = actual.get(name);
    if (value === 'dir') assert.equal(got, 'dir', name);
    else assert.ok(Buffer.isBuffer(got) && got.equals(value), `${name}: bytes differ`);
  }
}

/** A modification time clearly not "now", to see it carried across. */
const OLD_TIME = new Date('2001-02-03T04:05:06Z');

/** A small tree with an empty file, an empty directory, a space and non-ASCII in names. */
async function makeTree(dir: string): Promise<void> {
  await mkdir(path.join(dir, 'sub', 'deeper'), { recursive: true });
  await mkdir(path.join(dir, 'empty dir'));
  await writeFile(path.join(dir, 'a.bin'), randomBytes(1024 * 1024 + 3));
  await writeFile(path.join(dir, 'zero.txt'), '');
  await writeFile(path.join(dir, 'sub', 'b.bin'), randomBytes(70_000));
  await writeFile(path.join(dir, 'sub', 'deeper', 'naïve 日本.txt'), 'déjà vu\n');
}

describe('lftp against Ferry', () => {
  let srv: TestServer;
  let work: string;
  let home: string;
  let counter = 0;
  const cleanups: Array<() => unknown> = [];

  /** A fresh local folder for one test; lftp runs with it as its local cwd. */
  async function localDir(): Promise<string> {
    const dir = path.join(work, `case-${++counter}`);
    await mkdir(dir);
    return dir;
  }

  /** Log in as alice, run the commands, quit. */
  function lftp(commands: string, cwd: string, extraSettings = ''): Promise<LftpResult> {
    const script = `${SETTINGS}; ${extraSettings ? `${extraSettings}; ` : ''}${commands}; bye`;
    return runLftp(['-d', '-u', `${USER},${PASSWORD}`, '-p', String(srv.port), '-e', script, '127.0.0.1'], { cwd, home });
  }

  function ok(result: LftpResult): LftpResult {
    assert.equal(result.code, 0, `lftp exited ${result.code}:\n${result.stdout}\n${result.stderr.split('\n').slice(-40).join('\n')}`);
    return result;
  }

  before(async () => {
    // Fail loudly (not skip) when lftp is missing.
    await runLftp(['--version'], { cwd: os.tmpdir(), home: os.tmpdir() }).catch((err: Error) => {
      throw new Error(`lftp is required for these tests; run .ci/run to install it. (${err.message.split('\n')[0]})`);
    });
    srv = await startServer({ after: (fn) => void cleanups.push(() => fn?.()) });
    work = await mkdtemp(path.join(os.tmpdir(), 'ferry-lftp-'));
    home = path.join(work, 'home');
    await mkdir(home);
  });
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('lftp ls shows LIST lines whose names and sizes match the files', async () => {
    await mkdir(path.join(srv.root, 'ls', 'folder'), { recursive: true });
    await writeFile(path.join(srv.root, 'ls', 'small.txt'), 'twelve bytes');
    await writeFile(path.join(srv.root, 'ls', 'big file.bin'), randomBytes(123_456));
    const r = ok(await lftp('cd ls; ls', await localDir()));
    assert.ok(r.sent.includes('LIST'), r.sent.join(' | '));
    const lines = r.stdout.split('\n').filter(Boolean);
    assert.equal(lines.length, 3, r.stdout);
    const entries = new Map(
      lines.map((line) => {
        const m = /^([-d])[-rwx]{9} +\d+ +\S+ +\S+ +(\d+) +[A-Z][a-z]{2} +\d{1,2} +(?:\d{2}:\d{2}|\d{4}) (.+)$/.exec(line);
        assert.ok(m, `not an ls -l line: ${JSON.stringify(line)}`);
        return [m[3]!, { type: m[1]!, size: Number(m[2]) }];
      }),
    );
    assert.deepEqual(entries.get('small.txt'), { type: '-', size: 12 });
    assert.deepEqual(entries.get('big file.bin'), { type: '-', size: 123_456 });
    assert.equal(entries.get('folder')?.type, 'd');
  });

  test('lftp cls -l shows sizes and types parsed from MLSD', async () => {
    await mkdir(path.join(srv.root, 'cls', 'inner'), { recursive: true });
    await writeFile(path.join(srv.root, 'cls', 'one.bin'), randomBytes(4321));
    await writeFile(path.join(srv.root, 'cls', 'two.txt'), 'x');
    const r = ok(await lftp('cls -l cls', await localDir()));
    assert.ok(r.sent.includes('MLSD'), r.sent.join(' | '));
    const lines = r.stdout.split('\n').filter(Boolean);
    assert.equal(lines.length, 3, r.stdout);
    const entries = new Map(
      lines.map((line) => {
        // Directories have no size fact in MLSD, so lftp leaves the column empty.
        const m = /^([-d])[-rwx]{9} +(\d+)? +\S.* (cls\/\S.*)$/.exec(line);
        assert.ok(m, `not a cls -l line: ${JSON.stringify(line)}`);
        return [m[3]!, { type: m[1]!, size: m[2] === undefined ? null : Number(m[2]) }];
      }),
    );
    assert.deepEqual(entries.get('cls/one.bin'), { type: '-', size: 4321 });
    assert.deepEqual(entries.get('cls/two.txt'), { type: '-', size: 1 });
    assert.deepEqual(entries.get('cls/inner/'), { type: 'd', size: null });
  });

  test('lftp mirror downloads a directory tree byte-exact, empty file and empty directory included', async () => {
    await makeTree(path.join(srv.root, 'tree'));
    await utimes(path.join(srv.root, 'tree', 'a.bin'), OLD_TIME, OLD_TIME);
    const dir = await localDir();
    ok(await lftp('mirror tree tree-copy', dir));
    assertSameTree(await snapshot(path.join(dir, 'tree-copy')), await snapshot(path.join(srv.root, 'tree')));
    // lftp copies the modification time from the MLSD modify fact.
    assert.equal((await stat(path.join(dir, 'tree-copy', 'a.bin'))).mtime.toISOString(), OLD_TIME.toISOString());
  });

  test('lftp mirror -R uploads a directory tree byte-exact', async () => {
    const dir = await localDir();
    await makeTree(path.join(dir, 'outgoing'));
    await utimes(path.join(dir, 'outgoing', 'a.bin'), OLD_TIME, OLD_TIME);
    const r = ok(await lftp('mirror -R outgoing uploaded', dir));
    for (const mkd of ['MKD uploaded', 'MKD sub', 'MKD deeper', 'MKD empty dir']) assert.ok(r.sent.includes(mkd), `${mkd}: ${r.sent.join(' | ')}`);
    assertSameTree(await snapshot(path.join(srv.root, 'uploaded')), await snapshot(path.join(dir, 'outgoing')));
    // lftp sets the remote modification time with MFMT after each upload.
    assert.ok(r.sent.includes('MFMT 20010203040506 a.bin'), r.sent.join(' | '));
    assert.equal((await stat(path.join(srv.root, 'uploaded', 'a.bin'))).mtime.toISOString(), OLD_TIME.toISOString());
  });

  test('lftp mget fetches exactly the files matching a glob', async () => {
    await mkdir(path.join(srv.root, 'many'));
    const files: Record<string, Buffer> = {};
    for (const name of ['1.dat', '2.dat', 'three.dat']) {
      files[name] = randomBytes(20_000);
      await writeFile(path.join(srv.root, 'many', name), files[name]!);
    }
    await writeFile(path.join(srv.root, 'many', 'other.txt'), 'not matched');
    const dir = await localDir();
    ok(await lftp('cd many; mget *.dat', dir));
    assert.deepEqual((await readdir(dir)).sort(), ['1.dat', '2.dat', 'three.dat']);
    for (const [name, data] of Object.entries(files)) assert.deepEqual(await readFile(path.join(dir, name)), data);
  });

  test('lftp mrm deletes exactly the files matching a glob', async () => {
    await mkdir(path.join(srv.root, 'trash'));
    for (const name of ['a.tmp', 'b.tmp', 'keep.txt', 'c.tmp.keep']) await writeFile(path.join(srv.root, 'trash', name), name);
    const r = ok(await lftp('mrm trash/*.tmp', await localDir()));
    assert.deepEqual(r.sent.filter((c) => c.startsWith('DELE ')).sort(), ['DELE trash/a.tmp', 'DELE trash/b.tmp']);
    assert.deepEqual((await readdir(path.join(srv.root, 'trash'))).sort(), ['c.tmp.keep', 'keep.txt']);
  });

  test('lftp mkdir -p, mv and rm -r create, rename and remove directory trees', async () => {
    await writeFile(path.join(srv.root, 'to-move.txt'), 'moving');
    const dir = await localDir();
    const r = ok(await lftp('mkdir -p made/x/y; mv to-move.txt made/x/moved.txt; mv made/x/y made/x/renamed; cls -1 made/x', dir));
    assert.ok(r.sent.includes('MKD made/x/y'), r.sent.join(' | '));
    assert.ok(r.sent.includes('RNFR to-move.txt') && r.sent.includes('RNTO made/x/moved.txt'), r.sent.join(' | '));
    assert.deepEqual(r.stdout.split('\n').filter(Boolean).sort(), ['made/x/moved.txt', 'made/x/renamed/']);
    assert.equal(await readFile(path.join(srv.root, 'made', 'x', 'moved.txt'), 'utf8'), 'moving');
    assert.ok((await stat(path.join(srv.root, 'made', 'x', 'renamed'))).isDirectory());
    await assert.rejects(stat(path.join(srv.root, 'to-move.txt')), { code: 'ENOENT' });

    const removed = ok(await lftp('rm -r made', dir));
    // Depth first: the files, then each directory from the bottom up.
    assert.deepEqual(
      removed.sent.filter((c) => /^(DELE|RMD) /.test(c)),
      ['DELE moved.txt', 'RMD renamed', 'RMD x', 'RMD made'],
    );
    await assert.rejects(stat(path.join(srv.root, 'made')), { code: 'ENOENT' });
  });

  test('lftp get -c resumes a partial download with REST', async () => {
    const data = randomBytes(800_000);
    await writeFile(path.join(srv.root, 'resume-get.bin'), data);
    const dir = await localDir();
    await writeFile(path.join(dir, 'resume-get.bin'), data.subarray(0, 250_000));
    const r = ok(await lftp('get -c resume-get.bin', dir));
    assert.ok(r.sent.includes('REST 250000'), r.sent.join(' | '));
    assert.deepEqual(await readFile(path.join(dir, 'resume-get.bin')), data);
  });

  test('lftp put -c resumes a partial upload with SIZE then REST+STOR', async () => {
    const data = randomBytes(600_001);
    await writeFile(path.join(srv.root, 'resume-put.bin'), data.subarray(0, 100_000));
    const dir = await localDir();
    await writeFile(path.join(dir, 'resume-put.bin'), data);
    const r = ok(await lftp('put -c resume-put.bin', dir));
    assert.ok(r.sent.includes('SIZE resume-put.bin'), r.sent.join(' | '));
    const rest = r.sent.indexOf('REST 100000');
    assert.ok(rest !== -1 && r.sent[rest + 1] === 'STOR resume-put.bin', r.sent.join(' | '));
    assert.deepEqual(await readFile(path.join(srv.root, 'resume-put.bin')), data);
  });

  test('lftp puts and gets a file whose name has spaces and non-ASCII', async () => {
    const name = 'naïve 日本 file.txt';
    const data = Buffer.from('spaces and ünïcödé\n');
    const dir = await localDir();
    await writeFile(path.join(dir, name), data);
    const r = ok(await lftp(`put "${name}" -o "remote ${name}"; cls -1; get "remote ${name}" -o "back ${name}"`, dir));
    assert.ok(r.sent.includes(`STOR remote ${name}`), r.sent.join(' | '));
    assert.ok(r.stdout.split('\n').includes(`remote ${name}`), r.stdout);
    assert.deepEqual(await readFile(path.join(srv.root, `remote ${name}`)), data);
    assert.deepEqual(await readFile(path.join(dir, `back ${name}`)), data);
  });

  test('lftp transfers in active mode with PORT when passive mode is off', async () => {
    const data = randomBytes(400_000);
    const dir = await localDir();
    await writeFile(path.join(dir, 'active.bin'), data);
    const r = ok(await lftp('put active.bin -o active-up.bin; get active-up.bin -o active-down.bin', dir, 'set ftp:passive-mode off'));
    const ports = r.sent.filter((c) => c.startsWith('PORT '));
    assert.ok(ports.length >= 2, r.sent.join(' | '));
    for (const port of ports) assert.match(port, /^PORT 127,0,0,1,\d+,\d+$/);
    assert.ok(!r.sent.includes('PASV') && !r.sent.includes('EPSV'), r.sent.join(' | '));
    assert.deepEqual(await readFile(path.join(srv.root, 'active-up.bin')), data);
    assert.deepEqual(await readFile(path.join(dir, 'active-down.bin')), data);
  });

  test('lftp reports "Login failed: 530" and exits 1 for a wrong password', async () => {
    const r = await runLftp(['-u', `${USER},wrong password`, '-p', String(srv.port), '-e', `${SETTINGS}; ls; bye`, '127.0.0.1'], {
      cwd: await localDir(),
      home,
    });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /Login failed: 530 Login incorrect\./);
    assert.equal(r.stdout, '');
  });
});
