/**
 * Authentication by an operator's own service: POST
 * `{"username","password","remoteAddress","secure"}` as JSON to a URL.
 * 200 with a JSON body grants the login (the body says what the account
 * gets, turned into an Account by `toAccount`); 401, 403 and 404 refuse it.
 * Anything else (timeout, 5xx, unreadable body) refuses it too and is
 * logged, so a broken service locks users out rather than letting anyone in.
 *
 * Granted logins are remembered for `cacheTtlMs`, keyed by an HMAC of
 * (username, password, address) under a per-process secret, so devices that
 * log in constantly do not hit the service each time.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { ErrorCodes, FerryError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { isRefusal, type Account, type AuthRequest, type Authenticator, type LoginRefusal } from './types.js';

/** The hook could not be asked or gave no usable answer: the login is refused as an error, not a wrong password. */
const UNAVAILABLE: LoginRefusal = Object.freeze({ refused: 'error' });

export interface HttpAuthOptions {
  url: string;
  /** Give up on the service after this long. Default 5000. */
  timeoutMs?: number;
  /** How long a granted login is remembered; 0 disables. Default 60000. */
  cacheTtlMs?: number;
  /** Most remembered logins; the oldest go first. Default 10,000. */
  maxCacheEntries?: number;
  /** Build the account from the service's answer; throw to refuse an answer that makes no sense. */
  toAccount(username: string, answer: unknown): Promise<Account>;
  logger?: Logger;
}

const REFUSALS = new Set([401, 403, 404]);

export class HttpAuthenticator implements Authenticator {
  readonly #options: HttpAuthOptions;
  readonly #secret = randomBytes(32);
  /** HMAC key → the answer and when it expires; insertion order is age order. */
  readonly #cache = new Map<string, { answer: unknown; expires: number }>();

  constructor(options: HttpAuthOptions) {
    this.#options = options;
  }

  async authenticate(request: AuthRequest): Promise<Account | LoginRefusal | null> {
    const { username, password, remoteAddress, secure } = request;
    const key = createHmac('sha256', this.#secret).update(JSON.stringify([username, password, remoteAddress])).digest('base64');
    const cached = this.#cache.get(key);
    if (cached && cached.expires > Date.now()) return this.#account(username, cached.answer);
    this.#cache.delete(key);

    const { url, timeoutMs = 5000, logger } = this.#options;
    let answer: unknown;
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ username, password, remoteAddress, secure }),
        signal: AbortSignal.timeout(timeoutMs),
        redirect: 'error',
      });
      if (REFUSALS.has(response.status)) {
        await response.body?.cancel();
        return null;
      }
      if (response.status !== 200) {
        await response.body?.cancel();
        logger?.error({ status: response.status, username }, 'auth hook answered neither 200 nor 401/403/404; login refused');
        return UNAVAILABLE;
      }
      answer = await response.json();
    } catch (err) {
      logger?.error({ err: { message: (err as Error).message, name: (err as Error).name }, username }, 'auth hook failed; login refused');
      return UNAVAILABLE;
    }
    const account = await this.#account(username, answer);
    const ttl = this.#options.cacheTtlMs ?? 60_000;
    if (!isRefusal(account) && ttl > 0) {
      this.#cache.set(key, { answer, expires: Date.now() + ttl });
      if (this.#cache.size > (this.#options.maxCacheEntries ?? 10_000)) this.#cache.delete(this.#cache.keys().next().value!);
    }
    return account;
  }

  async #account(username: string, answer: unknown): Promise<Account | LoginRefusal> {
    try {
      // `null`, a list or a bare value is a service saying something else than "yes": refuse.
      if (answer === null || typeof answer !== 'object' || Array.isArray(answer)) throw new Error('the answer is not a JSON object');
      return await this.#options.toAccount(username, answer);
    } catch (err) {
      // The hook said yes: a home that cannot be opened is the server's fault, not a refusal (421, not 530).
      if (err instanceof FerryError && err.code === ErrorCodes.HOME_UNAVAILABLE) throw err;
      this.#options.logger?.error({ err: { message: (err as Error).message }, username }, 'auth hook answer not usable; login refused');
      return UNAVAILABLE;
    }
  }
}
