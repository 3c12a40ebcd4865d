/**
 * The integrity commands' words, without I/O: algorithm names, the FEAT
 * line, RANG and X* arguments, the HASH reply.
 *
 * Two extensions with two range conventions, each kept as its peers use it:
 * - HASH (draft-bryan-ftpext-hash-02) takes its range from RANG
 *   (draft-bryan-ftp-range-09), whose end is INCLUSIVE ("RANG 0 1" is two
 *   bytes), and the 213 reply repeats the range the same way.
 * - XCRC, XMD5, XSHA1, XSHA256, XSHA512 (GlobalSCAPE's, then Serv-U's,
 *   ProFTPD's mod_digest, ftpserverlib) take "path [start end]" where the
 *   end is the offset where hashing stops (EXCLUSIVE), and answer
 *   "250 <hex>" alone on one line, which every client of theirs parses.
 * Internally a range is always [start, end) with an exclusive end.
 */

/** The names HASH uses (the IANA "Hash Function Textual Names", plus CRC32 as servers spell it). */
export const HASH_ALGORITHMS = ['SHA-256', 'SHA-512', 'SHA-1', 'MD5', 'CRC32'] as const;
export type HashAlgorithm = (typeof HASH_ALGORITHMS)[number];

/** draft-bryan-ftpext-hash-02 §5: the default must not be weaker than SHA-1. */
export const DEFAULT_HASH_ALGORITHM: HashAlgorithm = 'SHA-256';

/** The algorithm named `name` (any case: §3.1 says comparisons are case-insensitive), or null. */
export function parseHashAlgorithm(name: string): HashAlgorithm | null {
  const upper = name.trim().toUpperCase();
  return HASH_ALGORITHMS.find((algorithm) => algorithm === upper) ?? null;
}

/** §3.1: every algorithm, the selected one starred: "HASH SHA-256*;SHA-512;SHA-1;MD5;CRC32". */
export function hashFeature(selected: HashAlgorithm): string {
  return `HASH ${HASH_ALGORITHMS.map((algorithm) => (algorithm === selected ? `${algorithm}*` : algorithm)).join(';')}`;
}

/** A byte range, [start, end): `end` is exclusive, null for "to the end of the file". */
export interface ByteRange {
  start: number;
  end: number | null;
}

/** Offsets up to 2^53: a 15-digit cap keeps them exact in a Number. */
const OFFSET = /^\d{1,15}$/;

/**
 * RANG's argument (draft-bryan-ftp-range-09 §3): "start end", end
 * inclusive. 'reset' for "RANG 1 0" (back to the whole file), 'invalid'
 * for anything else that is not two offsets with start <= end.
 */
export function parseRang(arg: string): ByteRange | 'reset' | 'invalid' {
  const words = arg.trim().split(/\s+/);
  if (words.length !== 2 || !OFFSET.test(words[0]!) || !OFFSET.test(words[1]!)) return 'invalid';
  const start = Number(words[0]);
  const last = Number(words[1]);
  if (start === 1 && last === 0) return 'reset';
  if (start > last) return 'invalid';
  return { start, end: last + 1 };
}

/**
 * An X* command's argument: a path, optionally followed by " start end"
 * (end exclusive). The path may be in double quotes (GlobalSCAPE's clients
 * quote it, spaces and all); unquoted, two trailing numbers are the range,
 * so a file whose name ends in " <digits> <digits>" must be quoted. A lone
 * trailing number is part of the name (peers disagree on whether it would
 * be the start or the end). `range` is null when the argument has none;
 * 'invalid' when the numbers are there but start > end.
 */
export function parseRangedPath(arg: string): { path: string; range: ByteRange | null | 'invalid' } {
  const close = arg.startsWith('"') ? arg.indexOf('"', 1) : -1;
  if (close > 0) {
    const path = arg.slice(1, close);
    const words = arg.slice(close + 1).trim().split(/\s+/).filter(Boolean);
    if (words.length === 0) return { path, range: null };
    if (words.length !== 2 || !OFFSET.test(words[0]!) || !OFFSET.test(words[1]!)) return { path, range: 'invalid' };
    return { path, range: orderedRange(Number(words[0]), Number(words[1])) };
  }
  const match = /^(.*\S)\s+(\d{1,15})\s+(\d{1,15})\s*$/.exec(arg);
  if (!match) return { path: arg, range: null };
  return { path: match[1]!, range: orderedRange(Number(match[2]), Number(match[3])) };
}

function orderedRange(start: number, end: number): ByteRange | 'invalid' {
  return start <= end ? { start, end } : 'invalid';
}

/**
 * The bytes a range covers in a file of `size` bytes, [start, end): an end
 * past the file stops at its end (draft-bryan-ftp-range-09 §4.3 does the
 * same for RETR). Null when the range starts beyond the last byte (a range
 * starting at 0 of an empty file is the empty file).
 */
export function clampRange(range: ByteRange | null, size: number): { start: number; end: number } | null {
  const start = range?.start ?? 0;
  const end = Math.min(range?.end ?? size, size);
  if (start > 0 && start >= size) return null;
  return { start, end: Math.max(start, end) };
}

/**
 * draft-bryan-ftpext-hash-02 §3: "213 <algorithm> <start>-<end> <hash> <pathname>"
 * with an inclusive end, as RANG gives it. An empty range (an empty file)
 * has no last byte; it is written "0-0", as the draft's grammar needs
 * end >= start.
 */
export function formatHashReply(algorithm: HashAlgorithm, range: { start: number; end: number }, hex: string, pathname: string): string {
  const last = Math.max(range.start, range.end - 1);
  return `${algorithm} ${range.start}-${last} ${hex} ${pathname}`;
}
