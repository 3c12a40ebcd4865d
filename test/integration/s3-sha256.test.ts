/**
 * The upload's SHA-256 stored with the S3 object (docs/s3.md): the user
 * metadata ferry-sha256 of a one-part upload's PutObject, the tags
 * ferry-sha256 and ferry-sha256-etag set by PutObjectTagging after a
 * multipart one; read back from Ceph's radosgw and checked against Node's
 * crypto.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { after, describe, test, type TestContext } from 'node:test';
import { GetObjectTaggingCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { Client } from 'basic-ftp';
import { S3Storage } from '../../src/index.js';
import { cephSkip, stopSharedCeph } from '../helpers/ceph.js';
import { startS3 } from '../helpers/s3.js';
import { PASSWORD, USER, startServer, type TestServerOptions } from '../helpers/server.js';

after(stopSharedCeph);

const MIB = 1024 * 1024;

async function upload(t: TestContext, data: Buffer, serverOptions: TestServerOptions = {}) {
  const s3 = await startS3(t);
  const storage = new S3Storage(s3.options({ partSizeBytes: 5 * MIB }));
  t.after(() => storage.destroy());
  const srv = await startServer(t, { ...serverOptions, storage });
  const client = new Client(20_000);
  t.after(() => client.close());
  await client.access({ host: '127.0.0.1', port: srv.port, user: USER, password: PASSWORD });
  const received = new Promise<{ sha256?: string }>((resolve) => srv.server.once('file-received', resolve));
  await client.uploadFrom(Readable.from([data]), 'obj.bin');
  const info = await received;
  const tags = await s3.raw.send(new GetObjectTaggingCommand({ Bucket: s3.bucket, Key: 'obj.bin' }));
  const head = await s3.raw.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: 'obj.bin' }));
  return { info, tags: Object.fromEntries((tags.TagSet ?? []).map((tag) => [tag.Key, tag.Value])), etag: head.ETag!.replace(/"/g, ''), metadata: head.Metadata ?? {} };
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

describe('the upload SHA-256 on S3 (Ceph)', { skip: cephSkip() }, () => {
  test('a one-part upload carries the metadata ferry-sha256 from its PutObject, and no tag', async (t) => {
    const data = randomBytes(300_000);
    const { info, tags, metadata } = await upload(t, data);
    assert.equal(info.sha256, sha256(data));
    assert.deepEqual(metadata, { 'ferry-sha256': sha256(data) });
    assert.deepEqual(tags, {});
  });

  test('a multipart upload is tagged after its commit, with the ETag the digest belongs to', async (t) => {
    const data = randomBytes(11 * MIB + 5);
    const { info, tags, etag, metadata } = await upload(t, data);
    assert.equal(info.sha256, sha256(data));
    assert.deepEqual(metadata, {});
    assert.match(etag, /-3$/, 'three parts');
    assert.deepEqual(tags, { 'ferry-sha256': sha256(data), 'ferry-sha256-etag': etag });
  });

  test('with uploadSha256 off, neither', async (t) => {
    const { tags, metadata } = await upload(t, randomBytes(1000), { uploadSha256: false });
    assert.deepEqual(tags, {});
    assert.deepEqual(metadata, {});
  });
});
