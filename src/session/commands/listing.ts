/**
 * Directory listings: LIST, NLST (RFC 959), MLSD, MLST (RFC 3659), and the
 * STAT-with-path listing over the control connection. Listings stream from
 * storage to the socket in batches; no directory is ever held whole.
 */
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import { sendToSocket } from '../../data/transfer.js';
import { formatFeatMlst, formatListLine, formatMlsxEntry, mlsxEntryFormatter, mlsxPermFact } from '../../protocol/listing.js';
import { baseName, joinPath } from '../../protocol/path.js';
import type { Throttle } from '../../limits/throttle.js';
import type { FileInfo } from '../../storage/types.js';
import type { CommandSpec } from '../command.js';
import type { Session } from '../session.js';

/** STAT <path> answers over the control connection; bound the reply. */
const MAX_STAT_ENTRIES = 10_000;

/**
 * An open listing whose first page has already been read, so that errors
 * (unreadable directory) answer before the 150 reply. `close` releases the
 * storage iterator when the listing is never sent.
 */
interface Listing {
  info: FileInfo;
  pages: AsyncIterable<readonly FileInfo[]>;
  close(): void;
}

/** Open the listing of `path` with ls semantics: a directory's children, or the file itself. */
async function openListing(session: Session, path: string): Promise<Listing> {
  const info = await session.storage.stat(path);
  if (info.type !== 'dir') {
    return { info, pages: (async function* () { yield [info]; })(), close() {} };
  }
  const iterator = session.storage.list(path)[Symbol.asyncIterator]();
  const first = await iterator.next();
  const close = () => void iterator.return?.().catch(() => undefined);
  async function* pages(): AsyncGenerator<readonly FileInfo[]> {
    try {
      for (let next = first; !next.done; next = await iterator.next()) yield next.value;
    } finally {
      close();
    }
  }
  return { info, pages: pages(), close };
}

/** One write per page (a page is at most ~1,000 entries, ~100 KB of text). */
async function* formatted(pages: AsyncIterable<readonly FileInfo[]>, format: (info: FileInfo) => string): AsyncGenerator<Buffer> {
  for await (const page of pages) {
    let text = '';
    for (const info of page) text += format(info) + '\r\n';
    if (text) yield Buffer.from(text);
  }
}

/** The MLSx perm fact of the entry at `path`, from the account's permissions there. */
function permFact(session: Session, path: string, info: FileInfo): string {
  return mlsxPermFact(info, (p) => session.can(p, path));
}

/**
 * The MLSx perm fact for entries of `dir`. Without per-path rules it depends
 * only on the entry's type, so it is computed twice per listing, not per entry.
 */
function permFacts(session: Session, dir: string): (info: FileInfo) => string {
  const account = session.account;
  if (account && !account.hasPermission) {
    const fileFact = mlsxPermFact({ type: 'file' } as FileInfo, (p) => session.can(p, dir));
    const dirFact = mlsxPermFact({ type: 'dir' } as FileInfo, (p) => session.can(p, dir));
    return (info) => (info.type === 'dir' ? dirFact : fileFact);
  }
  return (info) => mlsxPermFact(info, (p) => session.can(p, joinPath(dir, info.name)));
}

async function sendListing(session: Session, path: string, listing: Listing, format: (info: FileInfo) => string, head = ''): Promise<void> {
  async function* chunks(): AsyncGenerator<Buffer> {
    if (head) yield Buffer.from(head);
    yield* formatted(listing.pages, format);
  }
  const send = (socket: Socket, signal: AbortSignal, throttle: Throttle | null) => sendToSocket(Readable.from(chunks()), socket, { ascii: false, signal, throttle });
  const sent = await session.transferData(path, 'Here comes the directory listing.', send, 'list');
  if (!sent) listing.close();
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
      const listing = await openListing(session, path);
      const now = new Date();
      await sendListing(session, path, listing, (info) => formatListLine(info, now));
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
      const listing = await openListing(session, path);
      await sendListing(session, path, listing, (info) => info.name);
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
      const listing = await openListing(session, path);
      if (listing.info.type !== 'dir') {
        listing.close();
        // RFC 3659 §7.2.1: MLSD of something that is not a directory is a 501.
        session.reply(501, 'Not a directory; use MLST for a file.');
        return;
      }
      let self: string;
      let perm: (info: FileInfo) => string;
      try {
        perm = permFacts(session, path);
        // RFC 3659 §7.5.1: the listed directory itself, as a cdir entry.
        self = formatMlsxEntry({ ...listing.info, name: '.' }, session.mlstFacts, permFact(session, path, listing.info), 'cdir');
      } catch (err) {
        listing.close(); // e.g. an embedder's hasPermission threw
        throw err;
      }
      const format = mlsxEntryFormatter(session.mlstFacts);
      await sendListing(session, path, listing, (entry) => format(entry, perm(entry)), `${self}\r\n`);
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

/** STAT <path>: the LIST lines over the control connection, bounded. 212 for a directory, 213 for a file (RFC 959). */
export async function statListing(session: Session, path: string): Promise<{ code: number; lines: string[] }> {
  const listing = await openListing(session, path);
  const now = new Date();
  const lines: string[] = [];
  pages: for await (const page of listing.pages) {
    for (const info of page) {
      if (lines.length >= MAX_STAT_ENTRIES) {
        lines.push(`(listing stopped after ${MAX_STAT_ENTRIES} entries; use LIST or MLSD for the rest)`);
        break pages;
      }
      lines.push(formatListLine(info, now));
    }
  }
  return { code: listing.info.type === 'dir' ? 212 : 213, lines };
}
