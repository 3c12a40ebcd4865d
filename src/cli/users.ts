/**
 * `ferry user add|set|passwd|del|list|show` and `ferry hash-password`:
 * manage the users file without editing it by hand. Which file: --file, or
 * users.file of the configuration named by --config (or FERRY_CONFIG).
 */
import { hashPassword } from '../auth/password.js';
import { parsePermissions } from '../auth/permissions.js';
import { homeStorage } from '../config/build.js';
import { CONFIG_ENV, loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { storageUsage } from '../limits/usage.js';
import { S3Storage } from '../storage/s3.js';
import { openUsersFile, type UserInput, type UsersDocument } from '../config/users-file.js';
import { lookupUser } from '../server/privileges.js';
import { fail, failWithConfig } from './fail.js';
import { readPassword } from './prompt.js';

export interface UserFileFlags {
  file?: string;
  config?: string;
}

export interface UserFieldFlags {
  home?: string;
  permissions?: string;
  allowFrom?: string[];
  tls?: UserInput['tls'];
  disabled?: boolean;
  passwordStdin?: boolean;
}

/**
 * The users file to edit, who should own it when it is new (the server's
 * runAs user, so it can read it on reload), and the configuration when it
 * came from one.
 */
async function usersFile(flags: UserFileFlags): Promise<{ file: string; owner?: { uid: number; gid: number }; config?: Config }> {
  if (flags.file) return { file: flags.file };
  const config = flags.config ?? process.env[CONFIG_ENV];
  if (!config) fail('which users file? Pass --file users.yaml, or --config ferry.yaml to use its users.file.');
  try {
    // The same environment as the server's, so both agree on users.file.
    const { config: loaded } = await loadConfig({ file: config, env: process.env });
    if (!loaded.users.file) fail(`${config} has no users.file; set one there or pass --file.`, 1);
    return { file: loaded.users.file, owner: loaded.runAs.user ? (lookupUser(loaded.runAs.user) ?? undefined) : undefined, config: loaded };
  } catch (err) {
    failWithConfig(err);
  }
}

function fields(flags: UserFieldFlags): Partial<UserInput> {
  return { home: flags.home, permissions: flags.permissions, allowFrom: flags.allowFrom, tls: flags.tls, disabled: flags.disabled };
}

async function edit(flags: UserFileFlags, change: (doc: UsersDocument) => Promise<string>, create = false): Promise<void> {
  try {
    const { file, owner } = await usersFile(flags);
    const doc = await openUsersFile(file, { create });
    const done = await change(doc);
    await doc.save(owner);
    process.stdout.write(`${done} in ${doc.file}. A running server applies it on reload (kill -HUP <pid>).\n`);
  } catch (err) {
    failWithConfig(err);
  }
}

export function addUser(name: string, flags: UserFileFlags & UserFieldFlags): Promise<void> {
  return edit(flags, async (doc) => {
    if (doc.has(name)) fail(`user ${name} already exists; use \`ferry user passwd\` or \`ferry user set\`.`, 1);
    const passwordHash = await hashPassword(await readPassword({ fromStdin: !!flags.passwordStdin, confirm: true }).then(nonEmpty));
    doc.set(name, { passwordHash, ...fields(flags) });
    const entry = doc.get(name)!;
    return `Added ${name} (home ${entry.home}, permissions ${entry.permissions} = ${parsePermissions(entry.permissions) || 'none'}${entry.tls ? `, TLS policy ${entry.tls}` : ''})`;
  }, true);
}

export function setUser(name: string, flags: UserFileFlags & UserFieldFlags): Promise<void> {
  return edit(flags, async (doc) => {
    mustExist(doc.has(name), name);
    const changes = fields(flags);
    if (Object.values(changes).every((v) => v === undefined)) fail('nothing to change: give --home, --permissions, --allow-from, --tls, --disable or --enable.');
    doc.set(name, changes);
    return `Updated ${name}`;
  });
}

export function changePassword(name: string, flags: UserFileFlags & UserFieldFlags): Promise<void> {
  return edit(flags, async (doc) => {
    mustExist(doc.has(name), name);
    doc.set(name, { passwordHash: await hashPassword(await readPassword({ fromStdin: !!flags.passwordStdin, confirm: true }).then(nonEmpty)) });
    return `Changed the password of ${name}`;
  });
}

export function deleteUser(name: string, flags: UserFileFlags): Promise<void> {
  return edit(flags, async (doc) => {
    mustExist(doc.delete(name), name);
    return `Deleted ${name}`;
  });
}

export async function listUsers(flags: UserFileFlags): Promise<void> {
  try {
    const doc = await openUsersFile((await usersFile(flags)).file);
    for (const name of doc.names()) {
      const entry = doc.get(name)!;
      process.stdout.write(`${name}\t${entry.home}\t${entry.permissions}${entry.disabled ? '\tdisabled' : ''}\n`);
    }
  } catch (err) {
    failWithConfig(err);
  }
}

export async function showUser(name: string, flags: UserFileFlags): Promise<void> {
  try {
    const { file, config } = await usersFile(flags);
    const entry = (await openUsersFile(file)).get(name);
    mustExist(entry !== undefined, name);
    // Never print the hash: it is as good as the password to an offline attacker.
    const { passwordHash, ...shown } = entry!;
    const scheme = passwordHash.startsWith('$scrypt$') ? 'scrypt' : passwordHash.startsWith('$argon2id$') ? 'argon2id' : 'bcrypt';
    // tls null: the server's tls.policy applies to this user.
    const out: Record<string, unknown> = { name, password: `${scheme} hash`, ...shown, tls: shown.tls ?? null, permissionLetters: parsePermissions(shown.permissions) };
    if (config) {
      // What the server applies: the entry's limits over limits.perUser, and what the home holds now.
      out['effectiveLimits'] = { ...config.limits.perUser, ...definedOnly(shown.limits ?? {}) };
      out['usage'] = await homeUsage(config, name, shown.home);
    } else {
      process.stderr.write('ferry: usage not counted: give --config (not --file) so the home can be found.\n');
    }
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
  } catch (err) {
    failWithConfig(err);
  }
}

/** Bytes and files in the user's home, counted from the files (as a server counts them after a start). */
async function homeUsage(config: Config, name: string, home: string): Promise<{ bytes: number; files: number; countedFrom: string }> {
  const storage = await homeStorage(config, name, home);
  if (!storage) return { bytes: 0, files: 0, countedFrom: 'files (the home does not exist yet)' };
  try {
    return { ...(await storageUsage(storage)), countedFrom: 'files' };
  } finally {
    await storage.close?.();
    if (storage instanceof S3Storage) storage.destroy();
  }
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export async function printHash(flags: { passwordStdin?: boolean }): Promise<void> {
  try {
    process.stdout.write((await hashPassword(nonEmpty(await readPassword({ fromStdin: !!flags.passwordStdin, confirm: true })))) + '\n');
  } catch (err) {
    fail((err as Error).message, 1);
  }
}

/** A password a client can send: not empty, one line (FTP ends a command at the line break). */
function nonEmpty(password: string): string {
  if (password.length === 0) fail('the password is empty; nothing was changed.', 1);
  if (/[\r\n]/.test(password)) fail('the password has a line break in it, which no FTP client can send; give it on one line. Nothing was changed.', 1);
  return password;
}

function mustExist(exists: boolean, name: string): void {
  if (!exists) fail(`no user ${name}; \`ferry user list\` shows who there is.`, 1);
}
