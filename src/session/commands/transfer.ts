/** File transfers: REST, RETR, STOR, APPE, STOU, ABOR (RFC 959 §4.1.3, RFC 3659 §5). */
import { randomBytes } from 'node:crypto';
import { finished } from 'node:stream/promises';
import { ErrorCodes, FerryError } from '../../errors.js';
import { receiveFromSocket, sendToSocket, type UploadDigest } from '../../data/transfer.js';
import { baseName, joinPath, parentPath } from '../../protocol/path.js';
import type { UploadMode } from '../../server/hooks.js';
import type { StorageWritable, WriteOptions } from '../../storage/types.js';
import type { CommandSpec } from '../command.js';
import type { Session } from '../session.js';
import { refuseRangedTransfer } from './hash.js';

function modeName(session: Session): string {
  return session.transferType === 'A' ? 'ASCII' : 'BINARY';
}

/**
 * RFC 3659 §5: in TYPE A a REST offset counts bytes of the converted stream,
 * which do not map to file offsets; refuse rather than resume at a wrong place.
 */
function refuseAsciiRestart(session: Session): boolean {
  if (session.restOffset === 0 || session.transferType !== 'A') return false;
  session.reply(504, 'REST is not supported in ASCII mode; send TYPE I first.');
  return true;
}

async function retrieve(session: Session, requested: string): Promise<void> {
  if (refuseAsciiRestart(session) || refuseRangedTransfer(session)) return;
  const started = Date.now();
  const offset = session.restOffset;
  const path = await session.hookedPath('beforeDownload', { path: requested, offset }, 'r');
  const source = await session.storage.read(path, { start: offset });
  const ascii = session.transferType === 'A';
  const ok = await session.transferData(path, `Opening ${modeName(session)} mode data connection for ${baseName(path)}.`, (socket, signal, throttle) =>
    sendToSocket(source, socket, { ascii, signal, throttle }),
  );
  const info = { ...session.who, path, bytes: session.transferredBytes, durationMs: Date.now() - started };
  if (!ok) {
    source.destroy();
    session.host.notify('download-aborted', { ...info, reason: session.transferFailure ?? 'transfer did not complete' });
    return;
  }
  session.host.notify('file-sent', info);
}

/** The upload mode of write options, for hooks and events. */
function uploadMode(options: WriteOptions): UploadMode {
  if (options.append) return 'append';
  if (options.exclusive) return 'unique';
  return options.start ? 'resume' : 'replace';
}

/** Shared by STOR, APPE and STOU once the target and the write mode are known. */
async function store(session: Session, requested: string, options: WriteOptions): Promise<void> {
  if (refuseRangedTransfer(session)) return;
  const started = Date.now();
  const mode = uploadMode(options);
  const offset = options.start ?? 0;
  const path = await session.hookedPath('beforeUpload', { path: requested, size: session.allocatedBytes, mode, offset }, mode === 'append' ? 'a' : 'w');
  const sink: StorageWritable = await session.storage.write(path, options);
  // Errors reach us through the pipeline or not at all (an abort before any
  // data flowed); an unobserved 'error' event must never crash the process.
  sink.on('error', (err) => session.log.debug({ err: err.message }, 'upload stream ended with an error'));
  const ascii = session.transferType === 'A';
  // RFC 1123 §4.1.2.9: STOU's 150 names the file as "FILE: name" (the name a hook may have changed).
  const text = mode === 'unique' ? `FILE: ${baseName(path)}` : `Ok to send data for ${baseName(path)}.`;
  const wholeFile = mode === 'replace' || mode === 'unique';
  let digest = null as UploadDigest | null;
  const beforeCommit = async (signal: AbortSignal, hashed: UploadDigest | null): Promise<void> => {
    await session.confirmUpload(signal);
    digest = hashed;
    if (hashed && wholeFile) sink.setSha256?.(hashed.sha256);
  };
  const ok = await session.transferData(
    path,
    text,
    async (socket, signal, throttle) => {
      try {
        await receiveFromSocket(socket, sink, { ascii, signal, throttle, digest: session.host.options.uploadSha256, beforeCommit: (hashed) => beforeCommit(signal, hashed) });
      } catch (err) {
        // An ABOR or a disconnect racing the commit may come too late to stop
        // it (see StorageWritable): the file exists, so the reply is 226.
        if (isCommitted(sink)) return;
        throw err;
      }
    },
    'upload',
  );
  const info = { ...session.who, path, bytes: session.transferredBytes, durationMs: Date.now() - started, mode, offset };
  const received = digest ? { ...info, ...digest } : info;
  if (ok || isCommitted(sink)) {
    session.transferCommitted();
    session.host.notify('file-received', received);
    return;
  }
  sink.destroy(new FerryError(ErrorCodes.ABORTED, 'upload did not complete'));
  // The event says the old content remains: wait until the storage has
  // discarded the upload (LocalStorage: its temp file removed, a few ms).
  // Bounded: an S3 multipart abort against a hung endpoint must not hold the
  // session, and S3 never shows an unfinished upload anyway.
  await settled(sink, DISCARD_WAIT_MS);
  // A commit already under way when the destroy came finishes first (FileUpload waits for it): then the new file is in place.
  if (isCommitted(sink)) {
    session.transferCommitted();
    session.host.notify('file-received', received);
  }
  else session.host.notify('upload-aborted', { ...info, reason: session.transferFailure ?? 'transfer did not complete' });
}

/** How long an aborted upload waits for its storage stream to close before the session goes on. */
const DISCARD_WAIT_MS = 1000;

/** Resolves when `stream` has closed, or after `ms`, whichever comes first; never rejects. */
function settled(stream: StorageWritable, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    finished(stream).catch(() => undefined),
    new Promise<void>((resolve) => (timer = setTimeout(resolve, ms))),
  ]).finally(() => clearTimeout(timer));
}

function isCommitted(sink: StorageWritable): boolean {
  return sink.committed ?? sink.writableFinished;
}

function uniqueSuffix(): string {
  return randomBytes(4).toString('hex');
}

export const transferCommands: CommandSpec[] = [
  {
    verb: 'REST',
    syntax: 'REST <sp> byte-offset',
    auth: true,
    arg: 'required',
    feature: () => 'REST STREAM',
    handler(session, { arg }) {
      const offset = /^\d{1,15}$/.test(arg.trim()) ? Number(arg.trim()) : NaN;
      if (!Number.isSafeInteger(offset)) {
        session.reply(501, 'REST needs a byte offset (a whole number).');
        return;
      }
      session.restOffset = offset;
      session.reply(350, `Restarting at ${offset}. Send STOR or RETR to start the transfer.`);
    },
  },
  {
    verb: 'RETR',
    syntax: 'RETR <sp> pathname',
    auth: true,
    arg: 'required',
    path: 'plain',
    permission: 'r',
    transfer: true,
    handler: (session, { path }) => retrieve(session, path),
  },
  {
    verb: 'STOR',
    syntax: 'STOR <sp> pathname',
    auth: true,
    arg: 'required',
    path: 'plain',
    permission: 'w',
    transfer: true,
    handler(session, { path }) {
      if (refuseAsciiRestart(session)) return;
      const start = session.restOffset;
      if (start > 0 && !session.storage.capabilities.randomWrite) {
        throw new FerryError(ErrorCodes.UNSUPPORTED, 'REST+STOR needs random-offset writes');
      }
      return store(session, path, start > 0 ? { start } : {});
    },
  },
  {
    verb: 'APPE',
    syntax: 'APPE <sp> pathname',
    auth: true,
    arg: 'required',
    path: 'plain',
    permission: 'a',
    transfer: true,
    handler(session, { path }) {
      if (!session.storage.capabilities.append) throw new FerryError(ErrorCodes.UNSUPPORTED, 'APPE needs append');
      return store(session, path, { append: true });
    },
  },
  {
    verb: 'STOU',
    syntax: 'STOU [<sp> pathname]',
    auth: true,
    arg: 'optional',
    path: 'plain',
    transfer: true,
    async handler(session, { arg, path }) {
      // With an argument, the name is a suggestion; without one, invent a name in the current directory.
      const dir = arg.trim() ? parentPath(path) : session.cwd;
      const stem = arg.trim() ? baseName(path) : 'ferry';
      session.authorize('w', dir);
      for (let attempt = 0; attempt < 8; attempt++) {
        const target = joinPath(dir, attempt === 0 && arg.trim() ? stem : `${stem}.${uniqueSuffix()}`);
        try {
          await session.storage.stat(target);
          continue; // taken
        } catch (err) {
          if ((err as FerryError).code !== ErrorCodes.NOT_FOUND) throw err;
        }
        return store(session, target, { exclusive: true });
      }
      throw new FerryError(ErrorCodes.EXISTS, 'no unique name found');
    },
  },
  {
    verb: 'ABOR',
    syntax: 'ABOR',
    auth: true,
    arg: 'none',
    duringTransfer: true,
    async handler(session) {
      const aborted = await session.abortTransfer();
      // RFC 959 §4.1.3: the aborted transfer got 426; ABOR itself gets 226.
      session.reply(226, aborted ? 'ABOR successful.' : 'No transfer to abort.');
    },
  },
];
