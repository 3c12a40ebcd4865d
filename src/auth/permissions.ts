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

/** Letters for an alias or a string of letters; null when it is neither. */
export function parsePermissions(spec: string): string | null {
  const alias = PERMISSION_ALIASES[spec];
  if (alias !== undefined) return alias;
  if (spec.length === 0) return null;
  for (const letter of spec) if (!ALL_PERMISSIONS.includes(letter)) return null;
  return [...new Set(spec)].join('');
}

export const PERMISSION_HELP = `letters from "${ALL_PERMISSIONS}" or one of ${Object.keys(PERMISSION_ALIASES).join(', ')}`;

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
