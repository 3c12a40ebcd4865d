/**
 * Users given on the command line (`ferry --user NAME[:PASSWORD]`), and how
 * their passwords stay out of sight.
 *
 * `NAME:PASSWORD` in the arguments is readable by every local user (`ps`,
 * /proc/<pid>/cmdline) for as long as the process runs. `--user NAME` alone
 * takes the password from, in order: --user-password-file (its one line),
 * the FERRY_USER_PASSWORD variable (removed from the environment once read,
 * so workers and hook commands do not inherit it), or standard input (asked
 * without echo at a terminal, one line from a pipe), as `ferry user` reads
 * passwords. One source gives one password, so at most one --user may leave
 * it out; more users belong in a users file.
 *
 * In cluster mode the workers never see a password: the primary forks them
 * with the passwords cut from their arguments and hands them the scrypt
 * hashes it made, in the environment (readable by the same user and root
 * only, like the process's memory).
 */
import cluster from 'node:cluster';
import { readFile } from 'node:fs/promises';
import { hashPassword } from '../auth/password.js';
import { USER_PASSWORD_ENV } from '../config/load.js';
import { fail } from './fail.js';
import { readPassword } from './prompt.js';

export interface CliUser {
  username: string;
  /** Absent when --user named the user alone. */
  password?: string;
}

export interface HashedCliUser {
  username: string;
  passwordHash: string;
}

/** Where the primary puts the hashes for its workers (`__FERRY_`: not a setting, as the other worker variables). */
const WORKER_USERS_ENV = '__FERRY_WORKER_USERS';

/**
 * The hashes of the --user users. A worker takes its primary's, so it
 * reads no password source (a pipe or a terminal is the primary's alone).
 */
export async function cliUserHashes(users: readonly CliUser[], passwordFile: string | undefined): Promise<HashedCliUser[]> {
  if (cluster.isWorker) return JSON.parse(process.env[WORKER_USERS_ENV] ?? '[]') as HashedCliUser[];
  const without = users.filter((u) => u.password === undefined);
  if (without.length > 1) {
    fail(`only one --user may leave out its password (${without.map((u) => u.username).join(', ')} do); put more users in a users file (\`ferry user add\`)`);
  }
  if (passwordFile !== undefined && without.length === 0) fail('--user-password-file needs a --user NAME given without a password');
  const found = without.length === 1 ? await passwordFromSource(passwordFile) : null;
  // Not for the workers, hooks or anything else this process starts.
  delete process.env[USER_PASSWORD_ENV];
  return Promise.all(users.map(async (u) => ({ username: u.username, passwordHash: await hashPassword(u.password ?? found!) })));
}

async function passwordFromSource(file: string | undefined): Promise<string> {
  let text: string;
  let from: string;
  if (file !== undefined) {
    from = `--user-password-file ${file}`;
    try {
      text = (await readFile(file, 'utf8')).replace(/\r?\n$/, '');
    } catch (err) {
      return fail(`${from}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, 1);
    }
  } else if (process.env[USER_PASSWORD_ENV] !== undefined) {
    from = USER_PASSWORD_ENV;
    text = process.env[USER_PASSWORD_ENV]!;
  } else {
    from = 'standard input';
    text = await readPassword({ fromStdin: false, confirm: false });
  }
  if (text.length === 0) fail(`${from}: the password is empty; give one (or NAME:PASSWORD, visible to other local users)`);
  if (/[\r\n]/.test(text)) fail(`${from}: the password has a line break in it, which no FTP client can send; give one line`);
  return text;
}

/**
 * Fork the workers with these users: the hashes in their environment, the
 * passwords cut from their arguments (`--user NAME:PW` becomes `--user NAME`).
 */
export function shareWithWorkers(users: readonly HashedCliUser[]): void {
  process.env[WORKER_USERS_ENV] = JSON.stringify(users);
  cluster.setupPrimary({ args: withoutPasswords(process.argv.slice(2)) });
}

function withoutPasswords(args: readonly string[]): string[] {
  const cut = (value: string) => value.replace(/:.*$/s, '');
  return args.map((arg, i) => (args[i - 1] === '--user' ? cut(arg) : arg.startsWith('--user=') ? `--user=${cut(arg.slice('--user='.length))}` : arg));
}
