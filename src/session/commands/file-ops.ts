/** Directory and file operations: MKD RMD DELE RNFR RNTO SIZE MDTM MFMT. */
import type { Readable } from 'node:stream';
import { ErrorCodes, FerryError } from '../../errors.js';
import { LfToCrlf } from '../../protocol/ascii.js';
import { formatMlsxTime, parseMlsxTime } from '../../protocol/listing.js';
import { quotePath } from '../../protocol/reply.js';
import { alias, type CommandSpec } from '../command.js';

const MAX_ASCII_SIZE_BYTES = 64 * 1024 * 1024;

async function asciiSize(source: Readable): Promise<number> {
  const converter = new LfToCrlf();
  let size = 0;
  for await (const chunk of source) size += converter.convert(chunk as Buffer).length;
  return size;
}

const mkd: CommandSpec = {
  verb: 'MKD',
  syntax: 'MKD <sp> pathname',
  auth: true,
  arg: 'required',
  path: 'plain',
  permission: 'm',
  async handler(session, { path }) {
    if (path === '/') throw new FerryError(ErrorCodes.EXISTS);
    await session.storage.mkdir(path);
    session.host.notify('mkdir', { ...session.who, path });
    session.reply(257, `${quotePath(path)} created.`);
  },
};

const rmd: CommandSpec = {
  verb: 'RMD',
  syntax: 'RMD <sp> pathname',
  auth: true,
  arg: 'required',
  path: 'plain',
  permission: 'd',
  async handler(session, { path }) {
    if (path === '/') throw new FerryError(ErrorCodes.ACCESS_DENIED, 'refusing to remove the root');
    await session.storage.rmdir(path);
    session.host.notify('rmdir', { ...session.who, path });
    session.reply(250, 'Directory removed.');
  },
};

const dele: CommandSpec = {
  verb: 'DELE',
  syntax: 'DELE <sp> pathname',
  auth: true,
  arg: 'required',
  path: 'plain',
  permission: 'd',
  async handler(session, { path }) {
    await session.runHook('beforeDelete', { path });
    await session.storage.delete(path);
    session.host.notify('delete', { ...session.who, path });
    session.reply(250, 'File deleted.');
  },
};

const rnfr: CommandSpec = {
  verb: 'RNFR',
  syntax: 'RNFR <sp> pathname',
  auth: true,
  arg: 'required',
  path: 'plain',
  permission: 'f',
  async handler(session, { path }) {
    if (path === '/') throw new FerryError(ErrorCodes.ACCESS_DENIED, 'refusing to rename the root');
    await session.storage.stat(path);
    session.renameFrom = path;
    session.reply(350, 'Ready for RNTO.');
  },
};

const rnto: CommandSpec = {
  verb: 'RNTO',
  syntax: 'RNTO <sp> pathname',
  auth: true,
  arg: 'required',
  path: 'plain',
  permission: 'f',
  async handler(session, { path }) {
    const from = session.renameFrom;
    session.renameFrom = null;
    if (from === null) {
      session.reply(503, 'Send RNFR first.');
      return;
    }
    const asked = await session.runHook('beforeRename', { from, to: path });
    const to = asked.to === path ? path : session.rewrittenPath(asked.to, 'f');
    if (to === '/' || to.startsWith(`${from}/`)) throw new FerryError(ErrorCodes.INVALID_NAME, 'rename into itself');
    await session.storage.rename(from, to);
    session.host.notify('rename', { ...session.who, from, to });
    session.reply(250, 'Rename successful.');
  },
};

const size: CommandSpec = {
  verb: 'SIZE',
  syntax: 'SIZE <sp> pathname',
  auth: true,
  arg: 'required',
  path: 'plain',
  permission: 'l',
  feature: () => 'SIZE',
  async handler(session, { path }) {
    const info = await session.storage.stat(path);
    if (info.type === 'dir') throw new FerryError(ErrorCodes.IS_A_DIRECTORY);
    if (session.transferType !== 'A') {
      session.reply(213, String(info.size));
      return;
    }
    // RFC 3659 §4: the size is what RETR would send in the current TYPE, so in
    // ASCII mode the file is read once to count its line endings (bounded).
    if (info.size > MAX_ASCII_SIZE_BYTES) {
      session.reply(550, 'SIZE in ASCII mode is limited to files of 64 MiB; send TYPE I first.');
      return;
    }
    session.reply(213, String(await asciiSize(await session.storage.read(path))));
  },
};

const mdtm: CommandSpec = {
  verb: 'MDTM',
  syntax: 'MDTM <sp> pathname',
  auth: true,
  arg: 'required',
  path: 'plain',
  permission: 'l',
  feature: () => 'MDTM',
  async handler(session, { path }) {
    const info = await session.storage.stat(path);
    session.reply(213, formatMlsxTime(info.mtime));
  },
};

/**
 * The served root's own mode and time belong to the operator: SITE CHMOD and
 * MFMT refuse it (550) whatever the storage (issue 11: `SITE CHMOD 777 /`
 * made the served folder world-writable).
 */
export function refuseRoot(path: string, command: string): void {
  if (path === '/') throw new FerryError(ErrorCodes.NO_PERMISSION, `${command} on the root`);
}

// draft-somers-ftp-mfxx: MFMT <time> <path> sets the modification time.
const MFMT_ARG = /^(\S+) (.+)$/;

const mfmt: CommandSpec = {
  verb: 'MFMT',
  syntax: 'MFMT <sp> YYYYMMDDHHMMSS <sp> pathname',
  auth: true,
  arg: 'required',
  path: (arg) => MFMT_ARG.exec(arg)?.[2] ?? '',
  permission: 'T',
  feature: (session) => (!session.loggedIn || session.storage.setModifiedTime ? 'MFMT' : null),
  async handler(session, { arg, path }) {
    const match = MFMT_ARG.exec(arg);
    const mtime = match ? parseMlsxTime(match[1]!) : null;
    if (!match || !mtime) {
      session.reply(501, 'Syntax: MFMT YYYYMMDDHHMMSS pathname');
      return;
    }
    const storage = session.storage;
    if (!storage.setModifiedTime) {
      session.reply(502, 'MFMT is not supported by this storage.');
      return;
    }
    refuseRoot(path, 'MFMT');
    await storage.setModifiedTime(path, mtime);
    session.reply(213, `Modify=${formatMlsxTime(mtime)}; ${match[2]}`);
  },
};

export const fileCommands: CommandSpec[] = [mkd, alias(mkd, 'XMKD'), rmd, alias(rmd, 'XRMD'), dele, rnfr, rnto, size, mdtm, mfmt];
