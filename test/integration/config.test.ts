/**
 * Accounts from a configuration file and a users file, through real
 * servers and clients: permissions command by command, per-directory
 * overrides, address allow-lists, uniform refusals, the HTTP hook.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { hashPassword } from '../../src/auth/password.js';
import { buildServerOptions } from '../../src/config/build.js';
import { loadConfig } from '../../src/config/load.js';
import { createServer } from '../../src/index.js';
import { canBindIpv6Loopback, type Cleanup } from '../helpers/server.js';
import { certificateFiles } from '../helpers/tls.js';
import { loginCode, RawClient, readAll } from '../helpers/ftp-raw.js';

const HASH = await hashPassword('pw', 10);

interface Served {
  port: number;
  root: string;
}

/** A server built from `ferry.yaml` text and a users file in a temp folder, the way `ferry serve` builds it. */
async function serveConfig(t: Cleanup, config: string, users: Record<string, Record<string, unknown>>, host = '127.0.0.1', delayMs = 150): Promise<Served> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-accounts-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const root = path.join(dir, 'files');
  await mkdir(root);
  await writeFile(path.join(dir, 'users.json'), JSON.stringify({ users }));
  await writeFile(path.join(dir, 'ferry.yaml'), `storage:\n  type: local\n  root: files\n  fsync: false\nusers:\n  file: users.json\nlimits:\n  loginFailureDelayMs: ${delayMs}\n${config}`);
  const { config: loaded } = await loadConfig({ file: path.join(dir, 'ferry.yaml'), env: {} });
  const server = createServer({ ...(await buildServerOptions(loaded)), host, port: 0 });
  t.after(() => server.close(0));
  const { port } = await server.listen();
  return { port, root };
}

/** Run `command` (with a data connection when it needs one); the final reply code. */
async function attempt(client: RawClient, command: string, data?: 'download' | 'upload'): Promise<number> {
  let socket: net.Socket | null = null;
  if (data) socket = await client.passive();
  const first = await client.command(command);
  if (first.code !== 150 && first.code !== 125) {
    socket?.destroy();
    return first.code;
  }
  if (data === 'upload') socket!.end('uploaded');
  else await readAll(socket!);
  return (await client.read()).code;
}

const ALL = 'elradfmwMT';
const CASES: Array<{ letter: string; command: string; ok: number; data?: 'download' | 'upload' }> = [
  { letter: 'e', command: 'CWD /dir', ok: 250 },
  { letter: 'l', command: 'MLST /file.txt', ok: 250 },
  { letter: 'r', command: 'RETR /file.txt', ok: 226, data: 'download' },
  { letter: 'a', command: 'APPE /file.txt', ok: 226, data: 'upload' },
  { letter: 'd', command: 'DELE /file.txt', ok: 250 },
  { letter: 'f', command: 'RNFR /file.txt', ok: 350 },
  { letter: 'm', command: 'MKD /newdir', ok: 257 },
  { letter: 'w', command: 'STOR /new.txt', ok: 226, data: 'upload' },
  { letter: 'M', command: 'SITE CHMOD 600 /file.txt', ok: 200 },
  { letter: 'T', command: 'MFMT 20200102030405 /file.txt', ok: 213 },
];

test('permissions are enforced command by command: each letter missing refuses exactly its commands', async (t) => {
  const users: Record<string, Record<string, unknown>> = { all: { passwordHash: HASH, home: '/', permissions: ALL } };
  for (const { letter } of CASES) users[`no-${letter === letter.toUpperCase() ? 'big' : ''}${letter}`] = { passwordHash: HASH, home: '/', permissions: ALL.replace(letter, '') };
  const { port, root } = await serveConfig(t, '', users);
  for (const { letter, command, ok, data } of CASES) {
    await rm(path.join(root, 'newdir'), { recursive: true, force: true });
    await mkdir(path.join(root, 'dir'), { recursive: true });
    await writeFile(path.join(root, 'file.txt'), 'content');
    const name = `no-${letter === letter.toUpperCase() ? 'big' : ''}${letter}`;
    const denied = await RawClient.login(port, name, 'pw');
    t.after(async () => denied.close());
    assert.equal(await attempt(denied, command, data), 550, `${name}: ${command}`);
    denied.close();
    const allowed = await RawClient.login(port, 'all', 'pw');
    t.after(async () => allowed.close());
    assert.equal(await attempt(allowed, command, data), ok, `all: ${command}`);
    allowed.close();
  }
});

test('aliases and per-directory overrides: a read-only user may upload only into /incoming', async (t) => {
  const { port, root } = await serveConfig(t, '', {
    dropper: { passwordHash: HASH, home: '/{username}', permissions: 'read', directories: { '/incoming': 'write' } },
  });
  const client = await RawClient.login(port, 'dropper', 'pw');
  t.after(async () => client.close());
  assert.equal(await attempt(client, 'STOR /top.txt', 'upload'), 550);
  assert.equal(await attempt(client, 'MKD /other'), 550);
  assert.equal(await attempt(client, 'MKD /incoming'), 257, 'a directory is governed by its own rule, so /incoming may be made');
  assert.equal(await attempt(client, 'STOR /incoming/cam.jpg', 'upload'), 226);
  assert.equal(await attempt(client, 'DELE /incoming/cam.jpg'), 550, "'write' does not include delete");
  assert.equal((await stat(path.join(root, 'dropper', 'incoming', 'cam.jpg'))).size, 'uploaded'.length, 'the home was created on first login, under storage.root');
});

test('address allow-lists: a user is refused outside them and served inside', async (t) => {
  const ipv6 = await canBindIpv6Loopback();
  const { port } = await serveConfig(t, '', {
    lan: { passwordHash: HASH, home: '/', allowFrom: ['10.0.0.0/8', '::1'] },
    local: { passwordHash: HASH, home: '/', allowFrom: ['127.0.0.0/8'] },
  });
  const refused = await RawClient.connect(port);
  t.after(async () => refused.close());
  await refused.expect(220);
  await refused.command('USER lan', 331);
  await refused.command('PASS pw', 530);
  (await RawClient.login(port, 'local', 'pw')).close();
  if (!ipv6) return t.diagnostic('IPv6 part skipped: this machine cannot listen on ::1');
  const v6 = await serveConfig(t, 'host: "::1"\n', { lan: { passwordHash: HASH, home: '/', allowFrom: ['10.0.0.0/8', '::1'] } }, '::1');
  (await RawClient.login(v6.port, 'lan', 'pw', '::1')).close();
});

test('unknown, wrong-password, disabled and not-allowed users get the same 530 at the same moment, every time', async (t) => {
  // The delay covers the slowest check (the decoy scrypt for unknown users), so every refusal lands on it.
  const delayMs = 800;
  const { port } = await serveConfig(
    t,
    '',
    {
      alice: { passwordHash: HASH, home: '/' },
      gone: { passwordHash: HASH, home: '/', disabled: true },
      far: { passwordHash: HASH, home: '/', allowFrom: ['192.0.2.0/24'] },
    },
    '127.0.0.1',
    delayMs,
  );
  const attempts = [['nobody', 'pw'], ['alice', 'wrong'], ['gone', 'pw'], ['far', 'pw']] as const;
  const outcomes: Array<{ who: string; text: string; ms: number }> = [];
  // Twice over: a second correct password of a refused user must not come back faster (no cache for them).
  await Promise.all(
    [...attempts, ...attempts].map(async ([who, password]) => {
      const client = await RawClient.connect(port);
      t.after(async () => client.close());
      await client.expect(220);
      await client.command(`USER ${who}`, 331);
      const started = performance.now();
      const reply = await client.command(`PASS ${password}`);
      outcomes.push({ who, text: reply.lines.join('\n'), ms: performance.now() - started });
      client.close();
    }),
  );
  assert.deepEqual(new Set(outcomes.map((o) => o.text)), new Set(['530 Login incorrect.']), JSON.stringify(outcomes));
  for (const o of outcomes) assert.ok(o.ms >= delayMs - 5 && o.ms < delayMs + 150, `${o.who} answered after ${o.ms.toFixed(0)} ms: ${JSON.stringify(outcomes)}`);
});

test('a user the users file refuses is not asked of the HTTP hook, and a null answer refuses', async (t) => {
  let calls = 0;
  let answer = 'null';
  const service = http.createServer((req, res) => {
    calls++;
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json' }).end(answer);
  });
  service.listen(0, '127.0.0.1');
  await once(service, 'listening');
  t.after(async () => {
    service.closeAllConnections();
    await new Promise((r) => service.close(r));
  });
  const url = `http://127.0.0.1:${(service.address() as net.AddressInfo).port}/`;
  const { port } = await serveConfig(t, `authHook:\n  url: ${url}\nanonymous:\n  enabled: true\n`, {
    gone: { passwordHash: HASH, home: '/', disabled: true },
    ftp: { passwordHash: HASH, home: '/' },
  });
  assert.equal(await loginCode(port, 'gone', 'pw'), 530);
  assert.equal(await loginCode(port, 'ftp', 'wrong'), 530, 'a users-file user named ftp is not anonymous');
  assert.equal(calls, 0, 'the hook was never asked about users the users file owns');
  assert.equal(await loginCode(port, 'stranger', 'pw'), 530, 'a 200 with null is no grant');
  answer = '{}';
  assert.equal(await loginCode(port, 'stranger', 'pw'), 230, 'a 200 with an object grants (read-only by default)');
  assert.equal(calls, 2);
});

test('the HTTP hook grants what its service answers, caches grants, and refuses when the service fails', async (t) => {
  const calls: Array<Record<string, unknown>> = [];
  let mode: 'ok' | 'slow' | 'error' = 'ok';
  const service = http.createServer(async (req, res) => {
    let body = '';
    for await (const chunk of req) body += chunk;
    const request = JSON.parse(body) as Record<string, unknown>;
    calls.push(request);
    if (mode === 'slow') return; // never answers: the hook's timeout must fire
    if (mode === 'error') return res.writeHead(500).end('database down');
    if (request.username === 'carol' && request.password === 'from-ldap') {
      return res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ home: '/partners/{username}', permissions: 'full' }));
    }
    res.writeHead(401).end();
  });
  service.listen(0, '127.0.0.1');
  await once(service, 'listening');
  t.after(async () => {
    service.closeAllConnections();
    await new Promise((r) => service.close(r));
  });
  const url = `http://127.0.0.1:${(service.address() as net.AddressInfo).port}/ftp-login`;
  const { port, root } = await serveConfig(t, `authHook:\n  url: ${url}\n  timeoutMs: 500\n`, {});

  const carol = await RawClient.login(port, 'carol', 'from-ldap');
  t.after(async () => carol.close());
  assert.equal(await attempt(carol, 'STOR /report.csv', 'upload'), 226);
  assert.ok((await stat(path.join(root, 'partners', 'carol', 'report.csv'))).isFile());
  carol.close();
  assert.deepEqual(calls[0], { username: 'carol', password: 'from-ldap', remoteAddress: '127.0.0.1', secure: false });

  (await RawClient.login(port, 'carol', 'from-ldap')).close();
  assert.equal(calls.length, 1, 'a granted login is cached');

  for (const [m, user] of [['ok', 'mallory'], ['error', 'dave'], ['slow', 'erin']] as const) {
    mode = m;
    const client = await RawClient.connect(port);
    t.after(async () => client.close());
    await client.expect(220);
    await client.command(`USER ${user}`, 331);
    await client.command('PASS any', 530);
    client.close();
  }
});

test('a per-user TLS policy in the users file: that user must secure the connection before USER', async (t) => {
  const { cert, key } = await certificateFiles(t);
  const { port } = await serveConfig(t, `tls:\n  cert: ${cert}\n  key: ${key}\n  policy: optional\n`, {
    strict: { passwordHash: HASH, home: '/', tls: 'login' },
    easy: { passwordHash: HASH, home: '/' },
  });
  const plain = await RawClient.connect(port);
  t.after(async () => plain.close());
  await plain.expect(220);
  await plain.command('USER strict', 530);
  plain.close();
  assert.equal(await loginCode(port, 'easy', 'pw'), 230, 'the server-wide policy (optional) holds for others');

  const secured = await RawClient.connect(port);
  t.after(async () => secured.close());
  await secured.expect(220);
  await secured.secure();
  await secured.command('USER strict', 331);
  await secured.command('PASS pw', 230);
});

test('an account named anonymous is refused while anonymous login is on: it would share anonymous\'s storage', async (t) => {
  for (const name of ['anonymous', 'Anonymous']) {
    await assert.rejects(serveConfig(t, 'anonymous:\n  enabled: true\n', { [name]: { passwordHash: HASH, home: '/' } }), (err: Error) => {
      assert.match(err.message, new RegExp(`users.json: the account "${name}" clashes with anonymous login`));
      return true;
    });
  }
  await serveConfig(t, 'anonymous:\n  enabled: false\n', { anonymous: { passwordHash: HASH, home: '/' } });
});

test('the anonymous TLS exemption covers anonymous logins only, never a users-file account named ftp', async (t) => {
  const { cert, key } = await certificateFiles(t);
  const { port } = await serveConfig(t, `tls:\n  cert: ${cert}\n  key: ${key}\n  policy: login\nanonymous:\n  enabled: true\n`, {
    ftp: { passwordHash: HASH, home: '/' },
  });
  const client = await RawClient.connect(port);
  t.after(async () => client.close());
  await client.expect(220);
  await client.command('USER ftp', 530);
  await client.command('USER anonymous', 331);
  await client.command('PASS guest@', 230);
});
