/**
 * End-to-end tests with a real FTP client library (basic-ftp) against a real
 * Ferry server on loopback. The same suite runs over LocalStorage (a temp
 * folder), MemoryStorage and S3Storage (Ceph's gateway, one key prefix per test), so
 * the backends are held to the same client-visible behaviour; where S3
 * cannot do something (APPE, MFMT) the suite checks the precise refusal.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { after, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { Client, FileType, FTPError } from 'basic-ftp';
import { ErrorCodes, FerryError, LocalStorage, MemoryStorage, S3Storage, type Storage } from '../../src/index.js';
import { cephClient, cephSkip, createBucket, sharedCeph, stopSharedCeph } from '../helpers/ceph.js';
import { PASSWORD, USER, startServer, type TestServer, type TestServerOptions } from '../helpers/server.js';
import { RawClient } from '../helpers/ftp-raw.js';
import { collector } from '../helpers/streams.js';

after(stopSharedCeph);

type Backend = 'local' | 'memory' | 's3';

interface Fixture extends TestServer {
  client: Client;
  /** A Storage looking at the same files as the server, for checks behind the client's back. */
  inspect: Storage;
}

/** MDTM and MLSx times are whole seconds, truncated. */
const wholeSeconds = (d: Date): number => Math.floor(d.getTime() / 1000) * 1000;

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/** A readable that yields `data` (nothing at all for an empty buffer), in byte mode. */
function source(data: Buffer): Readable {
  return Readable.from(data.length > 0 ? [data] : [], { objectMode: false });
}

async function readStream(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Does `path` exist in the storage behind the server? */
async function exists(storage: Storage, p: string): Promise<boolean> {
  try {
    await storage.stat(p);
    return true;
  } catch (err) {
    if (err instanceof FerryError && err.code === ErrorCodes.NOT_FOUND) return false;
    throw err;
  }
}

async function names(storage: Storage, dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const page of storage.list(dir)) for (const info of page) out.push(info.name);
  return out.sort();
}

/** A basic-ftp rejection with the given reply code. */
function ftpCode(code: number) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof FTPError, `expected an FTPError, got ${String(err)}`);
    assert.equal(err.code, code);
    return true;
  };
}

/** One bucket on the process's Ceph cluster for the file; each test gets its own prefix. */
let s3Bucket: Promise<string> | null = null;
let s3Tests = 0;

async function s3Storage(t: TestContext): Promise<S3Storage> {
  const ceph = await sharedCeph();
  s3Bucket ??= (async () => {
    const client = cephClient(ceph);
    try {
      return await createBucket(ceph, client);
    } finally {
      client.destroy();
    }
  })();
  const bucket = await s3Bucket;
  s3Tests += 1;
  const credentials = { accessKeyId: ceph.accessKeyId, secretAccessKey: ceph.secretAccessKey };
  const storage = new S3Storage({ bucket, prefix: `basic-${s3Tests}/`, endpoint: ceph.endpoint, forcePathStyle: true, credentials });
  t.after(() => storage.destroy());
  return storage;
}

async function setup(t: TestContext, backend: Backend, options: TestServerOptions = {}): Promise<Fixture> {
  const memory = backend === 'memory' ? new MemoryStorage() : backend === 's3' ? await s3Storage(t) : undefined;
  const server = await startServer(t, memory ? { ...options, storage: memory } : options);
  const client = new Client(10_000);
  if (process.env.FTP_VERBOSE) client.ftp.verbose = true; // FTP_VERBOSE=1 prints the control dialogue
  t.after(() => client.close());
  await client.access({ host: server.host, port: server.port, user: USER, password: PASSWORD });
  return { ...server, client, inspect: memory ?? new LocalStorage(server.root) };
}

async function roundTrip(fx: Fixture, name: string, data: Buffer): Promise<void> {
  await fx.client.uploadFrom(source(data), name);
  const stored = await readStream(await fx.inspect.read(`/${name}`));
  assert.equal(stored.length, data.length, 'stored size');
  assert.equal(sha256(stored), sha256(data), 'stored content');
  const { sink, bytes } = collector();
  await fx.client.downloadTo(sink, name);
  assert.equal(bytes().length, data.length, 'downloaded size');
  assert.equal(sha256(bytes()), sha256(data), 'downloaded content');
}

/**
 * Pseudo-random bytes of a given total length, produced lazily in 1 MiB
 * chunks and hashed as they are produced: never held whole in memory.
 */
function randomSource(total: number): { stream: Readable; digest: () => string } {
  const hash = createHash('sha256');
  let left = total;
  const stream = new Readable({
    highWaterMark: 1 << 20,
    read() {
      if (left === 0) {
        this.push(null);
        return;
      }
      const chunk = randomBytes(Math.min(left, 1 << 20));
      left -= chunk.length;
      hash.update(chunk);
      this.push(chunk);
    },
  });
  return { stream, digest: () => hash.digest('hex') };
}

function hashingSink(): { sink: Writable; digest: () => string; size: () => number } {
  const hash = createHash('sha256');
  let size = 0;
  const sink = new Writable({
    highWaterMark: 1 << 20,
    write(chunk: Buffer, _enc, callback) {
      hash.update(chunk);
      size += chunk.length;
      callback();
    },
  });
  return { sink, digest: () => hash.digest('hex'), size: () => size };
}

function clientSuite(backend: Backend): void {
  describe(`basic-ftp against Ferry over ${backend} storage`, { skip: backend === 's3' && cephSkip() }, () => {
    test('logs in with the right password and lands in /', async (t) => {
      const fx = await setup(t, backend);
      assert.equal(await fx.client.pwd(), '/');
    });

    test('a wrong password is refused with 530', async (t) => {
      const fx = await setup(t, backend);
      const other = new Client(10_000);
      t.after(() => other.close());
      await assert.rejects(other.access({ host: fx.host, port: fx.port, user: USER, password: 'wrong' }), ftpCode(530));
    });

    test('FEAT announces MLST with a literal " MLST " line', async (t) => {
      const fx = await setup(t, backend);
      const features = await fx.client.features();
      assert.ok(features.has('MLST'), `FEAT lacks MLST: ${[...features.keys()].join(',')}`);
      const raw = await RawClient.connect(fx.port);
      t.after(() => raw.close());
      await raw.expect(220);
      const feat = await raw.command('FEAT', 211);
      assert.ok(
        feat.lines.some((line) => line.startsWith(' MLST ')),
        `no line starting with " MLST " in ${JSON.stringify(feat.lines)}`,
      );
    });

    test('list() uses MLSD and reports name, size, type and modification time', async (t) => {
      const fx = await setup(t, backend);
      const data = randomBytes(1234);
      await fx.client.uploadFrom(source(data), 'file.bin');
      await fx.client.ensureDir('/sub');
      await fx.client.cd('/');
      const entries = await fx.client.list();
      assert.deepEqual(fx.client.availableListCommands, ['MLSD'], 'basic-ftp settled on MLSD');
      assert.deepEqual(entries.map((e) => e.name).sort(), ['file.bin', 'sub']);
      const file = entries.find((e) => e.name === 'file.bin')!;
      const dir = entries.find((e) => e.name === 'sub')!;
      assert.equal(file.type, FileType.File);
      assert.equal(file.size, 1234);
      assert.equal(dir.type, FileType.Directory);
      const fileStat = await fx.inspect.stat('/file.bin');
      const dirStat = await fx.inspect.stat('/sub');
      assert.ok(file.modifiedAt, 'MLSD modify fact parsed');
      // The server sends whole seconds (minimal clients parse exactly 14 digits).
      assert.equal(file.modifiedAt.getTime(), wholeSeconds(fileStat.mtime));
      assert.equal(dir.modifiedAt?.getTime(), wholeSeconds(dirStat.mtime));
    });

    test('listing an empty directory gives no entries', async (t) => {
      const fx = await setup(t, backend);
      await fx.client.ensureDir('/empty');
      assert.deepEqual(await fx.client.list(), []);
      assert.deepEqual(await fx.client.list('/empty'), []);
    });

    for (const [label, size] of [
      ['0 B', 0],
      ['1 B', 1],
      ['64 KiB + 1', 64 * 1024 + 1],
      ['8 MiB', 8 * 1024 * 1024],
    ] as const) {
      test(`upload and download of ${label} are byte-exact`, async (t) => {
        const fx = await setup(t, backend);
        await roundTrip(fx, `blob-${size}.bin`, randomBytes(size));
      });
    }

    if (backend === 'local') {
      test('a 100 MiB streamed upload and download complete byte-exact', { timeout: 60_000 }, async (t) => {
        const fx = await setup(t, backend);
        const total = 100 * 1024 * 1024;
        const up = randomSource(total);
        await fx.client.uploadFrom(up.stream, 'big.bin');
        const sent = up.digest();
        assert.equal((await fx.inspect.stat('/big.bin')).size, total);
        const onDisk = createHash('sha256');
        for await (const chunk of createReadStream(path.join(fx.root, 'big.bin'), { highWaterMark: 1 << 20 })) {
          onDisk.update(chunk as Buffer);
        }
        assert.equal(onDisk.digest('hex'), sent, 'content on disk');
        const down = hashingSink();
        await fx.client.downloadTo(down.sink, 'big.bin');
        assert.equal(down.size(), total);
        assert.equal(down.digest(), sent, 'downloaded content');
      });
    }

    test('ensureDir, cd, pwd, rename, remove, removeDir and removeEmptyDir work', async (t) => {
      const fx = await setup(t, backend);
      const { client, inspect } = fx;
      await client.ensureDir('/a/b c/d');
      assert.equal(await client.pwd(), '/a/b c/d');
      assert.equal((await inspect.stat('/a/b c/d')).type, 'dir');
      await client.uploadFrom(source(Buffer.from('x')), 'f.txt');
      assert.equal(await exists(inspect, '/a/b c/d/f.txt'), true);

      await client.cd('..');
      assert.equal(await client.pwd(), '/a/b c');
      await client.cd('/');
      await client.rename('/a/b c', '/a/renamed');
      assert.equal(await exists(inspect, '/a/b c'), false);
      assert.equal(await exists(inspect, '/a/renamed/d/f.txt'), true);

      await client.rename('/a/renamed/d/f.txt', '/moved.txt');
      assert.equal(await exists(inspect, '/moved.txt'), true);
      await client.remove('/moved.txt');
      assert.equal(await exists(inspect, '/moved.txt'), false);
      await assert.rejects(client.remove('/moved.txt'), ftpCode(550));

      await client.ensureDir('/lonely');
      await client.cd('/');
      // RMD of a directory with content is refused, the tree is untouched.
      await assert.rejects(client.removeEmptyDir('/a'), ftpCode(550));
      assert.equal(await exists(inspect, '/a/renamed/d'), true);
      await client.removeEmptyDir('/lonely');
      assert.equal(await exists(inspect, '/lonely'), false);

      await client.uploadFrom(source(Buffer.from('deep')), '/a/renamed/d/g.txt');
      await client.removeDir('/a');
      assert.equal(await exists(inspect, '/a'), false);
      assert.equal(await client.pwd(), '/');
      assert.deepEqual(await names(inspect, '/'), []);
    });

    test('downloadTo with startAt resumes from the offset (REST + RETR)', async (t) => {
      const fx = await setup(t, backend);
      const data = randomBytes(100_000);
      await fx.client.uploadFrom(source(data), 'resume.bin');
      for (const offset of [1, 12_345, 99_999, 100_000]) {
        const { sink, bytes } = collector();
        await fx.client.downloadTo(sink, 'resume.bin', offset);
        assert.equal(bytes().length, data.length - offset, `length from ${offset}`);
        assert.ok(bytes().equals(data.subarray(offset)), `content from ${offset}`);
      }
      // The offset applies to one transfer only: the next download is whole.
      const { sink, bytes } = collector();
      await fx.client.downloadTo(sink, 'resume.bin');
      assert.ok(bytes().equals(data));
    });

    if (backend === 's3') {
      test('APPE answers 504 (objects are written whole) and changes nothing', async (t) => {
        const fx = await setup(t, backend);
        const head = randomBytes(70_000);
        await fx.client.uploadFrom(source(head), 'log.bin');
        await assert.rejects(fx.client.appendFrom(source(randomBytes(10)), 'log.bin'), ftpCode(504));
        await assert.rejects(fx.client.appendFrom(source(randomBytes(10)), 'fresh.bin'), ftpCode(504));
        assert.ok((await readStream(await fx.inspect.read('/log.bin'))).equals(head));
        assert.deepEqual(await names(fx.inspect, '/'), ['log.bin']);
      });
    }

    test('appendFrom appends to an existing file and creates a missing one (APPE)', { skip: backend === 's3' && 'see the APPE 504 test' }, async (t) => {
      const fx = await setup(t, backend);
      const head = randomBytes(70_000);
      const tail = randomBytes(33_333);
      await fx.client.uploadFrom(source(head), 'log.bin');
      await fx.client.appendFrom(source(tail), 'log.bin');
      const stored = await readStream(await fx.inspect.read('/log.bin'));
      assert.equal(sha256(stored), sha256(Buffer.concat([head, tail])));

      await fx.client.appendFrom(source(tail), 'fresh.bin');
      const fresh = await readStream(await fx.inspect.read('/fresh.bin'));
      assert.ok(fresh.equals(tail));
    });

    test('names with spaces, quotes, leading dashes and unicode survive every command', async (t) => {
      const fx = await setup(t, backend);
      const { client, inspect } = fx;
      const tricky = ['with space.txt', 'say "hi".txt', "it's.txt", '-rf', '--help', 'ünïcødé 日本語 😀.txt', 'a;b=c.txt'];
      for (const [i, name] of tricky.entries()) {
        const data = Buffer.from(`content #${i} of ${name}`);
        await client.uploadFrom(source(data), name);
        assert.ok((await readStream(await inspect.read(`/${name}`))).equals(data), `stored ${name}`);
        assert.equal(await client.size(name), data.length, `SIZE ${name}`);
        const { sink, bytes } = collector();
        await client.downloadTo(sink, name);
        assert.ok(bytes().equals(data), `downloaded ${name}`);
      }
      const listed = (await client.list()).map((e) => e.name).sort();
      assert.deepEqual(listed, [...tricky].sort());

      for (const name of tricky) {
        await client.rename(name, `${name}.old`);
        assert.equal(await exists(inspect, `/${name}`), false);
        await client.remove(`${name}.old`);
      }
      assert.deepEqual(await names(inspect, '/'), []);

      // Directories too, and PWD quotes embedded quotes by doubling them (RFC 959 appendix II).
      const dir = 'dir "q" -x ü';
      await client.ensureDir(`/${dir}`);
      assert.equal((await inspect.stat(`/${dir}`)).type, 'dir');
      const pwd = await client.send('PWD');
      assert.equal(pwd.code, 257);
      assert.ok(pwd.message.startsWith('257 "/dir ""q"" -x ü" '), pwd.message);
    });

    test('lastMod (MDTM) and size (SIZE) report the stored values', async (t) => {
      const fx = await setup(t, backend);
      const data = randomBytes(4321);
      await fx.client.uploadFrom(source(data), 'stamped.bin');
      assert.equal(await fx.client.size('stamped.bin'), 4321);
      const fresh = await fx.client.lastMod('stamped.bin');
      assert.equal(fresh.getTime(), wholeSeconds((await fx.inspect.stat('/stamped.bin')).mtime));
      assert.ok(Math.abs(fresh.getTime() - Date.now()) < 60_000, `fresh mtime ${fresh.toISOString()} is about now`);

      if (fx.inspect.setModifiedTime) {
        const when = new Date(Date.UTC(2001, 1, 3, 4, 5, 6));
        await fx.inspect.setModifiedTime('/stamped.bin', when);
        assert.equal((await fx.client.lastMod('stamped.bin')).toISOString(), when.toISOString());
      }

      await assert.rejects(fx.client.size('missing.bin'), ftpCode(550));
      await assert.rejects(fx.client.lastMod('missing.bin'), ftpCode(550));
      await fx.client.ensureDir('/d');
      await assert.rejects(fx.client.size('/d'), ftpCode(550));
    });

    test('an upload without the write permission fails with 550 and writes nothing', async (t) => {
      const fx = await setup(t, backend, { permissions: 'elr' });
      await assert.rejects(fx.client.uploadFrom(source(randomBytes(10_000)), 'nope.bin'), ftpCode(550));
      await assert.rejects(fx.client.appendFrom(source(randomBytes(10)), 'nope.bin'), ftpCode(550));
      await assert.rejects(fx.client.ensureDir('/newdir'), ftpCode(550));
      assert.equal(await exists(fx.inspect, '/nope.bin'), false);
      assert.deepEqual(await names(fx.inspect, '/'), []);
      if (backend === 'local') assert.deepEqual(await readdir(fx.root), [], 'no file, not even a temp file, on disk');
      // The session is still usable for what it may do.
      assert.deepEqual(await fx.client.list(), []);
    });
  });
}

clientSuite('local');
clientSuite('memory');
clientSuite('s3');
