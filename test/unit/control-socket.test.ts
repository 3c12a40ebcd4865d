/**
 * The local control socket: one JSON request and answer per connection,
 * mode 0600, a stale file replaced, a live one or a foreign file refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ControlError, ControlSocket, controlRequest } from '../../src/server/control-socket.js';

async function folder(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-control-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('a request runs its handler and gets its result; errors come back as their message', async (t) => {
  const socketPath = path.join(await folder(t), 'ferry.sock');
  const control = await ControlSocket.listen(socketPath, {
    echo: (args) => ({ got: args }),
    fail: () => {
      throw new TypeError('192.0.2.1 is on defender.allowList');
    },
    slow: async () => 'late',
  });
  t.after(() => control.close());
  assert.equal((await stat(socketPath)).mode & 0o777, 0o600);
  assert.deepEqual(await controlRequest(socketPath, 'echo', { a: 1 }), { got: { a: 1 } });
  assert.equal(await controlRequest(socketPath, 'slow'), 'late');
  await assert.rejects(controlRequest(socketPath, 'fail'), (err: Error) => err instanceof ControlError && /allowList/.test(err.message));
  await assert.rejects(controlRequest(socketPath, 'nope'), /unknown command "nope"; this server knows echo, fail, slow/);
  await control.close();
  await assert.rejects(stat(socketPath), /ENOENT/, 'closing removes the socket file');
  await assert.rejects(controlRequest(socketPath, 'echo'), /no control socket at .*is the server running/);
});

test('a socket file left by a stopped server is replaced; a live one and a plain file are refused', async (t) => {
  const dir = await folder(t);
  const stale = path.join(dir, 'stale.sock');
  // A listener that exits without removing its file, as a killed server leaves it.
  execFileSync('python3', ['-c', 'import socket,sys; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen()', stale]);
  await assert.rejects(controlRequest(stale, 'x'), /no server is listening there/);
  const control = await ControlSocket.listen(stale, { x: () => 1 });
  t.after(() => control.close());
  assert.equal(await controlRequest(stale, 'x'), 1);
  await assert.rejects(ControlSocket.listen(stale, {}), /another server is running with it/);
  const plain = path.join(dir, 'plain');
  await writeFile(plain, '');
  await assert.rejects(ControlSocket.listen(plain, {}), /not a socket/);
});

test('a request that is not JSON, or too long, is refused and the connection closed', async (t) => {
  const socketPath = path.join(await folder(t), 'ferry.sock');
  const control = await ControlSocket.listen(socketPath, {});
  t.after(() => control.close());
  const send = (data: string) =>
    new Promise<string>((resolve, reject) => {
      const socket = net.connect(socketPath);
      let text = '';
      socket.on('data', (d) => (text += d));
      socket.on('close', () => resolve(text));
      socket.on('error', reject);
      socket.write(data);
    });
  assert.deepEqual(JSON.parse(await send('hello\n')), { ok: false, error: 'the request is not JSON' });
  assert.deepEqual(JSON.parse(await send('x'.repeat(70_000))), { ok: false, error: 'request too long' });
});
