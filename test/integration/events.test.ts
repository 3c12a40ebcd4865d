/**
 * The library's events and awaited hooks over real sessions: the order and
 * payload of every event (as pyftpdlib's callback tests do: QUIT, REIN, a
 * failed login, aborted uploads and downloads), login-failed reasons, and
 * hooks that refuse, rewrite, throw and time out.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile, mkdir, mkdtemp, rm, access } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { Client } from 'basic-ftp';
import { Readable } from 'node:stream';
import { createServer, LocalStorage, UserListAuthenticator, type FtpServer, type ServerEvents } from '../../src/index.js';
import { RawClient, readAll, uploadBytes } from '../helpers/ftp-raw.js';
import { PASSWORD, startServer, USER } from '../helpers/server.js';

type Seen = { name: keyof ServerEvents; info: Record<string, unknown> };

const NAMES: Array<keyof ServerEvents> = ['connect', 'login', 'login-failed', 'logout', 'file-received', 'upload-aborted', 'file-sent', 'download-aborted', 'delete', 'rename', 'mkdir', 'rmdir', 'disconnect'];

function record(server: FtpServer): Seen[] {
  const seen: Seen[] = [];
  for (const name of NAMES) (server.on as (n: string, f: (info: Record<string, unknown>) => void) => void).call(server, name, (info) => seen.push({ name, info }));
  return seen;
}

async function until(check: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('events', () => {
  test('a whole session: each event once, in order, with one set of field names', async (t) => {
    const { server, port, root } = await startServer(t);
    const seen = record(server);
    await writeFile(path.join(root, 'down.txt'), 'hello world\n');
    const client = await RawClient.connect(port);
    t.after(() => client.close());
    await client.expect(220);
    await client.command(`USER ${USER}`, 331);
    await client.command('PASS Xyzzy-9', 530);
    await client.command(`USER ${USER}`, 331);
    await client.command(`PASS ${PASSWORD}`, 230);
    await client.command('TYPE I', 200);
    assert.equal(await uploadBytes(client, 'STOR', 'up.bin', 5000), 226);
    const data = await client.passive();
    await client.command('RETR down.txt', 150);
    assert.equal((await readAll(data)).toString(), 'hello world\n');
    await client.expect(226);
    await client.command('MKD d', 257);
    await client.command('RNFR up.bin', 350);
    await client.command('RNTO d/up.bin', 250);
    await client.command('DELE d/up.bin', 250);
    await client.command('RMD d', 250);
    await client.command('REIN', 220);
    await client.command(`USER ${USER}`, 331);
    await client.command(`PASS ${PASSWORD}`, 230);
    await client.command('QUIT', 221);
    await until(() => seen.some((s) => s.name === 'disconnect'), 'disconnect');

    assert.deepEqual(
      seen.map((s) => s.name),
      ['connect', 'login-failed', 'login', 'file-received', 'file-sent', 'mkdir', 'rename', 'delete', 'rmdir', 'logout', 'login', 'logout', 'disconnect'],
    );
    const sessionId = (seen[0]!.info as { sessionId: string }).sessionId;
    for (const { name, info } of seen) {
      assert.equal(info.sessionId, sessionId, `${name}: sessionId`);
      assert.equal(info.remoteAddress, '127.0.0.1', `${name}: remoteAddress`);
      if (name !== 'connect' && name !== 'disconnect') assert.equal(info.username, USER, `${name}: username`);
      assert.ok(!JSON.stringify(info).includes(PASSWORD) && !JSON.stringify(info).includes('Xyzzy-9'), `${name} carries no password`);
    }
    const by = (name: string, i = 0) => seen.filter((s) => s.name === name)[i]!.info;
    assert.equal(by('login-failed').reason, 'wrong-password');
    assert.equal(by('login').secure, false);
    const received = by('file-received');
    assert.equal(received.path, '/up.bin');
    assert.equal(received.bytes, 5000);
    assert.equal(received.mode, 'replace');
    assert.equal(received.offset, 0);
    assert.equal(typeof received.durationMs, 'number');
    const sent = by('file-sent');
    assert.equal(sent.path, '/down.txt');
    assert.equal(sent.bytes, 12);
    assert.deepEqual([by('mkdir').path, by('rename').from, by('rename').to, by('delete').path, by('rmdir').path], ['/d', '/up.bin', '/d/up.bin', '/d/up.bin', '/d']);
    assert.equal(typeof by('logout').durationMs, 'number');
    assert.equal(by('disconnect').username, USER, 'the user logged in at the close');
    assert.ok((by('disconnect').durationMs as number) >= 0);
  });

  test('a client that closes while logged in: logout, then disconnect with its name', async (t) => {
    const { server, port } = await startServer(t);
    const seen = record(server);
    const client = await RawClient.login(port, USER, PASSWORD);
    client.close();
    await until(() => seen.some((s) => s.name === 'disconnect'), 'disconnect');
    assert.deepEqual(seen.map((s) => s.name), ['connect', 'login', 'logout', 'disconnect']);
    assert.equal(seen[3]!.info.username, USER);
  });

  test('an upload aborted by ABOR: upload-aborted with its reason, the old file kept; then a download aborted', async (t) => {
    const { server, port, root } = await startServer(t);
    const seen = record(server);
    await writeFile(path.join(root, 'keep.bin'), 'old');
    await writeFile(path.join(root, 'big.bin'), Buffer.alloc(64 * 1024 * 1024));
    const client = await RawClient.login(port, USER, PASSWORD);
    t.after(() => client.close());
    await client.command('TYPE I', 200);
    let data = await client.passive();
    await client.command('STOR keep.bin', 150);
    data.write(Buffer.alloc(1000, 1));
    await until(() => client.socket.writable, 'socket');
    await new Promise((r) => setTimeout(r, 100));
    client.send('ABOR');
    assert.equal((await client.read()).code, 426);
    assert.equal((await client.read()).code, 226);
    data.destroy();
    await until(() => seen.some((s) => s.name === 'upload-aborted'), 'upload-aborted');
    assert.equal(await readFile(path.join(root, 'keep.bin'), 'utf8'), 'old');
    const aborted = seen.find((s) => s.name === 'upload-aborted')!.info;
    assert.equal(aborted.path, '/keep.bin');
    assert.match(aborted.reason as string, /aborted/);
    assert.ok(!seen.some((s) => s.name === 'file-received'));

    // A download the client stops reading and aborts.
    data = await client.passive();
    data.pause();
    await client.command('RETR big.bin', 150);
    await new Promise((r) => setTimeout(r, 100));
    client.send('ABOR');
    assert.equal((await client.read()).code, 426);
    assert.equal((await client.read()).code, 226);
    data.destroy();
    await until(() => seen.some((s) => s.name === 'download-aborted'), 'download-aborted');
    const stopped = seen.find((s) => s.name === 'download-aborted')!.info;
    assert.equal(stopped.path, '/big.bin');
    assert.ok((stopped.bytes as number) < 64 * 1024 * 1024);
    assert.ok(!seen.some((s) => s.name === 'file-sent'));
  });

  test('a client that vanishes mid-upload: upload-aborted comes before logout and disconnect', async (t) => {
    const { server, port, root } = await startServer(t);
    const seen = record(server);
    await writeFile(path.join(root, 'keep.bin'), 'old');
    const client = await RawClient.login(port, USER, PASSWORD);
    await client.command('TYPE I', 200);
    const data = await client.passive();
    await client.command('STOR keep.bin', 150);
    data.write(Buffer.alloc(1000, 1));
    await new Promise((r) => setTimeout(r, 100));
    client.socket.destroy();
    data.destroy();
    await until(() => seen.some((s) => s.name === 'disconnect'), 'disconnect');
    assert.deepEqual(seen.map((s) => s.name), ['connect', 'login', 'upload-aborted', 'logout', 'disconnect']);
    assert.equal(await readFile(path.join(root, 'keep.bin'), 'utf8'), 'old');
  });

  test('login-failed says why: unknown user, wrong password, TLS required', async (t) => {
    const { server, port } = await startServer(t);
    const seen = record(server);
    for (const [user, pass] of [['nobody', 'x'], [USER, 'wrong']] as const) {
      const client = await RawClient.connect(port);
      await client.expect(220);
      await client.command(`USER ${user}`, 331);
      await client.command(`PASS ${pass}`, 530);
      client.close();
    }
    const failed = seen.filter((s) => s.name === 'login-failed').map((s) => [s.info.username, s.info.reason]);
    assert.deepEqual(failed, [['nobody', 'unknown-user'], [USER, 'wrong-password']]);
  });
});

describe('awaited hooks', () => {
  test('beforeUpload refuses with the reason the client sees, and rewrites the path', async (t) => {
    const asked: unknown[] = [];
    const { server, port, root } = await startServer(t, {
      hookTimeoutMs: 2000,
      beforeListen: (s) =>
        s.hook('beforeUpload', (request) => {
          asked.push(request);
          if (request.path.endsWith('.exe')) return { deny: 'No executables here.\r\n230 injected' };
          if (request.path.startsWith('/inbox/')) return undefined;
          return { path: `/inbox${request.path}` };
        }),
    });
    const seen = record(server);
    await mkdir(path.join(root, 'inbox'));
    const client = await RawClient.login(port, USER, PASSWORD);
    t.after(() => client.close());
    await client.command('TYPE I', 200);
    await client.command('ALLO 300', 202);
    const data = await client.passive();
    const refused = await client.command('STOR virus.exe');
    data.destroy();
    // One line: the reason's CR LF cannot smuggle a second reply.
    assert.equal(`${refused.code} ${refused.text}`, '550 No executables here. 230 injected');
    await assert.rejects(access(path.join(root, 'virus.exe')));
    assert.equal(await uploadBytes(client, 'STOR', 'photo.jpg', 300), 226);
    assert.equal((await readFile(path.join(root, 'inbox', 'photo.jpg'))).length, 300);
    assert.equal(seen.find((s) => s.name === 'file-received')!.info.path, '/inbox/photo.jpg');
    assert.deepEqual(asked[0], { sessionId: (asked[0] as { sessionId: string }).sessionId, remoteAddress: '127.0.0.1', username: USER, path: '/virus.exe', size: 300, mode: 'replace', offset: 0 });
    assert.equal((asked[1] as { size: number | null }).size, null, 'ALLO counts for the next upload only');
  });

  test('a hook that takes too long or throws refuses with 451 (fail closed), and the server goes on', async (t) => {
    const { port, root } = await startServer(t, {
      hookTimeoutMs: 200,
      beforeListen: (s) =>
        s.hook('beforeDownload', async ({ path: p }) => {
          if (p === '/slow.txt') await new Promise((r) => setTimeout(r, 2000));
          if (p === '/bad.txt') throw new Error('policy service down');
        }),
    });
    await writeFile(path.join(root, 'slow.txt'), 'x');
    await writeFile(path.join(root, 'bad.txt'), 'x');
    const client = await RawClient.login(port, USER, PASSWORD);
    t.after(() => client.close());
    for (const name of ['slow.txt', 'bad.txt']) {
      const data = await client.passive();
      const started = Date.now();
      const reply = await client.command(`RETR ${name}`);
      data.destroy();
      assert.equal(reply.code, 451, `${name}: ${reply.text}`);
      assert.ok(Date.now() - started < 1500, 'the timeout bounds the wait');
    }
    await client.command('NOOP', 200);
  });

  test('beforeLogin refuses with its reason (530, no offence scored); beforeDelete and beforeRename refuse and rewrite', async (t) => {
    const { server, port, root } = await startServer(t, {
      beforeListen: (s) =>
        s
          .hook('beforeLogin', ({ remoteAddress, username }) => (username === USER && remoteAddress === '127.0.0.1' ? undefined : { deny: 'Not today.' }))
          .hook('beforeDelete', ({ path: p }) => (p.startsWith('/keep') ? { deny: 'Kept by policy.' } : undefined))
          .hook('beforeRename', ({ to }) => ({ to: `/archive${to}` })),
    });
    const seen = record(server);
    await writeFile(path.join(root, 'keep.txt'), 'x');
    await writeFile(path.join(root, 'move.txt'), 'x');
    await mkdir(path.join(root, 'archive'));
    const other = await RawClient.connect(port);
    await other.expect(220);
    await other.command('USER bob', 331);
    assert.equal((await other.command('PASS pw', 530)).text, 'Not today.');
    other.close();
    assert.equal(seen.find((s) => s.name === 'login-failed')!.info.reason, 'denied-by-hook');
    assert.deepEqual(await server.shared.defender.list(), [], 'a policy refusal is not a guess');
    const client = await RawClient.login(port, USER, PASSWORD);
    t.after(() => client.close());
    assert.equal((await client.command('DELE keep.txt', 550)).text, 'Kept by policy.');
    await client.command('RNFR move.txt', 350);
    await client.command('RNTO moved.txt', 250);
    await access(path.join(root, 'archive', 'moved.txt'));
    assert.deepEqual(seen.find((s) => s.name === 'rename')!.info.to, '/archive/moved.txt');
  });

  test('a rewrite to a path the user may not use is refused like the client\'s own path: nothing read, nothing written', async (t) => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'ferry-hook-perm-'));
    t.after(() => rm(root, { recursive: true, force: true }));
    await mkdir(path.join(root, 'private'));
    await mkdir(path.join(root, 'readonly'));
    await writeFile(path.join(root, 'private', 'secret.txt'), 'secret');
    await writeFile(path.join(root, 'open.txt'), 'open');
    const authenticator = new UserListAuthenticator([
      { username: USER, password: PASSWORD, storage: new LocalStorage(root), permissions: 'elrw', directoryPermissions: { '/private': 'el', '/readonly': 'elr' } },
    ]);
    const server = createServer({ authenticator, host: '127.0.0.1', port: 0, loginFailureDelayMs: 10 });
    server.hook('beforeDownload', () => ({ path: '/private/secret.txt' }));
    server.hook('beforeUpload', ({ path: p }) => ({ path: `/readonly${p}` }));
    const seen = record(server);
    const { port } = await server.listen();
    t.after(() => server.close(0));
    const client = await RawClient.login(port, USER, PASSWORD);
    t.after(() => client.close());
    let data = await client.passive();
    assert.equal((await client.command('RETR open.txt')).code, 550);
    data.destroy();
    data = await client.passive();
    assert.equal((await client.command('STOR new.txt')).code, 550);
    data.destroy();
    await assert.rejects(access(path.join(root, 'readonly', 'new.txt')));
    await client.command('NOOP', 200);
    assert.deepEqual(seen.filter((s) => s.name === 'file-sent' || s.name === 'file-received'), []);
  });

  test('hooks are registered before listen(), and only known names', async (t) => {
    const { server } = await startServer(t);
    assert.throws(() => server.hook('beforeUpload', () => undefined), /before listen\(\)/);
    assert.throws(() => server.hook('afterEverything' as never, () => undefined), /not a hook/);
  });

  test('a real client (basic-ftp) sees the refusal text', async (t) => {
    const { port } = await startServer(t, { beforeListen: (s) => s.hook('beforeUpload', () => ({ deny: 'Uploads are closed for maintenance.' })) });
    const client = new Client(10_000);
    t.after(() => client.close());
    await client.access({ host: '127.0.0.1', port, user: USER, password: PASSWORD });
    await assert.rejects(client.uploadFrom(Readable.from([Buffer.from('x')]), 'a.txt'), /550 Uploads are closed for maintenance\./);
  });
});
