import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';

import { CrlfToLf, LfToCrlf } from '../../src/protocol/ascii.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');
const s = (buf: Buffer): string => buf.toString('latin1');

/** Bytes where CR and LF are common enough to meet each other and chunk edges. */
const bytesArb = fc
  .array(fc.oneof(fc.constantFrom(0x0d, 0x0a, 0x0d, 0x0a, 0x41), fc.integer({ min: 0, max: 255 })), { maxLength: 200 })
  .map((a) => Buffer.from(a));

/** Lines long enough to take the native-copy path, with every kind of line end. */
const linesArb = fc
  .array(fc.tuple(fc.integer({ min: 0, max: 120 }), fc.constantFrom('\n', '\r\n', '\r', '')), { maxLength: 20 })
  .map((lines) => b(lines.map(([n, end]) => 'x'.repeat(n) + end).join('')));

const inputArb = fc.oneof(bytesArb, linesArb);

/** Split a buffer at arbitrary points (empty chunks included). */
function split(buf: Buffer, cuts: number[]): Buffer[] {
  const points = cuts.map((c) => c % (buf.length + 1)).sort((x, y) => x - y);
  const chunks: Buffer[] = [];
  let start = 0;
  for (const p of points) {
    chunks.push(buf.subarray(start, p));
    start = p;
  }
  chunks.push(buf.subarray(start));
  return chunks;
}

const cutsArb = fc.array(fc.nat(), { maxLength: 12 });

/** Reference conversions on whole strings, written independently of the classes. */
const refLfToCrlf = (x: string): string => x.replace(/(?<!\r)\n/g, '\r\n');
const refCrlfToLf = (x: string): string => x.replace(/\r\n/g, '\n');

function sendAll(chunks: Buffer[]): Buffer {
  const conv = new LfToCrlf();
  return Buffer.concat(chunks.map((c) => conv.convert(c)));
}

function receiveAll(chunks: Buffer[]): Buffer {
  const conv = new CrlfToLf();
  return Buffer.concat([...chunks.map((c) => conv.convert(c)), conv.flush()]);
}

describe('LfToCrlf', () => {
  test('turns every bare LF into CRLF', () => {
    assert.equal(s(new LfToCrlf().convert(b('a\nb\n\nc'))), 'a\r\nb\r\n\r\nc');
    assert.equal(s(new LfToCrlf().convert(b('\n'))), '\r\n');
  });

  test('leaves existing CRLF and lone CR alone', () => {
    assert.equal(s(new LfToCrlf().convert(b('a\r\nb\n'))), 'a\r\nb\r\n');
    assert.equal(s(new LfToCrlf().convert(b('\r\r\n\n'))), '\r\r\n\r\n');
  });

  test('returns the same buffer when nothing changes', () => {
    const conv = new LfToCrlf();
    for (const text of ['plain text', 'a\r\nb\r\n', 'lone\rcr', '']) {
      const input = b(text);
      assert.equal(conv.convert(input), input, JSON.stringify(text));
    }
  });

  test('does not double a CRLF split across chunks', () => {
    const conv = new LfToCrlf();
    assert.equal(s(conv.convert(b('a\r'))), 'a\r');
    assert.equal(s(conv.convert(b('\nb'))), '\nb');
  });

  test('converts an LF that starts a chunk after a chunk without CR', () => {
    const conv = new LfToCrlf();
    assert.equal(s(conv.convert(b('a'))), 'a');
    assert.equal(s(conv.convert(b('\nb'))), '\r\nb');
  });

  test('keeps its state across an empty chunk', () => {
    const conv = new LfToCrlf();
    conv.convert(b('a\r'));
    conv.convert(b(''));
    assert.equal(s(conv.convert(b('\n'))), '\n');
  });

  test('matches the whole-input conversion for any bytes and any chunking', () => {
    fc.assert(
      fc.property(inputArb, cutsArb, (bytes, cuts) => {
        const expected = refLfToCrlf(s(bytes));
        assert.equal(s(new LfToCrlf().convert(bytes)), expected);
        assert.equal(s(sendAll(split(bytes, cuts))), expected);
      }),
    );
  });

  test('converts a large buffer of short lines', () => {
    const input = Buffer.from('line\n'.repeat(100_000));
    const out = new LfToCrlf().convert(input);
    assert.equal(out.length, input.length + 100_000);
    assert.equal(s(out.subarray(0, 12)), 'line\r\nline\r\n');
  });
});

describe('CrlfToLf', () => {
  test('turns CRLF into LF', () => {
    const conv = new CrlfToLf();
    assert.equal(s(conv.convert(b('a\r\nb\r\n\r\nc'))), 'a\nb\n\nc');
  });

  test('keeps lone CRs and bare LFs', () => {
    const conv = new CrlfToLf();
    assert.equal(s(conv.convert(b('a\rb\nc\r\r\n'))), 'a\rb\nc\r\n');
  });

  test('returns the same buffer when nothing changes', () => {
    const conv = new CrlfToLf();
    for (const text of ['plain text', 'a\nb\n', 'lone\rcr', '']) {
      const input = b(text);
      assert.equal(conv.convert(input), input, JSON.stringify(text));
    }
  });

  test('holds back a CR at the end of a chunk and drops it before an LF', () => {
    const conv = new CrlfToLf();
    assert.equal(s(conv.convert(b('a\r'))), 'a');
    assert.equal(s(conv.convert(b('\nb'))), '\nb');
    assert.equal(s(conv.flush()), '');
  });

  test('releases a held CR when the next chunk does not start with LF', () => {
    const conv = new CrlfToLf();
    assert.equal(s(conv.convert(b('a\r'))), 'a');
    assert.equal(s(conv.convert(b('b'))), '\rb');
  });

  test('releases a held CR on flush at the end of the stream', () => {
    const conv = new CrlfToLf();
    assert.equal(s(conv.convert(b('a\r'))), 'a');
    assert.equal(s(conv.flush()), '\r');
    assert.equal(s(conv.flush()), '');
  });

  test('handles a run of single-byte chunks', () => {
    const conv = new CrlfToLf();
    const out = ['\r', '\r', '\n', '\r'].map((c) => s(conv.convert(b(c))));
    assert.deepEqual(out, ['', '\r', '\n', '']);
    assert.equal(s(conv.flush()), '\r');
  });

  test('keeps a held CR across an empty chunk', () => {
    const conv = new CrlfToLf();
    conv.convert(b('a\r'));
    assert.equal(s(conv.convert(b(''))), '');
    assert.equal(s(conv.convert(b('\n'))), '\n');
  });

  test('matches the whole-input conversion for any bytes and any chunking', () => {
    fc.assert(
      fc.property(inputArb, cutsArb, (bytes, cuts) => {
        const expected = refCrlfToLf(s(bytes));
        assert.equal(s(receiveAll([bytes])), expected);
        assert.equal(s(receiveAll(split(bytes, cuts))), expected);
      }),
    );
  });

  test('undoes LfToCrlf for any input without CR, whatever the chunking', () => {
    fc.assert(
      fc.property(
        inputArb.map((x) => Buffer.from(x.filter((byte) => byte !== 0x0d))),
        cutsArb,
        cutsArb,
        (bytes, sendCuts, receiveCuts) => {
          const wire = sendAll(split(bytes, sendCuts));
          assert.deepEqual(receiveAll(split(wire, receiveCuts)), bytes);
        },
      ),
    );
  });
});
