import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { LineReader, parseCommand, stripTelnet } from '../../src/protocol/line-reader.js';
import { formatReply, quotePath } from '../../src/protocol/reply.js';

function collect(reader: LineReader, chunks: Buffer[]): { lines: string[]; tooLong: number } {
  const lines: string[] = [];
  let tooLong = 0;
  const sink = { line: (line: Buffer) => lines.push(line.toString('latin1')), tooLong: () => tooLong++ };
  for (const chunk of chunks) reader.push(chunk, sink);
  return { lines, tooLong };
}

test('a command split across segments is reassembled', () => {
  const { lines } = collect(new LineReader(512), [Buffer.from('RE'), Buffer.from('TR a b'), Buffer.from('.txt\r'), Buffer.from('\n')]);
  assert.deepEqual(lines, ['RETR a b.txt']);
});

test('several commands in one segment come out in order; bare LF is tolerated', () => {
  const { lines } = collect(new LineReader(512), [Buffer.from('USER x\r\nPASS y\nNOOP\r\nPW')]);
  assert.deepEqual(lines, ['USER x', 'PASS y', 'NOOP']);
});

test('a line longer than the limit is reported once and discarded up to the next LF', () => {
  const reader = new LineReader(16);
  const { lines, tooLong } = collect(reader, [Buffer.alloc(10, 'a'), Buffer.alloc(10, 'b'), Buffer.alloc(1000, 'c'), Buffer.from('dd\r\nNOOP\r\n')]);
  assert.equal(tooLong, 1);
  assert.deepEqual(lines, ['NOOP']);
});

test('a complete over-long line in one chunk is reported and the next line still parses', () => {
  const { lines, tooLong } = collect(new LineReader(8), [Buffer.from('0123456789abc\r\nSYST\r\n')]);
  assert.equal(tooLong, 1);
  assert.deepEqual(lines, ['SYST']);
});

test('Telnet IP and Synch before ABOR are removed', () => {
  const { lines } = collect(new LineReader(64), [Buffer.from([0xff, 0xf4, 0xff, 0xf2, ...Buffer.from('ABOR\r\n')])]);
  assert.deepEqual(lines, ['ABOR']);
});

test('ABOR whose urgent LF was taken out of band still counts as a line', () => {
  const { lines } = collect(new LineReader(64), [Buffer.from([0xff, 0xf4, 0xff, 0xf2, ...Buffer.from('ABOR\r')])]);
  assert.deepEqual(lines, ['ABOR']);
});

test('IAC IAC is a literal 0xff byte; other bytes after a lone IAC stay, so bad input still fails UTF-8', () => {
  assert.deepEqual([...stripTelnet(Buffer.from([0x41, 0xff, 0xff, 0x42, 0xff, 0xf4, 0x43]))], [0x41, 0xff, 0x42, 0x43]);
  assert.deepEqual([...stripTelnet(Buffer.from([0x41, 0xff, 0xfe, 0x2e]))], [0x41, 0xfe, 0x2e]);
});

test('ABOR is recognised whatever part of the Telnet Synch the kernel took out of band', () => {
  const variants = {
    lftp: [0xf4, 0xff, 0xf2],
    tnftp: [0xff, 0xf4, 0xf2],
    rfc: [0xff, 0xf4, 0xff],
  };
  for (const [client, prefix] of Object.entries(variants)) {
    const { lines } = collect(new LineReader(64), [Buffer.from([...prefix, ...Buffer.from('ABOR\r\n')])]);
    assert.deepEqual(lines, ['ABOR'], client);
  }
});

test('the LF of an urgent ABOR arriving later does not make an empty command', () => {
  const { lines } = collect(new LineReader(64), [Buffer.from('ABOR\r'), Buffer.from('\nNOOP\r\n')]);
  assert.deepEqual(lines, ['ABOR', 'NOOP']);
});

test('a line sent one byte at a time is reassembled', () => {
  const wire = Buffer.from('STOR some name.txt\r\n');
  const { lines } = collect(new LineReader(64), [...wire].map((b) => Buffer.from([b])));
  assert.deepEqual(lines, ['STOR some name.txt']);
});

test('random chunking never changes the parsed commands', () => {
  const line = fc.stringMatching(/^[A-Za-z0-9 ./_-]{0,40}$/);
  fc.assert(
    fc.property(fc.array(line, { maxLength: 20 }), fc.array(fc.nat(), { maxLength: 30 }), (lines, cuts) => {
      const wire = Buffer.from(lines.map((l) => `${l}\r\n`).join(''));
      const points = [...new Set(cuts.map((c) => (wire.length ? c % wire.length : 0)))].sort((a, b) => a - b);
      const chunks: Buffer[] = [];
      let last = 0;
      for (const p of points) {
        chunks.push(wire.subarray(last, p));
        last = p;
      }
      chunks.push(wire.subarray(last));
      assert.deepEqual(collect(new LineReader(64), chunks).lines, lines);
    }),
  );
});

test('parseCommand splits once and keeps the argument untouched', () => {
  assert.deepEqual(parseCommand(Buffer.from('stor  -rf "x" y ')), { verb: 'STOR', arg: ' -rf "x" y ' });
  assert.deepEqual(parseCommand(Buffer.from('noop')), { verb: 'NOOP', arg: '' });
  assert.deepEqual(parseCommand(Buffer.from('CWD naïve/日本')), { verb: 'CWD', arg: 'naïve/日本' });
});

test('parseCommand rejects invalid UTF-8', () => {
  assert.equal(parseCommand(Buffer.from([0x43, 0x57, 0x44, 0x20, 0xc3, 0x28])), null);
});

test('single and multi-line replies follow RFC 959 §4.2', () => {
  assert.equal(formatReply(200, 'ok'), '200 ok\r\n');
  assert.equal(formatReply(211, ['Features:', ' UTF8', 'End']), '211-Features:\r\n UTF8\r\n211 End\r\n');
  assert.equal(formatReply(213, ['a', '226 looks like an end', 'b']), '213-a\r\n 226 looks like an end\r\n213 b\r\n');
});

test('reply text can never carry a CR, LF or other control character (no forged replies)', () => {
  assert.equal(formatReply(257, '"a\r\n230 x" created.'), '257 "a??230 x" created.\r\n');
  assert.equal(formatReply(500, 'Unknown command "\x1b[31m\x00".'), '500 Unknown command "?[31m?".\r\n');
});

test('quotes inside a 257 path are doubled', () => {
  assert.equal(quotePath('/a "q" b'), '"/a ""q"" b"');
});
