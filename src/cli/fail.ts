/** How the CLI ends: one line on stderr; 2 for usage errors, 1 for everything else. */
import { ConfigError } from '../config/validate.js';

export function fail(message: string, exitCode = 2): never {
  process.stderr.write(`ferry: ${message}\n`);
  process.exit(exitCode);
}

/** A configuration problem (one line each) exits `exitCode`, 1 by default; anything else is reported as is. */
export function failWithConfig(err: unknown, exitCode = 1): never {
  if (err instanceof ConfigError) {
    process.stderr.write(err.problems.map((p) => `ferry: ${p}\n`).join(''));
    process.exit(exitCode);
  }
  fail((err as Error).message, 1);
}
