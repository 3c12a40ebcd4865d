/**
 * Directory listing formats: the `ls -l` lines of LIST (RFC 959 §4.1.3 leaves
 * the format open; every client parses the Unix one) and the machine-readable
 * facts of MLSD/MLST (RFC 3659 §7), plus the MDTM/MFMT time format
 * (RFC 3659 §2.3).
 *
 * Pure and allocation-light: the session calls these once per directory
 * entry, possibly a million times for one listing. Lines carry no CRLF; the
 * caller joins them. All times are UTC, so a listing is the same whatever the
 * server's time zone.
 */
import type { Permission } from '../auth/types.js';
import type { FileInfo } from '../storage/types.js';

// ---------------------------------------------------------------------------
// LIST

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'] as const;

/** Like GNU ls: older than this, or in the future beyond the slack, shows the year. */
const RECENT_MS = 180 * 24 * 60 * 60 * 1000;
const FUTURE_SLACK_MS = 60 * 60 * 1000;

/** Size column width: 13 digits hold 9.9 TB and keep columns aligned for clients that split on position. */
const SIZE_WIDTH = 13;

// ---------------------------------------------------------------------------
// UTC calendar arithmetic without a Date per entry
//
// A listing formats one time per entry. Building a Date and calling six
// getUTC* methods on it, then padding each part, was the largest part of
// formatting an entry. Here the day (Y-M-D) is computed from the day number
// with integer arithmetic and its strings are kept for the next entry (files
// of one directory mostly share a day), and the time of day comes from a
// table of two-digit strings.

/** "00" .. "99". */
const TWO_DIGITS: readonly string[] = Array.from({ length: 100 }, (_, i) => (i < 10 ? `0${i}` : String(i)));

/** One UTC calendar day and the strings the formats need from it. */
class UtcDay {
  /** YYYYMMDD as in an RFC 3659 time-val (the year zero-padded to 4 digits, like before). */
  readonly mlsx: string;
  /** `Mmm dd` for LIST (day space-padded). */
  readonly list: string;
  /** The year right-aligned in 5 columns, for LIST entries that are not recent. */
  readonly listYear: string;

  constructor(readonly day: number) {
    // Howard Hinnant's civil_from_days: proleptic Gregorian, any day number.
    const z = day + 719_468;
    const era = Math.floor(z / 146_097);
    const doe = z - era * 146_097;
    const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365);
    const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
    const mp = Math.floor((5 * doy + 2) / 153);
    const dom = doy - Math.floor((153 * mp + 2) / 5) + 1;
    const month = mp < 10 ? mp + 3 : mp - 9;
    const year = yoe + era * 400 + (month <= 2 ? 1 : 0);
    this.mlsx = String(year).padStart(4, '0') + TWO_DIGITS[month]! + TWO_DIGITS[dom]!;
    this.list = `${MONTHS[month - 1]!} ${dom < 10 ? ' ' : ''}${dom}`;
    this.listYear = String(year).padStart(5, ' ');
  }
}

let lastDay = new UtcDay(0);

/** The UtcDay of a day number (days since 1970-01-01), reusing the last one asked for. */
function utcDay(day: number): UtcDay {
  if (day !== lastDay.day) lastDay = new UtcDay(day);
  return lastDay;
}

/**
 * `YYYYMMDDHHMMSS` for a time in ms since the epoch (finite, within the range
 * of a Date), whole seconds: the same text as from a Date's getUTC* parts.
 */
function mlsxTimeOfMs(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  const day = Math.floor(seconds / 86_400);
  let rest = seconds - day * 86_400;
  const hours = Math.floor(rest / 3600);
  rest -= hours * 3600;
  const minutes = Math.floor(rest / 60);
  return utcDay(day).mlsx + TWO_DIGITS[hours]! + TWO_DIGITS[minutes]! + TWO_DIGITS[rest - minutes * 60]!;
}

function defaultMode(info: FileInfo): number {
  if (info.type === 'dir') return 0o755;
  if (info.type === 'symlink') return 0o777;
  return 0o644;
}

/** "rwxr-xr-x" for the permission bits, with s/S/t/T for setuid, setgid and sticky as ls shows them. */
function modeString(mode: number): string {
  const bit = (mask: number, ch: string): string => (mode & mask ? ch : '-');
  const special = (exec: number, flag: number, on: string): string => {
    if (mode & flag) return mode & exec ? on : on.toUpperCase();
    return mode & exec ? 'x' : '-';
  };
  return (
    bit(0o400, 'r') +
    bit(0o200, 'w') +
    special(0o100, 0o4000, 's') +
    bit(0o040, 'r') +
    bit(0o020, 'w') +
    special(0o010, 0o2000, 's') +
    bit(0o004, 'r') +
    bit(0o002, 'w') +
    special(0o001, 0o1000, 't')
  );
}

/** modeString per permission value (0 .. 0o7777), filled on first use. */
const MODE_STRINGS: string[] = [];

/** A Date we can format; an invalid one (a backend bug) shows as the epoch rather than "NaN". */
function validTime(d: Date): number {
  const t = d.getTime();
  return Number.isNaN(t) ? 0 : t;
}

/**
 * One LIST line, without CRLF:
 * `drwxr-xr-x 1 ftp ftp          4096 Nov 21 08:30 name`.
 *
 * Owner and group are always `ftp` so real account names never leak. The
 * date is `Mmm dd HH:MM` for times in the last 180 days (up to one hour
 * ahead, for clock skew) and `Mmm dd  YYYY` otherwise, as GNU ls prints
 * them. The name is appended verbatim: spaces, quotes, leading dashes and
 * non-ASCII are left alone, since clients take everything after the time
 * column as the name.
 */
export function formatListLine(info: FileInfo, now: Date): string {
  const typeChar = info.type === 'dir' ? 'd' : info.type === 'symlink' ? 'l' : '-';
  const perms = (info.mode ?? defaultMode(info)) & 0o7777;
  const mode = MODE_STRINGS[perms] ?? (MODE_STRINGS[perms] = modeString(perms));
  const size = Number.isFinite(info.size) && info.size > 0 ? Math.floor(info.size) : 0;
  const t = validTime(info.mtime);
  const age = validTime(now) - t;
  const minutes = Math.floor(t / 60_000);
  const day = utcDay(Math.floor(minutes / 1440));
  let when: string;
  if (age < RECENT_MS && age >= -FUTURE_SLACK_MS) {
    const minuteOfDay = minutes - day.day * 1440;
    const hours = Math.floor(minuteOfDay / 60);
    when = `${TWO_DIGITS[hours]!}:${TWO_DIGITS[minuteOfDay - hours * 60]!}`;
  } else {
    when = day.listYear;
  }
  const sizeText = String(size);
  return `${typeChar}${mode} 1 ftp ftp ${sizeText.padStart(SIZE_WIDTH, ' ')} ${day.list} ${when} ${info.name}`;
}

// ---------------------------------------------------------------------------
// MLSx (RFC 3659 §7)

export type MlsxFact = 'type' | 'size' | 'modify' | 'perm' | 'unique' | 'unix.mode';

/** Every fact we can send, in the order we send them (and list them in FEAT). */
export const MLSX_FACTS: readonly MlsxFact[] = Object.freeze(['type', 'size', 'modify', 'perm', 'unique', 'unix.mode']);

/**
 * RFC 3659 §2.3 time-val, always UTC: `YYYYMMDDHHMMSS`. Whole seconds only:
 * RFC 3659 allows a fraction, but minimal clients (cameras, scripts) parse
 * exactly 14 digits after "213 ".
 */
export function formatMlsxTime(d: Date): string {
  const t = d.getTime();
  // An invalid Date (a backend bug) keeps the text its getUTC* parts always gave.
  if (Number.isNaN(t)) return '0NaNNaNNaNNaNNaNNaN';
  return mlsxTimeOfMs(t);
}

const TIME_VAL = /^([0-9]{4})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})(?:\.([0-9]+))?$/;

function daysInMonth(year: number, month: number): number {
  // Day 0 of the next month is the last day of this one.
  const d = new Date(0);
  d.setUTCFullYear(year, month, 0);
  return d.getUTCDate();
}

/**
 * Parse an RFC 3659 §2.3 time-val (`YYYYMMDDHHMMSS[.fff…]`, UTC), as MFMT
 * receives it. Fields are range-checked (no 31 February); seconds may be 60
 * for a leap second (§2.3), which JavaScript folds into the next minute.
 * Fraction digits beyond milliseconds are truncated. Null for anything else.
 */
export function parseMlsxTime(s: string): Date | null {
  const m = TIME_VAL.exec(s);
  if (!m) return null;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  if (month < 1 || month > 12) return null;
  if (day < 1 || day > daysInMonth(year, month)) return null;
  if (hour > 23 || minute > 59 || second > 60) return null;
  const ms = m[7] ? Number(m[7].slice(0, 3).padEnd(3, '0')) : 0;
  const d = new Date(0);
  // setUTCFullYear, not Date.UTC: Date.UTC maps years 0-99 to 1900-1999.
  d.setUTCFullYear(year, month - 1, day);
  d.setUTCHours(hour, minute, second, ms);
  return d;
}

/**
 * The `perm` fact, RFC 3659 §7.5.5, from what the account may do here.
 * Files: a (APPE), d (DELE), f (RNFR), r (RETR), w (STOR).
 * Directories: e (CWD), l (LIST), c (create files: STOR), m (MKD),
 * d (RMD), f (RNFR), p (delete entries inside: DELE).
 * `can` is already bound to the entry's path by the caller.
 */
export function mlsxPermFact(info: FileInfo, can: (p: Permission) => boolean): string {
  let out = '';
  if (info.type === 'dir') {
    if (can('e')) out += 'e';
    if (can('l')) out += 'l';
    if (can('w')) out += 'c';
    if (can('m')) out += 'm';
    if (can('d')) out += 'd';
    if (can('f')) out += 'f';
    if (can('d')) out += 'p';
  } else {
    if (can('a')) out += 'a';
    if (can('d')) out += 'd';
    if (can('f')) out += 'f';
    if (can('r')) out += 'r';
    if (can('w')) out += 'w';
  }
  return out;
}

/**
 * Characters a fact value may hold (RFC 3659 §7.1, RCHAR plus "="): no space,
 * no ";", no control or non-ASCII characters.
 */
const FACT_VALUE = /^[A-Za-z0-9,.:!@#$%^&()\-_+?/\\'"=]+$/;

/** A `unique` value safe inside a fact list: verbatim when allowed, else hex of its UTF-8 bytes. */
function uniqueValue(id: string): string {
  return FACT_VALUE.test(id) ? id : Buffer.from(id, 'utf8').toString('hex');
}

/** unix.mode values: four octal digits per permission value (0 .. 0o7777), filled on first use. */
const OCTAL_MODES: string[] = [];

/** Formats one MLSx entry with a fixed fact set; see `mlsxEntryFormatter`. */
export type MlsxEntryFormatter = (info: FileInfo, perm: string, typeOverride?: 'cdir' | 'pdir') => string;

/**
 * The formatter of MLSD lines / MLST entries for one fact set, RFC 3659 §7.2
 * (`entry = [facts] SP pathname`), without CRLF:
 * `type=file;size=12;modify=20261121083000;perm=adfrw; name`.
 *
 * Only the facts in `facts` appear, in MLSX_FACTS order. `perm` is the
 * precomputed perm fact (see `mlsxPermFact`). `typeOverride` marks the listed
 * directory itself (`cdir`) or its parent (`pdir`), §7.5.1. `unique` appears
 * only when the backend gives an id, `unix.mode` only when it gives a mode.
 * The name is written verbatim.
 *
 * Made once per listing: the fact set is read once, not per entry.
 */
export function mlsxEntryFormatter(facts: ReadonlySet<MlsxFact>): MlsxEntryFormatter {
  const type = facts.has('type');
  const size = facts.has('size');
  const modify = facts.has('modify');
  const perm = facts.has('perm');
  const unique = facts.has('unique');
  const unixMode = facts.has('unix.mode');
  return (info, permFact, typeOverride) => {
    let out = '';
    if (type) {
      // §7.5.1: OS-specific types take the form OS.name=type.
      if (typeOverride !== undefined) out = `type=${typeOverride};`;
      else out = info.type === 'dir' ? 'type=dir;' : info.type === 'symlink' ? 'type=OS.unix=symlink;' : 'type=file;';
    }
    // RFC 3659 §7.5.7: size is the file's transfer size; a directory's on-disk size would mislead.
    if (size && info.type !== 'dir' && Number.isFinite(info.size) && info.size >= 0) {
      out += `size=${Math.floor(info.size)};`;
    }
    if (modify) {
      const t = info.mtime.getTime();
      if (!Number.isNaN(t)) out += `modify=${mlsxTimeOfMs(t)};`;
    }
    if (perm) out += `perm=${permFact};`;
    if (unique && info.id !== undefined && info.id !== '') {
      out += `unique=${uniqueValue(info.id)};`;
    }
    if (unixMode && info.mode !== undefined) {
      const bits = info.mode & 0o7777;
      out += `unix.mode=${OCTAL_MODES[bits] ?? (OCTAL_MODES[bits] = bits.toString(8).padStart(4, '0'))};`;
    }
    return `${out} ${info.name}`;
  };
}

/** One MLSD line or MLST entry: `mlsxEntryFormatter(facts)` applied once. */
export function formatMlsxEntry(
  info: FileInfo,
  facts: ReadonlySet<MlsxFact>,
  perm: string,
  typeOverride?: 'cdir' | 'pdir',
): string {
  return mlsxEntryFormatter(facts)(info, perm, typeOverride);
}

/**
 * The MLST line of the FEAT reply, RFC 3659 §7.8: every supported fact,
 * each followed by "*" when it is currently enabled, then ";".
 */
export function formatFeatMlst(enabled: ReadonlySet<MlsxFact>): string {
  let out = '';
  for (const fact of MLSX_FACTS) out += `${fact}${enabled.has(fact) ? '*' : ''};`;
  return out;
}

/**
 * The fact list of `OPTS MLST type;size;`, RFC 3659 §7.9: fact names are
 * case-insensitive, unknown ones are ignored, an empty list turns every fact
 * off.
 */
export function parseOptsMlst(arg: string): Set<MlsxFact> {
  const wanted = new Set<MlsxFact>();
  for (const token of arg.split(';')) {
    const name = token.trim().toLowerCase();
    const fact = MLSX_FACTS.find((f) => f === name);
    if (fact) wanted.add(fact);
  }
  return wanted;
}
