/**
 * The storage policy layer (src/limits/) over real backends (memory, local
 * disk): maximum file size and quotas, with the ledger in this process.
 * Over FTP, across sessions and workers: test/integration/limits.test.ts.
 */
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, it } from 'node:test';
import { ErrorCodes, type ErrorCode } from '../../src/errors.js';
import { QuotaLedger } from '../../src/limits/quota-ledger.js';
import { Quotas, smallestLimit, type StorageLimits } from '../../src/limits/quotas.js';
import { local } from '../../src/server/shared.js';
import { storageUsage } from '../../src/limits/usage.js';
import { LocalStorage } from '../../src/storage/local.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import type { Storage, WriteOptions } from '../../src/storage/types.js';

function hasCode(code: ErrorCode) {
  return (err: unknown): boolean => {
    assert.equal((err as { code?: unknown } | null)?.code, code, `expected ${code}, got ${String(err)}`);
    return true;
  };
}

const NONE: StorageLimits = { maxFileSizeBytes: 0, quotaBytes: 0, quotaFiles: 0 };

function setup(inner: Storage, limits: Partial<StorageLimits>, serverMax = 0) {
  const ledger = new QuotaLedger();
  const errors: unknown[] = [];
  const quotas = new Quotas(local(ledger), String(process.pid), (err) => errors.push(err));
  const storage = quotas.wrap(inner, 'alice', { ...NONE, ...limits }, serverMax);
  /** The ledger's count, once it equals the storage's own (an upload settles just after its stream's 'close'), at most 1 s later. */
  const usage = async () => {
    let now = ledger.usage('alice');
    for (let i = 0; i < 200; i++) {
      const real = await storageUsage(inner);
      now = ledger.usage('alice');
      if (now && now.reservedBytes === 0 && now.reservedFiles === 0 && now.bytes === real.bytes && now.files === real.files) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    return { bytes: now?.bytes, files: now?.files };
  };
  return { storage, ledger, usage, errors };
}

async function put(storage: Storage, path: string, data: Buffer | string, options?: WriteOptions, chunk = 1000): Promise<void> {
  const bytes = Buffer.from(data);
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += chunk) chunks.push(bytes.subarray(i, i + chunk));
  const writable = await storage.write(path, options);
  await pipeline(Readable.from(chunks), writable);
}

async function abortedUpload(storage: Storage, path: string, data: Buffer, options?: WriteOptions): Promise<void> {
  const writable = await storage.write(path, options);
  writable.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => writable.write(data, (err) => (err ? reject(err) : resolve())));
  const closed = new Promise<void>((resolve) => writable.once('close', () => resolve()));
  writable.destroy(new Error('client went away'));
  await closed;
}

async function size(storage: Storage, path: string): Promise<number | null> {
  try {
    return (await storage.stat(path)).size;
  } catch {
    return null;
  }
}

async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await fsp.mkdtemp(join(tmpdir(), 'ferry-policy-'));
  t.after(() => fsp.rm(dir, { recursive: true, force: true }));
  return dir;
}

const backends: Array<[string, (t: { after(fn: () => Promise<void>): void }) => Promise<Storage>]> = [
  ['memory', async () => new MemoryStorage()],
  ['local disk', async (t) => new LocalStorage(await tempDir(t))],
];

for (const [name, make] of backends) {
  describe(`storage policy over ${name}`, () => {
    it('returns the storage itself when no limit applies', async (t) => {
      const inner = await make(t);
      assert.equal(setup(inner, {}).storage, inner);
    });

    it('refuses the chunk that crosses the maximum file size, keeping the old file, and takes a file of exactly the limit', async (t) => {
      const { storage } = setup(await make(t), { maxFileSizeBytes: 5000 });
      await put(storage, '/f', Buffer.alloc(5000, 1));
      await assert.rejects(put(storage, '/f', Buffer.alloc(5001, 2)), hasCode(ErrorCodes.FILE_TOO_LARGE));
      assert.equal(await size(storage, '/f'), 5000);
      await assert.rejects(put(storage, '/new', Buffer.alloc(9000)), hasCode(ErrorCodes.FILE_TOO_LARGE));
      assert.equal(await size(storage, '/new'), null);
    });

    it('counts the final size: APPE from the old end, REST+STOR from its offset; the smaller of server and user caps wins', async (t) => {
      const { storage } = setup(await make(t), { maxFileSizeBytes: 8000 }, 5000);
      await put(storage, '/log', Buffer.alloc(3000));
      // One chunk: refused whole (an aborted APPE keeps the chunks it took).
      await assert.rejects(put(storage, '/log', Buffer.alloc(2001), { append: true }, 10_000), hasCode(ErrorCodes.FILE_TOO_LARGE));
      await put(storage, '/log', Buffer.alloc(2000), { append: true });
      assert.equal(await size(storage, '/log'), 5000);
      await assert.rejects(put(storage, '/log', Buffer.alloc(1001), { start: 4000 }), hasCode(ErrorCodes.FILE_TOO_LARGE));
      await put(storage, '/log', Buffer.alloc(1000), { start: 4000 });
      assert.equal(await size(storage, '/log'), 5000);
    });

    it('counts the home at first use and keeps bytes and files exact under uploads, overwrites, deletes, renames and RMD', async (t) => {
      const inner = await make(t);
      await inner.mkdir('/d');
      await put(inner, '/d/before', Buffer.alloc(700));
      const { storage, usage } = setup(inner, { quotaBytes: 100_000, quotaFiles: 100 });
      await put(storage, '/a', Buffer.alloc(1000));
      assert.deepEqual(await usage(), { bytes: 1700, files: 2 });
      await put(storage, '/a', Buffer.alloc(400)); // overwrite: new minus old
      assert.deepEqual(await usage(), { bytes: 1100, files: 2 });
      await put(storage, '/a', Buffer.alloc(100), { append: true });
      assert.deepEqual(await usage(), { bytes: 1200, files: 2 });
      await put(storage, '/a', Buffer.alloc(50), { start: 100 }); // REST+STOR cuts at its end: 150 bytes
      assert.deepEqual(await usage(), { bytes: 850, files: 2 });
      await storage.rename('/a', '/d/a'); // a move changes nothing
      assert.deepEqual(await usage(), { bytes: 850, files: 2 });
      await storage.rename('/d/a', '/d/before'); // replaces a 700-byte file
      assert.deepEqual(await usage(), { bytes: 150, files: 1 });
      await storage.mkdir('/e');
      await storage.rename('/e', '/d/e');
      await storage.rmdir('/d/e');
      await storage.delete('/d/before');
      assert.deepEqual(await usage(), { bytes: 0, files: 0 });
      assert.deepEqual(await storageUsage(inner), { bytes: 0, files: 0 });
    });

    it('fails an upload with QUOTA_EXCEEDED once it crosses the quota, crediting what it replaces; the old file stays', async (t) => {
      const { storage, usage } = setup(await make(t), { quotaBytes: 10_000 });
      await put(storage, '/f', Buffer.alloc(4000));
      await put(storage, '/g', Buffer.alloc(5000));
      // 9,000 stored: a new file may add 1,000; replacing /f may bring it to 5,000.
      await assert.rejects(put(storage, '/h', Buffer.alloc(1001)), hasCode(ErrorCodes.QUOTA_EXCEEDED));
      assert.equal(await size(storage, '/h'), null);
      await assert.rejects(put(storage, '/f', Buffer.alloc(5001)), hasCode(ErrorCodes.QUOTA_EXCEEDED));
      assert.equal(await size(storage, '/f'), 4000);
      assert.deepEqual(await usage(), { bytes: 9000, files: 2 });
      await put(storage, '/f', Buffer.alloc(5000));
      assert.deepEqual(await usage(), { bytes: 10_000, files: 2 });
      await put(storage, '/empty', '');
      await assert.rejects(put(storage, '/g', 'x', { append: true }), hasCode(ErrorCodes.QUOTA_EXCEEDED));
      assert.deepEqual(await usage(), { bytes: 10_000, files: 3 });
    });

    it('refuses a new file past quotaFiles before any byte, and still lets existing files be replaced', async (t) => {
      const { storage, usage } = setup(await make(t), { quotaFiles: 2 });
      await put(storage, '/1', 'a');
      await put(storage, '/2', 'b');
      await assert.rejects(storage.write('/3'), hasCode(ErrorCodes.QUOTA_EXCEEDED));
      await put(storage, '/2', 'bb');
      await storage.delete('/1');
      await put(storage, '/3', 'c');
      assert.deepEqual(await usage(), { bytes: 3, files: 2 });
    });

    it('charges nothing for an aborted full upload, and what stays in place for an aborted APPE or REST+STOR', async (t) => {
      const { storage, usage } = setup(await make(t), { quotaBytes: 100_000 });
      await put(storage, '/f', Buffer.alloc(1000));
      await abortedUpload(storage, '/f', Buffer.alloc(3000));
      await abortedUpload(storage, '/new', Buffer.alloc(3000));
      assert.deepEqual(await usage(), { bytes: 1000, files: 1 });
      await abortedUpload(storage, '/f', Buffer.alloc(500), { append: true });
      await abortedUpload(storage, '/f', Buffer.alloc(1000), { start: 1200 });
      const now = await size(storage, '/f');
      assert.equal(now, 2200, 'backends keep bytes written in place for a resume');
      assert.deepEqual(await usage(), { bytes: 2200, files: 1 });
      await abortedUpload(storage, '/created', Buffer.alloc(10), { append: true });
      assert.deepEqual(await usage(), { bytes: 2200, files: 1 });
    });

    it('lets two concurrent uploads of one user share the quota exactly: the one that crosses fails, the other commits', async (t) => {
      const { storage, usage } = setup(await make(t), { quotaBytes: 15_000 });
      const first = await storage.write('/one');
      const second = await storage.write('/two');
      second.on('error', () => undefined);
      await new Promise<void>((resolve, reject) => first.write(Buffer.alloc(10_000), (err) => (err ? reject(err) : resolve())));
      await new Promise<void>((resolve) => second.write(Buffer.alloc(4000), () => resolve()));
      // 14,000 in flight; 2,000 more for the second crosses 15,000.
      const refused = new Promise<unknown>((resolve) => second.once('error', resolve));
      second.write(Buffer.alloc(2000));
      await refused;
      first.end();
      await new Promise((resolve) => first.once('finish', resolve));
      assert.deepEqual(await usage(), { bytes: 10_000, files: 1 });
      assert.equal(await size(storage, '/two'), null);
    });
  });
}

describe('quota ledger', () => {
  it('keeps the first report, refuses unknown users, and drops a dead owner\'s reservations', () => {
    const ledger = new QuotaLedger();
    const limits = { quotaBytes: 100, quotaFiles: 0 };
    assert.equal(ledger.reserve('u1', 'w1', 'bob', 10, 0, limits), false);
    ledger.report('bob', { bytes: 50, files: 1 });
    ledger.report('bob', { bytes: 999, files: 9 });
    assert.equal(ledger.reserve('u1', 'w1', 'bob', 40, 0, limits), true);
    assert.equal(ledger.reserve('u2', 'w2', 'bob', 11, 0, limits), false);
    ledger.forgetOwner('w1');
    assert.equal(ledger.reserve('u2', 'w2', 'bob', 50, 1, limits), true);
    ledger.settle('u2', 'bob', { bytes: 50, files: 1 });
    assert.deepEqual(ledger.usage('bob'), { bytes: 100, files: 2, reservedBytes: 0, reservedFiles: 0 });
  });

  it('charges a dead owner\'s in-place reservations (APPE, REST+STOR wrote them to disk) instead of dropping them', () => {
    const ledger = new QuotaLedger();
    const limits = { quotaBytes: 1000, quotaFiles: 0 };
    ledger.report('bob', { bytes: 100, files: 1 });
    // An APPE to a new file (one file and 300 bytes granted) and a full STOR (200 bytes), both in the dying worker.
    assert.equal(ledger.reserve('a', 'w1', 'bob', 0, 1, limits, true), true);
    assert.equal(ledger.reserve('a', 'w1', 'bob', 300, 0, limits, true), true);
    assert.equal(ledger.reserve('s', 'w1', 'bob', 200, 0, limits), true);
    // Another worker's in-place upload stays reserved.
    assert.equal(ledger.reserve('o', 'w2', 'bob', 50, 0, limits, true), true);
    ledger.forgetOwner('w1');
    assert.deepEqual(ledger.usage('bob'), { bytes: 400, files: 2, reservedBytes: 50, reservedFiles: 0 });
  });

  it('holds one claim per user and path until settle or the owner dies', () => {
    const ledger = new QuotaLedger();
    ledger.report('bob', { bytes: 0, files: 0 });
    assert.equal(ledger.claim('u1', 'w1', 'bob', ['/d/x']), true);
    assert.equal(ledger.claim('u1', 'w1', 'bob', ['/d/x']), true, 'the holder may claim again');
    assert.equal(ledger.claim('u2', 'w2', 'bob', ['/d/x']), false);
    assert.equal(ledger.claim('u2', 'w2', 'alice', ['/d/x']), true, 'claims are per user');
    assert.equal(ledger.claim('r', 'w2', 'bob', ['/d', '/e'], true), false, 'a rename of a directory holding a claimed file');
    assert.equal(ledger.claim('r', 'w2', 'bob', ['/d', '/e']), true, 'without trees only the paths themselves');
    ledger.settle('r', 'bob', { bytes: 0, files: 0 });
    assert.equal(ledger.claim('u3', 'w2', 'bob', ['/e', '/d/x']), false, 'all or nothing');
    assert.equal(ledger.claim('u4', 'w3', 'bob', ['/e']), true, 'nothing was left of the refused claim');
    ledger.settle('u1', 'bob', { bytes: 10, files: 1 });
    assert.equal(ledger.claim('u5', 'w2', 'bob', ['/d/x']), true);
    ledger.forgetOwner('w2');
    assert.equal(ledger.claim('u6', 'w3', 'bob', ['/d/x']), true);
    assert.deepEqual(ledger.usage('bob'), { bytes: 10, files: 1, reservedBytes: 0, reservedFiles: 0 });
  });

  it('takes the stricter of two caps where 0 means none', () => {
    assert.equal(smallestLimit(0, 0), 0);
    assert.equal(smallestLimit(0, 5), 5);
    assert.equal(smallestLimit(7, 0), 7);
    assert.equal(smallestLimit(7, 5), 5);
  });
});
