/**
 * Dropping root after binding: ports 21 and 990 need root (or
 * CAP_NET_BIND_SERVICE), serving files must not run as root.
 */
import { execFileSync } from 'node:child_process';

export interface RunAs {
  user: string | null;
  group: string | null;
}

/**
 * A user's uid and primary gid, through the system's user database (`id`
 * asks NSS, so LDAP and systemd users work, not only /etc/passwd); null if
 * there is no such user.
 */
export function lookupUser(user: string): { uid: number; gid: number } | null {
  try {
    const id = (flag: string) => Number(execFileSync('id', [flag, '--', user], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    return null;
  }
}

/**
 * Become `user` (and `group`, default the user's primary group), with the
 * user's supplementary groups. A no-op without a user. Throws with an
 * actionable message when it cannot.
 */
export function dropPrivileges({ user, group }: RunAs): void {
  if (!user) return;
  if (typeof process.setuid !== 'function' || typeof process.getuid !== 'function') {
    throw new Error('runAs: switching users is not supported on this platform; remove runAs');
  }
  const entry = lookupUser(user);
  if (!entry) throw new Error(`runAs.user: no user "${user}" on this system`);
  if (entry.uid === 0) throw new Error(`runAs.user: "${user}" is root; name an unprivileged user such as ftp or nobody`);
  if (process.getuid() !== 0) {
    if (process.getuid() === entry.uid) return; // already that user
    throw new Error(`runAs.user: only root can switch to "${user}"; start as root or remove runAs`);
  }
  const gid = group ?? entry.gid;
  if (gid === 0 || gid === '0' || gid === 'root') throw new Error('runAs.group: root is not a group to serve files as; name another');
  // The POSIX-only methods are optional in Node's types; the checks above ran on POSIX.
  const posix = process as unknown as { initgroups(user: string | number, group: string | number): void; setgid(id: string | number): void; setuid(id: number): void };
  try {
    // Groups first: after setuid there is no right left to change them.
    posix.initgroups(/^\d+$/.test(user) ? Number(user) : user, gid);
    posix.setgid(gid);
    posix.setuid(entry.uid);
  } catch (err) {
    throw new Error(`runAs: cannot switch to ${user}${group ? `:${group}` : ''}: ${(err as Error).message}`);
  }
}
