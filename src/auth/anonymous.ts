/**
 * Anonymous FTP (RFC 1635): user "anonymous" or "ftp", any password (by
 * custom an e-mail address). Read-only unless write permissions are given.
 */
import type { Storage } from '../storage/types.js';
import { checkPermissions } from './permissions.js';
import { READ_PERMISSIONS, type Account, type AuthRequest, type Authenticator } from './types.js';
import { makeAccount } from './user-list.js';

export interface AnonymousOptions {
  /** Storage every anonymous session shares, or a factory for one per session. */
  storage: Storage | (() => Storage | Promise<Storage>);
  /** Permission letters or an alias (read, write, full, none); default read-only ('elr'). A PermissionSpecError otherwise. */
  permissions?: string;
}

export const ANONYMOUS_NAMES: readonly string[] = ['anonymous', 'ftp'];

export class AnonymousAuthenticator implements Authenticator {
  readonly #storage: AnonymousOptions['storage'];
  readonly #permissions: string;

  constructor(options: AnonymousOptions) {
    this.#storage = options.storage;
    this.#permissions = checkPermissions('anonymous', options.permissions ?? READ_PERMISSIONS);
  }

  owns(username: string): boolean {
    return ANONYMOUS_NAMES.includes(username.toLowerCase());
  }

  isAnonymous(username: string): boolean {
    return this.owns(username);
  }

  async authenticate(request: AuthRequest): Promise<Account | null> {
    if (!this.owns(request.username)) return null;
    return makeAccount('anonymous', { storage: this.#storage, permissions: this.#permissions });
  }
}
