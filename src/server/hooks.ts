/**
 * Awaited hooks: an embedder's code that runs before an action and may let
 * it go on, refuse it with a reason the client sees, or rewrite it (a
 * path, a user name). Registered with `server.hook(name, fn)` before
 * `listen()`, then locked: what a session runs never changes under it.
 *
 * Every call is bounded by `hookTimeoutMs`. A hook that throws or does not
 * answer in time refuses the action with 451 ("try again later") and a
 * warn log line: it fails closed, because a hook that guards uploads must
 * not let them through when it is down. The timer does not cancel the
 * hook's own work; its late answer is ignored.
 */
import { ErrorCodes, FerryError } from '../errors.js';
import type { Logger } from '../observability/logger.js';

/** Fields every hook request carries. */
export interface HookSession {
  sessionId: string;
  remoteAddress: string;
  username: string;
}

export type UploadMode = 'replace' | 'resume' | 'append' | 'unique';

/** What each hook is asked, and what it may rewrite. */
export interface HookRequests {
  /** After PASS, before the authenticator: `username` is the name given at USER. */
  beforeLogin: HookSession & { secure: boolean };
  /** Before the storage is opened for writing. `size` is what ALLO announced, else null. */
  beforeUpload: HookSession & { path: string; size: number | null; mode: UploadMode; offset: number };
  /** Before the file is opened for reading; `offset` is the REST offset. */
  beforeDownload: HookSession & { path: string; offset: number };
  beforeDelete: HookSession & { path: string };
  beforeRename: HookSession & { from: string; to: string };
}

export interface HookRewrites {
  beforeLogin: { username?: string };
  beforeUpload: { path?: string };
  beforeDownload: { path?: string };
  beforeDelete: Record<never, never>;
  beforeRename: { to?: string };
}

export type HookName = keyof HookRequests;

/** A hook's answer: nothing (go on), a refusal with the text the client sees, or a rewrite. */
export type HookAnswer<K extends HookName> = void | undefined | { deny: string } | HookRewrites[K];

export type Hook<K extends HookName> = (request: Readonly<HookRequests[K]>) => HookAnswer<K> | Promise<HookAnswer<K>>;

const HOOK_NAMES: readonly HookName[] = ['beforeLogin', 'beforeUpload', 'beforeDownload', 'beforeDelete', 'beforeRename'];

/** The longest refusal text sent to a client: one reply line. */
const MAX_REASON_CHARS = 200;

export class Hooks {
  readonly #hooks = new Map<HookName, Array<Hook<HookName>>>();
  #locked = false;

  add<K extends HookName>(name: K, hook: Hook<K>): void {
    if (!HOOK_NAMES.includes(name)) throw new TypeError(`hook: "${String(name)}" is not a hook; use one of ${HOOK_NAMES.join(', ')}`);
    if (typeof hook !== 'function') throw new TypeError(`hook: ${name} needs a function`);
    if (this.#locked) throw new TypeError('hook: hooks are registered before listen() (or the first connection); this server has started');
    const list = this.#hooks.get(name) ?? [];
    list.push(hook as Hook<HookName>);
    this.#hooks.set(name, list);
  }

  /** No more hooks: called when the server starts serving. */
  lock(): void {
    this.#locked = true;
  }

  has(name: HookName): boolean {
    return this.#hooks.has(name);
  }

  /**
   * Run `name`'s hooks in order, each seeing the request as the previous
   * rewrote it. Resolves to the final request; throws HOOK_DENIED (the
   * reason is the reply's text) or HOOK_FAILED (a throw or a timeout).
   */
  async run<K extends HookName>(name: K, request: HookRequests[K], timeoutMs: number, log: Logger): Promise<HookRequests[K]> {
    const list = this.#hooks.get(name) as Array<Hook<K>> | undefined;
    if (!list) return request;
    let current = request;
    for (const hook of list) {
      const seen = Object.freeze({ ...current }) as Readonly<HookRequests[K]>;
      const answer = await bounded(name, () => hook(seen), timeoutMs, log);
      if (!answer) continue;
      if (typeof answer !== 'object') throw failed(name, `answered ${typeof answer}, not an object`, log);
      if ('deny' in answer) {
        const reason = oneLine(String(answer.deny)) || 'Refused by the server.';
        log.info({ hook: name, reason }, 'refused by a hook');
        throw new FerryError(ErrorCodes.HOOK_DENIED, `${name} refused: ${reason}`, { reply: reason });
      }
      current = { ...current, ...rewrite(name, answer as Record<string, unknown>, log) };
    }
    return current;
  }
}

/** The keys a hook may rewrite, each a non-empty string; anything else is the hook's bug. */
const REWRITABLE: Record<HookName, readonly string[]> = {
  beforeLogin: ['username'],
  beforeUpload: ['path'],
  beforeDownload: ['path'],
  beforeDelete: [],
  beforeRename: ['to'],
};

function rewrite(name: HookName, answer: Record<string, unknown>, log: Logger): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(answer)) {
    if (!REWRITABLE[name].includes(key)) throw failed(name, `may not rewrite "${key}" (it may rewrite: ${REWRITABLE[name].join(', ') || 'nothing'})`, log);
    if (typeof value !== 'string' || value === '') throw failed(name, `rewrote "${key}" to ${JSON.stringify(value)}, not a non-empty string`, log);
    out[key] = value;
  }
  return out;
}

async function bounded<T>(name: HookName, call: () => T | Promise<T>, timeoutMs: number, log: Logger): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(failed(name, `did not answer within hookTimeoutMs (${timeoutMs} ms)`, log)), timeoutMs);
  });
  try {
    return await Promise.race([Promise.resolve().then(call), timeout]);
  } catch (err) {
    if (err instanceof FerryError) throw err;
    throw failed(name, `threw: ${(err as Error)?.message ?? String(err)}`, log, err);
  } finally {
    clearTimeout(timer);
  }
}

function failed(name: HookName, detail: string, log: Logger, cause?: unknown): FerryError {
  log.warn({ hook: name, reason: detail }, 'hook failed; the action is refused (451) until it answers');
  return new FerryError(ErrorCodes.HOOK_FAILED, `${name} ${detail}`, { cause });
}

function oneLine(text: string): string {
  return text.replace(/[\r\n\0]+/g, ' ').trim().slice(0, MAX_REASON_CHARS);
}
