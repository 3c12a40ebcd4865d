/**
 * The jail (storage/jail.ts) on its own: how it resolves symlinks inside and
 * outside the root, that its two drivers (sync for the reader threads, async
 * for the event loop) and the realpath fallback agree, and that it closes
 * every fd it opens, errors included.
 *
 * Layout (base/ is a fresh temp dir):
 *   base/outside/secret.txt
 *   base/root/dir/sub/f.txt        base/root/file.txt
 *   base/root/rel    -> dir/sub          base/root/abs   -> base/root/dir
 *   base/root/via    -> base/rootlink/dir (through the configured root path)
 *   base/root/up-in  -> dir/sub/../..     base/root/up-out -> ../outside
 *   base/root/out    -> base/outside      base/root/chain -> rel
 *   base/root/loop-a -> loop-b -> loop-a  base/root/gone  -> missing.txt
 *   base/root/dir/back -> ../file.txt     base/rootlink   -> base/root
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ErrorCodes } from '../../src/errors.js';
import { closeRoot, openRoot, pathOf, release, releaseSync, resolve, resolveSync, type Final, type JailRoot, type Place } from '../../src/storage/jail.js';

function openFds(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

/** What a resolution found, comparable across drivers and modes: the entry's inode or the error's code. */
type Outcome = { ino: number | null; viaLink: boolean; isRoot: boolean } | { error: string };

function outcome(place: Place): Outcome {
  let ino = place.stats?.ino ?? null;
  if (place.file !== null) {
    ino = fs.fstatSync(place.file).ino;
    fs.closeSync(place.file);
  }
  return { ino, viaLink: place.viaLink, isRoot: place.isRoot };
}

/** Both finals that follow the last name: lstat it, or open it. */
const following: Final[] = ['lstat', { open: fs.constants.O_RDONLY }];

function failure(err: unknown): Outcome {
  return { error: String((err as { code?: unknown }).code) };
}

const linux = process.platform === 'linux';

describe('jail', () => {
  let base = '';
  let root: JailRoot;
  let viaConfigured: JailRoot;
  const ino = (p: string): number => fs.statSync(join(base, p)).ino;

  before(async () => {
    base = await fsp.mkdtemp(join(tmpdir(), 'ferry-jail-'));
    await fsp.mkdir(join(base, 'outside'));
    await fsp.writeFile(join(base, 'outside', 'secret.txt'), 'secret');
    await fsp.mkdir(join(base, 'root', 'dir', 'sub'), { recursive: true });
    await fsp.writeFile(join(base, 'root', 'dir', 'sub', 'f.txt'), 'f');
    await fsp.writeFile(join(base, 'root', 'file.txt'), 'file');
    const links: Array<[string, string]> = [
      ['rel', 'dir/sub'],
      ['abs', join(base, 'root', 'dir')],
      ['via', join(base, 'rootlink', 'dir')],
      ['up-in', 'dir/sub/../..'],
      ['up-out', '../outside'],
      ['out', join(base, 'outside')],
      ['chain', 'rel'],
      ['loop-a', 'loop-b'],
      ['loop-b', 'loop-a'],
      ['gone', 'missing.txt'],
      ['dir/back', '../file.txt'],
    ];
    for (const [name, target] of links) await fsp.symlink(target, join(base, 'root', name));
    await fsp.symlink(join(base, 'root'), join(base, 'rootlink'));
    root = await openRoot(join(base, 'root'));
    viaConfigured = await openRoot(join(base, 'rootlink'));
  });

  after(async () => {
    closeRoot(root);
    closeRoot(viaConfigured);
    if (base) await fsp.rm(base, { recursive: true, force: true });
  });

  it('holds the root open on Linux (the race-free mode)', { skip: !linux && 'Linux only' }, () => {
    assert.equal(typeof root.fd, 'number');
  });

  const cases: Array<{ path: string; expect: () => Outcome; root?: () => JailRoot }> = [
    { path: '/', expect: () => ({ ino: ino('root'), viaLink: false, isRoot: true }) },
    { path: '/dir/sub/f.txt', expect: () => ({ ino: ino('root/dir/sub/f.txt'), viaLink: false, isRoot: false }) },
    { path: '/rel/f.txt', expect: () => ({ ino: ino('root/dir/sub/f.txt'), viaLink: false, isRoot: false }) },
    { path: '/rel', expect: () => ({ ino: ino('root/dir/sub'), viaLink: true, isRoot: false }) },
    { path: '/chain/f.txt', expect: () => ({ ino: ino('root/dir/sub/f.txt'), viaLink: false, isRoot: false }) },
    { path: '/abs/sub/f.txt', expect: () => ({ ino: ino('root/dir/sub/f.txt'), viaLink: false, isRoot: false }) },
    { path: '/via/sub', expect: () => ({ ino: ino('root/dir/sub'), viaLink: false, isRoot: false }), root: () => viaConfigured },
    { path: '/up-in', expect: () => ({ ino: ino('root'), viaLink: true, isRoot: true }) },
    { path: '/dir/back', expect: () => ({ ino: ino('root/file.txt'), viaLink: true, isRoot: false }) },
    { path: '/gone', expect: () => ({ ino: null, viaLink: true, isRoot: false }) },
    { path: '/missing/x', expect: () => ({ error: 'ENOENT' }) },
    { path: '/file.txt/x', expect: () => ({ error: 'ENOTDIR' }) },
    { path: '/up-out', expect: () => ({ error: ErrorCodes.ACCESS_DENIED }) },
    { path: '/up-out/secret.txt', expect: () => ({ error: ErrorCodes.ACCESS_DENIED }) },
    { path: '/out', expect: () => ({ error: ErrorCodes.ACCESS_DENIED }) },
    { path: '/out/secret.txt', expect: () => ({ error: ErrorCodes.ACCESS_DENIED }) },
    { path: '/loop-a', expect: () => ({ error: 'ELOOP' }) },
    { path: '/loop-a/x', expect: () => ({ error: 'ELOOP' }) },
  ];

  for (const c of cases) {
    it(`${c.path} resolves the same way with both drivers, lstat-ed or opened${c.root ? ' (root configured through a link)' : ''}`, async () => {
      const jailRoot = c.root?.() ?? root;
      const segments = c.path === '/' ? [] : c.path.slice(1).split('/');
      for (const final of following) {
        let sync: Outcome;
        try {
          const place = resolveSync(jailRoot, segments, final);
          sync = outcome(place);
          releaseSync(place);
        } catch (err) {
          sync = failure(err);
        }
        let async: Outcome;
        try {
          const place = await resolve(jailRoot, segments, final);
          async = outcome(place);
          release(place);
        } catch (err) {
          async = failure(err);
        }
        assert.deepEqual(sync, c.expect(), `sync, ${JSON.stringify(final)}`);
        assert.deepEqual(async, c.expect(), `async, ${JSON.stringify(final)}`);
      }
    });
  }

  it('the realpath fallback (no /proc/self/fd) resolves every case the same way, only racily', async () => {
    for (const c of cases) {
      const segments = c.path === '/' ? [] : c.path.slice(1).split('/');
      for (const final of following) {
        let got: Outcome;
        try {
          got = outcome(await resolve({ ...(c.root?.() ?? root), fd: null }, segments, final));
        } catch (err) {
          got = failure(err);
        }
        assert.deepEqual(got, c.expect(), `${c.path} ${JSON.stringify(final)}`);
      }
    }
  });

  it('without follow, stops at the parent and leaves the last name alone, even a symlink pointing out', async () => {
    const place = await resolve(root, ['rel', 'new.txt'], 'parent');
    try {
      assert.equal(place.name, 'new.txt');
      assert.equal(place.stats, null);
      assert.equal(fs.statSync(place.dir).ino, ino('root/dir/sub'));
    } finally {
      release(place);
    }
    const link = await resolve(root, ['out'], 'parent');
    assert.equal(fs.lstatSync(pathOf(link)).isSymbolicLink(), true);
    release(link);
  });

  it('more than 40 links in a row is ELOOP', async () => {
    await fsp.mkdir(join(base, 'root', 'hops'));
    for (let i = 0; i < 41; i++) await fsp.symlink(`h${i + 1}`, join(base, 'root', 'hops', `h${i}`));
    await fsp.writeFile(join(base, 'root', 'hops', 'h41'), 'end');
    await assert.rejects(resolve(root, ['hops', 'h0'], 'lstat'), { code: 'ELOOP' });
    const place = await resolve(root, ['hops', 'h1'], 'lstat');
    assert.equal(place.stats?.size, 3);
    release(place);
  });

  it('closes every fd it opens, on success and on every error', { skip: !linux && 'Linux only' }, async () => {
    // Settle the closes the async driver does not wait for.
    const settle = () => new Promise((r) => setTimeout(r, 50));
    await settle();
    const fds = openFds();
    for (let i = 0; i < 20; i++) {
      for (const c of cases) {
        const segments = c.path === '/' ? [] : c.path.slice(1).split('/');
        try {
          releaseSync(resolveSync(root, segments, 'lstat'));
        } catch {
          // counted below
        }
        try {
          const place = await resolve(root, segments, (['lstat', 'parent', { open: fs.constants.O_RDONLY }] as const)[i % 3]!);
          if (place.file !== null) fs.closeSync(place.file);
          release(place);
        } catch {
          // counted below
        }
      }
    }
    await settle();
    assert.equal(openFds(), fds);
  });
});
