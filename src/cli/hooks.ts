/**
 * The config's `hooks:` in a running daemon: the event hooks (commands,
 * webhooks) listening to a server (or, in the cluster primary, to the
 * defender's bans), and the beforeUpload HTTP hook registered with the
 * server. SIGHUP swaps in the new settings: hooks already queued or running
 * finish under the old ones.
 */
import { readFile } from 'node:fs/promises';
import type { Config } from '../config/schema.js';
import { ConfigError } from '../config/validate.js';
import { EventHooks, type EventHooksSettings, type EventSource } from '../observability/event-hooks.js';
import type { EventName } from '../observability/hook-event.js';
import type { Logger } from '../observability/logger.js';
import type { FtpServer } from '../server/server.js';
import { askUploadHook, type UploadHookTarget } from '../observability/upload-hook.js';

/** At shutdown, how long hooks of the last events (disconnects) may still run before the process exits. */
const HOOKS_DRAIN_MS = 2000;

interface HookSettings {
  events: EventHooksSettings;
  beforeUpload: UploadHookTarget | null;
}

/** The settings of `config.hooks`, with secret files read. */
export async function hookSettings(hooks: Config['hooks']): Promise<HookSettings> {
  const secretOf = async (hook: { secret: string | null; secretFile: string | null }, where: string): Promise<string | null> => {
    if (hook.secretFile === null) return hook.secret;
    try {
      const secret = (await readFile(hook.secretFile, 'utf8')).replace(/\r?\n$/, '');
      if (secret === '') throw new Error('the file is empty');
      return secret;
    } catch (err) {
      throw new ConfigError([`${where}.secretFile: cannot read ${hook.secretFile} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): write the secret there, readable by the server's user, or give it as secret`]);
    }
  };
  const webhooks = await Promise.all(
    hooks.webhooks.map(async ({ secret, secretFile, ...hook }, i) => ({ ...hook, events: hook.events as EventName[], secret: await secretOf({ secret, secretFile }, `hooks.webhooks.${i}`) })),
  );
  const commands = hooks.commands.map((hook) => ({ ...hook, events: hook.events as EventName[] }));
  const upload = hooks.beforeUpload;
  return {
    events: { commands, webhooks, concurrency: hooks.concurrency, queueSize: hooks.queueSize },
    beforeUpload: upload.url ? { url: upload.url, timeoutMs: upload.timeoutMs, secret: await secretOf(upload, 'hooks.beforeUpload') } : null,
  };
}

export class DaemonHooks {
  #settings: HookSettings;
  #events: EventHooks;
  readonly #logger: Logger;
  readonly #sources: Array<{ source: EventSource; only?: ReadonlySet<EventName> }> = [];

  private constructor(settings: HookSettings, logger: Logger) {
    this.#settings = settings;
    this.#logger = logger;
    this.#events = new EventHooks(settings.events, logger);
  }

  static async start(config: Config, logger: Logger): Promise<DaemonHooks> {
    return new DaemonHooks(await hookSettings(config.hooks), logger);
  }

  /** Run the hooks of `source`'s events (`only`: of those among them). */
  attach(source: EventSource, only?: ReadonlySet<EventName>): void {
    this.#sources.push({ source, only });
    this.#events.attach(source, only);
  }

  /**
   * Register the beforeUpload HTTP hook with `server` (before listen()),
   * when one is configured: nothing runs per upload otherwise. A reload
   * may change its url, secret or timeout; turning it on or off needs a
   * restart (hooks are locked once a server serves).
   */
  register(server: FtpServer): void {
    if (!this.#settings.beforeUpload) return;
    // Read at each upload: a reload may change its url, secret or timeout (never turn it off: see prepareReload).
    server.hook('beforeUpload', (request) => askUploadHook(this.#settings.beforeUpload!, request));
  }

  /**
   * SIGHUP, in two steps so that a reload is all or nothing: read the new
   * settings (secret files: this may fail, and then nothing has changed),
   * and the returned function puts them in force once every other part of
   * the reload has succeeded. The old hooks' queued and running jobs finish.
   */
  async prepareReload(config: Config): Promise<() => void> {
    const settings = await hookSettings(config.hooks);
    return () => {
      // Turning it on or off takes a restart (serve.ts says so with the other such settings).
      if ((settings.beforeUpload === null) !== (this.#settings.beforeUpload === null)) settings.beforeUpload = this.#settings.beforeUpload;
      const old = this.#events;
      this.#settings = settings;
      this.#events = new EventHooks(settings.events, this.#logger);
      for (const { source, only } of this.#sources) this.#events.attach(source, only);
      old.detach();
    };
  }

  /** At shutdown, after the server closed: wait up to `ms` for the hooks of its last events. */
  close(ms = HOOKS_DRAIN_MS): Promise<boolean> {
    return this.#events.close(ms);
  }
}
