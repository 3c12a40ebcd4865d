/**
 * The daemon's hooks on events (`hooks:` in the config): for each event a
 * hook names, a command run (hook-commands.ts) or a webhook delivery
 * (webhooks.ts), queued without ever holding up the session that emitted
 * the event. Commands and webhooks have a queue each (hook-queue.ts), with
 * the same bounds: `concurrency` running, `queueSize` waiting, and beyond
 * that the event is dropped for that kind of hook, with a warning.
 *
 * In cluster mode each worker runs the hooks of the events it emits (the
 * bounds are per process); ban and unban happen in the primary, which runs
 * theirs.
 */
import { delivery, type EventName } from './hook-event.js';
import { HookQueue } from './hook-queue.js';
import { runCommandLogged, type CommandHook } from './hook-commands.js';
import { deliverLogged, urlForLogs, type WebhookTarget } from './webhooks.js';
import type { Logger } from './logger.js';

export interface EventHooksSettings {
  commands: ReadonlyArray<CommandHook & { events: readonly EventName[] }>;
  webhooks: ReadonlyArray<WebhookTarget & { events: readonly EventName[] }>;
  /** Hooks of each kind running at once, per process. */
  concurrency: number;
  /** Hooks of each kind waiting for a slot; more are dropped with a warning. */
  queueSize: number;
}

/** Something that emits events by name: an FtpServer, or the cluster primary's ban notices. */
export interface EventSource {
  on(event: string, listener: (info: unknown) => void): unknown;
  off(event: string, listener: (info: unknown) => void): unknown;
}

export class EventHooks {
  readonly #settings: EventHooksSettings;
  readonly #logger: Logger;
  readonly #commands: HookQueue;
  readonly #webhooks: HookQueue;
  /** Ends webhook retries at shutdown. */
  readonly #stop = new AbortController();
  readonly #detach: Array<() => void> = [];

  constructor(settings: EventHooksSettings, logger: Logger) {
    this.#settings = settings;
    this.#logger = logger;
    this.#commands = new HookQueue(settings.concurrency, settings.queueSize);
    this.#webhooks = new HookQueue(settings.concurrency, settings.queueSize);
  }

  /** Event names some hook wants. */
  get events(): Set<EventName> {
    return new Set([...this.#settings.commands, ...this.#settings.webhooks].flatMap((hook) => hook.events));
  }

  /** Listen to `source`'s events that some hook names (`only`: just those among them). */
  attach(source: EventSource, only?: ReadonlySet<EventName>): void {
    for (const event of this.events) {
      if (only && !only.has(event)) continue;
      const listener = (info: unknown): void => this.dispatch(event, info);
      source.on(event, listener);
      this.#detach.push(() => source.off(event, listener));
    }
  }

  /** Queue every hook that names `event`. */
  dispatch(event: EventName, info: unknown): void {
    // One document per event, made only when a hook wants it: every hook of it sees the same id and time.
    let document: ReturnType<typeof delivery> | undefined;
    const of = () => (document ??= delivery(event, info));
    for (const hook of this.#settings.commands) {
      if (!hook.events.includes(event)) continue;
      const d = of();
      if (!this.#commands.push(() => runCommandLogged(hook, d, this.#logger).then(() => undefined))) this.#dropped('command', hook.command[0]!, event);
    }
    for (const hook of this.#settings.webhooks) {
      if (!hook.events.includes(event)) continue;
      const d = of();
      if (!this.#webhooks.push(() => deliverLogged(hook, d, this.#logger, this.#stop.signal).then(() => undefined))) this.#dropped('webhook', urlForLogs(hook.url), event);
    }
  }

  #dropped(kind: string, target: string, event: EventName): void {
    this.#logger.warn({ event, hook: target, running: this.#settings.concurrency, waiting: this.#settings.queueSize }, `${kind} hook queue full: event dropped for this hook`);
  }

  /** Stop listening; what is queued or running goes on (a reload's old settings). */
  detach(): void {
    for (const detach of this.#detach.splice(0)) detach();
  }

  /**
   * Stop listening, end webhook retries, and wait up to `ms` for hooks
   * running or queued; resolves false when some were still going.
   */
  async close(ms: number): Promise<boolean> {
    this.detach();
    this.#stop.abort();
    const [commands, webhooks] = await Promise.all([this.#commands.idle(ms), this.#webhooks.idle(ms)]);
    return commands && webhooks;
  }
}
