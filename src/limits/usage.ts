/**
 * What a Storage holds, counted: bytes and files under its root. Used to
 * count a user's home for quotas after a start, by `ferry user show` and by
 * the library's `storageUsage`.
 *
 * A backend with a faster way than walking the tree provides the optional
 * `usage()` (S3: flat listings, 1,000 keys a request, no request per
 * directory); otherwise directories are listed, several at once. Only regular files count: directories are free, and symlinks are
 * neither counted nor followed (what they point to inside the home is
 * counted where it lies; following them could count a file twice or loop).
 */
import type { Storage } from '../storage/types.js';
import type { Usage } from './quota-ledger.js';

/** Directory listings in flight at once during a walk. */
const WALK_CONCURRENCY = 8;

export async function storageUsage(storage: Storage): Promise<Usage> {
  if (storage.usage) return storage.usage();
  return walk(storage);
}

function walk(storage: Storage): Promise<Usage> {
  const usage: Usage = { bytes: 0, files: 0 };
  const pending: string[] = ['/'];
  let active = 0;
  let failed = false;
  return new Promise((resolve, reject) => {
    const count = async (dir: string): Promise<void> => {
      for await (const page of storage.list(dir)) {
        for (const entry of page) {
          if (entry.type === 'file') {
            usage.bytes += entry.size;
            usage.files += 1;
          } else if (entry.type === 'dir') {
            pending.push(dir === '/' ? `/${entry.name}` : `${dir}/${entry.name}`);
          }
        }
        start(); // subdirectories found on this page start being listed now
      }
    };
    const start = (): void => {
      while (!failed && active < WALK_CONCURRENCY && pending.length > 0) {
        active += 1;
        count(pending.pop()!).then(
          () => {
            active -= 1;
            if (active === 0 && pending.length === 0) resolve(usage);
            else start();
          },
          (err: unknown) => {
            failed = true;
            reject(err);
          },
        );
      }
    };
    start();
  });
}
