import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import { describe, test } from 'node:test';
import fc from 'fast-check';

import {
  formatEpsvText,
  formatPasvText,
  limitKey,
  normalizeAddress,
  parseEprtArgument,
  parseEpsvArgument,
  parsePortArgument,
  sameHost,
} from '../../src/protocol/address.js';

/** Eight 16-bit groups, with zeros frequent enough to exercise "::" compression. */
const ipv6GroupsArb = fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff })), {
  minLength: 8,
  maxLength: 8,
});

const fullForm = (groups: number[]): string => groups.map((g) => g.toString(16).padStart(4, '0')).join(':');
const isMapped = (g: number[]): boolean => g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff;

describe('normalizeAddress', () => {
  test('strips the IPv4-mapped IPv6 prefix in any case', () => {
    assert.equal(normalizeAddress('::ffff:1.2.3.4'), '1.2.3.4');
    assert.equal(normalizeAddress('::FFFF:127.0.0.1'), '127.0.0.1');
    assert.equal(normalizeAddress('0:0:0:0:0:ffff:10.0.0.1'), '10.0.0.1');
  });

  test('recognises an IPv4-mapped address written in hex', () => {
    assert.equal(normalizeAddress('::ffff:7f00:1'), '127.0.0.1');
  });

  test('returns IPv4 and host names unchanged', () => {
    assert.equal(normalizeAddress('192.168.0.1'), '192.168.0.1');
    assert.equal(normalizeAddress('Example.COM'), 'Example.COM');
  });

  test('writes IPv6 in RFC 5952 canonical form', () => {
    assert.equal(normalizeAddress('0:0:0:0:0:0:0:1'), '::1');
    assert.equal(normalizeAddress('2001:DB8:0:0:1:0:0:1'), '2001:db8::1:0:0:1');
    assert.equal(normalizeAddress('2001:0db8:0000:0001:0001:0001:0001:0001'), '2001:db8:0:1:1:1:1:1');
    assert.equal(normalizeAddress('1:0:0:2:0:0:0:3'), '1:0:0:2::3');
    assert.equal(normalizeAddress('0:0:0:0:0:0:0:0'), '::');
    assert.equal(normalizeAddress('::1.2.3.4'), '::102:304');
  });

  test('keeps a zone identifier and does not unmap when one is present', () => {
    assert.equal(normalizeAddress('FE80:0:0:0:0:0:0:1%eth0'), 'fe80::1%eth0');
  });

  test('agrees with the WHATWG URL serializer on every non-mapped IPv6 address', () => {
    fc.assert(
      fc.property(ipv6GroupsArb, (groups) => {
        fc.pre(!isMapped(groups));
        const expected = new URL(`http://[${fullForm(groups)}]/`).hostname.slice(1, -1);
        assert.equal(normalizeAddress(fullForm(groups)), expected);
      }),
    );
  });

  test('is idempotent and always yields a valid address', () => {
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), (addr) => {
        const once = normalizeAddress(addr);
        assert.notEqual(isIP(once), 0);
        assert.equal(normalizeAddress(once), once);
      }),
    );
  });
});

describe('sameHost', () => {
  test('treats an IPv4-mapped address as its IPv4 address', () => {
    assert.equal(sameHost('::ffff:127.0.0.1', '127.0.0.1'), true);
    assert.equal(sameHost('::ffff:127.0.0.1', '127.0.0.2'), false);
  });

  test('compares IPv6 regardless of spelling', () => {
    assert.equal(sameHost('::1', '0:0:0:0:0:0:0:1'), true);
    assert.equal(sameHost('2001:DB8::1', '2001:db8:0:0:0:0:0:0001'), true);
    assert.equal(sameHost('::1', '::2'), false);
    assert.equal(sameHost('::1', '127.0.0.1'), false);
  });

  test('holds between the full form and the canonical form of any IPv6 address', () => {
    fc.assert(
      fc.property(ipv6GroupsArb, (groups) => {
        const full = fullForm(groups);
        assert.equal(sameHost(full, full.toUpperCase()), true);
        assert.equal(sameHost(full, normalizeAddress(full)), true);
      }),
    );
  });
});

describe('parsePortArgument', () => {
  test('decodes h1,h2,h3,h4,p1,p2', () => {
    assert.deepEqual(parsePortArgument('127,0,0,1,4,1'), { host: '127.0.0.1', port: 1025 });
    assert.deepEqual(parsePortArgument('192,168,1,10,195,80'), { host: '192.168.1.10', port: 50000 });
  });

  test('tolerates spaces around the argument and around fields', () => {
    assert.deepEqual(parsePortArgument('  10, 0 ,0,1,0,21 '), { host: '10.0.0.1', port: 21 });
  });

  test('writes octets without leading zeros', () => {
    assert.deepEqual(parsePortArgument('010,000,000,001,000,021'), { host: '10.0.0.1', port: 21 });
  });

  for (const bad of [
    '',
    '1,2,3,4,5',
    '1,2,3,4,5,6,7',
    '256,0,0,1,0,21',
    '1,2,3,4,256,0',
    '1,2,3,4,0,0',
    '1,2,3,4,a,1',
    '-1,2,3,4,5,6',
    '1,2,3,4,1,1.5',
    '1,2,3,4,,1',
    '0x1,2,3,4,5,6',
    '1e2,2,3,4,5,6',
    '1,2,3,4,0001,1',
    '1 2,3,4,5,6,7',
    '1.2.3.4.5.6',
  ]) {
    test(`rejects ${JSON.stringify(bad)}`, () => {
      assert.equal(parsePortArgument(bad), null);
    });
  }
});

describe('formatPasvText', () => {
  test('encodes host and port as six decimal fields', () => {
    assert.equal(formatPasvText('192.168.1.10', 50000), 'Entering Passive Mode (192,168,1,10,195,80).');
    assert.equal(formatPasvText('10.0.0.1', 21), 'Entering Passive Mode (10,0,0,1,0,21).');
  });

  test('accepts an IPv4-mapped host', () => {
    assert.equal(formatPasvText('::ffff:10.0.0.1', 256), 'Entering Passive Mode (10,0,0,1,1,0).');
  });

  test('throws a TypeError for hosts PASV cannot express', () => {
    assert.throws(() => formatPasvText('::1', 21), TypeError);
    assert.throws(() => formatPasvText('localhost', 21), TypeError);
    assert.throws(() => formatPasvText('1.2.3', 21), TypeError);
  });

  test('throws a RangeError for an impossible port', () => {
    assert.throws(() => formatPasvText('10.0.0.1', 65536), RangeError);
    assert.throws(() => formatPasvText('10.0.0.1', 1.5), RangeError);
  });

  test('round-trips through parsePortArgument for every host and port', () => {
    fc.assert(
      fc.property(fc.ipV4(), fc.integer({ min: 1, max: 65535 }), (host, port) => {
        const text = formatPasvText(host, port);
        const inner = /\(([^)]*)\)\.$/.exec(text)?.[1];
        assert.ok(inner);
        assert.deepEqual(parsePortArgument(inner), { host, port });
      }),
    );
  });
});

describe('parseEprtArgument', () => {
  test('decodes the RFC 2428 examples', () => {
    assert.deepEqual(parseEprtArgument('|1|132.235.1.2|6275|'), { family: 1, host: '132.235.1.2', port: 6275 });
    assert.deepEqual(parseEprtArgument('|2|1080::8:800:200C:417A|5282|'), {
      family: 2,
      host: '1080::8:800:200c:417a',
      port: 5282,
    });
  });

  test('accepts any printable delimiter and surrounding spaces', () => {
    assert.deepEqual(parseEprtArgument('!1!10.0.0.1!21!'), { family: 1, host: '10.0.0.1', port: 21 });
    assert.deepEqual(parseEprtArgument(' ~2~::1~65535~ '), { family: 2, host: '::1', port: 65535 });
  });

  test('normalises an IPv4-mapped address given as protocol 2', () => {
    assert.deepEqual(parseEprtArgument('|2|::ffff:1.2.3.4|21|'), { family: 2, host: '1.2.3.4', port: 21 });
  });

  test('reports an unknown protocol number as a protocol error', () => {
    assert.deepEqual(parseEprtArgument('|3|1.2.3.4|21|'), { error: 'protocol' });
    assert.deepEqual(parseEprtArgument('|99|junk|junk|'), { error: 'protocol' });
  });

  for (const bad of [
    '',
    '|',
    '|1|1.2.3.4|21',
    '|1|1.2.3.4|21|x',
    '|1|1.2.3.4|0|',
    '|1|1.2.3.4|65536|',
    '|1|1.2.3.4||',
    '|1|1.2.3.4|-1|',
    '|1|1.2.3.4|2a|',
    '|1|::1|21|',
    '|2|1.2.3.4|21|',
    '|1|01.2.3.4|21|',
    '|1|1.2.3|21|',
    '|x|1.2.3.4|21|',
    '||1.2.3.4|21|',
    '|2|fe80::1%eth0|21|',
    '\x7f1\x7f1.2.3.4\x7f21\x7f',
    '\u00e91\u00e91.2.3.4\u00e921\u00e9',
  ]) {
    test(`rejects ${JSON.stringify(bad)} as a syntax error`, () => {
      assert.deepEqual(parseEprtArgument(bad), { error: 'syntax' });
    });
  }

  test('round-trips any IPv4 or IPv6 address and port', () => {
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), fc.integer({ min: 1, max: 65535 }), (host, port) => {
        const family = isIP(host) === 4 ? 1 : 2;
        const result = parseEprtArgument(`|${family}|${host}|${port}|`);
        assert.ok('host' in result);
        assert.equal(result.family, family);
        assert.equal(result.port, port);
        assert.equal(sameHost(result.host, host), true);
      }),
    );
  });
});

describe('formatEpsvText', () => {
  test('writes the port between |||and |', () => {
    assert.equal(formatEpsvText(50000), 'Entering Extended Passive Mode (|||50000|)');
  });

  test('throws a RangeError for an impossible port', () => {
    assert.throws(() => formatEpsvText(0), RangeError);
    assert.throws(() => formatEpsvText(70000), RangeError);
  });
});

describe('parseEpsvArgument', () => {
  test('returns null without an argument', () => {
    assert.equal(parseEpsvArgument(''), null);
    assert.equal(parseEpsvArgument('   '), null);
  });

  test('recognises ALL in any case', () => {
    assert.equal(parseEpsvArgument('ALL'), 'all');
    assert.equal(parseEpsvArgument('all'), 'all');
    assert.equal(parseEpsvArgument(' All '), 'all');
  });

  test('returns the protocol number for 1 and 2', () => {
    assert.equal(parseEpsvArgument('1'), 1);
    assert.equal(parseEpsvArgument('2'), 2);
  });

  test('reports other numbers and junk as protocol errors', () => {
    for (const arg of ['3', '0', '01', '12', 'foo', 'ALLX', '|||']) {
      assert.deepEqual(parseEpsvArgument(arg), { error: 'protocol' }, arg);
    }
  });
});

test('limitKey: an IPv4 address is its own key; an IPv6 one is its /64 in RFC 5952 form, however written', () => {
  assert.equal(limitKey('198.51.100.7'), '198.51.100.7');
  assert.equal(limitKey('2001:db8:1:2::5'), '2001:db8:1:2::/64');
  assert.equal(limitKey('2001:0db8:0001:0002:ffff:0:0:9'), '2001:db8:1:2::/64');
  assert.equal(limitKey('::1'), '::/64');
  assert.equal(limitKey('fe80::1%eth0'), 'fe80::/64');
  assert.equal(limitKey('2001:db8::1:2:3:4'), '2001:db8::/64');
  fc.assert(
    fc.property(ipv6GroupsArb, ipv6GroupsArb, (a, b) => {
      const sameSlash64 = a.slice(0, 4).every((g, i) => g === b[i]);
      return (limitKey(fullForm(a)) === limitKey(fullForm(b))) === sameSlash64;
    }),
  );
});
