/** The one table of commands: every verb the server knows, by name. */
import type { CommandSpec } from './command.js';
import { authCommands } from './commands/auth.js';
import { dataSetupCommands } from './commands/data-setup.js';
import { fileCommands } from './commands/file-ops.js';
import { infoCommands } from './commands/info.js';
import { listingCommands } from './commands/listing.js';
import { navigationCommands } from './commands/navigation.js';
import { tlsCommands } from './commands/tls.js';
import { transferCommands } from './commands/transfer.js';

export function defaultCommands(): Map<string, CommandSpec> {
  const table = new Map<string, CommandSpec>();
  for (const spec of [
    ...authCommands,
    ...tlsCommands,
    ...infoCommands,
    ...navigationCommands,
    ...fileCommands,
    ...dataSetupCommands,
    ...transferCommands,
    ...listingCommands,
  ]) {
    if (table.has(spec.verb)) throw new Error(`duplicate command ${spec.verb}`);
    table.set(spec.verb, spec);
  }
  return table;
}
