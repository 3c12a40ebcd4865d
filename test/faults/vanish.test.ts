/**
 * Faults: the client vanishes (both connections closed, no QUIT) at every
 * stage of an upload and of a download. Each case ends in the event the
 * outcome calls for, its log line, no session left and no temp file, while a
 * healthy client beside it keeps round-tripping files with the right SHA-256.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFile, stat } from 'node:fs/promises';
import type net from 'node:net';
import path from 'node:path';
import { describe, it } from 'node:test';
import { RawClient } from '../helpers/ftp-raw.js';
import { BIG_BYTES, dataConnection, eventFor, healthyClient, logLineFor, noSessionsLeft, tempFiles, OLD, serverWithClient, waitFor, type FaultServer, type Healthy } from './fault-helpers.js';

const setUp = serverWithClient;

/** The client is gone: control connection first, as a killed process's kernel closes them, then the data one. */
function vanish(client: RawClient, data?: net.Socket): void {
  client.close();
  data?.destroy();
}

/** The fault's event and log line; then, once the healthy client is done, no session and no temp file left. */
async function checkAfter(srv: FaultServer, event: string, file: string, healthy: Healthy): Promise<void> {
  await eventFor(srv, event, file);
  logLineFor(srv, event, file);
  assert.ok((await healthy.stop()) >= 1);
  await noSessionsLeft(srv);
  assert.deepEqual(await tempFiles(srv.root), [], 'no temp file left');
}

describe('the client vanishes during an upload', () => {
  it('before 150: the upload is aborted and the old file stays', async (t) => {
    const { srv, client } = await setUp(t);
    const healthy = healthyClient(srv.port);
    await client.command('EPSV', 229);
    client.send('STOR old.txt');
    vanish(client);
    await checkAfter(srv, 'upload-aborted', '/old.txt', healthy);
    assert.equal(await readFile(path.join(srv.root, 'old.txt'), 'utf8'), OLD);
  });

  it('mid-transfer: the upload is aborted and the old file stays', async (t) => {
    const { srv, client } = await setUp(t);
    const healthy = healthyClient(srv.port);
    const data = await dataConnection(client);
    client.send('STOR old.txt');
    await client.expect(150);
    data.write(randomBytes(1024 * 1024));
    await waitFor(async () => (await tempFiles(srv.root)).length === 1, 'the upload to reach the disk');
    vanish(client, data);
    await checkAfter(srv, 'upload-aborted', '/old.txt', healthy);
    assert.equal(await readFile(path.join(srv.root, 'old.txt'), 'utf8'), OLD);
  });

  it('after the data, before 226 and without QUIT: it looks like a crash, so the old file stays', async (t) => {
    const { srv, client } = await setUp(t);
    const healthy = healthyClient(srv.port);
    const data = await dataConnection(client);
    client.send('STOR old.txt');
    await client.expect(150);
    data.end(randomBytes(1024 * 1024));
    await once(data, 'finish');
    vanish(client, data);
    await checkAfter(srv, 'upload-aborted', '/old.txt', healthy);
    assert.equal(await readFile(path.join(srv.root, 'old.txt'), 'utf8'), OLD);
  });
});

describe('the client vanishes during a download', () => {
  it('before 150: the download is aborted', async (t) => {
    const { srv, client } = await setUp(t);
    const healthy = healthyClient(srv.port);
    await client.command('EPSV', 229);
    client.send('RETR big.bin');
    vanish(client);
    await checkAfter(srv, 'download-aborted', '/big.bin', healthy);
  });

  it('mid-transfer: the download is aborted and the file is untouched', async (t) => {
    const { srv, client } = await setUp(t);
    const healthy = healthyClient(srv.port);
    const data = await dataConnection(client);
    client.send('RETR big.bin');
    await client.expect(150);
    await once(data, 'data');
    data.pause();
    vanish(client, data);
    const aborted = await eventFor(srv, 'download-aborted', '/big.bin');
    assert.ok((aborted.info.bytes as number) < BIG_BYTES, 'the event counts only what was sent');
    await checkAfter(srv, 'download-aborted', '/big.bin', healthy);
    assert.equal((await stat(path.join(srv.root, 'big.bin'))).size, BIG_BYTES);
  });

  it('after the data, before 226: every byte was sent, so the download counts', async (t) => {
    const { srv, client } = await setUp(t);
    const healthy = healthyClient(srv.port);
    const data = await dataConnection(client);
    client.send('RETR big.bin');
    let received = 0;
    data.on('data', (chunk: Buffer) => (received += chunk.length));
    await once(data, 'end');
    assert.equal(received, BIG_BYTES);
    vanish(client, data);
    const sent = await eventFor(srv, 'file-sent', '/big.bin');
    assert.equal(sent.info.bytes, BIG_BYTES);
    await checkAfter(srv, 'file-sent', '/big.bin', healthy);
  });
});
