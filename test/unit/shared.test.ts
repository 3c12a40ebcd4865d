/** State shared across processes (server/shared.ts) and the session counter built on it. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { test } from 'node:test';
import { UserSessions } from '../../src/limits/user-sessions.js';
import { local } from '../../src/server/shared.js';

test('UserSessions: acquire checks and counts in one step; leases are released once; a dead owner gives its slots back', () => {
  const sessions = new UserSessions();
  assert.equal(sessions.acquire('cam', 2, 'w1', 'a'), true);
  assert.equal(sessions.acquire('cam', 2, 'w2', 'b'), true);
  assert.equal(sessions.acquire('cam', 2, 'w1', 'c'), false, 'the third is refused');
  assert.equal(sessions.acquire('bob', 0, 'w1', 'd'), true, '0 is no limit, but counted');
  assert.equal(sessions.acquire('bob', 0, 'w1', 'd'), false, 'a lease is granted once');
  assert.equal(sessions.count('bob'), 1);
  sessions.release('c'); // never granted: nothing changes
  assert.equal(sessions.count('cam'), 2);
  sessions.release('a');
  sessions.release('a');
  assert.equal(sessions.count('cam'), 1, 'a second release of the same lease is ignored');
  sessions.forgetOwner('w2');
  sessions.forgetOwner('w1');
  assert.equal(sessions.count('cam'), 0);
  assert.equal(sessions.count('bob'), 0);
});

test('local(): the object behind a promise interface; a throw is a rejection', async () => {
  const shared = local(new UserSessions());
  assert.equal(await shared.acquire('cam', 1, 'me', 'x'), true);
  assert.equal(await shared.count('cam'), 1);
  const failing = local({ boom(): never { throw new Error('boom'); } });
  await assert.rejects(failing.boom(), /boom/);
});

test('over cluster IPC: calls run in the primary, errors keep their code, only declared methods answer, timeouts reject, a dead worker is forgotten', async () => {
  const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), path.resolve('test/helpers/shared-cluster.ts')], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const [code] = await once(child, 'exit');
  clearTimeout(timer);
  assert.equal(code, 0, out);
  const report = JSON.parse(out);
  const r = report.results;
  assert.deepEqual(r.add, { value: [1, 3] }, 'calls are answered in the order sent');
  assert.deepEqual(r.fail, { error: 'refused on purpose', code: 'E_PURPOSE' });
  assert.match(r.never.error, /did not answer counter\.never within 300 ms/);
  assert.match(r.toString.error, /no shared method counter\.toString/, 'Object.prototype methods are not callable');
  assert.match(r.forgetOwner.error, /no shared method counter\.forgetOwner/, 'only the primary calls forgetOwner');
  assert.match(r.missing.error, /no shared method nothing-here\.x/);
  assert.equal(report.total, 3);
  assert.equal(r.owner, report.worker);
  assert.deepEqual(report.forgotten, [report.worker], 'the dead worker was forgotten, once');
});
