/**
 * Permission specs as operators write them: letters (pyftpdlib's
 * e l r a d f m w M T) or a readable alias, plus per-directory overrides.
 */
import { ALL_PERMISSIONS, READ_PERMISSIONS, type Permission } from './types.js';

/**
 * `read` lists and downloads; `write` adds uploading, appending and making
 * directories, but not deleting, renaming or changing modes (for devices
 * that only drop files); `full` is everything.
 */
export const PERMISSION_ALIASES: Readonly<Record<string, string>> = Object.freeze({
  none: '',
  read: READ_PERMISSIONS,
  write: 'elrawm',
  full: ALL_PERMISSIONS,
});

/** The first character of `spec` that is no permission letter ('' for an empty spec); null when `spec` is valid. */
function badLetter(spec: string): string | null {
  if (PERMISSION_ALIASES[spec] !== undefined) return null;
  if (spec.length === 0) return '';
  return [...spec].find((letter) => !ALL_PERMISSIONS.includes(letter)) ?? null;
}

/**
 * Letters for an alias or a string of letters; null when it is neither.
 * The one rule for permission specs: the config schema, the users file and
 * the library's authenticators (through `checkPermissions`) all use it.
 */
export function parsePermissions(spec: string): string | null {
  if (badLetter(spec) !== null) return null;
  return PERMISSION_ALIASES[spec] ?? [...new Set(spec)].join('');
}

export const PERMISSION_HELP = `letters from "${ALL_PERMISSIONS}" or one of ${Object.keys(PERMISSION_ALIASES).join(', ')}`;

/** A permission spec given to an authenticator that is neither letters nor an alias (thrown at construction). */
export class PermissionSpecError extends TypeError {
  override readonly name = 'PermissionSpecError';

  constructor(
    readonly username: string,
    /** The spec as given, e.g. "readonly". */
    readonly spec: string,
    /** The first character that is no permission letter ('' for an empty spec). */
    readonly letter: string,
    /** Where it was given: 'permissions' or 'directoryPermissions["/dir"]'. */
    readonly setting: string,
  ) {
    const what = letter === '' ? 'is empty' : `has "${letter}", which is no permission letter`;
    super(`user ${username}: ${setting} "${spec}" ${what}; use ${PERMISSION_HELP}`);
  }
}

/** The letters of `spec` (see parsePermissions), or a PermissionSpecError naming the user and the letter. */
export function checkPermissions(username: string, spec: string, setting = 'permissions'): string {
  const letter = badLetter(spec);
  if (letter !== null) throw new PermissionSpecError(username, spec, letter, setting);
  return parsePermissions(spec)!;
}

/**
 * A check where the deepest configured directory containing the path decides
 * (overrides apply to the whole subtree), and `base` applies elsewhere.
 * Paths are normalised virtual paths ('/', '/a/b').
 */
export function directoryPermissions(
  base: string,
  overrides: Readonly<Record<string, string>>,
): (permission: Permission, path: string) => boolean {
  // Deepest first, so the first match is the most specific.
  const rules = Object.entries(overrides)
    .map(([dir, letters]) => ({ dir: dir === '/' ? '/' : dir.replace(/\/+$/, ''), letters }))
    .sort((a, b) => b.dir.length - a.dir.length);
  return (permission, path) => {
    for (const { dir, letters } of rules) {
      if (dir === '/' || path === dir || path.startsWith(dir + '/')) return letters.includes(permission);
    }
    return base.includes(permission);
  };
}
