/**
 * A bounded job queue with a concurrency cap, for the daemon's event hooks
 * (commands and webhooks each have one). Events never wait for it: `push`
 * answers at once, and a job that finds `capacity` jobs already waiting is
 * refused (the caller logs and drops it), so a stuck hook costs bounded
 * memory and never slows a session.
 */
export class HookQueue {
  readonly #waiting: Array<() => Promise<void>> = [];
  #running = 0;
  #idle: Array<() => void> = [];

  constructor(
    readonly concurrency: number,
    readonly capacity: number,
  ) {}

  get running(): number {
    return this.#running;
  }

  get waiting(): number {
    return this.#waiting.length;
  }

  /** Runs `job` now or when a slot frees; false (not queued) when `capacity` jobs are already waiting. */
  push(job: () => Promise<void>): boolean {
    if (this.#running < this.concurrency) {
      this.#start(job);
      return true;
    }
    if (this.#waiting.length >= this.capacity) return false;
    this.#waiting.push(job);
    return true;
  }

  #start(job: () => Promise<void>): void {
    this.#running += 1;
    // Jobs log their own failures; a rejection here must not go unhandled.
    void job()
      .catch(() => undefined)
      .finally(() => {
        this.#running -= 1;
        const next = this.#waiting.shift();
        if (next) this.#start(next);
        else if (this.#running === 0) for (const wake of this.#idle.splice(0)) wake();
      });
  }

  /** Resolves true once nothing runs or waits, or false after `ms`. */
  idle(ms: number): Promise<boolean> {
    if (this.#running === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.#idle = this.#idle.filter((w) => w !== done);
        resolve(false);
      }, ms);
      this.#idle.push(done);
    });
  }
}
