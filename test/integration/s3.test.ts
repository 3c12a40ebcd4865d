/**
 * Ferry over S3 (Ceph's gateway, radosgw: test/helpers/ceph.ts), what only object storage has: multipart uploads
 * that abort cleanly, the maximum file size, directories that exist only
 * through deeper keys, large prefixes, per-user prefixes, the replies for
 * what S3 cannot do, and an endpoint that dies mid-transfer.
 * (The shared client-level suite runs on S3 too: basic-ftp.test.ts.)
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { after, describe, test, type TestContext } from 'node:test';
import {
  CopyObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { Client } from 'basic-ftp';
import { ErrorCodes, S3Storage, UserListAuthenticator, createServer, hashPassword, type S3StorageOptions, type Storage } from '../../src/index.js';
import { silentLogger, type Logger } from '../../src/observability/logger.js';
import { copyObject } from '../../src/storage/s3-copy.js';
import { startCli } from '../helpers/cli.js';
import { RawClient, readAll } from '../helpers/ftp-raw.js';
import { cephSkip, stopSharedCeph } from '../helpers/ceph.js';
import { startS3, type TestS3 } from '../helpers/s3.js';
import { PASSWORD, USER, startServer, type TestServerOptions } from '../helpers/server.js';

after(stopSharedCeph);

const MIB = 1024 * 1024;

interface Fixture {
  s3: TestS3;
  storage: S3Storage;
  port: number;
  /** A plain S3 client on the same bucket, for keys made behind Ferry's back. */
  raw: S3Client;
}

async function setup(t: TestContext, options: Partial<S3StorageOptions> = {}, serverOptions: TestServerOptions = {}): Promise<Fixture> {
  const s3 = await startS3(t);
  const storage = new S3Storage(s3.options({ partSizeBytes: 5 * MIB, ...options }));
  t.after(() => storage.destroy());
  const server = await startServer(t, { ...serverOptions, storage });
  return { s3, storage, port: server.port, raw: s3.raw };
}

async function login(t: TestContext, port: number): Promise<RawClient> {
  const client = await RawClient.login(port, USER, PASSWORD);
  t.after(() => client.close());
  await client.command('TYPE I', 200);
  return client;
}

async function exists(storage: Storage, path: string): Promise<boolean> {
  return storage.stat(path).then(
    () => true,
    (err: { code?: string }) => {
      if (err.code === ErrorCodes.NOT_FOUND) return false;
      throw err;
    },
  );
}

async function readText(storage: Storage, path: string): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of await storage.read(path)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString();
}

/** Aborting a multipart upload happens after the reply; wait (bounded) until none is pending. */
async function noPendingUploads(s3: TestS3): Promise<void> {
  const deadline = Date.now() + 5_000;
  while ((await s3.pendingUploads()) > 0) {
    if (Date.now() > deadline) assert.fail(`${await s3.pendingUploads()} multipart uploads still pending`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The multipart upload has begun on the endpoint: the abort then has parts to remove. */
async function waitForUploadStarted(s3: TestS3): Promise<void> {
  const deadline = Date.now() + 5_000;
  while ((await s3.pendingUploads()) === 0) {
    if (Date.now() > deadline) assert.fail('no multipart upload started');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Write `bytes` of data on the data socket, waiting for each chunk to drain. */
async function send(data: net.Socket, bytes: number): Promise<void> {
  data.on('error', () => undefined); // the server may cut it: that is what some tests expect
  const chunk = randomBytes(MIB);
  for (let sent = 0; sent < bytes && !data.destroyed; sent += chunk.length) {
    // A refused upload's data connection is drained, then closed: 'drain' may never come (once() rejects on 'error').
    if (!data.write(chunk)) await Promise.race([once(data, 'drain'), once(data, 'close')]).catch(() => undefined);
  }
}

function names(entries: string): string[] {
  return entries
    .split('\r\n')
    .filter(Boolean)
    .map((line) => line.slice(line.indexOf(' ') + 1))
    .filter((name) => name !== '.')
    .sort();
}

describe('Ferry over S3: uploads', { skip: cephSkip() }, () => {
  test('an upload of several parts streams as a multipart upload and reads back byte-exact', async (t) => {
    const fx = await setup(t);
    const data = randomBytes(17 * MIB + 123);
    const client = new Client(10_000);
    t.after(() => client.close());
    await client.access({ host: '127.0.0.1', port: fx.port, user: USER, password: PASSWORD });
    await client.uploadFrom(Readable.from([data]), 'multi.bin');
    assert.equal((await fx.storage.stat('/multi.bin')).size, data.length);
    const chunks: Buffer[] = [];
    await client.downloadTo(new Writable({ write: (c: Buffer, _e, cb) => (chunks.push(c), cb()) }), 'multi.bin', 5 * MIB + 7);
    assert.ok(Buffer.concat(chunks).equals(data.subarray(5 * MIB + 7)), 'REST + RETR from inside the second part');
    assert.equal(await fx.s3.pendingUploads(), 0);
  });

  test('a client that vanishes mid-upload (RST on both connections) leaves no object and no parts', async (t) => {
    const fx = await setup(t);
    const client = await login(t, fx.port);
    const data = await client.passive();
    client.send('STOR cut.bin');
    await client.expect(150);
    await send(data, 12 * MIB); // two parts sent, a third filling
    await waitForUploadStarted(fx.s3);
    // Let every write leave Node (a reset with writes pending turns into a
    // plain FIN, end of file): the callback of one more write runs once all
    // writes before it are in the kernel.
    await new Promise<void>((resolve, reject) => data.write(Buffer.alloc(1), (err) => (err ? reject(err) : resolve())));
    assert.equal(data.writableLength, 0);
    data.resetAndDestroy();
    client.socket.resetAndDestroy();
    await noPendingUploads(fx.s3);
    assert.equal(await exists(fx.storage, '/cut.bin'), false);
  });

  test('ABOR mid-upload leaves no object and no parts, and keeps a previous version', async (t) => {
    const fx = await setup(t);
    await fx.raw.send(new PutObjectCommand({ Bucket: fx.s3.bucket, Key: 'kept.bin', Body: Buffer.from('previous') }));
    const client = await login(t, fx.port);
    const data = await client.passive();
    client.send('STOR kept.bin');
    await client.expect(150);
    await send(data, 11 * MIB);
    await waitForUploadStarted(fx.s3);
    client.send('ABOR');
    assert.equal((await client.read()).code, 426);
    assert.equal((await client.read()).code, 226);
    await noPendingUploads(fx.s3);
    assert.equal(await readText(fx.storage, '/kept.bin'), 'previous');
  });

  test('ABOR right after the last byte: either no object and 426, or 226 and the whole object (never 426 with an object)', async (t) => {
    const fx = await setup(t);
    const client = await login(t, fx.port);
    // Single PutObject (1 MiB) and multipart (11 MiB) commits, the ABOR sent 0-200 ms after the last byte so it lands at different steps.
    const runs = [1, 11].flatMap((mib) => [0, 5, 20, 50, 100, 200].map((delayMs) => ({ size: mib * MIB + delayMs, delayMs })));
    for (const [i, { size, delayMs }] of runs.entries()) {
      const name = `race-${i}.bin`;
      const data = await client.passive();
      client.send(`STOR ${name}`);
      await client.expect(150);
      await send(data, size - (size % MIB));
      data.end(randomBytes(size % MIB));
      await once(data, 'finish');
      await new Promise((r) => setTimeout(r, delayMs));
      client.send('ABOR');
      const transfer = (await client.read(20_000)).code;
      t.diagnostic(`${name}: ${transfer}`);
      assert.equal((await client.read(20_000)).code, 226, 'ABOR itself');
      await noPendingUploads(fx.s3);
      if (transfer === 226) {
        assert.equal((await fx.storage.stat(`/${name}`)).size, size, `${name} is complete`);
      } else {
        assert.equal(transfer, 426);
        assert.equal(await exists(fx.storage, `/${name}`), false, `${name} got 426 but exists`);
      }
    }
  });

  test('an upload that crosses maxFileSizeBytes gets 552 at once and stores nothing', async (t) => {
    const fx = await setup(t, {}, { maxFileSizeBytes: 6 * MIB });
    const client = await login(t, fx.port);
    const data = await client.passive();
    data.on('error', () => undefined);
    client.send('STOR huge.bin');
    await client.expect(150);
    // Keep sending: the reply must come as soon as 6 MiB is crossed, not at the end.
    const sending = send(data, 64 * MIB).catch(() => undefined);
    const reply = await client.read(10_000);
    assert.equal(reply.code, 552);
    data.destroy();
    await sending;
    await noPendingUploads(fx.s3);
    assert.equal(await exists(fx.storage, '/huge.bin'), false);
  });
});

/** Run curl (bounded); resolves with its exit code and stderr. */
function curl(args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile('curl', ['--silent', '--show-error', ...args], { timeout: 30_000, killSignal: 'SIGKILL' }, (err, _stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr: String(stderr) });
    });
  });
}

describe('Ferry over S3 with curl', { skip: cephSkip() }, () => {
  test('curl uploads into a new directory (--ftp-create-dirs), lists it and downloads byte-exact, resuming with -C', async (t) => {
    const fx = await setup(t);
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-s3-curl-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const data = randomBytes(9 * MIB + 17);
    await writeFile(path.join(dir, 'up.bin'), data);
    const base = `ftp://127.0.0.1:${fx.port}`;
    const user = `${USER}:${PASSWORD}`;
    assert.equal((await curl(['-u', user, '--ftp-create-dirs', '-T', path.join(dir, 'up.bin'), `${base}/drop/2026/up.bin`])).code, 0);
    assert.equal((await fx.storage.stat('/drop/2026/up.bin')).size, data.length);
    assert.equal((await curl(['-u', user, '-o', path.join(dir, 'list.txt'), `${base}/drop/2026/`])).code, 0);
    assert.match(await readFile(path.join(dir, 'list.txt'), 'utf8'), /up\.bin/);
    assert.equal((await curl(['-u', user, '-o', path.join(dir, 'down.bin'), `${base}/drop/2026/up.bin`])).code, 0);
    assert.ok((await readFile(path.join(dir, 'down.bin'))).equals(data));
    // A download cut short, resumed with REST (-C -).
    await writeFile(path.join(dir, 'part.bin'), data.subarray(0, 1_000_003));
    assert.equal((await curl(['-u', user, '-C', '-', '-o', path.join(dir, 'part.bin'), `${base}/drop/2026/up.bin`])).code, 0);
    assert.ok((await readFile(path.join(dir, 'part.bin'))).equals(data));
    // Resuming an upload (curl sends APPE for the rest) is what S3 cannot do: curl reports the 504.
    await writeFile(path.join(dir, 'longer.bin'), Buffer.concat([data, randomBytes(1000)]));
    const resumed = await curl(['-u', user, '-C', '-', '-T', path.join(dir, 'longer.bin'), `${base}/drop/2026/up.bin`]);
    assert.notEqual(resumed.code, 0);
    assert.match(resumed.stderr, /504/);
    assert.equal((await fx.storage.stat('/drop/2026/up.bin')).size, data.length, 'the object is untouched');
  });
});

describe('Ferry over S3: what object storage cannot do', { skip: cephSkip() }, () => {
  test('REST + STOR answers 504, APPE 504, SITE CHMOD 502, MFMT 502 (and FEAT leaves MFMT out)', async (t) => {
    const fx = await setup(t);
    await fx.raw.send(new PutObjectCommand({ Bucket: fx.s3.bucket, Key: 'f.bin', Body: Buffer.from('content') }));
    const client = await login(t, fx.port);
    await client.command('REST 3', 350);
    await client.command('STOR f.bin', 504);
    await client.command('APPE f.bin', 504);
    await client.command('SITE CHMOD 644 f.bin', 502);
    await client.command('MFMT 20200101000000 f.bin', 502);
    const feat = await client.command('FEAT', 211);
    assert.ok(!feat.lines.some((line) => line.includes('MFMT')), feat.lines.join('|'));
    assert.ok(feat.lines.includes(' REST STREAM'), 'REST for downloads stays announced');
    assert.equal(await readText(fx.storage, '/f.bin'), 'content');
  });
});

describe('Ferry over S3: directories over flat keys', { skip: cephSkip() }, () => {
  test('directories implied by deeper keys can be entered, listed and statted; the last DELE keeps them', async (t) => {
    const fx = await setup(t);
    await fx.raw.send(new PutObjectCommand({ Bucket: fx.s3.bucket, Key: 'deep/a/b/file.txt', Body: Buffer.from('x') }));
    const client = await login(t, fx.port);
    await client.command('CWD /deep/a', 250);
    const mlst = await client.command('MLST b', 250);
    assert.match(mlst.lines[1]!, /type=dir;/);
    const data = await client.passive();
    client.send('MLSD');
    await client.expect(150);
    assert.deepEqual(names((await readAll(data)).toString()), ['b']);
    await client.expect(226);
    await client.command('DELE b/file.txt', 250);
    await client.command('CWD b', 250);
    await client.command('CWD /deep/a', 250);
    await client.command('RMD b', 250);
    await client.command('RMD /deep/a', 250);
    await client.command('RMD /deep', 250);
    await client.command('CWD /deep', 550);
  });

  test('an upload into a directory removed or renamed a moment ago on this node is refused (no stale cache)', async (t) => {
    const fx = await setup(t);
    const put = async (path: string): Promise<void> => {
      const sink = await fx.storage.write(path);
      await new Promise<void>((resolve, reject) => sink.once('error', reject).end(Buffer.from('x'), () => resolve()));
    };
    await fx.storage.mkdir('/d');
    await put('/d/f'); // the check of /d is now cached
    await fx.storage.delete('/d/f');
    await fx.storage.rmdir('/d');
    await assert.rejects(fx.storage.write('/d/g'), { code: ErrorCodes.NOT_FOUND });
    await fx.storage.mkdir('/e');
    await put('/e/f');
    await fx.storage.rename('/e', '/e2');
    await assert.rejects(fx.storage.write('/e/g'), { code: ErrorCodes.NOT_FOUND });
    await put('/e2/g');
  });

  test('RMD refuses a directory with content; MKD of an existing name is 550', async (t) => {
    const fx = await setup(t);
    const client = await login(t, fx.port);
    await client.command('MKD d', 257);
    await client.command('MKD d', 550);
    await fx.raw.send(new PutObjectCommand({ Bucket: fx.s3.bucket, Key: 'd/inner/x', Body: Buffer.from('x') }));
    await client.command('RMD d', 550);
    assert.equal(await exists(fx.storage, '/d/inner/x'), true);
  });

  // 25 keys in pages of 7 by default; FERRY_S3_LIST_KEYS=100000 runs the large version in S3's own pages of 1,000.
  const bigList = process.env['FERRY_S3_LIST_KEYS'];
  const keys = Number(bigList ?? 25);
  test(`MLSD lists a prefix of ${keys.toLocaleString('en')} keys completely, page by page`, { timeout: 300_000 }, async (t) => {
    const fx = await setup(t, bigList ? {} : { listPageSize: 7 });
    const expected = Array.from({ length: keys }, (_, i) => `k${String(i).padStart(6, '0')}`);
    for (let i = 0; i < expected.length; i += 50) {
      await Promise.all(expected.slice(i, i + 50).map((name) => fx.raw.send(new PutObjectCommand({ Bucket: fx.s3.bucket, Key: `many/${name}`, Body: Buffer.from('') }))));
    }
    const client = await login(t, fx.port);
    const data = await client.passive();
    client.send('MLSD /many');
    await client.expect(150);
    const listed = names((await readAll(data, 240_000)).toString());
    await client.expect(226, 240_000);
    assert.equal(listed.length, keys);
    assert.deepEqual(listed, expected);
  });

  test('a directory rename copies every key; one over maxRenameKeys is refused before anything changes', async (t) => {
    const fx = await setup(t, { maxRenameKeys: 5 });
    const client = await login(t, fx.port);
    for (const key of ['src/', 'src/a', 'src/sub/b', 'big/1', 'big/2', 'big/3', 'big/4', 'big/5', 'big/6']) {
      await fx.raw.send(new PutObjectCommand({ Bucket: fx.s3.bucket, Key: key, Body: Buffer.from(key) }));
    }
    await client.command('RNFR src', 350);
    await client.command('RNTO dst', 250);
    assert.equal(await exists(fx.storage, '/src'), false);
    // DeleteObjects removed every old key, the marker included.
    assert.equal((await fx.raw.send(new ListObjectsV2Command({ Bucket: fx.s3.bucket, Prefix: 'src' }))).KeyCount ?? 0, 0);
    assert.equal(await readText(fx.storage, '/dst/sub/b'), 'src/sub/b');
    assert.equal((await fx.storage.stat('/dst')).type, 'dir');
    await client.command('RNFR big', 350);
    const refused = await client.command('RNTO big2', 550);
    assert.match(refused.text, /Too many entries/);
    assert.equal(await exists(fx.storage, '/big2'), false);
    assert.equal(await exists(fx.storage, '/big/6'), true);
  });
});

/** `raw` with `fail` consulted before every command: return (or resolve) an answer, or throw, to replace S3's; undefined passes it on. */
function failing(raw: S3Client, fail: (name: string, input: Record<string, unknown>) => unknown): S3Client {
  return new Proxy(raw, {
    get(target, prop, receiver) {
      if (prop !== 'send') return Reflect.get(target, prop, receiver);
      return async (command: { constructor: { name: string }; input: Record<string, unknown> }, options?: unknown) => {
        const answer = await fail(command.constructor.name, command.input);
        if (answer !== undefined) return answer;
        return (target.send as (c: unknown, o?: unknown) => Promise<unknown>)(command, options);
      };
    },
  });
}

/** A logger that keeps its warnings. */
function warnings(): { logger: Logger; warned: Array<Record<string, unknown>> } {
  const warned: Array<Record<string, unknown>> = [];
  const logger: Logger = { ...silentLogger, warn: (fields: unknown) => void warned.push(fields as Record<string, unknown>), child: () => logger };
  return { logger, warned };
}

describe('Ferry over S3: directory renames that fail half-way', { skip: cephSkip() }, () => {
  test('old keys that cannot be deleted give 550 "Rename incomplete", with their count and a sample in the log', async (t) => {
    const fx = await setup(t);
    const { logger, warned } = warnings();
    const storage = new S3Storage({
      bucket: fx.s3.bucket,
      logger,
      client: failing(fx.raw, (name, input) => {
        const keys = (input['Delete'] as { Objects: Array<{ Key: string }> } | undefined)?.Objects.map((o) => o.Key) ?? [];
        if (name === 'DeleteObjectsCommand' && keys.includes('src/b')) return { Errors: [{ Key: 'src/b', Code: 'AccessDenied' }] };
        return undefined;
      }),
    });
    const server = await startServer(t, { storage });
    for (const key of ['src/a', 'src/b']) await fx.raw.send(new PutObjectCommand({ Bucket: fx.s3.bucket, Key: key, Body: Buffer.from(key) }));
    const client = await login(t, server.port);
    await client.command('RNFR src', 350);
    const reply = await client.command('RNTO dst', 550);
    assert.match(reply.text, /Rename incomplete/);
    assert.equal(await readText(fx.storage, '/dst/a'), 'src/a');
    assert.equal(await readText(fx.storage, '/dst/b'), 'src/b');
    assert.equal(await exists(fx.storage, '/src/b'), true);
    assert.deepEqual(
      warned.map((w) => [w['failed'], w['sample']]),
      [[1, ['src/b']]],
    );
  });

  test('a failed copy onto an existing empty directory undoes the copies but keeps that directory', async (t) => {
    const fx = await setup(t);
    const storage = new S3Storage({
      bucket: fx.s3.bucket,
      client: failing(fx.raw, (name, input) => {
        if (name === 'CopyObjectCommand' && input['Key'] === 'dst/z') throw Object.assign(new Error('SlowDown'), { name: 'SlowDown', $metadata: { httpStatusCode: 503 } });
        return undefined;
      }),
    });
    for (const key of ['src/', 'src/a', 'src/z', 'dst/']) await fx.raw.send(new PutObjectCommand({ Bucket: fx.s3.bucket, Key: key, Body: Buffer.from('') }));
    await assert.rejects(storage.rename('/src', '/dst'), { code: ErrorCodes.UNAVAILABLE });
    assert.equal((await fx.storage.stat('/dst')).type, 'dir', 'the empty target directory is still there');
    assert.deepEqual(await listNames(fx.storage, '/dst'), []);
    assert.deepEqual(await listNames(fx.storage, '/src'), ['a', 'z']);
  });
});

/** MLSD of `path`: each entry's name with its type (file, dir). */
async function mlsd(client: RawClient, path: string): Promise<string[]> {
  const data = await client.passive();
  client.send(`MLSD ${path}`);
  await client.expect(150);
  const text = (await readAll(data)).toString();
  await client.expect(226);
  return text
    .split('\r\n')
    .filter(Boolean)
    .map((line) => `${line.slice(line.indexOf(' ') + 1)}:${/type=(\w+);/.exec(line)![1]}`)
    .filter((entry) => !entry.startsWith('.:'))
    .sort();
}

async function putKeys(fx: Fixture, keys: string[]): Promise<void> {
  await Promise.all(keys.map((Key) => fx.raw.send(new PutObjectCommand({ Bucket: fx.s3.bucket, Key, Body: Buffer.from(Key) }))));
}

describe('Ferry over S3: what only a faithful S3 server shows (s3rver got these wrong or lacked them)', { skip: cephSkip() }, () => {
  test('folders two levels down made by another tool (keys put with the SDK) are listed, entered and statted', async (t) => {
    const fx = await setup(t);
    await putKeys(fx, ['incoming/cam1/2026/a.jpg', 'incoming/cam1/2026/b.jpg', 'incoming/cam2/c.jpg', 'incoming/top.txt']);
    const client = await login(t, fx.port);
    assert.deepEqual(await mlsd(client, '/incoming'), ['cam1:dir', 'cam2:dir', 'top.txt:file']);
    assert.deepEqual(await mlsd(client, '/incoming/cam1'), ['2026:dir']);
    await client.command('CWD /incoming/cam1/2026', 250);
    assert.deepEqual(await mlsd(client, '.'), ['a.jpg:file', 'b.jpg:file']);
    assert.match((await client.command('MLST /incoming/cam1', 250)).lines[1]!, /type=dir;/);
  });

  test('a listing with the delimiter pages across page boundaries: every file and folder once, with its type', async (t) => {
    // Pages of 4 entries; each folder holds several keys, so a page of the
    // delimited listing stands for many more keys than it has entries.
    const fx = await setup(t, { listPageSize: 4 });
    const expected: string[] = [];
    const keys: string[] = [];
    for (let i = 0; i < 9; i++) {
      keys.push(`p/f${i}`, `p/g${i}/1`, `p/g${i}/2`, `p/g${i}/deep/3`);
      expected.push(`f${i}:file`, `g${i}:dir`);
    }
    await putKeys(fx, keys);
    let pages = 0;
    for await (const page of fx.storage.list('/p')) {
      pages += 1;
      assert.ok(page.length <= 4, `a page of ${page.length}`);
    }
    assert.ok(pages >= 5, `${pages} pages`);
    const client = await login(t, fx.port);
    assert.deepEqual(await mlsd(client, '/p'), expected.sort());
  });

  test('STOU: a name taken between the check and the commit is refused by S3 itself (If-None-Match: *); the other writer\'s object stays', async (t) => {
    const fx = await setup(t);
    let raced = '';
    const storage = new S3Storage({
      bucket: fx.s3.bucket,
      client: failing(fx.raw, async (name, input) => {
        // Another writer takes the name just before Ferry's PutObject reaches the store.
        if (name === 'PutObjectCommand' && input['IfNoneMatch'] === '*') {
          raced = input['Key'] as string;
          await fx.raw.send(new PutObjectCommand({ Bucket: fx.s3.bucket, Key: raced, Body: Buffer.from('theirs') }));
        }
        return undefined;
      }),
    });
    const server = await startServer(t, { storage });
    const client = await login(t, server.port);
    const data = await client.passive();
    client.send('STOU');
    const started = await client.expect(150);
    data.end(Buffer.from('ours'));
    const reply = await client.read(10_000);
    assert.equal(reply.code, 550, `${reply.code} ${reply.text}`);
    assert.match(reply.text, /exists/i);
    assert.ok(raced !== '' && started.text.includes(raced), `${started.text} / ${raced}`);
    assert.equal(await readText(fx.storage, `/${raced}`), 'theirs');
    await client.command('NOOP', 200);
  });

  test('a large file is copied with UploadPartCopy ranges, byte-exact; a failed part aborts the copy and leaves no multipart upload', async (t) => {
    const fx = await setup(t);
    const data = randomBytes(12 * MIB + 5);
    await fx.raw.send(new PutObjectCommand({ Bucket: fx.s3.bucket, Key: 'big', Body: data }));
    const { bucket } = fx.s3;
    const sdk = await import('@aws-sdk/client-s3');
    const copied: string[] = [];
    const counting = failing(fx.raw, (name, input) => void (name === 'UploadPartCopyCommand' && copied.push(String(input['CopySourceRange']))));
    // Parts of 5 MiB (S3's minimum but for the last): three ranges.
    await copyObject({ client: counting, sdk, bucket, from: 'big', to: 'copy', size: data.length, singleCopyLimitBytes: 5 * MIB });
    assert.deepEqual(copied.sort(), [`bytes=0-${5 * MIB - 1}`, `bytes=${10 * MIB}-${data.length - 1}`, `bytes=${5 * MIB}-${10 * MIB - 1}`].sort());
    const out = await fx.raw.send(new GetObjectCommand({ Bucket: bucket, Key: 'copy' }));
    assert.ok(Buffer.from(await out.Body!.transformToByteArray()).equals(data));
    assert.equal(await fx.s3.pendingUploads(), 0);

    const broken = failing(fx.raw, (name, input) => {
      if (name === 'UploadPartCopyCommand' && input['PartNumber'] === 2) throw Object.assign(new Error('SlowDown'), { name: 'SlowDown', $metadata: { httpStatusCode: 503 } });
      return undefined;
    });
    await assert.rejects(copyObject({ client: broken, sdk, bucket, from: 'big', to: 'half', size: data.length, singleCopyLimitBytes: 5 * MIB }));
    assert.equal(await fx.s3.pendingUploads(), 0);
    await assert.rejects(fx.raw.send(new HeadObjectCommand({ Bucket: bucket, Key: 'half' })), { name: 'NotFound' });
  });

  test("Ceph's gap, pinned: CopyObject ignores x-amz-copy-source-if-match (docs/s3.md; this fails once Ceph honours it)", async (t) => {
    const fx = await setup(t);
    const { bucket } = fx.s3;
    await fx.raw.send(new PutObjectCommand({ Bucket: bucket, Key: 'src', Body: Buffer.from('now') }));
    // AWS answers 412 PreconditionFailed to a copy whose source has another ETag; Ceph 16 copies anyway.
    await fx.raw.send(new CopyObjectCommand({ Bucket: bucket, Key: 'dst', CopySource: `${bucket}/src`, CopySourceIfMatch: '"00000000000000000000000000000000"' }));
    assert.equal(await readText(fx.storage, '/dst'), 'now');
  });
});

async function listNames(storage: Storage, path: string): Promise<string[]> {
  const names: string[] = [];
  for await (const page of storage.list(path)) names.push(...page.map((e) => e.name));
  return names.sort();
}

describe('Ferry over S3: per-user prefixes', { skip: cephSkip() }, () => {
  test('forUser gives each user their own root under a {username} prefix, and refuses names that could escape it', async (t) => {
    const s3 = await startS3(t);
    const shared = new S3Storage(s3.options({ prefix: 'users/{username}/' }));
    t.after(() => shared.destroy());
    const users = new UserListAuthenticator(
      ['ann', 'bob'].map((username) => ({ username, password: PASSWORD, storage: shared.forUser(username), permissions: 'elradfmw' })),
    );
    const server = createServer({ authenticator: users, host: '127.0.0.1', port: 0, loginFailureDelayMs: 10 });
    t.after(() => server.close(0));
    const { port } = await server.listen();
    for (const username of ['ann', 'bob']) {
      const client = await RawClient.login(port, username, PASSWORD);
      t.after(() => client.close());
      await client.command(`MKD only-${username}`, 257);
    }
    assert.deepEqual((await shared.forUser('ann').stat('/only-ann')).type, 'dir');
    assert.equal(await exists(shared.forUser('ann'), '/only-bob'), false);
    assert.equal(await exists(shared.forUser('bob'), '/only-bob'), true);
    // "$`" would expand to the text before the placeholder ("users/"): the whole users/ tree.
    for (const bad of ['', '.', '..', 'a/b', 'a\\b', '$`', '$&', "$'"]) assert.throws(() => shared.forUser(bad), { code: ErrorCodes.INVALID_NAME }, bad);
    // A home (users file, anonymous.home) is a sub-prefix: /only-ann/inbox of ann's storage.
    await shared.forUser('ann').at('/only-ann').mkdir('/inbox');
    assert.equal((await shared.forUser('ann').stat('/only-ann/inbox')).type, 'dir');
    assert.equal(shared.forUser('ann').at('/only-ann').location, `s3://${s3.bucket}/users/ann/only-ann/`);
    await assert.rejects(shared.stat('/'), { code: ErrorCodes.MISCONFIGURED });
  });
});

describe('Ferry over S3: an endpoint that fails', { skip: cephSkip() }, () => {
  test('an endpoint that accepts but never answers gets 451 within socketTimeoutMs, and the session stays', async (t) => {
    const sockets = new Set<net.Socket>();
    const blackHole = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => blackHole.listen(0, '127.0.0.1', resolve));
    t.after(() => {
      for (const socket of sockets) socket.destroy();
      blackHole.close();
    });
    const { port } = blackHole.address() as net.AddressInfo;
    const credentials = { accessKeyId: 'NONE', secretAccessKey: 'NONE' };
    const storage = new S3Storage({ bucket: 'stalled', endpoint: `http://127.0.0.1:${port}`, forcePathStyle: true, credentials, socketTimeoutMs: 200, maxAttempts: 2 });
    t.after(() => storage.destroy());
    const server = await startServer(t, { storage });
    const client = await login(t, server.port);
    const started = Date.now();
    await client.command('MKD x', 451);
    // Two attempts of 200 ms, the SDK's backoff between them, and the parallel probes: well under 5 s.
    assert.ok(Date.now() - started < 5_000, `451 after ${Date.now() - started} ms`);
    await client.command('NOOP', 200);
    await client.command('MKD y', 451);
  });

  test('a bucket that does not exist answers 550 and the session stays', async (t) => {
    const fx = await setup(t);
    const wrong = new S3Storage(fx.s3.options({ bucket: 'no-such-bucket' }));
    t.after(() => wrong.destroy());
    const server = await startServer(t, { storage: wrong });
    const client = await login(t, server.port);
    const reply = await client.command('MKD x', 550);
    assert.match(reply.text, /misconfigured/);
    await client.command('NOOP', 200);
  });
});

/** Peak resident memory (VmHWM) of a process, in bytes, from /proc. */
async function peakRss(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

/** `total` bytes from one reused random MiB: the client side costs no memory and little CPU. */
function repeated(total: number): Readable {
  const block = randomBytes(MIB);
  let left = total;
  return new Readable({
    read() {
      if (left === 0) return void this.push(null);
      const chunk = left >= block.length ? block : block.subarray(0, left);
      left -= chunk.length;
      this.push(chunk);
    },
  });
}

describe('ferry --s3 (the command)', { skip: cephSkip() }, () => {
  const bigMiB = Number(process.env['FERRY_S3_BIG_MIB'] ?? 256);
  // Sized for FERRY_S3_BIG_MIB=10240 too.
  test(`serves a bucket prefix; a ${bigMiB} MiB upload streams with bounded memory`, { timeout: Math.max(300_000, bigMiB * 120) }, async (t) => {
    const s3 = await startS3(t);
    const env = { ...process.env, AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey };
    // A store that stays silent while it assembles the parts at CompleteMultipartUpload (AWS sends
    // keep-alive spaces) may take longer than the default 30 s socket timeout over 1 GiB.
    const slowComplete = bigMiB > 1024 ? ['--s3-socket-timeout', '900000'] : [];
    const cli = await startCli(
      t,
      ['--s3', `s3://${s3.bucket}/incoming`, '--s3-endpoint', s3.endpoint, ...slowComplete, '--user', 'cam:secret', '--write', '--host', '127.0.0.1', '--port', '0'],
      process.cwd(),
      20_000,
      env,
    );
    assert.ok(cli.output().includes(`serving s3://${s3.bucket}/incoming (read-write)`), cli.output());
    const client = new Client(bigMiB > 1024 ? 900_000 : 30_000);
    t.after(() => client.close());
    await client.access({ host: '127.0.0.1', port: cli.port, user: 'cam', password: 'secret' });
    // Warm up (SDK loaded, sockets open), then measure what the big upload adds.
    await client.uploadFrom(repeated(9 * MIB), 'warm-up.bin');
    const before = await peakRss(cli.child.pid!);
    const started = Date.now();
    await client.uploadFrom(repeated(bigMiB * MIB), 'big.bin');
    const seconds = (Date.now() - started) / 1000;
    const growth = (await peakRss(cli.child.pid!)) - before;
    t.diagnostic(`${bigMiB} MiB upload in ${seconds.toFixed(1)} s; peak RSS ${(before / MIB).toFixed(0)} MiB before, grew by ${(growth / MIB).toFixed(1)} MiB`);
    // Default parts: 8 MiB x (4 in flight + 1 filling) = 40 MiB, plus socket and GC slack.
    assert.ok(growth < 80 * MIB, `peak RSS grew by ${(growth / MIB).toFixed(1)} MiB`);
    assert.equal(await client.size('big.bin'), bigMiB * MIB);
    const raw = new S3Storage(s3.options({ prefix: 'incoming' }));
    t.after(() => raw.destroy());
    assert.equal((await raw.stat('/big.bin')).size, bigMiB * MIB);
    assert.equal(await s3.pendingUploads(), 0);
    await raw.delete('/big.bin'); // memstore keeps objects in memory
  });

  test('serves from a configuration file with storage type s3: each user in a sub-prefix', async (t) => {
    const s3 = await startS3(t);
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-s3-config-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await writeFile(
      path.join(dir, 'ferry.yaml'),
      [
        'host: 127.0.0.1',
        'port: 0',
        'storage:',
        '  type: s3',
        `  bucket: ${s3.bucket}`,
        '  prefix: ftp/',
        `  endpoint: ${s3.endpoint}`,
        `  credentials: { accessKeyId: ${s3.credentials.accessKeyId}, secretAccessKey: ${s3.credentials.secretAccessKey} }`,
        'users:',
        '  file: users.yaml',
        '',
      ].join('\n'),
    );
    await writeFile(path.join(dir, 'users.yaml'), `users:\n  cam:\n    passwordHash: "${await hashPassword('secret', 10)}"\n    permissions: full\n`);
    const cli = await startCli(t, ['serve', '--config', 'ferry.yaml'], dir);
    assert.ok(cli.output().includes(`serving s3://${s3.bucket}/ftp/ to the users in`), cli.output());
    const client = new Client(10_000);
    t.after(() => client.close());
    await client.access({ host: '127.0.0.1', port: cli.port, user: 'cam', password: 'secret' });
    await client.uploadFrom(Readable.from([Buffer.from('snapshot')]), 'snap.jpg');
    const raw = new S3Storage(s3.options({ prefix: 'ftp/cam' }));
    t.after(() => raw.destroy());
    assert.equal((await raw.stat('/snap.jpg')).size, 'snapshot'.length, 'the home /{username} is the sub-prefix ftp/cam/');
  });
});
