/**
 * Bandwidth limits over real connections: a rate measured over 10 s with
 * curl and with three basic-ftp sessions of one user, the tighter of two
 * rates, the data idle timeout, ABOR and a vanished client while waiting for
 * bytes, STAT's progress. More 10 s measurements (other rates, the cluster)
 * run with `npm run rates` (test/rates/).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, test } from 'node:test';
import { Client } from 'basic-ftp';
import { hashPassword } from '../../src/auth/password.js';
import { buildServerOptions } from '../../src/config/build.js';
import { loadConfig } from '../../src/config/load.js';
import { createServer } from '../../src/index.js';
import { leaseBytes } from '../../src/limits/token-bucket.js';
import { assertRate, curlDownload, expectedSeconds } from '../helpers/rates.js';
import { RawClient, readAll } from '../helpers/ftp-raw.js';
import { PASSWORD, USER, startServer } from '../helpers/server.js';
import { collector } from '../helpers/streams.js';

async function basicFtp(t: { after(fn: () => unknown): void }, port: number, user = USER, password = PASSWORD): Promise<Client> {
  const client = new Client(20_000);
  t.after(() => client.close());
  await client.access({ host: '127.0.0.1', port, user, password });
  return client;
}

describe('bandwidth limits', () => {
  test("a download by curl holds the user's rate within 5 % over 10 s (1 MB/s)", async (t) => {
    const rate = 1_000_000;
    const srv = await startServer(t, { perUserLimits: { downloadBytesPerSecond: rate } });
    const size = 10 * rate + leaseBytes(rate);
    await writeFile(path.join(srv.root, 'big.bin'), randomBytes(size));
    const { bytes, seconds } = await curlDownload(`ftp://${USER}:${encodeURIComponent(PASSWORD)}@127.0.0.1:${srv.port}/big.bin`, 30);
    assert.equal(bytes, size);
    assertRate(t, 'curl RETR', size, rate, seconds);
  });

  test("three sessions of one user share its upload rate within 5 % over 10 s (200 KB/s)", async (t) => {
    const rate = 200_000;
    const srv = await startServer(t, { perUserLimits: { uploadBytesPerSecond: rate } });
    const each = Math.round((10 * rate + leaseBytes(rate)) / 3);
    const clients = await Promise.all([0, 1, 2].map(() => basicFtp(t, srv.port)));
    const data = clients.map(() => randomBytes(each));
    const started = performance.now();
    await Promise.all(clients.map((client, i) => client.uploadFrom(Readable.from([data[i]!]), `up${i}.bin`)));
    const seconds = (performance.now() - started) / 1000;
    assertRate(t, '3 × STOR', 3 * each, rate, seconds);
  });

  test("the config file's server-wide rate and a users-file entry's rate both hold (issue 12: they validated and did nothing)", async (t) => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-rates-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await mkdir(path.join(dir, 'files', 'carol'), { recursive: true });
    const data = randomBytes(20_000);
    await writeFile(path.join(dir, 'files', 'carol', 'f.bin'), data);
    const users = { users: { carol: { passwordHash: await hashPassword('pw', 10), permissions: 'full', limits: { downloadBytesPerSecond: 10_000 } } } };
    await writeFile(path.join(dir, 'users.json'), JSON.stringify(users));
    await writeFile(path.join(dir, 'ferry.yaml'), 'storage:\n  type: local\n  root: files\nusers:\n  file: users.json\nlimits:\n  uploadBytesPerSecond: 10000\n');
    const { config } = await loadConfig({ file: path.join(dir, 'ferry.yaml'), env: {} });
    const server = createServer({ ...(await buildServerOptions(config)), host: '127.0.0.1', port: 0 });
    t.after(() => server.close(0));
    const client = await basicFtp(t, (await server.listen()).port, 'carol', 'pw');
    for (const direction of ['download', 'upload'] as const) {
      const started = performance.now();
      if (direction === 'download') await client.downloadTo(collector().sink, 'f.bin');
      else await client.uploadFrom(Readable.from([data]), 'g.bin');
      const seconds = (performance.now() - started) / 1000;
      assert.ok(seconds >= expectedSeconds(data.length, 10_000) * 0.95, `${direction}: 20,000 B at 10,000 B/s in ${seconds.toFixed(2)} s`);
    }
  });

  test('the tighter of the server rate and the user rate decides, whichever it is', async (t) => {
    const size = 60_000;
    for (const [server, user] of [
      [40_000, 400_000],
      [400_000, 40_000],
    ] as const) {
      const srv = await startServer(t, { downloadBytesPerSecond: server, perUserLimits: { downloadBytesPerSecond: user } });
      await writeFile(path.join(srv.root, 'f.bin'), randomBytes(size));
      const client = await basicFtp(t, srv.port);
      const started = performance.now();
      const sink = collector();
      await client.downloadTo(sink.sink, 'f.bin');
      const seconds = (performance.now() - started) / 1000;
      assert.equal(sink.bytes().length, size);
      // Never faster than the tighter rate allows (slower only under a loaded machine).
      assert.ok(seconds >= expectedSeconds(size, 40_000) * 0.95, `server ${server} B/s, user ${user} B/s: ${size} B in ${seconds.toFixed(2)} s`);
    }
  });

  test('a throttled transfer never trips dataIdleTimeoutMs, however low the rate', async (t) => {
    // Waiting for bytes is the server's doing: 100 ms between pieces at 2,000 B/s, and an
    // upload chunk of 3,000 B paid for over 1.4 s, both far beyond the 50 ms idle timeout.
    const rate = 2_000;
    const srv = await startServer(t, { dataIdleTimeoutMs: 50, perUserLimits: { downloadBytesPerSecond: rate, uploadBytesPerSecond: rate } });
    const data = randomBytes(3_000);
    await writeFile(path.join(srv.root, 'f.bin'), data);
    const client = await basicFtp(t, srv.port);
    const sink = collector();
    await client.downloadTo(sink.sink, 'f.bin');
    assert.deepEqual(sink.bytes(), data);
    await client.uploadFrom(Readable.from([data]), 'g.bin');
    const back = collector();
    await client.downloadTo(back.sink, 'g.bin');
    assert.deepEqual(back.bytes(), data);
  });

  test('ABOR, and a client that vanishes, stop a transfer waiting for bytes at once', async (t) => {
    const srv = await startServer(t, { perUserLimits: { uploadBytesPerSecond: 1_000 } });
    const events: string[] = [];
    srv.server.on('upload-aborted', (e) => events.push(e.path));
    // 64 KiB at 1,000 B/s would take a minute.
    for (const how of ['ABOR', 'vanish'] as const) {
      const client = await RawClient.login(srv.port, USER, PASSWORD);
      t.after(() => client.close());
      await client.command('TYPE I', 200);
      const data = await client.passive();
      data.on('error', () => {});
      t.after(() => data.destroy());
      client.send(`STOR ${how}.bin`);
      await client.expect(150);
      data.write(randomBytes(64 * 1024));
      await sleep(300);
      const started = performance.now();
      if (how === 'ABOR') {
        client.send('ABOR');
        await client.expect(426, 2000);
        await client.expect(226, 2000);
      } else {
        client.close();
        for (let i = 0; i < 100 && !events.includes(`/${how}.bin`); i++) await sleep(20);
      }
      assert.ok(events.includes(`/${how}.bin`), `${how}: no upload-aborted event`);
      assert.ok(performance.now() - started < 2000);
    }
  });

  test("STAT shows a throttled download's progress", async (t) => {
    const srv = await startServer(t, { perUserLimits: { downloadBytesPerSecond: 10_000 } });
    await writeFile(path.join(srv.root, 'f.bin'), randomBytes(25_000));
    const client = await RawClient.login(srv.port, USER, PASSWORD);
    t.after(() => client.close());
    await client.command('TYPE I', 200);
    const data = await client.passive();
    const body = readAll(data, 10_000);
    client.send('RETR f.bin');
    await client.expect(150);
    const progress: number[] = [];
    for (const at of [500, 1300]) {
      await sleep(at - (progress.length ? 500 : 0));
      const reply = await client.command('STAT', 213);
      progress.push(Number(/: (\d+) bytes in/.exec(reply.lines.join('\n'))![1]));
    }
    assert.ok(progress[0]! > 0 && progress[0]! < progress[1]! && progress[1]! < 25_000, `STAT said ${progress.join(', ')} bytes`);
    assert.equal((await body).length, 25_000);
    await client.expect(226);
  });
});
