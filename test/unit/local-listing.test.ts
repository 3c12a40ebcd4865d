/**
 * LocalStorage listings as the reader threads produce them (storage/reader-threads.ts):
 * pages of names plus packed numbers, turned into FileInfo entries on the
 * main thread. Every entry must say exactly what stat() says about it, for
 * any name a POSIX file system allows, across page boundaries.
 */
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PAGE } from '../../src/storage/reader-threads.js';
import { LocalStorage } from '../../src/storage/local.js';
import type { FileInfo } from '../../src/storage/types.js';

async function pagesOf(storage: LocalStorage, path: string): Promise<FileInfo[][]> {
  const pages: FileInfo[][] = [];
  for await (const page of storage.list(path)) pages.push(page);
  return pages;
}

/** Names a client may create that are awkward for anything that joins or splits them. */
const AWKWARD = [
  'plain.txt',
  ' leading space',
  'trailing space ',
  'new\nline',
  'carriage\rreturn',
  'tab\there',
  'back\\slash',
  'semi;colon=equals',
  '"quoted"',
  "it's",
  '-rf',
  '%2F not a slash',
  'ünïcødé 文件 🚀',
  '\u0001control',
  '..dots..',
  'x'.repeat(255),
];

describe('LocalStorage list', () => {
  let base = '';
  let storage: LocalStorage;

  before(async () => {
    base = await fsp.mkdtemp(join(tmpdir(), 'ferry-local-list-'));
    storage = new LocalStorage(base, { fsync: false });
  });

  after(async () => {
    await fsp.rm(base, { recursive: true, force: true });
  });

  it('gives every entry the name, type, size, mtime, mode and id that stat() gives', async () => {
    const dir = join(base, 'awkward');
    await fsp.mkdir(dir);
    for (const [i, name] of AWKWARD.entries()) {
      await fsp.writeFile(join(dir, name), 'x'.repeat(i));
      await fsp.chmod(join(dir, name), 0o600 + i);
      // Times before 1970, with milliseconds, and far ahead.
      const mtime = new Date(Date.UTC(1960 + 7 * i, i % 12, 1 + i, i, 2 * i, 3 * i, 7 * i));
      await fsp.utimes(join(dir, name), mtime, mtime);
    }
    await fsp.mkdir(join(dir, 'sub dir'));
    const entries = (await pagesOf(storage, '/awkward')).flat();
    assert.deepEqual(entries.map((e) => e.name).sort(), [...AWKWARD, 'sub dir'].sort());
    for (const entry of entries) {
      const stat = await storage.stat(`/awkward/${entry.name}`);
      assert.deepEqual({ ...entry, mtime: entry.mtime.getTime() }, { ...stat, mtime: stat.mtime.getTime() }, entry.name);
    }
  });

  it('reads files larger than 4 GiB with their exact size', async () => {
    const dir = join(base, 'big');
    await fsp.mkdir(dir);
    const size = 2 ** 32 + 12_345;
    const handle = await fsp.open(join(dir, 'sparse.bin'), 'w');
    await handle.truncate(size); // sparse: no disk space used
    await handle.close();
    const [entry] = (await pagesOf(storage, '/big')).flat();
    assert.equal(entry?.size, size);
  });

  for (const count of [0, 1, PAGE - 1, PAGE, PAGE + 1, 2 * PAGE]) {
    it(`lists ${count} entries across page boundaries, each once`, async () => {
      const dir = join(base, `n${count}`);
      await fsp.mkdir(dir);
      const names = Array.from({ length: count }, (_, i) => `f-${i}`);
      await Promise.all(names.map((n) => fsp.writeFile(join(dir, n), '')));
      const pages = await pagesOf(storage, `/n${count}`);
      assert.ok(pages.every((p) => p.length > 0 && p.length <= PAGE), 'no empty or oversized page');
      assert.deepEqual(pages.flat().map((e) => e.name).sort(), names.sort());
    });
  }
});
