/** The one table of commands: every verb the server knows, by name. */
import type { CommandSpec } from './command.js';
import { authCommands } from './commands/auth.js';
import { dataSetupCommands } from './commands/data-setup.js';
import { fileCommands } from './commands/file-ops.js';
import { hashCommands } from './commands/hash.js';
import { infoCommands } from './commands/info.js';
import { listingCommands } from './commands/listing.js';
import { navigationCommands } from './commands/navigation.js';
import { tlsCommands } from './commands/tls.js';
import { transferCommands } from './commands/transfer.js';

/**
 * The built-in commands and an embedder's `extra` ones (new verbs, or new
 * rows under SITE and OPTS). A verb already in the table is refused: a
 * command that silently replaced a built-in would change what every
 * client sees.
 */
export function commandTable(extra: readonly CommandSpec[] = []): Map<string, CommandSpec> {
  const table = new Map<string, CommandSpec>();
  const add = (spec: CommandSpec, origin: string): void => {
    const verb = spec.verb;
    if (typeof verb !== 'string' || !/^[A-Z][A-Z0-9-]{0,15}( [A-Z0-9][A-Z0-9-]{0,15})?$/.test(verb)) {
      throw new TypeError(`commands: verb ${JSON.stringify(verb)} must be one or two upper-case words, like "XYZ" or "SITE XYZ"`);
    }
    if (typeof spec.handler !== 'function') throw new TypeError(`commands: ${verb} has no handler function`);
    if (table.has(verb)) throw new TypeError(`commands: ${verb} is ${origin === 'built-in' ? 'listed twice' : 'already a command of the server'}; choose another verb`);
    const parent = verb.includes(' ') ? table.get(verb.slice(0, verb.indexOf(' '))) : undefined;
    if (verb.includes(' ') && !parent?.subcommands) throw new TypeError(`commands: ${verb}: ${verb.split(' ')[0]} takes no subcommands (SITE and OPTS do)`);
    table.set(verb, spec);
  };
  for (const spec of [
    ...authCommands,
    ...tlsCommands,
    ...infoCommands,
    ...navigationCommands,
    ...fileCommands,
    ...dataSetupCommands,
    ...transferCommands,
    ...listingCommands,
    ...hashCommands,
  ]) add(spec, 'built-in');
  for (const spec of extra) add(spec, 'extra');
  return table;
}

/**
 * The row a command line runs: the verb's, or for a parent verb the row of
 * its first word ('SITE CHMOD 644 x' → 'SITE CHMOD' with '644 x'). A first
 * word without a row runs the parent, which answers that it is unknown.
 */
export function findCommand(table: ReadonlyMap<string, CommandSpec>, verb: string, arg: string): { spec: CommandSpec; arg: string } | null {
  const spec = table.get(verb);
  if (!spec?.subcommands) return spec ? { spec, arg } : null;
  const trimmed = arg.trimStart();
  const space = trimmed.indexOf(' ');
  const word = (space === -1 ? trimmed : trimmed.slice(0, space)).toUpperCase();
  const row = word ? table.get(`${verb} ${word}`) : undefined;
  return row ? { spec: row, arg: space === -1 ? '' : trimmed.slice(space + 1) } : { spec, arg };
}
