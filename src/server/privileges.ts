/**
 * Dropping root after binding: ports 21 and 990 need root (or
 * CAP_NET_BIND_SERVICE), serving files must not run as root.
 */
import { execFile, execFileSync } from 'node:child_process';
import { access, constants } from 'node:fs/promises';

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

export interface FolderAccess {
  /** May enter and list it. */
  read: boolean;
  /** May create and remove entries in it. */
  write: boolean;
}

/**
 * Run by a child (`node -e`) as root: switch as dropPrivileges does, then
 * ask the kernel, so groups, ACLs and every parent folder count as they
 * will for the server. Arguments: user, uid, group or gid, folder.
 */
const ACCESS_PROBE = `
const [user, uid, group, folder] = process.argv.slice(1);
const id = (v) => (/^\\d+$/.test(v) ? Number(v) : v);
process.initgroups(id(user), id(group));
process.setgid(id(group));
process.setuid(Number(uid));
const fs = require('node:fs');
const can = (mode) => { try { fs.accessSync(folder, mode); return true; } catch { return false; } };
process.stdout.write(JSON.stringify({ read: can(fs.constants.R_OK | fs.constants.X_OK), write: can(fs.constants.W_OK | fs.constants.X_OK) }));
`;

/**
 * What `runAs` will be allowed to do with `folder` once privileges are
 * dropped. Started as root, a short-lived child switches to that user and
 * asks; already running as that user (a reload), the process asks itself.
 * null when there is nothing to ask (no runAs) or no way to (not root, no
 * such user, not POSIX): dropPrivileges reports those.
 */
export async function accessAs({ user, group }: RunAs, folder: string): Promise<FolderAccess | null> {
  if (!user || typeof process.getuid !== 'function') return null;
  const entry = lookupUser(user);
  if (!entry) return null;
  if (process.getuid() === entry.uid) {
    const can = (mode: number) => access(folder, mode).then(() => true, () => false);
    return { read: await can(constants.R_OK | constants.X_OK), write: await can(constants.W_OK | constants.X_OK) };
  }
  if (process.getuid() !== 0) return null;
  return new Promise((resolve) => {
    execFile(process.execPath, ['-e', ACCESS_PROBE, user, String(entry.uid), String(group ?? entry.gid), folder], { timeout: 10_000, encoding: 'utf8' }, (err, stdout) => {
      try {
        resolve(err ? null : (JSON.parse(stdout) as FolderAccess));
      } catch {
        resolve(null);
      }
    });
  });
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
