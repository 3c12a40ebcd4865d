/**
 * Anonymous FTP (RFC 1635): user "anonymous" or "ftp", any password (by
 * custom an e-mail address). Read-only unless write permissions are given.
 */
import type { Storage } from '../storage/types.js';
import { READ_PERMISSIONS, type Account, type AuthRequest, type Authenticator } from './types.js';

export interface AnonymousOptions {
  /** Storage every anonymous session shares, or a factory for one per session. */
  storage: Storage | (() => Storage | Promise<Storage>);
  /** Permission letters; default read-only ('elr'). */
  permissions?: string;
}

export const ANONYMOUS_NAMES: readonly string[] = ['anonymous', 'ftp'];

export class AnonymousAuthenticator implements Authenticator {
  readonly #options: AnonymousOptions;

  constructor(options: AnonymousOptions) {
    this.#options = options;
  }

  owns(username: string): boolean {
    return ANONYMOUS_NAMES.includes(username.toLowerCase());
  }

  isAnonymous(username: string): boolean {
    return this.owns(username);
  }

  async authenticate(request: AuthRequest): Promise<Account | null> {
    if (!this.owns(request.username)) return null;
    const { storage, permissions = READ_PERMISSIONS } = this.#options;
    return { username: 'anonymous', storage: typeof storage === 'function' ? await storage() : storage, permissions };
  }
}
