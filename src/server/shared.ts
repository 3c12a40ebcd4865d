/**
 * State every process of one server must agree on (how many sessions a user
 * has, a user's quota, an address's score), kept in one place: in one
 * process, an ordinary object; in cluster mode, the primary's object, which
 * workers call through IPC. Callers see the same asynchronous interface
 * either way (`Shared<T>`), so a limit is written once and holds across
 * workers: two workers asking for a user's last session slot at once are
 * answered one after the other by the primary's single thread, which is
 * what makes such limits exact under a burst.
 *
 * Calls carry JSON values. A call that holds something for its process (a
 * session slot, a reservation) passes `ownerId()`: when a worker dies, the
 * primary calls the object's `forgetOwner(owner)` so nothing it held leaks.
 */
import cluster, { type Worker } from 'node:cluster';

/** T's methods, each returning a promise: how any process calls a shared object. */
export type Shared<T> = {
  [K in keyof T as T[K] extends (...args: never[]) => unknown ? K : never]: T[K] extends (...args: infer A) => infer R ? (...args: A) => Promise<Awaited<R>> : never;
};

/** What a shared object may implement to hear that a worker died. */
interface Forgetful {
  forgetOwner?(owner: string): void;
}

type Call = { type: 'ferry:call'; id: number; name: string; method: string; args: unknown[] };
type Result = { type: 'ferry:result'; id: number; value?: unknown; error?: { message: string; code?: string } };

/** This process's owner id for holdings in shared objects. */
export function ownerId(): string {
  return String(process.pid);
}

let leases = 0;
/** An id for one holding (a session slot), unique across the processes of a server. */
export function leaseId(): string {
  return `${process.pid}:${++leases}`;
}

/** One process: `target` itself behind the asynchronous interface (a throw becomes a rejection). */
export function local<T extends object>(target: T): Shared<T> {
  return new Proxy({} as Shared<T>, {
    get(_, method: string) {
      const fn = (target as Record<string, unknown>)[method];
      if (typeof fn !== 'function') return undefined;
      return async (...args: unknown[]) => (fn as (...a: unknown[]) => unknown).apply(target, args);
    },
  });
}

const hosted = new Map<string, object>();

/**
 * Cluster primary: answer every worker's calls to `name` with `target`'s
 * methods. Hosting a name again replaces its object (a reload).
 */
export function hostForWorkers(name: string, target: object): void {
  if (!cluster.isPrimary) throw new Error('hostForWorkers runs in the cluster primary only');
  if (hosted.size === 0) {
    cluster.on('message', answer);
    cluster.on('exit', (worker) => {
      const owner = String(worker.process.pid);
      for (const object of hosted.values()) (object as Forgetful).forgetOwner?.(owner);
    });
  }
  hosted.set(name, target);
}

async function answer(worker: Worker, message: Call): Promise<void> {
  if (message?.type !== 'ferry:call') return;
  const reply: Result = { type: 'ferry:result', id: message.id };
  try {
    const target = hosted.get(message.name) as Record<string, unknown> | undefined;
    const fn = target?.[message.method];
    // Only the methods its class declares: never Object.prototype's, never
    // fields, and never forgetOwner, which is the primary's to call.
    const method = message.method;
    const declared = target !== undefined && Object.hasOwn(Object.getPrototypeOf(target) as object, method);
    if (!declared || typeof fn !== 'function' || method === 'constructor' || method === 'forgetOwner') {
      throw new Error(`no shared method ${message.name}.${message.method}`);
    }
    reply.value = await (fn as (...a: unknown[]) => unknown).apply(target, message.args);
  } catch (err) {
    reply.error = { message: (err as Error).message, code: (err as { code?: string }).code };
  }
  // A worker gone meanwhile cannot hear the answer; it died with its callers.
  if (worker.isConnected()) worker.send(reply, (err: Error | null) => void err);
}

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

const pending = new Map<number, Pending>();
let nextId = 1;
let listening = false;

function listen(): void {
  if (listening) return;
  listening = true;
  process.on('message', (message: Result) => {
    if (message?.type !== 'ferry:result') return;
    const call = pending.get(message.id);
    if (!call) return; // timed out already
    pending.delete(message.id);
    clearTimeout(call.timer);
    if (message.error) call.reject(Object.assign(new Error(message.error.message), { code: message.error.code }));
    else call.resolve(message.value);
  });
  process.on('disconnect', () => {
    for (const [id, call] of pending) {
      pending.delete(id);
      clearTimeout(call.timer);
      call.reject(new Error('the cluster primary is gone'));
    }
  });
}

/**
 * Cluster worker: a proxy whose calls run on the object the primary hosts
 * as `name`. A call rejects after `timeoutMs` (a primary too busy to answer
 * must not hold a login forever) or when the primary is gone.
 */
export function fromPrimary<T extends object>(name: string, options: { timeoutMs?: number } = {}): Shared<T> {
  if (!cluster.isWorker || !process.send) throw new Error('fromPrimary runs in a cluster worker only');
  const timeoutMs = options.timeoutMs ?? 5000;
  listen();
  return new Proxy({} as Shared<T>, {
    get(_, method: string | symbol) {
      // Not a thenable: `await proxy` must not call the primary.
      if (typeof method !== 'string' || method === 'then') return undefined;
      return (...args: unknown[]) =>
        new Promise((resolve, reject) => {
          if (!process.connected) return reject(new Error('the cluster primary is gone'));
          const id = nextId++;
          const timer = setTimeout(() => {
            pending.delete(id);
            reject(new Error(`the cluster primary did not answer ${name}.${method} within ${timeoutMs} ms`));
          }, timeoutMs);
          timer.unref();
          pending.set(id, { resolve, reject, timer });
          process.send!({ type: 'ferry:call', id, name, method, args } satisfies Call);
        });
    },
  });
}
