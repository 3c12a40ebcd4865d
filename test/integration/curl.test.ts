/**
 * Ferry against a real client: the curl command-line tool over loopback.
 * curl's `-v` trace ("> COMMAND" lines on stderr) tells which FTP commands it
 * sent, so the tests check both the result and the protocol path taken.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { PASSWORD, USER, startServer, type TestServer, canBindIpv6Loopback } from '../helpers/server.js';

const CURL = '/usr/bin/curl';

interface CurlResult {
  /** curl's exit code (0 on success). */
  code: number;
  stdout: Buffer;
  stderr: string;
  /** The FTP command lines curl sent (from the -v trace), PASS masked by curl itself. */
  sent: string[];
}

/** Run curl with bounded time; never rejects on a non-zero exit (the code is part of the result). */
function curl(args: string[], timeoutMs = 15_000): Promise<CurlResult> {
  const all = ['-sS', '-v', '--max-time', '10', '--connect-timeout', '5', ...args];
  return new Promise((resolve, reject) => {
    execFile(CURL, all, { encoding: 'buffer', timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 << 20 }, (err, stdout, stderrBuf) => {
      const stderr = stderrBuf.toString('utf8');
      if (err && typeof err.code !== 'number') {
        reject(new Error(`curl did not run to completion (${err.message}):\n${stderr}`));
        return;
      }
      const sent = stderr
        .split('\n')
        .filter((line) => line.startsWith('> '))
        .map((line) => line.slice(2).replace(/\r$/, ''));
      resolve({ code: err ? (err.code as number) : 0, stdout, stderr, sent });
    });
  });
}

/** Fail with curl's own words when it did not exit 0. */
function ok(result: CurlResult): CurlResult {
  assert.equal(result.code, 0, `curl exited ${result.code}:\n${result.stderr}`);
  return result;
}

const userinfo = `${encodeURIComponent(USER)}:${encodeURIComponent(PASSWORD)}`;

describe('curl against Ferry', () => {
  let srv: TestServer;
  let local: string;
  let base: string;
  const cleanups: Array<() => unknown> = [];

  before(async () => {
    srv = await startServer({ after: (fn) => void cleanups.push(() => fn?.()) });
    local = await mkdtemp(path.join(os.tmpdir(), 'ferry-curl-'));
    base = `ftp://${userinfo}@127.0.0.1:${srv.port}`;
  });
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
    await rm(local, { recursive: true, force: true });
  });

  test('curl downloads a file byte-exact over EPSV with the password percent-encoded', async () => {
    assert.ok(base.includes('s3cret%20pass'));
    const data = randomBytes(2 * 1024 * 1024 + 17);
    await writeFile(path.join(srv.root, 'download.bin'), data);
    const r = ok(await curl([`${base}/download.bin`]));
    assert.deepEqual(r.stdout, data);
    assert.ok(r.sent.includes('USER alice'), r.sent.join(' | '));
    assert.ok(r.sent.includes('EPSV'));
    assert.ok(r.sent.includes('TYPE I'));
    assert.ok(r.sent.includes('RETR download.bin'));
  });

  test('curl uploads a file with -T, to a named target and into a directory URL', async () => {
    const data = randomBytes(1_500_000);
    await writeFile(path.join(local, 'up load.bin'), data);
    ok(await curl(['-T', path.join(local, 'up load.bin'), `${base}/uploaded.bin`]));
    assert.deepEqual(await readFile(path.join(srv.root, 'uploaded.bin')), data);
    // A URL ending in "/" takes the local file's name.
    await mkdir(path.join(srv.root, 'drop'));
    const r = ok(await curl(['-T', path.join(local, 'up load.bin'), `${base}/drop/`]));
    assert.ok(r.sent.includes('STOR up load.bin'), r.sent.join(' | '));
    assert.deepEqual(await readdir(path.join(srv.root, 'drop')), ['up load.bin']);
    assert.deepEqual(await readFile(path.join(srv.root, 'drop', 'up load.bin')), data);
  });

  test('curl lists a directory with LIST, and names only with -l (NLST)', async () => {
    await mkdir(path.join(srv.root, 'listed', 'child'), { recursive: true });
    await writeFile(path.join(srv.root, 'listed', 'alpha.txt'), 'abc');
    await writeFile(path.join(srv.root, 'listed', 'beta gamma.bin'), randomBytes(4096));

    const list = ok(await curl([`${base}/listed/`]));
    assert.ok(list.sent.includes('LIST'), list.sent.join(' | '));
    // Listings travel in TYPE A with CRLF line ends; curl turns each CRLF into LF on output.
    const text = list.stdout.toString('utf8');
    assert.ok(!text.includes('\r'), JSON.stringify(text));
    const lines = text.split('\n');
    assert.equal(lines.pop(), '', 'the listing ends with a line end');
    assert.equal(lines.length, 3, lines.join('\n'));
    const sizes = new Map(
      lines.map((line) => {
        const m = /^[-d][-rwx]{9} +\d+ +\S+ +\S+ +(\d+) +[A-Z][a-z]{2} +\d{1,2} +(?:\d{2}:\d{2}|\d{4}) (.+)$/.exec(line);
        assert.ok(m, `LIST line not in ls -l form: ${JSON.stringify(line)}`);
        return [m[2]!, Number(m[1])];
      }),
    );
    assert.equal(sizes.get('alpha.txt'), 3);
    assert.equal(sizes.get('beta gamma.bin'), 4096);
    assert.ok(sizes.has('child'));
    assert.ok(lines.find((l) => l.endsWith(' child'))!.startsWith('d'));

    const nlst = ok(await curl(['-l', `${base}/listed/`]));
    assert.ok(nlst.sent.includes('NLST'), nlst.sent.join(' | '));
    assert.deepEqual(nlst.stdout.toString('utf8').split('\n').sort(), ['', 'alpha.txt', 'beta gamma.bin', 'child']);
  });

  test('NLST -1 and LIST -1 (ncftpls sends NLST -1) list the folder; a file named -1 is reached as ./-1 (issue 12)', async () => {
    await mkdir(path.join(srv.root, 'digits'));
    await writeFile(path.join(srv.root, 'digits', 'a.txt'), 'a');
    await writeFile(path.join(srv.root, 'digits', '-1'), 'named like an option');

    const nlst = ok(await curl(['-l', '-X', 'NLST -1', `${base}/digits/`]));
    assert.ok(nlst.sent.includes('NLST -1'), nlst.sent.join(' | '));
    assert.deepEqual(nlst.stdout.toString('utf8').split('\n').sort(), ['', '-1', 'a.txt']);

    const list = ok(await curl(['-X', 'LIST -1a', `${base}/digits/`]));
    assert.ok(list.sent.includes('LIST -1a'), list.sent.join(' | '));
    const names = list.stdout.toString('utf8').trimEnd().split('\n').map((line) => line.split(/ +/).slice(8).join(' '));
    assert.deepEqual(names.sort(), ['-1', 'a.txt']);

    const file = ok(await curl(['-X', 'LIST ./-1', `${base}/digits/`]));
    const lines = file.stdout.toString('utf8').trimEnd().split('\n');
    assert.equal(lines.length, 1, lines.join('\n'));
    assert.match(lines[0]!, /^-[-rwx]{9} .* 20 .*-1$/);
  });

  test('curl transfers in passive mode with PASV when EPSV is disabled', async () => {
    const data = randomBytes(100_000);
    await writeFile(path.join(local, 'pasv.bin'), data);
    const up = ok(await curl(['--disable-epsv', '-T', path.join(local, 'pasv.bin'), `${base}/pasv.bin`]));
    assert.ok(up.sent.includes('PASV') && !up.sent.includes('EPSV'), up.sent.join(' | '));
    const down = ok(await curl(['--disable-epsv', `${base}/pasv.bin`]));
    assert.deepEqual(down.stdout, data);
    assert.deepEqual(await readFile(path.join(srv.root, 'pasv.bin')), data);
  });

  test('curl transfers in active mode with -P 127.0.0.1 over EPRT, and over PORT with --disable-eprt', async () => {
    const data = randomBytes(500_000);
    await writeFile(path.join(local, 'active.bin'), data);

    const upEprt = ok(await curl(['-P', '127.0.0.1', '-T', path.join(local, 'active.bin'), `${base}/active-eprt.bin`]));
    const eprt = upEprt.sent.find((c) => c.startsWith('EPRT '));
    assert.match(eprt ?? '', /^EPRT \|1\|127\.0\.0\.1\|\d+\|$/, upEprt.sent.join(' | '));
    assert.ok(!upEprt.sent.includes('EPSV') && !upEprt.sent.includes('PASV'));
    const downEprt = ok(await curl(['--ftp-port', '127.0.0.1', `${base}/active-eprt.bin`]));
    assert.ok(downEprt.sent.some((c) => c.startsWith('EPRT ')));
    assert.deepEqual(downEprt.stdout, data);

    const upPort = ok(await curl(['-P', '127.0.0.1', '--disable-eprt', '-T', path.join(local, 'active.bin'), `${base}/active-port.bin`]));
    const port = upPort.sent.find((c) => c.startsWith('PORT '));
    assert.match(port ?? '', /^PORT 127,0,0,1,\d+,\d+$/, upPort.sent.join(' | '));
    const downPort = ok(await curl(['-P', '127.0.0.1', '--disable-eprt', `${base}/active-port.bin`]));
    assert.ok(downPort.sent.some((c) => c.startsWith('PORT ')));
    assert.deepEqual(downPort.stdout, data);
    assert.deepEqual(await readFile(path.join(srv.root, 'active-eprt.bin')), data);
    assert.deepEqual(await readFile(path.join(srv.root, 'active-port.bin')), data);
  });

  test('curl resumes a download with -C - from a partial local file, and fetches a byte range with -r', async () => {
    const data = randomBytes(1_000_000);
    await writeFile(path.join(srv.root, 'resume.bin'), data);
    const partial = path.join(local, 'resume-partial.bin');
    await writeFile(partial, data.subarray(0, 400_000));
    const r = ok(await curl(['-C', '-', '-o', partial, `${base}/resume.bin`]));
    assert.ok(r.sent.includes('REST 400000'), r.sent.join(' | '));
    assert.deepEqual(await readFile(partial), data);

    const range = ok(await curl(['-r', '1000-1999', `${base}/resume.bin`]));
    assert.ok(range.sent.includes('REST 1000'), range.sent.join(' | '));
    assert.deepEqual(range.stdout, data.subarray(1000, 2000));

    // curl ends a ranged RETR early with ABOR; the file itself is untouched.
    assert.ok(range.sent.includes('ABOR'), range.sent.join(' | '));
    const whole = ok(await curl([`${base}/resume.bin`]));
    assert.deepEqual(whole.stdout, data);
  });

  test('curl resumes an upload with -C - (SIZE, then APPE of the rest)', async () => {
    const data = randomBytes(900_001);
    await writeFile(path.join(local, 'resume-up.bin'), data);
    await writeFile(path.join(srv.root, 'resume-up.bin'), data.subarray(0, 123_456));
    const r = ok(await curl(['-C', '-', '-T', path.join(local, 'resume-up.bin'), `${base}/resume-up.bin`]));
    assert.ok(r.sent.includes('SIZE resume-up.bin'), r.sent.join(' | '));
    assert.ok(r.sent.includes('APPE resume-up.bin'), r.sent.join(' | '));
    assert.deepEqual(await readFile(path.join(srv.root, 'resume-up.bin')), data);
  });

  test('curl --ftp-create-dirs uploads into a new nested directory', async () => {
    const data = Buffer.from('nested payload\n');
    await writeFile(path.join(local, 'nested.txt'), data);
    const r = ok(await curl(['--ftp-create-dirs', '-T', path.join(local, 'nested.txt'), `${base}/new/deeper/deepest/nested.txt`]));
    assert.ok(r.sent.includes('MKD new'), r.sent.join(' | '));
    assert.deepEqual(await readFile(path.join(srv.root, 'new', 'deeper', 'deepest', 'nested.txt')), data);
    // Without the option the same kind of upload fails: the directory is missing.
    const missing = await curl(['-T', path.join(local, 'nested.txt'), `${base}/absent/dir/nested.txt`]);
    assert.equal(missing.code, 9, missing.stderr); // CURLE_REMOTE_ACCESS_DENIED: CWD failed
    await assert.rejects(stat(path.join(srv.root, 'absent')), { code: 'ENOENT' });
  });

  test('curl -Q sends quote commands before the transfer and fails on a 5xx reply', async () => {
    await mkdir(path.join(srv.root, 'quoted'));
    await writeFile(path.join(srv.root, 'quoted', 'x'), 'delete me');
    await writeFile(path.join(srv.root, 'quoted', 'keep'), 'keep me');
    // Pre-quote commands run in the login directory, post-quote ("-" prefix) ones in the URL's directory.
    const r = ok(await curl(['-l', '-Q', 'DELE quoted/x', '-Q', '-RNFR keep', '-Q', '-RNTO kept', `${base}/quoted/`]));
    assert.ok(r.sent.includes('DELE quoted/x'), r.sent.join(' | '));
    assert.ok(r.sent.includes('RNTO kept'), r.sent.join(' | '));
    // The listing ran after DELE (pre-quote) and before the rename (post-quote).
    assert.deepEqual(r.stdout.toString('utf8'), 'keep\n');
    assert.deepEqual(await readdir(path.join(srv.root, 'quoted')), ['kept']);

    const bad = await curl(['-Q', 'DELE quoted/x', `${base}/quoted/`]);
    assert.equal(bad.code, 21, bad.stderr); // CURLE_QUOTE_ERROR
    assert.match(bad.stderr, /QUOT command failed with 550/);
  });

  test('curl --ftp-method multicwd, singlecwd and nocwd all reach a nested file', async () => {
    await mkdir(path.join(srv.root, 'm1', 'm2'), { recursive: true });
    const data = randomBytes(10_000);
    await writeFile(path.join(srv.root, 'm1', 'm2', 'deep.bin'), data);
    const url = `${base}/m1/m2/deep.bin`;

    const multi = ok(await curl(['--ftp-method', 'multicwd', url]));
    assert.deepEqual(multi.stdout, data);
    assert.ok(multi.sent.includes('CWD m1') && multi.sent.includes('CWD m2'), multi.sent.join(' | '));
    assert.ok(multi.sent.includes('RETR deep.bin'));

    const single = ok(await curl(['--ftp-method', 'singlecwd', url]));
    assert.deepEqual(single.stdout, data);
    assert.ok(single.sent.includes('CWD m1/m2'), single.sent.join(' | '));
    assert.ok(single.sent.includes('RETR deep.bin'));

    const none = ok(await curl(['--ftp-method', 'nocwd', url]));
    assert.deepEqual(none.stdout, data);
    assert.ok(!none.sent.some((c) => c.startsWith('CWD ')), none.sent.join(' | '));
    assert.ok(none.sent.includes('RETR m1/m2/deep.bin'));
  });

  test('curl exits 78 for a missing file, from SIZE 550 or from "RETR response: 550"', async () => {
    // By default curl asks SIZE first and stops at its 550.
    const sized = await curl([`${base}/no-such-file.bin`]);
    assert.equal(sized.code, 78, sized.stderr); // CURLE_REMOTE_FILE_NOT_FOUND
    assert.match(sized.stderr, /< 550 /);
    assert.ok(sized.sent.includes('SIZE no-such-file.bin'));
    assert.ok(!sized.sent.includes('RETR no-such-file.bin'));
    assert.equal(sized.stdout.length, 0);
    // Told to ignore the size, it goes straight to RETR.
    const direct = await curl(['--ignore-content-length', `${base}/no-such-file.bin`]);
    assert.equal(direct.code, 78, direct.stderr);
    assert.ok(direct.sent.includes('RETR no-such-file.bin'), direct.sent.join(' | '));
    assert.match(direct.stderr, /curl: \(78\) RETR response: 550/);
    assert.equal(direct.stdout.length, 0);
  });

  test('curl exits 67 for a wrong password', async () => {
    const r = await curl([`ftp://alice:wrong@127.0.0.1:${srv.port}/download.bin`]);
    assert.equal(r.code, 67, r.stderr); // CURLE_LOGIN_DENIED
    assert.match(r.stderr, /< 530 Login incorrect\./);
  });

  test('curl downloads and uploads over IPv6 at ftp://[::1]:PORT/', async (t) => {
    if (!(await canBindIpv6Loopback())) {
      t.skip('::1 cannot be bound on this machine');
      return;
    }
    const srv6 = await startServer(t, { host: '::1' });
    const base6 = `ftp://${userinfo}@[::1]:${srv6.port}`;
    const data = randomBytes(300_000);
    await writeFile(path.join(local, 'v6.bin'), data);
    const up = ok(await curl(['-g', '-T', path.join(local, 'v6.bin'), `${base6}/v6.bin`]));
    assert.ok(up.sent.includes('EPSV'), up.sent.join(' | '));
    assert.deepEqual(await readFile(path.join(srv6.root, 'v6.bin')), data);
    const down = ok(await curl(['-g', `${base6}/v6.bin`]));
    assert.deepEqual(down.stdout, data);
    const active = ok(await curl(['-g', '-P', '::1', `${base6}/v6.bin`]));
    assert.match(active.sent.find((c) => c.startsWith('EPRT ')) ?? '', /^EPRT \|2\|::1\|\d+\|$/, active.sent.join(' | '));
    assert.deepEqual(active.stdout, data);
  });
});
