/**
 * The one rule for user names that become part of a path or an S3 key
 * (`{username}` in a home or a prefix): users-file names follow it, and any
 * other source of names (an HTTP hook, `--user`, a library caller) is
 * checked against it before its name reaches a path.
 *
 * 1-64 letters, digits and `. _ @ + -`, starting with a letter or digit: no
 * '/', '\', '.' or '..', no control characters, and none of the `$`
 * sequences that String.prototype.replace would expand.
 */
export const USERNAME = /^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$/;
export const USERNAME_HELP = 'a user name of 1-64 letters, digits and . _ @ + - (starting with a letter or digit)';

export function isPathSafeUsername(name: string): boolean {
  return USERNAME.test(name);
}

/**
 * `template` with every `{username}` replaced by `username`, literally:
 * replaceAll with a string would expand `$&`, `` $` `` and `$'` in the name
 * into parts of the template (another user's prefix).
 */
export function fillUsername(template: string, username: string): string {
  return template.split('{username}').join(username);
}
