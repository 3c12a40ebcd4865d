/**
 * A cluster primary and one worker exercising server/shared.ts over real
 * IPC (run by test/unit/shared.test.ts). The primary prints one JSON line:
 * what the worker's calls gave, and whom forgetOwner was called for.
 */
import cluster from 'node:cluster';
import { fromPrimary, hostForWorkers, ownerId } from '../../src/server/shared.js';

class Counter {
  forgotten: string[] = [];
  total = 0;
  add(n: number): number {
    return (this.total += n);
  }
  never(): Promise<never> {
    return new Promise(() => {});
  }
  fail(): never {
    throw Object.assign(new Error('refused on purpose'), { code: 'E_PURPOSE' });
  }
  forgetOwner(owner: string): void {
    this.forgotten.push(owner);
  }
}

if (cluster.isPrimary) {
  const counter = new Counter();
  hostForWorkers('counter', counter);
  const worker = cluster.fork();
  let results: unknown;
  worker.on('message', (message: { type?: string; results?: unknown }) => {
    if (message.type === 'results') results = message.results;
  });
  worker.on('exit', () => {
    // forgetOwner runs from cluster's own 'exit' listener, registered before this one.
    setImmediate(() => {
      process.stdout.write(JSON.stringify({ results, worker: String(worker.process.pid), forgotten: counter.forgotten, total: counter.total }) + '\n');
      process.exit(0);
    });
  });
  setTimeout(() => process.exit(2), 15_000).unref();
} else {
  const counter = fromPrimary<Counter>('counter', { timeoutMs: 300 });
  const outcome = (p: Promise<unknown>) => p.then((value) => ({ value }), (err: Error & { code?: string }) => ({ error: err.message, code: err.code }));
  const results = {
    owner: ownerId(),
    add: await outcome(Promise.all([counter.add(1), counter.add(2)])),
    fail: await outcome(counter.fail()),
    never: await outcome(counter.never()),
    toString: await outcome((counter as unknown as { toString(): Promise<string> }).toString()),
    forgetOwner: await outcome(counter.forgetOwner('someone else')),
    missing: await outcome(fromPrimary<{ x(): void }>('nothing-here', { timeoutMs: 300 }).x()),
  };
  process.send!({ type: 'results', results }, () => process.exit(0));
}
