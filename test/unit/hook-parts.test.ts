/** The pure parts of the daemon's hooks: FERRY_* names, the bounded queue, the multipart ETag of the S3 digest tag. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { delivery, envName, eventEnvironment } from '../../src/observability/hook-event.js';
import { HookQueue } from '../../src/observability/hook-queue.js';
import { multipartEtag } from '../../src/storage/s3-upload.js';

test('event fields become FERRY_ variables in upper snake case; null, absent and non-scalar fields are left out', () => {
  assert.equal(envName('sessionId'), 'FERRY_SESSION_ID');
  assert.equal(envName('sha256'), 'FERRY_SHA256');
  assert.equal(envName('durationMs'), 'FERRY_DURATION_MS');
  const d = delivery('disconnect', { sessionId: 'a1', remoteAddress: '::1', username: null, durationMs: 12, nested: { x: 1 } }, 'id-1');
  assert.deepEqual(eventEnvironment(d), {
    FERRY_SESSION_ID: 'a1',
    FERRY_REMOTE_ADDRESS: '::1',
    FERRY_DURATION_MS: '12',
    FERRY_EVENT: 'disconnect',
    FERRY_EVENT_ID: 'id-1',
    FERRY_TIME: d.time,
  });
  assert.deepEqual(delivery('error', new Error('listen EADDRINUSE')).info, { message: 'listen EADDRINUSE' });
});

test('the hook queue runs `concurrency` jobs, keeps `capacity` waiting, refuses the rest, and says when it is idle', async () => {
  const queue = new HookQueue(2, 1);
  const releases: Array<() => void> = [];
  const job = () => new Promise<void>((resolve) => releases.push(resolve));
  assert.deepEqual([queue.push(job), queue.push(job), queue.push(job), queue.push(job)], [true, true, true, false]);
  assert.equal(queue.running, 2);
  assert.equal(queue.waiting, 1);
  assert.equal(await queue.idle(20), false);
  releases.shift()!();
  await new Promise((r) => setImmediate(r));
  assert.equal(queue.running, 2, 'the waiting job took the freed slot');
  assert.equal(queue.waiting, 0);
  const idle = queue.idle(5000);
  for (const release of releases.splice(0)) release();
  assert.equal(await idle, true);
  // A job that rejects frees its slot too.
  assert.equal(queue.push(() => Promise.reject(new Error('x'))), true);
  assert.equal(await queue.idle(1000), true);
});

test('the multipart ETag is the MD5 of the parts\' MD5s and their count; a part without an MD5 ETag gives none', () => {
  const md5 = (s: string) => createHash('md5').update(s).digest('hex');
  const parts = [{ PartNumber: 1, ETag: `"${md5('a')}"` }, { PartNumber: 2, ETag: md5('b') }];
  const expected = createHash('md5').update(Buffer.concat([Buffer.from(md5('a'), 'hex'), Buffer.from(md5('b'), 'hex')])).digest('hex');
  assert.equal(multipartEtag(parts), `${expected}-2`);
  assert.equal(multipartEtag([{ PartNumber: 1, ETag: 'not-an-md5' }]), '');
});

test('every key of hooks set in a file reaches the hooks\' settings (none validates and stays unused)', async () => {
  const { parseYaml, validate } = await import('../../src/config/validate.js');
  const { configSchema } = await import('../../src/config/schema.js');
  const { hookSettings } = await import('../../src/cli/hooks.js');
  const yaml = `hooks:
  concurrency: 7
  queueSize: 9
  commands:
    - events: [file-received, ban]
      command: [/bin/echo, hi]
      env: { QUEUE: in }
      timeoutMs: 1234
  webhooks:
    - events: [login-failed]
      url: http://127.0.0.1:8080/w
      secret: s1
      timeoutMs: 2345
      retries: 5
      retryDelayMs: 67
  beforeUpload:
    url: http://127.0.0.1:8080/u
    secret: s2
    timeoutMs: 3456
`;
  const { source, value } = parseYaml('ferry.yaml', yaml);
  const settings = await hookSettings(validate(configSchema, value, source).hooks);
  assert.deepEqual(settings, {
    events: {
      concurrency: 7,
      queueSize: 9,
      commands: [{ events: ['file-received', 'ban'], command: ['/bin/echo', 'hi'], env: { QUEUE: 'in' }, timeoutMs: 1234 }],
      webhooks: [{ events: ['login-failed'], url: 'http://127.0.0.1:8080/w', secret: 's1', timeoutMs: 2345, retries: 5, retryDelayMs: 67 }],
    },
    beforeUpload: { url: 'http://127.0.0.1:8080/u', secret: 's2', timeoutMs: 3456 },
  });
});
