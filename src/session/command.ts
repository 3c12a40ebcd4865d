/**
 * A command described as data. The dispatcher runs the generic checks from
 * these fields, in a fixed order, before any handler runs: unknown verb (500),
 * argument arity (501), login (530), path validity (553), permission (550).
 * Handlers never repeat them.
 *
 * Subcommands are rows too: a row whose verb is two words ('SITE CHMOD',
 * 'OPTS MLST') runs when its parent verb (a row with `subcommands: true`)
 * comes with that first word, and gets the rest of the line as its
 * argument; the same checks run from its own fields. The parent's handler
 * runs only for a first word no row has (it answers "unknown").
 */
import type { Permission } from '../auth/types.js';
import type { Session } from './session.js';

export interface CommandContext {
  /** The argument, untouched (everything after the first space). */
  arg: string;
  /**
   * For commands with `path`: the argument resolved to a normalised virtual
   * path (the current directory when the argument is empty and optional).
   */
  path: string;
}

export interface CommandSpec {
  /** The verb ('RETR'), or parent verb and subcommand ('SITE CHMOD'), upper case. */
  verb: string;
  /** Syntax shown by HELP, e.g. "RETR <sp> pathname". */
  syntax: string;
  /** Needs a logged-in user (530 otherwise). */
  auth: boolean;
  /** Whether an argument is required, optional or forbidden. */
  arg: 'none' | 'optional' | 'required';
  /**
   * The argument is a path to resolve ('plain'), a LIST/NLST path that may
   * start with ls options ('list-options'), or a function that picks the path
   * out of the argument (MFMT's second word). Resolution errors answer 553.
   */
  path?: 'plain' | 'list-options' | ((arg: string) => string);
  /** Permission letter needed on `path` (550 without it). */
  permission?: Permission;
  /** The command opens a data transfer: ABOR and STAT may interrupt it. */
  transfer?: boolean;
  /** May run while a transfer is in progress (RFC 959 §4.1.3: ABOR, STAT). */
  duringTransfer?: boolean;
  /** A parent verb (SITE, OPTS): its first word picks a subcommand row. */
  subcommands?: boolean;
  /** The FEAT line this command contributes (RFC 2389), or null to omit it for this session. */
  feature?: (session: Session) => string | null;
  handler(session: Session, context: CommandContext): void | Promise<void>;
}

/** Register aliases (XPWD for PWD, ...) as copies under another verb. */
export function alias(spec: CommandSpec, verb: string): CommandSpec {
  return { ...spec, verb, syntax: spec.syntax.replace(spec.verb, verb) };
}
