/**
 * From a validated Config to what the server runs: the authenticator chain
 * (users file, anonymous, HTTP hook) with each account's storage, and the
 * server options. Built again on reload; the verification cache is passed
 * in so it survives reloads.
 */
import { readFileSync } from 'node:fs';
import { access, constants, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { AnonymousAuthenticator } from '../auth/anonymous.js';
import { HttpAuthenticator } from '../auth/http-hook.js';
import { VerificationCache } from '../auth/password.js';
import { parsePermissions } from '../auth/permissions.js';
import type { Authenticator } from '../auth/types.js';
import { ChainAuthenticator, makeAccount, UserListAuthenticator, type ListedUser } from '../auth/user-list.js';
import type { Logger } from '../observability/logger.js';
import type { FtpServerOptions } from '../server/options.js';
import { LocalStorage } from '../storage/local.js';
import { S3Storage } from '../storage/s3.js';
import type { Storage } from '../storage/types.js';
import type { Config } from './schema.js';
import { ConfigError } from './validate.js';
import { readUsersFile, userSchema, type UserEntry } from './users-file.js';
import { fillUsername, isPathSafeUsername } from '../auth/username.js';

export interface BuildOptions {
  logger?: Logger;
  /** Verified logins; pass the same cache to every rebuild (reload) so unchanged users stay cached. */
  cache?: VerificationCache;
  /** Users given on the command line (--user), already hashed; they get `cliPermissions` on the whole storage. */
  cliUsers?: ReadonlyArray<{ username: string; passwordHash: string }>;
  cliPermissions?: string;
  /** Where each account's home lives, instead of config.storage (the CLI's --s3). */
  storageAt?: StorageAt;
}

/** The Storage of a home directory (a virtual path) for one user. */
export type StorageAt = (home: string, username: string) => Promise<Storage>;

/** Everything but the authenticator and logger comes straight from the config. */
export function serverOptions(config: Config): Omit<FtpServerOptions, 'authenticator' | 'logger'> {
  const { perUser, ...limits } = config.limits;
  return {
    host: config.host,
    port: config.port,
    passivePorts: config.passivePorts ?? undefined,
    masqueradeAddress: config.masqueradeAddress ?? undefined,
    greeting: config.banner,
    allowActiveMode: config.allowActiveMode,
    uploadSha256: config.uploadSha256,
    // The daemon's one awaited hook is hooks.beforeUpload: its timeout is the server's bound on hooks.
    hookTimeoutMs: config.hooks.beforeUpload.timeoutMs,
    ...limits,
    perUserLimits: perUser,
    defender: config.defender,
    proxyProtocol: config.proxyProtocol,
    tls: tlsOptions(config.tls),
  };
}

/**
 * The PEM files read now (at start and on every reload, so a renewed
 * certificate is picked up by SIGHUP). Their readability was checked when
 * the config loaded.
 */
function tlsOptions(tls: Config['tls']): FtpServerOptions['tls'] {
  if (!tls.cert || !tls.key) return undefined;
  const { cert, key, ca, implicitPort, ...rest } = tls;
  return { ...rest, cert: readFileSync(cert), key: readFileSync(key), ca: ca ? readFileSync(ca) : undefined, implicitPort: implicitPort ?? undefined };
}

export async function buildServerOptions(config: Config, options: BuildOptions = {}): Promise<FtpServerOptions> {
  return { ...serverOptions(config), authenticator: await buildAuthenticator(config, options), logger: options.logger };
}

async function buildAuthenticator(config: Config, options: BuildOptions): Promise<Authenticator> {
  const storageAt = options.storageAt ?? storageFactory(config, options.logger);
  const chain: Authenticator[] = [];
  const listed: ListedUser[] = (options.cliUsers ?? []).map((u) => ({
    ...u,
    storage: () => storageAt('/', u.username),
    permissions: options.cliPermissions ?? 'elr',
  }));
  if (config.users.file) {
    for (const [username, entry] of Object.entries(await readUsersFile(config.users.file))) {
      const { passwordHash, allowFrom, disabled, tls } = entry;
      listed.push({ username, passwordHash, allowFrom, disabled, tls, ...accountSettings(username, entry, storageAt) });
    }
  }
  if (config.anonymous.enabled) refuseAnonymousNames(listed, config.users.file);
  if (listed.length > 0) chain.push(new UserListAuthenticator(listed, { cache: options.cache ?? new VerificationCache({ ttlMs: config.users.cacheTtlMs }) }));
  if (config.anonymous.enabled) {
    chain.push(new AnonymousAuthenticator({ storage: () => storageAt(config.anonymous.home, ANONYMOUS_USER), permissions: parsePermissions(config.anonymous.permissions)! }));
  }
  if (config.authHook.url) {
    chain.push(
      new HttpAuthenticator({
        url: config.authHook.url,
        timeoutMs: config.authHook.timeoutMs,
        cacheTtlMs: config.authHook.cacheTtlMs,
        logger: options.logger,
        toAccount: async (username, answer) => makeAccount(username, accountSettings(username, hookAnswerSchema.parse(answer), storageAt)),
      }),
    );
  }
  return chain.length === 1 ? chain[0]! : new ChainAuthenticator(chain);
}

/**
 * With anonymous login on, anonymous sessions get the storage of the user
 * name "anonymous" (with a `{username}` S3 prefix: users/anonymous/). A
 * listed account of that name would share it with every anonymous client
 * (who log in as "ftp" too): refused, saying why. (An account named "ftp"
 * is fine: the users file owns that name, and its storage is users/ftp/.)
 * Any case: some stores compare names without it.
 */
function refuseAnonymousNames(listed: readonly ListedUser[], usersFile: string | null): void {
  const clashes = listed.filter((u) => u.username.toLowerCase() === ANONYMOUS_USER);
  if (clashes.length === 0) return;
  throw new ConfigError(
    clashes.map(
      (u) =>
        `${usersFile ?? '--user'}: the account "${u.username}" clashes with anonymous login (anonymous.enabled is true): anonymous sessions use the storage of the user name "anonymous", which this account would share; rename the account or turn anonymous off`,
    ),
  );
}

/** The user name anonymous sessions' storage is derived from (`{username}`). */
const ANONYMOUS_USER = 'anonymous';

/** What an HTTP hook's 200 answer may say; everything optional, read-only by default. */
const hookAnswerSchema = userSchema.omit({ passwordHash: true, disabled: true, allowFrom: true, tls: true });

function accountSettings(username: string, entry: Omit<UserEntry, 'passwordHash' | 'disabled' | 'allowFrom' | 'tls'>, storageAt: StorageAt) {
  const home = expandHome(entry.home, username);
  const directories = Object.entries(entry.directories).map(([dir, spec]) => [expandHome(dir, username), parsePermissions(spec)!]);
  return {
    storage: () => storageAt(home, username),
    permissions: parsePermissions(entry.permissions)!,
    directoryPermissions: directories.length > 0 ? Object.fromEntries(directories) : undefined,
    limits: entry.limits,
  };
}

/**
 * `{username}` filled in. Only names of the users-file form are put in a
 * path (an HTTP hook may grant names the client chose, such as "." or
 * "a/b", which would land in another user's folder); anything that would
 * climb out ("..") is refused rather than trusted.
 */
export function expandHome(home: string, username: string): string {
  if (home.includes('{username}') && !isPathSafeUsername(username)) throw new Error(`the user name "${username}" cannot be part of a path`);
  const expanded = fillUsername(home, username);
  const segments = expanded.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.some((s) => s === '..' || s.includes('\0'))) throw new Error(`home ${home} for ${username} leaves the storage root`);
  return '/' + segments.join('/');
}

type S3Config = Extract<Config['storage'], { type: 's3' }>;
/**
 * One S3Storage (one client, one connection pool) per distinct setting,
 * kept across reloads and never destroyed: sessions that logged in before a
 * reload keep using the storage they got (and its pool) until they end, and
 * nothing tracks when the last of them has gone. What this keeps is bounded
 * by the number of distinct storage settings the process has run with (each
 * an idle keep-alive pool once unused), which only a reload that changes
 * them adds to.
 */
const buckets = new Map<string, S3Storage>();

/** Each account's home is a sub-prefix of the configured prefix (filled in with its user name). */
function s3StorageAt(storage: S3Config, logger: Logger | undefined): StorageAt {
  const key = JSON.stringify(storage);
  let bucket = buckets.get(key);
  if (!bucket) {
    const { type, region, endpoint, forcePathStyle, credentials, ...rest } = storage;
    bucket = new S3Storage({
      ...rest,
      // Failures no client sees (a multipart upload that could not be aborted, a rename's leftovers).
      logger,
      region: region ?? undefined,
      endpoint: endpoint ?? undefined,
      // Self-hosted stores (MinIO, Ceph) want path-style URLs; AWS prefers virtual-hosted ones.
      forcePathStyle: forcePathStyle ?? endpoint !== null,
      credentials: credentials ?? undefined,
    });
    buckets.set(key, bucket);
  }
  const s3 = bucket;
  return async (home, username) => s3.forUser(username).at(home);
}

/**
 * Local disk: one Storage per home directory, shared by that home's sessions
 * (the local backend keeps no per-session state). A home that does not
 * exist yet is created on first login, by the process that serves it (after
 * any drop of privileges, so it belongs to the right user). A home that
 * process cannot create, enter or list fails the login here (makeAccount
 * turns that into a 421, not a "Login incorrect"), and is tried again at the
 * next login.
 */
function storageFactory(config: Config, logger: Logger | undefined): StorageAt {
  if (config.storage.type === 's3') return s3StorageAt(config.storage, logger);
  const made = new Map<string, Promise<Storage>>();
  const { root, fsync } = config.storage;
  return (home) => {
    let storage = made.get(home);
    if (!storage) {
      const dir = path.join(root, ...home.split('/'));
      storage = mkdir(dir, { recursive: true, mode: 0o755 })
        // mkdir succeeds on an existing folder the process cannot enter.
        .then(() => access(dir, constants.R_OK | constants.X_OK))
        .then(() => new LocalStorage(dir, { fsync, logger }));
      storage.catch(() => made.delete(home));
      made.set(home, storage);
    }
    return storage;
  };
}

/**
 * A user's home as a Storage, for reading it from outside a server (`ferry
 * user show` counts its usage). Unlike a login, a local home that does not
 * exist is not created: null then (nothing stored yet).
 */
export async function homeStorage(config: Config, username: string, home: string): Promise<Storage | null> {
  const expanded = expandHome(home, username);
  if (config.storage.type === 's3') return s3StorageAt(config.storage, undefined)(expanded, username);
  const dir = path.join(config.storage.root, ...expanded.split('/'));
  return access(dir, constants.R_OK | constants.X_OK).then(
    () => new LocalStorage(dir),
    () => null,
  );
}
