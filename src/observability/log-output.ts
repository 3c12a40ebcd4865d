/**
 * Where the daemon's log lines go, and in what form (`logging:` in the
 * config). The library never calls this: an embedder passes its own logger
 * and Ferry stays silent without one.
 *
 * - JSON lines (pino's, with `time` as an ISO string and `level` as a name)
 *   for machines: journald, Docker, Loki, a file. Human lines (pretty.ts) for
 *   a person at a terminal. `auto` picks human lines only when the lines go
 *   to standard output and it is a terminal.
 * - `logging.file`: lines appended to a file (O_APPEND, so the workers of a
 *   cluster can share it line by line), reopened by name on SIGUSR1 so that
 *   logrotate can rename it and have the next line start the new file.
 *
 * Writes are synchronous, as pino's standard output is by default: a line
 * is on disk (or in the pipe) when the call returns, so nothing is lost when
 * the process exits or dies, at the cost of a write(2) per line, which
 * the data path never does (it logs per command, not per chunk).
 */
import { closeSync, constants, openSync } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { pino } from 'pino';
import { prettyLine } from './pretty.js';

export const LOG_FORMATS = ['auto', 'pretty', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export interface LogOutputOptions {
  level: string;
  format: LogFormat;
  /** Append to this file instead of standard output. */
  file: string | null;
  /** Fields on every line (pino's `base`); absent: pid and hostname. */
  base?: Record<string, unknown>;
  /** Is standard output a terminal (process.stdout.isTTY); a parameter so it can be tested. */
  isTTY?: boolean;
  /** The environment, for NO_COLOR. */
  env?: NodeJS.ProcessEnv;
}

export interface LogOutput {
  logger: pino.Logger;
  /** SIGUSR1: open `file` again by name (after logrotate renamed it). No-op on standard output. */
  reopen(): void;
}

/** `auto` means human lines on a terminal, JSON anywhere else (a pipe, a file, journald). */
export function chooseFormat(format: LogFormat, target: { file: string | null; isTTY: boolean }): 'pretty' | 'json' {
  if (format !== 'auto') return format;
  return target.file === null && target.isTTY ? 'pretty' : 'json';
}

/** ISO times and level names rather than epoch ms and numbers. */
const LOG_LINE_OPTIONS = {
  timestamp: pino.stdTimeFunctions.isoTime,
  formatters: { level: (label: string) => ({ level: label }) },
} as const;

export function createLogOutput(options: LogOutputOptions): LogOutput {
  const isTTY = options.isTTY ?? process.stdout.isTTY === true;
  const format = chooseFormat(options.format, { file: options.file, isTTY });
  const file = options.file === null ? null : new AppendFile(options.file, 'logging.file');
  const dest = file ?? pino.destination({ fd: 1, sync: true });
  const color = format === 'pretty' && file === null && isTTY && !(options.env ?? process.env).NO_COLOR;
  const stream = format === 'pretty' ? { write: (line: string) => void dest.write(prettyLine(line, { color })) } : dest;
  const logger = pino({ level: options.level, ...(options.base ? { base: options.base } : {}), ...LOG_LINE_OPTIONS }, stream);
  return { logger, reopen: () => file?.reopen() };
}

/**
 * A file opened for appending (created if missing) by name, so that it can
 * be opened again by name after logrotate renamed it. A path that cannot be
 * opened throws at once with a message naming the setting (not a stack
 * trace later): the daemon turns it into its exit message.
 */
export class AppendFile {
  readonly #path: string;
  readonly #setting: string;
  readonly #stream: ReturnType<typeof pino.destination>;
  /** The last error told on standard error (pino re-emits each error: tell it once). */
  #told: string | null = null;

  constructor(path: string, setting: string) {
    this.#path = path;
    this.#setting = setting;
    // Opened once by hand first, so the error is thrown here with its code
    // rather than emitted later by the stream.
    openForAppending(path, setting);
    this.#stream = pino.destination({ dest: path, append: true, sync: true });
    // A failed write must not crash the server: say so on standard error and go on.
    this.#stream.on('error', (err: Error) => this.#tell(`${setting} ${path}: ${err.message}`));
  }

  write(text: string): void {
    this.#stream.write(text);
  }

  /**
   * Open the path again. When that fails (logrotate's `create` gave the file
   * to another user, the folder went away) the old descriptor stays in use,
   * so no line is lost: they go on into the renamed file, and standard error
   * says why.
   */
  reopen(): void {
    // Tried by hand first: a failed SonicBoom reopen leaves a listener behind
    // that later closes the old descriptor's number again (by then perhaps
    // another file's), so the stream is asked only once the path opens.
    try {
      closeSync(openSync(this.#path, 'a'));
    } catch (err) {
      this.#tell(`${this.#setting}: cannot reopen ${this.#path} (${errorCode(err)}); still writing to the file it had open`);
      return;
    }
    this.#stream.reopen();
  }

  /** A problem with the file, on standard error once (not once per line or per signal). */
  #tell(message: string): void {
    if (message === this.#told) return;
    this.#told = message;
    process.stderr.write(`ferry: ${message}\n`);
  }
}

/** Open (creating) and close `path` for appending; an Error naming `setting` and what to do when that fails. */
function openForAppending(path: string, setting: string): void {
  try {
    closeSync(openSync(path, 'a'));
  } catch (err) {
    throw cannotAppend(setting, path, errorCode(err));
  }
}

/**
 * For check-config: the log files serve would open, without creating them.
 * Throws what serve would say.
 */
export async function checkLogFiles(files: ReadonlyArray<[setting: string, path: string | null]>): Promise<void> {
  for (const [setting, path] of files) {
    if (path === null) continue;
    const info = await stat(path).catch(() => null);
    if (info?.isDirectory()) throw cannotAppend(setting, path, 'EISDIR');
    try {
      await access(info ? path : dirname(path), constants.W_OK);
    } catch (err) {
      throw cannotAppend(setting, path, errorCode(err));
    }
  }
}

function cannotAppend(setting: string, path: string, code: string): Error {
  const what = code === 'EISDIR' ? 'it is a folder; give the path of a file in it' : code === 'ENOENT' ? 'create its folder, or choose another path' : "let the server's user (runAs) write there, or choose another path";
  return new Error(`${setting}: cannot open ${path} for appending (${code}): ${what}`);
}

const errorCode = (err: unknown) => (err as NodeJS.ErrnoException).code ?? (err as Error).message;
