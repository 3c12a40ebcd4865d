/**
 * The jail: turns a virtual path into a place on disk that an operation can
 * use with no window between the check and the use.
 *
 * Why. Checking `realpath(path)` against the root and then using `path`
 * leaves a window: a local process that swaps a directory inside the root
 * for a symlink to an outside folder (renameat2 RENAME_EXCHANGE in a loop)
 * wins it often enough to read, create and chmod files outside the root.
 * vsftpd and proftpd chroot, so the kernel holds the jail for them; Node has
 * neither chroot per session nor openat2(RESOLVE_BENEATH).
 *
 * How (Linux). The root directory is held open (an O_PATH fd). A path is
 * walked one component at a time, each opened O_PATH|O_DIRECTORY|O_NOFOLLOW
 * through `/proc/self/fd/<parent>/<name>`: the kernel resolves that magic
 * link to the directory the parent fd already holds, so nothing above the
 * component is resolved by name again, and O_NOFOLLOW refuses a component
 * that is (or has just become) a symlink. The operation then runs on
 * `/proc/self/fd/<dir>/<name>` (open, lstat, mkdir, rmdir, unlink, rename,
 * link: none of them follows a final symlink, or they are given O_NOFOLLOW)
 * or, for chmod and utimes, on `/proc/self/fd/<fd>` of the entry opened
 * O_PATH|O_NOFOLLOW. A directory swapped meanwhile changes nothing: the walk
 * holds the directory itself, not its name.
 *
 * Symlinks inside the root keep working: a component that is a symlink is
 * read (readlink) and its target walked the same way, virtually: a relative
 * target from the link's directory, `..` never above the root, an absolute
 * target only under the root (its real path or the configured one).
 * Anything else is ACCESS_DENIED, as before; more than MAX_HOPS links is
 * ELOOP (also ACCESS_DENIED).
 *
 * One walk, two drivers: `walk` is a generator that yields the file-system
 * calls it needs; `resolveSync` runs it with synchronous calls (on the reader
 * threads) and `resolve` with callback calls (on the event loop).
 *
 * Cost: a path n directories deep costs n opens (their closes are not
 * waited for) plus the operation; a file in the root costs one lstat, less
 * than the realpath + stat it replaces. See docs/architecture.md.
 *
 * Fallback. Where /proc/self/fd cannot be used (not Linux, /proc not
 * mounted), the walk falls back to the old check: realpath of the parent
 * (and of a final symlink) verified inside the root, then the operation on
 * that real path. That is racy in exactly the way described above; there is
 * no portable race-free way from Node.
 */
import * as fs from 'node:fs';
import { resolve as resolvePath, sep } from 'node:path';
import { ErrorCodes, FerryError } from '../errors.js';

/** Linux's limit on symlinks followed in one resolution (MAXSYMLINKS). */
const MAX_HOPS = 40;

/**
 * O_PATH is not in fs.constants. 0o10000000 on every architecture Node
 * supports on Linux (asm-generic; only alpha, parisc and sparc differ).
 */
const O_PATH = process.platform === 'linux' ? 0o10000000 : 0;
const O_NOFOLLOW = fs.constants.O_NOFOLLOW ?? 0;
const O_DIRECTORY = fs.constants.O_DIRECTORY ?? 0;
const WALK_FLAGS = O_PATH | O_DIRECTORY | O_NOFOLLOW;

export interface JailRoot {
  /** O_PATH fd of the root directory, open while anything holds this object (sharedRoot); null in the realpath fallback. */
  readonly fd: number | null;
  /** The root's real path. */
  readonly real: string;
  /** Absolute prefixes a symlink target may start with: the real root and the configured root, without a trailing '/'. */
  readonly prefixes: readonly string[];
}

/** Where an operation acts: an entry `name` in directory `dir`, or `dir` itself. */
export interface Place {
  /** '/proc/self/fd/<fd>' of the directory (Linux), or its real path (fallback). */
  readonly dir: string;
  /** The directory's own fd, to close with release(); null for the root's fd and in the fallback. */
  readonly fd: number | null;
  /** The entry in `dir`; null when the place is the directory itself (the root, or a link to a directory ending in '..'). */
  readonly name: string | null;
  /** With final 'lstat': lstat of the entry (never a symlink: links are followed); null if it does not exist. */
  readonly stats: fs.Stats | null;
  /** With final { open }: the entry opened, for the caller to close; null if it does not exist. */
  readonly file: number | null;
  /** The last component was a symlink that was followed. */
  readonly viaLink: boolean;
  /** The place is the root directory itself. */
  readonly isRoot: boolean;
  /** Its root: held so that the root's fd (which `dir` may name) stays open while the place is in use. */
  readonly root: JailRoot;
}

/** The file-system calls the walk asks its driver for. */
type Call =
  | { call: 'open'; path: string; flags: number }
  | { call: 'close'; fd: number }
  | { call: 'fstat'; fd: number }
  | { call: 'lstat'; path: string }
  | { call: 'stat'; path: string }
  | { call: 'readlink'; path: string }
  | { call: 'realpath'; path: string };

type Walk = Generator<Call, Place, unknown>;

export function fdPath(fd: number): string {
  return `/proc/self/fd/${fd}`;
}

/** The path an operation on `place` uses. */
export function pathOf(place: Place): string {
  return place.name === null ? place.dir : `${place.dir}/${place.name}`;
}

/**
 * Flags to open `place` with: O_NOFOLLOW on an entry, so that one replaced
 * by a symlink since the walk fails with ELOOP; never on the directory
 * itself, whose /proc path is a magic link that must be followed.
 */
export function openFlags(place: Place, flags: number): number {
  return place.name === null ? flags : flags | O_NOFOLLOW;
}

/** The entry's stats (final 'lstat'), or NOT_FOUND (a dangling symlink included). */
export function existing(place: Place, vpath: string): fs.Stats {
  if (!place.stats) throw new FerryError(ErrorCodes.NOT_FOUND, `not found: ${vpath}`);
  return place.stats;
}

/** The opened entry (final { open }), or NOT_FOUND (a dangling symlink included). */
export function opened(place: Place, vpath: string): number {
  if (place.file === null) throw new FerryError(ErrorCodes.NOT_FOUND, `not found: ${vpath}`);
  return place.file;
}

function outside(what: string): FerryError {
  return new FerryError(ErrorCodes.ACCESS_DENIED, `${what} resolves outside the root`);
}

function code(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

/**
 * What the walk does with the last name:
 *   - 'parent': nothing; the walk stops at its directory (creating, removing
 *     and renaming entries act on the name itself, never through it);
 *   - 'lstat': follows it if it is a symlink; the place's `stats` are the
 *     target's (null if it does not exist);
 *   - { open: flags }: follows it likewise and opens it with these flags
 *     (O_NOFOLLOW added): the place's `file`, one call fewer than lstat+open.
 */
export type Final = 'parent' | 'lstat' | { readonly open: number };

/** Count one more link followed or name retried; ELOOP past MAX_HOPS. */
function hop(hops: number, segments: readonly string[]): number {
  if (hops >= MAX_HOPS) throw Object.assign(new Error(`too many symlinks: /${segments.join('/')}`), { code: 'ELOOP' });
  return hops + 1;
}

/** The walk. `segments` is a checked virtual path ('/' → []). */
function* walk(root: JailRoot, segments: readonly string[], final: Final): Walk {
  if (root.fd === null) return yield* walkByRealpath(root, segments, final);
  const rootFd = root.fd;
  /** Components still to walk, the next one last. */
  const pending = segments.slice().reverse();
  /** Real components from the root to the current directory (to walk `..` again from the root). */
  let names: string[] = [];
  let dirFd = rootFd;
  let hops = 0;
  let viaLink = false;
  const enter = function* (fd: number): Generator<Call, void, unknown> {
    if (dirFd !== rootFd) yield { call: 'close', fd: dirFd };
    dirFd = fd;
  };
  /** Hand the current directory to the caller (who releases it), so the finally below keeps it open. */
  const place = (name: string | null, stats: fs.Stats | null, file: number | null = null): Place => {
    const fd = dirFd === rootFd ? null : dirFd;
    dirFd = rootFd;
    return { dir: fdPath(fd ?? rootFd), fd, name, stats, file, viaLink, isRoot: name === null && fd === null, root };
  };
  try {
    for (;;) {
      const name = pending.pop();
      if (name === undefined) {
        // The directory itself (the root, or a link's target ending in '..'): its /proc path is a magic link, followed.
        if (typeof final === 'object') return place(null, null, (yield { call: 'open', path: fdPath(dirFd), flags: final.open }) as number);
        return place(null, (yield { call: 'fstat', fd: dirFd }) as fs.Stats);
      }
      if (name === '..') {
        // Only from a symlink's target: session paths are normalised.
        if (names.length === 0) throw outside(`/${segments.join('/')}`);
        names.pop();
        pending.push(...names.reverse());
        names = [];
        yield* enter(rootFd);
        continue;
      }
      const path = `${fdPath(dirFd)}/${name}`;
      const last = pending.length === 0;
      if (last && final === 'parent') return place(name, null);
      if (last && final === 'lstat') {
        let stats: fs.Stats;
        try {
          stats = (yield { call: 'lstat', path }) as fs.Stats;
        } catch (err) {
          if (code(err) === 'ENOENT') return place(name, null);
          throw err;
        }
        if (!stats.isSymbolicLink()) return place(name, stats);
      } else {
        // Open it: a directory to walk through, or the final entry.
        const flags = last ? (final as { open: number }).open | O_NOFOLLOW : WALK_FLAGS;
        try {
          const fd = (yield { call: 'open', path, flags }) as number;
          if (last) return place(name, null, fd);
          yield* enter(fd);
          names.push(name);
          continue;
        } catch (err) {
          if (last && code(err) === 'ENOENT') return place(name, null);
          // A symlink opened O_NOFOLLOW fails with ELOOP, or with ENOTDIR under O_DIRECTORY (like a file).
          if (code(err) !== 'ELOOP' && code(err) !== 'ENOTDIR') throw err;
          const stats = (yield { call: 'lstat', path }) as fs.Stats;
          if (!stats.isSymbolicLink()) {
            if (code(err) === 'ENOTDIR' && !stats.isDirectory()) throw err;
            // Not a symlink any more: swapped meanwhile, try the name again (bounded like links).
            hops = hop(hops, segments);
            pending.push(name);
            continue;
          }
        }
      }
      // `name` is a symlink: walk its target instead.
      hops = hop(hops, segments);
      if (last) viaLink = true;
      let target: string;
      try {
        target = (yield { call: 'readlink', path }) as string;
      } catch (err) {
        // No longer a symlink (EINVAL): swapped meanwhile, try the name again.
        if (code(err) !== 'EINVAL') throw err;
        pending.push(name);
        continue;
      }
      if (target.startsWith('/')) {
        const prefix = root.prefixes.find((p) => target === p || target.startsWith(`${p}/`));
        if (prefix === undefined) throw outside(`/${segments.join('/')}`);
        target = target.slice(prefix.length);
        names = [];
        yield* enter(rootFd);
      }
      pending.push(...target.split('/').filter((s) => s !== '' && s !== '.').reverse());
    }
  } finally {
    if (dirFd !== rootFd) yield { call: 'close', fd: dirFd };
  }
}

/** The racy fallback (see the header): the old realpath checks, expressed as the same kind of walk. */
function* walkByRealpath(root: JailRoot, segments: readonly string[], final: Final): Walk {
  const prefix = root.real.endsWith(sep) ? root.real : root.real + sep;
  const inside = (real: string, what: string): void => {
    if (real !== root.real && !real.startsWith(prefix)) throw outside(what);
  };
  const vpath = `/${segments.join('/')}`;
  const at = function* (dir: string, name: string | null, stats: fs.Stats | null, viaLink: boolean): Walk {
    const place: Place = { dir, fd: null, name, stats, file: null, viaLink, isRoot: name === null && dir === root.real, root };
    if (typeof final !== 'object' || (name !== null && stats === null)) return place;
    return { ...place, stats: null, file: (yield { call: 'open', path: pathOf(place), flags: openFlags(place, final.open) }) as number };
  };
  const name = segments[segments.length - 1];
  if (name === undefined) return yield* at(root.real, null, (yield { call: 'stat', path: root.real }) as fs.Stats, false);
  const dir = segments.length === 1 ? root.real : ((yield { call: 'realpath', path: root.real + sep + segments.slice(0, -1).join(sep) }) as string);
  inside(dir, vpath);
  if (final === 'parent') return yield* at(dir, name, null, false);
  const entry = dir + sep + name;
  let stats: fs.Stats;
  try {
    stats = (yield { call: 'lstat', path: entry }) as fs.Stats;
  } catch (err) {
    if (code(err) === 'ENOENT') return yield* at(dir, name, null, false);
    throw err;
  }
  if (!stats.isSymbolicLink()) return yield* at(dir, name, stats, false);
  let real: string;
  try {
    real = (yield { call: 'realpath', path: entry }) as string;
  } catch (err) {
    if (code(err) === 'ENOENT') return yield* at(dir, name, null, true);
    throw err;
  }
  inside(real, vpath);
  const targetStats = (yield { call: 'stat', path: real }) as fs.Stats;
  if (real === root.real) return yield* at(real, null, targetStats, true);
  const cut = real.lastIndexOf(sep);
  return yield* at(real.slice(0, cut), real.slice(cut + 1), targetStats, true);
}

function callSync(c: Call): unknown {
  switch (c.call) {
    case 'open':
      return fs.openSync(c.path, c.flags);
    case 'close':
      try {
        fs.closeSync(c.fd);
      } catch {
        // nothing to do: the fd is gone either way
      }
      return undefined;
    case 'fstat':
      return fs.fstatSync(c.fd);
    case 'lstat':
      return fs.lstatSync(c.path);
    case 'stat':
      return fs.statSync(c.path);
    case 'readlink':
      return fs.readlinkSync(c.path);
    case 'realpath':
      return fs.realpathSync.native(c.path);
  }
}

function callAsync(c: Call): Promise<unknown> | undefined {
  const settle = (resolve: (v: unknown) => void, reject: (e: unknown) => void) => (err: Error | null, value?: unknown) =>
    err ? reject(err) : resolve(value);
  switch (c.call) {
    case 'open':
      return new Promise((res, rej) => fs.open(c.path, c.flags, settle(res, rej)));
    case 'close':
      // Not waited for: nothing depends on it, and it is one thread-pool round trip less.
      fs.close(c.fd, () => undefined);
      return undefined;
    case 'fstat':
      return new Promise((res, rej) => fs.fstat(c.fd, settle(res, rej)));
    case 'lstat':
      return new Promise((res, rej) => fs.lstat(c.path, settle(res, rej)));
    case 'stat':
      return new Promise((res, rej) => fs.stat(c.path, settle(res, rej)));
    case 'readlink':
      return new Promise((res, rej) => fs.readlink(c.path, settle(res, rej)));
    case 'realpath':
      return new Promise((res, rej) => fs.realpath.native(c.path, settle(res, rej)));
  }
}

/** Resolve with synchronous calls (reader threads). Release the place with releaseSync(). */
export function resolveSync(root: JailRoot, segments: readonly string[], final: Final): Place {
  const steps = walk(root, segments, final);
  let step = steps.next();
  while (!step.done) {
    let value: unknown;
    try {
      value = callSync(step.value);
    } catch (err) {
      step = steps.throw(err);
      continue;
    }
    step = steps.next(value);
  }
  return step.value;
}

/** Resolve on the event loop. Release the place with release(). */
export async function resolve(root: JailRoot, segments: readonly string[], final: Final): Promise<Place> {
  const steps = walk(root, segments, final);
  let step = steps.next();
  while (!step.done) {
    let value: unknown;
    try {
      value = await callAsync(step.value);
    } catch (err) {
      step = steps.throw(err);
      continue;
    }
    step = steps.next(value);
  }
  return step.value;
}

/**
 * Places already released. Releasing twice would close an fd number that
 * another file, socket or jail walk may have been given in between, so the
 * second release is a no-op rather than a close.
 */
const released = new WeakSet<Place>();

function firstRelease(place: Place): boolean {
  if (place.fd === null || released.has(place)) return false;
  released.add(place);
  return true;
}

export function releaseSync(place: Place): void {
  if (firstRelease(place)) callSync({ call: 'close', fd: place.fd! });
}

export function release(place: Place): void {
  if (firstRelease(place)) callAsync({ call: 'close', fd: place.fd! });
}

/**
 * Run `use` on a path that names exactly the entry at `place`: on Linux
 * `/proc/self/fd/<fd>` of the entry opened O_PATH|O_NOFOLLOW (chmod and
 * utimes through it change that inode, whatever happens to names), refusing
 * an entry replaced by a symlink since the walk; in the fallback, the path.
 */
export async function onEntry<T>(place: Place, use: (path: string) => Promise<T>): Promise<T> {
  if (O_PATH === 0 || !place.dir.startsWith('/proc/self/fd/')) return use(pathOf(place));
  const fd = (await callAsync({ call: 'open', path: pathOf(place), flags: openFlags(place, O_PATH) })) as number;
  try {
    const stats = (await callAsync({ call: 'fstat', fd })) as fs.Stats;
    if (stats.isSymbolicLink()) throw Object.assign(new Error('replaced by a symlink'), { code: 'ELOOP' });
    return await use(fdPath(fd));
  } finally {
    callAsync({ call: 'close', fd });
  }
}

/**
 * Open the root: its realpath, and on Linux an O_PATH fd of it when
 * /proc/self/fd works (else the fallback, fd null); closeRoot() releases it.
 */
export async function openRoot(configured: string): Promise<JailRoot> {
  const real = await fs.promises.realpath(configured);
  const prefixes = [...new Set([real, resolvePath(configured)].map((p) => p.replace(/\/+$/, '')))];
  if (O_PATH === 0) return { fd: null, real, prefixes };
  const fd = (await callAsync({ call: 'open', path: real, flags: O_PATH | O_DIRECTORY })) as number;
  try {
    await callAsync({ call: 'stat', path: `${fdPath(fd)}/.` });
  } catch {
    callAsync({ call: 'close', fd });
    return { fd: null, real, prefixes };
  }
  return { fd, real, prefixes };
}

export function closeRoot(root: JailRoot): void {
  if (root.fd !== null) callAsync({ call: 'close', fd: root.fd });
}

/**
 * One open root per folder, shared by every storage on it, and closed once
 * nothing holds it (no storage, no place in use): an embedder that makes a
 * LocalStorage per login must not hold an fd per login until a collection.
 */
const sharedRoots = new Map<string, WeakRef<JailRoot> | Promise<JailRoot>>();
const closeWhenCollected = new FinalizationRegistry<{ key: string; fd: number }>(({ key, fd }) => {
  const entry = sharedRoots.get(key);
  if (entry instanceof WeakRef && entry.deref() === undefined) sharedRoots.delete(key);
  callAsync({ call: 'close', fd });
});

/** openRoot, shared: the root already open for `configured` if one is alive. */
export function sharedRoot(configured: string): Promise<JailRoot> {
  const entry = sharedRoots.get(configured);
  if (entry instanceof Promise) return entry;
  const live = entry?.deref();
  if (live) return Promise.resolve(live);
  const opening = openRoot(configured).then(
    (root) => {
      if (root.fd === null) sharedRoots.delete(configured);
      else {
        sharedRoots.set(configured, new WeakRef(root));
        closeWhenCollected.register(root, { key: configured, fd: root.fd });
      }
      return root;
    },
    (err: unknown) => {
      sharedRoots.delete(configured);
      throw err;
    },
  );
  sharedRoots.set(configured, opening);
  return opening;
}
