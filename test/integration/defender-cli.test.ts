/**
 * `ferry ban list|add|remove` against a running `ferry serve`, in one
 * process and with --workers 2 (the defender lives in the primary; workers
 * report to it), through the control socket named in the configuration.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { hashPassword } from '../../src/auth/password.js';
import { runCliToEnd, startCli } from '../helpers/cli.js';
import { RawClient } from '../helpers/ftp-raw.js';
import type { Cleanup } from '../helpers/server.js';

const HOST = '127.0.0.1';

async function operatorDir(t: Cleanup, workers: number): Promise<{ dir: string; socket: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-ban-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await mkdir(path.join(dir, 'files'));
  const socket = path.join(dir, 'control.sock');
  await writeFile(path.join(dir, 'users.yaml'), `users:\n  alice:\n    passwordHash: "${await hashPassword('pw', 10)}"\n`);
  await writeFile(
    path.join(dir, 'ferry.yaml'),
    [
      `host: ${HOST}`,
      'port: 0',
      `workers: ${workers}`,
      `controlSocket: ${socket}`,
      'storage:\n  type: local\n  root: files',
      'users:\n  file: users.yaml',
      'limits:\n  loginFailureDelayMs: 20',
      'logging:\n  level: info',
      'defender:\n  allowList: [127.0.9.0/24]',
      '',
    ].join('\n'),
  );
  return { dir, socket };
}

async function greeting(port: number, from: string): Promise<number> {
  const client = await RawClient.connect(port, HOST, from);
  try {
    return (await client.read()).code;
  } finally {
    client.close();
  }
}

/** A guesser's connection: 3 wrong passwords (fewer once refused). */
async function guess(port: number, from: string): Promise<void> {
  const client = await RawClient.connect(port, HOST, from);
  try {
    if ((await client.read()).code !== 220) return;
    for (let i = 0; i < 3; i++) {
      await client.command('USER alice', 331);
      if ((await client.command(`PASS nope${i}`)).code !== 530) return;
    }
  } finally {
    client.close();
  }
}

for (const workers of [1, 2]) {
  test(`ferry ban list, add and remove act on a running server (${workers === 1 ? 'one process' : '--workers 2'})`, async (t) => {
    const { dir, socket } = await operatorDir(t, workers);
    const ferry = await startCli(t, ['serve', '--config', 'ferry.yaml'], dir);
    const ban = (...args: string[]) => runCliToEnd(['ban', ...args, '--config', 'ferry.yaml'], dir);
    assert.equal((await stat(socket)).mode & 0o777, 0o600);

    const empty = await ban('list');
    assert.equal(empty.code, 0, empty.stderr);
    assert.equal(empty.stdout, 'No address is banned.\n');

    // By hand: refused at once, listed, lifted.
    const added = await ban('add', '127.0.8.1', '--duration', '2h', '--reason', 'scanner');
    assert.equal(added.code, 0, added.stderr);
    assert.match(added.stdout, /^Banned 127\.0\.8\.1 until \d{4}-\d\d-\d\dT/);
    assert.equal(await greeting(ferry.port, '127.0.8.1'), 421);
    assert.equal(await greeting(ferry.port, '127.0.8.2'), 220);

    // Automatic: a guesser whose connections land on every worker, counted as one.
    for (let i = 0; i < 4; i++) await guess(ferry.port, '127.0.8.3');
    assert.equal(await greeting(ferry.port, '127.0.8.3'), 421);
    const listed = await ban('list');
    assert.equal(listed.code, 0, listed.stderr);
    const lines = listed.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^ADDRESS\s+UNTIL\s+REASON$/);
    assert.match(lines[1]!, /^127\.0\.8\.3\s+\S+Z\s+10 failed logins within 10 min$/);
    assert.match(lines[2]!, /^127\.0\.8\.1\s+\S+Z\s+scanner \(by hand\)$/);
    assert.match(ferry.output(), /"msg":"address banned"/);
    if (workers === 2) {
      const from = new Set([...ferry.output().matchAll(/"worker":(\d+)[^\n]*"msg":"login-failed"/g)].map((m) => m[1]));
      assert.deepEqual([...from].sort(), ['0', '1'], 'the failures were spread over both workers');
    }

    const removed = await ban('remove', '127.0.8.3');
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal(removed.stdout, "Lifted the ban on 127.0.8.3; its score is reset.\n");
    assert.equal(await greeting(ferry.port, '127.0.8.3'), 220);
    // Its score was reset too: nine more failures do not ban it again.
    for (let i = 0; i < 3; i++) await guess(ferry.port, '127.0.8.3');
    assert.equal(await greeting(ferry.port, '127.0.8.3'), 220);

    const again = await ban('remove', '127.0.8.9');
    assert.equal(again.stdout, '127.0.8.9 was not banned; its score, if any, is reset.\n');
    const allowed = await ban('add', '127.0.9.5');
    assert.equal(allowed.code, 1);
    assert.match(allowed.stderr, /127\.0\.9\.5 is on defender\.allowList/);
    const bad = await ban('add', '127.0.8.1', '--duration', 'soon');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--duration soon: expected a number and a unit, like 90s/);
    const json = JSON.parse((await ban('list', '--json')).stdout) as Array<{ address: string; manual: boolean }>;
    assert.deepEqual(json.map((b) => [b.address, b.manual]), [['127.0.8.1', true]]);

    // A reload (SIGHUP) reaches the defender (in the primary with workers): a new deny list applies at once.
    assert.equal(await greeting(ferry.port, '127.0.8.5'), 220);
    const file = path.join(dir, 'ferry.yaml');
    await writeFile(file, (await readFile(file, 'utf8')).replace('allowList: [127.0.9.0/24]', 'allowList: [127.0.9.0/24]\n  denyList: [127.0.8.5]'));
    ferry.child.kill('SIGHUP');
    const deadline = Date.now() + 10_000;
    while ((await greeting(ferry.port, '127.0.8.5')) !== 421) {
      assert.ok(Date.now() < deadline, `the reload did not deny 127.0.8.5: ${ferry.output()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(await greeting(ferry.port, '127.0.8.1'), 421, 'bans in force survive the reload');
  });
}

test('ferry ban says what to do when no server is there', async (t) => {
  const { dir, socket } = await operatorDir(t, 1);
  const result = await runCliToEnd(['ban', 'list', '--config', 'ferry.yaml'], dir);
  assert.equal(result.code, 1);
  assert.equal(result.stderr, `ferry: no control socket at ${socket}: is the server running, with this configuration? (its controlSocket setting, or the default for its port)\n`);
});
