/**
 * Directory listings: LIST, NLST (RFC 959), MLSD, MLST (RFC 3659), and the
 * STAT-with-path listing over the control connection. Listings stream from
 * storage to the socket in batches; no directory is ever held whole.
 */
import { Readable } from 'node:stream';
import { ErrorCodes, FerryError } from '../../errors.js';
import { sendToSocket } from '../../data/transfer.js';
import { formatFeatMlst, formatListLine, formatMlsxEntry, mlsxPermFact } from '../../protocol/listing.js';
import { baseName, joinPath } from '../../protocol/path.js';
import type { FileInfo } from '../../storage/types.js';
import type { CommandSpec } from '../command.js';
import type { Session } from '../session.js';

/** Bytes gathered before a write: large enough to amortise syscalls, small enough to stay flat. */
const BATCH_CHARS = 64 * 1024;
/** STAT <path> answers over the control connection; bound the reply. */
export const MAX_STAT_ENTRIES = 10_000;

async function* batches(entries: AsyncIterable<FileInfo>, format: (info: FileInfo) => string): AsyncGenerator<Buffer> {
  let batch = '';
  for await (const info of entries) {
    batch += format(info) + '\r\n';
    if (batch.length >= BATCH_CHARS) {
      yield Buffer.from(batch);
      batch = '';
    }
  }
  if (batch) yield Buffer.from(batch);
}

/** Entries to list for `path` (ls semantics): a directory's children, or the file itself. */
async function entriesOf(session: Session, path: string): Promise<AsyncIterable<FileInfo>> {
  const info = await session.storage.stat(path);
  if (info.type === 'dir') return session.storage.list(path);
  return (async function* () {
    yield info;
  })();
}

/** The MLSx perm fact of the entry at `path`, from the account's permissions there. */
function permFact(session: Session, path: string, info: FileInfo): string {
  return mlsxPermFact(info, (p) => session.can(p, path));
}

async function sendListing(session: Session, path: string, entries: AsyncIterable<FileInfo>, format: (info: FileInfo) => string): Promise<void> {
  await session.transferData(path, 'Here comes the directory listing.', (socket, signal) =>
    sendToSocket(Readable.from(batches(entries, format)), socket, { ascii: false, signal }),
  );
}

export const listingCommands: CommandSpec[] = [
  {
    verb: 'LIST',
    syntax: 'LIST [<sp> pathname]',
    auth: true,
    arg: 'optional',
    path: 'list-options',
    permission: 'l',
    transfer: true,
    async handler(session, { path }) {
      const entries = await entriesOf(session, path);
      const now = new Date();
      await sendListing(session, path, entries, (info) => formatListLine(info, now));
    },
  },
  {
    verb: 'NLST',
    syntax: 'NLST [<sp> pathname]',
    auth: true,
    arg: 'optional',
    path: 'list-options',
    permission: 'l',
    transfer: true,
    async handler(session, { path }) {
      const entries = await entriesOf(session, path);
      await sendListing(session, path, entries, (info) => info.name);
    },
  },
  {
    verb: 'MLSD',
    syntax: 'MLSD [<sp> pathname]',
    auth: true,
    arg: 'optional',
    path: 'plain',
    permission: 'l',
    transfer: true,
    async handler(session, { path }) {
      const info = await session.storage.stat(path);
      // RFC 3659 §7.2: MLSD of something that is not a directory is a 501.
      if (info.type !== 'dir') throw new FerryError(ErrorCodes.NOT_A_DIRECTORY);
      const facts = session.mlstFacts;
      async function* withSelf(): AsyncGenerator<FileInfo> {
        yield { ...info, name: '.' };
        yield* session.storage.list(path);
      }
      await sendListing(session, path, withSelf(), (entry) =>
        entry.name === '.'
          ? formatMlsxEntry(entry, facts, permFact(session, path, entry), 'cdir')
          : formatMlsxEntry(entry, facts, permFact(session, joinPath(path, entry.name), entry)),
      );
    },
  },
  {
    verb: 'MLST',
    syntax: 'MLST [<sp> pathname]',
    auth: true,
    arg: 'optional',
    path: 'plain',
    permission: 'l',
    feature: (session) => `MLST ${formatFeatMlst(session.mlstFacts)}`,
    async handler(session, { path }) {
      const info = await session.storage.stat(path);
      const entry = formatMlsxEntry({ ...info, name: path }, session.mlstFacts, permFact(session, path, info));
      // RFC 3659 §7.2: the fact line is indented by one space.
      session.reply(250, [`Listing ${baseName(path)}`, ` ${entry}`, 'End.']);
    },
  },
];

/** STAT <path>: the LIST lines over the control connection, bounded. */
export async function statListing(session: Session, path: string): Promise<string[]> {
  const entries = await entriesOf(session, path);
  const now = new Date();
  const lines: string[] = [];
  for await (const info of entries) {
    if (lines.length >= MAX_STAT_ENTRIES) {
      lines.push(`(listing stopped after ${MAX_STAT_ENTRIES} entries; use LIST or MLSD for the rest)`);
      break;
    }
    lines.push(formatListLine(info, now));
  }
  return lines;
}
