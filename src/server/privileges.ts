/**
 * Dropping root after binding: ports 21 and 990 need root (or
 * CAP_NET_BIND_SERVICE), serving files must not run as root.
 */
import { readFileSync } from 'node:fs';

export interface RunAs {
  user: string | null;
  group: string | null;
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
  const entry = passwdEntry(user);
  if (!entry) throw new Error(`runAs.user: no user "${user}" on this system`);
  if (process.getuid() !== 0) {
    if (process.getuid() === entry.uid) return; // already that user
    throw new Error(`runAs.user: only root can switch to "${user}"; start as root or remove runAs`);
  }
  const gid = group ?? entry.gid;
  // The POSIX-only methods are optional in Node's types; the checks above ran on POSIX.
  const posix = process as unknown as { initgroups(user: string, group: string | number): void; setgid(id: string | number): void; setuid(id: number): void };
  try {
    posix.initgroups(entry.name, gid);
    posix.setgid(gid);
    posix.setuid(entry.uid);
  } catch (err) {
    throw new Error(`runAs: cannot switch to ${user}${group ? `:${group}` : ''}: ${(err as Error).message}`);
  }
}

/** The /etc/passwd entry for a name or numeric uid. */
function passwdEntry(user: string): { name: string; uid: number; gid: number } | null {
  let text = '';
  try {
    text = readFileSync('/etc/passwd', 'utf8');
  } catch {
    return null;
  }
  for (const line of text.split('\n')) {
    const [name, , uid, gid] = line.split(':');
    if (name && (name === user || uid === user)) return { name, uid: Number(uid), gid: Number(gid) };
  }
  return null;
}
