import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable, Writable } from 'node:stream';
import { once } from 'node:events';
import { Client } from 'basic-ftp';
import { startExample } from '../../examples/embed.js';

test('the embedding example accepts images from the device and refuses other files', async (t) => {
  const server = await startExample(0);
  t.after(() => server.close(0));
  const client = new Client(5000);
  t.after(() => client.close());
  await client.access({ host: '127.0.0.1', port: server.address()!.port, user: 'camera', password: 'secret' });
  const received = once(server, 'file-received');
  await client.uploadFrom(Readable.from([Buffer.from('jpeg bytes')]), 'photo.jpg');
  const [info] = await received;
  assert.equal(info.path, '/photo.jpg');
  assert.equal(info.bytes, 10);
  await assert.rejects(client.uploadFrom(Readable.from([Buffer.from('x')]), 'notes.txt'), /550/);
  // The device account has no 'r' permission: it cannot read uploads back.
  const sink = new Writable({ write: (_c, _e, cb) => cb() });
  await assert.rejects(client.downloadTo(sink, 'photo.jpg'), /550/);
  assert.deepEqual((await client.list()).map((e) => e.name), ['photo.jpg']);
});
