/**
 * Protocol conformance over a raw socket: reply codes for every error class,
 * the command table's generic checks, path safety, data-connection rules.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, rm, symlink, writeFile, stat, mkdtemp } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { commandTable } from '../../src/session/command-table.js';
import { PASSWORD, startServer, USER, type TestServer } from '../helpers/server.js';
import { RawClient, readAll } from '../helpers/ftp-raw.js';

/** Start one server for a describe block and stop it in the block's after hook. */
function suiteServer(): () => TestServer {
  let srv: TestServer | undefined;
  const stops: Array<() => Promise<void>> = [];
  before(async () => {
    srv = await startServer({ after: (fn) => void stops.push(fn) });
    await mkdir(path.join(srv.root, 'dir'));
    await writeFile(path.join(srv.root, 'file.txt'), 'hello\n');
  });
  after(async () => {
    for (const stop of stops) await stop();
  });
  return () => srv!;
}

describe('before login', () => {
  const server = suiteServer();

  test('every command that needs a login answers 530 before it', async () => {
    const client = await RawClient.connect(server().port);
    try {
      await client.expect(220);
      for (const spec of commandTable().values()) {
        if (!spec.auth) continue;
        const arg = spec.arg === 'required' ? ' x' : '';
        const reply = await client.command(`${spec.verb}${arg}`);
        assert.equal(reply.code, 530, `${spec.verb} answered ${reply.lines.join(' | ')}`);
      }
    } finally {
      client.close();
    }
  });
});

describe('protocol', () => {
  const server = suiteServer();
  let srv: TestServer;
  before(() => {
    srv = server();
  });

  async function login(): Promise<RawClient> {
    return RawClient.login(srv.port, USER, PASSWORD);
  }

  test('unknown commands get 500, missing arguments 501, extra arguments 501', async () => {
    const c = await login();
    try {
      assert.equal((await c.command('XYZZY')).code, 500);
      assert.equal((await c.command('SMNT /x')).code, 502);
      assert.equal((await c.command('RETR')).code, 501);
      assert.equal((await c.command('NOOP extra')).code, 501);
      assert.equal((await c.command('TYPE Q')).code, 501);
      assert.equal((await c.command('TYPE E')).code, 504);
      assert.equal((await c.command('MODE B')).code, 504);
      assert.equal((await c.command('STRU R')).code, 504);
      assert.equal((await c.command('MODE S')).code, 200);
      assert.equal((await c.command('STRU F')).code, 200);
      assert.equal((await c.command('TYPE L 8')).code, 200);
      assert.equal((await c.command('REST abc')).code, 501);
    } finally {
      c.close();
    }
  });

  test('sequence errors get 503: PASS without USER, RNTO without RNFR', async () => {
    const c = await RawClient.connect(srv.port);
    try {
      await c.expect(220);
      assert.equal((await c.command('PASS x')).code, 503);
      await c.command(`USER ${USER}`, 331);
      await c.command(`PASS ${PASSWORD}`, 230);
      assert.equal((await c.command('RNTO y')).code, 503);
      await c.command('RNFR file.txt', 350);
      await c.command('NOOP', 200);
      assert.equal((await c.command('RNTO y')).code, 503, 'RNFR must be followed directly by RNTO');
    } finally {
      c.close();
    }
  });

  test('OPTS UTF8 ON, FEAT, SYST, HELP and STAT work before login', async () => {
    const c = await RawClient.connect(srv.port);
    try {
      await c.expect(220);
      assert.equal((await c.command('OPTS UTF8 ON')).code, 200);
      const feat = await c.command('FEAT', 211);
      const lines = feat.lines.slice(1, -1);
      for (const line of lines) assert.match(line, /^ /, 'feature lines start with a space (RFC 2389)');
      assert.ok(lines.includes(' MLST type*;size*;modify*;perm*;unique*;unix.mode*;'), feat.lines.join('\n'));
      for (const f of ['EPRT', 'EPSV', 'MDTM', 'MFMT', 'REST STREAM', 'SIZE', 'TVFS', 'UTF8']) assert.ok(lines.includes(` ${f}`), f);
      assert.equal((await c.command('SYST')).text, 'UNIX Type: L8');
      const help = await c.command('HELP', 214);
      assert.ok(help.lines.join(' ').includes('MLSD'));
      assert.equal((await c.command('HELP RETR')).code, 214);
      assert.equal((await c.command('STAT')).code, 211);
    } finally {
      c.close();
    }
  });

  test('PWD, MKD and CWD quote paths and double inner quotes', async () => {
    const c = await login();
    try {
      const made = await c.command('MKD a "q" b', 257);
      assert.equal(made.text, '"/a ""q"" b" created.');
      await c.command('CWD a "q" b', 250);
      assert.equal((await c.command('PWD', 257)).text, '"/a ""q"" b" is the current directory.');
      await c.command('CDUP', 200);
      assert.equal((await c.command('XPWD', 257)).text, '"/" is the current directory.');
    } finally {
      c.close();
    }
  });

  test('.. and absolute paths never leave the root', async () => {
    const c = await login();
    try {
      await c.command('TYPE I', 200);
      await c.command('CWD ../../../..', 250);
      assert.equal((await c.command('PWD')).text, '"/" is the current directory.');
      assert.equal((await c.command('SIZE /../../file.txt')).text, '6');
      assert.equal((await c.command('SIZE ../../etc/passwd')).code, 550);
      assert.equal((await c.command('CWD /etc')).code, 550);
    } finally {
      c.close();
    }
  });

  test('symlinks pointing outside the root are refused; inside ones work', async () => {
    const outside = await mkdtemp(path.join(os.tmpdir(), 'ferry-outside-'));
    await writeFile(path.join(outside, 'secret'), 'top secret');
    await symlink(outside, path.join(srv.root, 'escape'));
    await symlink(path.join(outside, 'secret'), path.join(srv.root, 'secret-link'));
    await symlink('file.txt', path.join(srv.root, 'inside-link'));
    const c = await login();
    try {
      await c.command('TYPE I', 200);
      assert.equal((await c.command('CWD escape')).code, 550);
      assert.equal((await c.command('SIZE escape/secret')).code, 550);
      assert.equal((await c.command('SIZE secret-link')).code, 550);
      assert.equal((await c.command('SIZE inside-link')).text, '6');
      const data = await c.passive();
      c.send('RETR secret-link');
      const reply = await c.read();
      assert.equal(reply.code, 550);
      data.destroy();
      // Writing through the link must not touch the outside file.
      const up = await c.passive();
      c.send('STOR escape/new');
      assert.equal((await c.read()).code, 550);
      up.destroy();
      await assert.rejects(stat(path.join(outside, 'new')));
    } finally {
      c.close();
    }
  });

  test('NUL bytes and invalid UTF-8 get clean errors', async () => {
    const c = await login();
    try {
      c.write(Buffer.from('SIZE a\0b\r\n'));
      assert.equal((await c.read()).code, 553);
      c.write(Buffer.from([...Buffer.from('CWD '), 0xc3, 0x28, 0x0d, 0x0a]));
      assert.equal((await c.read()).code, 501);
      assert.equal((await c.command('NOOP')).code, 200);
    } finally {
      c.close();
    }
  });

  test('error replies never reveal the server-side path', async () => {
    const c = await login();
    try {
      for (const cmd of ['SIZE nothing', 'CWD nothing', 'DELE nothing', 'RMD nothing', 'MKD dir', 'RMD /', 'DELE dir', 'MDTM nothing']) {
        const reply = await c.command(cmd);
        assert.ok(reply.code >= 500, `${cmd}: ${reply.text}`);
        assert.ok(!reply.text.includes(srv.root) && !reply.text.includes(os.tmpdir()), `${cmd} leaked: ${reply.text}`);
      }
    } finally {
      c.close();
    }
  });

  test('file operations: SIZE of a directory, RMD of a non-empty dir, DELE of a dir all 550', async () => {
    const c = await login();
    try {
      await writeFile(path.join(srv.root, 'dir', 'inner'), 'x');
      assert.equal((await c.command('SIZE dir')).code, 550);
      assert.equal((await c.command('RMD dir')).code, 550);
      assert.equal((await c.command('DELE dir')).code, 550);
      assert.equal((await c.command('MDTM file.txt')).code, 213);
    } finally {
      c.close();
    }
  });

  test('MFMT sets the modification time and SITE CHMOD the mode', async () => {
    const c = await login();
    try {
      await writeFile(path.join(srv.root, 'stamp'), 'x');
      assert.equal((await c.command('MFMT 20200102030405 stamp')).text, 'Modify=20200102030405; stamp');
      assert.equal((await c.command('MDTM stamp')).text, '20200102030405');
      assert.equal((await c.command('MFMT notatime stamp')).code, 501);
      assert.equal((await c.command('SITE CHMOD 600 stamp')).code, 200);
      assert.equal((await stat(path.join(srv.root, 'stamp'))).mode & 0o777, 0o600);
      assert.equal((await c.command('SITE CHMOD 9 stamp')).code, 501);
      assert.equal((await c.command('SITE FOO')).code, 500);
      assert.equal((await c.command('SITE HELP')).code, 214);
    } finally {
      c.close();
    }
  });

  test('SITE CHMOD and MFMT on the root itself answer 550 and leave the served folder as it was (issue 11)', async () => {
    const c = await login();
    try {
      // A symlink to the root is the root too (the storage refuses it).
      await symlink(srv.root, path.join(srv.root, 'to-root'));
      const before = await stat(srv.root);
      // The root by every spelling the session resolves to '/', and through the link.
      for (const target of ['/', '.', '..', '/dir/..', 'to-root']) {
        assert.equal((await c.command(`SITE CHMOD 777 ${target}`)).code, 550, target);
        assert.equal((await c.command(`MFMT 20200101000000 ${target}`)).code, 550, target);
      }
      const after = await stat(srv.root);
      assert.equal(after.mode, before.mode);
      assert.equal(after.mtimeMs, before.mtimeMs);
    } finally {
      c.close();
      await rm(path.join(srv.root, 'to-root'), { force: true });
    }
  });

  test('MLST answers with one indented fact line', async () => {
    const c = await login();
    try {
      const reply = await c.command('MLST file.txt', 250);
      assert.equal(reply.lines.length, 3);
      assert.match(reply.lines[1]!, /^ type=file;size=6;modify=\d{14};perm=[adfrw]+;unique=[0-9a-f]+g[0-9a-f]+;unix\.mode=0\d{3}; \/file\.txt$/);
      await c.command('OPTS MLST type;size;', 200);
      const fewer = await c.command('MLST file.txt', 250);
      assert.equal(fewer.lines[1], ' type=file;size=6; /file.txt');
    } finally {
      c.close();
    }
  });

  test('STAT <path> lists over the control connection; LIST -la is tolerated', async () => {
    const c = await login();
    try {
      const reply = await c.command('STAT -la /', 212);
      assert.equal((await c.command('STAT file.txt')).code, 213);
      assert.ok(reply.lines.some((l) => /^-rw.* file\.txt$/.test(l)), reply.lines.join('\n'));
      const data = await c.passive();
      c.send('LIST -la');
      await c.expect(150);
      const listing = (await readAll(data)).toString();
      await c.expect(226);
      assert.match(listing, /^d[rwx-]{9} +1 ftp +ftp +\d+ \w{3} [ \d]\d [ \d]\d:\d\d dir\r$/m);
    } finally {
      c.close();
    }
  });

  test('SIZE answers the bytes RETR would send in the current TYPE; REST in TYPE A is refused', async () => {
    const c = await login();
    try {
      await writeFile(path.join(srv.root, 'lines.txt'), 'a\nb\nc\n');
      assert.equal((await c.command('SIZE lines.txt')).text, '9', 'TYPE A is the default: LF becomes CRLF');
      await c.command('REST 4', 350);
      const data = await c.passive();
      assert.equal((await c.command('RETR lines.txt')).code, 504);
      data.destroy();
      await c.command('TYPE I', 200);
      assert.equal((await c.command('SIZE lines.txt')).text, '6');
    } finally {
      c.close();
    }
  });

  test('MLSD of a file is 501; a directory has no size fact', async () => {
    const c = await login();
    try {
      let data = await c.passive();
      assert.equal((await c.command('MLSD file.txt')).code, 501);
      data.destroy();
      data = await c.passive();
      c.send('MLSD /');
      await c.expect(150);
      const listing = (await readAll(data)).toString();
      await c.expect(226);
      assert.match(listing, /^type=cdir;modify=\d{14};perm=[a-z]+;unique=\w+;unix\.mode=0\d{3}; \.\r$/m);
      assert.match(listing, /^type=dir;modify=\d{14};perm=[a-z]+;unique=\w+;unix\.mode=0\d{3}; dir\r$/m);
    } finally {
      c.close();
    }
  });

  test('STOR, APPE and STOU without a data connection answer 425 and the server keeps serving', async () => {
    const c = await login();
    try {
      await writeFile(path.join(srv.root, 'keep.txt'), 'keep me');
      for (const cmd of ['STOR keep.txt', 'APPE keep.txt', 'STOU', 'STOR new-425.txt']) assert.equal((await c.command(cmd)).code, 425, cmd);
      // A PORT to a closed port: 150, then 425 when the connection is refused.
      const closed = net.createServer();
      await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
      const port = (closed.address() as net.AddressInfo).port;
      await new Promise((resolve) => closed.close(resolve));
      await c.command(`EPRT |1|127.0.0.1|${port}|`, 200);
      c.send('STOR keep.txt');
      await c.expect(150);
      await c.expect(425);
      assert.equal(await readFile(path.join(srv.root, 'keep.txt'), 'utf8'), 'keep me');
      await assert.rejects(stat(path.join(srv.root, 'new-425.txt')));
      assert.equal((await c.command('NOOP')).code, 200);
      const other = await login();
      assert.equal((await other.command('PWD')).code, 257);
      other.close();
    } finally {
      c.close();
    }
  });

  test('names with control characters are refused with 553', async () => {
    const c = await login();
    try {
      assert.equal((await c.command('MKD a\rb')).code, 553);
      assert.equal((await c.command('MKD \x1b[31mred')).code, 553);
    } finally {
      c.close();
    }
  });

  test('a client that stops reading replies is paused, then gets every reply in order', async () => {
    const c = await login();
    try {
      c.socket.pause();
      const count = 2000; // ~1 MB of HELP replies, far past the server's reply backlog threshold
      c.write('HELP\r\n'.repeat(count) + 'NOOP\r\n');
      await new Promise((r) => setTimeout(r, 300));
      c.socket.resume();
      for (let i = 0; i < count; i++) assert.equal((await c.read()).code, 214);
      assert.equal((await c.read()).code, 200);
    } finally {
      c.close();
    }
  });

  test('STOU creates a unique file and names it in the 150 reply', async () => {
    const c = await login();
    try {
      const data = await c.passive();
      c.send('STOU');
      const prelim = await c.expect(150);
      const name = /^FILE: (.+)$/.exec(prelim.text)![1]!;
      data.end('unique content');
      await c.expect(226);
      assert.equal(await readFile(path.join(srv.root, name), 'utf8'), 'unique content');
    } finally {
      c.close();
    }
  });

  test('REST+RETR resumes from the offset; REST beyond the end is 554', async () => {
    const c = await login();
    try {
      await c.command('TYPE I', 200);
      await c.command('REST 2', 350);
      const data = await c.passive();
      c.send('RETR file.txt');
      await c.expect(150);
      assert.equal((await readAll(data)).toString(), 'llo\n');
      await c.expect(226);
      await c.command('REST 100', 350);
      const more = await c.passive();
      assert.equal((await c.command('RETR file.txt')).code, 554);
      more.destroy();
    } finally {
      c.close();
    }
  });

  test('TYPE A converts line endings both ways; TYPE I is byte-exact', async () => {
    const c = await login();
    try {
      await c.command('TYPE A', 200);
      let data = await c.passive();
      c.send('STOR ascii.txt');
      await c.expect(150);
      data.end('one\r\ntwo\r\n');
      await c.expect(226);
      assert.equal(await readFile(path.join(srv.root, 'ascii.txt'), 'utf8'), 'one\ntwo\n');
      data = await c.passive();
      c.send('RETR ascii.txt');
      await c.expect(150);
      assert.equal((await readAll(data)).toString(), 'one\r\ntwo\r\n');
      await c.expect(226);
      await c.command('TYPE I', 200);
      data = await c.passive();
      c.send('RETR ascii.txt');
      await c.expect(150);
      assert.equal((await readAll(data)).toString(), 'one\ntwo\n');
      await c.expect(226);
    } finally {
      c.close();
    }
  });

  test('a transfer without PASV or PORT first gets 425', async () => {
    const c = await login();
    try {
      assert.equal((await c.command('RETR file.txt')).code, 425);
      assert.equal((await c.command('LIST')).code, 425);
    } finally {
      c.close();
    }
  });

  test('PASV announces the IPv4 address and a port, never an IPv4-mapped IPv6 address', async () => {
    const c = await login();
    try {
      const reply = await c.command('PASV', 227);
      const m = /\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)/.exec(reply.text)!;
      assert.equal(m.slice(1, 5).join('.'), '127.0.0.1');
      const port = Number(m[5]) * 256 + Number(m[6]);
      const data = net.connect({ port, host: '127.0.0.1' });
      await once(data, 'connect');
      c.send('NLST');
      await c.expect(150);
      assert.match((await readAll(data)).toString(), /file\.txt/);
      await c.expect(226);
    } finally {
      c.close();
    }
  });

  test('EPSV ALL refuses PASV, PORT and EPRT afterwards', async () => {
    const c = await login();
    try {
      await c.command('EPSV ALL', 200);
      assert.equal((await c.command('PASV')).code, 501);
      assert.equal((await c.command('PORT 127,0,0,1,200,10')).code, 501);
      assert.equal((await c.command('EPRT |1|127.0.0.1|51210|')).code, 501);
      assert.equal((await c.command('EPSV')).code, 229);
      assert.equal((await c.command('EPSV 2')).code, 522);
    } finally {
      c.close();
    }
  });

  test('PORT and EPRT refuse other hosts and privileged ports (no FTP bounce)', async () => {
    const c = await login();
    try {
      assert.equal((await c.command('PORT 10,0,0,1,200,10')).code, 501);
      assert.equal((await c.command('PORT 127,0,0,1,0,21')).code, 501);
      assert.equal((await c.command('EPRT |1|192.0.2.1|5000|')).code, 501);
      assert.equal((await c.command('EPRT |1|127.0.0.1|80|')).code, 501);
      assert.equal((await c.command('EPRT |3|x|5000|')).code, 522);
      assert.equal((await c.command('EPRT garbage')).code, 501);
      assert.equal((await c.command('PORT 1,2,3')).code, 501);
    } finally {
      c.close();
    }
  });

  test('active mode: the server connects back to the client for RETR', async () => {
    const c = await login();
    const listener = net.createServer();
    try {
      await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
      const port = (listener.address() as net.AddressInfo).port;
      const accepted = once(listener, 'connection');
      await c.command('TYPE I', 200);
      await c.command(`EPRT |1|127.0.0.1|${port}|`, 200);
      c.send('RETR file.txt');
      await c.expect(150);
      const [socket] = (await accepted) as [net.Socket];
      assert.equal((await readAll(socket)).toString(), 'hello\n');
      await c.expect(226);
    } finally {
      listener.close();
      c.close();
    }
  });

  test('a data connection from another address is not accepted', async () => {
    const c = await login();
    try {
      await c.command('TYPE I', 200);
      const reply = await c.command('EPSV', 229);
      const port = Number(/\|\|\|(\d+)\|/.exec(reply.text)![1]);
      // 127.0.0.2 is a different host on the loopback network.
      const intruder = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.2' });
      const closed = once(intruder, 'close');
      intruder.on('error', () => {});
      await closed;
      const data = net.connect({ port, host: '127.0.0.1' });
      await once(data, 'connect');
      c.send('RETR file.txt');
      await c.expect(150);
      assert.equal((await readAll(data)).toString(), 'hello\n');
      await c.expect(226);
    } finally {
      c.close();
    }
  });

  test('REIN logs out; USER again starts a fresh login', async () => {
    const c = await login();
    try {
      await c.command('REIN', 220);
      assert.equal((await c.command('PWD')).code, 530);
      await c.command(`USER ${USER}`, 331);
      await c.command(`PASS ${PASSWORD}`, 230);
      assert.equal((await c.command('PWD')).code, 257);
      assert.equal((await c.command('QUIT')).code, 221);
      await c.closed();
    } finally {
      c.close();
    }
  });

  test('a wrong password gets 530 and the same reply as an unknown user', async () => {
    const c = await RawClient.connect(srv.port);
    try {
      await c.expect(220);
      await c.command(`USER ${USER}`, 331);
      const wrong = await c.command('PASS nope', 530);
      await c.command('USER nobody', 331);
      const unknown = await c.command('PASS nope', 530);
      assert.equal(wrong.text, unknown.text);
    } finally {
      c.close();
    }
  });
});

describe('IPv6', () => {
  test('over ::1, EPSV and EPRT carry data, PASV points to EPSV, EPRT |1| is refused', async (t) => {
    let srv: TestServer;
    try {
      srv = await startServer(t, { host: '::1' });
    } catch (err) {
      t.skip(`::1 unavailable: ${(err as Error).message}`);
      return;
    }
    await writeFile(path.join(srv.root, 'six.txt'), 'over ipv6');
    const c = await RawClient.login(srv.port, USER, PASSWORD, '::1');
    try {
      await c.command('TYPE I', 200);
      assert.equal((await c.command('PASV')).code, 425);
      assert.equal((await c.command('EPSV 1')).text, 'Network protocol not supported, use (2).');
      assert.equal((await c.command('EPRT |1|127.0.0.1|5000|')).code, 522);
      const data = await c.passive('::1');
      c.send('RETR six.txt');
      await c.expect(150);
      assert.equal((await readAll(data)).toString(), 'over ipv6');
      await c.expect(226);

      const listener = net.createServer();
      await new Promise<void>((resolve) => listener.listen(0, '::1', resolve));
      t.after(async () => void listener.close());
      const accepted = once(listener, 'connection');
      await c.command(`EPRT |2|::1|${(listener.address() as net.AddressInfo).port}|`, 200);
      c.send('RETR six.txt');
      await c.expect(150);
      const [socket] = (await accepted) as [net.Socket];
      assert.equal((await readAll(socket)).toString(), 'over ipv6');
      await c.expect(226);
    } finally {
      c.close();
    }
  });

  test('a dual-stack listener answers PASV with a plain IPv4 address', async (t) => {
    let srv: TestServer;
    try {
      srv = await startServer(t, { host: '::' });
    } catch (err) {
      t.skip(`:: unavailable: ${(err as Error).message}`);
      return;
    }
    const c = await RawClient.login(srv.port, USER, PASSWORD, '127.0.0.1');
    try {
      const reply = await c.command('PASV', 227);
      assert.match(reply.text, /\(127,0,0,1,\d+,\d+\)/);
    } finally {
      c.close();
    }
  });
});
