/**
 * LocalStorage keeps every operation inside its root, whatever symlinks in
 * the served tree point to.
 *
 * Layout built once for the suite (base/ is a fresh temp dir):
 *   base/outside/secret.txt            "top secret"
 *   base/outside/dir/inner.txt
 *   base/root/real.txt                 "inside"
 *   base/root/dir/child.txt
 *   base/root/link-file  -> base/outside/secret.txt      (absolute, escapes)
 *   base/root/link-dir   -> base/outside                 (absolute, escapes)
 *   base/root/up         -> ../outside                   (relative, escapes)
 *   base/root/dangling   -> base/outside/not-there.txt   (dangling, escapes)
 *   base/root/inner-file -> real.txt                     (relative, inside)
 *   base/root/inner-dir  -> base/root/dir                (absolute, inside)
 *   base/rootlink        -> base/root                    (the root itself a symlink)
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import { ErrorCodes, type ErrorCode } from '../../src/errors.js';
import { LocalStorage } from '../../src/storage/local.js';
import type { FileInfo, Storage, WriteOptions } from '../../src/storage/types.js';

function hasCode(code: ErrorCode) {
  return (err: unknown): boolean => {
    assert.equal((err as { code?: unknown } | null)?.code, code, `expected ${code}, got ${String(err)}`);
    return true;
  };
}

const denied = hasCode(ErrorCodes.ACCESS_DENIED);

async function put(storage: Storage, path: string, data: string, options?: WriteOptions): Promise<void> {
  await pipeline(Readable.from([Buffer.from(data)]), await storage.write(path, options));
}

async function get(storage: Storage, path: string): Promise<string> {
  const parts: Buffer[] = [];
  for await (const chunk of await storage.read(path)) parts.push(chunk as Buffer);
  return Buffer.concat(parts).toString();
}

async function listAll(storage: Storage, path: string): Promise<FileInfo[]> {
  const entries: FileInfo[] = [];
  for await (const page of storage.list(path)) entries.push(...page);
  return entries;
}

describe('LocalStorage confinement to its root', () => {
  let base = '';
  let root = '';
  let outside = '';
  let storage: LocalStorage;

  before(async () => {
    base = await fsp.mkdtemp(join(tmpdir(), 'ferry-security-'));
    root = join(base, 'root');
    outside = join(base, 'outside');
    await fsp.mkdir(join(outside, 'dir'), { recursive: true });
    await fsp.writeFile(join(outside, 'secret.txt'), 'top secret');
    await fsp.writeFile(join(outside, 'dir', 'inner.txt'), 'outside inner');
    await fsp.mkdir(join(root, 'dir'), { recursive: true });
    await fsp.writeFile(join(root, 'real.txt'), 'inside');
    await fsp.writeFile(join(root, 'dir', 'child.txt'), 'child');
    await fsp.symlink(join(outside, 'secret.txt'), join(root, 'link-file'));
    await fsp.symlink(outside, join(root, 'link-dir'));
    await fsp.symlink('../outside', join(root, 'up'));
    await fsp.symlink(join(outside, 'not-there.txt'), join(root, 'dangling'));
    await fsp.symlink('real.txt', join(root, 'inner-file'));
    await fsp.symlink(join(root, 'dir'), join(root, 'inner-dir'));
    await fsp.symlink(root, join(base, 'rootlink'));
    storage = new LocalStorage(root);
  });

  after(async () => {
    if (base) await fsp.rm(base, { recursive: true, force: true });
  });

  async function outsideUnchanged(): Promise<void> {
    assert.equal(await fsp.readFile(join(outside, 'secret.txt'), 'utf8'), 'top secret');
    assert.deepEqual((await fsp.readdir(outside)).sort(), ['dir', 'secret.txt']);
    assert.deepEqual(await fsp.readdir(join(outside, 'dir')), ['inner.txt']);
  }

  describe('a symlink to a file outside the root', () => {
    it('cannot be stat-ed or read', async () => {
      await assert.rejects(storage.stat('/link-file'), denied);
      await assert.rejects(storage.read('/link-file'), denied);
    });

    it('cannot be written through: replace, offset, append or exclusive', async () => {
      await assert.rejects(storage.write('/link-file'), denied);
      await assert.rejects(storage.write('/link-file', { start: 3 }), denied);
      await assert.rejects(storage.write('/link-file', { append: true }), denied);
      await assert.rejects(storage.write('/link-file', { exclusive: true }), hasCode(ErrorCodes.EXISTS));
      await outsideUnchanged();
    });

    it('cannot be chmod-ed or have its mtime set', async () => {
      await assert.rejects(storage.chmod('/link-file', 0o777), denied);
      await assert.rejects(storage.setModifiedTime('/link-file', new Date(0)), denied);
      const st = await fsp.stat(join(outside, 'secret.txt'));
      assert.notEqual(st.mtime.getTime(), 0);
    });
  });

  describe('a symlink to a directory outside the root', () => {
    for (const link of ['/link-dir', '/up']) {
      it(`${link}: cannot be listed, nor entries under it stat-ed or read`, async () => {
        await assert.rejects(listAll(storage, link), denied);
        await assert.rejects(storage.stat(link), denied);
        await assert.rejects(storage.stat(`${link}/secret.txt`), denied);
        await assert.rejects(storage.read(`${link}/secret.txt`), denied);
        await assert.rejects(listAll(storage, `${link}/dir`), denied);
      });

      it(`${link}: nothing can be created, changed or removed under it`, async () => {
        await assert.rejects(storage.write(`${link}/new.txt`), denied);
        await assert.rejects(storage.write(`${link}/new.txt`, { append: true }), denied);
        await assert.rejects(storage.write(`${link}/new.txt`, { exclusive: true }), denied);
        await assert.rejects(storage.write(`${link}/secret.txt`), denied);
        await assert.rejects(storage.write(`${link}/secret.txt`, { start: 0 }), denied);
        await assert.rejects(storage.mkdir(`${link}/newdir`), denied);
        await assert.rejects(storage.rmdir(`${link}/dir`), denied);
        await assert.rejects(storage.delete(`${link}/secret.txt`), denied);
        await assert.rejects(storage.delete(`${link}/dir/inner.txt`), denied);
        await assert.rejects(storage.rename(`${link}/secret.txt`, '/stolen.txt'), denied);
        await assert.rejects(storage.rename('/real.txt', `${link}/planted.txt`), denied);
        await assert.rejects(storage.chmod(`${link}/secret.txt`, 0o777), denied);
        await assert.rejects(storage.setModifiedTime(`${link}/secret.txt`, new Date(0)), denied);
        await outsideUnchanged();
        assert.equal(await get(storage, '/real.txt'), 'inside');
      });
    }
  });

  it('a dangling symlink pointing outside cannot be written through or read', async () => {
    await assert.rejects(storage.write('/dangling'), denied);
    await assert.rejects(storage.write('/dangling', { append: true }), denied);
    await assert.rejects(storage.write('/dangling', { exclusive: true }), hasCode(ErrorCodes.EXISTS));
    // Refused without looking outside: whether the target exists there is not the client's business.
    await assert.rejects(storage.read('/dangling'), denied);
    await assert.rejects(storage.stat('/dangling'), denied);
    await outsideUnchanged();
  });

  it('a symlink pointing inside the root works for stat, read, write and list', async () => {
    const info = await storage.stat('/inner-file');
    assert.equal(info.type, 'file');
    assert.equal(info.size, 'inside'.length);
    assert.equal(info.name, 'inner-file');
    assert.equal(await get(storage, '/inner-file'), 'inside');
    assert.deepEqual((await listAll(storage, '/inner-dir')).map((e) => e.name), ['child.txt']);
    assert.equal(await get(storage, '/inner-dir/child.txt'), 'child');

    // A full upload through the link replaces the target's content and keeps the link.
    await put(storage, '/inner-file', 'rewritten');
    assert.equal(await fsp.readFile(join(root, 'real.txt'), 'utf8'), 'rewritten');
    assert.ok((await fsp.lstat(join(root, 'inner-file'))).isSymbolicLink());
    await put(storage, '/inner-file', '+more', { append: true });
    assert.equal(await get(storage, '/real.txt'), 'rewritten+more');
    await put(storage, '/inner-file', 'inside', { start: 0 });
    assert.equal(await get(storage, '/real.txt'), 'inside');
  });

  it('listing shows outside-pointing and dangling links as symlinks of size 0, inside links as their targets', async () => {
    const byName = new Map((await listAll(storage, '/')).map((e) => [e.name, e]));
    for (const name of ['link-file', 'link-dir', 'up', 'dangling']) {
      assert.equal(byName.get(name)?.type, 'symlink', name);
      assert.equal(byName.get(name)?.size, 0, name);
    }
    assert.equal(byName.get('inner-file')?.type, 'file');
    assert.equal(byName.get('inner-file')?.size, 'inside'.length);
    assert.equal(byName.get('inner-dir')?.type, 'dir');
  });

  it('deleting a symlink removes the link itself, never its target', async () => {
    await fsp.symlink(join(outside, 'secret.txt'), join(root, 'to-delete'));
    await storage.delete('/to-delete');
    await assert.rejects(fsp.lstat(join(root, 'to-delete')), { code: 'ENOENT' });
    await outsideUnchanged();
  });

  it('refuses paths containing NUL with INVALID_NAME', async () => {
    const invalid = hasCode(ErrorCodes.INVALID_NAME);
    await assert.rejects(storage.stat('/real.txt\0.jpg'), invalid);
    await assert.rejects(storage.read('/real.txt\0'), invalid);
    await assert.rejects(storage.write('/x\0y'), invalid);
    await assert.rejects(listAll(storage, '/dir\0'), invalid);
    await assert.rejects(storage.delete('/real.txt\0'), invalid);
    await assert.rejects(storage.rename('/real.txt', '/a\0b'), invalid);
  });

  it('refuses non-normalised paths defensively', async () => {
    const invalid = hasCode(ErrorCodes.INVALID_NAME);
    await assert.rejects(storage.stat('/../outside/secret.txt'), invalid);
    await assert.rejects(storage.stat('/dir/../../outside'), invalid);
    await assert.rejects(storage.stat('relative'), invalid);
    await assert.rejects(storage.stat('/dir//child.txt'), invalid);
  });

  it('works when the root itself is a symlink to a real directory', async () => {
    const viaLink = new LocalStorage(join(base, 'rootlink'));
    assert.equal((await viaLink.stat('/')).type, 'dir');
    assert.equal(await get(viaLink, '/real.txt'), 'inside');
    assert.equal(await get(viaLink, '/inner-file'), 'inside');
    assert.ok((await listAll(viaLink, '/')).some((e) => e.name === 'dir'));
    await put(viaLink, '/dir/via-link.txt', 'hello');
    assert.equal(await fsp.readFile(join(root, 'dir', 'via-link.txt'), 'utf8'), 'hello');
    await viaLink.delete('/dir/via-link.txt');
    await assert.rejects(viaLink.stat('/link-file'), denied);
  });

  it('an aborted upload removes its temp file from disk', async () => {
    await fsp.mkdir(join(root, 'uploads'));
    const writable = await storage.write('/uploads/f.bin');
    writable.on('error', () => undefined);
    await new Promise<void>((resolve, reject) =>
      writable.write(Buffer.alloc(1000), (err) => (err ? reject(err) : resolve())),
    );
    const onDisk = await fsp.readdir(join(root, 'uploads'));
    assert.equal(onDisk.length, 1);
    assert.match(onDisk[0] ?? '', /^\.ferry-upload-[0-9a-f]{8}-\d+-\d+-[0-9a-f]+\.part$/, 'host, pid, start, random: see temp-files.ts');
    assert.deepEqual(await listAll(storage, '/uploads'), [], 'temp files are hidden from listings');
    const closed = new Promise<void>((resolve) => writable.once('close', () => resolve()));
    writable.destroy(new Error('x'));
    await closed;
    assert.deepEqual(await fsp.readdir(join(root, 'uploads')), []);
  });

  it('a symlink to a sibling folder whose name starts with the root name is outside the root', async () => {
    await fsp.mkdir(`${root}x`, { recursive: true });
    await fsp.writeFile(`${root}x/s.txt`, 'sibling');
    await fsp.symlink(`${root}x/s.txt`, join(root, 'prefix-trick'));
    try {
      await assert.rejects(storage.read('/prefix-trick'), denied);
    } finally {
      await fsp.rm(join(root, 'prefix-trick'));
    }
  });

  it('reads refuse special files (a FIFO fails at once, never blocks), directories and offsets past the end', async () => {
    execFileSync('mkfifo', [join(root, 'pipe')]);
    try {
      await assert.rejects(storage.read('/pipe'), denied);
      await assert.rejects(storage.read('/dir'), hasCode(ErrorCodes.IS_A_DIRECTORY));
      await assert.rejects(storage.read('/dir', { start: 1 }), hasCode(ErrorCodes.IS_A_DIRECTORY));
      await assert.rejects(storage.read('/real.txt', { start: 100 }), hasCode(ErrorCodes.INVALID_OFFSET));
    } finally {
      await fsp.rm(join(root, 'pipe'));
    }
  });

  it('names reserved for uploads in progress cannot be used by clients', async () => {
    await assert.rejects(storage.write('/.ferry-upload-abc.part'), hasCode(ErrorCodes.INVALID_NAME));
    await assert.rejects(storage.stat('/dir/.ferry-upload-abc.part'), hasCode(ErrorCodes.INVALID_NAME));
  });

  it('a root that does not exist fails cleanly, and is retried later', async () => {
    const later = join(base, 'later');
    const lazy = new LocalStorage(later);
    await assert.rejects(lazy.stat('/'), hasCode(ErrorCodes.NOT_FOUND));
    await fsp.mkdir(later);
    assert.equal((await lazy.stat('/')).type, 'dir');
  });

  it('a refused write never closes a descriptor twice (REST past the end + STOR, in a subfolder)', async () => {
    // A second close of the same number would close whatever another session
    // was given in between (an upload's file, a socket, a jail's folder).
    await put(storage, '/dir/short.txt', 'five!');
    const closed: number[] = [];
    const close = fs.close;
    fs.close = ((fd: number, ...rest: unknown[]) => {
      closed.push(fd);
      return (close as (...args: unknown[]) => void)(fd, ...rest);
    }) as typeof fs.close;
    syncBuiltinESMExports();
    try {
      await assert.rejects(storage.write('/dir/short.txt', { start: 100 }), hasCode(ErrorCodes.INVALID_OFFSET));
      await new Promise((resolve) => setTimeout(resolve, 50)); // closes are not awaited by the storage
    } finally {
      fs.close = close;
      syncBuiltinESMExports();
    }
    assert.ok(closed.length > 0, 'the jail closes the folder it walked through');
    assert.equal(new Set(closed).size, closed.length, `a descriptor was closed twice: ${closed.join(', ')}`);
  });

  it('storages on the same folder share one open root: a storage per login costs no descriptor per login', async () => {
    const fds = async (): Promise<number> => (await fsp.readdir('/proc/self/fd')).length;
    const held: LocalStorage[] = [];
    held.push(new LocalStorage(root));
    await held[0]!.stat('/real.txt');
    const before = await fds();
    for (let i = 0; i < 200; i++) {
      const storage = new LocalStorage(root);
      await storage.stat('/real.txt');
      held.push(storage); // all alive at once: nothing is left to a collection
    }
    assert.ok((await fds()) - before <= 2, `descriptors grew from ${before} to ${await fds()}`);
  });
});
