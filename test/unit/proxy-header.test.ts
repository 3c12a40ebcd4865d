import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';

import { parseProxyHeader, PROXY_V1_MAX_BYTES, PROXY_V2_MAX_BYTES, type ProxyHeaderParse } from '../../src/protocol/proxy-header.js';
import { proxyV1, proxyV2, V2_SIGNATURE } from '../helpers/proxy-header.js';

const text = (s: string): Buffer => Buffer.from(s, 'latin1');

function header(result: ProxyHeaderParse) {
  assert.equal(result.kind, 'header', JSON.stringify(result));
  return result as Extract<ProxyHeaderParse, { kind: 'header' }>;
}

function refused(result: ProxyHeaderParse, pattern: RegExp): void {
  assert.equal(result.kind, 'invalid', JSON.stringify(result));
  assert.match((result as { reason: string }).reason, pattern);
}

describe('PROXY protocol v1', () => {
  test('reads TCP4 source and destination, and the header length before the client data', () => {
    const line = proxyV1('192.168.0.1', '192.168.0.11', 56324, 21);
    const parsed = header(parseProxyHeader(Buffer.concat([line, text('USER alice\r\n')])));
    assert.equal(parsed.length, line.length);
    assert.deepEqual(parsed.header, {
      version: 1,
      source: { address: '192.168.0.1', port: 56324 },
      destination: { address: '192.168.0.11', port: 21 },
    });
  });

  test('reads TCP6 addresses in canonical form, an IPv4-mapped source as IPv4', () => {
    const parsed = header(parseProxyHeader(text('PROXY TCP6 2001:DB8:0:0:0:0:0:1 ::1 65535 0\r\n')));
    assert.deepEqual(parsed.header.source, { address: '2001:db8::1', port: 65535 });
    assert.deepEqual(parsed.header.destination, { address: '::1', port: 0 });
    const mapped = header(parseProxyHeader(text('PROXY TCP6 ::ffff:10.1.2.3 ::1 1000 21\r\n')));
    assert.equal(mapped.header.source?.address, '10.1.2.3');
  });

  test('UNKNOWN, short or with anything before the CRLF, keeps the connection\'s own addresses', () => {
    for (const line of ['PROXY UNKNOWN\r\n', 'PROXY UNKNOWN ffff:f::1 ::2 65535 65535\r\n', 'PROXY UNKNOWN whatever\r\n']) {
      const parsed = header(parseProxyHeader(text(line)));
      assert.deepEqual(parsed.header, { version: 1, source: null, destination: null });
      assert.equal(parsed.length, line.length);
    }
  });

  test('the longest line the spec allows (107 bytes) is accepted; one byte more is not', () => {
    const longest = `PROXY UNKNOWN ${'ffff:'.repeat(7)}ffff ${'ffff:'.repeat(7)}ffff 65535 65535\r\n`;
    assert.equal(longest.length, PROXY_V1_MAX_BYTES);
    assert.equal(header(parseProxyHeader(text(longest))).length, 107);
    refused(parseProxyHeader(text(`PROXY UNKNOWN ${'f'.repeat(92)}\r\n`)), /longer than 107/);
    refused(parseProxyHeader(text(`PROXY UNKNOWN ${'f'.repeat(120)}`)), /no CRLF within 107/);
  });

  test('asks for more bytes while the line can still become a header', () => {
    const line = proxyV1('203.0.113.7', '198.51.100.1', 40000, 21);
    for (let n = 0; n < line.length; n++) assert.deepEqual(parseProxyHeader(line.subarray(0, n)), { kind: 'more' }, `prefix of ${n} bytes`);
  });

  const malformed: Array<[string, string, RegExp]> = [
    ['a bare LF', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n', /without CRLF/],
    ['a CR inside', 'PROXY TCP4 1.2.3.4\r 5.6.7.8 1 2\r\n', /printable/],
    ['two spaces', 'PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n', /exactly/],
    ['a missing port', 'PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n', /exactly/],
    ['a trailing space', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n', /exactly/],
    ['lower-case protocol', 'PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n', /unknown protocol/],
    ['UDP4', 'PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n', /unknown protocol/],
    ['an IPv6 address under TCP4', 'PROXY TCP4 ::1 5.6.7.8 1 2\r\n', /not IPv4/],
    ['an IPv4 address under TCP6', 'PROXY TCP6 1.2.3.4 ::1 1 2\r\n', /not IPv6/],
    ['an octet with a leading zero', 'PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n', /not IPv4/],
    ['a host name', 'PROXY TCP4 example.com 5.6.7.8 1 2\r\n', /not IPv4/],
    ['an IPv6 zone', 'PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n', /not IPv6/],
    ['a port above 65535', 'PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n', /port/],
    ['a port with a leading zero', 'PROXY TCP4 1.2.3.4 5.6.7.8 021 2\r\n', /port/],
    ['a negative port', 'PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n', /port/],
    ['a non-ASCII byte', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\xe9\r\n', /printable/],
  ];
  for (const [name, line, reason] of malformed) {
    test(`refuses a line with ${name}`, () => refused(parseProxyHeader(text(line)), reason));
  }

  test('refuses what is not a header at all: FTP, TLS, "PROXY" without its space', () => {
    refused(parseProxyHeader(text('USER alice\r\n')), /not a PROXY protocol header/);
    refused(parseProxyHeader(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00])), /not a PROXY protocol header/);
    refused(parseProxyHeader(text('PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n')), /not a PROXY protocol header/);
    refused(parseProxyHeader(text('proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n')), /not a PROXY protocol header/);
  });
});

describe('PROXY protocol v2', () => {
  test('reads TCP over IPv4 and the header length before the client data', () => {
    const bytes = proxyV2({ source: '203.0.113.7', destination: '198.51.100.1', sourcePort: 40000, destinationPort: 990 });
    assert.equal(bytes.length, 28);
    const parsed = header(parseProxyHeader(Buffer.concat([bytes, Buffer.from([0x16, 0x03, 0x01])])));
    assert.equal(parsed.length, 28);
    assert.deepEqual(parsed.header, {
      version: 2,
      source: { address: '203.0.113.7', port: 40000 },
      destination: { address: '198.51.100.1', port: 990 },
    });
  });

  test('reads TCP over IPv6 in canonical form, an IPv4-mapped source as IPv4', () => {
    const parsed = header(parseProxyHeader(proxyV2({ source: '2001:db8:0:0:0:0:0:42', destination: '::1', sourcePort: 1, destinationPort: 21 })));
    assert.equal(parsed.length, 16 + 36);
    assert.deepEqual(parsed.header.source, { address: '2001:db8::42', port: 1 });
    assert.deepEqual(parsed.header.destination, { address: '::1', port: 21 });
    const mapped = header(parseProxyHeader(proxyV2({ source: '::ffff:a01:203', destination: '::1' })));
    assert.equal(mapped.header.source?.address, '10.1.2.3');
  });

  test('skips TLVs, counting them in the header length', () => {
    const tlvs: Array<[number, Buffer]> = [
      [0x05, Buffer.alloc(128, 7)], // unique id
      [0xea, Buffer.from('\x01vpce-0123456789abcdef0', 'latin1')], // AWS NLB's endpoint id
      [0x04, Buffer.alloc(0)], // noop
    ];
    const bytes = proxyV2({ tlvs });
    const parsed = header(parseProxyHeader(Buffer.concat([bytes, text('more')])));
    assert.equal(parsed.length, bytes.length);
    assert.equal(parsed.header.source?.address, '203.0.113.7');
  });

  test('LOCAL (a health check) keeps the connection\'s own addresses, whatever its family and length say', () => {
    for (const bytes of [proxyV2({ command: 0, familyByte: 0x00, body: Buffer.alloc(0) }), proxyV2({ command: 0 }), proxyV2({ command: 0, familyByte: 0x31, body: Buffer.alloc(5) })]) {
      const parsed = header(parseProxyHeader(bytes));
      assert.deepEqual(parsed.header, { version: 2, source: null, destination: null });
      assert.equal(parsed.length, bytes.length);
    }
  });

  test('PROXY with UNSPEC, UDP or AF_UNIX falls back to the connection\'s own addresses (spec §2.2)', () => {
    for (const familyByte of [0x00, 0x10, 0x12, 0x22, 0x31, 0x32]) {
      const bytes = proxyV2({ familyByte, body: Buffer.alloc(familyByte >> 4 === 3 ? 216 : 12) });
      assert.deepEqual(header(parseProxyHeader(bytes)).header, { version: 2, source: null, destination: null }, `0x${familyByte.toString(16)}`);
    }
  });

  test('asks for more bytes until the length field\'s bytes are all there', () => {
    const bytes = proxyV2({ source: '2001:db8::1', destination: '::1', tlvs: [[0x04, Buffer.alloc(40)]] });
    for (let n = 0; n < bytes.length; n++) assert.deepEqual(parseProxyHeader(bytes.subarray(0, n)), { kind: 'more' }, `prefix of ${n} bytes`);
    assert.equal(parseProxyHeader(bytes).kind, 'header');
  });

  test('a header up to the bound is read; a length beyond it is refused before its bytes arrive', () => {
    const atBound = proxyV2({ tlvs: [[0x04, Buffer.alloc(PROXY_V2_MAX_BYTES - 16 - 12 - 3)]] });
    assert.equal(atBound.length, PROXY_V2_MAX_BYTES);
    assert.equal(header(parseProxyHeader(atBound)).length, PROXY_V2_MAX_BYTES);
    const over = proxyV2({ tlvs: [[0x04, Buffer.alloc(PROXY_V2_MAX_BYTES - 16 - 12 - 2)]] });
    refused(parseProxyHeader(over.subarray(0, 16)), /longer than the 4096 accepted/);
    refused(parseProxyHeader(proxyV2({ length: 0xffff }).subarray(0, 16)), /longer than/);
  });

  const malformed: Array<[string, Buffer, RegExp]> = [
    ['version 1 in the binary format', proxyV2({ version: 1 }), /version 1, not 2/],
    ['version 3', proxyV2({ version: 3 }), /version 3, not 2/],
    ['an unassigned command', proxyV2({ command: 2 }), /unassigned command 2/],
    ['family 4', proxyV2({ familyByte: 0x41 }), /invalid family/],
    ['protocol 3', proxyV2({ familyByte: 0x13 }), /invalid family/],
    ['a length too short for IPv4 addresses', proxyV2({ length: 11, body: Buffer.alloc(11) }), /too short for its IPv4/],
    ['a length too short for IPv6 addresses', proxyV2({ familyByte: 0x21, body: Buffer.alloc(12) }), /too short for its IPv6/],
  ];
  for (const [name, bytes, reason] of malformed) {
    test(`refuses a header with ${name}`, () => refused(parseProxyHeader(bytes), reason));
  }

  test('refuses a bad version as soon as its byte arrives, without waiting for the rest', () => {
    refused(parseProxyHeader(Buffer.concat([V2_SIGNATURE, Buffer.from([0x11])])), /version 1/);
  });

  test('refuses a signature that differs in any byte', () => {
    const good = proxyV2();
    for (let i = 0; i < 12; i++) {
      const bad = Buffer.from(good);
      bad[i]! ^= 0x40;
      assert.equal(parseProxyHeader(bad).kind, 'invalid', `byte ${i}`);
    }
  });
});

describe('PROXY protocol header properties', () => {
  const tcp4 = fc.tuple(fc.ipV4(), fc.ipV4(), fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0, max: 65535 }));

  test('a v1 or v2 header followed by any bytes parses to the same addresses and its own length', () => {
    fc.assert(
      fc.property(tcp4, fc.boolean(), fc.uint8Array({ maxLength: 64 }), ([src, dst, sport, dport], v2, after) => {
        const bytes = v2 ? proxyV2({ source: src, destination: dst, sourcePort: sport, destinationPort: dport }) : proxyV1(src, dst, sport, dport);
        const parsed = header(parseProxyHeader(Buffer.concat([bytes, after])));
        assert.equal(parsed.length, bytes.length);
        assert.deepEqual(parsed.header.source, { address: src, port: sport });
        assert.deepEqual(parsed.header.destination, { address: dst, port: dport });
      }),
    );
  });

  test('any bytes give a verdict without throwing, and "more" only below the bounds', () => {
    const start = fc.constantFrom(Buffer.alloc(0), text('PROXY '), text('PROXY TCP4 '), V2_SIGNATURE, Buffer.concat([V2_SIGNATURE, Buffer.from([0x21])]));
    fc.assert(
      fc.property(start, fc.uint8Array({ maxLength: 300 }), (prefix, rest) => {
        const bytes = Buffer.concat([prefix, rest]);
        const result = parseProxyHeader(bytes);
        if (result.kind === 'more') assert.ok(bytes.length < PROXY_V2_MAX_BYTES);
        if (result.kind === 'more' && bytes.subarray(0, 6).equals(text('PROXY '))) assert.ok(bytes.length < PROXY_V1_MAX_BYTES);
        if (result.kind === 'header') assert.ok(result.length <= bytes.length);
      }),
      { numRuns: 2000 },
    );
  });
});
