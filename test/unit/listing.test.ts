import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';

import type { Permission } from '../../src/auth/types.js';
import {
  MLSX_FACTS,
  formatFeatMlst,
  formatListLine,
  formatMlsxEntry,
  formatMlsxTime,
  mlsxEntryFormatter,
  mlsxPermFact,
  parseMlsxTime,
  parseOptsMlst,
  type MlsxFact,
} from '../../src/protocol/listing.js';
import type { FileInfo } from '../../src/storage/types.js';

const NOW = new Date('2026-11-21T12:00:00Z');
const HOUR = 60 * 60 * 1000;
const DAY = 24 * HOUR;

function file(overrides: Partial<FileInfo> = {}): FileInfo {
  return { name: 'notes.txt', type: 'file', size: 12, mtime: new Date('2026-11-21T08:30:00Z'), ...overrides };
}

/** The Date-based formatting the fast formatters replaced: the reference for their output. */
const MONTH_NAMES = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const p2 = (n: number): string => String(n).padStart(2, '0');
function referenceMlsxTime(d: Date): string {
  return (
    String(d.getUTCFullYear()).padStart(4, '0') +
    p2(d.getUTCMonth() + 1) +
    p2(d.getUTCDate()) +
    p2(d.getUTCHours()) +
    p2(d.getUTCMinutes()) +
    p2(d.getUTCSeconds())
  );
}
/** The date columns of a LIST line: `Mmm dd HH:MM` or `Mmm dd  YYYY`. */
function referenceListDate(d: Date, recent: boolean): string {
  const when = recent ? `${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}` : String(d.getUTCFullYear()).padStart(5, ' ');
  return `${MONTH_NAMES[d.getUTCMonth()]} ${String(d.getUTCDate()).padStart(2, ' ')} ${when}`;
}
/** Every time a Date can hold, in ms. */
const anyTime = fc.integer({ min: -8.64e15, max: 8.64e15 });

/** Everything before the name is fixed-width while the size has at most 13 digits. */
const LIST_PREFIX_LENGTH = 'drwxr-xr-x 1 ftp ftp          4096 Nov 21 08:30 '.length;
const LIST_DATE_START = 'drwxr-xr-x 1 ftp ftp          4096 '.length;

describe('formatListLine', () => {
  test('formats a recent directory like ls -l', () => {
    const line = formatListLine({ name: 'pub', type: 'dir', size: 4096, mtime: new Date('2026-11-21T08:30:00Z') }, NOW);
    assert.equal(line, 'drwxr-xr-x 1 ftp ftp          4096 Nov 21 08:30 pub');
  });

  test('shows the year for a file older than 180 days', () => {
    const line = formatListLine(file({ mode: 0o600, mtime: new Date('2024-03-05T17:45:00Z') }), NOW);
    assert.equal(line, '-rw------- 1 ftp ftp            12 Mar  5  2024 notes.txt');
  });

  test('defaults the mode to 0644 for files and 0777 for symlinks', () => {
    assert.equal(formatListLine(file(), NOW), '-rw-r--r-- 1 ftp ftp            12 Nov 21 08:30 notes.txt');
    assert.match(formatListLine(file({ type: 'symlink' }), NOW), /^lrwxrwxrwx /);
  });

  test('ignores file-type bits in the mode and shows setuid, setgid and sticky bits', () => {
    assert.match(formatListLine(file({ mode: 0o100755 }), NOW), /^-rwxr-xr-x /);
    assert.match(formatListLine(file({ mode: 0o4755 }), NOW), /^-rwsr-xr-x /);
    assert.match(formatListLine(file({ mode: 0o4644 }), NOW), /^-rwSr--r-- /);
    assert.match(formatListLine(file({ mode: 0o2750 }), NOW), /^-rwxr-s--- /);
    assert.match(formatListLine(file({ type: 'dir', mode: 0o1777 }), NOW), /^drwxrwxrwt /);
    assert.match(formatListLine(file({ type: 'dir', mode: 0o1776 }), NOW), /^drwxrwxrwT /);
  });

  test('switches from time to year exactly at 180 days', () => {
    const justRecent = formatListLine(file({ mtime: new Date(NOW.getTime() - 180 * DAY + 60_000) }), NOW);
    const justOld = formatListLine(file({ mtime: new Date(NOW.getTime() - 180 * DAY) }), NOW);
    assert.match(justRecent, / May 25 12:01 notes\.txt$/);
    assert.match(justOld, / May 25  2026 notes\.txt$/);
  });

  test('shows the time up to one hour in the future and the year beyond', () => {
    assert.match(formatListLine(file({ mtime: new Date(NOW.getTime() + HOUR) }), NOW), / Nov 21 13:00 notes\.txt$/);
    assert.match(formatListLine(file({ mtime: new Date(NOW.getTime() + 2 * HOUR) }), NOW), / Nov 21  2026 notes\.txt$/);
  });

  test('pads single-digit days with a space', () => {
    assert.match(formatListLine(file({ mtime: new Date('2026-11-01T00:05:00Z') }), NOW), / Nov  1 00:05 notes\.txt$/);
  });

  test('does not depend on the server time zone', () => {
    const saved = process.env.TZ;
    try {
      process.env.TZ = 'Pacific/Kiritimati';
      const a = formatListLine(file({ mtime: new Date('2026-11-21T11:30:00Z') }), NOW);
      process.env.TZ = 'America/Los_Angeles';
      const b = formatListLine(file({ mtime: new Date('2026-11-21T11:30:00Z') }), NOW);
      assert.equal(a, b);
      assert.match(a, / Nov 21 11:30 notes\.txt$/);
    } finally {
      if (saved === undefined) delete process.env.TZ;
      else process.env.TZ = saved;
    }
  });

  test('right-aligns large sizes and shows a bad size as 0', () => {
    assert.match(formatListLine(file({ size: 1234567890123 }), NOW), / ftp ftp 1234567890123 Nov/);
    assert.match(formatListLine(file({ size: Number.NaN }), NOW), / ftp ftp {13}0 Nov/);
  });

  test('shows an invalid modification time as the epoch', () => {
    assert.match(formatListLine(file({ mtime: new Date(Number.NaN) }), NOW), / Jan  1  1970 notes\.txt$/);
  });

  test('appends awkward names verbatim', () => {
    for (const name of [' leading space', 'trailing ', '-rf', '"quoted"', "it's", 'a  b', 'ünïcødé 文件 🚀', 'x -> y']) {
      const line = formatListLine(file({ name }), NOW);
      assert.equal(line.slice(LIST_PREFIX_LENGTH), name);
    }
  });

  test('formats day, month and year boundaries, leap days, pre-1970 and far-future times', () => {
    const cases: [string, string][] = [
      ['2026-12-31T23:59:59.999Z', 'Dec 31  2026'],
      ['2027-01-01T00:00:00.000Z', 'Jan  1  2027'],
      ['2024-02-29T12:00:00Z', 'Feb 29  2024'],
      ['2000-02-29T00:00:00Z', 'Feb 29  2000'],
      ['1900-02-28T23:59:59Z', 'Feb 28  1900'],
      ['1900-03-01T00:00:00Z', 'Mar  1  1900'],
      ['1969-12-31T23:59:59.999Z', 'Dec 31  1969'],
      ['1901-12-13T20:45:52Z', 'Dec 13  1901'],
      ['9999-12-31T23:59:59Z', 'Dec 31  9999'],
      ['+010000-01-01T00:00:00Z', 'Jan  1 10000'],
    ];
    for (const [iso, date] of cases) {
      assert.equal(formatListLine(file({ mtime: new Date(iso) }), NOW), `-rw-r--r-- 1 ftp ftp            12 ${date} notes.txt`, iso);
    }
    const recentNow = new Date('2027-01-01T00:30:00Z');
    assert.match(formatListLine(file({ mtime: new Date('2026-12-31T23:59:59.999Z') }), recentNow), / Dec 31 23:59 notes\.txt$/);
    assert.match(formatListLine(file({ mtime: new Date('2027-01-01T00:00:00Z') }), recentNow), / Jan  1 00:00 notes\.txt$/);
  });

  test('shows sizes beyond 2^32 exactly', () => {
    assert.match(formatListLine(file({ size: 2 ** 32 + 1 }), NOW), / ftp ftp    4294967297 Nov/);
    assert.match(formatListLine(file({ size: 2 ** 53 - 1 }), NOW), / ftp ftp 9007199254740991 Nov/);
  });

  test('writes the same date columns as the Date getters, for any time and any now', () => {
    fc.assert(
      fc.property(anyTime, anyTime, (t, nowMs) => {
        const age = nowMs - t;
        const recent = age < 180 * DAY && age >= -HOUR;
        const line = formatListLine(file({ mtime: new Date(t) }), new Date(nowMs));
        assert.equal(line.slice(LIST_DATE_START, -' notes.txt'.length), referenceListDate(new Date(t), recent));
      }),
      { numRuns: 20_000 },
    );
  });

  test('the name part is exactly the name for any name, size and date', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'grapheme', minLength: 1 }),
        fc.constantFrom<FileInfo['type']>('file', 'dir', 'symlink'),
        fc.integer({ min: 0, max: 9_999_999_999_999 }),
        fc.date({ min: new Date('1970-01-01T00:00:00Z'), max: new Date('2100-12-31T23:59:59Z'), noInvalidDate: true }),
        fc.option(fc.integer({ min: 0, max: 0o7777 }), { nil: undefined }),
        (name, type, size, mtime, mode) => {
          const line = formatListLine({ name, type, size, mtime, mode }, NOW);
          assert.equal(line.slice(LIST_PREFIX_LENGTH), name);
          assert.match(
            line.slice(0, LIST_PREFIX_LENGTH),
            /^[-dl][-r][-w][-xsS][-r][-w][-xsS][-r][-w][-xtT] 1 ftp ftp +\d+ (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ 123]\d (\d\d:\d\d| \d{4}) $/,
          );
        },
      ),
    );
  });
});

describe('formatMlsxTime', () => {
  test('writes YYYYMMDDHHMMSS in UTC', () => {
    assert.equal(formatMlsxTime(new Date('2026-11-21T08:30:00Z')), '20261121083000');
    assert.equal(formatMlsxTime(new Date(0)), '19700101000000');
  });

  test('drops milliseconds so that 14-digit parsers read it', () => {
    assert.equal(formatMlsxTime(new Date('2026-11-21T08:30:00.005Z')), '20261121083000');
    assert.equal(formatMlsxTime(new Date('2026-11-21T08:30:00.999Z')), '20261121083000');
  });
  test('formats day, month and year boundaries, leap days, pre-1970 and far-future times', () => {
    const cases: [string, string][] = [
      ['2026-12-31T23:59:59.999Z', '20261231235959'],
      ['2027-01-01T00:00:00.000Z', '20270101000000'],
      ['2024-02-28T23:59:59Z', '20240228235959'],
      ['2024-02-29T00:00:00Z', '20240229000000'],
      ['2024-03-01T00:00:00Z', '20240301000000'],
      ['2023-02-28T23:59:59Z', '20230228235959'],
      ['2023-03-01T00:00:00Z', '20230301000000'],
      ['2000-02-29T12:34:56Z', '20000229123456'],
      ['1900-02-28T23:59:59Z', '19000228235959'],
      ['1900-03-01T00:00:00Z', '19000301000000'],
      ['2100-02-28T23:59:59Z', '21000228235959'],
      ['2100-03-01T00:00:00Z', '21000301000000'],
      ['1969-12-31T23:59:59.999Z', '19691231235959'],
      ['1969-12-31T00:00:00Z', '19691231000000'],
      ['1901-12-13T20:45:52Z', '19011213204552'],
      ['0001-01-01T00:00:00Z', '00010101000000'],
      ['2038-01-19T03:14:08Z', '20380119031408'],
      ['2106-02-07T06:28:16Z', '21060207062816'],
      ['9999-12-31T23:59:59.999Z', '99991231235959'],
    ];
    for (const [iso, text] of cases) assert.equal(formatMlsxTime(new Date(iso)), text, iso);
  });

  test('writes the same text as the Date getters for any time a Date can hold', () => {
    fc.assert(
      fc.property(anyTime, (t) => {
        assert.equal(formatMlsxTime(new Date(t)), referenceMlsxTime(new Date(t)));
      }),
      { numRuns: 50_000 },
    );
  });

  test('gives each time its own day when consecutive times change day', () => {
    const times = ['2026-11-21T23:59:59Z', '2026-11-22T00:00:00Z', '2026-11-21T00:00:00Z', '1969-12-31T23:59:59Z', '2026-11-21T12:00:00Z'];
    for (let round = 0; round < 2; round++) {
      for (const iso of times) assert.equal(formatMlsxTime(new Date(iso)), referenceMlsxTime(new Date(iso)), iso);
    }
  });
});

describe('parseMlsxTime', () => {
  test('parses a time-val as UTC', () => {
    assert.equal(parseMlsxTime('20261121083000')?.toISOString(), '2026-11-21T08:30:00.000Z');
    assert.equal(parseMlsxTime('20240229235959')?.toISOString(), '2024-02-29T23:59:59.000Z');
  });

  test('reads a fraction as milliseconds, truncating extra digits', () => {
    assert.equal(parseMlsxTime('20261121083000.5')?.toISOString(), '2026-11-21T08:30:00.500Z');
    assert.equal(parseMlsxTime('20261121083000.123456')?.toISOString(), '2026-11-21T08:30:00.123Z');
  });

  test('does not map two-digit years to the 1900s', () => {
    assert.equal(parseMlsxTime('00500101000000')?.getUTCFullYear(), 50);
  });

  test('folds a leap second into the next minute', () => {
    assert.equal(parseMlsxTime('20261231235960')?.toISOString(), '2027-01-01T00:00:00.000Z');
  });

  for (const bad of [
    '',
    '2026112108300',
    '202611210830000',
    '20261121083000.',
    '20261121083000Z',
    ' 20261121083000',
    '20261121083000 ',
    '2026-11-21T08:30:00',
    '20231301000000',
    '20230001000000',
    '20231100000000',
    '20231131000000',
    '20230229000000',
    '19000229000000',
    '20261121240000',
    '20261121236000',
    '20261121235961',
    '+0261121083000',
    '２0261121083000',
  ]) {
    test(`rejects ${JSON.stringify(bad)}`, () => {
      assert.equal(parseMlsxTime(bad), null);
    });
  }

  test('round-trips formatMlsxTime for whole-second dates in 1970..2100', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: Date.UTC(2100, 11, 31, 23, 59, 59) / 1000 }), (seconds) => {
        const d = new Date(seconds * 1000);
        assert.equal(parseMlsxTime(formatMlsxTime(d))?.getTime(), d.getTime());
      }),
    );
  });

  test('formatMlsxTime then parseMlsxTime truncates to the second', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: Date.UTC(2100, 11, 31, 23, 59, 59, 999) }), (ms) => {
        const d = new Date(ms);
        assert.equal(parseMlsxTime(formatMlsxTime(d))?.getTime(), ms - (ms % 1000));
      }),
    );
  });
});

const allowing =
  (letters: string) =>
  (p: Permission): boolean =>
    letters.includes(p);

describe('mlsxPermFact', () => {
  test('lists every file permission when all are granted', () => {
    assert.equal(mlsxPermFact(file(), allowing('elradfmwMT')), 'adfrw');
  });

  test('lists every directory permission when all are granted', () => {
    assert.equal(mlsxPermFact(file({ type: 'dir' }), allowing('elradfmwMT')), 'elcmdfp');
  });

  test('reflects a read-only account', () => {
    assert.equal(mlsxPermFact(file(), allowing('elr')), 'r');
    assert.equal(mlsxPermFact(file({ type: 'dir' }), allowing('elr')), 'el');
  });

  test('maps store to c on directories and delete to d and p', () => {
    assert.equal(mlsxPermFact(file({ type: 'dir' }), allowing('w')), 'c');
    assert.equal(mlsxPermFact(file({ type: 'dir' }), allowing('d')), 'dp');
    assert.equal(mlsxPermFact(file(), allowing('a')), 'a');
  });

  test('is empty without permissions', () => {
    assert.equal(mlsxPermFact(file(), allowing('')), '');
  });
});

const ALL = new Set<MlsxFact>(MLSX_FACTS);

describe('formatMlsxEntry', () => {
  test('writes every fact in order, then a space and the name', () => {
    const info = file({ name: 'name', mode: 0o644, id: '803g1a2' });
    assert.equal(
      formatMlsxEntry(info, ALL, 'adfrw'),
      'type=file;size=12;modify=20261121083000;perm=adfrw;unique=803g1a2;unix.mode=0644; name',
    );
  });

  test('writes only the selected facts, in canonical order whatever the set order', () => {
    const facts = new Set<MlsxFact>(['perm', 'type']);
    assert.equal(formatMlsxEntry(file(), facts, 'r'), 'type=file;perm=r; notes.txt');
  });

  test('writes just a space and the name when no fact is selected', () => {
    assert.equal(formatMlsxEntry(file(), new Set(), 'r'), ' notes.txt');
  });

  test('omits unique without an id and unix.mode without a mode', () => {
    assert.equal(formatMlsxEntry(file(), ALL, ''), 'type=file;size=12;modify=20261121083000;perm=; notes.txt');
  });

  test('names directories, symlinks and the cdir/pdir overrides', () => {
    const dir = file({ name: 'pub', type: 'dir', size: 0 });
    const only = new Set<MlsxFact>(['type']);
    assert.equal(formatMlsxEntry(dir, only, ''), 'type=dir; pub');
    assert.equal(formatMlsxEntry(file({ type: 'symlink' }), only, ''), 'type=OS.unix=symlink; notes.txt');
    assert.equal(formatMlsxEntry(dir, only, '', 'cdir'), 'type=cdir; pub');
    assert.equal(formatMlsxEntry(dir, only, '', 'pdir'), 'type=pdir; pub');
  });

  test('writes unix.mode as four octal digits without file-type bits', () => {
    const only = new Set<MlsxFact>(['unix.mode']);
    assert.equal(formatMlsxEntry(file({ mode: 0o100755 }), only, ''), 'unix.mode=0755; notes.txt');
    assert.equal(formatMlsxEntry(file({ mode: 0o4750 }), only, ''), 'unix.mode=4750; notes.txt');
    assert.equal(formatMlsxEntry(file({ mode: 0 }), only, ''), 'unix.mode=0000; notes.txt');
  });

  test('writes modify in whole seconds', () => {
    const only = new Set<MlsxFact>(['modify']);
    const info = file({ mtime: new Date('2026-11-21T08:30:00.125Z') });
    assert.equal(formatMlsxEntry(info, only, ''), 'modify=20261121083000; notes.txt');
  });

  test('hex-encodes a unique id that would break the fact list', () => {
    const only = new Set<MlsxFact>(['unique']);
    assert.equal(formatMlsxEntry(file({ id: 'a;b c' }), only, ''), 'unique=613b622063; notes.txt');
    assert.equal(formatMlsxEntry(file({ id: '"etag-1"' }), only, ''), 'unique="etag-1"; notes.txt');
  });

  test('writes sizes beyond 2^32 exactly', () => {
    const only = new Set<MlsxFact>(['size']);
    assert.equal(formatMlsxEntry(file({ size: 2 ** 32 + 12_345 }), only, ''), 'size=4294979641; notes.txt');
    assert.equal(formatMlsxEntry(file({ size: 2 ** 53 - 1 }), only, ''), 'size=9007199254740991; notes.txt');
  });

  test('writes modify for pre-1970 and far-future times, and omits it for an invalid one', () => {
    const only = new Set<MlsxFact>(['modify']);
    assert.equal(formatMlsxEntry(file({ mtime: new Date('1969-07-20T20:17:40Z') }), only, ''), 'modify=19690720201740; notes.txt');
    assert.equal(formatMlsxEntry(file({ mtime: new Date('2999-12-31T23:59:59Z') }), only, ''), 'modify=29991231235959; notes.txt');
    assert.equal(formatMlsxEntry(file({ mtime: new Date(Number.NaN) }), only, ''), ' notes.txt');
  });

  test('a formatter made once per fact set writes what formatMlsxEntry writes', () => {
    fc.assert(
      fc.property(
        fc.subarray([...MLSX_FACTS]),
        fc.array(
          fc.record({
            type: fc.constantFrom<FileInfo['type']>('file', 'dir', 'symlink'),
            size: fc.oneof(fc.nat({ max: 2 ** 53 - 1 }), fc.constant(Number.NaN), fc.constant(-1)),
            t: anyTime,
            mode: fc.option(fc.nat({ max: 0o177777 }), { nil: undefined }),
            id: fc.option(fc.string(), { nil: undefined }),
          }),
          { minLength: 1, maxLength: 20 },
        ),
        (facts, entries) => {
          const set = new Set(facts);
          const format = mlsxEntryFormatter(set);
          for (const { type, size, t, mode, id } of entries) {
            const info: FileInfo = { name: 'n', type, size, mtime: new Date(t), mode, id };
            assert.equal(format(info, 'r'), formatMlsxEntry(info, set, 'r'));
            assert.equal(format(info, 'el', 'cdir'), formatMlsxEntry(info, set, 'el', 'cdir'));
          }
        },
      ),
    );
  });

  test('keeps the name verbatim and the facts free of spaces for any name and id', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'grapheme', minLength: 1 }),
        fc.option(fc.string({ unit: 'grapheme' }), { nil: undefined }),
        fc.subarray([...MLSX_FACTS]),
        (name, id, facts) => {
          const entry = formatMlsxEntry(file({ name, id, mode: 0o640 }), new Set(facts), 'r');
          const space = entry.indexOf(' ');
          assert.equal(entry.slice(space + 1), name);
          const factText = entry.slice(0, space);
          assert.match(factText, /^([a-z.]+=[^; \r\n]*;)*$/);
          assert.deepEqual(
            factText
              .split(';')
              .filter(Boolean)
              .map((f) => f.slice(0, f.indexOf('='))),
            MLSX_FACTS.filter((f) => facts.includes(f)).filter((f) => f !== 'unique' || (id !== undefined && id !== '')),
          );
        },
      ),
    );
  });
});

describe('formatFeatMlst', () => {
  test('lists every fact and stars the enabled ones', () => {
    assert.equal(formatFeatMlst(new Set(['type', 'size', 'modify'])), 'type*;size*;modify*;perm;unique;unix.mode;');
    assert.equal(formatFeatMlst(ALL), 'type*;size*;modify*;perm*;unique*;unix.mode*;');
    assert.equal(formatFeatMlst(new Set()), 'type;size;modify;perm;unique;unix.mode;');
  });
});

describe('parseOptsMlst', () => {
  test('selects the named facts', () => {
    assert.deepEqual(parseOptsMlst('type;size;'), new Set(['type', 'size']));
  });

  test('is case-insensitive and ignores unknown facts', () => {
    assert.deepEqual(parseOptsMlst('TYPE;Size;media-type;UNIX.mode;bogus'), new Set(['type', 'size', 'unix.mode']));
  });

  test('returns an empty set for an empty list', () => {
    assert.deepEqual(parseOptsMlst(''), new Set());
    assert.deepEqual(parseOptsMlst(';;'), new Set());
  });

  test('round-trips the enabled facts through the FEAT line', () => {
    fc.assert(
      fc.property(fc.subarray([...MLSX_FACTS]), (facts) => {
        const feat = formatFeatMlst(new Set(facts));
        const starred = feat
          .split(';')
          .filter((f) => f.endsWith('*'))
          .map((f) => f.slice(0, -1))
          .join(';');
        assert.deepEqual(parseOptsMlst(starred), new Set(facts));
      }),
    );
  });
});
