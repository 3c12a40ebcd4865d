/**
 * Faults: ABOR at every stage of an upload and of a download (before the
 * data connection, mid-transfer, after the data's end) and ABOR storms
 * (many, pipelined). Each ends in RFC 959's replies (426 for the transfer,
 * then 226 for ABOR), the matching event and log line, the session still
 * usable, no temp file; a healthy client beside it is unaffected.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { RawClient } from '../helpers/ftp-raw.js';
import { PASSWORD, USER } from '../helpers/server.js';
import { BIG_BYTES, dataConnection, eventFor, healthyClient, logLineFor, noSessionsLeft, sha256, tempFiles, OLD, serverWithClient, waitFor, type FaultServer, type Healthy } from './fault-helpers.js';

interface Fixture {
  srv: FaultServer;
  client: RawClient;
  healthy: Healthy;
}

async function setUp(t: TestContext): Promise<Fixture> {
  const { srv, client } = await serverWithClient(t);
  return { srv, client, healthy: healthyClient(srv.port) };
}

/** ABOR's two replies (RFC 959 §4.1.3): 426 for the transfer, then 226 for ABOR itself. */
async function abort(client: RawClient): Promise<void> {
  client.send('ABOR');
  await client.expect(426);
  assert.equal((await client.expect(226)).text, 'ABOR successful.');
}

/** The session goes on after the fault; then the healthy client, sessions and temp files are checked. */
async function finish({ srv, client, healthy }: Fixture, event: string, file: string): Promise<void> {
  await eventFor(srv, event, file);
  logLineFor(srv, event, file);
  await client.command('NOOP', 200);
  await client.command('QUIT', 221);
  assert.ok((await healthy.stop()) >= 1);
  await noSessionsLeft(srv);
  assert.deepEqual(await tempFiles(srv.root), [], 'no temp file left');
}

async function oldFileKept(srv: FaultServer): Promise<void> {
  assert.equal(await readFile(path.join(srv.root, 'old.txt'), 'utf8'), OLD);
}

describe('ABOR during an upload', () => {
  it('before the data connection: 426, 226, upload-aborted, old file kept', async (t) => {
    const fx = await setUp(t);
    await fx.client.command('EPSV', 229);
    await fx.client.command('STOR old.txt', 150);
    await abort(fx.client);
    await finish(fx, 'upload-aborted', '/old.txt');
    await oldFileKept(fx.srv);
  });

  it('mid-transfer: 426, 226, upload-aborted, old file kept', async (t) => {
    const fx = await setUp(t);
    const data = await dataConnection(fx.client);
    await fx.client.command('STOR old.txt', 150);
    data.write(randomBytes(1024 * 1024));
    await waitFor(async () => (await tempFiles(fx.srv.root)).length > 0, 'the upload to reach the disk');
    await abort(fx.client);
    data.destroy();
    await finish(fx, 'upload-aborted', '/old.txt');
    await oldFileKept(fx.srv);
  });

  it('right after the data has ended: the replies, the event and the disk agree', async (t) => {
    const fx = await setUp(t);
    const content = randomBytes(1024 * 1024);
    const data = await dataConnection(fx.client);
    await fx.client.command('STOR old.txt', 150);
    data.end(content);
    await once(data, 'finish');
    fx.client.send('ABOR');
    const first = await fx.client.read();
    const second = await fx.client.expect(226);
    const onDisk = await readFile(path.join(fx.srv.root, 'old.txt'));
    if (first.code === 426) {
      // ABOR came within the settle window: the upload did not count.
      assert.equal(second.text, 'ABOR successful.');
      assert.equal(onDisk.toString(), OLD);
      await finish(fx, 'upload-aborted', '/old.txt');
    } else {
      assert.equal(first.code, 226, 'the upload committed before ABOR');
      assert.equal(second.text, 'No transfer to abort.');
      assert.equal(sha256(onDisk), sha256(content));
      await finish(fx, 'file-received', '/old.txt');
    }
  });
});

describe('ABOR during a download', () => {
  it('before the data connection: 426, 226, download-aborted', async (t) => {
    const fx = await setUp(t);
    await fx.client.command('EPSV', 229);
    await fx.client.command('RETR big.bin', 150);
    await abort(fx.client);
    await finish(fx, 'download-aborted', '/big.bin');
  });

  it('mid-transfer: 426, 226, download-aborted', async (t) => {
    const fx = await setUp(t);
    const data = await dataConnection(fx.client);
    await fx.client.command('RETR big.bin', 150);
    await once(data, 'data');
    data.pause();
    await abort(fx.client);
    data.destroy();
    await finish(fx, 'download-aborted', '/big.bin');
  });

  it('after the data has ended: 226 for the transfer, then 226 "No transfer to abort."', async (t) => {
    const fx = await setUp(t);
    const data = await dataConnection(fx.client);
    await fx.client.command('RETR big.bin', 150);
    data.resume();
    await once(data, 'end');
    await fx.client.expect(226);
    fx.client.send('ABOR');
    assert.equal((await fx.client.expect(226)).text, 'No transfer to abort.');
    await finish(fx, 'file-sent', '/big.bin');
  });
});

describe('ABOR storms', () => {
  it('fifty ABORs pipelined behind a running download: one 426, then a 226 for each', async (t) => {
    const fx = await setUp(t);
    const data = await dataConnection(fx.client);
    await fx.client.command('RETR big.bin', 150);
    await once(data, 'data');
    data.pause();
    fx.client.write('ABOR\r\n'.repeat(50));
    await fx.client.expect(426);
    assert.equal((await fx.client.expect(226)).text, 'ABOR successful.');
    for (let i = 1; i < 50; i++) assert.equal((await fx.client.expect(226)).text, 'No transfer to abort.');
    data.destroy();
    await finish(fx, 'download-aborted', '/big.bin');
  });

  it('ABOR in the same segment as EPSV and STOR is answered at once, not after the data-connect timeout', async (t) => {
    const fx = await setUp(t);
    const started = Date.now();
    fx.client.write('EPSV\r\nSTOR old.txt\r\nABOR\r\nNOOP\r\n');
    await fx.client.expect(229, 2000);
    // The STOR that ABOR cancelled gets 426 (with or without its 150 first).
    let reply = await fx.client.read(2000);
    if (reply.code === 150) reply = await fx.client.read(2000);
    assert.equal(reply.code, 426);
    await fx.client.expect(226, 2000);
    await fx.client.expect(200, 2000);
    assert.ok(Date.now() - started < 2000);
    await fx.client.command('QUIT', 221);
    assert.ok((await fx.healthy.stop()) >= 1);
    await noSessionsLeft(fx.srv);
    assert.deepEqual(await tempFiles(fx.srv.root), []);
    await oldFileKept(fx.srv);
  });

  it('ten clients each pipelining 200 ABORs with nothing to abort: every one answered, the healthy client unaffected', async (t) => {
    const fx = await setUp(t);
    const storms = await Promise.all(Array.from({ length: 10 }, () => RawClient.login(fx.srv.port, USER, PASSWORD)));
    t.after(() => storms.forEach((c) => c.close()));
    await Promise.all(
      storms.map(async (client) => {
        client.write('ABOR\r\n'.repeat(200) + 'NOOP\r\n');
        for (let i = 0; i < 200; i++) assert.equal((await client.expect(226)).text, 'No transfer to abort.');
        await client.expect(200);
        await client.command('QUIT', 221);
      }),
    );
    await fx.client.command('QUIT', 221);
    assert.ok((await fx.healthy.stop()) >= 1);
    await noSessionsLeft(fx.srv);
  });
});
