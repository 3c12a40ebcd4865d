/**
 * S3 pieces checked without a server: the error table (throttling, access
 * denied, network failures are hard to provoke on demand) and the exact
 * requests of the multipart copy used for renames of objects over 5 GiB
 * (test/integration/s3.test.ts runs that copy against Ceph too). The copy
 * runs against a scripted client that records what it was sent.
 */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, test } from 'node:test';
import type { S3Client } from '@aws-sdk/client-s3';
import { ErrorCodes, FerryError, replyForError } from '../../src/errors.js';
import { mayHaveOrphans } from '../../src/storage/s3-cleanup.js';
import { loadSdk, unreachableFileSize } from '../../src/storage/s3-client.js';
import { copyObject } from '../../src/storage/s3-copy.js';
import { DirCache } from '../../src/storage/s3-dir-cache.js';
import { fromS3Error } from '../../src/storage/s3-errors.js';
import { S3Storage, type S3StorageOptions } from '../../src/storage/s3.js';
import { PartBudget, S3Upload, type UploadTarget } from '../../src/storage/s3-upload.js';

function s3Error(name: string, status: number, extra: Record<string, unknown> = {}): Error {
  return Object.assign(new Error(name), { name, $metadata: { httpStatusCode: status, requestId: 'REQ123' }, ...extra });
}

describe('S3 errors become FTP replies', () => {
  const cases: Array<[string, unknown, number]> = [
    ['NoSuchKey', s3Error('NoSuchKey', 404), 550],
    ['AccessDenied', s3Error('AccessDenied', 403), 550],
    ['NoSuchBucket', s3Error('NoSuchBucket', 404), 550],
    ['InvalidAccessKeyId', s3Error('InvalidAccessKeyId', 403), 550],
    ['SlowDown after the SDK retries', s3Error('SlowDown', 503), 451],
    ['an unnamed 503', s3Error('Unknown', 503), 451],
    ['an unnamed 429', s3Error('Unknown', 429), 451],
    ['EntityTooLarge', s3Error('EntityTooLarge', 400), 552],
    ['ECONNREFUSED (endpoint down)', Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), 451],
    ['ECONNRESET on a body stream', Object.assign(new Error('aborted'), { code: 'ECONNRESET' }), 451],
    ['TimeoutError (connect timeout)', s3Error('TimeoutError', 0), 451],
  ];
  for (const [label, err, code] of cases) {
    test(`${label} → ${code}`, () => {
      assert.equal(replyForError(fromS3Error(err, 'GetObject', 'k')).code, code);
    });
  }

  test('the log message names the operation, key, S3 error and request id; the reply does not', () => {
    const translated = fromS3Error(s3Error('AccessDenied', 403), 'PutObject', 'users/ann/x') as FerryError;
    assert.equal(translated.code, ErrorCodes.ACCESS_DENIED);
    assert.match(translated.message, /PutObject users\/ann\/x, AccessDenied, HTTP 403, request id REQ123/);
    assert.doesNotMatch(replyForError(translated).text, /REQ123|users/);
  });

  test('errors it does not know stay as they are (generic 451, logged in full)', () => {
    const odd = new Error('something else');
    assert.equal(fromS3Error(odd, 'GetObject', 'k'), odd);
    assert.equal(replyForError(odd).code, 451);
  });
});

interface Sent {
  name: string;
  input: Record<string, unknown>;
}

/** A client whose send() records commands and answers from a script. */
function scriptedClient(answer: (command: Sent) => unknown): { client: S3Client; sent: Sent[] } {
  const sent: Sent[] = [];
  const client = {
    async send(command: { constructor: { name: string }; input: Record<string, unknown> }) {
      const entry = { name: command.constructor.name, input: command.input };
      sent.push(entry);
      return answer(entry);
    },
  } as unknown as S3Client;
  return { client, sent };
}

describe('when a CreateMultipartUpload may have made uploads Ferry does not know', () => {
  // Ceph shows each case for real in test/faults/s3.test.ts; here, the SDK's outcomes the rule must tell apart.
  test('an answer at the first attempt: no', () => {
    assert.equal(mayHaveOrphans({ $metadata: { attempts: 1, httpStatusCode: 200 } }, false), false);
  });
  test('an answer after a retry (the first answer lost): yes', () => {
    assert.equal(mayHaveOrphans({ $metadata: { attempts: 2, httpStatusCode: 200 } }, false), true);
  });
  test('a failure with no answer (timeout, connection lost) or a 5xx: yes', () => {
    assert.equal(mayHaveOrphans(Object.assign(new Error('timed out'), { name: 'TimeoutError', $metadata: { attempts: 1 } }), true), true);
    assert.equal(mayHaveOrphans(s3Error('ServiceUnavailable', 503), true), true);
  });
  test('a 4xx at the first attempt (access denied, no such bucket): no, the store made nothing', () => {
    assert.equal(mayHaveOrphans(s3Error('AccessDenied', 403), true), false);
    assert.equal(mayHaveOrphans(s3Error('NoSuchBucket', 404), true), false);
  });
});

describe('server-side copy for renames', () => {
  test('objects above the single-copy limit are copied as multipart UploadPartCopy ranges of one version, with its type and metadata', async () => {
    const sdk = await loadSdk();
    const { client, sent } = scriptedClient(({ name, input }) => {
      if (name === 'HeadObjectCommand') return { ETag: '"v1"', ContentType: 'image/jpeg', Metadata: { camera: 'gate' } };
      if (name === 'CreateMultipartUploadCommand') return { UploadId: 'U1' };
      if (name === 'UploadPartCopyCommand') return { CopyPartResult: { ETag: `"e${String(input['PartNumber'])}"` } };
      return {};
    });
    await copyObject({ client, sdk, bucket: 'b', from: 'dir/a b?.bin', to: 'new.bin', size: 12, singleCopyLimitBytes: 5 });
    const ranges = sent.filter((c) => c.name === 'UploadPartCopyCommand').map((c) => c.input['CopySourceRange']).sort();
    assert.deepEqual(ranges, ['bytes=0-4', 'bytes=10-11', 'bytes=5-9']);
    const copies = sent.filter((c) => c.name === 'UploadPartCopyCommand');
    assert.equal(copies[0]!.input['CopySource'], 'b/dir/a%20b%3F.bin');
    assert.ok(copies.every((c) => c.input['CopySourceIfMatch'] === '"v1"'), 'every range from the version the HEAD saw');
    const create = sent.find((c) => c.name === 'CreateMultipartUploadCommand')!;
    assert.equal(create.input['ContentType'], 'image/jpeg');
    assert.deepEqual(create.input['Metadata'], { camera: 'gate' });
    const complete = sent.find((c) => c.name === 'CompleteMultipartUploadCommand')!;
    assert.deepEqual(complete.input['MultipartUpload'], {
      Parts: [
        { PartNumber: 1, ETag: '"e1"' },
        { PartNumber: 2, ETag: '"e2"' },
        { PartNumber: 3, ETag: '"e3"' },
      ],
    });
  });

  test('a failed part copy aborts the multipart upload and reports the failure', async () => {
    const sdk = await loadSdk();
    const { client, sent } = scriptedClient(({ name, input }) => {
      if (name === 'CreateMultipartUploadCommand') return { UploadId: 'U2' };
      if (name === 'UploadPartCopyCommand' && input['PartNumber'] === 2) throw s3Error('SlowDown', 503);
      return { CopyPartResult: { ETag: '"e"' } };
    });
    await assert.rejects(copyObject({ client, sdk, bucket: 'b', from: 'a', to: 'c', size: 12, singleCopyLimitBytes: 5 }), {
      code: ErrorCodes.UNAVAILABLE,
    });
    assert.equal(sent.at(-1)!.name, 'AbortMultipartUploadCommand');
    assert.equal(sent.at(-1)!.input['UploadId'], 'U2');
    assert.ok(!sent.some((c) => c.name === 'CompleteMultipartUploadCommand'));
  });

  test('objects up to the limit use one CopyObject, conditional on the ETag (from the listing, else a HEAD)', async () => {
    const sdk = await loadSdk();
    const { client, sent } = scriptedClient(({ name }) => (name === 'HeadObjectCommand' ? { ETag: '"h"' } : {}));
    await copyObject({ client, sdk, bucket: 'b', from: 'a', to: 'c', size: 5, singleCopyLimitBytes: 5, etag: '"listed"' });
    assert.deepEqual(
      sent.map((c) => [c.name, c.input['CopySourceIfMatch']]),
      [['CopyObjectCommand', '"listed"']],
    );
    sent.length = 0;
    await copyObject({ client, sdk, bucket: 'b', from: 'a', to: 'c', size: 5, singleCopyLimitBytes: 5 });
    assert.deepEqual(
      sent.map((c) => [c.name, c.input['CopySourceIfMatch']]),
      [
        ['HeadObjectCommand', undefined],
        ['CopyObjectCommand', '"h"'],
      ],
    );
  });
});

describe('the cache of directories seen to exist', () => {
  test('remembers a prefix for its lifetime, and forgets a prefix with everything under it', async () => {
    const cache = new DirCache(50, 100);
    cache.add('a/');
    cache.add('a/b/');
    cache.add('ab/');
    assert.ok(cache.has('a/') && cache.has('a/b/'));
    cache.forget('a/');
    assert.ok(!cache.has('a/') && !cache.has('a/b/'));
    assert.ok(cache.has('ab/'), 'a sibling with a longer name is not under a/');
    await new Promise((r) => setTimeout(r, 60));
    assert.ok(!cache.has('ab/'), 'expired');
  });

  test('past its size bound it starts over rather than grow', () => {
    const cache = new DirCache(60_000, 3);
    for (const p of ['a/', 'b/', 'c/', 'd/']) cache.add(p);
    assert.ok(cache.has('d/'));
    assert.ok(!cache.has('a/'));
  });
});

/** A client whose requests take `delayMs` (UploadPart honours the abort signal); records what was sent and what ran at once. */
function slowClient(delayMs: number, hold: { complete?: Promise<void> } = {}) {
  const sent: string[] = [];
  const partBuffers = new Set<ArrayBufferLike>();
  let partsRunning = 0;
  let maxPartsRunning = 0;
  const client = {
    async send(command: { constructor: { name: string }; input: Record<string, unknown> }, options: { abortSignal?: AbortSignal } = {}) {
      const name = command.constructor.name;
      sent.push(name);
      if (name === 'CreateMultipartUploadCommand') return { UploadId: 'U' };
      if (name === 'UploadPartCommand' || name === 'PutObjectCommand') partBuffers.add((command.input['Body'] as Buffer).buffer);
      if (name === 'UploadPartCommand') {
        partsRunning += 1;
        maxPartsRunning = Math.max(maxPartsRunning, partsRunning);
        try {
          await new Promise<void>((resolve, reject) => {
            const timer = setTimeout(resolve, delayMs);
            options.abortSignal?.addEventListener('abort', () => (clearTimeout(timer), reject(Object.assign(new Error('aborted'), { name: 'AbortError' }))));
          });
        } finally {
          partsRunning -= 1;
        }
        return { ETag: `"${String(command.input['PartNumber'])}"` };
      }
      if (name === 'CompleteMultipartUploadCommand') await hold.complete;
      return {};
    },
  } as unknown as S3Client;
  return { client, sent, partBuffers, maxPartsRunning: () => maxPartsRunning };
}

/** A beforeCommit hook that says when it is called and answers when released. */
function gate(): { beforeCommit: () => Promise<void>; called: Promise<void>; release: () => void } {
  let onCall!: () => void;
  let release!: () => void;
  const called = new Promise<void>((r) => (onCall = r));
  const answer = new Promise<void>((r) => (release = r));
  return {
    beforeCommit: () => {
      onCall();
      return answer;
    },
    called,
    release: () => release(),
  };
}

async function upload(client: S3Client, overrides: Partial<UploadTarget> = {}): Promise<S3Upload> {
  return new S3Upload({ client, sdk: await loadSdk(), bucket: 'b', key: 'k', partSizeBytes: 64 * 1024, queueSize: 3, ...overrides });
}

describe('the S3 upload writable', () => {
  test('holds at most queueSize + 1 part buffers however large the upload, with at most queueSize parts in flight', async () => {
    const s3 = slowClient(5);
    const sink = await upload(s3.client);
    // 40 parts, fed in 16 KiB chunks by pipeline, which waits for every write callback.
    const chunk = Buffer.alloc(16 * 1024, 1);
    await pipeline(
      Readable.from((function* () {
        for (let i = 0; i < 40 * 4; i++) yield chunk;
      })()),
      sink,
    );
    assert.ok(sink.committed);
    assert.equal(s3.sent.filter((n) => n === 'UploadPartCommand').length, 40);
    assert.ok(s3.partBuffers.size <= 3 + 1, `${s3.partBuffers.size} part buffers`);
    assert.ok(s3.maxPartsRunning() <= 3, `${s3.maxPartsRunning()} parts at once`);
    assert.equal(s3.sent.at(-1), 'CompleteMultipartUploadCommand');
  });

  test('a destroy before the final request aborts: no CompleteMultipartUpload, AbortMultipartUpload sent, not committed', async () => {
    const s3 = slowClient(50);
    const { beforeCommit, called, release } = gate();
    const sink = await upload(s3.client, { beforeCommit });
    sink.on('error', () => undefined);
    sink.write(Buffer.alloc(200 * 1024));
    sink.end();
    await called;
    sink.destroy(new Error('ABOR'));
    release(); // beforeCommit says yes after the destroy: the commit must still stop
    await new Promise((r) => sink.once('close', r));
    assert.equal(sink.committed, false);
    assert.ok(!s3.sent.includes('CompleteMultipartUploadCommand'), s3.sent.join(','));
    assert.equal(s3.sent.at(-1), 'AbortMultipartUploadCommand');
  });

  test('a destroy once CompleteMultipartUpload is sent waits for it: committed, no abort', async () => {
    let finish!: () => void;
    const s3 = slowClient(1, { complete: new Promise<void>((r) => (finish = r)) });
    const sink = await upload(s3.client);
    sink.on('error', () => undefined);
    sink.end(Buffer.alloc(200 * 1024));
    while (!s3.sent.includes('CompleteMultipartUploadCommand')) await new Promise((r) => setTimeout(r, 1));
    sink.destroy(new Error('ABOR'));
    finish();
    await new Promise((r) => sink.once('close', r));
    assert.equal(sink.committed, true);
    assert.ok(!s3.sent.includes('AbortMultipartUploadCommand'));
  });

  test('a destroy of a small upload before its PutObject sends nothing', async () => {
    const s3 = slowClient(1);
    const { beforeCommit, called, release } = gate();
    const sink = await upload(s3.client, { beforeCommit });
    sink.on('error', () => undefined);
    sink.end(Buffer.from('small'));
    await called;
    sink.destroy(new Error('ABOR'));
    release();
    await new Promise((r) => sink.once('close', r));
    assert.equal(sink.committed, false);
    assert.deepEqual(s3.sent, []);
  });
});

describe('S3Storage settings', () => {
  test('refuses maxFileSizeBytes, naming the server option that replaced it', () => {
    const options = { bucket: 'b', maxFileSizeBytes: 1024 } as unknown as S3StorageOptions;
    assert.throws(() => new S3Storage(options), /set the server option maxFileSizeBytes \(config: limits\.maxFileSizeBytes\)/);
  });

  test('says which part size a maximum file size needs (10,000 parts)', () => {
    assert.match(unreachableFileSize(100 * 1024 ** 3, 8 * 1024 ** 2) ?? '', /set partSizeBytes to at least 11534336$/);
    assert.equal(unreachableFileSize(100 * 1024 ** 3, 11534336), null);
    assert.equal(unreachableFileSize(0, 5 * 1024 ** 2), null);
  });

  test('refuses part sizes Node cannot hold (queueSize + 1) times: at most 512 MiB', () => {
    assert.throws(() => new S3Storage({ bucket: 'b', partSizeBytes: 512 * 1024 * 1024 + 1 }), /partSizeBytes must be a whole number from 5242880 to 536870912/);
    assert.throws(() => new S3Storage({ bucket: 'b', socketTimeoutMs: 0 }), /socketTimeoutMs/);
  });
});

describe('REST + RETR on S3', () => {
  test('a store that ignores Range (no matching Content-Range) is refused rather than corrupt the resumed file', async () => {
    const answers: Array<Record<string, unknown>> = [];
    const { client } = scriptedClient(() => answers.shift());
    const storage = new S3Storage({ bucket: 'b', client });
    answers.push({ Body: Readable.from([Buffer.from('whole object')]), ContentRange: undefined });
    await assert.rejects(storage.read('/f', { start: 6 }), { code: ErrorCodes.UNSUPPORTED });
    answers.push({ Body: Readable.from([Buffer.from('object')]), ContentRange: 'bytes 6-11/12' });
    const chunks: Buffer[] = [];
    for await (const chunk of await storage.read('/f', { start: 6 })) chunks.push(chunk as Buffer);
    assert.equal(Buffer.concat(chunks).toString(), 'object');
  });
});

describe('the process-wide part-buffer budget', () => {
  test('uploads sharing a budget of two parts wait for it instead of allocating, all finish, and every byte comes back', async () => {
    const s3 = slowClient(3);
    const budget = new PartBudget(2 * 64 * 1024);
    let refused = 0;
    const take = budget.tryTake.bind(budget);
    budget.tryTake = (bytes: number) => take(bytes) || (refused++, false);
    const chunk = Buffer.alloc(16 * 1024, 1);
    const uploads = await Promise.all([1, 2, 3].map(() => upload(s3.client, { budget })));
    await Promise.all(
      uploads.map((sink) =>
        pipeline(
          Readable.from((function* () {
            for (let i = 0; i < 10 * 4; i++) yield chunk;
          })()),
          sink,
        ),
      ),
    );
    assert.ok(uploads.every((u) => u.committed));
    assert.equal(s3.sent.filter((n) => n === 'UploadPartCommand').length, 30);
    assert.ok(refused > 0, 'some upload had to wait');
    assert.equal(budget.free, budget.bytes);
  });

  test('an aborted upload gives its buffers back', async () => {
    const s3 = slowClient(20);
    const budget = new PartBudget(4 * 64 * 1024);
    const sink = await upload(s3.client, { budget });
    sink.on('error', () => undefined);
    sink.write(Buffer.alloc(150 * 1024));
    await new Promise((r) => setTimeout(r, 5));
    assert.ok(budget.free < budget.bytes);
    sink.destroy(new Error('ABOR'));
    await new Promise((r) => sink.once('close', r));
    assert.equal(budget.free, budget.bytes);
  });
});
