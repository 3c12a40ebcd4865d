/**
 * The integrity commands over S3 (Ceph's gateway, test/helpers/ceph.ts):
 * HASH, RANG and the X* commands on objects Ferry uploaded (multipart and
 * single-request) equal Node's crypto and zlib.crc32, reading the object
 * (ranged GETs for ranges); and S3Storage.hash() answers from the SHA-256
 * recorded with an object (metadata `ferry-sha256`, or the tag when the tag
 * of its ETag matches) without reading it, for whole objects only.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, test, type TestContext } from 'node:test';
import { PutObjectCommand, PutObjectTaggingCommand } from '@aws-sdk/client-s3';
import { S3Storage } from '../../src/index.js';
import { cephSkip, stopSharedCeph } from '../helpers/ceph.js';
import { RawClient, uploadBytes } from '../helpers/ftp-raw.js';
import { startS3, type TestS3 } from '../helpers/s3.js';
import { PASSWORD, startServer, USER, type TestServerOptions } from '../helpers/server.js';
import { NODE_DIGESTS } from '../helpers/digests.js';

after(stopSharedCeph);

const MIB = 1024 * 1024;
const NODE = NODE_DIGESTS;

async function setup(t: TestContext, options: TestServerOptions = {}): Promise<{ s3: TestS3; storage: S3Storage; client: RawClient }> {
  const s3 = await startS3(t);
  const storage = new S3Storage(s3.options({ partSizeBytes: 5 * MIB }));
  t.after(() => storage.destroy());
  const { port } = await startServer(t, { ...options, storage });
  const client = await RawClient.login(port, USER, PASSWORD);
  t.after(() => client.close());
  await client.command('TYPE I', 200);
  return { s3, storage, client };
}

/** STOR `data` as `name` through Ferry (random bytes: reproduce them from the returned buffer). */
async function put(client: RawClient, name: string, data: Buffer): Promise<void> {
  const socket = await client.passive();
  client.send(`STOR ${name}`);
  await client.expect(150);
  socket.end(data);
  await client.expect(226, 20_000);
}

describe('HASH and X* over S3', { skip: cephSkip() }, () => {
  test('a multipart and a single-part object: every algorithm, RANG and X* ranges equal Node crypto and zlib.crc32', async (t) => {
    const { client, storage } = await setup(t);
    const big = randomBytes(11 * MIB + 4321);
    const small = randomBytes(2000);
    await put(client, 'big.bin', big);
    await put(client, 'small.bin', small);
    await client.command('MKD dir', 257);
    // Ferry records each upload's SHA-256 (metadata for one part, tags for several): HASH answers from it, without a read.
    const signal = new AbortController().signal;
    for (const [name, data] of [['big.bin', big], ['small.bin', small]] as const) {
      assert.equal(await storage.hash(`/${name}`, 'SHA-256', { start: 0, end: data.length, size: data.length, signal }), NODE['SHA-256']!(data), name);
    }
    for (const algorithm of Object.keys(NODE)) {
      await client.command(`OPTS HASH ${algorithm}`, 200);
      for (const [name, data] of [['big.bin', big], ['small.bin', small]] as const) {
        assert.equal((await client.command(`HASH ${name}`, 213)).text, `${algorithm} 0-${data.length - 1} ${NODE[algorithm]!(data)} ${name}`);
      }
      // A range inside the second part: a ranged GET.
      await client.command(`RANG ${6 * MIB} ${7 * MIB}`, 350);
      assert.equal((await client.command('HASH big.bin', 213)).text, `${algorithm} ${6 * MIB}-${7 * MIB} ${NODE[algorithm]!(big.subarray(6 * MIB, 7 * MIB + 1))} big.bin`);
    }
    for (const [verb, algorithm] of [['XCRC', 'CRC32'], ['XMD5', 'MD5'], ['XSHA1', 'SHA-1'], ['XSHA256', 'SHA-256'], ['XSHA512', 'SHA-512']] as const) {
      assert.equal((await client.command(`${verb} big.bin`, 250)).text, NODE[algorithm]!(big), verb);
      assert.equal((await client.command(`${verb} big.bin 100 ${5 * MIB + 7}`, 250)).text, NODE[algorithm]!(big.subarray(100, 5 * MIB + 7)), verb);
    }
    await client.command('HASH dir', 553);
    await client.command('HASH missing.bin', 550);
    await client.command(`RANG ${big.length} ${big.length}`, 350);
    await client.command('HASH big.bin', 554);
    // An empty object.
    assert.equal(await uploadBytes(client, 'STOR', 'empty.bin', 0), 226);
    assert.equal((await client.command('XCRC empty.bin', 250)).text, '00000000');
  });

  test('the SHA-256 recorded with an object (metadata or tag ferry-sha256) answers HASH without reading; other cases read', async (t) => {
    // A maximum file size puts the storage policy layer around the storage: it must pass hash() through.
    const { s3, storage, client } = await setup(t, { maxFileSizeBytes: 1 << 30 });
    const data = randomBytes(100_000);
    const real = NODE['SHA-256']!(data);
    // A recorded value that is not the bytes' digest shows where the answer comes from.
    const recorded = NODE['SHA-256']!(Buffer.from('recorded'));
    await s3.raw.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'meta.bin', Body: data, Metadata: { 'ferry-sha256': recorded } }));
    // Tags as a multipart upload leaves them: the digest, and the ETag of the object it belongs to.
    for (const [key, etagOf] of [['tag.bin', 'tag.bin'], ['stale-tag.bin', 'other']] as const) {
      const { ETag } = await s3.raw.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: key === etagOf ? data : Buffer.concat([data, data]) }));
      const etag = key === etagOf ? ETag!.replace(/"/g, '') : 'not-this-object';
      const TagSet = [{ Key: 'ferry-sha256', Value: recorded.toUpperCase() }, { Key: 'ferry-sha256-etag', Value: etag }];
      await s3.raw.send(new PutObjectTaggingCommand({ Bucket: s3.bucket, Key: key, Tagging: { TagSet } }));
    }
    await s3.raw.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'plain.bin', Body: data }));

    const signal = new AbortController().signal;
    const whole = { start: 0, end: data.length, size: data.length, signal };
    assert.equal(await storage.hash('/meta.bin', 'SHA-256', whole), recorded);
    assert.equal(await storage.hash('/tag.bin', 'SHA-256', whole), recorded);
    assert.equal(await storage.hash('/plain.bin', 'SHA-256', whole), null, 'nothing recorded: the caller reads');
    assert.equal(await storage.hash('/stale-tag.bin', 'SHA-256', { ...whole, end: 2 * data.length, size: 2 * data.length }), null, 'a tag of another ETag');
    assert.equal(await storage.hash('/meta.bin', 'SHA-256', { ...whole, start: 1 }), null, 'a range is always read');
    assert.equal(await storage.hash('/meta.bin', 'MD5', whole), null, 'the ETag is not trusted as an MD5');

    assert.equal((await client.command('HASH meta.bin', 213)).text, `SHA-256 0-${data.length - 1} ${recorded} meta.bin`);
    assert.equal((await client.command('XSHA256 tag.bin', 250)).text, recorded);
    assert.equal((await client.command('HASH plain.bin', 213)).text, `SHA-256 0-${data.length - 1} ${real} plain.bin`);
    assert.equal((await client.command('XSHA256 stale-tag.bin', 250)).text, NODE['SHA-256']!(Buffer.concat([data, data])));
    // Other algorithms and ranges read the object.
    assert.equal((await client.command('XMD5 meta.bin', 250)).text, NODE.MD5!(data));
    assert.equal((await client.command('XSHA256 meta.bin 0 10', 250)).text, NODE['SHA-256']!(data.subarray(0, 10)));
  });
});
