/**
 * What the fuzzer sends: a seeded generator and the random command lines,
 * arguments and bytes drawn from it. Pure: no sockets here.
 */

/** Bytes to write and how many commands they hold (for the summary). */
export interface Fuzzed {
  bytes: Buffer;
  commands: number;
}

/** mulberry32 over a seed mixed with a connection's number and round, so each connection replays alone. */
export class Random {
  #state: number;

  constructor(seed: number, ...streams: number[]) {
    let state = seed >>> 0;
    for (const stream of streams) state = Math.imul(state ^ (stream + 0x9e3779b9), 0x85ebca6b) >>> 0;
    this.#state = state;
  }

  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  }

  /** A whole number from min to max, both included. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }

  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) out[i] = Math.floor(this.next() * 256);
    return out;
  }

  static line(text: string): Fuzzed {
    return { bytes: Buffer.from(`${text}\r\n`, 'latin1'), commands: 1 };
  }

  static lines(texts: string[]): Fuzzed {
    return { bytes: Buffer.from(texts.map((t) => `${t}\r\n`).join(''), 'latin1'), commands: texts.length };
  }
}

/** The verbs Ferry knows (its command table), and some it does not. */
const VERBS = [
  'USER', 'PASS', 'REIN', 'QUIT', 'ACCT', 'PASV', 'EPSV', 'PORT', 'EPRT', 'MKD', 'RMD', 'DELE', 'RNFR', 'RNTO',
  'SIZE', 'MDTM', 'MFMT', 'SITE', 'NOOP', 'SYST', 'FEAT', 'OPTS', 'HELP', 'STAT', 'TYPE', 'MODE', 'STRU', 'ALLO',
  'SMNT', 'LIST', 'NLST', 'MLSD', 'MLST', 'PWD', 'CWD', 'CDUP', 'AUTH', 'PBSZ', 'PROT', 'CCC', 'REST', 'RETR',
  'STOR', 'APPE', 'STOU', 'ABOR', 'XPWD', 'XMKD', 'CLNT', 'HOST', 'LPSV', 'LPRT', 'MDTM', 'retr', 'Stor', 'A', '',
] as const;

const TRANSFER_VERBS = ['RETR', 'RETR', 'LIST', 'NLST', 'MLSD', 'STOR', 'STOU', 'APPE'] as const;

/** Names the server holds (see fuzz.ts), and names it must refuse or treat with care. */
export const FUZZ_FILES = ['a.txt', 'big.bin', 'dir', 'dir/b.txt', 'dir/sub', 'dir/sub/c.txt', 'new.bin', 'many', '/', '.', ''];

const HOSTILE = [
  '..', '../..', '../../../../etc/passwd', '/../../etc', 'dir/../../x', '\\..\\..\\x', '%2e%2e/%2e%2e', '~root', '*', '-la',
  '-a dir', '"quoted name"', 'é/日本語', ' leading', 'trailing ', 'a\tb', '/dev/zero', '/proc/self/environ', 'con', '.ferry-upload-x.part',
] as const;

const ARGUMENTS: Record<string, (rnd: Random) => string> = {
  TYPE: (rnd) => rnd.pick(['A', 'I', 'E', 'L 8', 'A N', 'X', 'i']),
  MODE: (rnd) => rnd.pick(['S', 'B', 'C', 'Z']),
  STRU: (rnd) => rnd.pick(['F', 'R', 'P']),
  REST: (rnd) => rnd.pick(['0', '100', '-1', '99999999999999999999', 'abc', String(rnd.int(0, 5_000_000))]),
  PORT: (rnd) => rnd.pick(['127,0,0,1,4,1', '10,0,0,1,0,21', '127,0,0,1,0,21', '1,2,3', '256,0,0,1,1,1', '127,0,0,1,300,1']),
  EPRT: (rnd) => rnd.pick(['|1|127.0.0.1|1025|', '|2|::1|1025|', '|1|10.0.0.1|21|', '||', '|9|x|y|']),
  OPTS: (rnd) => rnd.pick(['UTF8 ON', 'UTF8 OFF', 'MLST type;size;', 'MLST nonsense;', 'XYZ']),
  SITE: (rnd) => rnd.pick(['CHMOD 777 a.txt', 'CHMOD 777 /', 'CHMOD 9999 a.txt', 'HELP', 'EXEC ls', 'UMASK 000', '']),
  MFMT: (rnd) => rnd.pick(['20200101000000 a.txt', '20200101000000 /', '99999999999999 a.txt', 'x']),
  AUTH: (rnd) => rnd.pick(['TLS', 'SSL', 'XYZ']),
  PROT: (rnd) => rnd.pick(['P', 'C', 'S']),
  PBSZ: (rnd) => rnd.pick(['0', '-1', '99999999999']),
  ALLO: (rnd) => rnd.pick(['100', '99999999999999', 'x']),
  HELP: (rnd) => rnd.pick(['', 'SITE', 'RETR', 'X'.repeat(100)]),
  USER: (rnd) => rnd.pick(['alice', 'anonymous', 'root', '../alice', 'a\u0000b', 'x'.repeat(300)]),
  PASS: (rnd) => rnd.pick(['load pass', 'wrong', '', 'x'.repeat(1000)]),
};

/** A random argument: a plausible one for the verb, a hostile path, raw bytes or a long string. */
function argument(rnd: Random, verb: string): Buffer {
  const roll = rnd.next();
  if (roll < 0.35 && ARGUMENTS[verb]) return Buffer.from(ARGUMENTS[verb]!(rnd), 'utf8');
  if (roll < 0.6) return Buffer.from(rnd.pick(FUZZ_FILES), 'utf8');
  if (roll < 0.75) return Buffer.from(rnd.pick(HOSTILE), 'utf8');
  if (roll < 0.82) return Buffer.from(`dir/${'n'.repeat(rnd.int(200, 6000))}`, 'latin1');
  if (roll < 0.88) return Buffer.from(`x\u0000${rnd.pick(FUZZ_FILES)}`, 'latin1'); // NUL inside a path
  if (roll < 0.94) return Buffer.concat([Buffer.from('bad'), Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0xe2, 0x82])]); // invalid UTF-8
  return Buffer.from('');
}

const TERMINATORS = ['\r\n', '\r\n', '\r\n', '\r\n', '\n', '\r', '\r\u0000', ''] as const;

/** One command line: a verb (known or not), maybe an argument, a usual or odd terminator, sometimes Telnet bytes. */
function commandLine(rnd: Random): Buffer {
  const verb = rnd.pick(VERBS);
  const parts: Buffer[] = [];
  if (rnd.chance(0.05)) parts.push(Buffer.from([0xff, 0xf4, 0xff, 0xf2])); // Telnet IP + Synch, as clients send before ABOR
  parts.push(Buffer.from(verb, 'latin1'));
  if (rnd.chance(0.7)) parts.push(Buffer.from(' '), argument(rnd, verb));
  parts.push(Buffer.from(rnd.pick(TERMINATORS), 'latin1'));
  return Buffer.concat(parts);
}

/** Many commands in one write (pipelined), now and then with random bytes among them. */
export function randomBatch(rnd: Random, n: number): Fuzzed {
  const parts: Buffer[] = [];
  for (let i = 0; i < n; i++) parts.push(rnd.chance(0.03) ? rnd.bytes(rnd.int(1, 64)) : commandLine(rnd));
  return { bytes: Buffer.concat(parts), commands: n };
}

/** Random bytes, with or without a line end. */
export function randomBytesLine(rnd: Random): Fuzzed {
  const body = rnd.bytes(rnd.int(1, 4096));
  return { bytes: rnd.chance(0.5) ? Buffer.concat([body, Buffer.from('\r\n')]) : body, commands: 1 };
}

export function transferVerb(rnd: Random): string {
  return rnd.pick(TRANSFER_VERBS);
}
