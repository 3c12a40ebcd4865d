/**
 * `npm run rates`: bandwidth limits measured over 10 s each with real
 * clients, beyond the two measurements in `npm test`
 * (test/integration/throttle.test.ts): a download at 200 KB/s (curl), an
 * upload at 1 MB/s (basic-ftp), three sessions of one user sharing 1 MB/s
 * of downloads, and a cluster of two workers where two sessions of one user
 * (one per worker) share the rate its users-file entry sets. Each must be
 * within 5 % of the time the bytes take at the rate. About a minute.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { Client } from 'basic-ftp';
import { hashPassword } from '../../src/auth/password.js';
import { leaseBytes } from '../../src/limits/token-bucket.js';
import { startCli } from '../helpers/cli.js';
import { PASSWORD, USER, startServer } from '../helpers/server.js';
import { collector } from '../helpers/streams.js';
import { assertRate, curlDownload } from '../helpers/rates.js';

async function basicFtp(t: { after(fn: () => unknown): void }, port: number, user = USER, password = PASSWORD): Promise<Client> {
  const client = new Client(20_000);
  t.after(() => client.close());
  await client.access({ host: '127.0.0.1', port, user, password });
  return client;
}

/**
 * A first download in each process before measuring: the first RETR of a
 * process starts its reader threads (under tsx, about a second on a busy
 * machine), which is not the rate.
 */
async function warmUp(clients: Client[]): Promise<void> {
  await Promise.all(clients.map((client) => client.downloadTo(collector().sink, 'warm.bin')));
}

/** Bytes for about 10 s at `rate`, split over `parts` transfers. */
const tenSeconds = (rate: number, parts = 1): number => Math.round((10 * rate + leaseBytes(rate)) / parts);

describe('bandwidth limits over 10 s', () => {
  test('a download by curl at 200 KB/s', async (t) => {
    const rate = 200_000;
    const srv = await startServer(t, { perUserLimits: { downloadBytesPerSecond: rate } });
    const size = tenSeconds(rate);
    await writeFile(path.join(srv.root, 'f.bin'), randomBytes(size));
    const { bytes, seconds } = await curlDownload(`ftp://${USER}:${encodeURIComponent(PASSWORD)}@127.0.0.1:${srv.port}/f.bin`, 30);
    assert.equal(bytes, size);
    assertRate(t, 'curl RETR at 200 KB/s', size, rate, seconds);
  });

  test('an upload by basic-ftp at 1 MB/s (the server-wide rate)', async (t) => {
    const rate = 1_000_000;
    const srv = await startServer(t, { uploadBytesPerSecond: rate });
    const size = tenSeconds(rate);
    const client = await basicFtp(t, srv.port);
    const started = performance.now();
    await client.uploadFrom(Readable.from([randomBytes(size)]), 'up.bin');
    assertRate(t, 'basic-ftp STOR at 1 MB/s', size, rate, (performance.now() - started) / 1000);
  });

  test('three sessions of one user share 1 MB/s of downloads', async (t) => {
    const rate = 1_000_000;
    const srv = await startServer(t, { perUserLimits: { downloadBytesPerSecond: rate } });
    const each = tenSeconds(rate, 3);
    await writeFile(path.join(srv.root, 'f.bin'), randomBytes(each));
    await writeFile(path.join(srv.root, 'warm.bin'), 'w');
    const clients = await Promise.all([0, 1, 2].map(() => basicFtp(t, srv.port)));
    await warmUp(clients);
    const started = performance.now();
    const sinks = clients.map(() => collector());
    await Promise.all(clients.map((client, i) => client.downloadTo(sinks[i]!.sink, 'f.bin')));
    for (const sink of sinks) assert.equal(sink.bytes().length, each);
    assertRate(t, '3 × RETR sharing 1 MB/s', 3 * each, rate, (performance.now() - started) / 1000);
  });

  test("two sessions of one user on two cluster workers share the rate of the user's entry in the users file", async (t) => {
    const rate = 200_000;
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-rates-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const root = path.join(dir, 'root');
    await mkdir(path.join(root, 'bob'), { recursive: true });
    const each = tenSeconds(rate, 2);
    await writeFile(path.join(root, 'bob', 'f.bin'), randomBytes(each));
    await writeFile(path.join(root, 'bob', 'warm.bin'), 'w');
    const users = path.join(dir, 'users.yaml');
    await writeFile(users, `users:\n  bob:\n    passwordHash: "${await hashPassword('pw')}"\n    limits:\n      downloadBytesPerSecond: ${rate}\n`);
    const config = path.join(dir, 'ferry.yaml');
    await writeFile(config, `host: 127.0.0.1\nport: 0\nworkers: 2\nstorage:\n  type: local\n  root: ${root}\nusers:\n  file: ${users}\n`);
    const cli = await startCli(t, ['--config', config], dir);
    // The primary hands each new connection to the least-loaded worker: one session each.
    const clients = [await basicFtp(t, cli.port, 'bob', 'pw'), await basicFtp(t, cli.port, 'bob', 'pw')];
    await warmUp(clients);
    const started = performance.now();
    const sinks = clients.map(() => collector());
    await Promise.all(clients.map((client, i) => client.downloadTo(sinks[i]!.sink, 'f.bin')));
    for (const sink of sinks) assert.equal(sink.bytes().length, each);
    assertRate(t, '2 × RETR on 2 workers sharing 200 KB/s', 2 * each, rate, (performance.now() - started) / 1000);
  });
});
