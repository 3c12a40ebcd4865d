/**
 * One behaviour suite, run against every Storage backend (local disk, memory,
 * S3 on Ceph's gateway, test/helpers/ceph.ts). A new backend joins by adding one `conformance(...)`
 * call at the bottom; what it cannot do (append, offsets, mtime, chmod) it
 * declares in `Traits`, and the suite then checks that it refuses it
 * cleanly instead of skipping silently.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, beforeEach, afterEach, describe, it } from 'node:test';
import { ErrorCodes, type ErrorCode } from '../../src/errors.js';
import { LocalStorage } from '../../src/storage/local.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import type { FileInfo, Storage, WriteOptions } from '../../src/storage/types.js';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { S3Storage } from '../../src/storage/s3.js';
import { cephClient, cephSkip, createBucket, sharedCeph, stopSharedCeph } from '../helpers/ceph.js';

interface Fixture {
  storage: Storage;
  /** Create many empty files fast, bypassing the storage when it has a quicker way. */
  createEmptyFiles(dir: string, names: string[]): Promise<void>;
  cleanup(): Promise<void>;
}

type MakeStorage = () => Promise<Fixture>;

interface Traits {
  /** write({append}) and write({start > 0}) work (capabilities.append / randomWrite). */
  appendAndOffsets: boolean;
  /** setModifiedTime and chmod exist. */
  timesAndModes: boolean;
  /** Entries for the large-listing test: 20,000 where filling them is quick. */
  manyEntries: number;
}

const FULL: Traits = { appendAndOffsets: true, timesAndModes: true, manyEntries: 20_000 };

function hasCode(code: ErrorCode) {
  return (err: unknown): boolean => {
    assert.equal((err as { code?: unknown } | null)?.code, code, `expected ${code}, got ${String(err)}`);
    return true;
  };
}

/** Split into chunks of irregular sizes, so writev batching and chunk boundaries get exercised. */
function chunked(data: Buffer, maxChunk = 65_536): Buffer[] {
  const chunks: Buffer[] = [];
  let offset = 0;
  let step = 1;
  while (offset < data.length) {
    const size = Math.min(data.length - offset, 1 + ((step * 7919) % maxChunk));
    chunks.push(data.subarray(offset, offset + size));
    offset += size;
    step += 1;
  }
  return chunks;
}

async function put(storage: Storage, path: string, data: Buffer | string, options?: WriteOptions): Promise<void> {
  const writable = await storage.write(path, options);
  await pipeline(Readable.from(chunked(Buffer.from(data))), writable);
}

async function get(storage: Storage, path: string, start?: number): Promise<Buffer> {
  const readable = await storage.read(path, start === undefined ? {} : { start });
  const parts: Buffer[] = [];
  for await (const chunk of readable) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

async function listAll(storage: Storage, path: string): Promise<FileInfo[]> {
  const entries: FileInfo[] = [];
  for await (const page of storage.list(path)) entries.push(...page);
  return entries;
}

async function names(storage: Storage, path: string): Promise<string[]> {
  return (await listAll(storage, path)).map((e) => e.name).sort();
}

/** Write some bytes, then destroy the writable with an error, as an aborted transfer does. */
async function abortedUpload(storage: Storage, path: string, data: Buffer, options?: WriteOptions): Promise<void> {
  const writable = await storage.write(path, options);
  writable.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => writable.write(data, (err) => (err ? reject(err) : resolve())));
  const closed = new Promise<void>((resolve) => writable.once('close', () => resolve()));
  writable.destroy(new Error('x'));
  await closed;
}

function conformance(name: string, makeStorage: MakeStorage, traits: Traits = FULL, options: { skip?: string | false } = {}): void {
  const noAppend = traits.appendAndOffsets ? false : 'this backend writes whole files only (see the UNSUPPORTED test)';
  const noTimes = traits.timesAndModes ? false : 'this backend has no settable mtime or mode (see the absent-methods test)';
  describe(`Storage conformance: ${name}`, options, () => {
    let fixture: Fixture;
    let storage: Storage;

    beforeEach(async () => {
      fixture = await makeStorage();
      storage = fixture.storage;
    });
    afterEach(async () => {
      await fixture.cleanup();
    });

    describe('write and read', () => {
      it('round-trips an empty file', async () => {
        await put(storage, '/empty', Buffer.alloc(0));
        assert.equal((await get(storage, '/empty')).length, 0);
        assert.equal((await storage.stat('/empty')).size, 0);
      });

      it('round-trips a small file byte-exact', async () => {
        const data = Buffer.from('hello, ferry\r\n\x00\xff', 'latin1');
        await put(storage, '/small.bin', data);
        assert.deepEqual(await get(storage, '/small.bin'), data);
      });

      it('round-trips 5 MiB of random data written in irregular chunks', async () => {
        const data = randomBytes(5 * 1024 * 1024);
        await put(storage, '/big.bin', data);
        const back = await get(storage, '/big.bin');
        assert.equal(back.length, data.length);
        assert.ok(back.equals(data));
        assert.equal((await storage.stat('/big.bin')).size, data.length);
      });

      it('a full upload replaces the previous content entirely', async () => {
        await put(storage, '/f', 'a much longer first version');
        await put(storage, '/f', 'short');
        assert.equal((await get(storage, '/f')).toString(), 'short');
      });

      it('reads from a start offset, and an offset at the end gives no bytes', async () => {
        const data = randomBytes(300_000);
        await put(storage, '/f', data);
        assert.ok((await get(storage, '/f', 123_457)).equals(data.subarray(123_457)));
        assert.equal((await get(storage, '/f', data.length)).length, 0);
      });

      it('rejects a read offset beyond the end with INVALID_OFFSET', async () => {
        await put(storage, '/f', 'abc');
        await assert.rejects(storage.read('/f', { start: 4 }), hasCode(ErrorCodes.INVALID_OFFSET));
        await assert.rejects(storage.read('/f', { start: -1 }), hasCode(ErrorCodes.INVALID_OFFSET));
      });

      it('read of a missing file is NOT_FOUND and of a directory IS_A_DIRECTORY, before any byte', async () => {
        await storage.mkdir('/d');
        await assert.rejects(storage.read('/missing'), hasCode(ErrorCodes.NOT_FOUND));
        await assert.rejects(storage.read('/d'), hasCode(ErrorCodes.IS_A_DIRECTORY));
      });

      it('write surfaces errors when opened: missing parent, directory target, file as parent', async () => {
        await storage.mkdir('/d');
        await put(storage, '/f', 'x');
        await assert.rejects(storage.write('/nope/f'), hasCode(ErrorCodes.NOT_FOUND));
        await assert.rejects(storage.write('/d'), hasCode(ErrorCodes.IS_A_DIRECTORY));
        if (traits.appendAndOffsets) await assert.rejects(storage.write('/d', { append: true }), hasCode(ErrorCodes.IS_A_DIRECTORY));
        await assert.rejects(storage.write('/f/g'), hasCode(ErrorCodes.NOT_A_DIRECTORY));
        await assert.rejects(storage.write('/'), hasCode(ErrorCodes.IS_A_DIRECTORY));
      });

      it('new content is not visible until the upload finishes', async () => {
        await put(storage, '/f', 'old');
        const writable = await storage.write('/f');
        await new Promise<void>((resolve, reject) =>
          writable.write(Buffer.from('new content'), (err) => (err ? reject(err) : resolve())),
        );
        assert.equal((await get(storage, '/f')).toString(), 'old');
        await new Promise<void>((resolve, reject) => {
          writable.once('error', reject);
          writable.end(() => resolve());
        });
        assert.equal((await get(storage, '/f')).toString(), 'new content');
      });
    });

    describe('append and offsets', () => {
      it('without append and offsets, capabilities say so and such writes are UNSUPPORTED, changing nothing', { skip: traits.appendAndOffsets }, async () => {
        assert.equal(storage.capabilities.append, false);
        assert.equal(storage.capabilities.randomWrite, false);
        await put(storage, '/f', 'abc');
        await assert.rejects(storage.write('/f', { append: true }), hasCode(ErrorCodes.UNSUPPORTED));
        await assert.rejects(storage.write('/f', { start: 1 }), hasCode(ErrorCodes.UNSUPPORTED));
        await assert.rejects(storage.write('/new', { append: true }), hasCode(ErrorCodes.UNSUPPORTED));
        assert.equal((await get(storage, '/f')).toString(), 'abc');
        assert.deepEqual(await names(storage, '/'), ['f']);
      });

      it('append adds to the end of an existing file', { skip: noAppend }, async () => {
        await put(storage, '/log', 'one\n');
        await put(storage, '/log', 'two\n', { append: true });
        await put(storage, '/log', 'three\n', { append: true });
        assert.equal((await get(storage, '/log')).toString(), 'one\ntwo\nthree\n');
      });

      it('append creates a missing file', { skip: noAppend }, async () => {
        await put(storage, '/new', 'first', { append: true });
        assert.equal((await get(storage, '/new')).toString(), 'first');
      });

      it('a start offset write overwrites in place and ends the file there (REST + STOR)', { skip: noAppend }, async () => {
        await put(storage, '/f', 'abcdefgh');
        await put(storage, '/f', 'XY', { start: 3 });
        assert.equal((await get(storage, '/f')).toString(), 'abcXY');
        await put(storage, '/f', '123', { start: 5 });
        assert.equal((await get(storage, '/f')).toString(), 'abcXY123');
      });

      it('a start offset beyond the end is INVALID_OFFSET and leaves the file alone', { skip: noAppend }, async () => {
        await put(storage, '/f', 'abc');
        await assert.rejects(storage.write('/f', { start: 4 }), hasCode(ErrorCodes.INVALID_OFFSET));
        assert.equal((await get(storage, '/f')).toString(), 'abc');
      });

      it('a start offset on a missing file is NOT_FOUND', { skip: noAppend }, async () => {
        await assert.rejects(storage.write('/missing', { start: 1 }), hasCode(ErrorCodes.NOT_FOUND));
      });

      it('an aborted offset write keeps what was written, so it can be resumed', { skip: noAppend }, async () => {
        await put(storage, '/f', 'abcdefgh');
        await abortedUpload(storage, '/f', Buffer.from('XYZ'), { start: 2 });
        assert.equal((await get(storage, '/f')).toString(), 'abXYZfgh');
      });

      it('a start-offset write that is aborted before any data leaves the file untouched', { skip: noAppend }, async () => {
        const data = randomBytes(1000);
        await put(storage, '/f', data);
        // REST 10 + STOR whose data connection never comes: opened, then destroyed.
        const writable = await storage.write('/f', { start: 10 });
        writable.on('error', () => undefined);
        const closed = new Promise<void>((resolve) => writable.once('close', () => resolve()));
        writable.destroy(new Error('no data connection'));
        await closed;
        assert.equal((await storage.stat('/f')).size, 1000);
        assert.ok((await get(storage, '/f')).equals(data));
      });

      it('a start-offset write leaves the file whole until it commits', { skip: noAppend }, async () => {
        const data = randomBytes(1000);
        await put(storage, '/f', data);
        const writable = await storage.write('/f', { start: 10 });
        await new Promise<void>((resolve, reject) =>
          writable.write(Buffer.from('XY'), (err) => (err ? reject(err) : resolve())),
        );
        assert.equal((await storage.stat('/f')).size, 1000);
        await new Promise<void>((resolve, reject) => {
          writable.once('error', reject);
          writable.end(() => resolve());
        });
        assert.equal((await storage.stat('/f')).size, 12);
        assert.ok((await get(storage, '/f')).equals(Buffer.concat([data.subarray(0, 10), Buffer.from('XY')])));
      });

      it('a start-offset write that commits ends the file where the new data ends', { skip: noAppend }, async () => {
        const data = randomBytes(300_000);
        await put(storage, '/f', data);
        const tail = randomBytes(100_000);
        await put(storage, '/f', tail, { start: 50_000 });
        const back = await get(storage, '/f');
        assert.equal(back.length, 150_000);
        assert.ok(back.equals(Buffer.concat([data.subarray(0, 50_000), tail])));
        assert.equal((await storage.stat('/f')).size, 150_000);
        // Longer than the old tail: the file grows.
        const longer = randomBytes(200_000);
        await put(storage, '/f', longer, { start: 100_000 });
        assert.ok((await get(storage, '/f')).equals(Buffer.concat([data.subarray(0, 50_000), tail.subarray(0, 50_000), longer])));
        // No data at all: the file ends at the offset.
        await put(storage, '/f', Buffer.alloc(0), { start: 7 });
        assert.ok((await get(storage, '/f')).equals(data.subarray(0, 7)));
      });

      it('an aborted start-offset write after some data keeps the old length', { skip: noAppend }, async () => {
        const data = randomBytes(300_000);
        await put(storage, '/f', data);
        const written = randomBytes(70_000);
        await abortedUpload(storage, '/f', written, { start: 10_000 });
        const back = await get(storage, '/f');
        assert.equal(back.length, 300_000);
        assert.equal((await storage.stat('/f')).size, 300_000);
        assert.ok(back.equals(Buffer.concat([data.subarray(0, 10_000), written, data.subarray(80_000)])));
      });

      it('an aborted start-offset write past the old end keeps the longer file', { skip: noAppend }, async () => {
        await put(storage, '/f', 'abcdef');
        await abortedUpload(storage, '/f', Buffer.from('XYZ1234'), { start: 4 });
        assert.equal((await get(storage, '/f')).toString(), 'abcdXYZ1234');
      });

      it('an aborted append that created the file leaves no file', { skip: noAppend }, async () => {
        await abortedUpload(storage, '/new', Buffer.from('data'), { append: true });
        await assert.rejects(storage.stat('/new'), hasCode(ErrorCodes.NOT_FOUND));
      });
    });

    describe('exclusive create', () => {
      it('creates a missing file', async () => {
        await put(storage, '/unique', 'content', { exclusive: true });
        assert.equal((await get(storage, '/unique')).toString(), 'content');
      });

      it('fails with EXISTS when the file, or a directory, exists, leaving it untouched', async () => {
        await put(storage, '/taken', 'original');
        await storage.mkdir('/dir');
        await assert.rejects(storage.write('/taken', { exclusive: true }), hasCode(ErrorCodes.EXISTS));
        await assert.rejects(storage.write('/dir', { exclusive: true }), hasCode(ErrorCodes.EXISTS));
        assert.equal((await get(storage, '/taken')).toString(), 'original');
      });

      it('fails at commit with EXISTS when another upload took the name meanwhile', async () => {
        const first = await storage.write('/race', { exclusive: true });
        await put(storage, '/race', 'winner', { exclusive: true });
        first.write(Buffer.from('loser'));
        first.end();
        await assert.rejects(
          new Promise((resolve, reject) => {
            first.once('finish', resolve);
            first.once('error', reject);
          }),
          hasCode(ErrorCodes.EXISTS),
        );
        assert.equal((await get(storage, '/race')).toString(), 'winner');
        assert.deepEqual(await names(storage, '/'), ['race']);
      });
    });

    describe('aborted uploads', () => {
      it('an aborted full upload keeps the previous content and shows no temp entry', async () => {
        await put(storage, '/f', 'previous');
        await abortedUpload(storage, '/f', randomBytes(100_000));
        assert.equal((await get(storage, '/f')).toString(), 'previous');
        assert.deepEqual(await names(storage, '/'), ['f']);
      });

      it('an aborted upload of a new file leaves no file and no temp entry', async () => {
        await abortedUpload(storage, '/new', randomBytes(10_000));
        await assert.rejects(storage.stat('/new'), hasCode(ErrorCodes.NOT_FOUND));
        assert.deepEqual(await names(storage, '/'), []);
      });

      it('an aborted exclusive upload leaves no file', async () => {
        await abortedUpload(storage, '/new', Buffer.from('x'), { exclusive: true });
        await assert.rejects(storage.stat('/new'), hasCode(ErrorCodes.NOT_FOUND));
        assert.deepEqual(await names(storage, '/'), []);
      });
    });

    describe('list', () => {
      it('lists names, types and sizes of a directory', async () => {
        await storage.mkdir('/d');
        await storage.mkdir('/d/sub');
        await put(storage, '/d/a.txt', 'aaa');
        await put(storage, '/d/b.bin', Buffer.alloc(1000));
        await put(storage, '/d/empty', '');
        const entries = (await listAll(storage, '/d')).sort((x, y) => x.name.localeCompare(y.name));
        assert.deepEqual(
          entries.map((e) => [e.name, e.type]),
          [
            ['a.txt', 'file'],
            ['b.bin', 'file'],
            ['empty', 'file'],
            ['sub', 'dir'],
          ],
        );
        assert.deepEqual(
          entries.filter((e) => e.type === 'file').map((e) => e.size),
          [3, 1000, 0],
        );
        for (const entry of entries) assert.ok(entry.mtime instanceof Date && !Number.isNaN(entry.mtime.getTime()));
      });

      it('lists an empty directory and the root', async () => {
        await storage.mkdir('/empty');
        assert.deepEqual(await listAll(storage, '/empty'), []);
        assert.deepEqual(await names(storage, '/'), ['empty']);
      });

      it(`lists ${traits.manyEntries.toLocaleString('en')} entries`, async () => {
        await storage.mkdir('/many');
        const expected = Array.from({ length: traits.manyEntries }, (_, i) => `file-${i.toString().padStart(5, '0')}`);
        await fixture.createEmptyFiles('/many', expected);
        const seen = new Set<string>();
        let pages = 0;
        for await (const page of storage.list('/many')) {
          pages++;
          for (const entry of page) {
            assert.equal(entry.type, 'file');
            seen.add(entry.name);
          }
        }
        assert.ok(pages > 1, 'a large directory comes in several pages, never whole');
        assert.equal(seen.size, expected.length);
        assert.ok(expected.every((n) => seen.has(n)));
      });

      it('a consumer may stop listing early', async () => {
        await storage.mkdir('/d');
        await fixture.createEmptyFiles('/d', Array.from({ length: 300 }, (_, i) => `f${i}`));
        let count = 0;
        for await (const page of storage.list('/d')) {
          count += page.length;
          break;
        }
        assert.ok(count > 0 && count <= 300);
        assert.equal((await listAll(storage, '/d')).length, 300);
      });

      it('list of a file is NOT_A_DIRECTORY and of a missing path NOT_FOUND', async () => {
        await put(storage, '/f', 'x');
        await assert.rejects(listAll(storage, '/f'), hasCode(ErrorCodes.NOT_A_DIRECTORY));
        await assert.rejects(listAll(storage, '/missing'), hasCode(ErrorCodes.NOT_FOUND));
      });
    });

    describe('stat', () => {
      it('reports name, type, size, mtime, mode and id; the root is named /', async () => {
        const before = Date.now();
        await put(storage, '/f.txt', '12345');
        await storage.mkdir('/d');
        const file = await storage.stat('/f.txt');
        assert.equal(file.name, 'f.txt');
        assert.equal(file.type, 'file');
        assert.equal(file.size, 5);
        assert.ok(file.mtime.getTime() >= before - 2000 && file.mtime.getTime() <= Date.now() + 2000);
        assert.equal(typeof file.mode, 'number');
        assert.equal(typeof file.id, 'string');
        assert.equal((await storage.stat('/d')).type, 'dir');
        const root = await storage.stat('/');
        assert.equal(root.name, '/');
        assert.equal(root.type, 'dir');
      });

      it('id is stable for one file and differs between files', async () => {
        await put(storage, '/a', 'a');
        await put(storage, '/b', 'b');
        assert.equal((await storage.stat('/a')).id, (await storage.stat('/a')).id);
        assert.notEqual((await storage.stat('/a')).id, (await storage.stat('/b')).id);
      });

      it('stat of a missing path is NOT_FOUND and of a path through a file NOT_A_DIRECTORY', async () => {
        await put(storage, '/f', 'x');
        await assert.rejects(storage.stat('/missing'), hasCode(ErrorCodes.NOT_FOUND));
        await assert.rejects(storage.stat('/missing/deeper'), hasCode(ErrorCodes.NOT_FOUND));
        await assert.rejects(storage.stat('/f/child'), hasCode(ErrorCodes.NOT_A_DIRECTORY));
      });

      it('paths containing NUL are refused with INVALID_NAME', async () => {
        await assert.rejects(storage.stat('/a\0b'), hasCode(ErrorCodes.INVALID_NAME));
        await assert.rejects(storage.write('/a\0b'), hasCode(ErrorCodes.INVALID_NAME));
        await assert.rejects(storage.mkdir('/a\0b'), hasCode(ErrorCodes.INVALID_NAME));
      });
    });

    describe('directories, delete and rename', () => {
      it('mkdir creates a directory; an existing entry is EXISTS; a missing parent NOT_FOUND', async () => {
        await storage.mkdir('/d');
        await put(storage, '/f', 'x');
        assert.equal((await storage.stat('/d')).type, 'dir');
        await assert.rejects(storage.mkdir('/d'), hasCode(ErrorCodes.EXISTS));
        await assert.rejects(storage.mkdir('/f'), hasCode(ErrorCodes.EXISTS));
        await assert.rejects(storage.mkdir('/'), hasCode(ErrorCodes.EXISTS));
        await assert.rejects(storage.mkdir('/no/such'), hasCode(ErrorCodes.NOT_FOUND));
      });

      it('rmdir removes an empty directory; non-empty is NOT_EMPTY; a file NOT_A_DIRECTORY', async () => {
        await storage.mkdir('/d');
        await put(storage, '/d/f', 'x');
        await assert.rejects(storage.rmdir('/d'), hasCode(ErrorCodes.NOT_EMPTY));
        await assert.rejects(storage.rmdir('/d/f'), hasCode(ErrorCodes.NOT_A_DIRECTORY));
        await assert.rejects(storage.rmdir('/missing'), hasCode(ErrorCodes.NOT_FOUND));
        await storage.delete('/d/f');
        await storage.rmdir('/d');
        await assert.rejects(storage.stat('/d'), hasCode(ErrorCodes.NOT_FOUND));
      });

      it('delete removes a file; a directory is IS_A_DIRECTORY; a missing file NOT_FOUND', async () => {
        await put(storage, '/f', 'x');
        await storage.mkdir('/d');
        await storage.delete('/f');
        await assert.rejects(storage.stat('/f'), hasCode(ErrorCodes.NOT_FOUND));
        await assert.rejects(storage.delete('/d'), hasCode(ErrorCodes.IS_A_DIRECTORY));
        await assert.rejects(storage.delete('/f'), hasCode(ErrorCodes.NOT_FOUND));
        assert.equal((await storage.stat('/d')).type, 'dir');
      });

      it('renames a file, replacing an existing target file', async () => {
        await put(storage, '/a', 'content of a');
        await put(storage, '/b', 'content of b');
        await storage.rename('/a', '/c');
        assert.equal((await get(storage, '/c')).toString(), 'content of a');
        await assert.rejects(storage.stat('/a'), hasCode(ErrorCodes.NOT_FOUND));
        await storage.rename('/c', '/b');
        assert.equal((await get(storage, '/b')).toString(), 'content of a');
        assert.deepEqual(await names(storage, '/'), ['b']);
      });

      it('renames a directory with its contents into another directory', async () => {
        await storage.mkdir('/src');
        await storage.mkdir('/src/inner');
        await put(storage, '/src/inner/f', 'deep');
        await storage.mkdir('/dst');
        await storage.rename('/src', '/dst/moved');
        assert.equal((await get(storage, '/dst/moved/inner/f')).toString(), 'deep');
        await assert.rejects(storage.stat('/src'), hasCode(ErrorCodes.NOT_FOUND));
      });

      it('rename errors: missing source NOT_FOUND, missing target parent NOT_FOUND, dir into itself INVALID_NAME', async () => {
        await storage.mkdir('/d');
        await put(storage, '/f', 'x');
        await assert.rejects(storage.rename('/missing', '/x'), hasCode(ErrorCodes.NOT_FOUND));
        await assert.rejects(storage.rename('/f', '/no/such'), hasCode(ErrorCodes.NOT_FOUND));
        await assert.rejects(storage.rename('/d', '/d/sub'), hasCode(ErrorCodes.INVALID_NAME));
        await assert.rejects(storage.rename('/f', '/d'), hasCode(ErrorCodes.IS_A_DIRECTORY));
        assert.equal((await storage.stat('/d')).type, 'dir');
      });

      it('without settable times and modes, setModifiedTime and chmod are absent (MFMT and SITE CHMOD answer 502)', { skip: traits.timesAndModes }, () => {
        assert.equal(storage.setModifiedTime, undefined);
        assert.equal(storage.chmod, undefined);
      });

      it('setModifiedTime changes the mtime that stat reports', { skip: noTimes }, async () => {
        await put(storage, '/f', 'x');
        const when = new Date('2020-02-29T12:34:56.000Z');
        assert.ok(storage.setModifiedTime);
        await storage.setModifiedTime('/f', when);
        assert.equal((await storage.stat('/f')).mtime.getTime(), when.getTime());
        assert.equal((await listAll(storage, '/'))[0]?.mtime.getTime(), when.getTime());
      });

      it('chmod sets permission bits only', { skip: noTimes }, async () => {
        await put(storage, '/f', 'x');
        assert.ok(storage.chmod);
        await storage.chmod('/f', 0o640);
        assert.equal((await storage.stat('/f')).mode, 0o640);
        await storage.chmod('/f', 0o4755);
        assert.equal((await storage.stat('/f')).mode, 0o755);
      });

      it('keeps the permission bits of a file replaced by an upload', { skip: noTimes }, async () => {
        await put(storage, '/f', 'x');
        await storage.chmod?.('/f', 0o600);
        await put(storage, '/f', 'y');
        assert.equal((await storage.stat('/f')).mode, 0o600);
      });
    });

    describe('names', () => {
      const awkward = ['with space.txt', "it's \"quoted\".txt", '-rf', '--help', 'ünïcødé 日本語 🚀.txt', ' leading', 'trailing '];

      it('stores, lists, reads, renames and deletes names with spaces, quotes, leading dashes and unicode', async () => {
        await storage.mkdir('/dir with space');
        for (const name of awkward) await put(storage, `/dir with space/${name}`, name);
        assert.deepEqual(await names(storage, '/dir with space'), [...awkward].sort());
        for (const name of awkward) {
          assert.equal((await get(storage, `/dir with space/${name}`)).toString(), name);
          assert.equal((await storage.stat(`/dir with space/${name}`)).name, name);
        }
        await storage.rename('/dir with space/-rf', '/dir with space/ünï -rf');
        await storage.delete('/dir with space/ünï -rf');
        await assert.rejects(storage.stat('/dir with space/-rf'), hasCode(ErrorCodes.NOT_FOUND));
      });
    });
  });
}

let tempBase = '';

before(async () => {
  tempBase = await fsp.mkdtemp(join(tmpdir(), 'ferry-storage-'));
});

after(async () => {
  if (tempBase) await fsp.rm(tempBase, { recursive: true, force: true });
});

let localCount = 0;

conformance('LocalStorage', async () => {
  localCount += 1;
  const root = join(tempBase, `t${localCount}`);
  await fsp.mkdir(root);
  return {
    storage: new LocalStorage(root),
    async createEmptyFiles(dir, fileNames) {
      const base = join(root, ...dir.split('/').filter(Boolean));
      // Hard links to one empty file outside the root: a directory entry each, no inode
      // allocation, consistently the fastest way to make 20,000 entries on a busy disk.
      const seed = `${root}.seed`;
      await fsp.writeFile(seed, '');
      for (let i = 0; i < fileNames.length; i += 64) {
        await Promise.all(fileNames.slice(i, i + 64).map((n) => fsp.link(seed, join(base, n))));
      }
      await fsp.unlink(seed);
    },
    async cleanup() {
      await fsp.rm(root, { recursive: true, force: true });
    },
  };
});

conformance('MemoryStorage', async () => {
  const storage = new MemoryStorage();
  return {
    storage,
    async createEmptyFiles(dir, fileNames) {
      for (const n of fileNames) {
        const writable = await storage.write(`${dir}/${n}`);
        await new Promise<void>((resolve) => writable.end(() => resolve()));
      }
    },
    async cleanup() {},
  };
});

/**
 * S3 on a Ceph cluster (radosgw, memstore), one bucket for the file and one
 * prefix per test. Listings page 7 keys at a time, so "lists many entries"
 * pages through 25 keys as it would through thousands; FERRY_S3_LIST_KEYS
 * runs 1,500 keys in S3's own pages of 1,000.
 */
let s3Count = 0;
let s3Bucket: Promise<string> | null = null;
after(stopSharedCeph);

conformance(
  'S3Storage',
  async () => {
    const ceph = await sharedCeph();
    const client = cephClient(ceph);
    s3Bucket ??= createBucket(ceph, client);
    const bucket = await s3Bucket;
    s3Count += 1;
    const prefix = `t${s3Count}/`;
    const listPageSize = process.env['FERRY_S3_LIST_KEYS'] ? undefined : 7;
    const credentials = { accessKeyId: ceph.accessKeyId, secretAccessKey: ceph.secretAccessKey };
    const storage = new S3Storage({ bucket, prefix, endpoint: ceph.endpoint, forcePathStyle: true, credentials, listPageSize });
    return {
      storage,
      async createEmptyFiles(dir, fileNames) {
        // Straight PutObjects, 32 at a time: the storage's checks per upload would only slow this down.
        const keyPrefix = `${prefix}${dir.slice(1)}/`;
        for (let i = 0; i < fileNames.length; i += 32) {
          await Promise.all(fileNames.slice(i, i + 32).map((n) => client.send(new PutObjectCommand({ Bucket: bucket, Key: keyPrefix + n, Body: Buffer.alloc(0) }))));
        }
      },
      async cleanup() {
        storage.destroy();
        client.destroy();
      },
    };
  },
  { appendAndOffsets: false, timesAndModes: false, manyEntries: process.env['FERRY_S3_LIST_KEYS'] ? 1_500 : 25 },
  { skip: cephSkip() },
);
