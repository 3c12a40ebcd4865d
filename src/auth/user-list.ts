/**
 * A fixed list of users kept in memory (the CLI's --user NAME:PASSWORD, or
 * an embedder's list). Each user has either a scrypt `passwordHash` (verified
 * off the event loop, with a cache of recent successes) or a plain
 * `password` (compared in constant time through SHA-256 digests, so neither
 * length nor content leaks through timing).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Storage } from '../storage/types.js';
import { hashPassword, isPasswordHash, VerificationCache, verifyPassword } from './password.js';
import type { Account, AuthRequest, Authenticator } from './types.js';

export type ListedUser = ListedUserBase & ({ password: string; passwordHash?: never } | { passwordHash: string; password?: never });

interface ListedUserBase {
  username: string;
  /** Storage for this user's sessions, or a factory for one per session. */
  storage: Storage | (() => Storage);
  /** Permission letters, e.g. 'elr' or 'elradfmwMT'. */
  permissions: string;
}

const digest = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

export class UserListAuthenticator implements Authenticator {
  readonly #users = new Map<string, { digest: Buffer | null; user: ListedUser }>();
  /** Compared against when the user is unknown, so both paths cost the same. */
  readonly #decoy = digest('\0ferry-unknown-user');
  /** For unknown users when users have hashes: made on first need, never cached as a success. */
  #decoyHash: Promise<string> | null = null;
  readonly #hashed: boolean;
  readonly #cache = new VerificationCache();

  constructor(users: readonly ListedUser[]) {
    for (const user of users) {
      if (user.passwordHash !== undefined && !isPasswordHash(user.passwordHash)) {
        throw new TypeError(`user ${user.username}: passwordHash is not a valid $scrypt$ hash (see hashPassword)`);
      }
      this.#users.set(user.username, { digest: user.password === undefined ? null : digest(user.password), user });
    }
    this.#hashed = users.some((user) => user.passwordHash !== undefined);
  }

  async #decoyVerify(password: string): Promise<void> {
    this.#decoyHash ??= hashPassword('\0ferry-unknown-user').catch((err: unknown) => {
      this.#decoyHash = null; // try again next time rather than failing every login
      throw err;
    });
    await verifyPassword(password, await this.#decoyHash);
  }

  async authenticate(request: AuthRequest): Promise<Account | null> {
    const entry = this.#users.get(request.username);
    let matches: boolean;
    if (entry?.user.passwordHash !== undefined) {
      matches = await this.#cache.verify(request.username, request.password, entry.user.passwordHash);
    } else if (entry) {
      matches = timingSafeEqual(digest(request.password), entry.digest!);
      // In a list with hashed users, plain ones must not answer faster.
      if (this.#hashed) await this.#decoyVerify(request.password);
    } else {
      // Unknown users cost what a known one does (the decoy is never cached).
      matches = false;
      if (this.#hashed) await this.#decoyVerify(request.password);
      else timingSafeEqual(digest(request.password), this.#decoy);
    }
    if (!entry || !matches) return null;
    const { username, storage, permissions } = entry.user;
    return { username, storage: typeof storage === 'function' ? storage() : storage, permissions };
  }
}

/** Try several authenticators in order; the first account wins. */
export class ChainAuthenticator implements Authenticator {
  readonly #chain: readonly Authenticator[];

  constructor(chain: readonly Authenticator[]) {
    this.#chain = chain;
  }

  async authenticate(request: AuthRequest): Promise<Account | null> {
    for (const authenticator of this.#chain) {
      const account = await authenticator.authenticate(request);
      if (account) return account;
    }
    return null;
  }
}
