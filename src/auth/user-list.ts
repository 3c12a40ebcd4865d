/**
 * A list of users kept in memory: the users file, the CLI's --user
 * NAME:PASSWORD, or an embedder's list. Each user has either a
 * `passwordHash` (scrypt, bcrypt or argon2id, verified off the event loop,
 * with a cache of recent successes) or a plain `password` (compared in
 * constant time through SHA-256 digests, so neither length nor content
 * leaks through timing).
 *
 * Unknown users, wrong passwords, disabled users and users calling from an
 * address they are not allowed from are refused the same way and, as far as
 * the work done goes, at the same cost: the password is always checked.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import net from 'node:net';
import { ErrorCodes, FerryError } from '../errors.js';
import { addressList, inList } from '../protocol/address.js';
import type { Storage } from '../storage/types.js';
import { checkPermissions, directoryPermissions } from './permissions.js';
import { isPasswordHash, VerificationCache, verifyPassword } from './password.js';
import { isRefusal, type Account, type AccountLimits, type AuthRequest, type Authenticator, type LoginRefusal, type TlsPolicy } from './types.js';

export type ListedUser = ListedUserBase & ({ password: string; passwordHash?: never } | { passwordHash: string; password?: never });

interface ListedUserBase extends AccountSettings {
  username: string;
  /** Addresses or CIDR ranges the user may log in from; absent means anywhere. */
  allowFrom?: readonly string[];
  /** Refused like a wrong password while true. */
  disabled?: boolean;
  /** This user's TLS policy, instead of the server's (asked at USER, before any password). */
  tls?: TlsPolicy;
}

export interface UserListOptions {
  /**
   * The cache of verified logins. Pass the same one to the authenticator that
   * replaces this one on reload, so unchanged users stay cached (a changed
   * hash misses by construction).
   */
  cache?: VerificationCache;
}

interface Entry {
  user: ListedUser;
  digest: Buffer | null;
  allowed: net.BlockList | null;
}

const digest = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

/** What an account is made of, before its storage is opened. */
export interface AccountSettings {
  /** Storage for the account's sessions, or a factory (possibly async) for one per session. */
  storage: Storage | (() => Storage | Promise<Storage>);
  /**
   * Permission letters, e.g. 'elr' or 'elradfmwMT', or an alias (read, write,
   * full, none): the users file's rule. UserListAuthenticator throws a
   * PermissionSpecError at construction for anything else.
   */
  permissions: string;
  /** Per-directory overrides: virtual directory → letters or alias; the deepest matching directory decides. */
  directoryPermissions?: Readonly<Record<string, string>>;
  limits?: AccountLimits;
}

/**
 * The Account for `settings`: storage opened, per-directory rules compiled.
 * A storage factory that fails (a home folder that cannot be created or
 * entered) is a FerryError HOME_UNAVAILABLE: the password was right, so the
 * client must not be told "Login incorrect".
 */
export async function makeAccount(username: string, settings: AccountSettings): Promise<Account> {
  const { storage, permissions, directoryPermissions: overrides, limits } = settings;
  let opened: Storage;
  try {
    opened = typeof storage === 'function' ? await storage() : storage;
  } catch (err) {
    throw new FerryError(ErrorCodes.HOME_UNAVAILABLE, `user ${username}: cannot open the account's storage: ${(err as Error).message}`, { cause: err });
  }
  return {
    username,
    storage: opened,
    permissions,
    ...(overrides && Object.keys(overrides).length > 0 && { hasPermission: directoryPermissions(permissions, overrides) }),
    ...(limits && { limits }),
  };
}

/** `user` with its permission specs turned into letters; throws a PermissionSpecError naming the user and the letter. */
function withCheckedPermissions(user: ListedUser): ListedUser {
  const overrides = user.directoryPermissions && Object.entries(user.directoryPermissions);
  return {
    ...user,
    permissions: checkPermissions(user.username, user.permissions),
    ...(overrides && {
      directoryPermissions: Object.fromEntries(overrides.map(([dir, spec]) => [dir, checkPermissions(user.username, spec, `directoryPermissions["${dir}"]`)])),
    }),
  };
}

export class UserListAuthenticator implements Authenticator {
  readonly #users = new Map<string, Entry>();
  /** Compared against when the user is unknown, so both paths cost the same. */
  readonly #decoy = digest('\0ferry-unknown-user');
  /** For unknown users when users have hashes: made at construction, never cached as a success. */
  /**
   * A listed user's own hash, verified (and the answer ignored) for unknown
   * names: it costs exactly what a known user's check costs, whatever the
   * scheme and cost of the listed hashes (a decoy of its own making would
   * cost the default and tell the names apart when theirs differ).
   */
  readonly #decoyHash: string | null;
  readonly #cache: VerificationCache;

  constructor(users: readonly ListedUser[], options: UserListOptions = {}) {
    for (const user of users) {
      if (user.passwordHash !== undefined && !isPasswordHash(user.passwordHash)) {
        throw new TypeError(`user ${user.username}: passwordHash is not a valid scrypt, bcrypt or argon2id hash (see hashPassword)`);
      }
      let allowed: net.BlockList | null = null;
      try {
        if (user.allowFrom) allowed = addressList(user.allowFrom);
      } catch (err) {
        throw new TypeError(`user ${user.username}: allowFrom: ${(err as Error).message}`);
      }
      this.#users.set(user.username, { user: withCheckedPermissions(user), digest: user.password === undefined ? null : digest(user.password), allowed });
    }
    this.#cache = options.cache ?? new VerificationCache();
    this.#decoyHash = users.find((user) => user.passwordHash !== undefined)?.passwordHash ?? null;
  }

  owns(username: string): boolean {
    return this.#users.has(username);
  }

  tlsPolicy(username: string): TlsPolicy | undefined {
    return this.#users.get(username)?.user.tls;
  }

  /** Never through the cache: an unknown name must not answer faster for a password that happens to be the decoy's. */
  async #decoyVerify(password: string): Promise<void> {
    await verifyPassword(password, this.#decoyHash!);
  }

  async authenticate(request: AuthRequest): Promise<Account | LoginRefusal> {
    const entry = this.#users.get(request.username);
    // Refused users are checked before the cache and never cached: a fast
    // answer for their correct password would confirm it to whoever guesses.
    const refused = entry !== undefined && (entry.user.disabled === true || (entry.allowed !== null && !inList(entry.allowed, request.remoteAddress)));
    let matches: boolean;
    if (entry?.user.passwordHash !== undefined) {
      matches = refused
        ? await verifyPassword(request.password, entry.user.passwordHash)
        : await this.#cache.verify(request.username, request.password, entry.user.passwordHash);
    } else if (entry) {
      matches = timingSafeEqual(digest(request.password), entry.digest!);
      // In a list with hashed users, plain ones must not answer faster.
      if (this.#decoyHash) await this.#decoyVerify(request.password);
    } else {
      // Unknown users cost what a known one does (the decoy is never cached).
      matches = false;
      if (this.#decoyHash) await this.#decoyVerify(request.password);
      else timingSafeEqual(digest(request.password), this.#decoy);
    }
    if (!entry) return { refused: 'unknown-user' };
    if (entry.user.disabled === true) return { refused: 'disabled' };
    if (refused) return { refused: 'address-not-allowed' };
    if (!matches) return { refused: 'wrong-password' };
    return makeAccount(request.username, entry.user);
  }
}

/**
 * Try several authenticators in order; the first account wins. An
 * authenticator that `owns` the username decides alone: its refusal ends
 * the search.
 */
export class ChainAuthenticator implements Authenticator {
  readonly #chain: readonly Authenticator[];

  constructor(chain: readonly Authenticator[]) {
    this.#chain = chain;
  }

  owns(username: string): boolean {
    return this.#chain.some((authenticator) => authenticator.owns?.(username));
  }

  /** The authenticator that owns the name says whether it is anonymous (a users-file "ftp" is not). */
  isAnonymous(username: string): boolean {
    const owner = this.#chain.find((authenticator) => authenticator.owns?.(username));
    return owner?.isAnonymous?.(username) ?? false;
  }

  /** The first authenticator in line with an answer decides; one that owns the name decides alone, even with no answer. */
  tlsPolicy(username: string): TlsPolicy | undefined {
    for (const authenticator of this.#chain) {
      const policy = authenticator.tlsPolicy?.(username);
      if (policy || authenticator.owns?.(username)) return policy;
    }
    return undefined;
  }

  /** The first account wins; the refusal returned is the owner's, else the first that said why. */
  async authenticate(request: AuthRequest): Promise<Account | LoginRefusal | null> {
    let refusal: LoginRefusal | null = null;
    for (const authenticator of this.#chain) {
      const answer = await authenticator.authenticate(request);
      if ((answer && !isRefusal(answer)) || authenticator.owns?.(request.username)) return answer;
      refusal ??= answer;
    }
    return refusal;
  }
}
