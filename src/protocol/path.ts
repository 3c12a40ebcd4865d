/**
 * Virtual paths. The client's view is a tree rooted at '/', the account's
 * root. Every argument is resolved here, before any storage call, into a
 * normalised absolute path: '..' stops at the root (as in a chroot), '.' and
 * empty segments vanish, absolute paths start at the virtual root. Nothing a
 * client types can name a place above '/'.
 */

export const MAX_PATH_BYTES = 4096;
export const MAX_NAME_BYTES = 255;

export type PathResult = { ok: true; path: string } | { ok: false; reason: 'nul' | 'control' | 'too-long' };

// eslint-disable-next-line no-control-regex
const CONTROL = /[\x01-\x1f\x7f]/;

export function resolvePath(cwd: string, input: string): PathResult {
  if (input.includes('\0')) return { ok: false, reason: 'nul' };
  // Names with control characters (CR, ESC, ...) break listings and terminals.
  if (CONTROL.test(input)) return { ok: false, reason: 'control' };
  const raw = input.startsWith('/') ? input : `${cwd}/${input}`;
  const parts: string[] = [];
  for (const segment of raw.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') parts.pop();
    else if (Buffer.byteLength(segment) > MAX_NAME_BYTES) return { ok: false, reason: 'too-long' };
    else parts.push(segment);
  }
  const path = '/' + parts.join('/');
  if (Buffer.byteLength(path) > MAX_PATH_BYTES) return { ok: false, reason: 'too-long' };
  return { ok: true, path };
}

export function parentPath(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash <= 0 ? '/' : path.slice(0, slash);
}

export function baseName(path: string): string {
  return path === '/' ? '/' : path.slice(path.lastIndexOf('/') + 1);
}

export function joinPath(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

/**
 * LIST and NLST take ls-style options first (`LIST -la`, `LIST -al dir`,
 * `NLST -1`, which ncftpls sends by default). Strip leading tokens of the
 * form -[letters and digits] (ls has digit options: -1); a file literally
 * named "-l" or "-1" can still be listed as "./-l", "./-1".
 */
export function stripListOptions(arg: string): string {
  let rest = arg.trimStart();
  for (;;) {
    const match = /^-[A-Za-z0-9]+(?:\s+|$)/.exec(rest);
    if (!match) return rest;
    rest = rest.slice(match[0].length);
  }
}
