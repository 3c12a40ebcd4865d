/**
 * Ferry against a real client: Python's standard-library ftplib, spawned as
 * `python3 -c <script>` over loopback. Each script starts with a small
 * prelude (connect, log in, print one JSON result); the parameters travel in
 * the FERRY_ARGS environment variable, so no value is ever spliced into code.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { PASSWORD, USER, startServer, type TestServer, canBindIpv6Loopback } from '../helpers/server.js';

const PRELUDE = `
import ftplib, hashlib, io, json, os, socket, sys
A = json.loads(os.environ['FERRY_ARGS'])

def connect(host=None, port=None, login=True):
    ftp = ftplib.FTP(timeout=10)
    ftp.connect(host or A['host'], port or A['port'])
    if login:
        ftp.login(A['user'], A['password'])
    return ftp

def record(ftp):
    """Remember every command line ftplib sends, to check which mode it used."""
    sent = []
    original = ftp.putcmd
    def putcmd(line):
        sent.append(line)
        original(line)
    ftp.putcmd = putcmd
    return sent

def fetch(ftp, name, rest=None):
    buf = io.BytesIO()
    ftp.retrbinary('RETR ' + name, buf.write, rest=rest)
    return buf.getvalue()

def sha(data):
    return hashlib.sha256(data).hexdigest()

def out(**result):
    print(json.dumps(result))
`;

/** Remove the common indentation so the scripts can sit indented in this file. */
function dedent(text: string): string {
  const lines = text.replace(/^\n/, '').split('\n');
  const indents = lines.filter((l) => l.trim()).map((l) => /^ */.exec(l)![0].length);
  const cut = Math.min(...indents);
  return lines.map((l) => l.slice(cut)).join('\n');
}

/** Run a Python ftplib script; resolve to the JSON it printed last. Fails with the traceback. */
function python<T = Record<string, unknown>>(script: string, args: Record<string, unknown>, timeoutMs = 15_000): Promise<T> {
  const code = PRELUDE + '\n' + dedent(script);
  const env = { ...process.env, FERRY_ARGS: JSON.stringify(args), PYTHONIOENCODING: 'utf-8', PYTHONUTF8: '1' };
  return new Promise((resolve, reject) => {
    execFile('python3', ['-c', code], { env, timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`python3 failed (${err.message.split('\n')[0]}):\n${stderr}`));
        return;
      }
      const last = stdout.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(last) as T);
      } catch {
        reject(new Error(`python3 printed no JSON result:\n${stdout}\n${stderr}`));
      }
    });
  });
}

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

describe('python ftplib against Ferry', () => {
  let srv: TestServer;
  let local: string;
  let args: Record<string, unknown>;

  const cleanups: Array<() => unknown> = [];

  before(async () => {
    srv = await startServer({ after: (fn) => void cleanups.push(() => fn?.()) });
    local = await mkdtemp(path.join(os.tmpdir(), 'ferry-ftplib-'));
    args = { host: '127.0.0.1', port: srv.port, user: USER, password: PASSWORD };
  });
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
    await rm(local, { recursive: true, force: true });
  });

  test('python ftplib logs in after the 220 greeting with 230', async () => {
    const r = await python<{ welcome: string; login: string; pwd: string }>(
      `
      ftp = connect(login=False)
      welcome = ftp.getwelcome()
      login = ftp.login(A['user'], A['password'])
      out(welcome=welcome, login=login, pwd=ftp.pwd())
      ftp.quit()
      `,
      args,
    );
    assert.equal(r.welcome, '220 Ferry FTP server ready.');
    assert.equal(r.login, '230 Login successful.');
    assert.equal(r.pwd, '/');
  });

  test('python ftplib gets error_perm 530 for a wrong password, then can log in', async () => {
    const r = await python<{ error: string; kind: string; retry: string }>(
      `
      ftp = connect(login=False)
      try:
          ftp.login(A['user'], 'not the password')
          error, kind = '', 'none'
      except ftplib.error_perm as e:
          error, kind = str(e), 'error_perm'
      retry = ftp.login(A['user'], A['password'])
      out(error=error, kind=kind, retry=retry)
      ftp.quit()
      `,
      args,
    );
    assert.equal(r.kind, 'error_perm');
    assert.equal(r.error, '530 Login incorrect.');
    assert.equal(r.retry, '230 Login successful.');
  });

  test('python ftplib round-trips 0 B, 1 B and 3 MiB byte-exact in binary passive mode', async () => {
    const files = [
      { name: 'empty.bin', data: Buffer.alloc(0) },
      { name: 'one.bin', data: randomBytes(1) },
      { name: 'three-mib.bin', data: randomBytes(3 * 1024 * 1024) },
    ];
    for (const f of files) await writeFile(path.join(local, f.name), f.data);
    const r = await python<{ results: Array<{ name: string; stor: string; size: number; sha: string; length: number }>; sent: string[] }>(
      `
      ftp = connect()
      sent = record(ftp)
      results = []
      for name in A['names']:
          with open(os.path.join(A['local'], name), 'rb') as fp:
              stor = ftp.storbinary('STOR ' + name, fp)
          data = fetch(ftp, name)
          results.append(dict(name=name, stor=stor, size=ftp.size(name), sha=sha(data), length=len(data)))
      out(results=results, sent=sent)
      ftp.quit()
      `,
      { ...args, local, names: files.map((f) => f.name) },
    );
    assert.equal(r.results.length, files.length);
    for (const [i, f] of files.entries()) {
      const got = r.results[i]!;
      assert.equal(got.name, f.name);
      assert.equal(got.stor, '226 Transfer complete.');
      assert.equal(got.length, f.data.length, `${f.name}: downloaded length`);
      assert.equal(got.sha, sha256(f.data), `${f.name}: downloaded bytes`);
      assert.equal(got.size, f.data.length, `${f.name}: SIZE`);
      assert.equal(sha256(await readFile(path.join(srv.root, f.name))), sha256(f.data), `${f.name}: bytes on disk`);
    }
    // ftplib on IPv4 uses PASV for passive mode, and switches to TYPE I for binary transfers.
    assert.ok(r.sent.includes('PASV'), `sent: ${r.sent.join(', ')}`);
    assert.ok(r.sent.includes('TYPE I'));
  });

  test('python ftplib lists uploaded names with LIST, NLST and MLSD facts', async () => {
    const r = await python<{ list: string[]; nlst: string[]; mlsd: Array<[string, Record<string, string>]>; nlstPath: string[] }>(
      `
      ftp = connect()
      ftp.mkd('listing')
      ftp.cwd('/listing')
      ftp.mkd('sub')
      ftp.storbinary('STOR one.txt', io.BytesIO(b'hello'))
      ftp.storbinary('STOR two.bin', io.BytesIO(os.urandom(1234)))
      lines = []
      ftp.retrlines('LIST', lines.append)
      nlst = ftp.nlst()
      mlsd = list(ftp.mlsd())
      ftp.cwd('/')
      nlst_path = ftp.nlst('listing')
      out(list=lines, nlst=nlst, mlsd=mlsd, nlstPath=nlst_path)
      ftp.quit()
      `,
      args,
    );
    assert.deepEqual([...r.nlst].sort(), ['one.txt', 'sub', 'two.bin']);
    assert.deepEqual([...r.nlstPath].sort(), ['one.txt', 'sub', 'two.bin']);

    assert.equal(r.list.length, 3, r.list.join('\n'));
    const listed = new Map(
      r.list.map((line) => {
        const m = /^([-d])[-rwx]{9} +\d+ +\S+ +\S+ +(\d+) +[A-Z][a-z]{2} +\d{1,2} +(?:\d{2}:\d{2}|\d{4}) (.+)$/.exec(line);
        assert.ok(m, `LIST line not in ls -l form: ${JSON.stringify(line)}`);
        return [m[3]!, { type: m[1]!, size: Number(m[2]) }];
      }),
    );
    assert.deepEqual(listed.get('one.txt'), { type: '-', size: 5 });
    assert.deepEqual(listed.get('two.bin'), { type: '-', size: 1234 });
    assert.equal(listed.get('sub')?.type, 'd');

    const facts = new Map(r.mlsd);
    assert.deepEqual([...facts.keys()].sort(), ['.', 'one.txt', 'sub', 'two.bin']);
    assert.equal(facts.get('.')!.type, 'cdir');
    assert.equal(facts.get('one.txt')!.type, 'file');
    assert.equal(facts.get('one.txt')!.size, '5');
    assert.equal(facts.get('two.bin')!.size, '1234');
    assert.equal(facts.get('sub')!.type, 'dir');
    assert.match(facts.get('one.txt')!.modify!, /^\d{14}(\.\d+)?$/);
    // alice has every permission: read, write, append, delete, rename on files.
    for (const letter of 'rwadf') assert.ok(facts.get('one.txt')!.perm!.includes(letter), `perm ${facts.get('one.txt')!.perm}`);
  });

  test('python ftplib creates, enters, renames and removes directories and files', async () => {
    await writeFile(path.join(local, 'content.txt'), 'some content\n');
    const r = await python(
      `
      ftp = connect()
      res = {}
      res['mkd'] = ftp.mkd('work')
      res['cwd'] = ftp.cwd('work')
      res['pwd'] = ftp.pwd()
      res['mkdInner'] = ftp.mkd('inner')
      with open(os.path.join(A['local'], 'content.txt'), 'rb') as fp:
          ftp.storbinary('STOR inner/f.txt', fp)
      res['rename'] = ftp.rename('inner/f.txt', 'g.txt')
      res['afterRename'] = sorted(ftp.nlst())
      res['innerAfterRename'] = ftp.nlst('inner')
      res['renameDir'] = ftp.rename('inner', 'inner2')
      try:
          ftp.cwd('g.txt')
          res['cwdFile'] = 'no error'
      except ftplib.error_perm as e:
          res['cwdFile'] = str(e)[:3]
      res['delete'] = ftp.delete('g.txt')
      try:
          ftp.delete('g.txt')
          res['deleteAgain'] = 'no error'
      except ftplib.error_perm as e:
          res['deleteAgain'] = str(e)[:3]
      res['rmd'] = ftp.rmd('inner2')
      res['cdup'] = ftp.sendcmd('CDUP')
      res['pwdAfterCdup'] = ftp.pwd()
      res['rmdWork'] = ftp.rmd('work')
      res['root'] = ftp.nlst()
      out(**res)
      ftp.quit()
      `,
      { ...args, local },
    );
    assert.equal(r.mkd, '/work');
    assert.equal(r.cwd, '250 Directory successfully changed.');
    assert.equal(r.pwd, '/work');
    assert.equal(r.mkdInner, '/work/inner');
    assert.equal(r.rename, '250 Rename successful.');
    assert.deepEqual(r.afterRename, ['g.txt', 'inner']);
    assert.deepEqual(r.innerAfterRename, []);
    assert.equal(r.renameDir, '250 Rename successful.');
    assert.equal(r.cwdFile, '550');
    assert.equal(r.delete, '250 File deleted.');
    assert.equal(r.deleteAgain, '550');
    assert.equal(r.rmd, '250 Directory removed.');
    assert.equal(r.cdup, '200 Directory successfully changed.');
    assert.equal(r.pwdAfterCdup, '/');
    assert.equal(r.rmdWork, '250 Directory removed.');
    assert.ok(!(r.root as string[]).includes('work'));
    await assert.rejects(readdir(path.join(srv.root, 'work')), { code: 'ENOENT' });
  });

  test('python ftplib handles names with spaces, double quotes, a leading dash and non-ASCII', async () => {
    const dir = 'a "q" b';
    const names = ['with space.txt', '-dash.txt', 'naïve 日本.txt'];
    const contents = names.map((n) => Buffer.from(`contents of ${n}\n`));
    for (const [i, n] of names.entries()) await writeFile(path.join(local, `upload-${i}`), contents[i]!);
    const r = await python<{ mkd: string; pwd: string; nlst: string[]; list: string[]; got: string[]; dash: string[] }>(
      `
      ftp = connect()
      mkd = ftp.mkd(A['dir'])
      ftp.cwd(A['dir'])
      pwd = ftp.pwd()
      for i, name in enumerate(A['names']):
          with open(os.path.join(A['local'], 'upload-%d' % i), 'rb') as fp:
              ftp.storbinary('STOR ' + name, fp)
      nlst = ftp.nlst()
      lines = []
      ftp.retrlines('LIST', lines.append)
      got = [fetch(ftp, name).decode('utf-8') for name in A['names']]
      dash = []
      ftp.retrlines('LIST -dash.txt', dash.append)
      out(mkd=mkd, pwd=pwd, nlst=nlst, list=lines, got=got, dash=dash)
      ftp.quit()
      `,
      { ...args, local, dir, names },
    );
    // The 257 reply doubles the quotes (RFC 959 appendix II); ftplib undoes that.
    assert.equal(r.mkd, '/a "q" b');
    assert.equal(r.pwd, '/a "q" b');
    assert.deepEqual([...r.nlst].sort(), [...names].sort());
    for (const n of names) assert.ok(r.list.some((line) => line.endsWith(` ${n}`)), `LIST shows ${n}: ${r.list.join('\n')}`);
    assert.deepEqual(r.got, contents.map((c) => c.toString()));
    // "-dash.txt" is a name, not an ls option: LIST shows exactly that file.
    assert.equal(r.dash.length, 1, r.dash.join('\n'));
    assert.ok(r.dash[0]!.endsWith(' -dash.txt'));
    assert.deepEqual((await readdir(path.join(srv.root, dir))).sort(), [...names].sort());
    assert.deepEqual(await readFile(path.join(srv.root, dir, 'naïve 日本.txt')), contents[2]);
  });

  test('python ftplib round-trips in passive mode with PASV and with EPSV over IPv4', async () => {
    const data = randomBytes(200_000);
    await writeFile(path.join(local, 'passive.bin'), data);
    const r = await python<{ shaPasv: string; shaEpsv: string; sent: string[] }>(
      `
      ftp = connect()
      sent = record(ftp)
      with open(os.path.join(A['local'], 'passive.bin'), 'rb') as fp:
          ftp.storbinary('STOR passive-pasv.bin', fp)
      sha_pasv = sha(fetch(ftp, 'passive-pasv.bin'))
      # ftplib only uses EPSV on IPv6; make it use EPSV here too.
      ftp.makepasv = lambda: ftplib.parse229(ftp.sendcmd('EPSV'), ftp.sock.getpeername())
      with open(os.path.join(A['local'], 'passive.bin'), 'rb') as fp:
          ftp.storbinary('STOR passive-epsv.bin', fp)
      sha_epsv = sha(fetch(ftp, 'passive-epsv.bin'))
      out(shaPasv=sha_pasv, shaEpsv=sha_epsv, sent=sent)
      ftp.quit()
      `,
      { ...args, local },
    );
    assert.equal(r.shaPasv, sha256(data));
    assert.equal(r.shaEpsv, sha256(data));
    assert.equal(r.sent.filter((c) => c === 'PASV').length, 2);
    assert.equal(r.sent.filter((c) => c === 'EPSV').length, 2);
    assert.deepEqual(await readFile(path.join(srv.root, 'passive-epsv.bin')), data);
  });

  test('python ftplib round-trips in active mode with PORT', async () => {
    const data = randomBytes(300_000);
    await writeFile(path.join(local, 'active.bin'), data);
    const r = await python<{ sha: string; sent: string[]; list: string[] }>(
      `
      ftp = connect()
      ftp.set_pasv(False)
      sent = record(ftp)
      with open(os.path.join(A['local'], 'active.bin'), 'rb') as fp:
          ftp.storbinary('STOR active-port.bin', fp)
      digest = sha(fetch(ftp, 'active-port.bin'))
      lines = []
      ftp.retrlines('LIST active-port.bin', lines.append)
      out(sha=digest, sent=sent, list=lines)
      ftp.quit()
      `,
      { ...args, local },
    );
    assert.equal(r.sha, sha256(data));
    assert.deepEqual(await readFile(path.join(srv.root, 'active-port.bin')), data);
    const ports = r.sent.filter((c) => c.startsWith('PORT '));
    assert.equal(ports.length, 3, r.sent.join(', '));
    for (const p of ports) assert.match(p, /^PORT 127,0,0,1,\d+,\d+$/);
    assert.ok(!r.sent.some((c) => c === 'PASV' || c === 'EPSV'));
    assert.equal(r.list.length, 1);
    assert.ok(r.list[0]!.endsWith(' active-port.bin'));
  });

  test('python ftplib round-trips in active mode with EPRT over IPv4', async () => {
    const data = randomBytes(100_000);
    await writeFile(path.join(local, 'eprt.bin'), data);
    const r = await python<{ sha: string; sent: string[] }>(
      `
      ftp = connect()
      ftp.set_pasv(False)
      sent = record(ftp)
      # ftplib only sends EPRT on IPv6; make it use EPRT for 127.0.0.1 too.
      def makeport():
          sock = socket.create_server(('127.0.0.1', 0), family=socket.AF_INET, backlog=1)
          ftp.sendeprt('127.0.0.1', sock.getsockname()[1])
          sock.settimeout(10)
          return sock
      ftp.makeport = makeport
      with open(os.path.join(A['local'], 'eprt.bin'), 'rb') as fp:
          ftp.storbinary('STOR active-eprt.bin', fp)
      out(sha=sha(fetch(ftp, 'active-eprt.bin')), sent=sent)
      ftp.quit()
      `,
      { ...args, local },
    );
    assert.equal(r.sha, sha256(data));
    const eprts = r.sent.filter((c) => c.startsWith('EPRT '));
    assert.equal(eprts.length, 2, r.sent.join(', '));
    for (const e of eprts) assert.match(e, /^EPRT \|1\|127\.0\.0\.1\|\d+\|$/);
  });

  test('python ftplib gets 501 for a PORT to another host (no FTP bounce)', async () => {
    const r = await python(
      `
      ftp = connect()
      try:
          ftp.sendcmd('PORT 10,1,2,3,200,10')
          port = 'accepted'
      except ftplib.error_perm as e:
          port = str(e)[:3]
      out(port=port, noop=ftp.voidcmd('NOOP'))
      ftp.quit()
      `,
      args,
    );
    assert.equal(r.port, '501');
    assert.equal(r.noop, '200 NOOP ok.');
  });

  test('python ftplib resumes a download with REST', async () => {
    const data = randomBytes(1_000_003);
    await writeFile(path.join(srv.root, 'resume-down.bin'), data);
    const r = await python<{ middle: string; middleLength: number; atEnd: number; sent: string[] }>(
      `
      ftp = connect()
      sent = record(ftp)
      middle = fetch(ftp, 'resume-down.bin', rest=A['offset'])
      at_end = fetch(ftp, 'resume-down.bin', rest=A['size'])
      out(middle=sha(middle), middleLength=len(middle), atEnd=len(at_end), sent=sent)
      ftp.quit()
      `,
      { ...args, offset: 654_321, size: data.length },
    );
    assert.equal(r.middleLength, data.length - 654_321);
    assert.equal(r.middle, sha256(data.subarray(654_321)));
    assert.equal(r.atEnd, 0);
    assert.ok(r.sent.includes('REST 654321'), r.sent.join(', '));
  });

  test('python ftplib resumes an upload with REST+STOR', async () => {
    const data = randomBytes(777_777);
    const offset = 300_000;
    await writeFile(path.join(local, 'resume-up.bin'), data);
    const r = await python<{ sizeBefore: number; sizeAfter: number; sha: string; sent: string[] }>(
      `
      ftp = connect()
      sent = record(ftp)
      with open(os.path.join(A['local'], 'resume-up.bin'), 'rb') as fp:
          head = io.BytesIO(fp.read(A['offset']))
          ftp.storbinary('STOR resume-up.bin', head)
          size_before = ftp.size('resume-up.bin')
          ftp.storbinary('STOR resume-up.bin', fp, rest=A['offset'])
      out(sizeBefore=size_before, sizeAfter=ftp.size('resume-up.bin'), sha=sha(fetch(ftp, 'resume-up.bin')), sent=sent)
      ftp.quit()
      `,
      { ...args, local, offset },
    );
    assert.equal(r.sizeBefore, offset);
    assert.equal(r.sizeAfter, data.length);
    assert.equal(r.sha, sha256(data));
    assert.deepEqual(await readFile(path.join(srv.root, 'resume-up.bin')), data);
    const rest = r.sent.indexOf(`REST ${offset}`);
    assert.ok(rest !== -1 && r.sent[rest + 1] === 'STOR resume-up.bin', r.sent.join(', '));
  });

  test('python ftplib appends with APPE to an existing file and creates a missing one', async () => {
    const first = randomBytes(70_000);
    const second = randomBytes(50_001);
    await writeFile(path.join(local, 'first.bin'), first);
    await writeFile(path.join(local, 'second.bin'), second);
    const r = await python(
      `
      ftp = connect()
      with open(os.path.join(A['local'], 'first.bin'), 'rb') as fp:
          ftp.storbinary('STOR appended.bin', fp)
      with open(os.path.join(A['local'], 'second.bin'), 'rb') as fp:
          appe = ftp.storbinary('APPE appended.bin', fp)
      with open(os.path.join(A['local'], 'second.bin'), 'rb') as fp:
          ftp.storbinary('APPE fresh.bin', fp)
      out(appe=appe, size=ftp.size('appended.bin'), freshSize=ftp.size('fresh.bin'))
      ftp.quit()
      `,
      { ...args, local },
    );
    assert.equal(r.appe, '226 Transfer complete.');
    assert.equal(r.size, first.length + second.length);
    assert.equal(r.freshSize, second.length);
    assert.deepEqual(await readFile(path.join(srv.root, 'appended.bin')), Buffer.concat([first, second]));
    assert.deepEqual(await readFile(path.join(srv.root, 'fresh.bin')), second);
  });

  test('python ftplib aborts a 64 MiB download with ABOR and the session stays usable', async () => {
    const chunk = randomBytes(1024 * 1024);
    await writeFile(path.join(srv.root, 'big.bin'), Buffer.concat(Array.from({ length: 64 }, () => chunk)));
    await writeFile(path.join(srv.root, 'after-abort.txt'), 'still works\n');
    const r = await python<{ received: number; abort: string; next: string; pwd: string; noop: string; after: string }>(
      `
      ftp = connect()
      ftp.voidcmd('TYPE I')
      conn = ftp.transfercmd('RETR big.bin')
      received = 0
      while received < 256 * 1024:
          block = conn.recv(65536)
          if not block:
              break
          received += len(block)
      abort = ftp.abort()   # sends ABOR as urgent data; accepts 426, 225 or 226
      conn.close()
      # RFC 959: the aborted RETR is answered 426, then ABOR itself 226.
      following = ftp.getresp()
      pwd = ftp.pwd()
      noop = ftp.voidcmd('NOOP')
      after = fetch(ftp, 'after-abort.txt').decode()
      out(received=received, abort=abort, next=following, pwd=pwd, noop=noop, after=after)
      ftp.quit()
      `,
      args,
    );
    assert.ok(r.received >= 256 * 1024);
    assert.equal(r.abort.slice(0, 4), '426 ');
    assert.equal(r.next.slice(0, 4), '226 ');
    assert.equal(r.pwd, '/');
    assert.equal(r.noop, '200 NOOP ok.');
    assert.equal(r.after, 'still works\n');
  });

  test('python ftplib TYPE A: storlines stores LF line ends on disk and retrlines reads the lines back', async () => {
    await writeFile(path.join(local, 'text.txt'), 'first line\r\nsecond line\nthird line\r\n\r\nlast without newline');
    const r = await python<{ stor: string; lines: string[]; wire: string; binary: string; sent: string[] }>(
      `
      ftp = connect()
      sent = record(ftp)
      with open(os.path.join(A['local'], 'text.txt'), 'rb') as fp:
          stor = ftp.storlines('STOR text.txt', fp)
      lines = []
      ftp.retrlines('RETR text.txt', lines.append)
      # The raw bytes of a TYPE A download: network ASCII, CRLF line ends.
      ftp.voidcmd('TYPE A')
      conn = ftp.transfercmd('RETR text.txt')
      wire = b''
      while True:
          block = conn.recv(65536)
          if not block:
              break
          wire += block
      conn.close()
      ftp.voidresp()
      binary = fetch(ftp, 'text.txt')
      out(stor=stor, lines=lines, wire=wire.decode(), binary=binary.decode(), sent=sent)
      ftp.quit()
      `,
      { ...args, local },
    );
    assert.equal(r.stor, '226 Transfer complete.');
    const expected = 'first line\nsecond line\nthird line\n\nlast without newline\n';
    assert.equal(await readFile(path.join(srv.root, 'text.txt'), 'utf8'), expected);
    assert.deepEqual(r.lines, ['first line', 'second line', 'third line', '', 'last without newline']);
    assert.equal(r.wire, expected.replace(/\n/g, '\r\n'));
    assert.equal(r.binary, expected);
    assert.equal(r.sent.filter((c) => c === 'TYPE A').length, 3);
  });
});

describe('python ftplib against Ferry over IPv6', () => {
  test('python ftplib connects to ::1 and round-trips with EPSV and EPRT', async (t) => {
    if (!(await canBindIpv6Loopback())) {
      t.skip('::1 cannot be bound on this machine');
      return;
    }
    const srv = await startServer(t, { host: '::1' });
    const data = randomBytes(123_457);
    const local = await mkdtemp(path.join(os.tmpdir(), 'ferry-ftplib6-'));
    t.after(() => rm(local, { recursive: true, force: true }));
    await writeFile(path.join(local, 'v6.bin'), data);
    const r = await python<{ peer: string; passive: string; active: string; sent: string[]; pasv: string }>(
      `
      ftp = connect(host='::1')
      sent = record(ftp)
      peer = ftp.sock.getpeername()[0]
      with open(os.path.join(A['local'], 'v6.bin'), 'rb') as fp:
          ftp.storbinary('STOR v6.bin', fp)
      passive = sha(fetch(ftp, 'v6.bin'))
      ftp.set_pasv(False)
      active = sha(fetch(ftp, 'v6.bin'))
      try:
          ftp.sendcmd('PASV')
          pasv = 'accepted'
      except ftplib.Error as e:
          pasv = str(e)[:3]
      out(peer=peer, passive=passive, active=active, sent=sent, pasv=pasv)
      ftp.quit()
      `,
      { host: '::1', port: srv.port, user: USER, password: PASSWORD, local },
    );
    assert.equal(r.peer, '::1');
    assert.equal(r.passive, sha256(data));
    assert.equal(r.active, sha256(data));
    assert.deepEqual(await readFile(path.join(srv.root, 'v6.bin')), data);
    assert.equal(r.sent.filter((c) => c === 'EPSV').length, 2, r.sent.join(', '));
    const eprts = r.sent.filter((c) => c.startsWith('EPRT '));
    assert.equal(eprts.length, 1);
    assert.match(eprts[0]!, /^EPRT \|2\|::1\|\d+\|$/);
    // PASV cannot describe an IPv6 address.
    assert.equal(r.pasv, '425');
  });
});
