/**
 * The integrity commands' pure parts: algorithm names, the FEAT line, RANG
 * and X* arguments, ranges against file sizes, the HASH reply, digests
 * against Node's crypto and zlib, and the checksums S3 stores.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { crc32 } from 'node:zlib';
import { clampRange, formatHashReply, hashFeature, HASH_ALGORITHMS, parseHashAlgorithm, parseRang, parseRangedPath } from '../../src/protocol/hash.js';
import { createDigest } from '../../src/storage/digest.js';
import { storedDigest, taggedSha256 } from '../../src/storage/s3-checksums.js';

describe('HASH words', () => {
  test('algorithm names are matched whatever their case; unknown ones are null', () => {
    assert.equal(parseHashAlgorithm('sha-256'), 'SHA-256');
    assert.equal(parseHashAlgorithm(' Md5 '), 'MD5');
    assert.equal(parseHashAlgorithm('crc32'), 'CRC32');
    assert.equal(parseHashAlgorithm('SHA256'), null);
    assert.equal(parseHashAlgorithm('CRC-37'), null);
  });

  test('the FEAT line lists every algorithm and stars the selected one', () => {
    assert.equal(hashFeature('SHA-256'), 'HASH SHA-256*;SHA-512;SHA-1;MD5;CRC32');
    assert.equal(hashFeature('MD5'), 'HASH SHA-256;SHA-512;SHA-1;MD5*;CRC32');
  });

  test('RANG takes an inclusive end, "1 0" resets, and anything else is invalid', () => {
    assert.deepEqual(parseRang('0 49'), { start: 0, end: 50 });
    assert.deepEqual(parseRang('0 0'), { start: 0, end: 1 });
    assert.equal(parseRang('1 0'), 'reset');
    for (const bad of ['5 2', '1', '1 2 3', '-1 4', 'a b', '', '1 99999999999999999']) assert.equal(parseRang(bad), 'invalid', bad);
  });

  test('X* arguments: a path, optionally two offsets (exclusive end), quoted when the name has spaces', () => {
    assert.deepEqual(parseRangedPath('f.bin'), { path: 'f.bin', range: null });
    assert.deepEqual(parseRangedPath('f.bin 10 20'), { path: 'f.bin', range: { start: 10, end: 20 } });
    assert.deepEqual(parseRangedPath('my file.bin 0 5'), { path: 'my file.bin', range: { start: 0, end: 5 } });
    assert.deepEqual(parseRangedPath('"my file 1 2" 3 4'), { path: 'my file 1 2', range: { start: 3, end: 4 } });
    assert.deepEqual(parseRangedPath('"my file 1 2"'), { path: 'my file 1 2', range: null });
    // One number is part of the name: peers disagree on what it would mean.
    assert.deepEqual(parseRangedPath('track 7'), { path: 'track 7', range: null });
    assert.deepEqual(parseRangedPath('f.bin 9 3'), { path: 'f.bin', range: 'invalid' });
    assert.deepEqual(parseRangedPath('"f.bin" 1 x'), { path: 'f.bin', range: 'invalid' });
  });

  test('a range is clamped to the file; one starting past its last byte is refused', () => {
    assert.deepEqual(clampRange(null, 100), { start: 0, end: 100 });
    assert.deepEqual(clampRange(null, 0), { start: 0, end: 0 });
    assert.deepEqual(clampRange({ start: 10, end: 50 }, 100), { start: 10, end: 50 });
    assert.deepEqual(clampRange({ start: 10, end: 500 }, 100), { start: 10, end: 100 });
    assert.deepEqual(clampRange({ start: 99, end: 500 }, 100), { start: 99, end: 100 });
    assert.equal(clampRange({ start: 100, end: 200 }, 100), null);
    assert.equal(clampRange({ start: 5, end: 6 }, 0), null);
  });

  test('the 213 text repeats the range with an inclusive end, as RANG gives it', () => {
    assert.equal(formatHashReply('SHA-1', { start: 0, end: 256 }, 'ab', 'f.ext'), 'SHA-1 0-255 ab f.ext');
    assert.equal(formatHashReply('MD5', { start: 0, end: 50 }, 'cd', 'dir/f'), 'MD5 0-49 cd dir/f');
    assert.equal(formatHashReply('CRC32', { start: 0, end: 0 }, '00000000', 'empty'), 'CRC32 0-0 00000000 empty');
  });
});

describe('digests', () => {
  test('each algorithm fed in uneven chunks equals Node crypto (and zlib.crc32) over the whole buffer', () => {
    const data = randomBytes(200_003);
    const expected: Record<string, string> = {
      'SHA-256': createHash('sha256').update(data).digest('hex'),
      'SHA-512': createHash('sha512').update(data).digest('hex'),
      'SHA-1': createHash('sha1').update(data).digest('hex'),
      MD5: createHash('md5').update(data).digest('hex'),
      CRC32: crc32(data).toString(16).padStart(8, '0'),
    };
    for (const algorithm of HASH_ALGORITHMS) {
      const digest = createDigest(algorithm);
      for (let at = 0; at < data.length; at += 65_537) digest.update(data.subarray(at, at + 65_537));
      assert.equal(digest.hex(), expected[algorithm], algorithm);
    }
    // A CRC with leading zero nibbles keeps its eight digits.
    assert.equal(createDigest('CRC32').hex(), '00000000');
  });
});

describe('checksums S3 stores', () => {
  const sha256 = createHash('sha256').update('x').digest();
  test('full-object checksums are converted from base64 to hex; composite ones are not used', () => {
    assert.equal(storedDigest({ ChecksumSHA256: sha256.toString('base64') }, 'SHA-256'), sha256.toString('hex'));
    assert.equal(storedDigest({ ChecksumCRC32: Buffer.from([0, 0x12, 0x34, 0x56]).toString('base64'), ChecksumType: 'FULL_OBJECT' }, 'CRC32'), '00123456');
    assert.equal(storedDigest({ ChecksumSHA256: `${sha256.toString('base64')}-3` }, 'SHA-256'), null);
    assert.equal(storedDigest({ ChecksumSHA1: createHash('sha1').update('x').digest('base64'), ChecksumType: 'COMPOSITE' }, 'SHA-1'), null);
    assert.equal(storedDigest({ ChecksumSHA256: sha256.toString('base64') }, 'MD5'), null);
    assert.equal(storedDigest({ ChecksumSHA256: 'AAAA' }, 'SHA-256'), null, 'wrong length');
  });

  test("Ferry's recorded SHA-256 is used only when it is 64 hex digits, and a tag only when its ETag is the object's", () => {
    const hex = sha256.toString('hex');
    assert.equal(storedDigest({ Metadata: { 'ferry-sha256': hex.toUpperCase() } }, 'SHA-256'), hex);
    assert.equal(storedDigest({ Metadata: { 'ferry-sha256': 'nope' } }, 'SHA-256'), null);
    const tags = (value: string, etag: string) => [{ Key: 'other', Value: hex }, { Key: 'ferry-sha256', Value: value }, { Key: 'ferry-sha256-etag', Value: etag }];
    assert.equal(taggedSha256(tags(hex, 'abc-2'), '"abc-2"'), hex);
    assert.equal(taggedSha256(tags(hex, 'abc-2'), '"def"'), null, 'the tag belongs to another object (an upload landed in between, or a copy)');
    assert.equal(taggedSha256([{ Key: 'ferry-sha256', Value: hex }], '"abc-2"'), null, 'no ETag tag');
    assert.equal(taggedSha256(tags(hex.slice(1), 'abc-2'), '"abc-2"'), null);
    assert.equal(taggedSha256(undefined, '"abc-2"'), null);
  });
});
