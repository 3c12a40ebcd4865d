/**
 * The reader thread itself (see reader-threads.ts): directory pages and
 * small files, read with synchronous calls on this thread. Paths are
 * resolved by the same jail as on the event loop (jail.ts, resolveSync).
 * Every fd opened here is closed here: Node tracks the fds a worker opens
 * (and closes them when it exits), so none may pass to the event loop.
 */
import * as fs from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { existing, fdPath, opened, pathOf, releaseSync, resolveSync } from './jail.js';
import { EntryKind, FIELDS, type Reply, type Request, type SmallFile } from './reader-protocol.js';

const port = parentPort!;
const LSTAT = { throwIfNoEntry: false } as const;
const { O_RDONLY } = fs.constants;
const O_NONBLOCK = fs.constants.O_NONBLOCK ?? 0;
const O_DIRECTORY = fs.constants.O_DIRECTORY ?? 0;

interface OpenDir {
  dir: fs.Dir;
  /** Entries are lstat-ed as `${base}/${name}`: /proc/self/fd/<fd of the directory>, or its real path (fallback). */
  base: string;
  fd: number | null;
}
const dirs = new Map<number, OpenDir>();

type Message = Request & { id: number };

/** Same checks and order as LocalStorage's streaming read: regular files only, offset within size. */
function small(m: Extract<Message, { op: 'small' }>): SmallFile {
  // O_NONBLOCK: opening a FIFO must not block this thread; it is refused just below.
  const place = resolveSync(m.root, m.segments, { open: O_RDONLY | O_NONBLOCK });
  releaseSync(place);
  const fd = opened(place, `/${m.segments.join('/')}`);
  try {
    const st = fs.fstatSync(fd);
    if (st.isDirectory()) return { kind: 'dir' };
    if (!st.isFile()) return { kind: 'special' };
    if (m.start > st.size) return { kind: 'offset', size: st.size };
    if (st.size - m.start > m.max) return { kind: 'large' };
    const data = new Uint8Array(st.size - m.start);
    let got = 0;
    while (got < data.length) {
      const n = fs.readSync(fd, data, got, data.length - got, m.start + got);
      // Shrank since the fstat: as on the streaming path, a short file is never served as complete.
      if (n === 0) return { kind: 'changed' };
      got += n;
    }
    return { kind: 'data', data, length: got };
  } finally {
    fs.closeSync(fd);
  }
}

function openDir(m: Extract<Message, { op: 'open' }>): OpenDir {
  if (m.root.fd === null) {
    // The fallback (no /proc/self/fd): the directory's real path, as before the jail.
    const place = resolveSync(m.root, m.segments, 'lstat');
    existing(place, `/${m.segments.join('/')}`);
    return { dir: fs.opendirSync(pathOf(place), { bufferSize: 1024 }), base: pathOf(place), fd: null };
  }
  const place = resolveSync(m.root, m.segments, { open: O_RDONLY | O_DIRECTORY });
  releaseSync(place);
  const fd = opened(place, `/${m.segments.join('/')}`);
  try {
    // A second open of the same directory through its fd: nothing is resolved by name.
    return { dir: fs.opendirSync(fdPath(fd), { bufferSize: 1024 }), base: fdPath(fd), fd };
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
}

function readPage(open: OpenDir, max: number): Reply & { stats: Float64Array } {
  const names: string[] = [];
  let entry: fs.Dirent | null = null;
  while (names.length < max && (entry = open.dir.readSync()) !== null) names.push(entry.name);
  const stats = new Float64Array(names.length * FIELDS);
  for (let i = 0; i < names.length; i++) {
    const o = i * FIELDS;
    let st: fs.Stats | undefined;
    try {
      st = fs.lstatSync(`${open.base}/${names[i]}`, LSTAT);
    } catch {
      stats[o] = EntryKind.Error;
      continue;
    }
    if (!st) continue; // EntryKind.Gone
    stats[o] = st.isFile() ? EntryKind.File : st.isDirectory() ? EntryKind.Dir : st.isSymbolicLink() ? EntryKind.Symlink : EntryKind.Other;
    stats[o + 1] = st.size;
    stats[o + 2] = st.mtimeMs;
    stats[o + 3] = st.mode;
    stats[o + 4] = st.dev;
    stats[o + 5] = st.ino;
  }
  // One string, not an array: cloning 1,000 small strings costs both threads
  // more than one string and a split. '/' cannot occur in a name.
  return { id: 0, names: names.join('/'), stats, done: names.length < max };
}

function closeDir(open: OpenDir): void {
  open.dir.closeSync();
  if (open.fd !== null) fs.closeSync(open.fd);
}

port.on('message', (m: Message) => {
  try {
    switch (m.op) {
      case 'small': {
        const found = small(m);
        port.postMessage({ ...found, id: m.id } satisfies Reply, found.kind === 'data' ? [found.data.buffer as ArrayBuffer] : []);
        return;
      }
      case 'open':
        dirs.set(m.id, openDir(m));
        port.postMessage({ id: m.id } satisfies Reply);
        return;
      case 'close': {
        const open = dirs.get(m.id);
        dirs.delete(m.id);
        if (open) closeDir(open);
        return;
      }
      case 'read': {
        const open = dirs.get(m.id);
        if (!open) throw Object.assign(new Error('directory not open'), { code: 'EBADF' });
        const page = readPage(open, m.max);
        page.id = m.id;
        port.postMessage(page, [page.stats.buffer as ArrayBuffer]);
        return;
      }
    }
  } catch (err) {
    const { message, code } = err as NodeJS.ErrnoException;
    port.postMessage({ id: m.id, error: { message, code } } satisfies Reply);
  }
});
