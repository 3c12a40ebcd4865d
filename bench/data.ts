/**
 * The benchmark's files, made once under bench/.peers/data/root (git-ignored)
 * and reused by every run and every server:
 *   small.bin        4 KiB                      get-small
 *   big.bin          1 GiB of random bytes      get-big
 *   list10k/         10,000 empty files         list
 *   many/f000..f099  100 distinct 10 MiB files  many-get (client i reads f(i mod 100))
 *   up/              uploads (emptied between workloads)
 * Contents are pseudo-random (not zeros) so nothing along the way can
 * shortcut them; a marker file records what was made.
 */
import { randomFillSync } from 'node:crypto';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { mkdir, readdir, rm, stat, writeFile, open } from 'node:fs/promises';
import { join } from 'node:path';

export interface DataSizes {
  small: number;
  big: number;
  many: number;
  manyFiles: number;
  listEntries: number;
}

export const DEFAULT_SIZES: DataSizes = {
  small: 4 * 1024,
  big: 1024 * 1024 * 1024,
  many: 10 * 1024 * 1024,
  manyFiles: 100,
  listEntries: 10_000,
};

export const PATHS = {
  small: 'small.bin',
  big: 'big.bin',
  listDir: 'list10k',
  manyPrefix: 'many/f',
  uploadDir: 'up',
} as const;

async function writeRandom(path: string, size: number): Promise<void> {
  const chunk = Buffer.allocUnsafe(Math.min(size, 8 * 1024 * 1024));
  const out = createWriteStream(path);
  let left = size;
  while (left > 0) {
    const n = Math.min(left, chunk.length);
    randomFillSync(chunk, 0, n);
    left -= n;
    // A copy: the stream keeps the buffer until written, and the next fill would change it.
    const piece = Buffer.from(chunk.subarray(0, n));
    if (!out.write(piece)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return -1;
  }
}

/** Makes (or checks) the data set under `root`; returns what it did. */
export async function prepareData(root: string, sizes: DataSizes = DEFAULT_SIZES, log: (s: string) => void = () => {}): Promise<void> {
  await mkdir(root, { recursive: true });
  const marker = join(root, '..', 'data.json');
  const want = JSON.stringify(sizes);
  const previous = existsSync(marker) ? readFileSync(marker, 'utf8') : '';

  if ((await sizeOf(join(root, PATHS.small))) !== sizes.small) await writeRandom(join(root, PATHS.small), sizes.small);
  if ((await sizeOf(join(root, PATHS.big))) !== sizes.big) {
    log(`making ${PATHS.big} (${sizes.big} bytes)`);
    await writeRandom(join(root, PATHS.big), sizes.big);
  }
  const manyDir = join(root, 'many');
  await mkdir(manyDir, { recursive: true });
  for (let i = 0; i < sizes.manyFiles; i++) {
    const p = join(manyDir, `f${String(i).padStart(3, '0')}.bin`);
    if ((await sizeOf(p)) !== sizes.many) {
      if (i === 0) log(`making many/ (${sizes.manyFiles} × ${sizes.many} bytes)`);
      await writeRandom(p, sizes.many);
    }
  }
  const listDir = join(root, PATHS.listDir);
  await mkdir(listDir, { recursive: true });
  const have = previous === want ? sizes.listEntries : (await readdir(listDir)).length;
  if (have !== sizes.listEntries) {
    log(`making ${PATHS.listDir}/ (${sizes.listEntries} entries)`);
    await rm(listDir, { recursive: true, force: true });
    await mkdir(listDir);
    for (let i = 0; i < sizes.listEntries; i++) {
      const fh = await open(join(listDir, `entry-${String(i).padStart(5, '0')}.dat`), 'w');
      await fh.close();
    }
  }
  await mkdir(join(root, PATHS.uploadDir), { recursive: true });
  await writeFile(marker, want);
}

/** Removes everything uploaded (big uploads would otherwise pile up on disk). */
export async function cleanUploads(root: string): Promise<void> {
  const dir = join(root, PATHS.uploadDir);
  for (const name of await readdir(dir).catch(() => [] as string[])) await rm(join(dir, name), { force: true, recursive: true });
}
