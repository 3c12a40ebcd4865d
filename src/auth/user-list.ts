/**
 * A fixed list of users with passwords given in memory (the CLI's --user
 * NAME:PASSWORD). Passwords are compared in constant time through their
 * SHA-256 digests, so neither length nor content leaks through timing; the
 * users file with scrypt hashes belongs to the accounts layer.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Storage } from '../storage/types.js';
import type { Account, AuthRequest, Authenticator } from './types.js';

export interface ListedUser {
  username: string;
  password: string;
  /** Storage for this user's sessions, or a factory for one per session. */
  storage: Storage | (() => Storage);
  /** Permission letters, e.g. 'elr' or 'elradfmwMT'. */
  permissions: string;
}

const digest = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

export class UserListAuthenticator implements Authenticator {
  readonly #users = new Map<string, { digest: Buffer; user: ListedUser }>();
  /** Compared against when the user is unknown, so both paths cost the same. */
  readonly #decoy = digest('\0ferry-unknown-user');

  constructor(users: readonly ListedUser[]) {
    for (const user of users) this.#users.set(user.username, { digest: digest(user.password), user });
  }

  async authenticate(request: AuthRequest): Promise<Account | null> {
    const entry = this.#users.get(request.username);
    const matches = timingSafeEqual(digest(request.password), entry?.digest ?? this.#decoy);
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
