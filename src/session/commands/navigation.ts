/** The current directory: PWD, CWD, CDUP and their X-aliases (RFC 775). */
import { ErrorCodes, FerryError } from '../../errors.js';
import { quotePath } from '../../protocol/reply.js';
import { alias, type CommandSpec } from '../command.js';
import type { Session } from '../session.js';

async function changeDirectory(session: Session, path: string, code: number): Promise<void> {
  const info = await session.storage.stat(path);
  if (info.type !== 'dir') throw new FerryError(ErrorCodes.NOT_A_DIRECTORY);
  session.cwd = path;
  session.reply(code, 'Directory successfully changed.');
}

const pwd: CommandSpec = {
  verb: 'PWD',
  syntax: 'PWD',
  auth: true,
  arg: 'none',
  handler(session) {
    session.reply(257, `${quotePath(session.cwd)} is the current directory.`);
  },
};

const cwd: CommandSpec = {
  verb: 'CWD',
  syntax: 'CWD <sp> pathname',
  auth: true,
  arg: 'required',
  path: 'plain',
  permission: 'e',
  // RFC 3659 §6: paths are a Unix-like tree rooted at '/'.
  feature: () => 'TVFS',
  handler: (session, { path }) => changeDirectory(session, path, 250),
};

const cdup: CommandSpec = {
  verb: 'CDUP',
  syntax: 'CDUP',
  auth: true,
  arg: 'none',
  path: () => '..',
  permission: 'e',
  // RFC 959 §5.4 lists 200 as CDUP's success reply.
  handler: (session, { path }) => changeDirectory(session, path, 200),
};

export const navigationCommands: CommandSpec[] = [pwd, alias(pwd, 'XPWD'), cwd, alias(cwd, 'XCWD'), cdup, alias(cdup, 'XCUP')];
