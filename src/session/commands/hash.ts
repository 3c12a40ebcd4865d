/**
 * Integrity commands: HASH, OPTS HASH and RANG (draft-bryan-ftpext-hash-02,
 * draft-bryan-ftp-range-09), and XCRC, XMD5, XSHA1, XSHA256, XSHA512 (the
 * older one-algorithm commands many servers and clients share). Formats and
 * range conventions: protocol/hash.ts; reading and hashing: storage/digest.ts.
 *
 * They run as transfer commands (`transfer: true`) without a data
 * connection: that is what lets ABOR interrupt them (426, then 226 for the
 * ABOR), QUIT and REIN cancel them, a closed control connection or a
 * shutdown stop them, and keeps the idle timer from firing during a long
 * hash. The transfer's AbortController is the hash's.
 */
import { ErrorCodes, FerryError } from '../../errors.js';
import { takeHashSlot } from '../../limits/hash-slots.js';
import {
  clampRange,
  formatHashReply,
  hashFeature,
  parseHashAlgorithm,
  parseRang,
  parseRangedPath,
  type ByteRange,
  type HashAlgorithm,
} from '../../protocol/hash.js';
import { digestFile } from '../../storage/digest.js';
import type { CommandSpec } from '../command.js';
import type { Session } from '../session.js';

/**
 * The digest of bytes `range` of the file at `requested`, within the
 * process's bound on concurrent hashes. Throws NOT_FOUND,
 * HASH_OF_DIRECTORY (or IS_A_DIRECTORY for `directory: 'is-a-directory'`),
 * INVALID_RANGE, HASH_BUSY, ABORTED, or a hook's HOOK_DENIED/HOOK_FAILED.
 */
async function digest(
  session: Session,
  requested: string,
  algorithm: HashAlgorithm,
  range: ByteRange | null,
  directory: 'hash-of-directory' | 'is-a-directory',
): Promise<{ hex: string; bytes: { start: number; end: number } }> {
  const signal = session.transferSignal!;
  const storage = session.storage;
  // A hash tells what a download would (§6): the beforeDownload hooks may refuse it, or point it where RETR would go.
  const path = await session.hookedPath('beforeDownload', { path: requested, offset: range?.start ?? 0 }, 'r');
  const info = await storage.stat(path);
  if (info.type === 'dir') {
    throw new FerryError(directory === 'hash-of-directory' ? ErrorCodes.HASH_OF_DIRECTORY : ErrorCodes.IS_A_DIRECTORY, `hash of a directory: ${path}`);
  }
  const bytes = clampRange(range, info.size);
  if (!bytes) throw new FerryError(ErrorCodes.INVALID_RANGE, `range starts at ${range?.start} of a ${info.size}-byte file`);
  const release = takeHashSlot(session.host, session.host.options.maxConcurrentHashes);
  if (!release) throw new FerryError(ErrorCodes.HASH_BUSY, `${session.host.options.maxConcurrentHashes} hashes running (limits.maxConcurrentHashes)`);
  const started = Date.now();
  try {
    session.transferProgress(path, 0);
    const hex = await digestFile(storage, { path, algorithm, start: bytes.start, end: bytes.end, size: info.size, signal, onProgress: (done) => session.transferProgress(path, done) });
    session.log.debug({ path, algorithm, bytes: bytes.end - bytes.start, durationMs: Date.now() - started }, 'hash computed');
    return { hex, bytes };
  } catch (err) {
    if (signal.aborted) throw new FerryError(ErrorCodes.ABORTED, 'hash aborted', { cause: err });
    throw err;
  } finally {
    release();
  }
}

/**
 * A range set by RANG applies to HASH only: RETR and STOR do not honour it
 * (FEAT does not announce "RANG STREAM"), so a transfer after RANG is
 * refused (draft-bryan-ftp-range-09 §4.3: such a request is rejected)
 * rather than sending the whole file to a client that asked for part of
 * it. The range is reset, so the client's next transfer runs whole.
 */
export function refuseRangedTransfer(session: Session): boolean {
  if (!session.hashRange) return false;
  session.hashRange = null;
  session.reply(504, 'RANG applies to HASH only; the range is reset, send the command again for the whole file.');
  return true;
}

/** XCRC, XMD5, ...: "verb path [start end]", answered "250 <hex>" on one line (the form their clients parse). */
function xCommand(verb: string, algorithm: HashAlgorithm): CommandSpec {
  return {
    verb,
    syntax: `${verb} <sp> pathname [<sp> start <sp> end]`,
    auth: true,
    arg: 'required',
    path: (arg) => parseRangedPath(arg).path,
    permission: 'r',
    transfer: true,
    feature: () => verb,
    async handler(session, { arg, path }) {
      const { range } = parseRangedPath(arg);
      if (range === 'invalid') {
        session.reply(501, `Syntax: ${verb} pathname [start end], with start <= end (end is the offset where hashing stops).`);
        return;
      }
      const { hex } = await digest(session, path, algorithm, range, 'is-a-directory');
      session.reply(250, hex);
    },
  };
}

export const hashCommands: CommandSpec[] = [
  {
    verb: 'HASH',
    syntax: 'HASH <sp> pathname',
    auth: true,
    arg: 'required',
    path: 'plain',
    // §6: only for files the user may download.
    permission: 'r',
    transfer: true,
    // §3.1: every algorithm, the session's own starred.
    feature: (session) => hashFeature(session.hashAlgorithm),
    async handler(session, { arg, path }) {
      // RANG applies to the next HASH only, whatever its outcome.
      const range = session.hashRange;
      session.hashRange = null;
      const algorithm = session.hashAlgorithm;
      const { hex, bytes } = await digest(session, path, algorithm, range, 'hash-of-directory');
      session.reply(213, formatHashReply(algorithm, bytes, hex, arg));
    },
  },
  {
    verb: 'OPTS HASH',
    syntax: 'OPTS HASH [<sp> algorithm]',
    auth: false,
    arg: 'optional',
    handler(session, { arg }) {
      // §3.2: without an argument, the current selection; with one, the new selection.
      if (arg.trim() === '') {
        session.reply(200, session.hashAlgorithm);
        return;
      }
      const algorithm = parseHashAlgorithm(arg);
      if (!algorithm) {
        session.reply(501, 'Unknown algorithm, current selection not changed.');
        return;
      }
      session.hashAlgorithm = algorithm;
      session.reply(200, algorithm);
    },
  },
  {
    verb: 'RANG',
    syntax: 'RANG <sp> start <sp> end (inclusive; RANG 1 0 resets)',
    auth: true,
    arg: 'required',
    handler(session, { arg }) {
      const range = parseRang(arg);
      if (range === 'invalid') {
        // draft-bryan-ftp-range-09 §3: 501, and the selection goes back to the whole file.
        session.hashRange = null;
        session.reply(501, 'RANG needs two offsets, start <= end (RANG 1 0 resets); the range is reset to the whole file.');
      } else if (range === 'reset') {
        session.hashRange = null;
        session.reply(350, 'Range reset: HASH covers the whole file.');
      } else {
        session.hashRange = range;
        session.reply(350, `Range set to bytes ${range.start}-${range.end! - 1}; send HASH.`);
      }
    },
  },
  xCommand('XCRC', 'CRC32'),
  xCommand('XMD5', 'MD5'),
  xCommand('XSHA1', 'SHA-1'),
  xCommand('XSHA256', 'SHA-256'),
  xCommand('XSHA512', 'SHA-512'),
];
