/**
 * Session settings and information: NOOP SYST FEAT OPTS (UTF8, MLST) HELP
 * STAT TYPE MODE STRU ALLO SITE (HELP, CHMOD). FEAT and HELP are built from the command table, so they
 * list exactly what is implemented.
 */
import { parseOptsMlst } from '../../protocol/listing.js';
import { stripListOptions } from '../../protocol/path.js';
import { alias, type CommandSpec } from '../command.js';
import type { Session } from '../session.js';
import { refuseRoot } from './file-ops.js';
import { statListing } from './listing.js';

function features(session: Session): string[] {
  const lines = new Set<string>();
  for (const spec of session.host.commands.values()) {
    const line = spec.feature?.(session);
    if (line) lines.add(` ${line}`);
  }
  return [...lines].sort();
}

function help(session: Session): string[] {
  const verbs = [...session.host.commands.keys()].filter((verb) => !verb.includes(' ')).sort();
  const rows: string[] = [];
  for (let i = 0; i < verbs.length; i += 8) rows.push(' ' + verbs.slice(i, i + 8).map((v) => v.padEnd(5)).join(' '));
  return rows;
}

/** RFC 959 §4.1.2 TYPE: A [N], I, L 8. Other types and formats are 504. */
function parseType(arg: string): 'A' | 'I' | 'unsupported' | null {
  const words = arg.trim().toUpperCase().split(/\s+/);
  const [type, param] = words;
  if (words.length > 2) return null;
  if (type === 'A') return param === undefined || param === 'N' ? 'A' : param === 'T' || param === 'C' ? 'unsupported' : null;
  if (type === 'I') return param === undefined ? 'I' : null;
  if (type === 'L8') return param === undefined ? 'I' : null;
  if (type === 'L') return param === '8' ? 'I' : /^\d+$/.test(param ?? '') ? 'unsupported' : null;
  if (type === 'E') return 'unsupported';
  return null;
}

/** The rows of a parent verb (SITE, OPTS), for HELP. */
function subcommandRows(session: Session, parent: string): CommandSpec[] {
  return [...session.host.commands.values()].filter((spec) => spec.verb.startsWith(`${parent} `)).sort((a, b) => a.verb.localeCompare(b.verb));
}

const CHMOD_ARG = /^([0-7]{3,4}) (.+)$/;

/** SITE and its rows: the parent answers only for words no row has. */
const siteCommands: CommandSpec[] = [
  {
    verb: 'SITE',
    syntax: 'SITE <sp> command [<sp> arguments] (HELP SITE lists them)',
    auth: false,
    arg: 'required',
    subcommands: true,
    handler(session, { arg }) {
      const word = arg.trim().split(' ')[0]!.toUpperCase();
      session.reply(500, `Unknown SITE command "${word.slice(0, 16)}".`);
    },
  },
  {
    verb: 'SITE HELP',
    syntax: 'SITE HELP',
    auth: false,
    arg: 'optional',
    handler(session) {
      const rows = subcommandRows(session, 'SITE').map((spec) => ` ${spec.syntax.slice('SITE '.length)}`);
      session.reply(214, ['SITE commands:', ...rows, 'End.']);
    },
  },
  {
    verb: 'SITE CHMOD',
    syntax: 'SITE CHMOD <sp> mode <sp> pathname',
    auth: true,
    arg: 'required',
    // The path is the words after the mode; a line without a mode is refused by the handler (501).
    path: (arg) => CHMOD_ARG.exec(arg)?.[2] ?? '',
    permission: 'M',
    async handler(session, { arg, path }) {
      const match = CHMOD_ARG.exec(arg);
      if (!match) {
        session.reply(501, 'Syntax: SITE CHMOD <octal mode> <path>');
        return;
      }
      const storage = session.storage;
      if (!storage.chmod) {
        session.reply(502, 'SITE CHMOD is not supported by this storage.');
        return;
      }
      refuseRoot(path, 'SITE CHMOD');
      await storage.chmod(path, parseInt(match[1]!, 8));
      session.reply(200, 'SITE CHMOD successful.');
    },
  },
];

/** RFC 2640 §3.2: UTF-8 paths are always on; announced by the UTF8 feature. */
const utf8: CommandSpec = {
  verb: 'OPTS UTF8',
  syntax: 'OPTS UTF8 <sp> ON',
  auth: false,
  arg: 'optional',
  feature: () => 'UTF8',
  handler(session, { arg }) {
    if (arg.trim().toUpperCase() === 'OFF') session.reply(504, 'UTF-8 cannot be turned off.');
    else session.reply(200, 'UTF-8 is always on.');
  },
};

/** OPTS and its rows (RFC 2389 §4): the parent answers only for options no row has. */
const optsCommands: CommandSpec[] = [
  {
    verb: 'OPTS',
    syntax: 'OPTS <sp> command [<sp> options]',
    auth: false,
    arg: 'required',
    subcommands: true,
    handler(session, { arg }) {
      const word = arg.trim().split(' ')[0]!;
      session.reply(501, `Option "${word.slice(0, 16)}" not understood.`);
    },
  },
  utf8,
  // Some clients spell it with a dash.
  { ...alias(utf8, 'OPTS UTF-8'), feature: undefined },
  {
    verb: 'OPTS MLST',
    syntax: 'OPTS MLST [<sp> fact;fact;...]',
    auth: false,
    arg: 'optional',
    handler(session, { arg }) {
      // RFC 3659 §7.9: the reply lists the facts now in force.
      session.mlstFacts = parseOptsMlst(arg.trim());
      const facts = [...session.mlstFacts].map((f) => `${f};`).join('');
      session.reply(200, facts ? `MLST OPTS ${facts}` : 'MLST OPTS');
    },
  },
];

export const infoCommands: CommandSpec[] = [
  {
    verb: 'NOOP',
    syntax: 'NOOP',
    auth: false,
    arg: 'none',
    handler: (session) => session.reply(200, 'NOOP ok.'),
  },
  {
    verb: 'SYST',
    syntax: 'SYST',
    auth: false,
    arg: 'none',
    handler: (session) => session.reply(215, 'UNIX Type: L8'),
  },
  {
    verb: 'FEAT',
    syntax: 'FEAT',
    auth: false,
    arg: 'none',
    handler: (session) => session.reply(211, ['Features:', ...features(session), 'End']),
  },
  {
    verb: 'HELP',
    syntax: 'HELP [<sp> command]',
    auth: false,
    arg: 'optional',
    handler(session, { arg }) {
      if (!arg.trim()) {
        session.reply(214, ['The following commands are recognized:', ...help(session), 'Help OK.']);
        return;
      }
      const verb = arg.trim().toUpperCase().replace(/\s+/g, ' ');
      const spec = session.host.commands.get(verb);
      if (!spec) session.reply(501, 'Unknown command.');
      else if (spec.subcommands) session.reply(214, [`Syntax: ${spec.syntax}`, ...subcommandRows(session, verb).map((row) => ` ${row.syntax}`), 'End.']);
      else session.reply(214, `Syntax: ${spec.syntax}`);
    },
  },
  {
    verb: 'STAT',
    syntax: 'STAT [<sp> pathname]',
    auth: false,
    arg: 'optional',
    duringTransfer: true,
    async handler(session, { arg }) {
      const transfer = session.transferStatus();
      if (transfer) {
        session.reply(213, ['Status of the transfer in progress:', ` ${transfer}`, 'End of status.']);
        return;
      }
      if (!arg.trim()) {
        const account = session.account;
        session.reply(211, [
          'Ferry FTP server status:',
          ` Connected from ${session.remoteAddress}`,
          account ? ` Logged in as ${account.username}` : ' Not logged in',
          ` TYPE: ${session.transferType === 'A' ? 'ASCII' : 'BINARY'}, STRUcture: File, MODE: Stream`,
          'End of status.',
        ]);
        return;
      }
      if (!session.loggedIn) {
        session.reply(530, 'Please log in with USER and PASS first.');
        return;
      }
      const path = session.resolve(stripListOptions(arg));
      session.authorize('l', path);
      const { code, lines } = await statListing(session, path);
      session.reply(code, ['Status follows:', ...lines, 'End of status.']);
    },
  },
  {
    verb: 'TYPE',
    syntax: 'TYPE <sp> A | I | L 8',
    auth: true,
    arg: 'required',
    handler(session, { arg }) {
      const type = parseType(arg);
      if (type === null) session.reply(501, 'Syntax: TYPE A | I | L 8');
      else if (type === 'unsupported') session.reply(504, 'Only TYPE A, I and L 8 are supported.');
      else {
        session.transferType = type;
        session.reply(200, `Type set to ${type}.`);
      }
    },
  },
  {
    verb: 'MODE',
    syntax: 'MODE <sp> S',
    auth: true,
    arg: 'required',
    handler(session, { arg }) {
      const mode = arg.trim().toUpperCase();
      if (mode === 'S') session.reply(200, 'Mode set to S.');
      else if (mode === 'B' || mode === 'C') session.reply(504, 'Only MODE S is supported.');
      else session.reply(501, 'Syntax: MODE S');
    },
  },
  {
    verb: 'STRU',
    syntax: 'STRU <sp> F',
    auth: true,
    arg: 'required',
    handler(session, { arg }) {
      const structure = arg.trim().toUpperCase();
      if (structure === 'F') session.reply(200, 'Structure set to F.');
      else if (structure === 'R' || structure === 'P') session.reply(504, 'Only STRU F is supported.');
      else session.reply(501, 'Syntax: STRU F');
    },
  },
  {
    verb: 'ALLO',
    syntax: 'ALLO <sp> bytes',
    auth: true,
    arg: 'required',
    handler(session, { arg }) {
      // RFC 959: ALLO <size> [R <record size>]. The size goes to the next upload's beforeUpload hook.
      const size = /^\s*(\d{1,15})(\s+R\s+\d{1,15})?\s*$/i.exec(arg)?.[1];
      session.allocatedBytes = size === undefined ? null : Number(size);
      session.reply(202, 'No storage allocation necessary.');
    },
  },
  ...siteCommands,
  ...optsCommands,
  {
    // RFC 959 verbs we recognise but deliberately do not implement: 502, not 500.
    verb: 'SMNT',
    syntax: 'SMNT <sp> pathname',
    auth: true,
    arg: 'required',
    handler: (session) => session.reply(502, 'SMNT is not implemented.'),
  },
];
